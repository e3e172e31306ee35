"""Checks that a result is not bought with survivors, luck or free trading.

1. Data: a universe with no delisting over a long span is flagged (real equity universes
   lose names every year), and the same strategies are rerun on the point-in-time universe
   and on its survivors-only subset; the difference is the survivorship bias.
2. Selection: a placebo — the same training search where nothing can be learned: random-walk
   markets of the same shape and costs from other data seeds (portfolio), or the same
   episodes with the observation replaced by noise (execution). Its selected agent, scored
   like the real one, shows what luck alone buys under this search.
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
    run_policy_search,
    run_walk_forward,
    safe_sharpe,
)
from trendgym.evaluate.walkforward.portfolio import DATA_KEYS
from trendgym.evaluate.walkforward.results import scores

__all__ = [
    "BiasRow",
    "DelistingCheck",
    "PlaceboResult",
    "PlaceboRun",
    "SurvivorshipReport",
    "cost_stress",
    "delisting_check",
    "placebo_label",
    "placebo_search",
    "policy_placebo",
    "survivorship_check",
]


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
    pit = make_env(
        "trendgym/Portfolio-v0",
        {**{k: v for k, v in env_kwargs.items() if k != "window"}, **span, "window": None},
    )
    frame = pit.unwrapped.prices
    data = delisting_check(frame, min_years=min_years, periods_per_year=PERIODS_PER_YEAR)
    alive = survivors(frame)
    costs = dict(zip(frame.columns, pit.unwrapped.costs_bps, strict=True))
    keep = {k: v for k, v in env_kwargs.items() if k not in DATA_KEYS}
    survivor_env = make_env(
        "trendgym/Portfolio-v0",
        {
            **keep,
            **span,
            "prices": frame[alive],
            "costs_bps": {a: float(costs[a]) for a in alive},
            # warm-up as in the point-in-time env, so both walk exactly the same dates
            "warmup": pit.unwrapped._span[0],
            "window": None,
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
class PlaceboRun:
    """One placebo search: where it ran and the OOS score Sharpe (annualised when the domain
    has a calendar; 1x costs) of the agent it selected, scored like the real agent."""

    label: str
    env_kwargs: Mapping[str, Any]
    blind: bool
    agent_sharpe: float
    result: WalkForwardResult | None = None


@dataclass(frozen=True)
class PlaceboResult:
    """The same search where nothing can be learned; `best` is what luck alone buys."""

    runs: tuple[PlaceboRun, ...]

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("a placebo needs at least one run")

    @property
    def sharpes(self) -> dict[str, float]:
        return {r.label: r.agent_sharpe for r in self.runs}

    @property
    def best(self) -> float:
        return max(self.sharpes.values())

    @property
    def best_label(self) -> str:
        return max(self.sharpes, key=lambda k: self.sharpes[k])

    @property
    def env_kwargs(self) -> Mapping[str, Any]:
        return self.runs[0].env_kwargs

    @property
    def describe(self) -> str:
        if all(r.blind for r in self.runs):
            what = "blind observations"
        else:
            seeds = ", ".join(str(r.env_kwargs.get("data_seed", "?")) for r in self.runs)
            what = f"random-walk markets, data seeds {seeds}"
        return f"placebo agent of {len(self.runs)} search(es) on {what}"


def trial_sharpes(result: WalkForwardResult, scenario: str | None = None) -> dict[str, float]:
    """Stitched OOS Sharpe of every trial configuration (annualised when possible)."""
    frame = result.trial_returns[scenario or cost_label(1.0)]
    scale = math.sqrt(result.periods_per_year) if result.periods_per_year else 1.0
    out = {}
    for col in frame.columns:
        sr = safe_sharpe(frame[col].to_numpy())
        out[str(col)] = sr * scale if math.isfinite(sr) else float("-inf")
    return out


def score_sharpe(result: WalkForwardResult) -> float:
    """The selected agent's OOS score Sharpe at 1x costs (annualised when possible)."""
    agent, _ = scores(result, cost_label(1.0))
    scale = math.sqrt(result.periods_per_year) if result.periods_per_year else 1.0
    sr = safe_sharpe(agent.to_numpy())
    return sr * scale if math.isfinite(sr) else float("-inf")


def placebo_search(
    config: WalkForwardConfig,
    *,
    real: WalkForwardResult | None = None,
    ledger: Ledger | str | os.PathLike[str] | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    progress: bool = True,
    resume: bool = False,
) -> PlaceboResult:
    """Run `config`'s search on each of the domain's placebos (ledger experiment
    ``<experiment>/placebo``, which the DSR never counts). A blind placebo walks the real
    search's episodes, so it is scored against `real`'s baselines. Progress output calls each
    one ``placebo search k/n`` and names its data; `resume` as in :func:`run_walk_forward`."""
    domain = domain_for(config.env_id)
    placebos = domain.placebos(config)
    runs = []
    for k, placebo in enumerate(placebos):
        same_blocks = placebo.env_kwargs == config.env_kwargs and real is not None
        result = run_walk_forward(
            placebo,
            ledger=ledger,
            workers=workers,
            ray_address=ray_address,
            run_baselines=False,
            progress=progress,
            baselines=real.baseline_returns if same_blocks else None,
            resume=resume,
            label=placebo_label(placebo, k, len(placebos)),
        )
        runs.append(
            PlaceboRun(
                f"placebo {k}", placebo.env_kwargs, placebo.blind, score_sharpe(result), result
            )
        )
    return PlaceboResult(tuple(runs))


def placebo_label(placebo: WalkForwardConfig, k: int, n: int) -> str:
    """``placebo search 1/2 (random-walk market, data_seed 4) on trendgym/Portfolio-v0``."""
    if placebo.blind:
        what = "blind observations"
    else:
        what = f"{placebo.env_kwargs.get('preset', 'random_walk')} market".replace("_", "-")
        if "data_seed" in placebo.env_kwargs:
            what += f", data_seed {placebo.env_kwargs['data_seed']}"
    return f"placebo search {k + 1}/{n} ({what}) on {placebo.env_id}"


def policy_placebo(
    config: WalkForwardConfig,
    policies: Mapping[str, Callable[[Any], Any]],
    *,
    real: WalkForwardResult | None = None,
    ledger: Ledger | None = None,
) -> PlaceboResult:
    """:func:`placebo_search` for a search over fixed policies (:func:`run_policy_search`)."""
    runs = []
    for k, placebo in enumerate(domain_for(config.env_id).placebos(config)):
        same_blocks = placebo.env_kwargs == config.env_kwargs and real is not None
        result = run_policy_search(
            placebo,
            policies,
            ledger=ledger,
            baselines=real.baseline_returns if same_blocks else None,
        )
        runs.append(
            PlaceboRun(
                f"placebo {k}", placebo.env_kwargs, placebo.blind, score_sharpe(result), result
            )
        )
    return PlaceboResult(tuple(runs))


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
