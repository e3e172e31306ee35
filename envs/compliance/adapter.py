"""The one protocol between `ComplianceWrapper` and an env.

An env that compliance can wrap implements `Compliant`: a ``compliance_kind`` (which rules
apply, and which engine checks them) and ``attach_compliance(engine)``, which puts the
engine's checks where the env trades (Execution-v0: its pre-trade hook, which sees every
order before the book; Portfolio-v0: its step kernel, which checks the target weights
before it trades). The wrapper knows no env class: it builds ``ENGINES[kind]`` and drives
it through `Engine` around the env's own ``reset`` and ``step``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from trendgym.envs.compliance.rules import EXECUTION, PORTFOLIO, Rule

Record = Callable[[Rule, str, dict, dict, str], None]

# engine class of each kind, imported when first used (Execution-v0 never loads Portfolio's)
ENGINES = {
    EXECUTION: "trendgym.envs.compliance.execution:ExecutionCompliance",
    PORTFOLIO: "trendgym.envs.compliance.portfolio:PortfolioCompliance",
}


@runtime_checkable
class Compliant(Protocol):
    """What an env implements so `ComplianceWrapper` can wrap it."""

    compliance_kind: str  # a key of ENGINES: "execution" or "portfolio"

    def attach_compliance(self, engine: Any) -> None:
        """Run `engine`'s checks where the env trades; raises ValueError when an engine is
        already attached (an env wrapped twice)."""


class Engine(Protocol):
    """The checks of one env, driven by the wrapper (engines report interventions through
    the wrapper's `Record` callback)."""

    @classmethod
    def for_env(cls, rules: list[Rule], record: Record, env: Any, instrument: str) -> Engine:
        """The engine for `env` (unwrapped) with `rules`; ValueError when they cannot hold."""

    def close_episode(self, env: Any) -> None:
        """Before the env resets: report what is still pending (steps taken around the wrapper)."""

    def reset(self, env: Any) -> None:
        """After the env reset: the episode's state."""

    def before_step(self, env: Any, step: int) -> None:
        """Before the env steps (per-step bookkeeping, the kill-switch test)."""

    def after_step(self, env: Any, info: dict[str, Any]) -> None:
        """After the env stepped: report the step's interventions."""

    def count(self, violations: int) -> None:
        """The episode's running count of interventions (after each one)."""


def engine_class(kind: str) -> type:
    """The engine class that checks envs of `kind`."""
    target = ENGINES.get(kind)
    if target is None:
        raise ValueError(f"compliance_kind must be one of {sorted(ENGINES)}, got {kind!r}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
