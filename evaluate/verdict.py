"""The verdict: an agent passes only if every check passes, and a check that cannot be
computed fails with its reason (never a flattering default).

Every check reads *scores*: per-period returns for the portfolio, and for execution the
per-episode savings against the best baseline on the same episodes (paired), in bps.

Required checks:

- ``deflated_sharpe``: DSR of the agent's stitched OOS scores > 0.95, with N every trial on
  the same env and data in the ledger (whatever its tag or algorithm) and V[SR] the variance
  of their Sharpe ratios (Bailey & López de Prado 2014).
- ``selection``: what choosing the in-sample best costs, by CSCV over the trial
  configurations: the in-sample best must lose out of sample in at most 20% of the splits.
  Alike good trials pass (selection costs nothing when every choice is good); PBO (ties not
  counted as overfit) is reported beside it.
- ``beats_baseline_2x``: the agent's per-period advantage over the best baseline at 2x costs
  is significantly positive (PSR of the paired difference > 0.95), so beating a baseline
  that is itself noise counts for nothing.
- ``placebo``: the agent's OOS score Sharpe above the best agent of the same search where
  nothing can be learned (random-walk markets from other data seeds; blind observations).
- ``universe`` (portfolio): an equity-like universe with no delisting over a long span is
  INCONCLUSIVE unless it is stated (``universe="pit"|"futures"``) or a synthetic preset.

Survivorship bias and cost sensitivity are reported as warnings (not gating).
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
    probabilistic_sharpe_ratio,
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
from trendgym.evaluate.walkforward.results import best_by_mean, scores

__all__ = [
    "DSR_THRESHOLD",
    "EDGE_THRESHOLD",
    "SELECTION_LOSS_MAX",
    "Assessment",
    "Check",
    "Edge",
    "NotComputed",
    "SelectionCost",
    "Verdict",
    "assess",
    "ledger_config_sharpes",
    "verdict",
]

DSR_THRESHOLD = 0.95
EDGE_THRESHOLD = 0.95  # PSR that the advantage over the baseline at 2x costs is > 0
SELECTION_LOSS_MAX = 0.2  # share of CSCV splits in which the in-sample best may lose OOS


@dataclass(frozen=True)
class NotComputed:
    """A statistic that could not be computed, and why; its check fails."""

    reason: str


Measure = float | NotComputed


@dataclass(frozen=True)
class SelectionCost:
    """What picking the in-sample best trial costs out of sample, over CSCV splits."""

    prob_oos_loss: float  # share of splits in which the IS-best trial's OOS Sharpe < 0
    is_sharpe: float  # mean in-sample Sharpe of the IS-best trial (per period)
    oos_sharpe: float  # ... and its mean out-of-sample Sharpe
    pbo: float  # PBO with ties not counted as overfit
    n_splits: int

    @property
    def kept(self) -> float:
        """Share of the in-sample Sharpe the selected trial keeps out of sample."""
        return self.oos_sharpe / self.is_sharpe if self.is_sharpe > 0 else float("nan")


@dataclass(frozen=True)
class Edge:
    """The agent against one baseline on the same periods, at one cost scenario."""

    baseline: str
    mean: float  # mean per-period advantage (return units; execution: x1e4 = bps saved)
    stderr: float
    psr: float  # probability that the true advantage is > 0 (PSR of the difference)
    agent_sharpe: float
    baseline_sharpe: float
    unit: str = "return"  # "bps" for execution scores


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    threshold: str
    detail: str
    required: bool = True
    inconclusive: bool = False  # failed only for want of information the user can give

    @property
    def status(self) -> str:
        if self.passed:
            return "pass"
        if self.inconclusive:
            return "INCONCLUSIVE"
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
    def status(self) -> str:
        """PASS, FAIL, or INCONCLUSIVE (nothing failed but something could not be judged)."""
        if self.passes:
            return "PASS"
        hard = [c for c in self.checks if c.required and not c.passed and not c.inconclusive]
        return "FAIL" if hard else "INCONCLUSIVE"

    @property
    def headline(self) -> str:
        n = sum(c.required for c in self.checks)
        if self.passes:
            return f"{self.agent}: PASSES all {n} checks"
        reasons = "; ".join(
            f"{c.name}: {c.detail}" for c in self.checks if c.required and not c.passed
        )
        if self.status == "INCONCLUSIVE":
            return f"{self.agent}: INCONCLUSIVE - {reasons}"
        return f"{self.agent}: FAILS {len(self.failed)} check(s) - {reasons}"


def _usable(value: Measure, what: str) -> tuple[float | None, str | None]:
    if isinstance(value, NotComputed):
        return None, f"not computed: {value.reason}"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None, f"not computed: {what} is {value!r}"
    if not math.isfinite(float(value)):
        return None, f"not computed: {what} is {float(value)}"
    return float(value), None


def dsr_check(dsr: Measure, context: str = "") -> Check:
    """DSR above its threshold; `context` says which trials it paid for."""
    v, why = _usable(dsr, "DSR")
    if why is None:
        verb = "above" if v > DSR_THRESHOLD else "not above"
        why = f"DSR {v:.3f} {verb} {DSR_THRESHOLD}"
    if context:
        why += f" ({context})"
    return Check(
        "deflated_sharpe", v is not None and v > DSR_THRESHOLD, v, f"> {DSR_THRESHOLD}", why
    )


def selection_check(selection: SelectionCost | NotComputed) -> Check:
    if isinstance(selection, NotComputed):
        return Check(
            "selection",
            False,
            None,
            f"P(OOS loss) <= {SELECTION_LOSS_MAX}",
            f"not computed: {selection.reason}",
        )
    s = selection
    ok = s.prob_oos_loss <= SELECTION_LOSS_MAX
    kept = f"{s.kept:.0%}" if math.isfinite(s.kept) else "none"
    words = (
        f"the in-sample best trial lost out of sample in {s.prob_oos_loss:.0%} of "
        f"{s.n_splits} CSCV splits ({'at most' if ok else 'more than'} "
        f"{SELECTION_LOSS_MAX:.0%} allowed) and kept {kept} of its in-sample Sharpe "
        f"({s.is_sharpe:.3f} -> {s.oos_sharpe:.3f} per period); PBO {s.pbo:.2f}"
    )
    words += (
        ": choosing among these trials costs little"
        if ok
        else ": what the search selects does not hold out of sample"
    )
    return Check("selection", ok, s.prob_oos_loss, f"P(OOS loss) <= {SELECTION_LOSS_MAX}", words)


def edge_check(edge: Edge | NotComputed, baseline_name: str) -> Check:
    threshold = f"PSR(advantage over {baseline_name} at 2x) > {EDGE_THRESHOLD}"
    if isinstance(edge, NotComputed):
        return Check("beats_baseline_2x", False, None, threshold, f"not computed: {edge.reason}")
    e = edge
    ok = e.psr > EDGE_THRESHOLD
    if e.unit == "bps":
        size = f"saves {e.mean:.2f} ± {e.stderr:.2f} bps per episode against {e.baseline}"
    else:
        size = (
            f"Sharpe {e.agent_sharpe:.3f} vs {e.baseline} {e.baseline_sharpe:.3f}, "
            f"advantage {e.mean:.2e} ± {e.stderr:.2e} per period"
        )
    verdict_words = "significant" if ok else "not significant"
    return Check(
        "beats_baseline_2x",
        ok,
        e.psr,
        threshold,
        f"at 2x costs {size}: {verdict_words} (PSR {e.psr:.3f})",
    )


def placebo_check(agent_sharpe: Measure, placebo_best: Measure, what: str = "placebo") -> Check:
    a, why_a = _usable(agent_sharpe, "the agent's OOS Sharpe")
    p, why_p = _usable(placebo_best, "the placebo's best Sharpe")
    ok = a is not None and p is not None and a > p
    return Check(
        "placebo",
        ok,
        None if a is None or p is None else a - p,
        "agent Sharpe > placebo best",
        why_a or why_p or f"agent {a:.3f} vs best {what} {p:.3f}",
    )


def verdict(
    agent: str,
    *,
    dsr: Measure,
    selection: SelectionCost | NotComputed,
    edge: Edge | NotComputed,
    baseline_name: str,
    agent_sharpe: Measure,
    placebo_best: Measure,
    universe: Check | None = None,
    warnings: Sequence[Check] = (),
) -> Verdict:
    """Judge one agent. Every input may be a number or :class:`NotComputed` (then it fails)."""
    checks = [
        dsr_check(dsr),
        selection_check(selection),
        edge_check(edge, baseline_name),
        placebo_check(agent_sharpe, placebo_best),
    ]
    if universe is not None:
        checks.append(universe)
    return Verdict(agent, tuple(checks) + tuple(warnings))


# --------------------------------------------------------------------------- from results


def ledger_config_sharpes(
    ledger: Ledger,
    *,
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    agent: str | None = None,
    experiment: str | None = None,
) -> dict[str, float]:
    """Per-period Sharpe of every distinct trial configuration on an env (and its data).

    Every trial on `env_id` counts, whatever its experiment tag or algorithm, except placebo
    searches; `env_kwargs` keeps the trials on the same data (and env settings), `agent` and
    `experiment` narrow further when given. A configuration is (experiment, algorithm, seed,
    params, code version): a deterministic rerun under the same tag is one trial, while a new
    tag, algorithm, seed, hyper-parameter, data set or code change is another. Its fold
    returns are stitched in fold order (the first record of each fold). Trials whose returns
    are flat count with Sharpe 0.
    """
    filters = {k: v for k, v in (("agent", agent), ("experiment", experiment)) if v is not None}
    df = ledger.trials(with_returns=True, env_id=env_id, **filters)
    data = None if env_kwargs is None else json.dumps(dict(env_kwargs), sort_keys=True)
    groups: dict[str, dict[int, np.ndarray]] = {}
    for exp, algo, seed, params, version, fold, r in zip(
        df["experiment"],
        df["agent"],
        df["seed"],
        df["params"],
        df["code_version"],
        df["fold"],
        df["oos_returns"],
        strict=True,
    ):
        if str(exp).endswith("/placebo") or params.get("blind"):
            continue
        if data is not None and json.dumps(params.get("env_kwargs", {}), sort_keys=True) != data:
            continue
        seed = None if pd.isna(seed) else int(seed)
        key = json.dumps([exp, algo, seed, params, version], sort_keys=True)
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


def deflated(result: WalkForwardResult, ledger: Ledger | None, score: np.ndarray) -> dict:
    """DSR of the agent's scores with N and V[SR] from every trial on this env and data."""
    scale = _scale(result)
    dsr: dict[str, Any] = {"ledger": None if ledger is None else str(ledger.path)}
    value: Measure
    if ledger is None:
        value = NotComputed("no trial ledger, so the number of trials is unknown")
    else:
        config = result.config
        sharpes = ledger_config_sharpes(ledger, env_id=config.env_id, env_kwargs=config.env_kwargs)
        n_run = result.trial_returns[cost_label(1.0)].shape[1]
        dsr.update(n_trials=len(sharpes), n_this_run=n_run, fresh=len(sharpes) <= n_run)
        if len(sharpes) < 2:
            value = NotComputed(
                f"the ledger holds {len(sharpes)} trial configuration(s); V[SR] needs >= 2"
            )
        else:
            try:
                m = return_moments(score)
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
                value = deflated_sharpe_ratio(
                    m.sharpe, var, len(sharpes), m.n_obs, skew=m.skew, kurtosis=m.kurtosis
                )
                dsr["min_track_record"] = min_track_record_length(
                    m.sharpe, dsr["expected_max_sr"], m.skew, m.kurtosis
                )
            except ValueError as err:
                value = NotComputed(str(err))
    dsr["value"] = value if not isinstance(value, NotComputed) else None
    dsr["reason"] = value.reason if isinstance(value, NotComputed) else None
    return dsr


