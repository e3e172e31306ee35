"""Statistics against published values, closed forms and edge inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from trendgym.evaluate import (
    annualise_sharpe,
    annualised_sharpe_ratio,
    calmar_ratio,
    deflated_sharpe_ratio,
    drawdown,
    expected_max_sharpe,
    interquartile_mean,
    max_drawdown,
    min_track_record_length,
    per_period_sharpe,
    probabilistic_sharpe_ratio,
    return_moments,
    seed_dispersion,
    sharpe_ratio,
    shortfall_summary,
    sortino_ratio,
    turnover,
)

# ----------------------------------------------------------------- published values


def test_psr_published_value():
    # Bailey & López de Prado (2012): PSR(1.14, 1, 250) = 0.95727 under normal returns.
    # The sqrt(n_obs - 1) convention reproduces it; sqrt(n_obs) would give 0.95759.
    assert probabilistic_sharpe_ratio(1.14, 1.0, 250) == pytest.approx(0.95727, abs=2e-5)


def test_expected_max_of_standard_normals():
    assert expected_max_sharpe(1.0, 10) == pytest.approx(1.5746, abs=1e-4)
    assert expected_max_sharpe(1.0, 100) == pytest.approx(2.5306, abs=1e-4)


def test_expected_max_scales_with_sqrt_variance():
    assert expected_max_sharpe(0.04, 100) == pytest.approx(0.2 * expected_max_sharpe(1.0, 100))


def test_expected_max_close_to_monte_carlo():
    # The Euler-Mascheroni approximation tracks the simulated max of N standard normals.
    rng = np.random.default_rng(0)
    sim = rng.standard_normal((20_000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(1.0, 100) == pytest.approx(sim, abs=0.03)


def test_dsr_worked_example():
    # Bailey & López de Prado (2014): N = 100, V[SR] = 0.5 and SR = 2.5 annualised, T = 1250
    # daily observations, 250 per year, skew -3, kurtosis 10 -> DSR = 0.9004.
    periods = 250
    sr = per_period_sharpe(2.5, periods)
    sr_variance = 0.5 / periods  # Var scales with the square of the Sharpe's scale
    dsr = deflated_sharpe_ratio(sr, sr_variance, 100, 1250, skew=-3.0, kurtosis=10.0)
    assert dsr == pytest.approx(0.9004, abs=1e-4)
    # the benchmark it deflates against: E[max SR] = 0.1132 per day, 1.7894 a year
    sr0 = expected_max_sharpe(sr_variance, 100)
    assert annualise_sharpe(sr0, periods) == pytest.approx(1.7894, abs=1e-4)


def test_min_track_record_length_published_value():
    assert min_track_record_length(1.14, 1.0, alpha=0.05) == pytest.approx(228.73, abs=0.01)


def test_min_trl_is_where_psr_reaches_confidence():
    n = min_track_record_length(0.1, 0.0, skew=-1.0, kurtosis=6.0, alpha=0.05)
    assert probabilistic_sharpe_ratio(0.1, 0.0, math.ceil(n), -1.0, 6.0) >= 0.95
    assert probabilistic_sharpe_ratio(0.1, 0.0, math.floor(n) - 1, -1.0, 6.0) < 0.95
    assert min_track_record_length(0.1, 0.2) == math.inf


def test_dsr_is_psr_against_expected_max():
    v, n_trials, n_obs = 0.01, 37, 500
    assert deflated_sharpe_ratio(0.2, v, n_trials, n_obs) == pytest.approx(
        probabilistic_sharpe_ratio(0.2, expected_max_sharpe(v, n_trials), n_obs)
    )
    # one trial: no selection, DSR = PSR against zero
    assert deflated_sharpe_ratio(0.1, v, 1, n_obs) == probabilistic_sharpe_ratio(0.1, 0.0, n_obs)


def test_more_trials_deflate_more():
    values = [deflated_sharpe_ratio(0.1, 0.002, n, 1000) for n in (1, 2, 10, 100, 1000)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


def test_negative_skew_fat_tails_lower_psr():
    assert probabilistic_sharpe_ratio(0.1, 0.0, 500, -2.0, 9.0) < probabilistic_sharpe_ratio(
        0.1, 0.0, 500
    )


# ----------------------------------------------------------------- Sharpe family


def test_sharpe_matches_numpy_and_annualises():
    r = np.random.default_rng(1).normal(0.001, 0.01, 500)
    sr = sharpe_ratio(r)
    assert sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert annualised_sharpe_ratio(r, 252) == pytest.approx(sr * math.sqrt(252))
    assert per_period_sharpe(annualise_sharpe(sr, 252), 252) == pytest.approx(sr)
    assert sharpe_ratio(pd.Series(r), risk_free=0.001) == pytest.approx(
        (r - 0.001).mean() / r.std(ddof=1)
    )


def test_return_moments_feed_psr():
    r = np.random.default_rng(2).standard_t(4, 2000) * 0.01
    m = return_moments(r)
    assert m.n_obs == 2000
    assert m.kurtosis > 3.0  # Student t(4) has fat tails
    from scipy.stats import kurtosis, skew

    assert m.skew == pytest.approx(skew(r))
    assert m.kurtosis == pytest.approx(kurtosis(r, fisher=False))


def test_sortino_and_calmar_closed_forms():
    r = np.array([0.02, -0.01, 0.03, -0.02, 0.01])
    downside = math.sqrt((0.01**2 + 0.02**2) / 5)
    assert sortino_ratio(r) == pytest.approx(r.mean() / downside)
    assert sortino_ratio(r, periods_per_year=252) == pytest.approx(
        r.mean() / downside * math.sqrt(252)
    )
    wealth = np.cumprod(1 + r)
    mdd = 1 - (1.02 * 0.99 * 1.03 * 0.98) / (1.02 * 0.99 * 1.03)
    assert max_drawdown(r) == pytest.approx(mdd)
    annual = wealth[-1] ** (252 / 5) - 1
    assert calmar_ratio(r, 252) == pytest.approx(annual / mdd)


def test_drawdown_additive_and_compound():
    r = np.array([0.1, -0.5, 0.2])
    assert drawdown(r).tolist() == pytest.approx([0.0, 0.5, 1 - 1.1 * 0.5 * 1.2 / 1.1])
    assert drawdown(r, compound=False).tolist() == pytest.approx([0.0, 0.5, 0.3])
    assert max_drawdown([0.01, 0.02]) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.5, 0.5), min_size=1, max_size=60))
def test_drawdown_bounded(values):
    dd = drawdown(values)
    assert (dd >= 0).all() and (dd <= 1).all()


def test_turnover():
    w = np.array([[0.5, 0.5], [0.5, -0.5], [0.0, 0.0]])
    assert turnover(w).tolist() == [1.0, 1.0, 1.0]
    assert turnover(w, initial=np.array([0.5, 0.5])).tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="NaN"):
        turnover(np.array([[np.nan, 0.0]]))


def test_shortfall_summary():
    x = np.random.default_rng(3).normal(5.0, 2.0, 400)
    s = shortfall_summary(x, quantiles=(0.1, 0.5, 0.9))
    assert s.n == 400 and s.mean == pytest.approx(x.mean())
    assert s.stderr == pytest.approx(x.std(ddof=1) / 20.0)
    assert s.quantiles[0.5] == pytest.approx(np.median(x))
    lo, hi = s.ci(0.95)
    assert hi - lo == pytest.approx(2 * norm.ppf(0.975) * s.stderr)


# ----------------------------------------------------------------- seeds


def test_iqm_trims_quarters():
    assert interquartile_mean([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)


def test_seed_dispersion_deterministic_and_bracketing():
    scores = np.random.default_rng(4).normal(1.0, 0.3, 10)
    a, b = seed_dispersion(scores, seed=7), seed_dispersion(scores, seed=7)
    assert a == b
    assert a.ci_low <= a.iqm <= a.ci_high
    assert a.best == scores.max() and a.median == pytest.approx(np.median(scores))
    assert a.best_minus_median == pytest.approx(scores.max() - np.median(scores))
    assert seed_dispersion(scores, seed=8) != a  # the bootstrap really resamples


# ----------------------------------------------------------------- edge inputs


@pytest.mark.parametrize(
    "fn", [sharpe_ratio, sortino_ratio, max_drawdown, calmar_ratio, return_moments, seed_dispersion]
)
def test_nan_refused_by_name(fn):
    with pytest.raises(ValueError, match="contains NaN at position 2"):
        fn(np.array([0.01, 0.02, np.nan, 0.0]))


def test_zero_variance_explicit():
    assert sharpe_ratio(np.zeros(10)) == 0.0
    assert return_moments(np.zeros(10)).kurtosis == 3.0
    with pytest.raises(ValueError, match="zero variance"):
        sharpe_ratio(np.full(10, 0.01))
    assert sortino_ratio(np.full(10, 0.01)) == math.inf
    assert sortino_ratio(np.zeros(10)) == 0.0
    assert calmar_ratio(np.full(10, 0.01)) == math.inf


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: probabilistic_sharpe_ratio(0.1, 0.0, 1), "n_obs"),
        (lambda: probabilistic_sharpe_ratio(float("nan"), 0.0, 100), "sr"),
        (lambda: probabilistic_sharpe_ratio(0.1, 0.0, 100, kurtosis=0.5), "kurtosis"),
        (lambda: expected_max_sharpe(-1.0, 10), "sr_variance"),
        (lambda: expected_max_sharpe(1.0, 0), "n_trials"),
        (lambda: deflated_sharpe_ratio(0.1, 0.01, 10, 0), "n_obs"),
        (lambda: min_track_record_length(0.1, 0.0, alpha=1.5), "alpha"),
        (lambda: sharpe_ratio([0.1]), "returns"),
        (lambda: annualise_sharpe(0.1, 0), "periods_per_year"),
    ],
)
def test_bad_arguments_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_wrong_types():
    with pytest.raises(TypeError, match="n_obs"):
        probabilistic_sharpe_ratio(0.1, 0.0, 10.5)
    with pytest.raises(TypeError, match="returns"):
        sharpe_ratio(["a", "b"])
