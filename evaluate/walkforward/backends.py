"""Where trials run: local worker processes (forkserver/spawn) or Ray tasks.

Each backend yields outcomes in completion order; the loop sorts them, so both backends give
the same numbers. When the caller stops early (SIGINT, SIGTERM, an error), the trials still
running are dropped: local workers are killed (they ignore both signals, so a terminal's
Ctrl-C never prints a traceback from them), pending Ray tasks cancelled.
"""

from __future__ import annotations

import ast
import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Literal

from trendgym.evaluate.walkforward.trial import TrialJob, TrialOutcome, run_trial, worker_init

__all__ = ["Backend", "local_backend", "ray_backend", "unguarded_main_script"]

Backend = Literal["local", "ray"]


def local_backend(
    jobs: Sequence[TrialJob], workers: int | None, scratch: str | None = None
) -> Iterator[TrialOutcome]:
    """Run `jobs` in worker processes (`workers`, default one per core), or in this process
    when ``workers == 0`` or when the main script would be imported again by every worker
    (see :func:`unguarded_main_script`). `scratch`: the workers' temporary directory."""
    if not jobs:
        return
    script = unguarded_main_script() if workers != 0 else None
    if script is not None:
        warnings.warn(
            f'{script} runs this evaluation outside an `if __name__ == "__main__":` block, '
            "and worker processes import the script again, so the trials run in this process; "
            "put the call under that guard to run them in parallel",
            RuntimeWarning,
            stacklevel=2,
        )
    if workers == 0 or script is not None:  # in this process, one after the other
        worker_init(ignore_signals=False)
        for job in jobs:
            yield run_trial(job)
        return
    n_workers = min(len(jobs), workers or os.cpu_count() or 1)
    methods = multiprocessing.get_all_start_methods()
    # never fork a process that may hold torch threads or an SQLite connection
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pool = ProcessPoolExecutor(
        n_workers, mp_context=context, initializer=worker_init, initargs=(scratch,)
    )
    futures = [pool.submit(run_trial, job) for job in jobs]
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=futures.index):
                yield future.result()
    except BaseException:  # stopped (signal, generator closed) or a trial failed
        for future in futures:
            future.cancel()
        for process in list(getattr(pool, "_processes", None) or {}):
            _kill(pool, process)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _kill(pool: ProcessPoolExecutor, pid: int) -> None:
    process = pool._processes.get(pid)  # type: ignore[attr-defined]
    if process is not None and process.is_alive():
        process.kill()  # the trial in flight is dropped; it has written nothing but scratch


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
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def unguarded_main_script() -> str | None:
    """The path of the script being run when it starts this evaluation from its top level
    outside an ``if __name__ == "__main__":`` block, else None.

    Worker processes (forkserver, spawn) import the main script again; unguarded, each would
    start the evaluation itself and the pool breaks. ``python -c``, notebooks and modules run
    with ``-m`` that use the guard are safe.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not str(path).endswith(".py"):
        return None
    frame = sys._getframe(1)
    line = None
    while frame is not None:  # the outermost frame running the script's top level
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return None
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_test(node.test):
            if node.lineno <= line <= (node.end_lineno or node.lineno):
                return None
    return str(path)


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1
