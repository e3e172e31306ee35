"""No look-ahead: changing prices after a date changes nothing the agent saw at or before it."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from trendgym.agents.portfolio import CSMOM, RiskParityTrend, StaticTSMOM, tsmom_weights
from trendgym.envs.market import generate_market
from trendgym.envs.portfolio import PortfolioEnv

WARMUP = 40
MARKETS = {
    seed: generate_market("equities", n_years=1.6, n_assets=6, seed=seed) for seed in range(3)
}


def _perturb(prices: pd.DataFrame, k: int, noise_seed: int, delist: bool) -> pd.DataFrame:
    """Scramble every price after row k (and maybe delist one live asset right after k)."""
    out = prices.copy()
    rng = np.random.default_rng(noise_seed)
    tail = out.iloc[k + 1 :]
    out.iloc[k + 1 :] = tail * np.exp(np.cumsum(rng.normal(0, 0.05, tail.shape), axis=0))
    if delist:
        live = np.flatnonzero(prices.iloc[k].notna().to_numpy())
        out.iloc[k + 1 :, live[noise_seed % len(live)]] = np.nan
    return out


def _run_until(env, policy, k, rng_seed):
    """Observations, actions and infos at every row t <= k."""
    rng = np.random.default_rng(rng_seed)
    obs, info = env.reset(seed=0)
    seen = []
    while True:
        action = (
            rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            if policy is None
            else policy.predict(obs)[0]
        )
        seen.append((env.t, obs, action, info["nav"], info["date"]))
        if env.t == k:
            return seen
        obs, _, _, _, info = env.step(action)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(MARKETS)), st.floats(0.0, 1.0), st.integers(0, 10_000), st.booleans())
def test_future_prices_never_change_the_past(seed, where, noise_seed, delist):
    market = MARKETS[seed]
    n_days = len(market.prices)
    k = WARMUP + int(where * (n_days - 2 - WARMUP))
    original = market.prices
    perturbed = _perturb(original, k, noise_seed, delist)
    kw = {"warmup": WARMUP, "delisting_returns": market.delisting_returns}
    env_a = PortfolioEnv(prices=original, **kw)
    env_b = PortfolioEnv(prices=perturbed, **kw)

    # the precomputed features and the baseline weights agree on every row <= k
    np.testing.assert_array_equal(env_a.features.asset[: k + 1], env_b.features.asset[: k + 1])
    np.testing.assert_array_equal(env_a.features.glob[: k + 1], env_b.features.glob[: k + 1])
    pd.testing.assert_frame_equal(
        tsmom_weights(original).iloc[: k + 1], tsmom_weights(perturbed).iloc[: k + 1]
    )

    # and so do the observations, actions, NAVs and dates an agent meets along the way
    for make_policy in (None, StaticTSMOM, CSMOM, RiskParityTrend):
        pa = None if make_policy is None else make_policy(env_a)
        pb = None if make_policy is None else make_policy(env_b)
        seen_a = _run_until(env_a, pa, k, noise_seed)
        seen_b = _run_until(env_b, pb, k, noise_seed)
        assert len(seen_a) == len(seen_b) == k - WARMUP + 1
        for (ta, oa, aa, na, da), (tb, ob, ab, nb, db) in zip(seen_a, seen_b, strict=True):
            assert ta == tb and da == db and na == nb
            np.testing.assert_array_equal(oa, ob)
            np.testing.assert_array_equal(aa, ab)


def test_the_perturbation_does_change_the_future():
    """Guard against a vacuous property: the scrambled prices do move later observations."""
    market = MARKETS[0]
    k = 200
    env_a = PortfolioEnv(prices=market.prices, warmup=WARMUP)
    env_b = PortfolioEnv(prices=_perturb(market.prices, k, 1, True), warmup=WARMUP)
    assert not np.array_equal(env_a.features.asset[k + 1], env_b.features.asset[k + 1])
    assert not np.array_equal(env_a._market[k], env_b._market[k])  # the return earned over k -> k+1
