"""Performance and selection-bias statistics for walk-forward evaluation.

Conventions (the contract in DESIGN.md):

- Sharpe ratios are **per period** (daily returns give a daily Sharpe) unless a function
  says ``annualised``; convert with :func:`annualise_sharpe` / :func:`per_period_sharpe`.
- Kurtosis is **non-excess** (3 for a normal distribution).
- Standard deviations of returns use ``ddof=1``; skewness and kurtosis are the plain
  (biased) sample moments, as in Bailey & López de Prado.
- A return series that contains NaN or inf is refused with ``ValueError``. A series with zero
  variance is handled explicitly: if every value equals the target (zero excess return) the
  Sharpe ratio is ``0.0``; a constant non-zero excess return raises ``ValueError`` (a
  riskless profit is a bug in the inputs, not a result).

References: Bailey & López de Prado (2012) "The Sharpe ratio efficient frontier" (PSR,
MinTRL); Bailey & López de Prado (2014) "The deflated Sharpe ratio" (E[max SR], DSR);
Agarwal et al. (2021) "Deep RL at the edge of the statistical precipice" (IQM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd
from scipy.stats import norm, trim_mean

__all__ = [
    "ReturnMoments",
    "SeedDispersion",
    "ShortfallSummary",
    "annualise_sharpe",
    "annualised_sharpe_ratio",
    "calmar_ratio",
    "deflated_sharpe_ratio",
    "drawdown",
    "expected_max_sharpe",
    "interquartile_mean",
    "max_drawdown",
    "min_track_record_length",
    "per_period_sharpe",
    "probabilistic_sharpe_ratio",
    "return_moments",
    "seed_dispersion",
    "sharpe_ratio",
    "shortfall_summary",
    "sortino_ratio",
    "turnover",
]

ArrayLike1D: TypeAlias = np.ndarray | pd.Series | Sequence[float]


# --------------------------------------------------------------------------- input checks


def as_returns(returns: ArrayLike1D, name: str = "returns", min_obs: int = 2) -> np.ndarray:
    """Return `returns` as a finite 1-d float64 array, or raise naming `name` and the problem."""
    if isinstance(returns, pd.DataFrame):
        if returns.shape[1] != 1:
            raise ValueError(f"{name} must be 1-d, got a DataFrame with {returns.shape[1]} columns")
        returns = returns.iloc[:, 0]
    try:
        arr = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric, got {type(returns).__name__}") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    if arr.size < min_obs:
        raise ValueError(f"{name} needs at least {min_obs} observations, got {arr.size}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(arr[i]) else "inf"
        raise ValueError(
            f"{name} contains {kind} at position {i} ({int(bad.sum())} non-finite values)"
        )
    return arr


def _check_finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_moments(skew: float, kurtosis: float) -> tuple[float, float]:
    skew = _check_finite(skew, "skew")
    kurtosis = _check_finite(kurtosis, "kurtosis")
    # Pearson's inequality: no distribution has kurtosis below 1 + skew^2 (non-excess).
    if kurtosis < 1.0 + skew * skew - 1e-12:
        raise ValueError(
            f"kurtosis must be >= 1 + skew**2 = {1.0 + skew * skew:.6g} (non-excess kurtosis, "
            f"3 for a normal), got {kurtosis}"
        )
    return skew, kurtosis


# --------------------------------------------------------------------------- Sharpe family


def sharpe_ratio(returns: ArrayLike1D, risk_free: float = 0.0) -> float:
    """Per-period Sharpe ratio: mean excess return over its standard deviation (ddof=1).

    Zero variance: ``0.0`` when every excess return is zero, ``ValueError`` otherwise.
    """
    excess = as_returns(returns) - _check_finite(risk_free, "risk_free")
    if excess.max() == excess.min():  # exact test: a float std of a constant can be 1e-19
        if excess[0] == 0.0:
            return 0.0
        raise ValueError(
            f"returns have zero variance (constant excess return {excess[0]!r}); "
            "the Sharpe ratio is undefined"
        )
    return float(excess.mean() / excess.std(ddof=1))


def annualised_sharpe_ratio(
    returns: ArrayLike1D, periods_per_year: float = 252, risk_free: float = 0.0
) -> float:
    """Sharpe ratio scaled by sqrt(periods_per_year) (i.i.d. returns assumed)."""
    return annualise_sharpe(sharpe_ratio(returns, risk_free), periods_per_year)


def annualise_sharpe(sr: float, periods_per_year: float) -> float:
    """Per-period Sharpe -> annual: multiply by sqrt(periods_per_year)."""
    return _check_finite(sr, "sr") * math.sqrt(_positive(periods_per_year, "periods_per_year"))


def per_period_sharpe(sr_annual: float, periods_per_year: float) -> float:
    """Annual Sharpe -> per period: divide by sqrt(periods_per_year)."""
    return _check_finite(sr_annual, "sr_annual") / math.sqrt(
        _positive(periods_per_year, "periods_per_year")
    )


def _positive(value: float, name: str) -> float:
    value = _check_finite(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def sortino_ratio(
    returns: ArrayLike1D, target: float = 0.0, periods_per_year: float | None = None
) -> float:
    """Sortino ratio: mean excess over `target` / downside deviation (per period by default).

    Downside deviation is sqrt(mean(min(r - target, 0)^2)) over *all* periods (Sortino &
    Price 1994). No period below target: ``inf`` if the mean excess is positive, ``0.0`` if
    every return equals the target.
    """
    excess = as_returns(returns) - _check_finite(target, "target")
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    mean = float(excess.mean())
    if downside == 0.0:
        ratio = math.inf if mean > 0 else 0.0
    else:
        ratio = mean / downside
    if periods_per_year is not None:
        ratio *= math.sqrt(_positive(periods_per_year, "periods_per_year"))
    return ratio


# --------------------------------------------------------------------------- drawdowns


def drawdown(returns: ArrayLike1D, compound: bool = True) -> np.ndarray:
    """Drawdown after each period, as a positive fraction of the running peak.

    `compound=True` treats `returns` as simple returns (wealth = prod(1 + r), starting at 1);
    `compound=False` adds them (log returns or P&L in units of capital).
    """
    r = as_returns(returns, min_obs=1)
    if compound:
        if (r < -1.0).any():
            i = int(np.flatnonzero(r < -1.0)[0])
            raise ValueError(f"returns below -100% at position {i} ({r[i]}) cannot compound")
        wealth = np.concatenate(([1.0], np.cumprod(1.0 + r)))
        peak = np.maximum.accumulate(wealth)
        dd = 1.0 - wealth / peak
    else:
        wealth = np.concatenate(([0.0], np.cumsum(r)))
        dd = np.maximum.accumulate(wealth) - wealth
    return dd[1:]


def max_drawdown(returns: ArrayLike1D, compound: bool = True) -> float:
    """Largest peak-to-trough loss (positive fraction; 0.0 when the equity never falls)."""
    return float(drawdown(returns, compound).max())


def calmar_ratio(returns: ArrayLike1D, periods_per_year: float = 252) -> float:
    """Annualised compound return over max drawdown (simple returns).

    No drawdown: ``inf`` when the annual return is positive, ``0.0`` when it is zero.
    """
    r = as_returns(returns, min_obs=1)
    mdd = max_drawdown(r)
    ppy = _positive(periods_per_year, "periods_per_year")
    growth = float(np.prod(1.0 + r))
    annual = growth ** (ppy / r.size) - 1.0
    if mdd == 0.0:
        return math.inf if annual > 0 else 0.0
    return annual / mdd


# --------------------------------------------------------------------------- trading


def turnover(weights: np.ndarray | pd.DataFrame, initial: np.ndarray | None = None) -> np.ndarray:
    """Per-period turnover: sum over assets of |w_t - w_{t-1}| (fractions of NAV).

    The first period is measured against `initial` (default: all cash, zeros), so entering a
    fully invested book counts. Annual turnover = mean * periods_per_year.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim != 2 or w.shape[0] < 1:
        raise ValueError(f"weights must be a (T, n_assets) array, got shape {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights contain NaN or inf; use 0 for assets not held")
    w0 = np.zeros(w.shape[1]) if initial is None else np.asarray(initial, dtype=np.float64)
    if w0.shape != (w.shape[1],):
        raise ValueError(f"initial must have shape ({w.shape[1]},), got {w0.shape}")
    return np.abs(np.diff(w, axis=0, prepend=w0[None, :])).sum(axis=1)


