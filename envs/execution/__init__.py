"""`trendgym/Execution-v0`: work a parent order on the simulated limit order book.

``env.py`` holds the env, ``vector.py`` its native vector env, ``layout.py`` the state
columns, phases and observation table, and ``step.py`` (with ``orders.py``, ``observe.py`` and
``reset.py``) the numba step kernel both envs run.
"""

from __future__ import annotations

from typing import Any

from trendgym.envs.execution.env import (
    INFO_KEYS,
    INFO_SPEC,
    TRADE_ROOM,
    ExecutionEnv,
    encode_action,
    episode_infos,
    preset_table,
)
from trendgym.envs.execution.layout import (
    AGENT,
    N_ORDER_TYPES,
    OBS_HIGH,
    OBS_LOW,
    OBS_NAMES,
    ORDER,
    PRESET_NAMES,
    SIDE_NAMES,
)

MARKET = ORDER.market  # the market order type's index (an action bin, not a message kind)

__all__ = [
    "AGENT",
    "INFO_KEYS",
    "INFO_SPEC",
    "MARKET",
    "N_ORDER_TYPES",
    "OBS_HIGH",
    "OBS_LOW",
    "OBS_NAMES",
    "ORDER",
    "PRESET_NAMES",
    "SIDE_NAMES",
    "TRADE_ROOM",
    "ExecutionEnv",
    "ExecutionVectorEnv",
    "encode_action",
    "episode_infos",
    "preset_table",
]


def __getattr__(name: str) -> Any:
    if name == "ExecutionVectorEnv":  # imported on first use: it pulls in gymnasium.vector
        from trendgym.envs.execution.vector import ExecutionVectorEnv

        return ExecutionVectorEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
