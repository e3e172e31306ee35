"""The synthetic market: seeded reproducibility, and each regime shows its signature."""

import math

import numpy as np
import pandas as pd
import pytest

from trendgym.agents.portfolio import tsmom_weights
from trendgym.envs.market import PRESETS, REGIMES, generate_market
from trendgym.envs.market.generator import PLANTED_TREND_STRENGTH, PRESET_UNIVERSE


def sharpe(x: pd.Series) -> float:
    return float(x.mean() / x.std() * math.sqrt(261))


def tsmom_pnl(prices: pd.DataFrame) -> pd.Series:
    nxt = prices.pct_change(fill_method=None).shift(-1).fillna(0.0)
    return (tsmom_weights(prices) * nxt).sum(axis=1).iloc[252:-1]


@pytest.mark.parametrize("preset", PRESETS)
def test_same_seed_same_market_bit_for_bit(preset):
    a = generate_market(preset, n_years=2, seed=5)
    b = generate_market(preset, n_years=2, seed=5)
    pd.testing.assert_frame_equal(a.prices, b.prices, check_exact=True)
    pd.testing.assert_series_equal(a.delisting_returns, b.delisting_returns, check_exact=True)
    pd.testing.assert_frame_equal(a.regimes, b.regimes)
    c = generate_market(preset, n_years=2, seed=6)
    assert not np.allclose(a.prices.fillna(0).to_numpy(), c.prices.fillna(0).to_numpy())
    assert (a.prices.fillna(1.0) > 0).all().all() and set(a.regimes["regime"]) <= set(REGIMES)
    assert (a.costs_bps > 0).all()


def test_bad_generator_arguments():
    with pytest.raises(ValueError, match="unknown preset"):
        generate_market("stocks")
    with pytest.raises(ValueError, match="n_years"):
        generate_market(n_years=0)
    with pytest.raises(ValueError, match="n_assets"):
        generate_market(n_assets=0)
    with pytest.raises(TypeError):
        generate_market(3)


@pytest.fixture(scope="module")
def futures():
    return [generate_market("futures", seed=s) for s in range(3)]


def test_tsmom_is_clearly_profitable_on_trending_futures(futures):
    srs = [sharpe(tsmom_pnl(m.prices)) for m in futures]
    years = 19.0
    assert np.mean(srs) > 3 / math.sqrt(years), srs  # three standard errors above zero


def test_tsmom_is_flat_on_a_random_walk():
    m = generate_market("random_walk", seed=0)
    years = (len(m.prices) - 253) / 261
    assert abs(sharpe(tsmom_pnl(m.prices))) < 2 / math.sqrt(years)


def _avg_corr(returns: pd.DataFrame) -> float:
    c = returns.corr().to_numpy()
    return float(np.nanmean(c[~np.eye(c.shape[0], dtype=bool)]))


def test_crises_spike_vol_and_correlation(futures):
    for m in futures:
        r = np.log(m.prices).diff().iloc[1:]
        reg = m.regimes["regime"].iloc[1:]
        calm, crisis = r[reg == "trend"], r[reg == "crisis"]
        assert (crisis.std() / calm.std()).median() > 2.0
        assert _avg_corr(crisis) > _avg_corr(calm) + 0.05


def test_momentum_crash_losers_rally_in_the_rebound(futures):
    gaps = []
    for m in futures:
        log_p = np.log(m.prices)
        past = log_p.shift(21) - log_p.shift(252)
        nxt = log_p.diff().shift(-1)
        reb = (m.regimes["regime"] == "rebound") & past.notna().all(axis=1)
        ranks = past[reb].rank(axis=1, pct=True)
        winners = nxt[reb].where(ranks > 2 / 3).mean(axis=1)
        losers = nxt[reb].where(ranks <= 1 / 3).mean(axis=1)
        gaps.append(float((losers - winners).mean() * 261))
    assert np.mean(gaps) > 0.1, gaps  # losers beat winners by > 10% a year while the rebound lasts


