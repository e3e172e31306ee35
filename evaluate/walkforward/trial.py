"""One trial: train an SB3 agent on a fold's training span, score it in every block.

Training imports (torch, SB3) happen inside :func:`run_trial` only, so a worker process or
Ray task pays for them and the caller does not.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trendgym.evaluate.walkforward.domain import block_returns, domain_for
from trendgym.evaluate.walkforward.plan import Block

__all__ = [
    "TrialJob",
    "TrialOutcome",
    "run_trial",
    "training_vec_env",
    "vec_env_for",
    "worker_init",
]


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to train and score one trial; picklable, no live objects."""

    env_id: str
    algo: str
    fold: int
    seed: int
    hp_index: int
    hparams: Mapping[str, Any]
    model_kwargs: Mapping[str, Any]
    extractor: str | None
    timesteps: int
    train_kwargs: Mapping[str, Any]
    blocks: Mapping[str, Block]
    run_dir: str | None = None  # keep the trained model here; None: a temporary directory
    blind: bool = False  # train and score on noise observations (a placebo search)
    n_envs: int = 1


@dataclass(frozen=True)
class TrialOutcome:
    """A trained trial's per-period returns in every block (validation, oos@1x, oos@2x, ...)."""

    job: TrialJob
    returns: Mapping[str, np.ndarray]
    train_seconds: float

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.job.fold, self.job.hp_index, self.job.seed)


def worker_init(scratch: str | None = None, ignore_signals: bool = True) -> None:
    """Set up a process that runs trials: one torch thread; in a worker process, temporary
    files under the search's `scratch` directory and SIGINT/SIGTERM left to the parent."""
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if scratch is not None:
        tempfile.tempdir = scratch
    if ignore_signals:
        from trendgym.evaluate.walkforward.signals import ignore_signals as ignore

        ignore()


def vec_env_for(env_id: str, n_envs: int, blind: bool = False) -> str:
    """Native batched stepping for several envs when the env has it (never blind, since the
    noise wraps single envs); otherwise in-process, as the trial already owns a worker."""
    import gymnasium as gym

    import trendgym  # noqa: F401  (registers the ids)

    if n_envs > 1 and not blind and gym.spec(env_id).vector_entry_point is not None:
        return "native"
    return "dummy"


def training_vec_env(job: TrialJob) -> str:
    """The ``TrainConfig.vec_env`` of a trial (see :func:`vec_env_for`)."""
    return vec_env_for(job.env_id, job.n_envs, job.blind)


def run_trial(job: TrialJob) -> TrialOutcome:
    """Train one trial on its training span and return its returns in every block.

    Runs in a worker process or Ray task; imports torch and SB3 here only.
    """
    import torch

    from trendgym.agents.loading import load
    from trendgym.agents.sb3 import merge_model_kwargs, per_env_rollout
    from trendgym.train.core import TrainConfig, train

    torch.set_num_threads(1)
    domain = domain_for(job.env_id)
    # n envs collect the defaults' rollout between them (the same samples per update)
    model_kwargs = per_env_rollout(
        job.env_id,
        job.algo,
        int(job.n_envs),
        merge_model_kwargs(dict(job.model_kwargs), dict(job.hparams)),
    )
    with tempfile.TemporaryDirectory(prefix="trendgym-trial-") as tmp:
        run_dir = job.run_dir or str(Path(tmp) / "run")
        config = TrainConfig(
            env_id=job.env_id,
            algo=job.algo,
            timesteps=int(job.timesteps),
            seed=int(job.seed),
            out=run_dir,
            extractor=job.extractor,
            env_kwargs=dict(job.train_kwargs),
            model_kwargs=model_kwargs,
            checkpoint_every=0,
            progress_bar=False,
            tensorboard=False,
            blind=job.blind,
            n_envs=int(job.n_envs),
            vec_env=training_vec_env(job),
        )
        started = time.perf_counter()
        train(config)
        seconds = time.perf_counter() - started
        agent = load(run_dir)
        returns = {
            name: block_returns(domain, job.env_id, block, agent, job.blind)
            for name, block in job.blocks.items()
        }
    return TrialOutcome(job=job, returns=returns, train_seconds=seconds)
