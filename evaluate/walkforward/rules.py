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

import numpy as np
import pandas as pd

from trendgym.evaluate.ledger import Ledger
from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label
from trendgym.evaluate.walkforward.domain import domain_for, episodes_returns, make_env
from trendgym.evaluate.walkforward.loop import (
    baseline_returns,
    fold_slices,
    select_per_fold,
    stitch_trials,
    trial_jobs,
)
from trendgym.evaluate.walkforward.results import WalkForwardResult, best_by_mean, ledger_records
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
    index = pd.Index([i for p in plans for i in p.period_index])
    if domain.periods_per_year is not None:
        index = pd.DatetimeIndex(index)
    if baselines is None:
        baselines = baseline_returns(config, domain, plans, scenarios, index)
    hurdle_name, hurdle = None, None
    if domain.paired:
        hurdle_name = best_by_mean(baselines, cost_label(1.0))
        stitched = baselines[hurdle_name][cost_label(1.0)].to_numpy()
        hurdle = {p.fold: stitched[s] for p, s in zip(plans, fold_slices(plans), strict=True)}
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
    selected = select_per_fold(plans, outcomes, by_mean=domain.paired)
    agent_returns = {
        s: pd.Series(
            np.concatenate([selected[p.fold].returns[s] for p in plans]), index=index, name="agent"
        )
        for s in scenarios
    }
    return WalkForwardResult(
        config=config,
        domain=domain.name,
        periods_per_year=domain.periods_per_year,
        folds=plans,
        trials=outcomes,
        selected=selected,
        agent_returns=agent_returns,
        baseline_returns=baselines,
        trial_returns=stitch_trials(config, plans, outcomes, scenarios, index),
        ledger_path=None if ledger is None else str(ledger.path),
        ledger_ids=ids,
        wall_seconds=time.perf_counter() - started,
        paired=domain.paired,
        hurdle=hurdle_name,
    )
