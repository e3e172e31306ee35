"""PPO on the order-execution env (``trendgym/Execution-v0``): work a parent order for low shortfall.

    python -m trendgym.train.ppo_execution                                # ~1 min, 30k steps
    python -m trendgym.train.ppo_execution --env-kwargs '{"urgency": 0.8}' --out runs/ppo_urgent
    python -m trendgym.train.ppo_execution --resume                       # after an interruption

The defaults are the setting checked by ``tests/test_learning.py`` (issue 6): 30k steps, one
env, SB3's flatten extractor and the hyper-parameters of ``trendgym.agents.sb3.ENV_DEFAULTS``
(``--model-kwargs`` overrides). :func:`evaluate` compares the trained policy with TWAP (or
another baseline) on held-out episode seeds 10_000..10_199.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from trendgym.train.core import TrainConfig, run_script, train

ENV_ID = "trendgym/Execution-v0"
HELD_OUT_SEEDS = range(10_000, 10_200)


@dataclass
class Args:
    """Train PPO on trendgym/Execution-v0 and compare it with TWAP on held-out seeds."""

    env_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"urgency": 0.8}
    timesteps: int = 30_000
    seed: int = 0
    n_envs: int = 1  # 30k steps take ~30-60 s in-process; subprocess workers do not pay off
    out: str = "runs/ppo_execution"
    resume: bool = False
    n_stack: int = 1  # >1 gives the MLP a short memory of spread/OFI without recurrence
    norm_reward: bool = False  # rewards are already in bp, O(1-10) per step
    checkpoint_every: int = 10_000
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    progress_bar: bool = True


def main(args: Args) -> Path:
    return train(TrainConfig.from_args(args, env_id=ENV_ID, algo="ppo", norm_obs=True))


def evaluate(
    run_dir: str | Path, seeds: Any = HELD_OUT_SEEDS, baseline: str = "TWAP"
) -> dict[str, float]:
    """Mean shortfall (bp) ± standard error of the trained policy and a baseline, same episodes.

    ``baseline`` names a class of ``trendgym.agents.execution`` (TWAP, VWAP, AlmgrenChriss,
    Aggressive, PassiveLimit). Same seeds, same parent orders and flow for both, so
    ``diff_bps`` (PPO - baseline, paired) has its own standard error ``diff_se_bps``.
    """
    from trendgym.agents import execution, load
    from trendgym.agents.loading import read_config

    if baseline not in execution.EXECUTION_BASELINES:
        raise ValueError(
            f"baseline must be one of {sorted(execution.EXECUTION_BASELINES)}, got {baseline!r}"
        )
    env = gym.make(ENV_ID, **read_config(run_dir)["env_kwargs"])
    agent, other = load(run_dir), execution.EXECUTION_BASELINES[baseline](env)
    run = execution.run_execution_episode
    ppo = np.array([run(env, agent, s)["shortfall_bps"] for s in seeds])
    base = np.array([run(env, other, s)["shortfall_bps"] for s in seeds])
    n = len(ppo)

    def se(x: np.ndarray) -> float:
        return float(x.std(ddof=1) / np.sqrt(n))

    return {
        "ppo_bps": float(ppo.mean()),
        "ppo_se_bps": se(ppo),
        "baseline_bps": float(base.mean()),
        "baseline_se_bps": se(base),
        "diff_bps": float((ppo - base).mean()),
        "diff_se_bps": se(ppo - base),
        "episodes": n,
    }


def report(run_dir: Path) -> None:
    print({k: round(v, 2) for k, v in evaluate(run_dir).items()})


if __name__ == "__main__":
    sys.exit(run_script(Args, main, report))