@dataclass(frozen=True)
class ShortfallSummary:
    """Implementation shortfall across episodes (bps, positive = cost)."""

    n: int
    mean: float
    std: float
    stderr: float
    quantiles: dict[float, float]

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        """Normal-approximation confidence interval of the mean shortfall."""
        z = float(norm.ppf(0.5 + level / 2))
        return (self.mean - z * self.stderr, self.mean + z * self.stderr)


def shortfall_summary(
    shortfall_bps: ArrayLike1D, quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)
) -> ShortfallSummary:
    """Mean, standard deviation (ddof=1), standard error of the mean and quantiles."""
    x = as_returns(shortfall_bps, name="shortfall_bps")
    qs = tuple(float(q) for q in quantiles)
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ValueError(f"quantiles must lie in [0, 1], got {quantiles}")
    std = float(x.std(ddof=1))
    values = np.quantile(x, qs) if qs else np.array([])
    return ShortfallSummary(
        n=int(x.size),
        mean=float(x.mean()),
        std=std,
        stderr=std / math.sqrt(x.size),
        quantiles={q: float(v) for q, v in zip(qs, values, strict=True)},
    )


# --------------------------------------------------------------------------- PSR / DSR


@dataclass(frozen=True)
class ReturnMoments:
    """What PSR/DSR need from a return series: per-period Sharpe, skew, kurtosis, length."""

    sharpe: float
    skew: float
    kurtosis: float
    n_obs: int


