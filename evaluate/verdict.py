"""The verdict: an agent passes only if every check passes, and a check that cannot be
computed fails with its reason (never a flattering default).

Required checks:

- ``deflated_sharpe``: DSR of the stitched OOS returns > 0.95, with N the number of distinct
  trial configurations of the experiment in the ledger and V[SR] the variance of their
  stitched OOS Sharpe ratios (Bailey & López de Prado 2014).
- ``pbo``: probability of backtest overfitting by CSCV over the trial configurations < 0.5.
- ``beats_baseline_2x``: OOS Sharpe net of costs at 2x costs above the baseline's (the best
  baseline at 2x unless the config names one).
- ``placebo``: the agent's OOS Sharpe above the best trial of the same search on a random walk.

Survivorship and cost-sensitivity findings are reported as warnings (not gating): the
evaluation itself always uses the point-in-time universe and counts the costs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trendgym.evaluate.ledger import Ledger
from trendgym.evaluate.pbo import PBOResult, pbo
from trendgym.evaluate.stats import (
    SeedDispersion,
    calmar_ratio,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    max_drawdown,
    min_track_record_length,
    return_moments,
    seed_dispersion,
    sortino_ratio,
)
from trendgym.evaluate.survivorship import (
    PlaceboResult,
    SurvivorshipReport,
    cost_stress,
    trial_sharpes,
)
from trendgym.evaluate.walkforward import WalkForwardResult, cost_label, safe_sharpe

__all__ = [
    "DSR_THRESHOLD",
    "PBO_THRESHOLD",
    "Assessment",
    "Check",
    "NotComputed",
    "Verdict",
    "assess",
    "ledger_config_sharpes",
    "verdict",
]

DSR_THRESHOLD = 0.95
PBO_THRESHOLD = 0.5


@dataclass(frozen=True)
class NotComputed:
    """A statistic that could not be computed, and why; its check fails."""

    reason: str


Measure = float | NotComputed


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: str
    detail: str
    required: bool = True

    @property
    def status(self) -> str:
        if self.passed:
            return "pass"
        return "FAIL" if self.required else "warn"


@dataclass(frozen=True)
class Verdict:
    agent: str
    checks: tuple[Check, ...]

    @property
    def passes(self) -> bool:
        return all(c.passed for c in self.checks if c.required)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if c.required and not c.passed]

    @property
    def warnings(self) -> list[str]:
        return [c.name for c in self.checks if not c.required and not c.passed]

    @property
    def headline(self) -> str:
        if self.passes:
            return f"{self.agent}: PASSES all {sum(c.required for c in self.checks)} checks"
        reasons = "; ".join(
            f"{c.name}: {c.detail}" for c in self.checks if c.required and not c.passed
        )
        return f"{self.agent}: FAILS {len(self.failed)} check(s) - {reasons}"


def _usable(value: Measure, what: str) -> tuple[float | None, str | None]:
    if isinstance(value, NotComputed):
        return None, f"not computed: {value.reason}"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None, f"not computed: {what} is {value!r}"
    if not math.isfinite(float(value)):
        return None, f"not computed: {what} is {float(value)}"
    return float(value), None


def verdict(
    agent: str,
    *,
    dsr: Measure,
    pbo: Measure,
    agent_sharpe_2x: Measure,
    baseline_sharpe_2x: Measure,
    baseline_name: str,
    agent_sharpe: Measure,
    placebo_best: Measure,
    warnings: Sequence[Check] = (),
) -> Verdict:
    """Judge one agent. Every input may be a number or :class:`NotComputed` (then it fails)."""
    checks = []
    v, why = _usable(dsr, "DSR")
    checks.append(
        Check(
            "deflated_sharpe",
            v is not None and v > DSR_THRESHOLD,
            v,
            f"> {DSR_THRESHOLD}",
            why or f"DSR {v:.3f} {'>' if v > DSR_THRESHOLD else '<='} {DSR_THRESHOLD}",
        )
    )
    v, why = _usable(pbo, "PBO")
    checks.append(
        Check(
            "pbo",
            v is not None and v < PBO_THRESHOLD,
            v,
            f"< {PBO_THRESHOLD}",
            why or f"PBO {v:.3f} {'<' if v < PBO_THRESHOLD else '>='} {PBO_THRESHOLD}",
        )
    )
    a, why_a = _usable(agent_sharpe_2x, "the agent's Sharpe at 2x costs")
    b, why_b = _usable(baseline_sharpe_2x, f"{baseline_name}'s Sharpe at 2x costs")
    ok = a is not None and b is not None and a > b
    checks.append(
        Check(
            "beats_baseline_2x",
            ok,
            None if a is None or b is None else a - b,
            f"agent Sharpe@2x > {baseline_name}",
            why_a or why_b or f"Sharpe at 2x costs {a:.3f} vs {baseline_name} {b:.3f}",
        )
    )
    a, why_a = _usable(agent_sharpe, "the agent's OOS Sharpe")
    p, why_p = _usable(placebo_best, "the placebo's best Sharpe")
    ok = a is not None and p is not None and a > p
    checks.append(
        Check(
            "placebo",
            ok,
            None if a is None or p is None else a - p,
            "agent Sharpe > placebo best",
            why_a or why_p or f"agent {a:.3f} vs best random-walk trial {p:.3f}",
        )
    )
    return Verdict(agent, tuple(checks) + tuple(warnings))


# --------------------------------------------------------------------------- from results


def ledger_config_sharpes(
    ledger: Ledger, *, env_id: str, agent: str, experiment: str
) -> dict[str, float]:
    """Per-period Sharpe of every distinct trial configuration of an experiment in the ledger.

    A configuration is (seed, params, code version): a fold-independent identity, so a
    deterministic rerun of the same trial is one trial, while any new seed, hyper-parameter,
    data set or code change is another. Its fold returns are stitched in fold order (the
    first record of each fold). Trials whose returns are flat count with Sharpe 0.
    """
    df = ledger.trials(with_returns=True, env_id=env_id, agent=agent, experiment=experiment)
    groups: dict[str, dict[int, np.ndarray]] = {}
    for seed, params, version, fold, r in zip(
        df["seed"], df["params"], df["code_version"], df["fold"], df["oos_returns"], strict=True
    ):
        key = json.dumps([None if pd.isna(seed) else int(seed), params, version], sort_keys=True)
        per = groups.setdefault(key, {})
        f = -1 if pd.isna(fold) else int(fold)
        per.setdefault(f, r)
    out = {}
    for key, per in groups.items():
        r = np.concatenate([per[f] for f in sorted(per)])
        sr = safe_sharpe(r) if r.size >= 2 else -math.inf
        out[key] = 0.0 if not math.isfinite(sr) else sr
    return out


@dataclass
class Assessment:
    """Statistics, checks and the verdict of one walk-forward evaluation."""

    result: WalkForwardResult
    verdict: Verdict
    performance: pd.DataFrame
    fold_sharpe: pd.DataFrame
    costs: pd.DataFrame
    dsr: dict[str, Any]
    pbo: PBOResult | None
    pbo_reason: str | None
    seeds: SeedDispersion | None
    seed_sharpes: dict[str, float]
    placebo: PlaceboResult | None
    survivorship: SurvivorshipReport | None
    baseline_name: str
    extras: dict[str, Any] = field(default_factory=dict)


def _scale(result: WalkForwardResult) -> float:
    return math.sqrt(result.periods_per_year) if result.periods_per_year else 1.0


def _annualised_sharpe(r: np.ndarray, scale: float) -> float:
    sr = safe_sharpe(r)
    return sr * scale if math.isfinite(sr) else float("nan")


def performance_table(result: WalkForwardResult, scenario: str) -> pd.DataFrame:
    """Sharpe, Sortino, Calmar, max drawdown and total return of agent and baselines."""
    scale = _scale(result)
    ppy = result.periods_per_year
    series = {"agent": result.agent_returns[scenario]}
    series.update({n: per[scenario] for n, per in result.baseline_returns.items()})
    rows = {}
    for name, s in series.items():
        r = s.to_numpy()
        row = {"sharpe": _annualised_sharpe(r, scale)}
        if ppy:
            row["sortino"] = sortino_ratio(r, periods_per_year=ppy)
            compounding = bool((r >= -1.0).all())
            row["calmar"] = calmar_ratio(r, ppy) if compounding else float("nan")
            row["max_drawdown"] = max_drawdown(r) if compounding else 1.0
            row["total_return"] = float(np.prod(1.0 + r) - 1.0)
        else:
            row["mean"] = float(r.mean())
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def fold_table(result: WalkForwardResult, scenario: str) -> pd.DataFrame:
    """Annualised Sharpe per fold (rows) of the agent and each baseline (columns)."""
    scale = _scale(result)
    series = {"agent": result.agent_returns[scenario]}
    series.update({n: per[scenario] for n, per in result.baseline_returns.items()})
    rows = {}
    start = 0
    for plan in result.folds:
        n = len(plan.period_index)
        rows[f"fold {plan.fold}"] = {
            name: _annualised_sharpe(s.to_numpy()[start : start + n], scale)
            for name, s in series.items()
        }
        start += n
    return pd.DataFrame.from_dict(rows, orient="index")


def _pbo_splits(n_obs: int) -> int:
    """The largest even number of CSCV blocks <= 16 that leaves >= 2 rows per block... and
    at least 2 blocks; 0 when even that does not fit."""
    s = min(16, (n_obs // 2) // 2 * 2)
    return s if s >= 2 else 0


def assess(
    result: WalkForwardResult,
    *,
    ledger: Ledger | None = None,
    placebo: PlaceboResult | None = None,
    survivorship: SurvivorshipReport | None = None,
) -> Assessment:
    """Compute every statistic and check of `result` and the agent's verdict."""
    config = result.config
    one = cost_label(1.0)
    scale = _scale(result)
    agent_r = result.agent_returns[one].to_numpy()

    # deflated Sharpe with N and V[SR] from the ledger
    dsr: dict[str, Any] = {}
    dsr_value: Measure
    if ledger is None:
        dsr_value = NotComputed("no trial ledger, so the number of trials is unknown")
    else:
        sharpes = ledger_config_sharpes(
            ledger, env_id=config.env_id, agent=config.algo, experiment=config.experiment
        )
        dsr["n_trials"] = len(sharpes)
        if len(sharpes) < 2:
            dsr_value = NotComputed(
                f"the ledger holds {len(sharpes)} trial configuration(s); V[SR] needs >= 2"
            )
        else:
            try:
                m = return_moments(agent_r)
                var = float(np.var(list(sharpes.values()), ddof=1))
                dsr.update(
                    sr=m.sharpe,
                    sr_annualised=m.sharpe * scale,
                    sr_variance=var,
                    expected_max_sr=expected_max_sharpe(var, len(sharpes)),
                    n_obs=m.n_obs,
                    skew=m.skew,
                    kurtosis=m.kurtosis,
                )
                dsr_value = deflated_sharpe_ratio(
                    m.sharpe, var, len(sharpes), m.n_obs, skew=m.skew, kurtosis=m.kurtosis
                )
                dsr["min_track_record"] = min_track_record_length(
                    m.sharpe, dsr["expected_max_sr"], m.skew, m.kurtosis
                )
            except ValueError as err:
                dsr_value = NotComputed(str(err))
    dsr["value"] = dsr_value if not isinstance(dsr_value, NotComputed) else None
    dsr["reason"] = dsr_value.reason if isinstance(dsr_value, NotComputed) else None

    # PBO over the trial configurations' stitched OOS returns
    matrix = result.trial_returns[one]
    pbo_result, pbo_reason = None, None
    splits = _pbo_splits(len(matrix))
    if matrix.shape[1] < 2:
        pbo_reason = f"{matrix.shape[1]} trial configuration(s); CSCV needs >= 2 to select from"
    elif splits == 0:
        pbo_reason = f"{len(matrix)} OOS periods are too few for CSCV"
    else:
        try:
            pbo_result = pbo(matrix.to_numpy(), n_splits=splits)
        except ValueError as err:
            pbo_reason = str(err)
    pbo_value: Measure = pbo_result.pbo if pbo_result is not None else NotComputed(pbo_reason or "")

    # seed dispersion over configurations (annualised OOS Sharpe)
    seed_sharpes = trial_sharpes(result, one)
    finite = [v for v in seed_sharpes.values() if math.isfinite(v)]
    seeds = seed_dispersion(finite) if finite else None

    # baseline to beat at 2x costs
    costs = cost_stress(result)
    agent_2x: Measure = float(costs.loc["agent", "sharpe@2x"])
    base_rows = costs.drop(index="agent")
    if base_rows.empty:
        baseline_name, base_2x = "baseline", NotComputed("no baseline was run on the OOS blocks")
    elif config.baseline == "best":
        baseline_name = str(base_rows["sharpe@2x"].idxmax())
        base_2x = float(base_rows.loc[baseline_name, "sharpe@2x"])
    elif config.baseline in base_rows.index:
        baseline_name = config.baseline
        base_2x = float(base_rows.loc[baseline_name, "sharpe@2x"])
    else:
        baseline_name = config.baseline
        base_2x = NotComputed(
            f"baseline {config.baseline!r} was not run (have {list(base_rows.index)})"
        )

    agent_sharpe = _annualised_sharpe(agent_r, scale)
    placebo_best: Measure = (
        NotComputed("no placebo search was run") if placebo is None else placebo.best
    )

    warnings = []
    if survivorship is not None:
        warnings.append(
            Check(
                "data_delistings",
                not survivorship.data.flagged,
                float(survivorship.data.n_delisted),
                "some delistings over a long span",
                survivorship.data.message,
                required=False,
            )
        )
        warnings.append(
            Check(
                "survivorship_bias",
                not survivorship.flagged,
                survivorship.max_bias,
                f"survivors-only Sharpe overstatement <= {survivorship.tolerance}",
                survivorship.message,
                required=False,
            )
        )
    agent_1x = float(costs.loc["agent", "sharpe@1x"])
    warnings.append(
        Check(
            "cost_stress",
            math.isfinite(agent_2x) and agent_2x > 0,
            agent_2x - agent_1x if math.isfinite(agent_2x) and math.isfinite(agent_1x) else None,
            "Sharpe at 2x costs > 0",
            f"Sharpe {agent_1x:.3f} at 1x costs, {agent_2x:.3f} at 2x",
            required=False,
        )
    )
    v = verdict(
        f"{config.algo} on {config.env_id}",
        dsr=dsr_value,
        pbo=pbo_value,
        agent_sharpe_2x=agent_2x,
        baseline_sharpe_2x=base_2x,
        baseline_name=baseline_name,
        agent_sharpe=agent_sharpe,
        placebo_best=placebo_best,
        warnings=warnings,
    )
    return Assessment(
        result=result,
        verdict=v,
        performance=performance_table(result, one),
        fold_sharpe=fold_table(result, one),
        costs=costs,
        dsr=dsr,
        pbo=pbo_result,
        pbo_reason=pbo_reason,
        seeds=seeds,
        seed_sharpes=seed_sharpes,
        placebo=placebo,
        survivorship=survivorship,
        baseline_name=baseline_name,
    )


def as_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe copy (NaN/inf -> None) for results.json."""
    out = {}
    for k, v in values.items():
        if isinstance(v, float | np.floating) and not math.isfinite(float(v)):
            out[k] = None
        elif isinstance(v, np.generic):
            out[k] = v.item()
        else:
            out[k] = v
    return out
