"""trendgym.evaluate.verdict: checks, the verdict, and assessment of (synthetic) walk-forward results."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trendgym.evaluate import Ledger
from trendgym.evaluate.survivorship import PlaceboResult, PlaceboRun
from trendgym.evaluate.verdict import (
    Edge,
    NotComputed,
    SelectionCost,
    assess,
    ledger_config_sharpes,
    verdict,
)
from trendgym.evaluate.walkforward import (
    Block,
    FoldPlan,
    TrialJob,
    TrialOutcome,
    WalkForwardConfig,
    WalkForwardResult,
    cost_label,
)

GOOD = dict(
    dsr=0.99,
    selection=SelectionCost(
        prob_oos_loss=0.05, is_sharpe=0.1, oos_sharpe=0.08, pbo=0.3, n_splits=70
    ),
    edge=Edge("StaticTSMOM", 2e-4, 5e-5, 0.999, 0.1, 0.05),
    baseline_name="StaticTSMOM",
    agent_sharpe=1.6,
    placebo_best=0.4,
)


def synthetic_result(
    edge: float = 0.0, n_trials: int = 4, n_obs: int = 800, seed: int = 0, n_folds: int = 2
) -> WalkForwardResult:
    """A WalkForwardResult built from random returns: trial 0 (the agent) earns `edge` per day."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2010-01-04", periods=n_obs)
    config = WalkForwardConfig(
        "trendgym/Portfolio-v0", n_folds=n_folds, seeds=tuple(range(n_trials))
    )
    one, two = cost_label(1.0), cost_label(2.0)
    base = rng.normal(0.0, 0.01, size=(n_obs, n_trials))
    base[:, 0] += edge
    trials = {one: pd.DataFrame(base, index=index, columns=[f"seed {i}" for i in range(n_trials)])}
    trials[two] = trials[one] - 1e-4
    bench = rng.normal(0.0002, 0.01, n_obs)
    baselines = {
        "EqualWeight": {
            one: pd.Series(bench, index=index),
            two: pd.Series(bench - 5e-5, index=index),
        },
        "CSMOM": {
            one: pd.Series(bench * 0.5, index=index),
            two: pd.Series(bench * 0.5 - 2e-4, index=index),
        },
    }
    edges = np.linspace(0, n_obs, n_folds + 1).astype(int)
    folds, selected = [], {}
    for k in range(n_folds):
        span = index[edges[k] : edges[k + 1]]
        folds.append(
            FoldPlan(
                fold=k,
                train_kwargs={},
                validation=Block({}),
                tests={one: Block({}), two: Block({})},
                period_index=tuple(span),
                describe={
                    "train": "t",
                    "validation": "v",
                    "test": f"{span[0].date()} .. {span[-1].date()}",
                },
            )
        )
        job = TrialJob(config.env_id, "ppo", k, 0, 0, {}, {}, None, 1, {}, {})
        selected[k] = TrialOutcome(job, {}, 0.0)
    return WalkForwardResult(
        config=config,
        domain="portfolio",
        periods_per_year=261.0,
        folds=folds,
        trials=[],
        selected=selected,
        agent_returns={s: trials[s]["seed 0"].rename("agent") for s in (one, two)},
        baseline_returns=baselines,
        trial_returns=trials,
        ledger_path=None,
        ledger_ids=[],
        wall_seconds=0.0,
    )


def fill_ledger(result: WalkForwardResult, path: Path) -> Ledger:
    """Append every trial x fold of a synthetic result, as the runner would."""
    ledger = Ledger(path)
    frame = result.trial_returns[cost_label(1.0)]
    start = 0
    for plan in result.folds:
        n = len(plan.period_index)
        for i, col in enumerate(frame.columns):
            ledger.append(
                result.config.env_id,
                agent=result.config.algo,
                experiment=result.config.experiment,
                fold=plan.fold,
                seed=i,
                params={"hparams": {}},
                oos_returns=frame[col].to_numpy()[start : start + n],
                code_version="test",
            )
        start += n
    return ledger


def placebo(best: float) -> PlaceboResult:
    return PlaceboResult(
        (
            PlaceboRun("placebo 0", {"data_seed": 1}, False, best),
            PlaceboRun("placebo 1", {"data_seed": 2}, False, best - 0.3),
        )
    )


# --------------------------------------------------------------------------- verdict()


def test_all_checks_pass_gives_passes():
    v = verdict("agent", **GOOD)
    assert v.passes and v.failed == []
    assert "PASSES" in v.headline


@pytest.mark.parametrize(
    "change, failed",
    [
        (dict(dsr=0.95), "deflated_sharpe"),
        (dict(selection=replace(GOOD["selection"], prob_oos_loss=0.21)), "selection"),
        (dict(edge=replace(GOOD["edge"], psr=0.95)), "beats_baseline_2x"),
        (dict(placebo_best=1.6), "placebo"),
    ],
)
def test_each_threshold_fails_alone_and_is_named(change, failed):
    v = verdict("agent", **{**GOOD, **change})
    assert not v.passes
    assert v.failed == [failed]
    assert failed in v.headline