def ledger_words(dsr: Mapping[str, Any]) -> str:
    """How many trials the DSR paid for, from which ledger, in words."""
    if dsr.get("ledger") is None:
        return "no ledger"
    n = dsr.get("n_trials", 0)
    if dsr.get("fresh"):
        return f"fresh ledger {dsr['ledger']}: N = {n} counts only this run's trials"
    return f"ledger {dsr['ledger']}: N = {n} trials on this env and data, all tags and algorithms"


def selection_cost(matrix: pd.DataFrame) -> tuple[PBOResult | None, SelectionCost | NotComputed]:
    """CSCV over the trial configurations' stitched OOS scores."""
    splits = _pbo_splits(len(matrix))
    if matrix.shape[1] < 2:
        return None, NotComputed(
            f"{matrix.shape[1]} trial configuration(s); CSCV needs >= 2 to select from"
        )
    if splits == 0:
        return None, NotComputed(f"{len(matrix)} OOS periods are too few for CSCV")
    try:
        res = pbo(matrix.to_numpy(), n_splits=splits)
    except ValueError as err:
        return None, NotComputed(str(err))
    cost = SelectionCost(
        prob_oos_loss=res.prob_oos_loss,
        is_sharpe=float(res.is_performance.mean()),
        oos_sharpe=float(res.oos_performance.mean()),
        pbo=res.pbo,
        n_splits=res.n_combinations,
    )
    return res, cost


