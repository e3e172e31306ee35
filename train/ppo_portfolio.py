"""PPO with the attention extractor on the portfolio env (``trendgym/Portfolio-v0``).

    python -m trendgym.train.ppo_portfolio --timesteps 200000
    python -m trendgym.train.ppo_portfolio --n-stack 5 --tokens asset_time   # attention over time too
    python -m trendgym.train.ppo_portfolio --resume

The attention weights of the trained policy can be inspected with
``trendgym.agents.export_attention(trendgym.agents.load(run_dir), obs)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trendgym.train.core import TrainConfig, args_from_cli, train


@dataclass
class Args:
    """Train PPO + attention extractor on trendgym/Portfolio-v0."""

    env_id: str = "trendgym/Portfolio-v0"
    env_kwargs: dict[str, Any] = field(
        default_factory=dict
    )  # gymnasium.make kwargs (e.g. a preset)
    timesteps: int = 200_000
    seed: int = 0
    n_envs: int = 2
    out: str = "runs/ppo_portfolio"
    resume: bool = False
    n_stack: int = 1
    tokens: str = "asset"  # "asset_time" makes one token per asset and stacked day
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 1
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
        extractor="attention",
        extractor_kwargs=dict(
            tokens=args.tokens, d_model=args.d_model, n_heads=args.n_heads, n_layers=args.n_layers
        ),
        n_stack=args.n_stack,
        env_kwargs=args.env_kwargs,
        model_kwargs=args.model_kwargs,
        norm_obs=True,
        checkpoint_every=args.checkpoint_every,
        progress_bar=args.progress_bar,
    )
    return train(config)


if __name__ == "__main__":
    print(main(args_from_cli(Args)))
