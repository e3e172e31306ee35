"""Env-steps/s of trendgym's native vector envs against Python-loop vectorisation, and PPO on each.

Prints, in one process:
1. the numba thread count and threading layer, and the compile times (reported apart: every
   rate below excludes them): a fresh compile of every kernel (new process, empty numba cache),
   and the first call of a new process, which loads them from numba's on-disk cache;
2. a table of env-steps/s: the single env; Gymnasium ``SyncVectorEnv`` and SB3 ``DummyVecEnv``
   of N; SB3 ``SubprocVecEnv`` of small N (it starts one process per env); the native vector
   env (Gymnasium API) and its SB3 adapter at N = 1, 16, 64, 256, 1024; each with its ratio to
   ``DummyVecEnv`` of the same N; then the native env's CPU time per env-step on one thread
   (``time.thread_time``: robust to other processes on the shared cores, unlike the rates);
3. PPO training throughput (``learn`` steps/s, same N and budget) on the native SB3 adapter vs
   ``DummyVecEnv``.

Every env kind is one ``EnvKind`` entry in ``KINDS`` (how to build its single env and its
native vector env); add a kind there and it gets the same rows. Actions come from a small bank
of pre-drawn batches, so drawing them costs nothing; rates are the best of 5 repeats (the
machine is shared). Run: ``.venv/bin/python benchmarks/vector.py [--kinds portfolio] [--no-ppo]``
(about two minutes). Run it on an otherwise idle machine: a ``prange`` step waits for its
slowest thread, so another process on a core slows the parallel rows many times over.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numba
import numpy as np

from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.execution.vector import ExecutionVectorEnv
from trendgym.envs.portfolio import PortfolioEnv
from trendgym.envs.portfolio.vector import PortfolioVectorEnv

NATIVE_NS = (1, 16, 64, 256, 1024)
SYNC_NS = (16, 64)
SUBPROC_NS = (2, 4)
REPEATS = 5
MIN_SECONDS = 0.2  # per repeat
FIXED_NS = (64, 256, 1024)  # the native env forced to prange / to one thread


@dataclass
class EnvKind:
    """How to build one kind of env, single and native-vector, for the same configuration."""

    name: str
    env_id: str
    kwargs: dict[str, Any]
    make_single: Callable[[dict[str, Any]], gym.Env]
    make_native: Callable[[int, dict[str, Any]], gym.vector.VectorEnv]
    native_path: str  # "module:Class" of the native vector env, for the fresh-process probe
    compile_times: Callable[[EnvKind], dict[str, float]]  # fresh (uncached) kernel compiles
    clone_single: Callable[[gym.Env], gym.Env] = field(default=copy.deepcopy)


def _clone_portfolio(env: PortfolioEnv) -> PortfolioEnv:
    """A sub-env sharing the read-only data arrays (1024 deep copies would need ~20 GB)."""
    clone = copy.copy(env)
    clone._state = type(env._state)(*(a.copy() for a in env._state))
    clone._buffers = type(env._buffers)(*(a.copy() for a in env._buffers))
    clone._np_random = None
    return clone


KINDS = {
    "portfolio": EnvKind(
        name="Portfolio-v0 (30 assets, 20 y futures preset, whole-span episodes)",
        env_id="trendgym/Portfolio-v0",
        kwargs={"n_assets": 30, "window": None},
        make_single=lambda kw: PortfolioEnv(**kw),
        make_native=lambda n, kw: PortfolioVectorEnv(n, **kw),
        native_path="trendgym.envs.portfolio.vector:PortfolioVectorEnv",
        compile_times=lambda kind: fresh_cache_compile_seconds(kind),
        clone_single=_clone_portfolio,
    ),
    "execution": EnvKind(
        name="Execution-v0 (defaults: horizon 40 x 2.5 s, 30 s warm-up per episode, "
        "~100 background messages per env-step)",
        env_id="trendgym/Execution-v0",
        kwargs={},
        make_single=lambda kw: ExecutionEnv(**kw),
        make_native=lambda n, kw: ExecutionVectorEnv(n, **kw),
        native_path="trendgym.envs.execution.vector:ExecutionVectorEnv",
        compile_times=lambda kind: fresh_cache_compile_seconds(kind),
    ),
}


# ---------------------------------------------------------------- timing helpers
def _best_rate(step_batch: Callable[[int], None], env_steps_per_call: int) -> float:
    """Best env-steps/s over REPEATS runs of at least MIN_SECONDS each."""
    step_batch(0)  # warm: first-call costs are not throughput
    best = 0.0
    for _ in range(REPEATS):
        calls, start = 0, time.perf_counter()
        while True:
            step_batch(calls)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= MIN_SECONDS and calls >= 3:
                break
        best = max(best, calls * env_steps_per_call / elapsed)
    return best


def _action_bank(space: gym.Space, n: int, seed: int = 0) -> list[np.ndarray]:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


# ---------------------------------------------------------------- one function per runner
def rate_single(kind: EnvKind) -> float:
    env = kind.make_single(kind.kwargs)
    env.reset(seed=0)
    bank = _action_bank(env.action_space, 16)

    def run(k: int) -> None:
        for j in range(64):
            _, _, term, trunc, _ = env.step(bank[j % 16])
            if term or trunc:
                env.reset()

    return _best_rate(run, 64)


def rate_gym_sync(kind: EnvKind, n: int, template: gym.Env) -> float:
    venv = gym.vector.SyncVectorEnv([lambda: kind.clone_single(template) for _ in range(n)])
    venv.reset(seed=0)
    bank = _action_bank(venv.action_space, 8)
    return _best_rate(lambda k: venv.step(bank[k % 8]), n)


def rate_sb3(venv: Any, n: int) -> float:
    """Env-steps/s of an SB3 VecEnv (DummyVecEnv, SubprocVecEnv or the native adapter)."""
    venv.seed(0)
    venv.reset()
    space = gym.spaces.Box(-1.0, 1.0, (n, *venv.action_space.shape), np.float32)
    bank = _action_bank(space, 8)
    rate = _best_rate(lambda k: venv.step(bank[k % 8]), n)
    venv.close()
    return rate


def rate_dummy(kind: EnvKind, n: int, template: gym.Env) -> float:
    from stable_baselines3.common.vec_env import DummyVecEnv

    return rate_sb3(DummyVecEnv([lambda: kind.clone_single(template) for _ in range(n)]), n)


def rate_subproc(kind: EnvKind, n: int) -> float:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    kw, make = kind.kwargs, kind.make_single
    return rate_sb3(SubprocVecEnv([lambda: make(kw) for _ in range(n)], start_method="fork"), n)


def rate_native(kind: EnvKind, n: int, parallel: bool | None = None) -> float:
    venv = kind.make_native(
        n, {**kind.kwargs, **({} if parallel is None else {"parallel": parallel})}
    )
    venv.reset(seed=0)
    bank = _action_bank(venv.action_space, 8)
    return _best_rate(lambda k: venv.step(bank[k % 8]), n)


def cpu_ns_per_env_step(kind: EnvKind, n: int, seconds: float = 1.0) -> float:
    """CPU time of one thread per env-step (``time.thread_time``) of the native env forced to
    one thread, Python side included: unlike wall rates, other processes on the cores barely
    move it."""
    venv = kind.make_native(n, {**kind.kwargs, "parallel": False})
    venv.reset(seed=0)
    bank = _action_bank(venv.action_space, 8)
    venv.step(bank[0])
    best = float("inf")
    for _ in range(REPEATS):
        calls, cpu0, wall0 = 0, time.thread_time(), time.perf_counter()
        while time.perf_counter() - wall0 < seconds / REPEATS or calls < 3:
            venv.step(bank[calls % 8])
            calls += 1
        best = min(best, (time.thread_time() - cpu0) / (calls * n))
    return best * 1e9


def rate_native_sb3(kind: EnvKind, n: int) -> float:
    from trendgym.envs.sb3_vec import make_sb3_vec_env

    return rate_sb3(make_sb3_vec_env(kind.env_id, n, **kind.kwargs), n)


def ppo_rate(
    kind: EnvKind, n: int, budget: int, native: bool, template: gym.Env
) -> tuple[float, float]:
    """PPO ``learn`` steps/s (policy, rollouts and updates) and the share of it spent in the env."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper

    from trendgym.envs.sb3_vec import make_sb3_vec_env

    class Timed(VecEnvWrapper):
        seconds = 0.0

        def reset(self):
            return self.venv.reset()

        def step_wait(self):
            start = time.perf_counter()
            out = self.venv.step_wait()
            Timed.seconds += time.perf_counter() - start
            return out

    if native:
        venv = make_sb3_vec_env(kind.env_id, n, seed=0, **kind.kwargs)
    else:
        venv = DummyVecEnv([lambda: kind.clone_single(template) for _ in range(n)])
        venv.seed(0)
    model = PPO(
        "MlpPolicy", Timed(venv), n_steps=budget // n // 2, batch_size=256, n_epochs=2,
        seed=0, device="cpu",
    )  # fmt: skip
    model.learn(256)  # warm: torch and numba first calls
    best = (0.0, 0.0)
    for _ in range(2):  # best of 2: the machine is shared
        Timed.seconds = 0.0
        start = time.perf_counter()
        model.learn(budget, reset_num_timesteps=True)
        elapsed = time.perf_counter() - start
        best = max(best, (budget / elapsed, Timed.seconds / elapsed))
    return best