def paired_edge(agent: np.ndarray, base: np.ndarray, name: str, unit: str) -> Edge | NotComputed:
    """The agent's per-period advantage over a baseline on the same periods."""
    diff = np.asarray(agent, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    if diff.size < 3 or np.std(diff) == 0.0:
        return NotComputed(f"the agent's advantage over {name} has no variation to test")
    m = return_moments(diff)
    psr = probabilistic_sharpe_ratio(m.sharpe, 0.0, m.n_obs, skew=m.skew, kurtosis=m.kurtosis)
    k = 1e4 if unit == "bps" else 1.0
    sa, sb = safe_sharpe(np.asarray(agent)), safe_sharpe(np.asarray(base))
    return Edge(
        baseline=name,
        mean=float(diff.mean()) * k,
        stderr=float(diff.std(ddof=1) / math.sqrt(diff.size)) * k,
        psr=float(psr),
        agent_sharpe=sa,
        baseline_sharpe=sb,
        unit=unit,
    )


def baseline_to_beat(result: WalkForwardResult, costs: pd.DataFrame) -> tuple[str, str | None]:
    """The baseline the agent must beat at 2x costs (its name, or why there is none): the
    named one, else the best at 2x (highest Sharpe; paired: lowest mean cost)."""
    config = result.config
    names = list(result.baseline_returns)
    if not names:
        return "baseline", "no baseline was run on the OOS blocks"
    if config.baseline != "best":
        if config.baseline in names:
            return config.baseline, None
        return config.baseline, f"baseline {config.baseline!r} was not run (have {names})"
    if result.paired:
        return best_by_mean(result.baseline_returns, cost_label(2.0)), None
    return str(costs.drop(index="agent")["sharpe@2x"].idxmax()), None


def universe_check(
    survivorship: SurvivorshipReport, config_universe: str | None, env_kwargs: Mapping[str, Any]
) -> Check:
    """Gate an equity-like universe that never loses a name: INCONCLUSIVE unless its type is
    stated or known (synthetic presets know theirs: futures rolled, equities point-in-time)."""
    from trendgym.envs.market.generator import PRESET_UNIVERSE

    data = survivorship.data
    stated = config_universe
    source = "stated"
    if stated is None and env_kwargs.get("prices") is None:
        stated = PRESET_UNIVERSE.get(str(env_kwargs.get("preset", "futures")))
        source = f"the {env_kwargs.get('preset', 'futures')!r} preset"
    threshold = "delistings seen, or universe stated pit|futures"
    if not data.flagged:
        return Check("universe", True, float(data.n_delisted), threshold, data.message)
    if stated == "futures":
        words = f"{data.message}; {source} says rolled futures, which never delist"
        return Check("universe", True, 0.0, threshold, words)
    if stated == "pit":
        words = f"{data.message}; {source} says point-in-time, so the names are all that existed"
        return Check("universe", True, 0.0, threshold, words)
    words = (
        f"{data.message}, so the data may be survivors only: say universe pit (every name "
        "that existed, delisted ones included) or futures (rolled contracts) to judge it"
    )
    return Check("universe", False, 0.0, threshold, words, inconclusive=True)


def assess(
    result: WalkForwardResult,
    *,
    ledger: Ledger | None = None,
    placebo: PlaceboResult | None = None,
    survivorship: SurvivorshipReport | None = None,
) -> Assessment:
    """Compute every statistic and check of `result` and the agent's verdict."""
    config = result.config
    one, two = cost_label(1.0), cost_label(2.0)
    scale = _scale(result)
    agent_score, trial_scores = scores(result, one)
    dsr = deflated(result, ledger, agent_score.to_numpy())
    dsr_value: Measure = dsr["value"] if dsr["reason"] is None else NotComputed(dsr["reason"])
    pbo_result, selection = selection_cost(trial_scores)
    pbo_reason = selection.reason if isinstance(selection, NotComputed) else None

    # seed dispersion over configurations (annualised OOS Sharpe)
    seed_sharpes = trial_sharpes(result, one)
    finite = [v for v in seed_sharpes.values() if math.isfinite(v)]
    seeds = seed_dispersion(finite) if finite else None

    costs = cost_stress(result)
    agent_2x = float(costs.loc["agent", "sharpe@2x"])
    baseline_name, missing = baseline_to_beat(result, costs)
    edge: Edge | NotComputed = (
        NotComputed(missing)
        if missing
        else paired_edge(
            result.agent_returns[two].to_numpy(),
            result.baseline_returns[baseline_name][two].to_numpy(),
            baseline_name,
            "bps" if result.paired else "return",
        )
    )

    agent_sharpe = _annualised_sharpe(agent_score.to_numpy(), scale)
    placebo_best: Measure = (
        NotComputed("no placebo search was run") if placebo is None else placebo.best
    )
    checks = [
        dsr_check(dsr_value, ledger_words(dsr)),
        selection_check(selection),
        edge_check(edge, baseline_name),
        placebo_check(
            agent_sharpe, placebo_best, "placebo agent" if placebo is None else placebo.describe
        ),
    ]
    warnings = []
    if survivorship is not None:
        checks.append(universe_check(survivorship, config.universe, config.env_kwargs))
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
    v = Verdict(f"{config.algo} on {config.env_id}", tuple(checks) + tuple(warnings))
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
        extras={"edge_2x": None if isinstance(edge, NotComputed) else edge.__dict__},
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
