"""Execution-v0 throughput and the baseline shortfall table.

    python benchmarks/execution.py [--steps 40000] [--episodes 200]

Prints env steps/s (random policy and TWAP, background flow included), the share of step
time spent inside numba kernels vs Python, messages per step, the peers' steps/s where they
are installed (gym-anytrading, gym-trading-env: optional `bench` extra), and the shortfall
(mean ± s.e., bps) of every baseline on each flow preset over the same seeded episodes.
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np

from trendgym.agents.execution import TWAP, execution_baseline_table
from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.lob import flow as flow_module
from trendgym.envs.lob import kernels


def steps_per_second(env: ExecutionEnv, policy, steps: int) -> tuple[float, float]:
    """(env steps/s excluding resets, background messages per step)."""
    obs, _ = env.reset(seed=0)
    elapsed, done_steps, messages = 0.0, 0, 0
    while done_steps < steps:
        m0 = env.book.totals()["messages"]
        t0 = time.perf_counter()
        done = False
        while not done:
            obs, _, done, _, _ = env.step(policy(obs))
            done_steps += 1
        elapsed += time.perf_counter() - t0
        messages += env.book.totals()["messages"] - m0
        obs, _ = env.reset(seed=done_steps)
    return done_steps / elapsed, messages / done_steps


def numba_share(env: ExecutionEnv, steps: int) -> float:
    """Fraction of step time (resets excluded) spent inside the numba kernels, timed by
    wrapping the kernel dispatchers the env and the book call."""
    inside = [0.0]

    def timed(fn):
        def wrapper(*a):
            t0 = time.perf_counter()
            out = fn(*a)
            inside[0] += time.perf_counter() - t0
            return out
        return wrapper

    patches = [(flow_module, "flow_run_nb"), (kernels, "process_nb"), (kernels, "top_of_book_nb"),
               (kernels, "order_state_nb"), (kernels, "screen_nb")]
    saved = [(mod, name, getattr(mod, name)) for mod, name in patches]
    for mod, name, fn in saved:
        setattr(mod, name, timed(fn))
    rng = np.random.default_rng(0)
    stepping = numba_in_steps = 0.0
    try:
        n = 0
        while n < steps:
            env.reset(seed=n)
            done = False
            while not done:
                action = rng.uniform(-1, 1, 3).astype(np.float32)
                before, t0 = inside[0], time.perf_counter()
                _, _, done, _, _ = env.step(action)
                stepping += time.perf_counter() - t0
                numba_in_steps += inside[0] - before
                n += 1
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    return numba_in_steps / stepping


def peers(steps: int) -> list[tuple[str, float | None]]:
    out = []
    for name, module in (("gym-anytrading", "gym_anytrading"), ("gym-trading-env", "gym_trading_env")):
        if importlib.util.find_spec(module) is None:
            out.append((name, None))
            continue
        import gymnasium as gym
        import pandas as pd

        importlib.import_module(module)
        idx = pd.date_range("2020-01-01", periods=steps + 100, freq="min")
        close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 1e-3, idx.size)))
        df = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx)
        if module == "gym_anytrading":
            env = gym.make("stocks-v0", df=df.rename(columns=str.capitalize), frame_bound=(10, idx.size), window_size=10)
        else:
            env = gym.make("TradingEnv", df=df, positions=[-1, 0, 1])
        env.reset(seed=0)
        t0 = time.perf_counter()
        for _ in range(steps):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                env.reset()
        out.append((name, steps / (time.perf_counter() - t0)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--episodes", type=int, default=200)
    args = ap.parse_args()

    env = ExecutionEnv()
    t0 = time.perf_counter()
    env.reset(seed=0)
    env.step(env.action_space.sample())
    print(f"first reset+step (numba compile or cache load): {time.perf_counter() - t0:.2f} s (excluded)")
    rng = np.random.default_rng(0)
    random_sps, msgs = steps_per_second(env, lambda o: rng.uniform(-1, 1, 3).astype(np.float32), args.steps)
    twap = TWAP(env)
    twap_sps, _ = steps_per_second(env, lambda o: twap.predict(o)[0], args.steps)
    share = numba_share(ExecutionEnv(), args.steps // 4)
    print(f"{'policy':<16}{'env steps/s':>14}")
    print(f"{'random':<16}{random_sps:>14,.0f}")
    print(f"{'TWAP':<16}{twap_sps:>14,.0f}")
    print(f"background messages per step: {msgs:.0f}; time in numba kernels: {share:.0%}, "
          f"Python: {1 - share:.0%} (resets excluded)")
    for name, sps in peers(args.steps):
        print(f"{name:<16}{'not installed' if sps is None else f'{sps:,.0f}':>14}"
              + ("  (pip install 'trendgym[bench]')" if sps is None else ""))

    print(f"\nshortfall (bps, mean ± s.e.) over {args.episodes} seeded episodes per preset "
          "(random side, size and urgency; the same episodes for every baseline):")
    table = execution_baseline_table(episodes=args.episodes)
    wide = table.assign(cell=[f"{m:.2f} ± {s:.2f}" for m, s in zip(table.shortfall_bps, table.se_bps, strict=True)])
    print(wide.pivot(index="baseline", columns="preset", values="cell").to_string())


if __name__ == "__main__":
    main()
