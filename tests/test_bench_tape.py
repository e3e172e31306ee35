"""benchmarks/tape.py's paired timing of the native vector env in two modes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import tape as bench  # noqa: E402


class _Recorder:
    """Stands in for a vector env: records the order of calls and the actions it got."""

    num_envs = 2

    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.actions = name, log, []

    def reset(self, seed=None):
        self.log.append((self.name, "reset", seed))

    def step(self, a):
        self.log.append((self.name, "step"))
        self.actions.append(a.copy())


def test_paired_rates_alternate_the_modes_on_the_same_actions():
    log: list = []
    venvs = {"simulated": _Recorder("simulated", log), "replay": _Recorder("replay", log)}
    ticks = iter(range(1000))
    rates = bench.paired_vector_rates(venvs, steps=3, rounds=2, clock=lambda: next(ticks), seed=5)
    assert [len(r) for r in rates.values()] == [2, 2]
    # each round's first mode alternates; the warm-up step comes first, untimed
    steps = [name for name, *what in log if what == ["step"]]
    assert (
        steps
        == ["simulated", "replay"]
        + ["simulated"] * 3
        + ["replay"] * 3
        + ["replay"] * 3
        + ["simulated"] * 3
    )
    sim, rep = venvs["simulated"].actions, venvs["replay"].actions
    assert all(np.array_equal(x, y) for x, y in zip(sim, rep, strict=True))
    assert all(r == 3 * 2 / 1 for r in rates["simulated"] + rates["replay"])  # 1 tick per round