def test_stock_bond_correlation_flips_in_the_inflation_spell(futures):
    for m in futures:
        r = np.log(m.prices).diff().iloc[1:]
        eq = r.filter(like="EQ").mean(axis=1)
        bd = r.filter(like="BD").mean(axis=1)
        flip = m.regimes["stock_bond_corr"].iloc[1:] > 0
        assert flip.sum() > 200
        assert eq[flip].corr(bd[flip]) > 0.2 and eq[~flip].corr(bd[~flip]) < -0.1


def test_equities_list_and_delist_with_shumway_returns():
    m = generate_market("equities", seed=0)
    first = m.prices.notna().idxmax()
    assert (first > m.prices.index[0]).sum() >= 5  # staggered listings
    delisted = m.delisting_returns.dropna()
    assert 5 <= len(delisted) < len(m.prices.columns)
    assert delisted.between(-1.0, 0.0).all() and -0.6 < delisted.mean() < -0.2
    # every delisted asset really stops trading, and only those
    alive_at_end = m.prices.iloc[-1].notna()
    assert set(alive_at_end[~alive_at_end].index) == set(delisted.index)


def test_crypto_has_fat_tails_and_risk_off_correlation():
    m = generate_market("crypto", seed=0)
    r = np.log(m.prices).diff()
    z = (r / r.ewm(com=60).std().shift(1)).stack()
    assert z.kurt() > 1.0  # excess kurtosis of vol-scaled returns
    reg = m.regimes["regime"]
    assert _avg_corr(r[reg == "crisis"]) > _avg_corr(r[reg == "trend"]) + 0.1
    assert r.std().median() * math.sqrt(261) > 0.5 and m.costs_bps.min() > 5


def test_carbon_jumps_and_policy_drift():
    m = generate_market("carbon", seed=0)
    r = np.log(m.prices).diff().iloc[1:]
    assert r.kurt().median() > 3.0  # jumps
    # policy regimes: yearly drifts vary far more than a driftless walk of the same vol allows
    yearly = r.groupby(r.index.year).sum()
    assert (yearly.std() / (r.std() * math.sqrt(261))).median() > 1.1


@pytest.mark.parametrize("preset", PRESETS)
def test_trend_strength_unset_or_equal_to_the_presets_own_changes_nothing(preset):
    base = generate_market(preset, n_years=2, n_assets=5, seed=4)
    own = {"futures": 1.3, "equities": 0.5, "crypto": 1.0, "carbon": 0.3, "random_walk": 0.0}
    same = generate_market(
        preset,
        n_years=2,
        n_assets=5,
        seed=4,
        trend_strength=own.get(preset, PLANTED_TREND_STRENGTH),
    )
    pd.testing.assert_frame_equal(base.prices, same.prices, check_exact=True)
    assert PRESET_UNIVERSE[preset] in ("futures", "pit")


def test_planted_trend_edge_grows_with_its_strength():
    def tsmom_sharpe(strength: float) -> float:
        srs = []
        for seed in range(4):
            m = generate_market(
                "planted_trend", n_years=10, n_assets=4, seed=seed, trend_strength=strength
            )
            srs.append(sharpe(tsmom_pnl(m.prices)))
        return float(np.mean(srs))

    none, planted, strong = tsmom_sharpe(0.0), tsmom_sharpe(2.0), tsmom_sharpe(5.0)
    assert abs(none) < 2 / math.sqrt(9)  # no trend planted: indistinguishable from 0
    assert planted > 1.0 and strong > planted + 0.5, (none, planted, strong)
    # the same seed draws the same shocks: only the latent drift's size differs
    a = generate_market("planted_trend", n_years=2, seed=1, trend_strength=0.0)
    b = generate_market("random_walk", n_years=2, seed=1, n_assets=8)
    assert a.prices.shape == b.prices.shape


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_futures_honours_n_assets_exactly(n):
    m = generate_market("futures", n_years=1, n_assets=n, seed=0)
    assert m.prices.shape[1] == n
    assert list(m.asset_class)[: min(n, 4)] == ["equity", "bond", "fx", "commodity"][: min(n, 4)]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "2", True])
def test_bad_trend_strength_named(bad):
    with pytest.raises(ValueError, match="trend_strength"):
        generate_market("planted_trend", n_years=1, trend_strength=bad)
