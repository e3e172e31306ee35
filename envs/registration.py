"""Registers trendgym's environment ids with Gymnasium (idempotent).

Each id's entry point is an `EntryPoint` naming the env class in its own module: making
Execution-v0 imports only the execution env, and Gymnasium reads the class's real
``metadata`` (so ``render_mode="rgb_array_list"`` or ``"human"`` get Gymnasium's
``RenderCollection``/``HumanRendering`` wrappers). ``gymnasium.make(id, compliance=...)``
wraps the env in ``ComplianceWrapper`` (the JSON-serialisable forms: ``True``, a preset
name, a dict of rule parameters or a list of rule dicts).
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

ENV_IDS = ("trendgym/Execution-v0", "trendgym/Portfolio-v0")


class EntryPoint:
    """A Gymnasium entry point for one env class, given as ``"module:Class"``.

    Gymnasium's ``make`` reads ``metadata`` from the entry point before calling it; this
    reads it from the class (importing the class's module on first use, not before). With
    ``compliance`` (single envs), a ``compliance=`` keyword wraps the env in
    ``ComplianceWrapper``; without (vector envs), every keyword goes to the class.
    """

    def __init__(self, target: str, compliance: bool = True) -> None:
        module, _, name = target.partition(":")
        if not module or not name:
            raise ValueError(f"target must be 'module:Class', got {target!r}")
        self.target = target
        self.compliance = compliance

    @property
    def env_class(self) -> type:
        from trendgym.compile import announce_compiles

        announce_compiles()  # a cold numba cache is never a silent wait
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.env_class.metadata

    def __call__(self, **kwargs: Any) -> Any:
        if not self.compliance:
            return self.env_class(**kwargs)
        compliance = kwargs.pop("compliance", None)
        env = self.env_class(**kwargs)
        if compliance is None or compliance is False:
            return env
        from trendgym.envs.compliance.wrapper import ComplianceWrapper

        return ComplianceWrapper(env, rules=compliance)

    def __repr__(self) -> str:
        return f"EntryPoint({self.target!r})"


execution_v0 = EntryPoint("trendgym.envs.execution:ExecutionEnv")
portfolio_v0 = EntryPoint("trendgym.envs.portfolio:PortfolioEnv")

# native batched versions, for gymnasium.make_vec(..., vectorization_mode="vector_entry_point")
execution_vector_v0 = EntryPoint("trendgym.envs.execution.vector:ExecutionVectorEnv", False)
portfolio_vector_v0 = EntryPoint("trendgym.envs.portfolio.vector:PortfolioVectorEnv", False)

_ENTRY_POINTS = {
    "trendgym/Execution-v0": "trendgym.envs.registration:execution_v0",
    "trendgym/Portfolio-v0": "trendgym.envs.registration:portfolio_v0",
}
_VECTOR_ENTRY_POINTS = {
    "trendgym/Execution-v0": "trendgym.envs.registration:execution_vector_v0",
    "trendgym/Portfolio-v0": "trendgym.envs.registration:portfolio_vector_v0",
}


def register_envs() -> None:
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=_VECTOR_ENTRY_POINTS.get(env_id),
            )
