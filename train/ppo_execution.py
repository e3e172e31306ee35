"""PPO on the order-execution env (``trendgym/Execution-v0``): work a parent order for low shortfall.

    python -m trendgym.train.ppo_execution --timesteps 200000 --n-envs 2
    python -m trendgym.train.ppo_execution --resume          # after an interruption

Hyper-parameters come from ``trendgym.agents.sb3.ENV_DEFAULTS``; ``--model-kwargs`` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trendgym.train.core import TrainConfig, args_from_cli, train


@dataclass
class Args:
    """Train PPO on trendgym/Execution-v0."""

    env_id: str = "trendgym/Execution-v0"
    env_kwargs: dict[str, Any] = field(
        default_factory=dict
    )  # gymnasium.make kwargs (e.g. a preset)
    timesteps: int = 200_000
    seed: int = 0
    n_envs: int = 2  # one worker per core on the reference 2-core machine
    out: str = "runs/ppo_execution"
    resume: bool = False
    n_stack: int = 1  # >1 gives the MLP a short memory of spread/OFI without recurrence
    norm_reward: bool = True  # keeps the value loss O(1) whatever unit the shortfall reward uses
    checkpoint_every: int = 20_000
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    progress_bar: bool = True


def main(args: Args) -> Path:
    config = TrainConfig(
        env_id=args.env_id,
        algo="ppo",
        timesteps=args.timesteps,
        seed=args.seed,
        n_envs=args.n_envs,
        out=args.out,
        resume=args.resume,
        extractor="mlp",
        n_stack=args.n_stack,
        env_kwargs=args.env_kwargs,
        model_kwargs=args.model_kwargs,
        norm_obs=True,
        norm_reward=args.norm_reward,
        checkpoint_every=args.checkpoint_every,
        progress_bar=args.progress_bar,
    )
    return train(config)


if __name__ == "__main__":
    print(main(args_from_cli(Args)))
