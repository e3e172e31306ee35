"""Seeded synthetic multi-asset markets with regimes, the default data of ``Portfolio-v0``.

A hidden Markov chain switches between four regimes, each with its signature:

* ``trend``   persistent per-asset drifts (a slow AR(1) latent), the home of time-series momentum;
* ``chop``    drifts decay and daily returns mean-revert (negative lag-1 autocorrelation);
* ``crisis``  volatility jumps (x2.5), correlations spike, risky assets fall, havens rally;
* ``rebound`` the momentum crash of Daniel & Moskowitz (2016): after the bear market the
  past losers rally hardest, so a 12-month winners-minus-losers book loses.

On top, one inflation spell flips the stock-bond correlation from negative to positive and
sends bonds down with stocks (2022). Presets give asset classes their own vols, costs and
quirks: ``futures`` (equity indices, bonds, FX, commodities), ``equities`` (single stocks with
staggered listings and performance delistings whose delisting returns sit near -30% (NYSE-like,
Shumway 1997) or -55% (Nasdaq-like, Shumway & Warther 1999)), ``crypto`` (Student-t tails, high
vol and costs, beta to a hidden equity factor that rises in risk-off), ``carbon`` (policy-driven
drift regimes plus jumps), ``random_walk`` (the null: driftless independent GBM) and
``planted_trend`` (independent assets whose only structure is a slow latent drift of known
strength: an edge planted for tests and demos; ``trend_strength`` sets it for any preset).
Everything flows from one ``np.random.Generator(seed)``: same seed, same market, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR as PERIODS_PER_YEAR

REGIMES = ("trend", "chop", "crisis", "rebound")
PRESETS = ("futures", "equities", "crypto", "carbon", "random_walk", "planted_trend")
# What kind of universe each preset simulates, for the survivorship check: "futures" series
# are rolled and never delist; "pit" (point-in-time) universes list and delist names.
PRESET_UNIVERSE = {
    "futures": "futures",
    "equities": "pit",
    "crypto": "pit",
    "carbon": "futures",
    "random_walk": "futures",
    "planted_trend": "futures",
}
PLANTED_TREND_STRENGTH = 3.0  # planted_trend's default: the annual Sharpe of a perfect trend
# planted_trend's drift turns over in months (half-life ~70 days), so following it pays and
# holding through it does not
PLANTED_TREND_PHI = 0.99

# mean regime durations (days) and where a regime goes when it ends
_DURATION = np.array([260.0, 120.0, 35.0, 60.0])
_NEXT = np.array(
    [
        [0.0, 0.6, 0.4, 0.0],  # trend -> chop or crisis
        [0.7, 0.0, 0.3, 0.0],  # chop -> trend or crisis
        [0.0, 0.2, 0.0, 0.8],  # crisis -> mostly the rebound
        [0.6, 0.4, 0.0, 0.0],  # rebound -> trend or chop
    ]
)
_VOL_MULT = np.array([1.0, 0.9, 2.5, 1.6])


@dataclass(frozen=True)
class MarketData:
    """A synthetic market: wide prices plus what a point-in-time backtest needs to know.

    Attributes
    ----------
    prices : DataFrame
        Business-day index, one column per asset, NaN before listing and after delisting.
    delisting_returns : Series
        Per asset, the return of the close-out after the last price (NaN: never delisted).
    costs_bps : Series
        Proportional cost (half spread + fee) per asset, in basis points of traded notional.
    asset_class : Series
        Per asset class label.
    regimes : DataFrame
        Per date: ``regime`` (one of ``REGIMES``) and ``stock_bond_corr``.
    """

    prices: pd.DataFrame
    delisting_returns: pd.Series
    costs_bps: pd.Series
    asset_class: pd.Series
    regimes: pd.DataFrame


@dataclass(frozen=True)
class _Spec:
    """Per-asset parameters of a preset (annualised where it says so)."""

    names: list[str]
    asset_class: list[str]
    vol: np.ndarray  # annualised
    costs_bps: np.ndarray
    equity_beta: np.ndarray  # loading on the hidden equity factor in calm times
    crisis_beta: np.ndarray  # ... and in crises
    bond_beta: np.ndarray  # loading on the bond factor
    trend_strength: np.ndarray  # std of the latent drift, in units of the asset's vol
    crisis_drift: np.ndarray  # annualised drift during crises, in units of vol
    premium: np.ndarray  # unconditional drift (risk premium): its annual Sharpe
    tail_df: float  # Student-t degrees of freedom of the idiosyncratic shocks (inf = normal)
    trend_phi: float = 0.998  # daily persistence of the latent drift outside chop


def _regime_path(rng: np.random.Generator, n_days: int) -> np.ndarray:
    """Daily regime codes from the semi-Markov chain (geometric durations)."""
    path = np.empty(n_days, dtype=np.int8)
    state = 0
    u_stay = rng.random(n_days)
    u_next = rng.random(n_days)
    cum_next = np.cumsum(_NEXT, axis=1)
    for t in range(n_days):
        path[t] = state
        if u_stay[t] < 1.0 / _DURATION[state]:
            state = int(np.searchsorted(cum_next[state], u_next[t], side="right"))
    return path


def _inflation_spell(rng: np.random.Generator, n_days: int) -> np.ndarray:
    """One year-long spell, in the last third of the sample, where stocks and bonds fall together."""
    flag = np.zeros(n_days, dtype=bool)
    length = min(PERIODS_PER_YEAR, n_days // 4)
    if length < 20:
        return flag
    lo = max(0, (2 * n_days) // 3 - length // 2)
    hi = max(lo + 1, n_days - length)
    begin = int(rng.integers(lo, hi))
    flag[begin : begin + length] = True
    return flag


class _AssetClass(NamedTuple):
    """An asset class's parameters (see ``_Spec`` for their units)."""

    prefix: str  # of its assets' names
    vol: float
    cost_bps: float
    equity_beta: float
    crisis_beta: float
    bond_beta: float
    crisis_drift: float
    premium: float


