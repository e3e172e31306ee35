"""Native (batched) vector envs: one numba call steps every sub-env.

``NativeVectorEnv`` (``native``) is their shared base; each env's own lives in its package
(``trendgym.envs.portfolio.vector``). Names here load on first use (the env packages import
this one for the base).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PortfolioVectorEnv"]


def __getattr__(name: str) -> Any:
    if name == "PortfolioVectorEnv":
        from trendgym.envs.portfolio.vector import PortfolioVectorEnv

        return PortfolioVectorEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
