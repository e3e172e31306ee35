"""The environments. Names are imported on first use (module ``__getattr__``), so
``import trendgym`` stays light: an env's module, and what it needs, loads only when asked for."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ExecutionEnv": "trendgym.envs.execution",
    "ExecutionVectorEnv": "trendgym.envs.execution",
    "PortfolioEnv": "trendgym.envs.portfolio",
    "PortfolioVectorEnv": "trendgym.envs.portfolio",
    "ComplianceWrapper": "trendgym.envs.compliance",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from trendgym.compile import announce_compiles

    announce_compiles()  # a cold numba cache is never a silent wait
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
