"""``make_sb3_vec_env``: SB3 training on a native vector env, with no ``DummyVecEnv`` in between.

Importing this module is light (no SB3, no torch): the adapter, ``NativeVecEnv`` in
``trendgym.envs.vector.sb3``, is imported when the function is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

if TYPE_CHECKING:
    from trendgym.envs.vector.sb3 import NativeVecEnv


def make_sb3_vec_env(
    env_id: str, n_envs: int, seed: int | None = None, **env_kwargs: Any
) -> NativeVecEnv:
    """An SB3 ``VecEnv`` of `n_envs` copies of `env_id`, stepped by its native vector env.

    Parameters
    ----------
    env_id
        A registered id with a ``vector_entry_point`` (``"trendgym/Portfolio-v0"``, also with the
        ``"trendgym:"`` prefix).
    n_envs
        Number of sub-envs.
    seed
        Seeds env i with ``seed + i`` at the first ``reset()`` (SB3's ``VecEnv.seed``).
    **env_kwargs
        Keyword arguments of the env (as ``gymnasium.make``).

    Examples
    --------
    >>> from stable_baselines3 import PPO
    >>> venv = make_sb3_vec_env("trendgym/Portfolio-v0", n_envs=64, window=252, seed=0)
    >>> model = PPO("MlpPolicy", venv).learn(10_000)  # doctest: +SKIP
    """
    if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    if "autoreset_mode" in env_kwargs:
        raise ValueError("autoreset_mode is fixed to same-step (SB3's convention)")
    if ":" in env_id:  # "module:id", as gymnasium.make: importing the module registers the id
        module, _, env_id = env_id.partition(":")
        importlib.import_module(module)
    spec = gym.spec(env_id)
    if spec.vector_entry_point is None:
        raise ValueError(f"{env_id!r} has no native vector env (no vector_entry_point)")
    venv = gym.make_vec(
        env_id,
        num_envs=int(n_envs),
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP,
        **env_kwargs,
    )
    from trendgym.envs.vector.sb3 import NativeVecEnv  # SB3 is imported here, on demand

    vec_env = NativeVecEnv(venv)
    if seed is not None:
        vec_env.seed(seed)
    return vec_env
