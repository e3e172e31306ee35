"""What a walk-forward evaluation hands to the verdict and the report, and to the ledger."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trendgym.evaluate.ledger import TrialRecord
from trendgym.evaluate.stats import max_drawdown, sharpe_ratio
from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label, run_key
from trendgym.evaluate.walkforward.plan import FoldPlan
from trendgym.evaluate.walkforward.trial import TrialOutcome

__all__ = [
    "WalkForwardResult",
    "best_by_mean",
    "decode_returns",
    "encode_returns",
    "ledger_records",
    "safe_sharpe",
    "scores",
    "trial_metrics",
]


@dataclass
class WalkForwardResult:
    """Everything a verdict and a report need from one walk-forward evaluation.

    `trials` are ordered by (fold, hp_index, seed). `agent_returns[scenario]` and
    `baseline_returns[name][scenario]` are stitched OOS series on the same periods;
    `trial_returns[scenario]` has one column per trial configuration (hyper-parameters x
    seed), its folds stitched, for PBO and seed dispersion. For a `paired` domain every
    statistic is taken on *scores*: returns minus the `hurdle` baseline's on the same periods.
    """

    config: WalkForwardConfig
    domain: str
    periods_per_year: float | None
    folds: list[FoldPlan]
    trials: list[TrialOutcome]
    selected: dict[int, TrialOutcome]
    agent_returns: dict[str, pd.Series]
    baseline_returns: dict[str, dict[str, pd.Series]]
    trial_returns: dict[str, pd.DataFrame]
    ledger_path: str | None
    ledger_ids: list[int]
    wall_seconds: float
    paired: bool = False
    hurdle: str | None = None  # paired: the best baseline at 1x costs (highest mean return)

    def config_label(self, hp_index: int, seed: int) -> str:
        return f"hp{hp_index}-s{seed}" if len(self.config.grid) > 1 else f"seed {seed}"


def safe_sharpe(returns: np.ndarray) -> float:
    """Per-period Sharpe for selection: 0 for a flat series, -inf when undefined (never chosen)."""
    try:
        return sharpe_ratio(returns)
    except ValueError:
        return -math.inf


def trial_metrics(returns: np.ndarray, periods_per_year: float | None) -> dict[str, Any]:
    if returns.size < 2:
        return {"n": int(returns.size)}
    sr = safe_sharpe(returns)
    out: dict[str, Any] = {
        "n": int(returns.size),
        "sharpe": sr if math.isfinite(sr) else None,
        "mean": float(returns.mean()),
    }
    if periods_per_year is not None:
        out["sharpe_annualised"] = sr * math.sqrt(periods_per_year) if math.isfinite(sr) else None
        out["total_return"] = float(np.prod(1.0 + returns) - 1.0)
        out["max_drawdown"] = max_drawdown(returns) if (returns >= -1.0).all() else 1.0
    return out


def best_by_mean(baseline_returns: Mapping[str, Mapping[str, pd.Series]], scenario: str) -> str:
    """The baseline with the highest mean return in `scenario` (execution: the lowest mean
    shortfall); ties go to the first name."""
    if not baseline_returns:
        raise ValueError("no baseline was run, so there is no best baseline")
    return max(baseline_returns, key=lambda n: float(baseline_returns[n][scenario].mean()))


def scores(result: WalkForwardResult, scenario: str) -> tuple[pd.Series, pd.DataFrame]:
    """The agent's and every trial's per-period scores in `scenario`: their returns, or for a
    paired domain their advantage over the best baseline of that scenario (same periods)."""
    agent, trials = result.agent_returns[scenario], result.trial_returns[scenario]
    if not result.paired:
        return agent, trials
    name = best_by_mean(result.baseline_returns, scenario)
    hurdle = result.baseline_returns[name][scenario].to_numpy()
    return (
        pd.Series(agent.to_numpy() - hurdle, index=agent.index, name="agent"),
        trials.sub(hurdle, axis=0),
    )


def encode_returns(returns: np.ndarray) -> str:
    """Per-period returns as base64 of little-endian float64 bytes (exact, JSON-safe)."""
    return base64.b64encode(np.asarray(returns, dtype="<f8").tobytes()).decode("ascii")


def decode_returns(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)


def ledger_records(
    outcomes: Sequence[TrialOutcome],
    config: WalkForwardConfig,
    plans: Mapping[int, FoldPlan],
    periods_per_year: float | None,
    hurdle: Mapping[int, np.ndarray] | None = None,
    hurdle_name: str | None = None,
) -> list[TrialRecord]:
    """One ledger record per outcome; its OOS returns are the trial's 1x returns, or with a
    `hurdle` (per fold, paired domains) its advantage over that baseline on the same periods,
    so the ledger's trials are compared in the unit the verdict judges.

    ``is_metrics`` also keeps what a resumed search needs to reuse the trial as it is: the
    search's :func:`run_key`, the trial's ``hp_index`` and its returns in every block."""
    key = run_key(config)
    records = []
    for o in outcomes:
        j = o.job
        oos = {
            label: trial_metrics(np.asarray(r), periods_per_year) for label, r in o.returns.items()
        }
        base = oos.get(cost_label(1.0), {})
        records.append(
            TrialRecord(
                env_id=config.env_id,
                agent=config.algo,
                experiment=config.experiment,
                fold=j.fold,
                seed=j.seed,
                # fold-independent, so equal params + seed + code version = the same trial config
                params={
                    "hparams": dict(j.hparams),
                    "model_kwargs": dict(j.model_kwargs),
                    "env_kwargs": dict(config.env_kwargs),
                    "timesteps": j.timesteps,
                    "extractor": j.extractor,
                    "n_folds": config.n_folds,
                    "validation_fraction": config.validation_fraction,
                    "blind": config.blind,
                    "n_envs": config.n_envs,
                    "score": f"advantage over {hurdle_name}" if hurdle else "returns",
                    # only when given, so the default search's trials keep their identity
                    **(
                        {"test_env_kwargs": dict(config.test_env_kwargs)}
                        if config.test_env_kwargs is not None
                        else {}
                    ),
                },
                is_metrics={
                    "validation": oos.pop("validation", {}),
                    "train_kwargs": {k: v for k, v in j.train_kwargs.items() if k != "costs_bps"},
                    "train_seconds": round(o.train_seconds, 3),
                    "describe": dict(plans[j.fold].describe),
                    "run_key": key,
                    "hp_index": j.hp_index,
                    "block_returns": {k: encode_returns(r) for k, r in o.returns.items()},
                },
                oos_metrics={"sharpe": base.get("sharpe"), **{k: v for k, v in oos.items()}},
                oos_returns=np.asarray(o.returns[cost_label(1.0)])
                - (hurdle[j.fold] if hurdle else 0.0),
            )
        )
    return records
