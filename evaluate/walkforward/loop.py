"""The walk-forward loop: build every trial job, run them, select per fold, stitch OOS series."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from trendgym.evaluate.ledger import DEFAULT_LEDGER_PATH, Ledger
from trendgym.evaluate.walkforward.backends import local_backend, ray_backend
from trendgym.evaluate.walkforward.config import WalkForwardConfig, cost_label, run_key
from trendgym.evaluate.walkforward.domain import Domain, domain_for, episodes_returns, make_env
from trendgym.evaluate.walkforward.plan import FoldPlan
from trendgym.evaluate.walkforward.progress import TrialProgress
from trendgym.evaluate.walkforward.results import (
    WalkForwardResult,
    best_by_mean,
    decode_returns,
    ledger_records,
    safe_sharpe,
)
from trendgym.evaluate.walkforward.signals import signals_held
from trendgym.evaluate.walkforward.trial import TrialJob, TrialOutcome

__all__ = [
    "baseline_returns",
    "finished_trials",
    "fold_slices",
    "run_walk_forward",
    "select_per_fold",
    "stitch_trials",
    "trial_jobs",
]


def run_walk_forward(
    config: WalkForwardConfig,
    *,
    ledger: Ledger | str | os.PathLike[str] | None = DEFAULT_LEDGER_PATH,
    workers: int | None = None,
    ray_address: str | None = None,
    run_baselines: bool = True,
    progress: bool = True,
    model_dir: str | os.PathLike[str] | None = None,
    baselines: dict[str, dict[str, pd.Series]] | None = None,
    resume: bool = False,
    label: str | None = None,
) -> WalkForwardResult:
    """Run every trial of `config`, append each to the ledger, stitch the OOS results.

    Parameters
    ----------
    ledger : a Ledger, a path, or None (no ledger: the DSR then cannot be computed).
    workers : local worker processes (default: all cores, at most one per job); 0 runs the
        trials in this process, as does a script that calls this outside an
        ``if __name__ == "__main__":`` block (worker processes import the script again).
    ray_address : run the jobs as Ray tasks instead ("local" starts ``ray.init()`` here;
        anything else is passed to ``ray.init(address=...)``).
    run_baselines : also score the domain's baselines on the same OOS blocks.
    model_dir : keep each trial's trained run directory under it (default: discarded).
    baselines : baseline returns already scored on exactly these OOS blocks (a placebo reuses
        its real search's); a paired domain needs them before its trials are recorded.
    resume : reuse the trials the ledger holds for this exact search (same config and code
        version, :func:`run_key`) instead of training them again; the result is the one an
        uninterrupted run gives, and no trial is recorded twice.
    label : what the progress output calls this search (default ``walk-forward <env id>``).
    """
    started = time.perf_counter()
    domain = domain_for(config.env_id)
    plans = domain.plan(config)
    by_fold = {p.fold: p for p in plans}
    if isinstance(ledger, str | os.PathLike):
        ledger = Ledger(ledger)
    scenarios = [cost_label(m) for m in config.cost_multipliers]
    index = oos_index(domain, plans)
    if baselines is None and (run_baselines or domain.paired):
        baselines = baseline_returns(config, domain, plans, scenarios, index)
    hurdle_name, hurdle = paired_hurdle(domain, plans, baselines)
    jobs = trial_jobs(config, plans, model_dir)
    finished = finished_trials(ledger, config, jobs) if resume and ledger is not None else {}
    outcomes = [o for o, _ in finished.values()]
    ids = [i for _, i in finished.values()]
    todo = [j for j in jobs if (j.fold, j.hp_index, j.seed) not in finished]
    bar = TrialProgress(
        label or f"walk-forward {config.env_id}", len(jobs), len(finished), enabled=progress
    )
    try:
        # the trials' scratch files, removed with whatever a stopped worker left behind
        with tempfile.TemporaryDirectory(prefix="trendgym-search-") as scratch:
            stream = (
                ray_backend(todo, ray_address)
                if ray_address
                else local_backend(todo, workers, scratch)
            )
            with closing(stream):  # its workers stop before the scratch goes
                for outcome in stream:
                    outcomes.append(outcome)
                    if ledger is not None:  # as each trial ends: a later crash leaves it paid for
                        records = ledger_records(
                            [outcome], config, by_fold, domain.periods_per_year, hurdle, hurdle_name
                        )
                        with signals_held():  # recorded whole or not at all
                            ids += ledger.append_many(records)
                    bar.update()
    finally:
        bar.close()
    outcomes.sort(key=lambda o: o.key)
    return finish_result(
        config,
        domain,
        plans,
        outcomes,
        baselines or {},
        (ledger, sorted(ids)),
        started,
        hurdle_name,
    )


def finished_trials(
    ledger: Ledger, config: WalkForwardConfig, jobs: Sequence[TrialJob]
) -> dict[tuple[int, int, int], tuple[TrialOutcome, int]]:
    """The trials of `jobs` the ledger holds for this exact search (its :func:`run_key`), as
    the outcomes they were, with their row ids; keyed (fold, hp_index, seed)."""
    key = run_key(config)
    by_key = {(j.fold, j.hp_index, j.seed): j for j in jobs}
    rows = ledger.trials(env_id=config.env_id, experiment=config.experiment, agent=config.algo)
    found: dict[tuple[int, int, int], tuple[TrialOutcome, int]] = {}
    for row_id, fold, seed, metrics in zip(
        rows["id"], rows["fold"], rows["seed"], rows["is_metrics"], strict=True
    ):
        if metrics.get("run_key") != key or pd.isna(fold) or pd.isna(seed):
            continue
        trial = (int(fold), int(metrics["hp_index"]), int(seed))
        if trial in by_key and trial not in found:
            returns = {k: decode_returns(v) for k, v in metrics["block_returns"].items()}
            outcome = TrialOutcome(by_key[trial], returns, float(metrics["train_seconds"]))
            found[trial] = (outcome, int(row_id))
    return found


def oos_index(domain: Domain, plans: Sequence[FoldPlan]) -> pd.Index:
    """The stitched OOS periods: dates for a dated domain, episode seeds otherwise."""
    index = pd.Index([i for p in plans for i in p.period_index])
    return pd.DatetimeIndex(index) if domain.periods_per_year is not None else index


def paired_hurdle(
    domain: Domain, plans: Sequence[FoldPlan], baselines: dict[str, dict[str, pd.Series]] | None
) -> tuple[str | None, dict[int, np.ndarray] | None]:
    """A paired domain's hurdle: the baseline with the best mean at 1x costs, per fold."""
    if not domain.paired:
        return None, None
    one = cost_label(1.0)
    name = best_by_mean(baselines, one)
    stitched = baselines[name][one].to_numpy()
    return name, {p.fold: stitched[s] for p, s in zip(plans, fold_slices(plans), strict=True)}


def finish_result(
    config: WalkForwardConfig,
    domain: Domain,
    plans: Sequence[FoldPlan],
    outcomes: list[TrialOutcome],
    baselines: dict[str, dict[str, pd.Series]],
    ledger_and_ids: tuple[Ledger | None, list[int]],
    started: float,
    hurdle_name: str | None,
) -> WalkForwardResult:
    """Select each fold's agent on validation and stitch everything into one result."""
    ledger, ids = ledger_and_ids
    scenarios = [cost_label(m) for m in config.cost_multipliers]
    index = oos_index(domain, plans)
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
        folds=list(plans),
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


def fold_slices(plans: Sequence[FoldPlan]) -> list[slice]:
    """Where each fold's OOS periods sit in the stitched series."""
    edges = np.cumsum([0] + [len(p.period_index) for p in plans])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def trial_jobs(
    config: WalkForwardConfig,
    plans: Sequence[FoldPlan],
    model_dir: str | os.PathLike[str] | None = None,
) -> list[TrialJob]:
    """One job per fold x hyper-parameter set x seed, in that order."""
    jobs = []
    for plan in plans:
        for h, hparams in enumerate(config.grid):
            for seed in config.seeds:
                run_dir = None
                if model_dir is not None:
                    run_dir = str(Path(model_dir) / f"fold{plan.fold}-hp{h}-s{seed}")
                jobs.append(
                    TrialJob(
                        env_id=config.env_id,
                        algo=config.algo,
                        fold=plan.fold,
                        seed=int(seed),
                        hp_index=h,
                        hparams=dict(hparams),
                        model_kwargs=dict(config.model_kwargs),
                        extractor=config.extractor,
                        timesteps=config.timesteps,
                        train_kwargs=dict(plan.train_kwargs),
                        blocks={"validation": plan.validation, **plan.tests},
                        run_dir=run_dir,
                        blind=config.blind,
                        n_envs=config.n_envs,
                    )
                )
    return jobs


def select_per_fold(
    plans: Sequence[FoldPlan], outcomes: Sequence[TrialOutcome], by_mean: bool = False
) -> dict[int, TrialOutcome]:
    """Per fold, the trial with the best validation Sharpe, or with `by_mean` (paired
    domains, whose trials all meet the same validation episodes) the best mean return."""

    def merit(o: TrialOutcome) -> float:
        r = np.asarray(o.returns["validation"])
        return float(r.mean()) if by_mean else safe_sharpe(r)

    selected = {}
    for plan in plans:
        candidates = [o for o in outcomes if o.job.fold == plan.fold]
        # ties go to the first (hp_index, seed): no OOS information used
        selected[plan.fold] = max(candidates, key=lambda o: (merit(o), -o.key[1], -o.key[2]))
    return selected


def stitch_trials(
    config: WalkForwardConfig,
    plans: Sequence[FoldPlan],
    outcomes: Sequence[TrialOutcome],
    scenarios: Sequence[str],
    index: pd.Index,
) -> dict[str, pd.DataFrame]:
    """Per scenario, one column per trial configuration with its folds' OOS blocks stitched."""
    trial_returns = {}
    for s in scenarios:
        cols = {}
        for h in range(len(config.grid)):
            for seed in config.seeds:
                parts = [
                    o.returns[s]
                    for p in plans
                    for o in outcomes
                    if o.job.fold == p.fold and o.job.hp_index == h and o.job.seed == seed
                ]
                label = f"hp{h}-s{seed}" if len(config.grid) > 1 else f"seed {seed}"
                cols[label] = np.concatenate(parts)
        trial_returns[s] = pd.DataFrame(cols, index=index)
    return trial_returns


def baseline_returns(
    config: WalkForwardConfig,
    domain: Domain,
    plans: Sequence[FoldPlan],
    scenarios: Sequence[str],
    index: pd.Index,
) -> dict[str, dict[str, pd.Series]]:
    """Every baseline of the domain on exactly the OOS blocks (and costs) of the agent."""
    pieces: dict[str, dict[str, list[np.ndarray]]] = {}
    for s in scenarios:
        for p in plans:
            block = p.tests[s]
            env = make_env(config.env_id, block.env_kwargs)
            try:
                for name, policy in domain.baselines(env).items():
                    r = episodes_returns(domain, env, policy, block.episode_seeds)
                    pieces.setdefault(name, {}).setdefault(s, []).append(r)
            finally:
                env.close()
    return {
        name: {
            s: pd.Series(np.concatenate(parts), index=index, name=name) for s, parts in per.items()
        }
        for name, per in pieces.items()
    }