def return_moments(returns: ArrayLike1D, risk_free: float = 0.0) -> ReturnMoments:
    """Per-period Sharpe, sample skewness and non-excess kurtosis of a return series.

    Zero variance: Sharpe follows :func:`sharpe_ratio`; skew 0 and kurtosis 3 (the normal
    values, so PSR stays defined) are reported for an all-zero series.
    """
    r = as_returns(returns)
    sr = sharpe_ratio(r, risk_free)
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    if r.max() == r.min() or m2 == 0.0:
        return ReturnMoments(sr, 0.0, 3.0, int(r.size))
    skew = float(np.mean(centred**3) / m2**1.5)
    kurt = float(np.mean(centred**4) / m2**2)
    return ReturnMoments(sr, skew, kurt, int(r.size))


def _sr_std_factor(sr: float, skew: float, kurtosis: float) -> float:
    """sqrt(1 - skew*SR + (kurt-1)/4 * SR^2): the non-normal standard error of SR, times sqrt(n-1)."""
    var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if var <= 0.0:
        raise ValueError(
            f"1 - skew*sr + (kurtosis-1)/4*sr**2 = {var:.6g} <= 0 for sr={sr}, skew={skew}, "
            f"kurtosis={kurtosis}; the Sharpe ratio's standard error is undefined"
        )
    return math.sqrt(var)


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n_obs: int, skew: float = 0.0, kurtosis: float = 3.0
) -> float:
    """Probability that the true Sharpe exceeds `sr_benchmark` (Bailey & López de Prado 2012).

    PSR = Phi((SR - SR*) sqrt(n_obs - 1) / sqrt(1 - skew SR + (kurtosis - 1)/4 SR^2)),
    all Sharpe ratios per period, kurtosis non-excess. The ``n_obs - 1`` convention is the
    one that reproduces the paper's PSR(1.14, 1, 250) = 0.957.
    """
    sr = _check_finite(sr, "sr")
    sr_benchmark = _check_finite(sr_benchmark, "sr_benchmark")
    n_obs = _check_count(n_obs, "n_obs", 2)
    skew, kurtosis = _check_moments(skew, kurtosis)
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / _sr_std_factor(sr, skew, kurtosis)
    return float(norm.cdf(z))


