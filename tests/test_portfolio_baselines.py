"""Baselines: tsmom_weights against a hand-written loop, policies act within the contract."""

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from trendgym.agents import (
    CSMOM,
    EqualWeight,
    RiskParity,
    RiskParityTrend,
    StaticTSMOM,
    portfolio_baseline_table,
    tsmom_weights,
)

SMALL = {"n_years": 3.0, "n_assets": 8, "warmup": 60}


def tsmom_loop(
    prices: np.ndarray, lookback: int, com: float, target_vol: float, periods: int
) -> np.ndarray:
    """Independent loop version of tsmom_weights (NaN = not listed; EWMA weights (1-a)^age)."""
    n_days, n = prices.shape
    a = 1 / (1 + com)
    out = np.zeros((n_days, n))
    for t in range(n_days):
        raw = np.full(n, np.nan)
        for i in range(n):
            num = den = 0.0
            for s in range(1, t + 1):
                r = prices[s, i] / prices[s - 1, i] - 1
                if not math.isnan(r):
                    num += (1 - a) ** (t - s) * r * r
                    den += (1 - a) ** (t - s)
            if (
                den == 0
                or t < lookback
                or math.isnan(prices[t - lookback, i])
                or math.isnan(prices[t, i])
            ):
                continue
            vol = math.sqrt(num / den * periods)
            if vol > 0:
                raw[i] = np.sign(prices[t, i] / prices[t - lookback, i] - 1) * target_vol / vol
        live = ~np.isnan(raw)
        if live.any():
            out[t, live] = raw[live] / live.sum()
    return out


def test_tsmom_weights_match_the_loop():
    rng = np.random.default_rng(3)
    prices = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, (60, 4)), axis=0))
    prices[:15, 2] = np.nan  # late listing
    prices[40:, 3] = np.nan  # delisted
    frame = pd.DataFrame(prices, index=pd.bdate_range("2020-01-01", periods=60))
    got = tsmom_weights(frame, lookback=10, vol_com=5, target_vol=0.4, periods=261)
    np.testing.assert_allclose(
        got.to_numpy(), tsmom_loop(prices, 10, 5, 0.4, 261), rtol=1e-10, atol=1e-14
    )
    assert (got.iloc[:10] == 0).all().all() and (got.iloc[41:, 3] == 0).all()
    row = got.iloc[30]
    assert (row != 0).sum() == 4 and np.allclose(
        np.abs(row) * 4 * 1,
        0.4 / np.sqrt((frame.pct_change(fill_method=None) ** 2).ewm(com=5).mean().iloc[30] * 261),
    )


def test_tsmom_weights_refuse_bad_arguments():
    frame = pd.DataFrame({"A": [1.0, 2.0]}, index=pd.bdate_range("2020-01-01", periods=2))
    with pytest.raises(TypeError):
        tsmom_weights(frame.to_numpy())
    with pytest.raises(ValueError, match="lookback"):
        tsmom_weights(frame, lookback=0)
    with pytest.raises(ValueError, match="target_vol"):
        tsmom_weights(frame, target_vol=-1)


@pytest.fixture(scope="module")
def env():
    return gym.make("trendgym:trendgym/Portfolio-v0", preset="equities", **SMALL)


@pytest.mark.parametrize("cls", [StaticTSMOM, CSMOM, EqualWeight, RiskParity, RiskParityTrend])
def test_policies_act_inside_the_action_space_and_skip_masked_assets(env, cls):
    policy = cls(env)  # wrapped env
    obs, _ = env.reset(seed=0)
    u = env.unwrapped
    for _ in range(50):
        action, state = policy.predict(obs)
        assert state is None and env.action_space.contains(action)
        assert np.all(action[~u.tradable[u.t]] == 0.0)
        obs, *_ = env.step(action)
    unwrapped_policy = cls(u)
    np.testing.assert_array_equal(unwrapped_policy.predict(obs)[0], policy.predict(obs)[0])


def test_static_tsmom_is_tsmom_weights_at_the_env_row(env):
    policy = StaticTSMOM(env, lookback=126)
    table = tsmom_weights(env.unwrapped.prices, lookback=126)
    obs, _ = env.reset()
    for _ in range(5):
        action, _ = policy.predict(obs)
        np.testing.assert_allclose(
            action, np.clip(table.iloc[env.unwrapped.t], -1, 1).astype(np.float32)
        )
        obs, *_ = env.step(action)
    with pytest.raises(ValueError, match="one env"):
        policy.predict(np.stack([obs, obs]))


def test_obs_policies_shapes_and_weights(env):
    obs, _ = env.reset()
    u = env.unwrapped
    while u.t < 300:  # a year of history, so that 12-1 momentum is ranked
        obs, *_ = env.step(np.zeros(8, dtype=np.float32))
    live = u.tradable[u.t]
    ew, _ = EqualWeight(env).predict(obs)
    assert ew.sum() == pytest.approx(1.0, abs=1e-6) and np.allclose(ew[live], 1 / live.sum())
    rp, _ = RiskParity(env).predict(obs)
    vol = u.features.vol[u.t]
    assert rp.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(rp[live] * vol[live], (rp[live] * vol[live])[0], rtol=1e-5)
    cs, _ = CSMOM(env, fraction=0.25).predict(obs)
    assert cs.sum() == pytest.approx(0.0, abs=1e-6) and np.abs(cs).sum() == pytest.approx(
        1.0, abs=1e-6
    )
    rank = u.features.asset[u.t, :, u.features.asset_names.index("csmom_rank")]
    assert rank[cs > 0].min() > rank[cs < 0].max()
    batch, _ = EqualWeight(env).predict(np.stack([obs, obs]))
    assert batch.shape == (2, 8)


def test_portfolio_vol_targeting_scales_weights(env):
    obs, _ = env.reset()
    base, _ = RiskParity(env).predict(obs)
    scaled, _ = RiskParity(env, portfolio_vol=0.05).predict(obs)
    u = env.unwrapped
    from trendgym.envs.portfolio.kernels import portfolio_vol_nb

    vol, rho = u.features.vol[u.t], float(u.features.avg_corr[u.t])
    assert portfolio_vol_nb(scaled.astype(float), vol, rho) == pytest.approx(0.05, rel=1e-5)
    np.testing.assert_allclose(scaled / scaled.sum(), base / base.sum(), rtol=1e-5)
    with pytest.raises(ValueError):
        RiskParity(env, portfolio_vol=0.0)
    with pytest.raises(TypeError):
        EqualWeight(gym.make("CartPole-v1"))


def test_baseline_table_has_every_baseline_and_metric():
    table = portfolio_baseline_table("futures", seed=0, n_years=3.0, n_assets=8, warmup=60)
    assert list(table.index) == [
        "StaticTSMOM",
        "CSMOM",
        "EqualWeight",
        "RiskParity",
        "RiskParityTrend",
    ]
    assert list(table.columns) == ["sharpe", "cagr", "max_drawdown", "turnover", "costs"]
    assert np.isfinite(table.to_numpy()).all() and (table["max_drawdown"] >= 0).all()
    assert table.loc["EqualWeight", "turnover"] < table.loc["CSMOM", "turnover"]
