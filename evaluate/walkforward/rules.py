"""Walk-forward evaluation of a search over fixed policies (rules, or agents trained elsewhere).

Each named policy factory is one trial configuration, scored on every fold's validation and
OOS blocks exactly as a trained trial is; selection, stitching, baselines and the ledger are
the loop's own, so a rule-based search earns the same verdict as a trained one, and pays for
its trials in the same ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from trendgym.evaluate.ledger import Ledger
from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label
from trendgym.evaluate.walkforward.domain import domain_for, episodes_returns, make_env
from trendgym.evaluate.walkforward.loop import (
    baseline_returns,
    finish_result,
    oos_index,
    paired_hurdle,
    trial_jobs,
)
from trendgym.evaluate.walkforward.results import WalkForwardResult, ledger_records
from trendgym.evaluate.walkforward.trial import TrialOutcome

__all__ = ["run_policy_search"]

PolicyFactory = Callable[[Any], Any]  # env -> object with SB3's predict()


def run_policy_search(
    config: WalkForwardConfig,
    policies: Mapping[str, PolicyFactory],
    *,
    ledger: Ledger | None = None,
    baselines: dict[str, dict[str, pd.Series]] | None = None,
) -> WalkForwardResult:
    """Score every policy in every fold's blocks, select per fold on validation, stitch.

    Policy k is trial "seed k" (its name is recorded in the ledger as ``hparams.policy``);
    `config.seeds` and `config.grid` are replaced accordingly. With ``config.blind`` every
    policy acts on noise observations (the placebo). `baselines` reuses baseline returns
    already scored on exactly these blocks.
    """
    if not policies:
        raise ValueError("policies must name at least one policy factory")
    started = time.perf_counter()
    names = list(policies)
    config = replace(config, seeds=tuple(range(len(names))), grid=({},))
    domain = domain_for(config.env_id)
    plans = domain.plan(config)
    scenarios = [cost_label(m) for m in config.cost_multipliers]
    index = oos_index(domain, plans)
    if baselines is None:
        baselines = baseline_returns(config, domain, plans, scenarios, index)
    hurdle_name, hurdle = paired_hurdle(domain, plans, baselines)
    outcomes = []
    for job in trial_jobs(config, plans):
        job = replace(job, hparams={"policy": names[job.seed]})
        factory = policies[names[job.seed]]
        returns = {}
        for label, block in job.blocks.items():
            env = make_env(config.env_id, block.env_kwargs, config.blind)
            try:
                returns[label] = episodes_returns(domain, env, factory(env), block.episode_seeds)
            finally:
                env.close()
        outcomes.append(TrialOutcome(job, returns, 0.0))
    by_fold = {p.fold: p for p in plans}
    ids: list[int] = []
    if ledger is not None:
        records = ledger_records(
            outcomes, config, by_fold, domain.periods_per_year, hurdle, hurdle_name
        )
        ids = ledger.append_many(records)
    return finish_result(
        config, domain, plans, outcomes, baselines, (ledger, ids), started, hurdle_name
    )
