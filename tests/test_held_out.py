"""Train on the simulation, test on the day: ``test_env_kwargs`` / ``--test-env-kwargs`` give
the held-out blocks of a walk-forward evaluation their own env (a replayed tape, cut into
disjoint time windows), from the config to the CLI and the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trendgym.envs.lob import MessageTape, OrderBook, record_flow, write_lobster
from trendgym.envs.lob.flow import OrderFlow, flow_params
from trendgym.evaluate.cli import check_same_spaces
from trendgym.evaluate.walkforward import (
    ExecutionDomain,
    WalkForwardConfig,
    cost_label,
    domain_for,
)
from trendgym.evaluate.walkforward.config import run_key
from trendgym.evaluate.walkforward.estimate import (
    block_setup_seconds,
    expected_seconds,
    search_costs,
)
from trendgym.evaluate.walkforward.windows import tape_windows
from trendgym.train.calibrate_cli import CALIBRATION_JSON
from trendgym.train.cli import main
from trendgym.train.preflight import probe_env

EXEC = "trendgym/Execution-v0"
# 4 s warm-up and 8 decisions of 1 s: an episode spans 12 s of tape
SHORT = {"step_seconds": 1.0, "warmup_seconds": 4.0, "horizon": 8}
EPISODE = 12.0
TINY = {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}


def _write_day(root: Path, name: str, seconds: float, seed: int) -> tuple[str, str]:
    """A LOBSTER message and orderbook file pair of a simulated calm day (starts 09:30)."""
    flow = OrderFlow(
        OrderBook(), flow_params("calm", burst_scale=1.0), np.random.default_rng(seed), record=4096
    )
    flow.seed_book()
    tape = record_flow(flow, seconds, resolution=0.02)
    keep = tape.time > tape.time[0]  # the book at the start known only from the orderbook file
    cut = MessageTape(tape.messages[keep].copy(), tick=100, orderbook=tape.snapshots(10)[keep])
    msg, ob = root / f"{name}_message_10.csv", root / f"{name}_orderbook_10.csv"
    write_lobster(cut, msg, ob, levels=10)
    return str(msg), str(ob)


@pytest.fixture(scope="module")
def days(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """Two days of different seeds: day1 to calibrate on, day2 held out."""
    root = tmp_path_factory.mktemp("days")
    return {
        "day1": _write_day(root, "SIM_2026-12-07", 300.0, seed=11),
        "day2": _write_day(root, "SIM_2026-12-08", 300.0, seed=12),
    }


@pytest.fixture(scope="module")
def calibration(days, tmp_path_factory) -> str:
    """``trendgym calibrate`` on day1; the path of its calibration.json."""
    out = tmp_path_factory.mktemp("cal")
    mp = pytest.MonkeyPatch()
    import io

    mp.setattr(sys, "stdout", io.StringIO())
    try:
        assert main(["calibrate", *days["day1"], "--out", str(out)]) == 0
    finally:
        mp.undo()
    return str(out / CALIBRATION_JSON)


def _replay(days, **extra) -> dict:
    return {"replay": list(days["day2"]), **SHORT, **extra}


# ------------------------------------------------------------------ config


def test_config_checks_and_serialises_test_env_kwargs():
    plain = WalkForwardConfig(env_id=EXEC)
    assert plain.test_env_kwargs is None and plain.to_json()["test_env_kwargs"] is None
    assert plain.held_out_kwargs == {}
    split = WalkForwardConfig(
        env_id=EXEC, env_kwargs={"preset": "calm"}, test_env_kwargs={"preset": "volatile"}
    )
    assert split.to_json()["test_env_kwargs"] == {"preset": "volatile"}
    assert split.held_out_kwargs == {"preset": "volatile"}  # replaces, never merges
    assert json.loads(json.dumps(split.to_json())) == split.to_json()
    # the ledger's run key (and so --resume) tells the two searches apart
    assert run_key(split) != run_key(WalkForwardConfig(env_id=EXEC, env_kwargs={"preset": "calm"}))
    with pytest.raises(TypeError, match="test_env_kwargs must be JSON-serialisable"):
        WalkForwardConfig(env_id=EXEC, test_env_kwargs={"replay": object()})
    with pytest.raises(TypeError, match="test_env_kwargs must be a dict"):
        WalkForwardConfig(env_id=EXEC, test_env_kwargs=["replay"])


def test_portfolio_refuses_test_env_kwargs(tmp_path):
    from trendgym.evaluate import evaluate_agent

    config = WalkForwardConfig(env_id="trendgym/Portfolio-v0", test_env_kwargs={"preset": "x"})
    with pytest.raises(ValueError, match="test_env_kwargs: Portfolio-v0 splits one price"):
        domain_for(config.env_id).plan(config)
    with pytest.raises(ValueError, match="test_env_kwargs: Portfolio-v0 splits one price"):
        evaluate_agent(
            "trendgym/Portfolio-v0",
            out_dir=tmp_path / "report",
            ledger=tmp_path / "ledger.sqlite",
            test_env_kwargs={"preset": "crypto"},
        )
    assert list(tmp_path.iterdir()) == []


def test_simulated_test_kwargs_keep_the_seed_blocks():
    base = WalkForwardConfig(env_id=EXEC, episodes=6, env_kwargs={"preset": "calm"})
    split = WalkForwardConfig(
        env_id=EXEC,
        episodes=6,
        env_kwargs={"preset": "calm"},
        test_env_kwargs={"preset": "volatile", "fee_bps": 1.0},
    )
    plain, other = ExecutionDomain().plan(base), ExecutionDomain().plan(split)
    for p, q in zip(plain, other, strict=True):
        assert q.train_kwargs == {"preset": "calm"} == p.train_kwargs
        assert q.validation.episode_seeds == p.validation.episode_seeds
        assert q.validation.env_kwargs == {"preset": "volatile", "fee_bps": 1.0}
        assert q.tests[cost_label(2.0)].env_kwargs == {"preset": "volatile", "fee_bps": 2.0}
        assert q.tests[cost_label(1.0)].episode_seeds == p.tests[cost_label(1.0)].episode_seeds
        assert "replay_window" not in q.validation.env_kwargs
        assert 'on env_kwargs {"preset": "calm"}' in q.describe["train"]
        assert p.describe["train"] == "episodes from the env's generator (trial seed)"


# ------------------------------------------------------------------ windows


def test_tape_windows_layout_and_refusal():
    w = tape_windows((100.0, 600.0), 12.0, n_folds=4, validation_fraction=0.2, what="x")
    assert w.validation == (100.0, 200.0)
    assert w.folds == ((200.0, 300.0), (300.0, 400.0), (400.0, 500.0), (500.0, 600.0))
    with pytest.raises(ValueError) as err:
        tape_windows((100.0, 150.0), 12.0, n_folds=4, validation_fraction=0.2, what="tape x")
    for words in ("tape x", "50 s", "validation block 10 s", "4 OOS blocks 10 s", "needs 12 s"):
        assert words in str(err.value), (words, str(err.value))


def test_replayed_blocks_are_disjoint_in_time_and_the_episodes_stay_inside(days):
    import gymnasium as gym

    config = WalkForwardConfig(
        env_id=EXEC, n_folds=3, episodes=5, env_kwargs=SHORT, test_env_kwargs=_replay(days)
    )
    plans = ExecutionDomain().plan(config)
    validation = plans[0].validation.env_kwargs["replay_window"]
    assert all(p.validation.env_kwargs["replay_window"] == validation for p in plans)
    folds = [p.tests[cost_label(1.0)].env_kwargs["replay_window"] for p in plans]
    assert all(
        p.tests[cost_label(2.0)].env_kwargs["replay_window"] == f
        for p, f in zip(plans, folds, strict=True)
    )
    edges = [validation, *folds]
    for (a0, a1), (b0, b1) in zip(edges[:-1], edges[1:], strict=True):
        assert a0 < a1 <= b0 < b1  # in time order, never overlapping
    total = edges[-1][1] - edges[0][0]
    assert validation[1] - validation[0] == pytest.approx(0.2 * total)
    assert all(p.train_kwargs == SHORT for p in plans)
    for p, (lo, hi) in zip(plans, folds, strict=True):
        block = p.tests[cost_label(1.0)]
        env = gym.make(EXEC, **block.env_kwargs)
        for seed in block.episode_seeds:
            _, info = env.reset(seed=seed)
            assert lo <= info["replay_start_time"] and info["replay_start_time"] + EPISODE <= hi
        env.close()
        assert p.describe["test_window"] == [lo, hi]
    # the estimate adds each block env's build (it reads the tape) to a trial's scoring
    setup = block_setup_seconds(config)
    assert setup > 0 and block_setup_seconds(WalkForwardConfig(env_id=EXEC)) == 0.0
    (slow,) = search_costs(config, workers=1, placebo=False, setup=2.0)
    (free,) = search_costs(config, workers=1, placebo=False, setup=0.0)
    assert slow.score_seconds - free.score_seconds == pytest.approx(3 * 2.0)  # val, 1x, 2x
    assert expected_seconds(config, workers=1, placebo=False) > free.seconds


def test_a_tape_too_short_for_the_blocks_says_what_each_got(days):
    config = WalkForwardConfig(
        env_id=EXEC, n_folds=30, env_kwargs=SHORT, test_env_kwargs=_replay(days)
    )
    with pytest.raises(ValueError) as err:
        ExecutionDomain().plan(config)
    text = str(err.value)
    for words in ("test_env_kwargs replay", "each of the 30 OOS blocks", "needs 12 s"):
        assert words in text, (words, text)


# ------------------------------------------------------------------ preflight


def test_spaces_must_match():
    a = probe_env("trendgym/Portfolio-v0", {"preset": "random_walk", "n_assets": 2})
    b = probe_env("trendgym/Portfolio-v0", {"preset": "random_walk", "n_assets": 3})
    assert a.observation_space != b.observation_space
    with pytest.raises(ValueError) as err:
        check_same_spaces(a, b)
    assert "observation_space" in str(err.value) and "--test-env-kwargs" in str(err.value)
    assert str(a.observation_space) in str(err.value) and str(b.observation_space) in str(err.value)
    check_same_spaces(a, a)


@pytest.mark.parametrize(
    ("env", "test_kwargs", "words"),
    [
        (EXEC, '{"bogus": 1}', ["--test-env-kwargs", "bogus"]),
        (EXEC, '{"replay": "/nonexistent/day2.csv"}', ["--test-env-kwargs", "no such file"]),
        (EXEC, '{"flow": "x.json", "replay": "y.csv"}', ["--test-env-kwargs", "exclusive"]),
        ("trendgym/Portfolio-v0", '{"preset": "crypto"}', ["--test-env-kwargs", "Portfolio-v0"]),
    ],
)
def test_bad_test_env_kwargs_are_one_line_exit_2(env, test_kwargs, words, tmp_path, capsys):
    argv = ["evaluate", "--env", env, "--no-progress", "--test-env-kwargs", test_kwargs]
    argv += ["--out", str(tmp_path / "report"), "--ledger", str(tmp_path / "ledger.sqlite")]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert list(tmp_path.iterdir()) == []


def test_a_short_test_tape_is_refused_before_anything_is_created(days, tmp_path, capsys):
    argv = ["evaluate", "--env", EXEC, "--no-progress", "--folds", "30"]
    argv += ["--env-kwargs", json.dumps(SHORT), "--test-env-kwargs", json.dumps(_replay(days))]
    argv += ["--out", str(tmp_path / "report"), "--ledger", str(tmp_path / "ledger.sqlite")]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "each of the 30 OOS blocks" in err and "needs 12 s" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ end to end


def test_evaluate_cli_trains_on_the_calibrated_flow_and_tests_on_windows_of_another_day(
    days, calibration, tmp_path, capsys, monkeypatch
):
    # every scored episode (trials and baselines, in this process: --workers 0) with the
    # window its env was built with, read after the real episode ran
    seen: list[tuple[tuple[float, float], float, int]] = []
    real = ExecutionDomain.episode_returns

    def recorded(self, env, policy, seed):
        out = real(self, env, policy, seed)
        window = tuple(env.spec.kwargs["replay_window"])  # as the block built its env
        seen.append((window, env.unwrapped.replay_start_time, seed))
        return out

    monkeypatch.setattr(ExecutionDomain, "episode_returns", recorded)
    train = {"flow": calibration, **SHORT}
    test = {"replay": list(days["day2"]), **SHORT}
    out = tmp_path / "report"
    argv = ["evaluate", "--env", EXEC, "--env-kwargs", json.dumps(train)]
    argv += ["--test-env-kwargs", json.dumps(test), "--folds", "2", "--seeds", "1"]
    argv += ["--timesteps", "128", "--episodes", "4", "--n-envs", "2", "--workers", "0"]
    argv += ["--model-kwargs", json.dumps(TINY), "--no-placebo", "--no-progress"]
    argv += ["--out", str(out), "--ledger", str(tmp_path / "ledger.sqlite")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"trained on env_kwargs {json.dumps(train)}" in printed
    assert "fold 1 OOS: seeds 1000004..1000007 in tape window" in printed

    results = json.loads((out / "results.json").read_text())
    assert (out / "index.html").is_file() and (out / "report.md").is_file()
    assert results["config"]["test_env_kwargs"] == test
    assert results["trained_on"] == train and results["tested_on"] == test
    folds = [f["test_window"] for f in results["folds"]]
    validation = results["folds"][0]["validation_window"]
    assert validation[1] <= folds[0][0] < folds[0][1] <= folds[1][0] < folds[1][1]
    assert "tape window" in (out / "report.md").read_text()

    windows = {tuple(w) for w in [validation, *folds]}
    oos = {
        s: k
        for k, f in enumerate(results["folds"])
        for s in range(1_000_000 + 4 * k, 1_000_000 + 4 * (k + 1))
    }
    assert {w for w, _, _ in seen} == windows  # every block ran on its own window
    for window, start, seed in seen:
        assert window[0] <= start and start + EPISODE <= window[1]
        if seed in oos:
            assert window == tuple(folds[oos[seed]])
    # OOS episodes: the agent's and the three baselines', at 1x and 2x costs
    assert sum(seed in oos for _, _, seed in seen) == 8 * (1 + 3) * 2


def test_evaluate_subprocess_with_placebo_on_the_replayed_day(days, calibration, tmp_path):
    """The same walk-through as a user types it (``python -m trendgym evaluate``), with the
    blind placebo search scored on the same replay windows."""
    train = {"flow": calibration, **SHORT}
    test = {"replay": list(days["day2"]), **SHORT}
    argv = [sys.executable, "-m", "trendgym", "evaluate", "--env", EXEC]
    argv += ["--env-kwargs", json.dumps(train), "--test-env-kwargs", json.dumps(test)]
    argv += ["--folds", "2", "--seeds", "1", "--timesteps", "128", "--episodes", "4"]
    argv += ["--n-envs", "2", "--workers", "1", "--model-kwargs", json.dumps(TINY)]
    argv += ["--no-progress", "--out", str(tmp_path / "report")]
    argv += ["--ledger", str(tmp_path / "ledger.sqlite")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "__main__" not in done.stderr  # `python -m trendgym` runs its trials in workers
    assert "validation (every fold, its own seeds): tape window" in done.stdout
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert results["tested_on"] == test and results["placebo"]["blind"] == [True]
    assert [len(f["test_window"]) for f in results["folds"]] == [2, 2]


def test_a_window_in_the_test_kwargs_is_cut_into_the_blocks(days):
    user = [34_350.0, 34_470.0]
    config = WalkForwardConfig(
        env_id=EXEC,
        n_folds=2,
        episodes=3,
        env_kwargs=SHORT,
        test_env_kwargs=_replay(days, replay_window=user),
    )
    plans = ExecutionDomain().plan(config)
    validation = plans[0].validation.env_kwargs["replay_window"]
    folds = [p.tests[cost_label(1.0)].env_kwargs["replay_window"] for p in plans]
    assert validation == [34_350.0, 34_374.0]
    assert folds == [[34_374.0, 34_422.0], [34_422.0, 34_470.0]]
