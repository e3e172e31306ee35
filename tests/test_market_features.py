"""Feature kernels against pandas and a pure-Python twin; features are finite, bounded, masked."""

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trendgym.envs.market import (
    compute_features,
    ewm_mean_nb,
    generate_market,
    tradable_mask,
    validate_prices,
)
from trendgym.envs.market.features import ASSET_BOUNDS, GLOBAL_BOUNDS


def ewm_twin(column, com):
    """Pure-Python twin of ewm_mean_nb for one column (pandas adjust=True, ignore_na=False)."""
    alpha = 1 / (1 + com)
    out, num, den = [], 0.0, 0.0
    for x in column:
        num, den = num * (1 - alpha), den * (1 - alpha)
        if math.isnan(x):  # a gap decays both sums alike: the mean holds
            out.append(out[-1] if out else math.nan)
            continue
        num, den = num + x, den + 1.0
        out.append(num / den)
    return out


values = arrays(
    np.float64,
    st.tuples(st.integers(1, 40), st.integers(1, 3)),
    elements=st.one_of(st.floats(-100, 100), st.just(math.nan)),
)


@settings(max_examples=150, deadline=None)
@given(values, st.floats(0.0, 50.0))
def test_ewm_kernel_matches_pandas_and_twin(x, com):
    got = ewm_mean_nb(x, com)
    expected = pd.DataFrame(x).ewm(com=com).mean().to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    for j in range(x.shape[1]):
        np.testing.assert_allclose(got[:, j], ewm_twin(x[:, j], com), rtol=1e-9, atol=1e-9)


def _features(preset="equities", **kw):
    m = generate_market(preset, n_years=3, seed=1, **kw)
    prices = validate_prices(m.prices).to_numpy()
    tradable = tradable_mask(prices, 20)
    return prices, tradable, compute_features(prices, tradable)


def test_features_are_finite_bounded_and_masked():
    prices, tradable, f = _features()
    assert f.asset.shape == (*prices.shape, len(f.asset_names)) and f.asset.dtype == np.float32
    assert np.isfinite(f.asset).all() and np.isfinite(f.glob).all()
    for k, name in enumerate(f.asset_names):
        lo, hi = ASSET_BOUNDS[name]
        assert f.asset[:, :, k].min() >= lo and f.asset[:, :, k].max() <= hi
    for k, (lo, hi) in enumerate(GLOBAL_BOUNDS.values()):
        assert f.glob[:, k].min() >= lo and f.glob[:, k].max() <= hi
    assert np.all(f.asset[~tradable] == 0.0)
    assert (~tradable).any() and tradable.any()


def test_vol_feature_is_the_tsmom_ex_ante_vol():
    prices, tradable, f = _features("futures")
    frame = pd.DataFrame(prices)
    ref = np.sqrt((frame.pct_change() ** 2).ewm(com=60).mean() * 261).to_numpy()
    np.testing.assert_allclose(f.vol[tradable], ref[tradable], rtol=1e-10)
    k = f.asset_names.index("vol")
    np.testing.assert_allclose(f.asset[:, :, k][tradable], ref[tradable], rtol=1e-6)


def test_ret_12m_is_vol_normalised_log_return():
    prices, tradable, f = _features("futures")
    k = f.asset_names.index("ret_12m")
    t = 400
    vol_d = f.vol[t] / math.sqrt(261)
    expected = np.log(prices[t] / prices[t - 252]) / (vol_d * math.sqrt(252))
    np.testing.assert_allclose(f.asset[t, :, k], np.clip(expected, -10, 10), rtol=1e-5)


def test_csmom_rank_orders_12_1_momentum():
    prices, tradable, f = _features("futures")
    k = f.asset_names.index("csmom_rank")
    t = 500
    mom = np.log(prices[t - 21] / prices[t - 252])
    assert np.array_equal(np.argsort(f.asset[t, :, k]), np.argsort(mom))
    assert f.asset[t, :, k].min() > -1 and f.asset[t, :, k].max() < 1


def test_avg_corr_tracks_the_true_correlation():
    rng = np.random.default_rng(0)
    n_days, n = 1500, 10
    for rho in (0.0, 0.6):
        common = rng.standard_normal((n_days, 1))
        z = math.sqrt(rho) * common + math.sqrt(1 - rho) * rng.standard_normal((n_days, n))
        prices = 100 * np.exp(np.cumsum(0.01 * z, axis=0))
        f = compute_features(prices, np.ones_like(prices, dtype=bool))
        assert abs(f.avg_corr[200:].mean() - rho) < 0.08, (rho, f.avg_corr[200:].mean())


def test_market_drawdown_and_regime_similarity():
    prices = np.column_stack([np.r_[np.full(300, 100.0), np.linspace(100, 50, 100)]] * 2)
    prices = prices * np.exp(np.random.default_rng(1).normal(0, 1e-3, prices.shape))
    f = compute_features(prices, np.ones_like(prices, dtype=bool))
    dd = f.glob[:, f.global_names.index("market_drawdown")]
    assert dd[:299].min() > -0.01 and dd[-1] < -0.45
    sim = f.glob[:, f.global_names.index("regime_similarity")]
    assert np.all(sim[:63] == 0.0) and sim[250] > sim[-1]  # the crash is unlike anything before


def nearest_state_twin(state, std, min_age, stride):
    """Pure-Python twin of nearest_state_distance_nb."""
    out = []
    for t in range(len(state)):
        cands = [j for j in range(0, t - min_age + 1, stride)]
        if t < min_age or not cands:
            out.append(-1.0)
            continue
        out.append(
            min(
                math.sqrt(
                    sum(
                        ((state[j][k] - state[t][k]) / std[t][k]) ** 2 for k in range(len(state[t]))
                    )
                )
                for j in cands
            )
        )
    return out


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 3)), elements=st.floats(-5, 5)),
    st.integers(0, 6),
    st.integers(1, 4),
)
def test_nearest_state_kernel_matches_twin(state, min_age, stride):
    from trendgym.envs.market.features import nearest_state_distance_nb

    std = np.abs(state) + 0.5
    got = nearest_state_distance_nb(state, std, min_age, stride)
    np.testing.assert_allclose(
        got, nearest_state_twin(state, std, min_age, stride), rtol=1e-12, atol=1e-12
    )
