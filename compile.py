"""Compile trendgym's numba kernels ahead of first use: ``python -m trendgym.compile``.

numba compiles a kernel the first time it runs and caches it in ``__pycache__``; on a cold
cache a new user's first ``reset``/``step`` of an env waits for that compile (minutes on
a small machine). This step pays it once, one env per process in parallel, with a progress
line per env (``make test`` and ``make demo`` run it). Later uses load the kernels from the
cache in well under a second.

Any compile that still happens in a process (a cold cache, an edited kernel) is announced
on stderr by `announce_compiles`, which the env entry points install: never a silent wait.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

ENV_IDS = ("trendgym/Execution-v0", "trendgym/Portfolio-v0")
# what a cold compile of each env's first reset+step costs on a 2-core machine (measured)
COLD_SECONDS = {"trendgym/Execution-v0": "3-6 min", "trendgym/Portfolio-v0": "under a minute"}

_installed = False
_lock = threading.Lock()


def announce_compiles() -> None:
    """Print to stderr when numba compiles a kernel in this process (only on a cache miss:
    loading a cached kernel is silent), and how long the compile took. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        from numba.core import event

        class Announcer(event.Listener):
            """One line when an outermost compile starts, one when it ends (the kernels it
            calls compile inside it)."""

            depth, t0, explained = 0, 0.0, False

            def on_start(self, ev: Any) -> None:
                self.depth += 1
                if self.depth == 1:
                    self.t0 = time.perf_counter()
                    why = (
                        " (a cold cache: first use on this machine or an edited kernel; about "
                        "a minute or more per env, cached afterwards; `python -m "
                        "trendgym.compile` does it ahead)"
                    )
                    _say(f"numba is compiling {_name(ev)}" + ("" if self.explained else why))
                    self.explained = True

            def on_end(self, ev: Any) -> None:
                self.depth -= 1
                if self.depth == 0:
                    _say(f"compiled {_name(ev)} in {time.perf_counter() - self.t0:.0f} s")

        event.register("numba:compile", Announcer())
        _installed = True


def _say(text: str) -> None:
    print(f"trendgym: {text}", file=sys.stderr, flush=True)


def _name(event: Any) -> str:
    func = getattr(event.data.get("dispatcher"), "py_func", None)
    return "a kernel" if func is None else f"{func.__module__}.{func.__qualname__}"


def warm(env_id: str, vector: bool = False) -> float:
    """Make, reset and step `env_id` once (and its native vector env with `vector`), so
    numba compiles or loads everything the first use needs; returns the seconds it took."""
    import gymnasium as gym

    import trendgym  # noqa: F401  (registers the ids)

    t0 = time.perf_counter()
    env = gym.make(env_id)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    if vector:
        venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point")
        venv.reset(seed=0)
        venv.step(venv.action_space.sample())
        venv.close()
    return time.perf_counter() - t0


def warm_tape_tools() -> float:
    """Record a few minutes of flow as a tape, calibrate the flow to it and rebuild its book
    with snapshots, so numba compiles or loads the tape tools' kernels (``trendgym
    calibrate``, ``read_lobster``'s rebuild); returns the seconds it took."""
    import numpy as np

    from trendgym.envs.lob import OrderBook, calibrate_flow, record_flow
    from trendgym.envs.lob.flow import OrderFlow, flow_params
    from trendgym.envs.lob.tape_facts import tape_facts

    t0 = time.perf_counter()
    flow = OrderFlow(OrderBook(), flow_params("calm"), np.random.default_rng(0), record=4096)
    flow.seed_book()
    tape = record_flow(flow, 300.0, resolution=0.02)
    calibrate_flow(tape)
    tape_facts(tape)
    tape.snapshots(10)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_ids", nargs="*", default=list(ENV_IDS), help="default: both envs")
    parser.add_argument(
        "--vector", action="store_true", help="also the native vector envs' kernels"
    )
    parser.add_argument(
        "--tape-tools",
        action="store_true",
        help="also the tape tools' kernels (recording, calibration, book rebuilds)",
    )
    parser.add_argument("--serial", action="store_true", help="one env after the other")
    args = parser.parse_args(argv)
    for env_id in args.env_ids:
        if env_id not in ENV_IDS:
            parser.error(f"unknown env id {env_id!r}; choose from {list(ENV_IDS)}")
    t0 = time.perf_counter()
    for env_id in args.env_ids:
        print(
            f"trendgym: compiling {env_id} (cached: under a second; cold: {COLD_SECONDS[env_id]})",
            flush=True,
        )
    if args.tape_tools:
        print("trendgym: compiling the tape tools (cached: seconds; cold: 3-5 min)", flush=True)
    # what each job warms: an env id, or the tape tools; each runs in its own process
    work = [(e, warm, (e, args.vector)) for e in args.env_ids]
    if args.tape_tools:
        work.append(("the tape tools", warm_tape_tools, ()))
    if args.serial or len(work) == 1:
        for name, fn, fn_args in work:
            print(f"trendgym: {name} ready in {fn(*fn_args):.1f} s", flush=True)
    else:
        # two workers: the tape tools follow the faster env on its core
        with ProcessPoolExecutor(min(2, len(work))) as pool:
            jobs = {name: pool.submit(fn, *fn_args) for name, fn, fn_args in work}
            for name, job in jobs.items():
                print(f"trendgym: {name} ready in {job.result():.1f} s", flush=True)
    print(f"trendgym: kernels compiled and cached in {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
