"""The wall time ``trendgym evaluate`` announces before it starts.

A search is its trials spread over the worker processes, in waves; a trial is its training
steps at the domain's single-core rate (one for a native batched env, one for envs stepped
one after the other) plus the periods it scores (validation and every OOS cost scenario).
Before the trials, the baselines score every OOS block once; every search pays for starting
its workers. The rates are one core of this project's development machine training PPO
with the CLI's defaults; they are the model's only calibration. Held-out blocks that replay a
tape add the time their env takes to build, measured by building it once here (a process
reads a tape file once and keeps its checkpoints, so this is a block's cost after a worker's
first read, which the estimate leaves out: seconds against minutes of training).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from trendgym.evaluate.walkforward.config import WalkForwardConfig
from trendgym.evaluate.walkforward.domain import domain_for, make_env
from trendgym.evaluate.walkforward.trial import vec_env_for

__all__ = [
    "SearchCost",
    "block_setup_seconds",
    "expected_seconds",
    "search_costs",
    "worker_count",
]

STARTUP_SECONDS = 10.0  # a search's worker pool: process start, torch and SB3 imports
N_BASELINES = 5  # at most: the portfolio's five, the execution's three


@dataclass(frozen=True)
class SearchCost:
    """One search of the estimate: how many trials, in how many waves, at what cost each."""

    trials: int
    waves: int
    train_seconds: float  # one trial's training
    score_seconds: float  # one trial's scoring

    @property
    def seconds(self) -> float:
        return STARTUP_SECONDS + self.waves * (self.train_seconds + self.score_seconds)


def worker_count(n_jobs: int, workers: int | None) -> int:
    """Trials running at once: the worker processes (default: every core), at most one per
    trial; 0 workers run them in the caller's process, one at a time."""
    if workers == 0:
        return 1
    return max(1, min(n_jobs, workers or os.cpu_count() or 1))


def block_setup_seconds(config: WalkForwardConfig) -> float:
    """Seconds to build one held-out block's env when it replays a tape (measured once);
    0 for simulated blocks, whose envs build in milliseconds."""
    kwargs = config.held_out_kwargs
    if "replay" not in kwargs:
        return 0.0
    started = time.perf_counter()
    make_env(config.env_id, kwargs).close()
    return time.perf_counter() - started


def search_costs(
    config: WalkForwardConfig,
    workers: int | None = None,
    placebo: bool = True,
    setup: float | None = None,
) -> list[SearchCost]:
    """The search of `config` and, with `placebo`, each of its placebo searches; `setup`: a
    held-out block's env build time (None: :func:`block_setup_seconds`)."""
    domain = domain_for(config.env_id)
    setup = block_setup_seconds(config) if setup is None else setup
    searches: Sequence[WalkForwardConfig] = [
        config,
        *(domain.placebos(config) if placebo else []),
    ]
    plans = domain.plan(config)
    periods = sum(len(p.period_index) for p in plans) / len(plans)  # one OOS block
    scored = (len(config.cost_multipliers) + config.validation_fraction) * periods
    blocks = len(config.cost_multipliers) + 1  # a trial builds each of its blocks' envs
    out = []
    for search in searches:
        n_jobs = search.n_folds * len(search.seeds) * len(search.grid)
        native = vec_env_for(search.env_id, search.n_envs, search.blind) == "native"
        rate = domain.native_steps_per_second if native else domain.train_steps_per_second
        out.append(
            SearchCost(
                trials=n_jobs,
                waves=math.ceil(n_jobs / worker_count(n_jobs, workers)),
                train_seconds=search.timesteps / rate,
                score_seconds=scored * domain.score_seconds_per_period + blocks * setup,
            )
        )
    return out


def expected_seconds(
    config: WalkForwardConfig, workers: int | None = None, placebo: bool = True
) -> float:
    """The expected wall time of `config`'s search and its placebos on an otherwise idle
    machine: the baselines' scoring, then every search's waves of trials."""
    domain = domain_for(config.env_id)
    plans = domain.plan(config)
    oos = sum(len(p.period_index) for p in plans)
    setup = block_setup_seconds(config)
    scenarios = len(config.cost_multipliers)
    baselines = scenarios * (
        N_BASELINES * oos * domain.score_seconds_per_period + len(plans) * setup
    )
    return baselines + sum(s.seconds for s in search_costs(config, workers, placebo, setup))