def test_uncomputable_statistics_fail_with_their_reason():
    v = verdict(
        "agent",
        **{
            **GOOD,
            "selection": NotComputed("1 trial"),
            "dsr": float("nan"),
            "placebo_best": NotComputed("no placebo"),
        },
    )
    assert set(v.failed) == {"selection", "deflated_sharpe", "placebo"}
    details = {c.name: c.detail for c in v.checks}
    assert "1 trial" in details["selection"] and "no placebo" in details["placebo"]
    assert "nan" in details["deflated_sharpe"]


def test_warnings_never_gate():
    from trendgym.evaluate.verdict import Check

    warn = Check("survivorship_bias", False, 0.3, "<= 0.05", "overstated", required=False)
    v = verdict("agent", **GOOD, warnings=[warn])
    assert v.passes and v.warnings == ["survivorship_bias"]


# --------------------------------------------------------------------------- ledger counting


def test_ledger_counts_distinct_configurations_once(tmp_path):
    res = synthetic_result(n_trials=3)
    ledger = fill_ledger(res, tmp_path / "l.sqlite")
    key = dict(env_id=res.config.env_id, agent="ppo", experiment=res.config.experiment)
    first = ledger_config_sharpes(ledger, **key)
    fill_ledger(res, tmp_path / "l.sqlite")  # a deterministic rerun adds rows, not trials
    assert ledger.n_trials(**key) == 12
    assert ledger_config_sharpes(ledger, **key) == first
    assert len(first) == 3
    ledger.append(
        res.config.env_id,
        agent="ppo",
        experiment=res.config.experiment,
        fold=0,
        seed=9,
        params={"hparams": {}},
        oos_returns=np.r_[0.01, -0.01, 0.02],
        code_version="test",
    )
    assert len(ledger_config_sharpes(ledger, **key)) == 4  # a new seed is a new trial
    # stitched per-period Sharpe of seed 0 equals the Sharpe of its full column
    col = res.trial_returns[cost_label(1.0)]["seed 0"].to_numpy()
    values = sorted(first.values())
    assert any(math.isclose(v, col.mean() / col.std(ddof=1), rel_tol=1e-12) for v in values)


# --------------------------------------------------------------------------- assess()


def test_real_edge_passes_everything(tmp_path):
    res = synthetic_result(edge=0.003, n_trials=6)
    ledger = fill_ledger(res, tmp_path / "l.sqlite")
    a = assess(res, ledger=ledger, placebo=placebo(0.5))
    assert a.verdict.passes, a.verdict.headline
    assert a.dsr["n_trials"] == 6 and a.dsr["value"] > 0.95
    assert a.pbo is not None and a.pbo.pbo < 0.5
    assert a.baseline_name == "EqualWeight"  # the best baseline at 2x costs
    words = {c.name: c.detail for c in a.verdict.checks}
    assert "choosing among these trials costs little" in words["selection"]
    assert "significant" in words["beats_baseline_2x"]
    assert "fresh ledger" in words["deflated_sharpe"] and "N = 6" in words["deflated_sharpe"]


def test_noise_agent_fails_and_names_checks(tmp_path):
    res = synthetic_result(edge=0.0, n_trials=6, seed=3)
    ledger = fill_ledger(res, tmp_path / "l.sqlite")
    a = assess(res, ledger=ledger, placebo=placebo(2.0))
    assert not a.verdict.passes
    assert "deflated_sharpe" in a.verdict.failed and "placebo" in a.verdict.failed


def test_missing_ledger_placebo_and_trials_fail_not_flatter():
    res = synthetic_result(edge=0.003, n_trials=1)
    a = assess(res, ledger=None, placebo=None)
    assert set(a.verdict.failed) >= {"deflated_sharpe", "selection", "placebo"}
    assert "ledger" in a.dsr["reason"]
    assert "trial" in a.pbo_reason


def test_one_trial_in_ledger_cannot_deflate(tmp_path):
    res = synthetic_result(edge=0.003, n_trials=1)
    ledger = fill_ledger(res, tmp_path / "l.sqlite")
    a = assess(res, ledger=ledger, placebo=placebo(0.1))
    assert "deflated_sharpe" in a.verdict.failed
    assert "needs >= 2" in a.dsr["reason"]


def test_named_baseline_must_exist():
    res = synthetic_result(edge=0.003)
    res.config = WalkForwardConfig(res.config.env_id, baseline="VWAP")
    a = assess(res)
    check = {c.name: c for c in a.verdict.checks}["beats_baseline_2x"]
    assert not check.passed and "VWAP" in check.detail


def test_assessment_is_deterministic(tmp_path):
    res = synthetic_result(edge=0.001, n_trials=4)
    l1 = fill_ledger(res, tmp_path / "a.sqlite")
    l2 = fill_ledger(res, tmp_path / "b.sqlite")
    a, b = (
        assess(res, ledger=l1, placebo=placebo(0.2)),
        assess(res, ledger=l2, placebo=placebo(0.2)),
    )
    assert {k: v for k, v in a.dsr.items() if k != "ledger"} == {
        k: v for k, v in b.dsr.items() if k != "ledger"
    }
    assert a.pbo.pbo == b.pbo.pbo
    pd.testing.assert_frame_equal(a.performance, b.performance)
