"""Execution baselines for `trendgym/Execution-v0`: TWAP, VWAP, Almgren–Chriss, Aggressive,
and a patient PassiveLimit. Each is built from the env it acts in (wrapped or not) and follows
SB3's ``predict(obs, state=None, episode_start=None, deterministic=True) -> (action, state)``.

The schedule followers (TWAP, Almgren–Chriss, VWAP) trade the gap between the inventory
left and their schedule with market orders, so every lot is done when scheduled. TWAP,
Aggressive and PassiveLimit read only the observation and accept batches (vector envs);
Almgren–Chriss and VWAP also read the env's warm-up estimates, so they act in one env.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from trendgym.envs.execution import MARKET, ExecutionEnv, encode_action

_MARKET_BIN = float(encode_action(MARKET, 0.0)[0])
_TOUCH_BIN = float(encode_action(3, 0.0)[0])
_WAIT_BIN = float(encode_action(0, 0.0)[0])


def almgren_chriss_trajectory(
    X: float, T: float, N: int, sigma: float, eta: float, gamma: float, lam: float
) -> np.ndarray:
    """Optimal holdings at the N+1 grid points t_k = k·T/N (Almgren & Chriss 2000):
    x_k = X·sinh(κ(T − t_k)) / sinh(κT), with τ = T/N, η̃ = η − γτ/2 and κ from
    (2/τ²)(cosh κτ − 1) = λσ²/η̃. ``lam = 0`` gives the straight TWAP line."""
    for name, value in (
        ("X", X),
        ("T", T),
        ("sigma", sigma),
        ("eta", eta),
        ("gamma", gamma),
        ("lam", lam),
    ):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    if not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N must be a positive integer, got {N!r}")
    if T <= 0:
        raise ValueError(f"T must be positive, got {T}")
    if sigma < 0 or lam < 0 or gamma < 0:
        raise ValueError(f"sigma, gamma and lam must be >= 0, got {sigma}, {gamma}, {lam}")
    tau = T / N
    eta_tilde = eta - 0.5 * gamma * tau
    if eta_tilde <= 0:
        raise ValueError(
            f"eta − gamma·tau/2 must be positive (got {eta_tilde}); the temporary impact is too small"
        )
    t = np.arange(N + 1) * tau
    kappa_tilde_sq = lam * sigma**2 / eta_tilde
    if kappa_tilde_sq == 0:
        return X * (1.0 - t / T)
    kappa = np.arccosh(1.0 + 0.5 * kappa_tilde_sq * tau**2) / tau
    if kappa * T > 700:  # sinh overflows; the schedule is then "everything at once"
        out = np.zeros(N + 1)
        out[0] = X
        return out
    return X * np.sinh(kappa * (T - t)) / np.sinh(kappa * T)


class _ExecutionPolicy:
    """Shared plumbing: find the ExecutionEnv under any wrappers; batch-aware predict."""

    reads_env_state = False  # True: the policy reads its env, so one observation at a time

    def __init__(self, env: gym.Env) -> None:
        base = getattr(env, "unwrapped", env)
        if not isinstance(base, ExecutionEnv):
            raise TypeError(
                f"{type(self).__name__} acts in trendgym/Execution-v0, got {type(base).__name__}"
            )
        self.env = base
        self.horizon = base.horizon

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        if self.reads_env_state and batch.shape[0] != 1:
            raise ValueError(
                f"{type(self).__name__} reads its env's state, so it acts on one observation at a time, got {batch.shape[0]}"
            )
        actions = np.stack([self._act(o) for o in batch]).astype(np.float32)
        return (actions[0] if single else actions), state

    def _steps_left(self, obs: np.ndarray) -> int:
        return max(int(round(float(obs[0]) * self.horizon)), 1)

    def _act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Aggressive(_ExecutionPolicy):
    """Everything at once with one market order at the first decision."""

    def _act(self, obs):
        return np.array([_MARKET_BIN, 1.0, 1.0], dtype=np.float32)


class _ScheduleFollower(_ExecutionPolicy):
    """Trades, with a market order, the gap between the inventory left and `_schedule()`
    (fractions of the parent still held at each of the horizon + 1 decision points)."""

    def _schedule(self) -> np.ndarray:
        raise NotImplementedError

    def _act(self, obs):
        remaining = float(obs[1])
        if remaining <= 0:
            return encode_action(MARKET, 0.0)
        k = self.horizon - self._steps_left(obs)
        target_after = self._schedule()[k + 1]
        return encode_action(
            MARKET, float(np.clip((remaining - target_after) / remaining, 0.0, 1.0))
        )


class TWAP(_ScheduleFollower):
    """Equal slices over the horizon: the straight line, which is Almgren–Chriss with no
    risk aversion."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.line = almgren_chriss_trajectory(
            1.0, float(self.horizon), self.horizon, 0.0, 1.0, 0.0, 0.0
        )

    def _schedule(self) -> np.ndarray:
        return self.line


