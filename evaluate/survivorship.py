"""Checks that a result is not bought with survivors, luck or free trading.

1. Data: a universe with no delisting over a long span is flagged (real equity universes
   lose names every year), and the same strategies are rerun on the point-in-time universe
   and on its survivors-only subset; the difference is the survivorship bias.
2. Selection: a placebo — the same training search on a driftless random-walk market of the
   same shape with the same costs. Nothing there can be learned, so its best trial shows
   what luck alone buys under this search.
3. Costs: every OOS result at 1x and 2x costs, side by side.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trendgym.evaluate.ledger import Ledger
from trendgym.evaluate.walkforward import (
    WalkForwardConfig,
    WalkForwardResult,
    cost_label,
    domain_for,
    make_env,
    portfolio_episode_returns,
    run_walk_forward,
    safe_sharpe,
    with_env_kwargs,
)

__all__ = [
    "BiasRow",
    "DelistingCheck",
    "PlaceboResult",
    "SurvivorshipReport",
    "cost_stress",
    "delisting_check",
    "placebo_search",
    "survivorship_check",
]

# keys that choose the data; everything else (leverage, vol target, impact, ...) is kept
_DATA_KEYS = (
    "prices",
    "preset",
    "data_seed",
    "n_years",
    "n_assets",
    "costs_bps",
    "delisting_returns",
    "signals",
    "start",
    "end",
    "window",
)


# --------------------------------------------------------------------------- 1. data


@dataclass(frozen=True)
class DelistingCheck:
    """Does the universe ever lose a name? `flagged` when none delists over `min_years`+."""

    n_assets: int
    n_delisted: int
    span_years: float
    flagged: bool
    message: str


def delisting_check(
    prices: pd.DataFrame, min_years: float = 10.0, periods_per_year: float = 261.0
) -> DelistingCheck:
    """Flag a universe in which no asset stops trading before the last date over a long span.

    An asset *delists* when its last price comes before the final row. Over ten years a real
    stock universe loses many names, so none at all suggests the data were drawn from
    today's survivors (futures roll and may legitimately never delist: read the message).
    """
    if not isinstance(prices, pd.DataFrame):
        raise TypeError(f"prices must be a DataFrame, got {type(prices).__name__}")
    if prices.shape[0] < 2 or prices.shape[1] < 1:
        raise ValueError(f"prices needs at least 2 rows and 1 asset, got shape {prices.shape}")
    if not (min_years > 0 and math.isfinite(min_years)):
        raise ValueError(f"min_years must be positive, got {min_years!r}")
    values = prices.to_numpy(dtype=np.float64)
    has = ~np.isnan(values)
    last = values.shape[0] - 1 - np.argmax(has[::-1], axis=0)
    delisted = int(((last < values.shape[0] - 1) & has.any(axis=0)).sum())
    years = prices.shape[0] / periods_per_year
    flagged = delisted == 0 and years >= min_years
    if flagged:
        message = (
            f"no asset delists over {years:.1f} years ({prices.shape[1]} assets): an equity "
            "universe like this is almost surely survivors-only (fine for rolled futures)"
        )
    else:
        message = f"{delisted} of {prices.shape[1]} assets delist over {years:.1f} years"
    return DelistingCheck(int(prices.shape[1]), delisted, float(years), bool(flagged), message)


@dataclass(frozen=True)
class BiasRow:
    """One strategy on the point-in-time universe vs its survivors-only subset (annualised)."""

    strategy: str
    sharpe_point_in_time: float
    sharpe_survivors: float
    cagr_point_in_time: float
    cagr_survivors: float

    @property
    def bias(self) -> float:
        """How much the survivors-only backtest overstates the annualised Sharpe."""
        return self.sharpe_survivors - self.sharpe_point_in_time


@dataclass(frozen=True)
class SurvivorshipReport:
    """Data check plus the survivorship bias of every strategy; `flagged` when any strategy
    looks better by more than `tolerance` on survivors only."""

    data: DelistingCheck
    rows: tuple[BiasRow, ...]
    n_survivors: int
    tolerance: float
    start: str | None
    end: str | None

    @property
    def flagged(self) -> bool:
        return any(r.bias > self.tolerance for r in self.rows)

    @property
    def max_bias(self) -> float:
        return max((r.bias for r in self.rows), default=0.0)

    @property
    def message(self) -> str:
        if self.n_survivors == self.data.n_assets:
            return "every asset survives to the end: no survivors-only subset to compare"
        worst = max(self.rows, key=lambda r: r.bias)
        verb = "overstates" if worst.bias > 0 else "changes"
        return (
            f"survivors-only data ({self.n_survivors} of {self.data.n_assets} assets) {verb} "
            f"{worst.strategy}'s Sharpe by {worst.bias:+.2f} "
            f"({worst.sharpe_point_in_time:.2f} point-in-time vs {worst.sharpe_survivors:.2f})"
        )

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "strategy": r.strategy,
                    "sharpe_point_in_time": r.sharpe_point_in_time,
                    "sharpe_survivors_only": r.sharpe_survivors,
                    "bias": r.bias,
                    "cagr_point_in_time": r.cagr_point_in_time,
                    "cagr_survivors_only": r.cagr_survivors,
                }
                for r in self.rows
            ]
        ).set_index("strategy")


def _annual(returns: np.ndarray, periods_per_year: float) -> tuple[float, float]:
    sr = safe_sharpe(returns)
    sharpe = sr * math.sqrt(periods_per_year) if math.isfinite(sr) else float("nan")
    growth = float(np.prod(1.0 + returns))
    cagr = growth ** (periods_per_year / returns.size) - 1.0 if growth > 0 else -1.0
    return float(sharpe), float(cagr)


def survivorship_check(
    env_kwargs: Mapping[str, Any],
    strategies: Mapping[str, Callable[[Any], Any]] | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    tolerance: float = 0.05,
    min_years: float = 10.0,
) -> SurvivorshipReport:
    """Rerun `strategies` on the point-in-time universe of `env_kwargs` and on its survivors.

    Parameters
    ----------
    env_kwargs : Portfolio-v0 kwargs of the point-in-time universe (preset or prices).
    strategies : name -> ``factory(env) -> policy``; default: the portfolio baselines.
        (A trained agent's input width is fixed by the number of assets, so it cannot be
        rerun on a smaller universe; the rule-based strategies stand in for it.)
    start, end : the span to backtest (default: the whole span after the warm-up).
    tolerance : annualised Sharpe overstatement above which the report is flagged.
    """
    if not (tolerance >= 0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR as PERIODS_PER_YEAR
    from trendgym.envs.market.universe import survivors

    span = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    pit = make_env("trendgym/Portfolio-v0", {**env_kwargs, **span, "window": None})
    frame = pit.unwrapped.prices
    data = delisting_check(frame, min_years=min_years, periods_per_year=PERIODS_PER_YEAR)
    alive = survivors(frame)
    costs = dict(zip(frame.columns, pit.unwrapped.costs_bps, strict=True))
    keep = {k: v for k, v in env_kwargs.items() if k not in _DATA_KEYS}
    survivor_env = make_env(
        "trendgym/Portfolio-v0",
        {
            **keep,
            **span,
            "prices": frame[alive],
            "costs_bps": {a: float(costs[a]) for a in alive},
            # warm-up as in the point-in-time env, so both walk exactly the same dates
            "warmup": pit.unwrapped._span[0],
        },
    )
    if strategies is None:
        domain = domain_for("trendgym/Portfolio-v0")
        strategies = {name: _baseline_factory(name) for name in domain.baselines(pit)}
    rows = []
    try:
        for name, factory in strategies.items():
            r_pit = portfolio_episode_returns(pit, factory(pit))
            r_surv = portfolio_episode_returns(survivor_env, factory(survivor_env))
            s_pit, c_pit = _annual(r_pit, PERIODS_PER_YEAR)
            s_surv, c_surv = _annual(r_surv, PERIODS_PER_YEAR)
            rows.append(BiasRow(name, s_pit, s_surv, c_pit, c_surv))
    finally:
        pit.close()
        survivor_env.close()
    return SurvivorshipReport(data, tuple(rows), len(alive), float(tolerance), start, end)


def _baseline_factory(name: str) -> Callable[[Any], Any]:
    def build(env: Any) -> Any:
        return domain_for("trendgym/Portfolio-v0").baselines(env)[name]

    return build


# --------------------------------------------------------------------------- 2. placebo


@dataclass(frozen=True)
class PlaceboResult:
    """The same search on a random walk: per trial configuration, its stitched OOS Sharpe
    (annualised when the domain has a calendar; 1x costs). `best` is what luck buys."""

    env_kwargs: Mapping[str, Any]
    sharpes: Mapping[str, float]
    result: WalkForwardResult

    @property
    def best(self) -> float:
        return max(self.sharpes.values())

    @property
    def best_label(self) -> str:
        return max(self.sharpes, key=lambda k: self.sharpes[k])


def trial_sharpes(result: WalkForwardResult, scenario: str | None = None) -> dict[str, float]:
    """Stitched OOS Sharpe of every trial configuration (annualised when possible)."""
    frame = result.trial_returns[scenario or cost_label(1.0)]
    scale = math.sqrt(result.periods_per_year) if result.periods_per_year else 1.0
    out = {}
    for col in frame.columns:
        sr = safe_sharpe(frame[col].to_numpy())
        out[str(col)] = sr * scale if math.isfinite(sr) else float("-inf")
    return out


def placebo_search(
    config: WalkForwardConfig,
    *,
    ledger: Ledger | str | os.PathLike[str] | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
) -> PlaceboResult:
    """Run `config`'s training search on the domain's placebo market (ledger experiment
    ``<experiment>/placebo``, so its trials never deflate or inflate the agent's count)."""
    domain = domain_for(config.env_id)
    kwargs = domain.placebo_env_kwargs(config)
    placebo = with_env_kwargs(config, kwargs, experiment=f"{config.experiment}/placebo")
    result = run_walk_forward(
        placebo,
        ledger=ledger,
        workers=workers,
        ray_address=ray_address,
        run_baselines=False,
        progress=progress,
    )
    return PlaceboResult(kwargs, trial_sharpes(result), result)


# --------------------------------------------------------------------------- 3. costs


def cost_stress(result: WalkForwardResult) -> pd.DataFrame:
    """Stitched OOS Sharpe (annualised when possible) and total return of the agent and every
    baseline at each cost multiplier; one row per policy."""
    scale = math.sqrt(result.periods_per_year) if result.periods_per_year else 1.0
    series = {"agent": result.agent_returns}
    series.update(result.baseline_returns)
    rows = {}
    for name, per in series.items():
        row = {}
        for m in result.config.cost_multipliers:
            r = per[cost_label(m)].to_numpy()
            sr = safe_sharpe(r)
            row[f"sharpe@{m:g}x"] = sr * scale if math.isfinite(sr) else float("nan")
            row[f"total_return@{m:g}x"] = float(np.prod(1.0 + r) - 1.0)
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
