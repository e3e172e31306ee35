"""``trendgym/Portfolio-v0``: the env (``env``), its native vector env (``vector``), the step
kernels (``kernels``) and the named layouts of their arrays (``layout``)."""

from trendgym.envs.portfolio.env import (
    DEFAULT_COSTS_BPS,
    INFO_KEYS,
    NOT_GIVEN,
    REWARDS,
    TRAINING_WINDOW,
    WEIGHT_CLIP,
    PortfolioEnv,
    summarize_episode,
)
from trendgym.envs.portfolio.vector import PortfolioVectorEnv

__all__ = [
    "DEFAULT_COSTS_BPS",
    "INFO_KEYS",
    "NOT_GIVEN",
    "REWARDS",
    "TRAINING_WINDOW",
    "WEIGHT_CLIP",
    "PortfolioEnv",
    "PortfolioVectorEnv",
    "summarize_episode",
]
