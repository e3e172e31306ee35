"""``trendgym/Portfolio-v0``: the env (``env``), its native vector env (``vector``), the step
kernels (``kernels``) and the named layouts of their arrays (``layout``).

Names load on first use, so importing a kernel module does not build the env classes.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PortfolioEnv": "env",
    "summarize_episode": "env",
    "REWARDS": "env",
    "WEIGHT_CLIP": "env",
    "DEFAULT_COSTS_BPS": "env",
    "INFO_KEYS": "env",
    "NOT_GIVEN": "env",
    "TRAINING_WINDOW": "env",
    "PortfolioVectorEnv": "vector",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
