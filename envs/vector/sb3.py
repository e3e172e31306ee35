"""``NativeVecEnv``: a Stable-Baselines3 ``VecEnv`` over a native (batched) Gymnasium vector env.

SB3 steps its ``DummyVecEnv`` one sub-env at a time in Python; a native vector env steps all
of them in one call. ``NativeVecEnv`` translates between the two APIs, nothing more:
Gymnasium's same-step autoreset (``info["final_obs"]``, ``info["final_info"]``) becomes SB3's
``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]``.

This module imports SB3: it is imported on demand only (by ``make_sb3_vec_env`` in
``trendgym.envs.sb3_vec``), never by ``import trendgym``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)


def unbatch_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    """Env `i`'s own info dict from Gymnasium vector infos (the keys whose `_key` mask is set)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        if isinstance(value, dict):
            out[key] = unbatch_info(value, i)
        else:
            item = value[i]
            out[key] = item.item() if isinstance(item, np.generic) else item
    return out


class NativeVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a Gymnasium ``VectorEnv`` that autoresets in the same step.

    Parameters
    ----------
    venv
        A native vector env whose ``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``
        (``make_sb3_vec_env`` builds one). It should offer ``get_attr(name)`` and may offer
        ``set_attr(name, values)`` and ``call(name, ...)``; otherwise attributes are read from the
        vector env itself.

    Notes
    -----
    Observations come back as one fresh array per step; rewards as float32 (as ``DummyVecEnv``).
    An env that did not finish this step gets an empty info dict (building per-env dicts of every
    key would cost more than the step itself); a finished env gets its terminal info, with
    ``terminal_observation`` and ``TimeLimit.truncated``. Per-step values such as NAV are on the
    vector env (``get_attr("nav")``).
    """

    def __init__(self, venv: VectorEnv) -> None:
        if not isinstance(venv, VectorEnv):
            raise TypeError(f"venv must be a gymnasium VectorEnv, got {type(venv).__name__}")
        mode = venv.metadata.get("autoreset_mode")
        if mode is not AutoresetMode.SAME_STEP:
            raise ValueError(
                f"the vector env must autoreset in the same step (SB3's convention), got {mode!r}"
            )
        self.venv = venv
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # ---------------------------------------------------------------- stepping
    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = None
        if any(self._options):
            if any(o != self._options[0] for o in self._options):
                raise ValueError("the native vector env takes one options dict for all envs")
            options = self._options[0]
        obs, infos = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [unbatch_info(infos, i) for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final_obs = infos["final_obs"]
            final_info = infos.get("final_info", {})
            for i in np.flatnonzero(dones):
                info = unbatch_info(final_info, i)
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                info["terminal_observation"] = final_obs[i]
                out[i] = info
                self.reset_infos[i] = unbatch_info(infos, i)
        return obs, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    # ---------------------------------------------------------------- attributes and methods
    def _all_values(self, name: str) -> Sequence[Any]:
        if hasattr(self.venv, "get_attr"):
            return self.venv.get_attr(name)
        return (getattr(self.venv, name),) * self.num_envs

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        values = self._all_values(attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        chosen = list(self._get_indices(indices))
        if sorted(chosen) != list(range(self.num_envs)):
            raise ValueError(
                f"{attr_name!r} is shared by the envs of a native vector env: set it for all"
            )
        if not hasattr(self.venv, "set_attr"):
            raise AttributeError(f"{type(self.venv).__name__} has no set_attr")
        self.venv.set_attr(attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        if not hasattr(self.venv, "call"):
            raise AttributeError(f"{type(self.venv).__name__} has no call() for env methods")
        results = self.venv.call(method_name, *method_args, **method_kwargs)
        return [results[i] for i in self._get_indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        # the sub-envs are rows of arrays, never gym.Wrapper-wrapped
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