# ---------------------------------------------------------------- compile times
def fresh_cache_compile_seconds(kind: EnvKind) -> dict[str, float]:
    """First reset + step of a 64-env native env in a new process with an empty numba cache:
    every kernel it calls compiles from scratch (serial and prange drivers both)."""
    import subprocess
    import sys
    import tempfile

    module, cls = kind.native_path.split(":")
    probe = (
        "import time, numpy as np\n"
        f"from {module} import {cls}\n"
        "t0 = time.perf_counter()\n"
        "for parallel in (False, True):\n"
        f"    env = {cls}(8, parallel=parallel, **{kind.kwargs!r})\n"
        "    env.reset(seed=0); env.step(np.zeros(env.action_space.shape, np.float32))\n"
        "print(time.perf_counter() - t0)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "NUMBA_CACHE_DIR": cache},
        )
    return {"all kernels, fresh compile, empty cache": float(out.stdout.strip().splitlines()[-1])}


def first_call_seconds(kind: EnvKind) -> float:
    """First reset + step of a new native env in a fresh process: the on-disk cache load."""
    import subprocess
    import sys

    module, cls = kind.native_path.split(":")
    probe = (
        "import time, numpy as np\n"
        f"from {module} import {cls}\n"
        f"env = {cls}(64, **{kind.kwargs!r})\n"
        "t0 = time.perf_counter()\n"
        "env.reset(seed=0); env.step(np.zeros(env.action_space.shape, np.float32))\n"
        "print(time.perf_counter() - t0)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- report
def table(kind: EnvKind) -> list[tuple[str, int, float, float | None]]:
    """Rows (runner, N, env-steps/s, ratio to DummyVecEnv of the same N)."""
    template = kind.make_single(kind.kwargs)
    dummy = {n: rate_dummy(kind, n, template) for n in sorted({*NATIVE_NS, *SUBPROC_NS})}
    rows: list[tuple[str, int, float, float | None]] = []
    single = rate_single(kind)
    rows.append(("single env (Python loop)", 1, single, single / dummy[1]))
    for n in SYNC_NS:
        r = rate_gym_sync(kind, n, template)
        rows.append(("gymnasium SyncVectorEnv", n, r, r / dummy[n]))
    for n, rate in dummy.items():
        rows.append(("SB3 DummyVecEnv", n, rate, 1.0))
    for n in SUBPROC_NS:
        r = rate_subproc(kind, n)
        rows.append(("SB3 SubprocVecEnv", n, r, r / dummy[n]))
    for n in NATIVE_NS:
        r = rate_native(kind, n)
        rows.append(("native vector env (gymnasium API, parallel auto)", n, r, r / dummy[n]))
    for parallel, label in ((True, "prange always"), (False, "one thread")):
        for n in FIXED_NS:
            r = rate_native(kind, n, parallel=parallel)
            rows.append((f"native vector env, {label} (parallel={parallel})", n, r, r / dummy[n]))
    for n in NATIVE_NS:
        r = rate_native_sb3(kind, n)
        rows.append(("native + SB3 adapter (make_sb3_vec_env)", n, r, r / dummy[n]))
    return rows


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--no-ppo", action="store_true", help="skip the PPO rows")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    print(f"numba threads: {numba.get_num_threads()} (cores: {os.cpu_count()})")
    # prange waits for its slowest thread: a core busy with another process stalls every step
    print("load average at start (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for key in args.kinds:
        kind = KINDS[key]
        print(f"\n== {key}: {kind.name}")
        for what, sec in kind.compile_times(kind).items():
            print(f"compile: {what}: {sec:.2f} s")
        print(
            f"compile: first reset+step in a new process (on-disk cache load): "
            f"{first_call_seconds(kind):.2f} s"
        )
        print(f"numba threading layer: {numba.threading_layer()}")
        rows = table(kind)
        print("\n| runner | N | env-steps/s | vs DummyVecEnv (same N) |")
        print("|---|---:|---:|---:|")
        for runner, n, rate, ratio in rows:
            shown = "" if ratio is None else f"{ratio:.1f}x"
            print(f"| {runner} | {n} | {rate:,.0f} | {shown} |")
        for n in (64, 1024):
            ns = cpu_ns_per_env_step(kind, n)
            print(
                f"native env, one thread, N = {n}: {ns:,.0f} ns CPU per env-step "
                f"(thread_time, Python side included) = {1e9 / ns:,.0f} env-steps/s per core"
            )
        if args.no_ppo:
            continue
        template = kind.make_single(kind.kwargs)
        budget = 8192
        print(
            f"\nPPO learn({budget}), MlpPolicy defaults, n_steps = {budget}/(2N), batch 256, "
            "2 epochs (torch dominates: the env share is what a vec env can change)"
        )
        print("| N | vec env | PPO steps/s | env share of training time |\n|---:|---|---:|---:|")
        for n in (16, 64):
            for native in (True, False):
                rate, share = ppo_rate(kind, n, budget, native, template)
                name = "native + SB3 adapter" if native else "SB3 DummyVecEnv"
                print(f"| {n} | {name} | {rate:,.0f} | {share:.1%} |")
    print("load average at end (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
