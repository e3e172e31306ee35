"""Execution-v0 throughput and the baseline shortfall table.

    python benchmarks/execution.py [--steps 40000] [--episodes 200]

Prints env steps/s (random policy and TWAP, background flow included), the share of step
time spent inside numba kernels vs Python, messages per step, the peers' steps/s where they
are installed (gym-anytrading, gym-trading-env: optional `bench` extra), and the shortfall
(mean ± s.e., bps) of every baseline on each flow preset over the same seeded episodes.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import time
import warnings

import gymnasium as gym
import numpy as np
import pandas as pd

from trendgym.agents.execution import TWAP, execution_baseline_table
from trendgym.envs.execution import ExecutionEnv


def steps_per_second(env: ExecutionEnv, policy, steps: int) -> tuple[float, float]:
    """(env steps/s, background messages per step): only `env.step` is timed — not the
    policy's predict, not resets."""
    obs, _ = env.reset(seed=0)
    elapsed, done_steps, messages = 0.0, 0, 0
    while done_steps < steps:
        m0 = env.book.totals()["messages"]
        done = False
        while not done:
            action = policy(obs)
            t0 = time.perf_counter()
            obs, _, done, _, _ = env.step(action)
            elapsed += time.perf_counter() - t0
            done_steps += 1
        messages += env.book.totals()["messages"] - m0
        obs, _ = env.reset(seed=done_steps)
    return done_steps / elapsed, messages / done_steps


def numba_share(env: ExecutionEnv, steps: int) -> float:
    """Fraction of step time (resets excluded) spent inside the compiled step kernel, timed
    by wrapping the function the env calls."""
    inside = [0.0]

    def timed(fn):
        def wrapper(*a):
            t0 = time.perf_counter()
            out = fn(*a)
            inside[0] += time.perf_counter() - t0
            return out

        return wrapper

    rng = np.random.default_rng(0)
    stepping = numba_in_steps = 0.0
    n = 0
    while n < steps:
        env.reset(seed=n)
        kernel = env._kernel  # the compiled step (rebound only when the book grows)
        env._kernel = timed(kernel)
        done = False
        while not done:
            action = rng.uniform(-1, 1, 3).astype(np.float32)
            before, t0 = inside[0], time.perf_counter()
            _, _, done, _, _ = env.step(action)
            stepping += time.perf_counter() - t0
            numba_in_steps += inside[0] - before
            n += 1
        if env._kernel.__name__ == "wrapper":
            env._kernel = kernel
    return numba_in_steps / stepping


PEERS = (("gym-anytrading", "gym_anytrading"), ("gym-trading-env", "gym_trading_env"))


def synthetic_ohlcv(rows: int, freq: str = "min", seed: int = 0) -> pd.DataFrame:
    """A geometric random-walk OHLCV frame: lower-case columns, DatetimeIndex."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, rows)))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 5e-4, rows)) * close
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + wick,
            "low": np.minimum(open_, close) - wick,
            "close": close,
            "volume": rng.lognormal(10.0, 1.0, rows),
        },
        index=pd.date_range("2020-01-01", periods=rows, freq=freq),
    )


def make_peer(module: str, df: pd.DataFrame) -> tuple[gym.Env, str]:
    """(the peer env, unwrapped as ours is timed; a note on what it steps). Built untimed."""
    with (
        warnings.catch_warnings()
    ):  # gym_trading_env.environments sets filterwarnings("error") process-wide
        importlib.import_module(module)
        if module == "gym_anytrading":
            env = gym.make(
                "stocks-v0",
                df=df.rename(columns=str.capitalize),
                window_size=30,
                frame_bound=(30, len(df)),
            )
            return env.unwrapped, "stocks-v0, window 30, Discrete(2) sell/buy"
        importlib.import_module("gym_trading_env.environments")
        close = df["close"]
        feats = df.assign(
            feature_return=np.log(close).diff().fillna(0.0),
            feature_range=(df["high"] - df["low"]) / close,
        )
        # initial_position fixed: 'random' draws from the global np.random; verbose=0: no episode log
        env = gym.make("TradingEnv", df=feats, positions=[-1, 0, 1], initial_position=0, verbose=0)
        return env.unwrapped, "TradingEnv, positions [-1, 0, 1], 2 + 2 dynamic features"


def peer_steps_per_second(env: gym.Env, steps: int, seed: int = 0) -> float:
    """Env steps/s under a random policy (action_space.sample), resets excluded."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    elapsed, done_steps = 0.0, 0
    while done_steps < steps:
        done = False
        t0 = time.perf_counter()
        while not done and done_steps < steps:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            done_steps += 1
            done = term or trunc
        elapsed += time.perf_counter() - t0
        if done:
            env.reset(seed=seed + done_steps)
    return done_steps / elapsed


