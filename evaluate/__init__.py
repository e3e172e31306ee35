"""Walk-forward evaluation that refuses to flatter: splits, statistics, PBO, trial ledger.

Sharpe ratios are per period unless a name says ``annualised``; kurtosis is non-excess.
"""

from trendgym.evaluate.ledger import DEFAULT_LEDGER_PATH, Ledger, TrialRecord, code_version
from trendgym.evaluate.pbo import PBOResult, pbo
from trendgym.evaluate.report import Report, evaluate_agent, write_report
from trendgym.evaluate.splits import (
    CombinatorialFold,
    Fold,
    backtest_paths,
    combinatorial_purged_splits,
    walk_forward_splits,
)
from trendgym.evaluate.stats import (
    ReturnMoments,
    SeedDispersion,
    ShortfallSummary,
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
from trendgym.evaluate.survivorship import (
    PlaceboResult,
    SurvivorshipReport,
    cost_stress,
    delisting_check,
    placebo_search,
    survivorship_check,
)
from trendgym.evaluate.verdict import Assessment, Check, NotComputed, Verdict, assess, verdict
from trendgym.evaluate.walkforward import (
    WalkForwardConfig,
    WalkForwardResult,
    register_domain,
    run_policy_search,
    run_walk_forward,
)
from trendgym.evaluate.walkforward.signals import EvaluationInterrupted

__all__ = [
    "EvaluationInterrupted",
    "DEFAULT_LEDGER_PATH",
    "CombinatorialFold",
    "Fold",
    "Ledger",
    "PBOResult",
    "ReturnMoments",
    "SeedDispersion",
    "ShortfallSummary",
    "TrialRecord",
    "annualise_sharpe",
    "annualised_sharpe_ratio",
    "backtest_paths",
    "calmar_ratio",
    "code_version",
    "combinatorial_purged_splits",
    "deflated_sharpe_ratio",
    "drawdown",
    "expected_max_sharpe",
    "interquartile_mean",
    "max_drawdown",
    "min_track_record_length",
    "pbo",
    "per_period_sharpe",
    "probabilistic_sharpe_ratio",
    "return_moments",
    "seed_dispersion",
    "sharpe_ratio",
    "shortfall_summary",
    "sortino_ratio",
    "turnover",
    "walk_forward_splits",
    # walk-forward runner, checks, verdict, reports
    "Assessment",
    "Check",
    "NotComputed",
    "PlaceboResult",
    "Report",
    "SurvivorshipReport",
    "Verdict",
    "WalkForwardConfig",
    "WalkForwardResult",
    "assess",
    "cost_stress",
    "delisting_check",
    "evaluate_agent",
    "placebo_search",
    "register_domain",
    "run_policy_search",
    "run_walk_forward",
    "survivorship_check",
    "verdict",
    "write_report",
]
