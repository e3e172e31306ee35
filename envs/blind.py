"""``BlindObservation``: the env with its observation's information destroyed.

A placebo for learned policies: every observation is replaced by seeded noise of the same
shape, drawn inside the declared bounds and independent of the state, so whatever a search
finds in the blind env is what it finds by luck (and by open-loop habits) alone. Rewards,
episode ends and infos are untouched, so the blind env is scored exactly like the real one.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["BlindObservation"]


class BlindObservation(gym.ObservationWrapper):
    """Replace every observation with uniform noise inside the (finite-clipped) bounds.

    The noise generator is seeded from ``reset(seed=...)`` (and otherwise from the env's own
    generator), so a seeded episode is reproducible.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box):
            raise TypeError(f"BlindObservation needs a Box observation space, got {space!r}")
        self._low = np.nan_to_num(space.low.astype(np.float64), neginf=-1.0, posinf=1.0)
        self._high = np.nan_to_num(space.high.astype(np.float64), neginf=-1.0, posinf=1.0)
        self._dtype = space.dtype
        self._noise = np.random.default_rng(0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._noise = np.random.default_rng([seed, 0x5EED])
        else:
            self._noise = np.random.default_rng(self.env.unwrapped.np_random.integers(2**63))
        return self.observation(obs), info

    def observation(self, observation: np.ndarray) -> np.ndarray:
        x = self._noise.uniform(self._low, self._high)
        return x.astype(self._dtype)
