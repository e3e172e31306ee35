"""Walk-forward runner: train on each fold's past only, select inside it, test on the next block.

For every fold x seed x hyper-parameter set (a *trial*) one job trains an SB3 agent on the
fold's training span minus a validation tail, scores it on that tail (the only thing model,
seed and hyper-parameter selection may look at), and evaluates it on the out-of-sample block
at every cost multiplier. Each trial is appended to the trial ledger as it finishes. Per fold
the trial with the best validation Sharpe is the agent; its OOS blocks are stitched into one
series. Every baseline runs on exactly the same OOS blocks and costs.

Modules, one job each: ``config`` (what to run), ``plan`` (a fold's blocks), ``domain`` (the
protocol and registry), ``portfolio`` and ``execution`` (the built-in domains), ``trial`` (one
training job), ``backends`` (local processes, Ray), ``results`` (the result, its scores and
ledger records), ``loop`` (:func:`run_walk_forward`) and ``rules`` (the same evaluation of a
search over fixed policies, :func:`run_policy_search`).
"""

from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label, with_env_kwargs
from trendgym.evaluate.walkforward.domain import (
    Domain,
    block_returns,
    domain_for,
    episodes_returns,
    make_env,
    register_domain,
)
from trendgym.evaluate.walkforward.execution import ExecutionDomain
from trendgym.evaluate.walkforward.loop import run_walk_forward
from trendgym.evaluate.walkforward.plan import Block, FoldPlan
from trendgym.evaluate.walkforward.portfolio import PortfolioDomain, portfolio_episode_returns
from trendgym.evaluate.walkforward.results import WalkForwardResult, safe_sharpe, scores
from trendgym.evaluate.walkforward.rules import run_policy_search
from trendgym.evaluate.walkforward.trial import TrialJob, TrialOutcome, run_trial

__all__ = [
    "Block",
    "Domain",
    "ExecutionDomain",
    "FoldPlan",
    "PortfolioDomain",
    "TrialJob",
    "TrialOutcome",
    "WalkForwardConfig",
    "WalkForwardResult",
    "block_returns",
    "cost_label",
    "domain_for",
    "episodes_returns",
    "make_env",
    "portfolio_episode_returns",
    "register_domain",
    "run_policy_search",
    "run_trial",
    "run_walk_forward",
    "safe_sharpe",
    "scores",
    "with_env_kwargs",
]
