"""Registers trendgym's environment ids with Gymnasium (idempotent)."""

import gymnasium as gym

ENV_IDS = ("trendgym/Execution-v0", "trendgym/Portfolio-v0")

_ENTRY_POINTS = {
    "trendgym/Execution-v0": "trendgym.envs.execution:ExecutionEnv",
    "trendgym/Portfolio-v0": "trendgym.envs.portfolio:PortfolioEnv",
}


def register_envs() -> None:
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point)
