"""Overhead of ComplianceWrapper (every rule of the "default" preset on) beside the bare envs.

Prints env steps/s (time inside ``step`` only; resets excluded) for:
- the bare env,
- Execution-v0 with a do-nothing pre-trade hook (the env's own hook plumbing, for reference),
- the wrapped env.
The same action sequence is replayed in every variant; each variant runs ``--repeats`` times
interleaved and the best run counts (the machine is shared). Compile time of the numba
kernels is measured first and reported separately.

    .venv/bin/python benchmarks/compliance.py [--steps 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from trendgym.agents.portfolio import StaticTSMOM
from trendgym.envs.compliance import ComplianceWrapper
from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.portfolio import PortfolioEnv


def _steps_per_second(env, actions: np.ndarray, seed: int = 0) -> tuple[float, int]:
    """Steps/s over `actions` (time inside step only) and the interventions recorded."""
    env.reset(seed=seed)
    step = env.step
    busy = 0.0
    clock = time.perf_counter
    for a in actions:
        t0 = clock()
        _, _, terminated, truncated, _ = step(a)
        busy += clock() - t0
        if terminated or truncated:
            env.reset()
    audit = getattr(env, "audit", None)
    return len(actions) / busy, (len(audit) if audit is not None else 0)


def _noop(messages, env):
    return messages


def execution_variants():
    def bare():
        return ExecutionEnv(preset="calm")

    def noop_hook():
        env = ExecutionEnv(preset="calm")
        env.pre_trade = _noop
        return env

    def wrapped():
        return ComplianceWrapper(ExecutionEnv(preset="calm"), rules="default")

    return {"bare": bare, "no-op hook": noop_hook, "wrapped": wrapped}


def portfolio_variants():
    return {
        "bare": lambda: PortfolioEnv(),
        "wrapped": lambda: ComplianceWrapper(PortfolioEnv(), rules="default"),
    }


def portfolio_actions(n: int) -> np.ndarray:
    """StaticTSMOM's actions over the default market, replayed in every variant."""
    env = PortfolioEnv()
    policy = StaticTSMOM(env)
    obs, _ = env.reset(seed=0)
    out = []
    while len(out) < n:
        a, _ = policy.predict(obs)
        out.append(a)
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            obs, _ = env.reset()
    return np.array(out, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()  # compile (or load from cache) the kernels once
    for make in (*execution_variants().values(), *portfolio_variants().values()):
        env = make()
        env.reset(seed=0)
        env.step(env.action_space.sample())
    print(f"warm-up incl. numba compile/cache load: {time.perf_counter() - t0:.2f} s\n")

    rng = np.random.default_rng(0)
    cases = {
        "Execution-v0 (random actions)": (
            execution_variants(),
            rng.uniform(-1, 1, (args.steps, 3)).astype(np.float32),
        ),
        "Portfolio-v0 (StaticTSMOM actions)": (portfolio_variants(), portfolio_actions(args.steps)),
    }
    print(f"{'env':36s} {'variant':12s} {'steps/s':>10s} {'overhead':>9s} {'interventions':>14s}")
    for name, (variants, actions) in cases.items():
        best: dict[str, tuple[float, int]] = {}
        for _ in range(args.repeats):
            for label, make in variants.items():
                rate, n = _steps_per_second(make(), actions)
                if label not in best or rate > best[label][0]:
                    best[label] = (rate, n)
        bare = best["bare"][0]
        for label, (rate, n) in best.items():
            overhead = "" if label == "bare" else f"{(bare / rate - 1) * 100:8.1f}%"
            print(f"{name:36s} {label:12s} {rate:10.0f} {overhead:>9s} {n:14d}")


if __name__ == "__main__":
    main()
