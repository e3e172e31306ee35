"""The Ray backend gives the same walk-forward results as local worker processes.

Run with ``pytest -m ray tests/test_runner_ray.py`` after ``pip install 'trendgym[ray]'``;
it starts a local Ray instance (``ray.init()`` on this machine, 2 CPUs) and shuts it down.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_runner import tiny_config  # noqa: E402

from trendgym.evaluate import Ledger  # noqa: E402
from trendgym.evaluate.walkforward import run_walk_forward  # noqa: E402

pytestmark = pytest.mark.ray


def test_ray_backend_matches_local_processes(tmp_path):
    ray = pytest.importorskip("ray", reason="pip install 'trendgym[ray]' to run the Ray backend")
    local = run_walk_forward(
        tiny_config(), ledger=tmp_path / "local.sqlite", workers=2, progress=False
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_walk_forward(
            tiny_config(), ledger=tmp_path / "ray.sqlite", ray_address="local", progress=False
        )
    finally:
        ray.shutdown()
    assert [o.key for o in remote.trials] == [o.key for o in local.trials]
    for a, b in zip(local.trials, remote.trials, strict=True):
        for name in a.returns:
            np.testing.assert_array_equal(a.returns[name], b.returns[name])
    for s in local.agent_returns:
        pd.testing.assert_series_equal(local.agent_returns[s], remote.agent_returns[s])
        for name in local.baseline_returns:
            pd.testing.assert_series_equal(
                local.baseline_returns[name][s], remote.baseline_returns[name][s]
            )
    assert Ledger(tmp_path / "ray.sqlite").n_trials() == len(remote.trials) == 4
