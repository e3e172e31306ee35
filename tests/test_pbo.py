"""CSCV probability of backtest overfitting: a loop twin, noise, a real edge, edge inputs."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trendgym.evaluate import pbo


def _sharpe(x: np.ndarray) -> np.ndarray:
    sd = x.std(0, ddof=1)
    return np.array([0.0 if sd[j] == 0 else x[:, j].mean() / sd[j] for j in range(x.shape[1])])


def pbo_twin(m: np.ndarray, n_splits: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Plain loops straight from the paper (Bailey et al. 2017, section 3)."""
    t, n = m.shape
    edges = np.linspace(0, t, n_splits + 1).round().astype(int)
    logits, is_perf, oos_perf, overfit = [], [], [], []
    for chosen in combinations(range(n_splits), n_splits // 2):
        rest = [s for s in range(n_splits) if s not in chosen]
        train = np.concatenate([m[edges[s] : edges[s + 1]] for s in chosen])
        test = np.concatenate([m[edges[s] : edges[s + 1]] for s in rest])
        r, rbar = _sharpe(train), _sharpe(test)
        best = int(np.argmax(r))
        below = sum(1 for v in rbar if v < rbar[best])
        ties = sum(1 for v in rbar if v == rbar[best])
        rank = below + (ties + 1) / 2
        w = rank / (n + 1)
        logit = 0.0 if 2 * rank == n + 1 else np.log(w / (1 - w))
        # a median rank earned by a tie is not overfit (choosing a tied trial did as well)
        overfit.append(logit < 0 or (logit == 0 and ties == 1))
        logits.append(logit)
        is_perf.append(r[best])
        oos_perf.append(rbar[best])
    logits = np.array(logits)
    return float(np.mean(overfit)), logits, np.array(is_perf), np.array(oos_perf)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    t=st.integers(16, 80),
    n=st.integers(2, 8),
    s=st.sampled_from([2, 4, 6, 8]),
)
def test_matches_loop_twin(seed, t, n, s):
    if t < 2 * s:
        t = 2 * s
    m = np.random.default_rng(seed).normal(0.0, 0.01, (t, n)) + 0.05  # offset stresses centring
    res = pbo(m, n_splits=s)
    p, logits, is_perf, oos_perf = pbo_twin(m, s)
    assert res.pbo == p
    np.testing.assert_allclose(res.logits, logits, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(res.is_performance, is_perf, rtol=1e-8)
    np.testing.assert_allclose(res.oos_performance, oos_perf, rtol=1e-8)
    assert res.prob_oos_loss == float(np.mean(oos_perf < 0))


def test_noise_pbo_near_half():
    values = [
        pbo(np.random.default_rng(s).normal(0, 0.01, (480, 20)), n_splits=8).pbo for s in range(30)
    ]
    assert 0.4 < np.mean(values) < 0.6


def test_real_edge_pbo_near_zero():
    for s in range(5):
        m = np.random.default_rng(100 + s).normal(0, 0.01, (1000, 30))
        m[:, 7] += 0.004  # annualised Sharpe ~6: this trial really is best
        res = pbo(m, n_splits=16)
        assert res.pbo < 0.05
        assert res.prob_oos_loss < 0.05
        assert np.mean(res.best_trial == 7) > 0.95


def test_result_shape_and_degradation():
    m = np.random.default_rng(5).normal(0, 0.01, (320, 12))
    res = pbo(pd.DataFrame(m), n_splits=10)
    assert res.n_combinations == 252 and res.n_trials == 12 and res.n_splits == 10
    assert res.logits.shape == res.is_performance.shape == res.best_trial.shape == (252,)
    # regression of OOS on IS performance, recomputed with numpy
    slope, intercept = np.polyfit(res.is_performance, res.oos_performance, 1)
    assert res.degradation_slope == pytest.approx(slope)
    assert res.degradation_intercept == pytest.approx(intercept)
    r = np.corrcoef(res.is_performance, res.oos_performance)[0, 1]
    assert res.degradation_r2 == pytest.approx(r**2)
    # pure noise: a good in-sample Sharpe predicts nothing good out of sample
    assert res.degradation_slope < 0.2


def test_deterministic():
    m = np.random.default_rng(6).normal(0, 0.01, (200, 5))
    a, b = pbo(m, 8), pbo(m, 8)
    assert a.pbo == b.pbo and np.array_equal(a.logits, b.logits)


def test_flat_trial_ranks_as_zero_sharpe():
    m = np.random.default_rng(7).normal(0, 0.01, (200, 6))
    m[:, 2] = 0.0  # never trades
    res = pbo(m, 8)
    p, logits, _, _ = pbo_twin(m, 8)  # the twin gives a zero-variance column Sharpe 0
    assert res.pbo == p
    np.testing.assert_allclose(res.logits, logits, rtol=1e-9)
    assert np.isfinite(res.oos_performance).all()


def test_constant_nonzero_trial_refused():
    m = np.random.default_rng(8).normal(0, 0.01, (200, 4))
    m[:, 1] = 0.001
    with pytest.raises(ValueError, match="column\\) 1 has a constant non-zero return"):
        pbo(m, 8)


def test_nan_named():
    m = np.random.default_rng(9).normal(0, 0.01, (100, 4))
    m[17, 3] = np.nan
    with pytest.raises(ValueError, match="NaN at row 17, column 3"):
        pbo(m, 4)


@pytest.mark.parametrize(
    ("shape", "n_splits", "match"),
    [
        ((100, 4), 5, "n_splits"),
        ((100, 4), 0, "n_splits"),
        ((10, 4), 8, "2 \\* n_splits"),
        ((100, 1), 4, "at least 2 trials"),
        ((100,), 4, "matrix"),
        ((400, 3), 26, "n_splits"),
    ],
)
def test_bad_arguments(shape, n_splits, match):
    with pytest.raises(ValueError, match=match):
        pbo(np.random.default_rng(0).normal(size=shape), n_splits)


def test_ties_are_not_overfit():
    """Identical trials tie everywhere: the in-sample best is never worse than the others."""
    col = np.random.default_rng(11).normal(0.0005, 0.01, 400)
    res = pbo(np.column_stack([col] * 4), n_splits=8)
    assert res.pbo == 0.0 and (res.logits == 0.0).all()
    p, _, _, _ = pbo_twin(np.column_stack([col] * 4), 8)
    assert p == 0.0
    # an odd number of distinct trials: the exact median without a tie still counts
    m = np.random.default_rng(12).normal(0, 0.01, (300, 5))
    res = pbo(m, n_splits=6)
    assert res.pbo == pbo_twin(m, 6)[0]
    assert res.pbo >= float(np.mean(res.logits < 0))