def peers(steps: int, rows: int = 10_000, freq: str = "min") -> list[tuple[str, float | None, str]]:
    """(peer, steps/s or None, what was stepped or why not) for each peer, measured in this process
    on the same synthetic OHLCV frame of `rows` bars; construction and resets are not timed."""
    out: list[tuple[str, float | None, str]] = []
    df = synthetic_ohlcv(rows, freq)
    for name, module in PEERS:
        if importlib.util.find_spec(module) is None:
            out.append((name, None, "not installed (pip install 'trendgym[bench]')"))
            continue
        try:
            env, what = make_peer(module, df)
            sps = peer_steps_per_second(env, steps)
        except Exception as exc:  # a peer's incompatibility is a result to print, not a crash
            out.append((name, None, f"failed: {type(exc).__name__}: {exc}"))
            continue
        out.append((name, sps, f"{name} {importlib.metadata.version(name)}: {what}, {rows:,} bars"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--episodes", type=int, default=200)
    args = ap.parse_args()

    env = ExecutionEnv()
    t0 = time.perf_counter()
    env.reset(seed=0)
    env.step(env.action_space.sample())
    print(
        f"first reset+step (numba compile or cache load): {time.perf_counter() - t0:.2f} s (excluded)"
    )
    rng = np.random.default_rng(0)
    random_sps, msgs = steps_per_second(
        env, lambda o: rng.uniform(-1, 1, 3).astype(np.float32), args.steps
    )
    twap = TWAP(env)
    twap_sps, _ = steps_per_second(env, lambda o: twap.predict(o)[0], args.steps)
    share = numba_share(ExecutionEnv(), args.steps // 4)
    print(f"{'policy':<16}{'env steps/s':>14}")
    print(f"{'random':<16}{random_sps:>14,.0f}")
    print(f"{'TWAP':<16}{twap_sps:>14,.0f}")
    print(
        f"background messages per step: {msgs:.0f}; time in numba kernels: {share:.0%}, "
        f"Python: {1 - share:.0%} (resets excluded)"
    )
    print(
        "peers, same process, random policy, resets excluded (a bar step each: no book, no flow):"
    )
    for name, sps, note in peers(args.steps):
        figure = "-" if sps is None else f"{sps:,.0f}"
        ratio = "" if sps is None else f"  ours/peer {random_sps / sps:.2f}x;"
        print(f"{name:<16}{figure:>14}{ratio}  {note}")

    print(
        f"\nshortfall (bps, mean ± s.e.) over {args.episodes} seeded episodes per preset "
        "(random side, size and urgency; the same episodes for every baseline):"
    )
    table = execution_baseline_table(episodes=args.episodes)
    wide = table.assign(
        cell=[f"{m:.2f} ± {s:.2f}" for m, s in zip(table.shortfall_bps, table.se_bps, strict=True)]
    )
    print(wide.pivot(index="baseline", columns="preset", values="cell").to_string())


if __name__ == "__main__":
    main()