def expected_max_sharpe(sr_variance: float, n_trials: int) -> float:
    """E[max] of `n_trials` Sharpe ratios whose true value is 0 and variance `sr_variance`.

    sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))), gamma the
    Euler-Mascheroni constant (Bailey & López de Prado 2014, after the false strategy
    theorem). One trial has no selection: 0.0.
    """
    sr_variance = _check_finite(sr_variance, "sr_variance")
    if sr_variance < 0:
        raise ValueError(f"sr_variance must be >= 0, got {sr_variance}")
    n_trials = _check_count(n_trials, "n_trials", 1)
    if n_trials == 1:
        return 0.0
    g = np.euler_gamma
    z = (1.0 - g) * norm.ppf(1.0 - 1.0 / n_trials) + g * norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * z)


def deflated_sharpe_ratio(
    sr: float,
    sr_variance: float,
    n_trials: int,
    n_obs: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """PSR against the best Sharpe that `n_trials` skill-less trials would be expected to show.

    `sr` is the selected trial's per-period Sharpe, `sr_variance` the variance of the
    per-period Sharpe ratios across all trials (see ``Ledger.sr_variance``).
    """
    return probabilistic_sharpe_ratio(
        sr, expected_max_sharpe(sr_variance, n_trials), n_obs, skew, kurtosis
    )


def min_track_record_length(
    sr: float, sr_benchmark: float, skew: float = 0.0, kurtosis: float = 3.0, alpha: float = 0.05
) -> float:
    """Observations needed for PSR(sr, sr_benchmark) to reach 1 - alpha (Bailey & López de Prado 2012).

    MinTRL = 1 + (1 - skew SR + (kurtosis - 1)/4 SR^2) (Phi^-1(1 - alpha) / (SR - SR*))^2;
    ``inf`` when ``sr <= sr_benchmark`` (no track record is long enough).
    """
    sr = _check_finite(sr, "sr")
    sr_benchmark = _check_finite(sr_benchmark, "sr_benchmark")
    skew, kurtosis = _check_moments(skew, kurtosis)
    alpha = _check_finite(alpha, "alpha")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if sr <= sr_benchmark:
        return math.inf
    factor = _sr_std_factor(sr, skew, kurtosis)
    return float(1.0 + factor**2 * (norm.ppf(1.0 - alpha) / (sr - sr_benchmark)) ** 2)


# --------------------------------------------------------------------------- seeds


def interquartile_mean(scores: ArrayLike1D) -> float:
    """Mean of the middle 50% of scores (25% trimmed from each end, as in rliable)."""
    return float(trim_mean(as_returns(scores, name="scores", min_obs=1), 0.25))


@dataclass(frozen=True)
class SeedDispersion:
    """How much a result depends on the seed: IQM with a bootstrap CI, best vs median."""

    n_seeds: int
    iqm: float
    ci_low: float
    ci_high: float
    mean: float
    median: float
    best: float
    worst: float
    best_minus_median: float


def seed_dispersion(
    scores: ArrayLike1D, n_boot: int = 5000, ci: float = 0.95, seed: int = 0
) -> SeedDispersion:
    """Summarise per-seed scores (higher is better): IQM, percentile-bootstrap CI of the IQM
    (seeds resampled with replacement, seeded generator), and the gap between the best seed
    and the median seed, i.e. what reporting the best seed would overstate."""
    x = as_returns(scores, name="scores", min_obs=1)
    n_boot = _check_count(n_boot, "n_boot", 1)
    ci = _check_finite(ci, "ci")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, x.size, size=(n_boot, x.size))]
    boot = trim_mean(samples, 0.25, axis=1)
    lo, hi = np.quantile(boot, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    median = float(np.median(x))
    return SeedDispersion(
        n_seeds=int(x.size),
        iqm=interquartile_mean(x),
        ci_low=float(lo),
        ci_high=float(hi),
        mean=float(x.mean()),
        median=median,
        best=float(x.max()),
        worst=float(x.min()),
        best_minus_median=float(x.max()) - median,
    )