_CLASSES = {
    "equity": _AssetClass("EQ", 0.18, 1.0, 0.8, 0.9, 0.0, -1.5, 0.3),
    "bond": _AssetClass("BD", 0.06, 0.5, 0.0, 0.0, 0.8, 0.0, 0.3),
    "fx": _AssetClass("FX", 0.09, 1.0, 0.15, 0.4, 0.0, -0.5, 0.0),
    "commodity": _AssetClass("CM", 0.25, 2.0, 0.3, 0.6, 0.0, -1.0, 0.1),
    "stock": _AssetClass("STK", 0.30, 5.0, 0.55, 0.75, 0.0, -1.5, 0.4),
    "crypto": _AssetClass("CX", 0.65, 15.0, 0.1, 0.6, 0.0, -2.0, 0.6),
    "carbon": _AssetClass("CO2", 0.40, 8.0, 0.15, 0.4, 0.0, -1.0, 0.2),
    "rw": _AssetClass("RW", 0.15, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "trend": _AssetClass("TR", 0.15, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
}


class _Preset(NamedTuple):
    asset_class: str  # "" for futures: four classes (``_futures_classes``)
    n_assets: int  # default universe size
    trend_strength: float
    tail_df: float
    trend_phi: float = 0.998


_PRESETS = {
    "futures": _Preset("", 24, 1.3, np.inf),
    "equities": _Preset("stock", 60, 0.5, 5.0),
    "crypto": _Preset("crypto", 12, 1.0, 4.0),
    # most of carbon's drift comes from policy regimes, added separately
    "carbon": _Preset("carbon", 5, 0.3, 4.0),
    "random_walk": _Preset("rw", 24, 0.0, np.inf),
    "planted_trend": _Preset("trend", 8, PLANTED_TREND_STRENGTH, np.inf, PLANTED_TREND_PHI),
}


def _futures_classes(n_assets: int | None) -> list[str]:
    """Equal numbers of equity, bond, FX and commodity futures (the remainder commodities)."""
    per = max(1, (n_assets or 24) // 4)
    classes = ["equity"] * per + ["bond"] * per + ["fx"] * per + ["commodity"] * per
    extra = (n_assets or 4 * per) - len(classes)
    classes += ["commodity"] * extra
    return classes[: n_assets or len(classes)]  # fewer than 4: one per class, in order


def _spec(preset: str, n_assets: int | None, rng: np.random.Generator) -> _Spec:
    if preset not in _PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    pre = _PRESETS[preset]
    if pre.asset_class:
        classes = [pre.asset_class] * (n_assets or pre.n_assets)
    else:
        classes = _futures_classes(n_assets)
    n = len(classes)
    if n < 1:
        raise ValueError(f"n_assets must be >= 1, got {n_assets}")
    counters: dict[str, int] = {}
    names = []
    for c in classes:
        counters[c] = counters.get(c, 0) + 1
        names.append(f"{_CLASSES[c].prefix}{counters[c]:02d}")
    null = preset in ("random_walk", "planted_trend")
    jitter = rng.uniform(0.8, 1.25, n) if not null else np.ones(n)

    def column(field: str) -> np.ndarray:
        return np.array([getattr(_CLASSES[c], field) for c in classes])

    return _Spec(
        names=names,
        asset_class=classes,
        vol=column("vol") * jitter,
        costs_bps=column("cost_bps") * (jitter if preset == "crypto" else 1.0),
        equity_beta=column("equity_beta"),
        crisis_beta=column("crisis_beta"),
        bond_beta=column("bond_beta"),
        trend_strength=np.full(n, pre.trend_strength),
        crisis_drift=column("crisis_drift"),
        premium=column("premium"),
        tail_df=pre.tail_df,
        trend_phi=pre.trend_phi,
    )


def _shocks(rng: np.random.Generator, shape: tuple[int, int], df: float) -> np.ndarray:
    """Unit-variance shocks: normal, or Student-t with `df` > 2 degrees of freedom."""
    if np.isinf(df):
        return rng.standard_normal(shape)
    return rng.standard_t(df, shape) / np.sqrt(df / (df - 2.0))


def _check_args(preset: Any, n_years: float, n_assets: Any, trend_strength: Any) -> None:
    if not isinstance(preset, str):
        raise TypeError(f"preset must be a str, got {type(preset).__name__}")
    if not np.isfinite(n_years) or n_years <= 0:
        raise ValueError(f"n_years must be positive, got {n_years}")
    if n_assets is not None and (int(n_assets) != n_assets or n_assets < 1):
        raise ValueError(f"n_assets must be a positive integer, got {n_assets}")
    if trend_strength is not None and (
        isinstance(trend_strength, bool)
        or not isinstance(trend_strength, int | float | np.integer | np.floating)
        or not (np.isfinite(trend_strength) and trend_strength >= 0)
    ):
        raise ValueError(f"trend_strength must be a finite number >= 0, got {trend_strength!r}")


def generate_market(
    preset: str = "futures",
    *,
    n_years: float = 20.0,
    n_assets: int | None = None,
    seed: int = 0,
    start: str = "2000-01-03",
    trend_strength: float | None = None,
) -> MarketData:
    """Simulate a daily multi-asset market with regimes.

    Parameters
    ----------
    preset : {"futures", "equities", "crypto", "carbon", "random_walk", "planted_trend"}
    n_years : float
        Length in years of 261 business days.
    n_assets : int, optional
        Universe size (preset default: 24, 60, 12, 5, 24, 8); honoured exactly.
    seed : int
        Seed of the one generator every draw comes from.
    start : str
        First business day.
    trend_strength : float, optional
        Std of every asset's latent trend drift in units of its vol: the annual Sharpe a
        perfect trend follower would earn from it (0: no trend). None: the preset's own
        (futures 1.3, equities 0.5, crypto 1.0, carbon 0.3, random_walk 0, planted_trend 3).
        The same seed with and without it draws the same shocks.
    """
    _check_args(preset, n_years, n_assets, trend_strength)
    rng = np.random.default_rng(seed)
    spec = _spec(preset, n_assets, rng)
    if trend_strength is not None:
        spec = replace(spec, trend_strength=np.full(len(spec.names), float(trend_strength)))
    n_days = max(int(round(n_years * PERIODS_PER_YEAR)), 30)

    null = preset in ("random_walk", "planted_trend")  # one calm regime, no inflation spell
    regime = np.zeros(n_days, dtype=np.int8) if null else _regime_path(rng, n_days)
    inflation = np.zeros(n_days, dtype=bool) if null else _inflation_spell(rng, n_days)
    stock_bond_corr = np.where(inflation, 0.5, -0.3)
    shock, eta = _factor_shocks(rng, spec, regime, stock_bond_corr)
    drift, jumps = _drifts(rng, spec, preset, regime, inflation)
    log_ret = _log_returns(rng, spec, regime, shock, eta, drift, jumps)

    n = len(spec.names)
    start_price = np.round(rng.uniform(20.0, 200.0, n), 2)
    log_price = np.log(start_price) + np.cumsum(log_ret, axis=0)
    prices = np.exp(log_price)

    delisting_returns = np.full(n, np.nan)
    if preset in ("equities", "crypto"):
        _list_and_delist(rng, prices, log_ret, delisting_returns, preset)

    index = pd.bdate_range(start, periods=n_days, name="date")
    return MarketData(
        prices=pd.DataFrame(prices, index=index, columns=spec.names),
        delisting_returns=pd.Series(delisting_returns, index=spec.names, name="delisting_return"),
        costs_bps=pd.Series(spec.costs_bps, index=spec.names, name="costs_bps"),
        asset_class=pd.Series(spec.asset_class, index=spec.names, name="asset_class"),
        regimes=pd.DataFrame(
            {"regime": np.array(REGIMES)[regime], "stock_bond_corr": stock_bond_corr}, index=index
        ),
    )


def _factor_shocks(
    rng: np.random.Generator, spec: _Spec, regime: np.ndarray, stock_bond_corr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Daily unit shocks of every asset (hidden equity and bond factors plus idiosyncratic
    noise), and the innovations of the latent trend drifts."""
    n_days, n = regime.shape[0], len(spec.names)
    # hidden factors: equity (e), bond (b); bonds hedge equities except in the inflation spell
    z_e = rng.standard_normal(n_days)
    z_b = stock_bond_corr * z_e + np.sqrt(1.0 - stock_bond_corr**2) * rng.standard_normal(n_days)
    idio = _shocks(rng, (n_days, n), spec.tail_df)
    eta = rng.standard_normal((n_days, n))  # innovations of the latent trend drifts
    crisis = regime == 2
    beta_e = np.where(crisis[:, None], spec.crisis_beta, spec.equity_beta)
    beta_b = np.broadcast_to(spec.bond_beta, (n_days, n))
    # correlation spike: in crises the common factor takes over the idiosyncratic part
    common_var = np.clip(beta_e**2 + beta_b**2, 0.0, 0.95)
    shock = beta_e * z_e[:, None] + beta_b * z_b[:, None] + np.sqrt(1.0 - common_var) * idio
    return shock, eta


def _drifts(
    rng: np.random.Generator, spec: _Spec, preset: str, regime: np.ndarray, inflation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Regime drifts (daily, in units of vol) and jumps (log returns): crises hit risky assets
    and lift bonds, except in the inflation spell, where bonds fall with stocks; carbon adds
    policy regimes and jumps."""
    n_days, n = regime.shape[0], len(spec.names)
    crisis = regime == 2
    drift = np.where(crisis[:, None], spec.crisis_drift, spec.premium) / np.sqrt(PERIODS_PER_YEAR)
    bond_sign = np.where(inflation, -1.0, 1.0)[:, None]
    is_bond = np.array([c == "bond" for c in spec.asset_class])
    drift = drift + np.where(
        crisis[:, None] & is_bond, 1.0 * bond_sign / np.sqrt(PERIODS_PER_YEAR), 0.0
    )
    drift = drift + np.where(inflation[:, None] & is_bond, -1.0 / np.sqrt(PERIODS_PER_YEAR), 0.0)
    if preset != "carbon":
        return drift, np.zeros((n_days, n))
    # policy regimes: the drift jumps to a new level at Poisson policy events (~ every 1.5 y)
    events = rng.random(n_days) < 1.0 / (1.5 * PERIODS_PER_YEAR)
    levels = rng.normal(0.0, 1.2, size=(int(events.sum()) + 1, n)) / np.sqrt(PERIODS_PER_YEAR)
    drift = drift + levels[np.cumsum(events)]
    jumps = (rng.random((n_days, n)) < 6.0 / PERIODS_PER_YEAR) * rng.normal(0.0, 0.08, (n_days, n))
    return drift, jumps


def _log_returns(
    rng: np.random.Generator,
    spec: _Spec,
    regime: np.ndarray,
    shock: np.ndarray,
    eta: np.ndarray,
    drift: np.ndarray,
    jumps: np.ndarray,
) -> np.ndarray:
    """Daily log returns: the latent trends (slow AR(1) drifts that fade fast in chop) plus
    the regime drifts, the momentum crash of the rebound, chop's mean reversion and jumps."""
    n_days, n = shock.shape
    vol_t = spec.vol / np.sqrt(PERIODS_PER_YEAR) * _VOL_MULT[regime][:, None]
    phi = np.where(regime == 1, 0.98, spec.trend_phi)
    inject = np.where(regime == 1, 0.0, np.sqrt(1.0 - spec.trend_phi**2))
    # a latent drift of 1 (in vol units per year) gives an annual Sharpe of `trend_strength`
    trend_scale = spec.trend_strength / np.sqrt(PERIODS_PER_YEAR)

    log_ret = np.empty((n_days, n))
    latent = rng.standard_normal(n) * (spec.trend_strength > 0)
    trailing = np.zeros(n)  # sum of the last year's log returns, for the rebound
    window: list[np.ndarray] = []
    prev_z = np.zeros(n)
    for t in range(n_days):
        latent = phi[t] * latent + inject[t] * eta[t]
        mu = trend_scale * latent + drift[t]
        if regime[t] == 3:
            # momentum crash: last year's losers rally hardest (cross-sectionally demeaned)
            loser = -(trailing - trailing.mean()) / np.maximum(spec.vol, 1e-12)
            mu = mu + 0.02 * loser + 0.03
        z = shock[t]
        if regime[t] == 1:
            z = z - 0.25 * prev_z  # negative lag-1 autocorrelation
        prev_z = shock[t]
        x = vol_t[t] * (mu + z) - 0.5 * vol_t[t] ** 2 + jumps[t]
        log_ret[t] = x
        window.append(x)
        trailing += x
        if len(window) > PERIODS_PER_YEAR:
            trailing -= window.pop(0)
    return log_ret


def _list_and_delist(
    rng: np.random.Generator,
    prices: np.ndarray,
    log_ret: np.ndarray,
    delisting_returns: np.ndarray,
    preset: str,
) -> None:
    """Staggered listings and performance delistings, in place (NaN outside each life)."""
    n_days, n = prices.shape
    late = rng.random(n) < 0.5  # new listings keep arriving and replace the dead
    listing = np.where(late, rng.integers(0, max(1, int(0.9 * n_days)), n), 0)
    # keep at least a few assets alive from day one so the universe is never empty
    listing[: max(2, n // 5)] = 0
    cum = np.cumsum(log_ret, axis=0)
    drawdown = cum - np.maximum.accumulate(cum, axis=0)
    # hazard: a small base rate, much larger deep under water (performance delistings)
    base = 0.01 / PERIODS_PER_YEAR
    hazard = base + np.where(drawdown < np.log(0.25), 0.15 / PERIODS_PER_YEAR, 0.0)
    u = rng.random((n_days, n))
    nasdaq_like = rng.random(n) < 0.5
    noise = rng.normal(0.0, 0.1, n)
    for i in range(n):
        first = int(listing[i])
        prices[:first, i] = np.nan
        if i < 2:
            continue  # survivors: the benchmark names
        hits = np.flatnonzero(u[first + 21 :, i] < hazard[first + 21 :, i])
        if hits.size and first + 21 + hits[0] < n_days - 1:
            last = first + 21 + int(hits[0])
            prices[last + 1 :, i] = np.nan
            centre = -0.55 if nasdaq_like[i] else -0.30
            delisting_returns[i] = float(np.clip(centre + noise[i], -1.0, 0.0))
    if preset == "crypto":
        delisting_returns[:] = np.where(np.isnan(delisting_returns), np.nan, -0.9)
