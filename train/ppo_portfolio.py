"""PPO on the portfolio env (``trendgym/Portfolio-v0``), trained on early dates, scored on later ones.

    python -m trendgym.train.ppo_portfolio                       # ~1 min: futures, 50k steps
    python -m trendgym.train.ppo_portfolio --extractor attention # the Momentum Transformer
    python -m trendgym.train.ppo_portfolio --n-stack 5 --tokens asset_time   # attention over time
    python -m trendgym.train.ppo_portfolio --resume

On ``trendgym/Portfolio-v0`` training episodes are ``window``-day spans drawn from the first
``train_fraction`` of the dates; :func:`evaluate` runs the policy (deterministic) over the
held-out rest, with StaticTSMOM beside it. The policy is the context-free cross-sectional one
of ``trendgym.agents.sb3.ENV_DEFAULTS`` (one shared actor per asset: the setting that
generalises, issue 6) on the raw (normalised) per-asset rows; ``--extractor attention`` feeds
it attention tokens instead (slower, and it trades about twice as much; see the README's
training results). ``--model-kwargs`` overrides. The attention weights can be inspected
with ``trendgym.agents.export_attention(trendgym.agents.load(run_dir), obs)``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import pandas as pd

from trendgym.agents.loading import read_config
from trendgym.train.core import TrainConfig, run_script, train

PORTFOLIO_ID = "trendgym/Portfolio-v0"


@dataclass
class Args:
    """Train PPO on trendgym/Portfolio-v0 (early dates) and score it on the held-out dates."""

    env_id: str = PORTFOLIO_ID
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # more gymnasium.make kwargs
    preset: str = "futures"  # these four apply to trendgym/Portfolio-v0 only
    data_seed: int = 0
    train_fraction: float = 0.75  # the first 75% of dates train, the rest is held out
    window: int = 252  # days per training episode (start drawn at random)
    timesteps: int = 50_000
    seed: int = 0
    n_envs: int = 1  # one env process: the policy, not the env, is the bottleneck here
    out: str = "runs/ppo_portfolio"
    resume: bool = False
    extractor: str = "none"  # none (raw per-asset rows: what generalises) | attention
    n_stack: int = 1
    tokens: str = "asset"  # "asset_time" makes one token per asset and stacked day
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 1
    norm_reward: bool = True  # daily log returns are ~1e-3: keep the value loss O(1)
    checkpoint_every: int = 20_000
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    progress_bar: bool = True


def split_date(train_fraction: float, **env_kwargs: Any) -> str:
    """The first held-out date: ``train_fraction`` of the way through the env's dates."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    dates = gym.make(PORTFOLIO_ID, **env_kwargs).unwrapped.dates
    return str(pd.Timestamp(dates[int(train_fraction * len(dates))]).date())


def train_env_kwargs(args: Args) -> dict[str, Any]:
    """The training env's kwargs: for Portfolio-v0, the preset windowed up to the split date."""
    if args.env_id != PORTFOLIO_ID:
        return dict(args.env_kwargs)
    data = {"preset": args.preset, "data_seed": args.data_seed, **args.env_kwargs}
    return {**data, "window": args.window, "end": split_date(args.train_fraction, **data)}


def main(args: Args) -> Path:
    if args.extractor not in ("none", "attention"):
        raise ValueError(f"extractor must be 'none' or 'attention', got {args.extractor!r}")
    attention = dict(
        tokens=args.tokens,
        d_model=args.d_model,
        n_heads=args.n_heads,
        n_layers=args.n_layers,
        asset_embedding=False,  # asset identities would let it memorise each asset's past
    )
    raw = args.extractor == "none"
    config = TrainConfig.from_args(
        args,
        algo="ppo",
        extractor=None if raw else "attention",
        extractor_kwargs={} if raw else attention,
        env_kwargs=train_env_kwargs(args),
        norm_obs=True,
    )
    return train(config)


def evaluate(run_dir: str | Path) -> pd.DataFrame:
    """Sharpe, CAGR, drawdown, turnover, costs of the policy and StaticTSMOM in and out of sample.

    In sample walks the whole training span once; out of sample starts at the training ``end``
    date. Each is one deterministic episode. Needs a run trained by :func:`main` on Portfolio-v0.
    """
    from trendgym.agents import StaticTSMOM, load
    from trendgym.agents.portfolio import run_episode

    config = read_config(run_dir)
    env_kwargs = dict(config["env_kwargs"])
    if config["env_id"] != PORTFOLIO_ID or "end" not in env_kwargs:
        raise ValueError(f"{run_dir} is not a held-out-dates run on {PORTFOLIO_ID}")
    if config["n_stack"] != 1:
        raise ValueError("evaluate runs n_stack=1 policies (StaticTSMOM's predict has no state)")
    cut = env_kwargs.pop("end")
    env_kwargs["window"] = None  # each sample walked whole
    agent = load(run_dir)
    rows = {}
    for sample, span in (("in", {"end": cut}), ("out", {"start": cut})):
        env = gym.make(PORTFOLIO_ID, **env_kwargs, **span)
        for name, policy in (("ppo", agent), ("StaticTSMOM", StaticTSMOM(env))):
            info = run_episode(env, policy)
            rows[(sample, name)] = {
                k: float(info[k]) for k in ("sharpe", "cagr", "max_drawdown", "turnover", "costs")
            }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["sample", "policy"]
    return table


def report(run_dir: Path) -> None:
    print(evaluate(run_dir).round(3).to_string())


if __name__ == "__main__":
    sys.exit(run_script(Args, main, report))
