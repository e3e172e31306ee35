"""Training throughput: env steps/s during PPO ``learn`` with 1, 2 and 4 envs, and where time goes.

    python benchmarks/training.py                       # our env ids when importable, else Pendulum-v1
    python benchmarks/training.py --env Pendulum-v1 --timesteps 8192

For each env and vectorisation (DummyVecEnv in-process vs SubprocVecEnv workers, the peer
comparison) it prints steps/s and splits the learner's wall time into
  env      time the learner waits on ``step``/``reset`` (incl. IPC for subprocesses),
  policy   the rest of rollout collection (torch forward passes, buffers, VecNormalize),
  update   PPO's gradient epochs,
plus ``env cpu``: seconds spent inside the envs' own ``step`` (summed over workers, timed by
a wrapper) per learner second. Start-up (worker spawn, first rollout) is excluded and shown.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecEnvWrapper,
    VecMonitor,
)

import trendgym  # noqa: F401  (registers trendgym/* ids)
from trendgym.agents.sb3 import make_model, normalize_env, obs_layout_of

OUR_IDS = {
    "trendgym/Execution-v0": "trendgym.envs.execution",
    "trendgym/Portfolio-v0": "trendgym.envs.portfolio",
}


class StepTimer(gym.Wrapper):
    """Accumulates the seconds the wrapped env spends in ``step`` (read via ``get_attr``)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.env_seconds = 0.0

    def step(self, action: Any) -> Any:
        t0 = time.perf_counter()
        out = self.env.step(action)
        self.env_seconds += time.perf_counter() - t0
        return out


class TimedEnvFactory:
    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:
        self.env_id, self.env_kwargs = env_id, env_kwargs

    def __call__(self) -> gym.Env:

        return StepTimer(gym.make(self.env_id, **self.env_kwargs))


class WaitTimer(VecEnvWrapper):
    """Wall time the learner spends waiting on the vectorised env."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.wait_seconds = 0.0

    def reset(self) -> Any:
        t0 = time.perf_counter()
        obs = self.venv.reset()
        self.wait_seconds += time.perf_counter() - t0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        t0 = time.perf_counter()
        self.venv.step_async(actions)
        self.wait_seconds += time.perf_counter() - t0

    def step_wait(self) -> Any:
        t0 = time.perf_counter()
        out = self.venv.step_wait()
        self.wait_seconds += time.perf_counter() - t0
        return out


class PhaseTimer(BaseCallback):
    """Seconds spent collecting rollouts (the rest of ``learn`` is PPO's update)."""

    def __init__(self) -> None:
        super().__init__()
        self.rollout_seconds, self._t0 = 0.0, 0.0

    def _on_rollout_start(self) -> None:
        self._t0 = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.rollout_seconds += time.perf_counter() - self._t0

    def _on_step(self) -> bool:
        return True


def measure(
    env_id: str, env_kwargs: dict, n_envs: int, subproc: bool, timesteps: int, n_steps: int
) -> dict:
    t_start = time.perf_counter()
    factories = [TimedEnvFactory(env_id, env_kwargs) for _ in range(n_envs)]
    base = SubprocVecEnv(factories) if subproc else DummyVecEnv(factories)
    timer = WaitTimer(base)
    venv = normalize_env(VecMonitor(timer), obs_layout=obs_layout_of(base))
    model = make_model("ppo", venv, seed=0, env_id=env_id, n_steps=n_steps, batch_size=64)
    model.learn(n_steps * n_envs)  # warm-up: worker start, first rollout and update
    startup = time.perf_counter() - t_start
    timer.wait_seconds = 0.0
    venv.set_attr("env_seconds", 0.0)
    phases = PhaseTimer()
    steps_before = model.num_timesteps
    t0 = time.perf_counter()
    model.learn(timesteps, callback=phases, reset_num_timesteps=False)
    wall = time.perf_counter() - t0
    steps = model.num_timesteps - steps_before
    env_cpu = float(sum(venv.get_attr("env_seconds")))
    venv.close()
    return {
        "steps_per_s": steps / wall,
        "env": timer.wait_seconds / wall,
        "policy": (phases.rollout_seconds - timer.wait_seconds) / wall,
        "update": (wall - phases.rollout_seconds) / wall,
        "env_cpu": env_cpu / wall,
        "startup_s": startup,
        "steps": steps,
    }


def default_env_ids() -> list[str]:
    ours = [i for i, module in OUR_IDS.items() if importlib.util.find_spec(module) is not None]
    return ours or ["Pendulum-v1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", dest="env_ids", help="env id (repeatable)")
    parser.add_argument(
        "--env-kwargs", type=json.loads, default={}, help="JSON gymnasium.make kwargs"
    )
    parser.add_argument("--timesteps", type=int, default=4096, help="timed steps per configuration")
    parser.add_argument("--n-steps", type=int, default=256, help="PPO rollout length per env")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    torch.set_num_threads(1)  # one learner thread; the other core is for env workers
    env_ids = args.env_ids or default_env_ids()

    print(
        f"PPO learn throughput, torch threads=1, {args.timesteps} timed steps, n_steps={args.n_steps}"
    )
    header = f"{'env':<24} {'n_envs':>6} {'vec':<8} {'steps/s':>9} {'env':>6} {'policy':>7} {'update':>7} {'env cpu':>8} {'startup s':>10}"
    print(header)
    print("-" * len(header))
    for env_id in env_ids:
        for n_envs in args.n_envs:
            for subproc in [False] if n_envs == 1 else [False, True]:
                r = measure(env_id, args.env_kwargs, n_envs, subproc, args.timesteps, args.n_steps)
                print(
                    f"{env_id:<24} {n_envs:>6} {'subproc' if subproc else 'dummy':<8} "
                    f"{r['steps_per_s']:>9.0f} {r['env']:>6.0%} {r['policy']:>7.0%} {r['update']:>7.0%} "
                    f"{r['env_cpu']:>8.0%} {r['startup_s']:>10.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