class AlmgrenChriss(_ScheduleFollower):
    """Follows `almgren_chriss_trajectory`, with σ, η, γ estimated from the book the env
    warmed up: σ = per-step volatility (ticks), η = 1 / (2 × touch depth) ticks per lot (a
    market order of v lots walks about v / depth levels), γ = 0 (the simulated flow has no
    permanent impact). ``lam`` is the risk aversion (per tick); ``lam=0`` equals TWAP."""

    reads_env_state = True

    def __init__(
        self,
        env: gym.Env,
        lam: float = 1e-3,
        eta: float | None = None,
        sigma: float | None = None,
        gamma: float = 0.0,
    ) -> None:
        super().__init__(env)
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.lam, self.eta_arg, self.sigma_arg, self.gamma = lam, eta, sigma, gamma
        self._episode = -1

    def _schedule(self) -> np.ndarray:
        e = self.env
        if self._episode != e.episodes:  # estimate once per episode, from the warm-up
            sigma = (
                self.sigma_arg if self.sigma_arg is not None else e.vol_bps * 1e-4 * e.arrival_ticks
            )
            eta = self.eta_arg if self.eta_arg is not None else 1.0 / (2.0 * e.touch_depth)
            self.trajectory = almgren_chriss_trajectory(
                1.0, float(self.horizon), self.horizon, sigma, eta, self.gamma, self.lam
            )
            self._episode = e.episodes
        return self.trajectory


class VWAP(_ExecutionPolicy):
    """Participates in the market's volume: the share done tracks the share of the expected
    horizon volume that has traded (expected volume per step estimated in the warm-up),
    never falling behind TWAP's line by more than `max_lag` of the parent."""

    reads_env_state = True

    def __init__(self, env: gym.Env, max_lag: float = 0.1) -> None:
        super().__init__(env)
        if not 0 <= max_lag <= 1:
            raise ValueError(f"max_lag must be in [0, 1], got {max_lag}")
        self.max_lag = max_lag

    def _act(self, obs):
        e = self.env
        steps_left = self._steps_left(obs)
        remaining = float(obs[1])
        if remaining <= 0:
            return encode_action(MARKET, 0.0)
        k = self.horizon - steps_left
        expected = e.step_volume * self.horizon
        volume_share = min(1.0, e.market_qty / expected) if expected > 0 else 0.0
        twap_share = (k + 1) / self.horizon
        target_done = min(1.0, max(volume_share, twap_share - self.max_lag))
        if steps_left == 1:
            target_done = 1.0
        done = 1.0 - remaining
        return encode_action(MARKET, float(np.clip((target_done - done) / remaining, 0.0, 1.0)))


class PassiveLimit(_ExecutionPolicy):
    """Patient: rests the whole remainder at the own touch and follows the touch when it
    moves; whatever is left at the horizon is completed at market by the env."""

    def _act(self, obs):
        return np.array([_TOUCH_BIN, 1.0, 1.0], dtype=np.float32)


EXECUTION_BASELINES = {
    "TWAP": TWAP,
    "VWAP": VWAP,
    "AlmgrenChriss": AlmgrenChriss,
    "Aggressive": Aggressive,
    "PassiveLimit": PassiveLimit,
}


def run_execution_episode(env: gym.Env, policy, seed: int) -> dict:
    """One episode of `policy` in `env` from `reset(seed=seed)`; returns the terminal info."""
    obs, _ = env.reset(seed=seed)
    while True:
        action, _ = policy.predict(obs, deterministic=True)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return info


def execution_baseline_table(
    presets=("calm", "volatile", "trending", "crypto"),
    episodes: int = 200,
    seed: int = 0,
    progress: bool = True,
    **env_kwargs,
):
    """Shortfall (bps) mean ± standard error of every baseline on each flow preset, over the
    same seeded episodes (same parent orders, same flow draws) for every baseline."""
    import pandas as pd
    from tqdm.auto import tqdm

    rows = []
    total = len(presets) * len(EXECUTION_BASELINES) * episodes
    with tqdm(
        total=total, desc="execution baselines", disable=None if progress else True, leave=False
    ) as bar:
        for preset in presets:
            env = ExecutionEnv(preset=preset, **env_kwargs)
            for name, cls in EXECUTION_BASELINES.items():
                policy = cls(env)
                infos = []
                for i in range(episodes):
                    infos.append(run_execution_episode(env, policy, seed + i))
                    bar.update()
                shortfall = np.array([info["shortfall_bps"] for info in infos])
                rows.append(
                    {
                        "preset": preset,
                        "baseline": name,
                        "shortfall_bps": shortfall.mean(),
                        "se_bps": shortfall.std(ddof=1) / np.sqrt(len(shortfall)),
                        "fill_rate": np.mean([info["fill_rate"] for info in infos]),
                        "vwap_slippage_bps": np.mean([info["vwap_slippage_bps"] for info in infos]),
                    }
                )
    return pd.DataFrame(rows)
