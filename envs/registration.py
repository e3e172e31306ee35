"""Registers trendgym's environment ids with Gymnasium (idempotent)."""

import gymnasium as gym

ENV_IDS = ("trendgym/Execution-v0", "trendgym/Portfolio-v0")

_ENTRY_POINTS = {
    # factories: build the env, wrapped in ComplianceWrapper when `compliance=` is given
    "trendgym/Execution-v0": "trendgym.envs.compliance:make_execution",
    "trendgym/Portfolio-v0": "trendgym.envs.compliance:make_portfolio",
}

# native batched versions, for gymnasium.make_vec(..., vectorization_mode="vector_entry_point")
_VECTOR_ENTRY_POINTS = {
    "trendgym/Portfolio-v0": "trendgym.envs.vector.portfolio:PortfolioVectorEnv",
    "trendgym/Execution-v0": "trendgym.envs.execution.vector:ExecutionVectorEnv",
}


def register_envs() -> None:
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=_VECTOR_ENTRY_POINTS.get(env_id),
            )
