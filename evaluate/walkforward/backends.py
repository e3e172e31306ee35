"""Where trials run: local worker processes (forkserver/spawn) or Ray tasks.

Each backend yields outcomes in completion order; the loop sorts them, so both backends give
the same numbers.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Literal

from trendgym.evaluate.walkforward.trial import TrialJob, TrialOutcome, run_trial, worker_init

__all__ = ["Backend", "local_backend", "ray_backend"]

Backend = Literal["local", "ray"]


def local_backend(jobs: Sequence[TrialJob], workers: int | None) -> Iterator[TrialOutcome]:
    if workers == 0:  # in this process, one after the other (debugging, profiling)
        worker_init()
        for job in jobs:
            yield run_trial(job)
        return
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    methods = multiprocessing.get_all_start_methods()
    # never fork a process that may hold torch threads or an SQLite connection
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(n_workers, mp_context=context, initializer=worker_init) as pool:
        futures = [pool.submit(run_trial, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def ray_backend(jobs: Sequence[TrialJob], address: str) -> Iterator[TrialOutcome]:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "the Ray backend needs the optional dependency: pip install 'trendgym[ray]'"
        ) from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True)
    task = ray.remote(num_cpus=1)(run_trial)
    pending = [task.remote(job) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            yield ray.get(ref)
