"""Native (batched) vector envs: one numba call steps every sub-env."""

from trendgym.envs.vector.portfolio import PortfolioVectorEnv

__all__ = ["PortfolioVectorEnv"]
