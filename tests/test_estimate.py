"""The arithmetic of the wall time ``trendgym evaluate`` announces (not the wall time itself)."""

from __future__ import annotations

import math

import pytest

from trendgym.evaluate.walkforward import WalkForwardConfig, domain_for
from trendgym.evaluate.walkforward.estimate import (
    N_BASELINES,
    STARTUP_SECONDS,
    expected_seconds,
    search_costs,
    worker_count,
)

EXECUTION = "trendgym/Execution-v0"
PORTFOLIO = "trendgym/Portfolio-v0"


def test_worker_count_is_the_workers_at_most_one_per_trial():
    assert worker_count(4, 2) == 2
    assert worker_count(3, 8) == 3
    assert worker_count(4, 0) == 1  # in process: one at a time
    assert worker_count(1, None) == 1


def test_execution_search_native_and_its_blind_placebo_stepped_one_by_one():
    config = WalkForwardConfig(EXECUTION, seeds=(0, 1), timesteps=60_000, episodes=200, n_envs=8)
    domain = domain_for(EXECUTION)
    real, placebo = search_costs(config, workers=2)
    assert (real.trials, real.waves) == (4, 2) and (placebo.trials, placebo.waves) == (4, 2)
    assert real.train_seconds == pytest.approx(60_000 / domain.native_steps_per_second)
    # the placebo's noise wraps single envs, so it cannot use the native batched env
    assert placebo.train_seconds == pytest.approx(60_000 / domain.train_steps_per_second)
    scored = (2 + 0.2) * 200  # oos@1x, oos@2x and the validation share of one OOS block
    assert real.score_seconds == pytest.approx(scored * domain.score_seconds_per_period)
    assert real.seconds == pytest.approx(
        STARTUP_SECONDS + 2 * (real.train_seconds + real.score_seconds)
    )
    baselines = N_BASELINES * 2 * 400 * domain.score_seconds_per_period
    assert expected_seconds(config, workers=2) == pytest.approx(
        baselines + real.seconds + placebo.seconds
    )
    alone = expected_seconds(config, workers=2, placebo=False)
    assert alone == pytest.approx(baselines + real.seconds)


def test_one_env_per_trial_trains_at_the_one_env_rate_and_workers_split_the_waves():
    one = WalkForwardConfig(EXECUTION, seeds=(0, 1, 2), timesteps=10_000, episodes=20)
    domain = domain_for(EXECUTION)
    (real,) = search_costs(one, workers=0, placebo=False)
    assert real.waves == 6 and real.train_seconds == pytest.approx(
        10_000 / domain.train_steps_per_second
    )
    (spread,) = search_costs(one, workers=4, placebo=False)
    assert spread.waves == math.ceil(6 / 4)
    # twice the steps: twice the training, the same scoring
    (longer,) = search_costs(
        WalkForwardConfig(EXECUTION, seeds=(0, 1, 2), timesteps=20_000, episodes=20),
        workers=0,
        placebo=False,
    )
    assert longer.train_seconds == pytest.approx(2 * real.train_seconds)
    assert longer.score_seconds == pytest.approx(real.score_seconds)


def test_portfolio_placebo_markets_are_searches_of_their_own():
    config = WalkForwardConfig(
        PORTFOLIO,
        seeds=(0, 1),
        timesteps=50_000,
        env_kwargs={"preset": "planted_trend", "n_years": 12},
        placebo_markets=2,
        n_envs=8,
    )
    domain = domain_for(PORTFOLIO)
    costs = search_costs(config, workers=2)
    assert len(costs) == 3  # the search and two random-walk markets
    for c in costs:  # placebo markets are not blind: native too
        assert c.train_seconds == pytest.approx(50_000 / domain.native_steps_per_second)
        assert (c.trials, c.waves) == (4, 2)
    assert len(search_costs(config, workers=2, placebo=False)) == 1
