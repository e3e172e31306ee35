"""The environments. Names are imported on first use (module ``__getattr__``), so
``import trendgym`` stays light: an env's module, and what it needs, loads only when asked for."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ExecutionEnv": "trendgym.envs.execution",
    "ExecutionVectorEnv": "trendgym.envs.execution",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
