"""trendgym.evaluate.walkforward: walk-forward over real (tiny) PPO trainings on Portfolio-v0.

One search (2 folds x 2 seeds, 256 steps, net_arch=[8]) runs in worker processes and again in
this process; the tests read both.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from trendgym.evaluate import Ledger
from trendgym.evaluate.walkforward import (
    WalkForwardConfig,
    cost_label,
    domain_for,
    run_walk_forward,
    safe_sharpe,
)

ENV_KWARGS = {"preset": "futures", "n_years": 5, "n_assets": 4, "data_seed": 3}
MODEL_KWARGS = {"n_steps": 128, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}


def tiny_config(**kw) -> WalkForwardConfig:
    base = dict(
        env_id="trendgym/Portfolio-v0",
        n_folds=2,
        seeds=(0, 1),
        timesteps=256,
        env_kwargs=ENV_KWARGS,
        model_kwargs=MODEL_KWARGS,
        extractor=None,
        train_window=120,
    )
    return WalkForwardConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def searches(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runner")
    pool = run_walk_forward(tiny_config(), ledger=tmp / "pool.sqlite", workers=2, progress=False)
    inproc = run_walk_forward(
        tiny_config(), ledger=tmp / "inproc.sqlite", workers=0, progress=False
    )
    return pool, inproc, tmp


def test_every_trial_is_in_the_ledger(searches):
    pool, _, tmp = searches
    ledger = Ledger(tmp / "pool.sqlite")
    df = ledger.trials(with_returns=True)
    assert len(df) == 4 == len(pool.ledger_ids)
    assert sorted(zip(df["fold"], df["seed"], strict=True)) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for _, row in df.iterrows():
        block = pool.folds[int(row["fold"])].period_index
        assert row["oos_returns"].size == len(block)
        assert "validation" in row["is_metrics"] and row["oos_metrics"]["oos@2x"]["n"] == len(block)


def test_folds_train_on_the_past_only(searches):
    pool, _, _ = searches
    previous_end = None
    for plan in pool.folds:
        train_end = pd.Timestamp(plan.train_kwargs["end"])
        val = plan.validation.env_kwargs
        test = plan.tests[cost_label(1.0)].env_kwargs
        # training's last return is realised no later than the validation block's first close
        assert train_end <= pd.Timestamp(val["start"]) < pd.Timestamp(val["end"])
        assert pd.Timestamp(val["end"]) <= pd.Timestamp(test["start"])
        assert plan.train_kwargs["window"] <= 120
        if previous_end is not None:  # OOS blocks tile forward without overlap
            assert pd.Timestamp(test["start"]) == previous_end
        previous_end = pd.Timestamp(test["end"])


def test_stitched_oos_and_baselines_share_the_same_periods(searches):
    pool, _, _ = searches
    n = sum(len(p.period_index) for p in pool.folds)
    for s in (cost_label(1.0), cost_label(2.0)):
        agent = pool.agent_returns[s]
        assert len(agent) == n and agent.index.is_monotonic_increasing and agent.index.is_unique
        assert set(pool.baseline_returns) == {
            "StaticTSMOM",
            "CSMOM",
            "EqualWeight",
            "RiskParity",
            "RiskParityTrend",
        }
        for per in pool.baseline_returns.values():
            assert per[s].index.equals(agent.index)
        assert pool.trial_returns[s].shape == (n, 2)


def test_doubling_costs_never_helps_a_baseline(searches):
    pool, _, _ = searches
    for name, per in pool.baseline_returns.items():
        one, two = per[cost_label(1.0)].to_numpy(), per[cost_label(2.0)].to_numpy()
        assert np.prod(1 + two) <= np.prod(1 + one), name
        assert (two <= one + 1e-15).mean() > 0.99, name


def test_selection_uses_the_validation_tail_only(searches):
    pool, _, _ = searches
    for fold, chosen in pool.selected.items():
        candidates = [o for o in pool.trials if o.job.fold == fold]
        best = max(safe_sharpe(o.returns["validation"]) for o in candidates)
        assert safe_sharpe(chosen.returns["validation"]) == best
    stitched = np.concatenate([pool.selected[p.fold].returns[cost_label(1.0)] for p in pool.folds])
    np.testing.assert_array_equal(pool.agent_returns[cost_label(1.0)].to_numpy(), stitched)


def test_worker_processes_and_in_process_agree_bit_for_bit(searches):
    pool, inproc, _ = searches
    assert [o.key for o in pool.trials] == [o.key for o in inproc.trials]
    for a, b in zip(pool.trials, inproc.trials, strict=True):
        for name in a.returns:
            np.testing.assert_array_equal(a.returns[name], b.returns[name])
    for s in pool.agent_returns:
        pd.testing.assert_series_equal(pool.agent_returns[s], inproc.agent_returns[s])


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="cost_multipliers"):
        tiny_config(cost_multipliers=(1.0, 3.0))
    with pytest.raises(ValueError, match="distinct"):
        tiny_config(seeds=(1, 1))
    with pytest.raises(TypeError, match="JSON"):
        tiny_config(env_kwargs={"prices": pd.DataFrame()})
    with pytest.raises(ValueError, match="no walk-forward domain"):
        domain_for("CartPole-v1")
    with pytest.raises(ValueError, match="validation_fraction"):
        tiny_config(validation_fraction=1.0)


def test_a_too_short_training_span_is_refused():
    short = {**ENV_KWARGS, "n_years": 1.2}
    with pytest.raises(ValueError, match="too short"):
        cfg = tiny_config(env_kwargs=short, validation_fraction=0.99)
        domain_for(cfg.env_id).plan(cfg)
    with pytest.raises(ValueError, match="do not fit"):
        cfg = tiny_config(env_kwargs=short, n_folds=200)
        domain_for(cfg.env_id).plan(cfg)


def test_placebo_markets_keep_shape_and_costs_and_are_never_the_test_market():
    cfg = tiny_config(placebo_markets=3)
    domain = domain_for(cfg.env_id)
    placebos = domain.placebos(cfg)
    env = domain._universe(cfg.env_kwargs)
    seeds = set()
    for p in placebos:
        kwargs = p.env_kwargs
        assert p.experiment == f"{cfg.experiment}/placebo" and not p.blind
        assert kwargs["preset"] == "random_walk" and kwargs["n_assets"] == env.prices.shape[1]
        assert list(kwargs["costs_bps"].values()) == [float(c) for c in env.costs_bps]
        placebo_env = domain._universe(kwargs)
        assert placebo_env.prices.shape == env.prices.shape
        np.testing.assert_array_equal(placebo_env.costs_bps, env.costs_bps)
        seeds.add(kwargs["data_seed"])
    assert len(seeds) == 3 and cfg.env_kwargs["data_seed"] not in seeds
    # on a random-walk test market the placebos are other random walks, never the same one
    rw = tiny_config(
        env_kwargs={"preset": "random_walk", "n_years": 5, "n_assets": 4, "data_seed": 3}
    )
    test_prices = domain._universe(rw.env_kwargs).prices
    for p in domain.placebos(rw):
        assert not np.allclose(
            domain._universe(p.env_kwargs).prices.to_numpy(), test_prices.to_numpy()
        )


def test_execution_placebo_is_the_same_search_blind():
    cfg = WalkForwardConfig("trendgym/Execution-v0", env_kwargs={"horizon": 10})
    (placebo,) = domain_for(cfg.env_id).placebos(cfg)
    assert placebo.blind and placebo.env_kwargs == cfg.env_kwargs
    assert placebo.experiment == "walk-forward/placebo"


def test_missing_ray_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ImportError, match=r"pip install 'trendgym\[ray\]'"):
        run_walk_forward(tiny_config(), ledger=None, ray_address="local", progress=False)


def test_execution_domain_holds_out_disjoint_episode_seeds():
    cfg = WalkForwardConfig(
        "trendgym/Execution-v0", n_folds=3, episodes=5, env_kwargs={"horizon": 10}
    )
    domain = domain_for(cfg.env_id)
    plans = domain.plan(cfg)
    seen: set[int] = set()
    for plan in plans:
        blocks = [plan.validation, *plan.tests.values()]
        test_seeds = set(plan.tests[cost_label(1.0)].episode_seeds)
        assert len(test_seeds) == 5 and not test_seeds & seen
        assert not test_seeds & set(plan.validation.episode_seeds)
        seen |= test_seeds | set(plan.validation.episode_seeds)
        fee1 = plan.tests[cost_label(1.0)].env_kwargs["fee_bps"]
        assert plan.tests[cost_label(2.0)].env_kwargs["fee_bps"] == 2 * fee1 and len(blocks) == 3
    from trendgym.evaluate.walkforward import make_env

    env = make_env(cfg.env_id, plans[0].tests[cost_label(1.0)].env_kwargs)
    twap = domain.baselines(env)["TWAP"]
    r = domain.episode_returns(env, twap, 1_000_000)
    _, info = env.reset(seed=1_000_000)
    done = False
    obs = env.reset(seed=1_000_000)[0]
    while not done:
        obs, _, terminated, truncated, info = env.step(twap.predict(obs)[0])
        done = terminated or truncated
    assert r.shape == (1,) and r[0] == -info["shortfall_bps"] * 1e-4


def test_execution_search_is_scored_paired_and_its_blind_placebo_runs(tmp_path):
    """A tiny real execution search: every trial is recorded as its per-episode advantage
    over the best baseline, and the blind placebo trains and scores on noise observations
    against the same baseline returns."""
    from trendgym.evaluate.survivorship import placebo_search

    cfg = WalkForwardConfig(
        "trendgym/Execution-v0",
        n_folds=2,
        seeds=(0, 1),
        timesteps=128,
        episodes=4,
        env_kwargs={"horizon": 10},
        model_kwargs=MODEL_KWARGS,
        extractor=None,
    )
    ledger = Ledger(tmp_path / "x.sqlite")
    res = run_walk_forward(cfg, ledger=ledger, workers=0, progress=False)
    one = cost_label(1.0)
    assert res.paired and res.hurdle in res.baseline_returns
    means = {n: per[one].mean() for n, per in res.baseline_returns.items()}
    assert res.hurdle == max(means, key=means.get)  # lowest mean shortfall
    rows = ledger.trials(with_returns=True)
    hurdle = res.baseline_returns[res.hurdle][one].to_numpy()
    assert len(rows) == len(res.trials) == 4
    for o in res.trials:
        fold = o.job.fold
        expect = o.returns[one] - hurdle[fold * 4 : (fold + 1) * 4]
        got = rows[(rows["fold"] == fold) & (rows["seed"] == o.job.seed)]["oos_returns"].iloc[0]
        np.testing.assert_allclose(got, expect)
    placebo = placebo_search(cfg, real=res, ledger=ledger, workers=0, progress=False)
    (run,) = placebo.runs
    assert run.blind and run.result.baseline_returns is res.baseline_returns
    assert "blind observations" in placebo.describe
    assert ledger.n_trials(experiment="walk-forward/placebo") == 4


def test_trials_train_on_the_native_vector_env_when_there_is_one(tmp_path):
    from dataclasses import replace

    from trendgym.evaluate.walkforward.loop import trial_jobs
    from trendgym.evaluate.walkforward.trial import run_trial, training_vec_env

    cfg = tiny_config(n_envs=2, timesteps=128)
    plans = domain_for(cfg.env_id).plan(cfg)
    job = trial_jobs(cfg, plans, tmp_path)[0]
    assert job.n_envs == 2 and training_vec_env(job) == "native"
    assert training_vec_env(replace(job, blind=True)) == "dummy"
    assert training_vec_env(replace(job, n_envs=1)) == "dummy"
    outcome = run_trial(job)
    saved = json.loads((tmp_path / "fold0-hp0-s0" / "config.json").read_text())
    assert saved["vec_env"] == "native" and saved["n_envs"] == 2
    assert set(outcome.returns) == {"validation", cost_label(1.0), cost_label(2.0)}
