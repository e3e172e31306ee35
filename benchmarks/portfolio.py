"""Throughput of trendgym/Portfolio-v0: steps/s by universe size and history length.

Prints, in one process:
1. numba compile time of the step kernels (fresh, uncached compiles), reported apart;
2. env steps/s at 10, 30, 50, 200 assets (20 years of daily data), with the one-off feature
   precomputation reported separately and amortised over one full episode;
3. steps/s at 30 assets as the history grows (5, 20, 80 years): a step must not slow down;
4. the same env loop written the pure-pandas way (features recomputed from the history each
   step, as per-step pandas envs do), at growing history lengths;
5. gym-anytrading / gym-trading-env steps/s where installed (optional `bench` extra), same
   process, random policy, beside Portfolio-v0 at 4 assets (they are single-asset envs).

Step rates are the best of 3 repeats. Run: ``.venv/bin/python benchmarks/portfolio.py``
(well under a minute on 2 cores).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
from execution import peers  # sibling script: benchmarks/ is sys.path[0] when run as a file
from numba import njit

from trendgym.envs.market import features
from trendgym.envs.market.generator import generate_market
from trendgym.envs.portfolio import PortfolioEnv, kernels

PEER_ROWS = 20 * 261  # 20 years of business days, as Portfolio-v0's rows above


def compile_times() -> dict[str, float]:
    """Seconds to compile each kernel from scratch (no on-disk cache) and call it once."""
    n = 30
    out = {}
    x = np.random.default_rng(0).normal(size=(300, n))
    start = time.perf_counter()
    njit(cache=False)(features.ewm_mean_nb.py_func)(x, 60.0)
    out["ewm_mean_nb"] = time.perf_counter() - start
    w = np.zeros(n)
    args = (
        np.zeros(n),
        w,
        np.ones(n, bool),
        np.zeros(n),
        np.ones(n, bool),
        np.zeros(n),
        np.zeros(n),
        np.ones(n),
        0.2,
        1.0,
        0.0,
    )
    start = time.perf_counter()
    njit(cache=False)(kernels.rebalance_nb.py_func)(*args)
    out["rebalance_nb"] = time.perf_counter() - start
    env = PortfolioEnv(n_assets=n, n_years=2, warmup=60)
    env.reset()
    obs = np.zeros(env.observation_space.shape[0], np.float32)
    start = time.perf_counter()
    kernel = njit(cache=False, _nrt=False)(kernels.env_step_nb.py_func)
    kernel(np.zeros(n, np.float32), env._state, env._data, env._settings, obs, env._buffers)
    out["env_step_nb (the single env's step; its callees cached)"] = time.perf_counter() - start
    return out


def time_env(n_assets: int, n_years: float, min_steps: int = 20_000) -> dict[str, float]:
    """Construction seconds and steps/s of the unwrapped env, whole-span episodes."""
    start = time.perf_counter()
    data = generate_market("futures", n_years=n_years, n_assets=n_assets, seed=0)
    gen_s = time.perf_counter() - start
    start = time.perf_counter()
    env = PortfolioEnv(prices=data.prices, costs_bps=data.costs_bps.to_dict())
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.2, 0.2, (512, n_assets)).astype(np.float32)
    env.reset(seed=0)
    env.step(actions[0])  # warm (kernels are cached on disk; this only loads them)
    episode = len(env.dates) - 1 - 252
    best = seconds_per_step(env, actions, min_steps)
    return {
        "assets": n_assets,
        "years": n_years,
        "obs_dim": env.observation_space.shape[0],
        "generate_s": gen_s,
        "features_s": build_s,
        "steps/s": 1.0 / best,
        "us/step": 1e6 * best,
        "steps/s incl. features (1 episode)": episode / (build_s + episode * best),
    }


def time_gym_make(n_assets: int = 30, n_steps: int = 20_000) -> float:
    """Steps/s through gymnasium.make's default wrappers (order enforcing, passive checker)."""
    import gymnasium as gym

    env = gym.make("trendgym:trendgym/Portfolio-v0", n_assets=n_assets)
    actions = np.random.default_rng(0).uniform(-0.2, 0.2, (512, n_assets)).astype(np.float32)
    return 1.0 / seconds_per_step(env, actions, n_steps)


def seconds_per_step(env, actions: np.ndarray, min_steps: int) -> float:
    """Seconds per step over episodes from ``reset(seed=0)`` under the 512 `actions` in turn,
    whole episodes until `min_steps` (resets included); the best of 3 repeats: the machine is
    shared, the minimum is the least noisy."""
    best = math.inf
    for _ in range(3):
        steps = 0
        start = time.perf_counter()
        while steps < min_steps:
            env.reset(seed=0)
            done = False
            while not done:
                _, _, term, trunc, _ = env.step(actions[steps & 511])
                steps += 1
                done = term or trunc
        best = min(best, (time.perf_counter() - start) / steps)
    return best


