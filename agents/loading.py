"""Load a trained run directory as a policy with SB3's ``predict``, usable wherever baselines are.

A run directory (written by ``trendgym.train``) holds::

    config.json            the exact training config (algo, env id, n_stack, ...)
    versions.json          python / numpy / torch / SB3 / gymnasium / trendgym versions, git commit
    sessions.jsonl         one line per training session (start and end step, status)
    model.zip              the final SB3 model
    vecnormalize.pkl       its VecNormalize statistics (absent when normalisation was off)
    checkpoints/step_<N>/  periodic and on-interrupt checkpoints (model, vecnormalize, replay buffer)
    tb/                    TensorBoard logs
    monitor/               per-episode returns and lengths (VecMonitor CSVs)
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from trendgym.agents.sb3 import algo_class

CONFIG_FILE = "config.json"
VERSIONS_FILE = "versions.json"
SESSIONS_FILE = "sessions.jsonl"
MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
REPLAY_BUFFER_FILE = "replay_buffer.pkl"
CHECKPOINTS_DIR = "checkpoints"


def checkpoint_dir(run_dir: str | Path, steps: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / f"step_{int(steps):012d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as (step, directory), oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    for path in root.glob("step_*") if root.is_dir() else ():
        suffix = path.name.removeprefix("step_")
        if path.is_dir() and suffix.isdigit() and (path / MODEL_FILE).is_file():
            found.append((int(suffix), path))
    return sorted(found)


def read_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a trendgym run directory (no {CONFIG_FILE})")
    return json.loads(path.read_text())


class TrainedAgent:
    """A trained SB3 model plus the observation pipeline it was trained behind.

    ``predict`` takes raw env observations (one, or a batch), applies the saved
    ``VecNormalize`` statistics (frozen) and, for ``n_stack > 1``, the frame window of
    ``VecFrameStack``. The window travels in ``state`` like an RNN state: pass back the
    returned ``state`` and set ``episode_start`` at resets (``state=None`` starts a new
    window). With ``n_stack == 1`` the state is passed through untouched.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        vec_normalize: VecNormalize | None,
        n_stack: int = 1,
        config: dict[str, Any] | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.model, self.vec_normalize, self.n_stack = model, vec_normalize, int(n_stack)
        self.config, self.run_dir = dict(config or {}), run_dir
        policy_dim = int(np.prod(model.observation_space.shape))
        if policy_dim % self.n_stack:
            raise ValueError(
                f"model observation dim {policy_dim} does not split into {n_stack} frames"
            )
        self.frame_dim = policy_dim // self.n_stack
        self.action_space = model.action_space

    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Raw frames (..., frame_dim) -> what the policy saw for them during training."""
        obs = np.asarray(obs, dtype=np.float32)
        if self.vec_normalize is None:
            return obs
        return np.asarray(self.vec_normalize.normalize_obs(obs), dtype=np.float32)

    def _frames(self, obs: Any) -> tuple[np.ndarray, bool]:
        arr = np.asarray(obs, dtype=np.float32)
        if arr.shape[-1:] != (self.frame_dim,) or arr.ndim not in (1, 2):
            raise ValueError(
                f"observation shape {arr.shape} does not match the trained model's "
                f"({self.frame_dim},) or (n_envs, {self.frame_dim})"
            )
        return arr.reshape(-1, self.frame_dim), arr.ndim == 1

    def policy_input(self, obs: Any) -> np.ndarray:
        """Normalise raw observations as the policy expects them; stacked windows frame by frame."""
        arr = np.asarray(obs, dtype=np.float32)
        full = self.frame_dim * self.n_stack
        if arr.shape[-1] != full:
            raise ValueError(
                f"policy input needs last dim {full} (n_stack={self.n_stack}), got {arr.shape}"
            )
        framed = arr.reshape(*arr.shape[:-1], self.n_stack, self.frame_dim)
        return self.normalize(framed).reshape(arr.shape)

    def predict(
        self,
        obs: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        frames, single = self._frames(obs)
        normed = self.normalize(frames)
        if self.n_stack == 1:
            action, _ = self.model.predict(normed, deterministic=deterministic)
            return (action[0] if single else action), state
        n = frames.shape[0]
        if state is None:
            window = np.zeros((n, self.n_stack * self.frame_dim), dtype=np.float32)
        else:
            window = np.array(state, dtype=np.float32).reshape(n, self.n_stack * self.frame_dim)
        if episode_start is not None:
            window[np.asarray(episode_start, dtype=bool).reshape(n)] = 0.0
        window[:, : -self.frame_dim] = window[:, self.frame_dim :].copy()
        window[:, -self.frame_dim :] = normed
        action, _ = self.model.predict(window, deterministic=deterministic)
        if single:
            return action[0], window[0]
        return action, window

    def __repr__(self) -> str:
        return (
            f"TrainedAgent({self.config.get('algo')!r} on {self.config.get('env_id')!r}, "
            f"steps={self.num_timesteps}, n_stack={self.n_stack}, run_dir={str(self.run_dir)!r})"
        )


def load(run_dir: str | Path, checkpoint: int | str | None = None) -> TrainedAgent:
    """Load a run directory (final model, or ``checkpoint=`` a step or "latest").

    Needs neither the env nor the training code: only SB3, torch and the extractor classes.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if checkpoint is None:
        where = run_dir
    elif checkpoint == "latest":
        found = list_checkpoints(run_dir)
        if not found:
            raise ValueError(f"{run_dir} has no checkpoints")
        where = found[-1][1]
    elif isinstance(checkpoint, int | np.integer):
        where = checkpoint_dir(run_dir, int(checkpoint))
    else:
        raise TypeError(f"checkpoint must be None, 'latest' or a step number, got {checkpoint!r}")
    model_path = where / MODEL_FILE
    if not model_path.is_file():
        steps = [s for s, _ in list_checkpoints(run_dir)]
        raise ValueError(f"no model at {model_path} (checkpoints at steps {steps})")
    model = algo_class(config["algo"]).load(model_path, device="cpu")
    vec_normalize = None
    if (where / VECNORMALIZE_FILE).is_file():
        with open(where / VECNORMALIZE_FILE, "rb") as f:
            vec_normalize = pickle.load(f)
        vec_normalize.training = False
    return TrainedAgent(model, vec_normalize, int(config.get("n_stack", 1)), config, run_dir)
