"""``trendgym evaluate`` stopped by SIGINT or SIGTERM keeps its finished trials, and
``--resume`` ends with the report an uninterrupted run writes (real processes, tiny budgets)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trendgym.evaluate import Ledger
from trendgym.train.cli import main

TINY = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}
# 2 folds x 2 seeds on Execution-v0, then the same search on blind observations: 8 trials
EVALUATE = [
    "evaluate",
    "--env",
    "trendgym/Execution-v0",
    "--folds",
    "2",
    "--seeds",
    "2",
    "--timesteps",
    "128",
    "--episodes",
    "4",
    "--extractor",
    "none",
    "--env-kwargs",
    '{"horizon": 10}',
    "--model-kwargs",
    json.dumps(TINY),
]
TRIALS = 8


def _argv(root: Path, *extra: str) -> list[str]:
    return [*EVALUATE, "--out", str(root / "report"), "--ledger", str(root / "l.sqlite"), *extra]


def _numbers(root: Path) -> dict:
    """results.json without the time, and with the folder's name (the ledger's path) as ROOT."""
    text = (root / "report" / "results.json").read_text()
    results = json.loads(text.replace(str(root), "ROOT"))
    results.pop("generated")
    return results


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    log = io.StringIO()  # not a terminal: progress comes as lines
    with contextlib.redirect_stderr(log), contextlib.redirect_stdout(io.StringIO()):
        assert main(_argv(root, "--workers", "0")) == 0
    return root, log.getvalue()


def test_progress_lines_name_the_search_and_the_placebo(uninterrupted):
    _, log = uninterrupted
    real = "trendgym: walk-forward trendgym/Execution-v0: "
    placebo = "trendgym: placebo search 1/1 (blind observations) on trendgym/Execution-v0: "
    lines = log.splitlines()
    assert lines.count(real + "4 trials") == 1 and lines.count(placebo + "4 trials") == 1, log
    for label in (real, placebo):
        done = [int(m.group(1)) for m in re.finditer(re.escape(label) + r"(\d)/4 trials", log)]
        assert done == [1, 2, 3, 4], log
    assert log.index(real + "4/4") < log.index(placebo + "4 trials")  # never one label twice
    assert "\r" not in log


def _interrupt_after_a_trial(root: Path, sig: int, workers: str, whole_group: bool) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trendgym.train.cli", *_argv(root, "--workers", workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    lines, deadline = [], time.monotonic() + 240
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if re.search(r": [1-9]/\d+ trials", line):  # a trial is finished and in the ledger
            break
        assert time.monotonic() < deadline, "".join(lines)
    if whole_group:  # Ctrl-C in a terminal reaches the workers too
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 128 + sig, output
    return output


@pytest.mark.parametrize(
    "sig,workers,whole_group",
    [(signal.SIGINT, "2", True), (signal.SIGTERM, "0", False)],
    ids=["ctrl-c-worker-processes", "sigterm-in-process"],
)
def test_interrupted_evaluation_resumes_to_the_uninterrupted_report(
    uninterrupted, tmp_path, capsys, sig, workers, whole_group
):
    reference, _ = uninterrupted
    output = _interrupt_after_a_trial(tmp_path, sig, workers, whole_group)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    last = output.strip().splitlines()[-1]
    name = signal.Signals(sig).name
    assert last.startswith(f"trendgym: {name}: evaluation stopped;") and "--resume" in last, output
    kept = Ledger(tmp_path / "l.sqlite")
    n_kept = kept.n_trials()
    assert f"{n_kept} finished trial(s) are in the ledger" in last
    assert 1 <= n_kept < TRIALS and kept.integrity_check() == "ok"
    state = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert state["status"] == "interrupted" and state["finished_trials"] == n_kept
    assert not (tmp_path / "report" / "results.json").exists()

    # a plain rerun and a resume with another budget are refused before any work
    for extra, words in (
        ([], "holds an evaluation that did not finish (interrupted); continue it with --resume"),
        (["--timesteps", "256", "--resume"], "timesteps=256 differs from its 128"),
    ):
        argv = _argv(tmp_path, "--workers", "0", "--no-progress", *extra)
        with pytest.raises(SystemExit) as refused:
            main([a if a != "128" else "256" for a in argv] if "256" in extra else argv)
        assert refused.value.code == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    assert kept.n_trials() == n_kept

    assert main(_argv(tmp_path, "--workers", "0", "--resume")) == 0
    err = capsys.readouterr().err
    assert "finished before (in the ledger)" in err
    assert _numbers(tmp_path) == _numbers(reference)
    # every trial once: the resumed ledger holds what the uninterrupted one holds
    assert kept.n_trials() == Ledger(reference / "l.sqlite").n_trials() == TRIALS
    state = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert state["status"] == "done"


def test_portfolio_placebo_searches_are_labelled_with_their_market():
    from trendgym.evaluate.survivorship import placebo_label
    from trendgym.evaluate.walkforward import WalkForwardConfig, domain_for

    cfg = WalkForwardConfig(
        "trendgym/Portfolio-v0", env_kwargs={"preset": "futures", "n_years": 5, "data_seed": 3}
    )
    placebos = domain_for(cfg.env_id).placebos(cfg)
    labels = [placebo_label(p, k, len(placebos)) for k, p in enumerate(placebos)]
    assert labels == [
        "placebo search 1/2 (random-walk market, data_seed 4) on trendgym/Portfolio-v0",
        "placebo search 2/2 (random-walk market, data_seed 5) on trendgym/Portfolio-v0",
    ]


def test_a_failed_evaluation_is_no_trap(tmp_path):
    """An error (not a signal) leaves the folder 'failed': a plain rerun, say with fixed
    arguments, starts afresh instead of being refused."""
    from trendgym.evaluate import evaluate_agent

    kw = dict(
        out_dir=tmp_path / "report",
        ledger=tmp_path / "l.sqlite",
        workers=0,
        progress=False,
        placebo=False,
        seeds=(0,),
        timesteps=64,
        episodes=2,
        env_kwargs={"horizon": 10},
        extractor=None,
        model_kwargs={"bogus": 1},
    )
    for _ in range(2):  # the second run is not refused: it fails the same way
        with pytest.raises(TypeError, match="bogus"):
            evaluate_agent("trendgym/Execution-v0", **kw)
        state = json.loads((tmp_path / "report" / "evaluation.json").read_text())
        assert state["status"] == "failed"


def test_an_env_without_a_domain_is_refused_before_anything_is_written(tmp_path):
    from trendgym.evaluate import evaluate_agent

    with pytest.raises(ValueError, match="no walk-forward domain for env id 'CartPole-v1'"):
        evaluate_agent("CartPole-v1", out_dir=tmp_path / "report", ledger=tmp_path / "l.sqlite")
    assert list(tmp_path.iterdir()) == []