class PandasPortfolioEnv:
    """The per-step pandas way: each step recomputes the features from the price history."""

    def __init__(self, prices: pd.DataFrame, costs_bps: float = 2.0, t0: int = 252) -> None:
        self.prices = prices
        self.costs = costs_bps * 1e-4
        self.t0 = t0

    def reset(self) -> np.ndarray:
        self.t = self.t0
        self.weights = pd.Series(0.0, index=self.prices.columns)
        self.nav = 1.0
        return self._obs()

    def _obs(self) -> np.ndarray:
        hist = self.prices.iloc[: self.t + 1]
        returns = hist.pct_change(fill_method=None)
        vol = np.sqrt((returns**2).ewm(com=60).mean().iloc[-1] * 261)
        log_p = np.log(hist)
        feats = [
            (log_p.iloc[-1] - log_p.iloc[-1 - h]) / (vol / math.sqrt(261) * math.sqrt(h))
            for h in (21, 63, 126, 252)
        ]
        for fast, slow in ((8, 24), (16, 48), (32, 96)):
            gap = log_p.ewm(span=fast).mean().iloc[-1] - log_p.ewm(span=slow).mean().iloc[-1]
            feats.append(gap / (vol / math.sqrt(261) * math.sqrt(slow)))
        feats.append(vol)
        feats.append((log_p.iloc[-22] - log_p.iloc[-253]).rank(pct=True))
        feats.append(self.weights)
        corr = returns.iloc[-63:].corr().to_numpy()
        avg_corr = (corr.sum() - len(corr)) / (len(corr) * (len(corr) - 1))
        per_asset = pd.concat(feats, axis=1).fillna(0.0).to_numpy(np.float32)
        return np.concatenate([per_asset.reshape(-1), [avg_corr]]).astype(np.float32)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        target = pd.Series(action.astype(float), index=self.prices.columns)
        gross = target.abs().sum()
        if gross > 1.0:
            target = target / gross
        cost = (target - self.weights).abs().sum() * self.costs
        r = self.prices.iloc[self.t + 1] / self.prices.iloc[self.t] - 1.0
        net = float((target * r).sum() - cost)
        self.nav *= 1.0 + net
        self.weights = target * (1.0 + r) / (1.0 + net)
        self.t += 1
        return self._obs(), math.log1p(net), self.t >= len(self.prices) - 1


def time_pandas(n_assets: int, n_years: float, n_steps: int = 150) -> float:
    data = generate_market("futures", n_years=n_years, n_assets=n_assets, seed=0)
    env = PandasPortfolioEnv(data.prices)
    env.reset()
    action = np.full(n_assets, 0.02, np.float32)
    start = time.perf_counter()
    for _ in range(n_steps):
        env.step(action)
    return n_steps / (time.perf_counter() - start)


def main() -> None:
    pd.set_option("display.width", 200)
    pd.set_option("display.float_format", lambda v: f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}")
    print("== numba compile time (fresh compile, excluded from every figure below)")
    for name, secs in compile_times().items():
        print(f"  {name:50s} {secs:6.2f} s")

    print("\n== Portfolio-v0 (unwrapped), 20 years of daily data, futures preset")
    rows = [time_env(n, 20.0) for n in (10, 30, 50, 200)]
    print(pd.DataFrame(rows).to_string(index=False))
    print(f"\n  through gymnasium.make wrappers, 30 assets: {time_gym_make():,.0f} steps/s")

    print("\n== history length, 30 assets: steps/s must not fall as the history grows")
    rows = [time_env(30, y, min_steps=20_000) for y in (5.0, 20.0, 80.0)]
    print(pd.DataFrame(rows)[["years", "features_s", "steps/s", "us/step"]].to_string(index=False))

    print("\n== pure-pandas per-step env (features recomputed from history each step), 30 assets")
    rows = [{"years": y, "steps/s": time_pandas(30, y)} for y in (2.0, 5.0, 20.0)]
    print(pd.DataFrame(rows).to_string(index=False))

    print(
        "\n== peers, same process: single-asset daily envs over a synthetic 20-year OHLCV frame,"
        "\n   random policy, resets and construction excluded (ours at its smallest universe)"
    )
    ours = time_env(4, 20.0)["steps/s"]  # 4 assets: the futures generator's smallest universe
    print(f"  {'trendgym Portfolio-v0, 4 assets':32s} {ours:>10,.0f} steps/s")
    for name, sps, note in peers(20_000, rows=PEER_ROWS, freq="B"):
        figure = "-" if sps is None else f"{sps:,.0f}"
        ratio = "" if sps is None else f"  ours/peer {ours / sps:.2f}x;"
        print(f"  {name:32s} {figure:>10} steps/s{ratio}  {note}")


if __name__ == "__main__":
    main()
