"""Compliance for both envs: pre-trade rules, a kill switch and an audit trail.

``ComplianceWrapper(env, rules="default")`` or ``gymnasium.make(id, compliance="default")``.
The ``make_*`` factories are the registered entry points: they build the env and wrap it
when ``compliance=`` is given (``True``, a preset name, a dict of rule parameters or a list
of rules), so the JSON-serialisable forms work as ``gymnasium.make`` keywords.
"""

from __future__ import annotations

from typing import Any

from trendgym.envs.compliance.audit import FIELDS, AuditLog
from trendgym.envs.compliance.rules import (
    MODES,
    PRESETS,
    RULES,
    DuplicateOrder,
    ExposureLimit,
    KillSwitch,
    MaxOrderSize,
    MaxParticipation,
    MaxTurnover,
    PositionLimit,
    PriceCollar,
    RestrictedList,
    Rule,
    SelfTradePrevention,
    Throttle,
    WashTrade,
)
from trendgym.envs.compliance.wrapper import ComplianceWrapper, resolve_rules


def _wrap(env: Any, compliance: Any) -> Any:
    if compliance is None or compliance is False:
        return env
    return ComplianceWrapper(env, rules=compliance)


def make_execution(compliance: Any = None, **kwargs: Any) -> Any:
    """Entry point of ``trendgym/Execution-v0``: the env, wrapped when ``compliance`` is set."""
    from trendgym.envs.execution import ExecutionEnv

    return _wrap(ExecutionEnv(**kwargs), compliance)


def make_portfolio(compliance: Any = None, **kwargs: Any) -> Any:
    """Entry point of ``trendgym/Portfolio-v0``: the env, wrapped when ``compliance`` is set."""
    from trendgym.envs.portfolio import PortfolioEnv

    return _wrap(PortfolioEnv(**kwargs), compliance)


__all__ = [
    "FIELDS",
    "MODES",
    "PRESETS",
    "RULES",
    "AuditLog",
    "ComplianceWrapper",
    "DuplicateOrder",
    "ExposureLimit",
    "KillSwitch",
    "MaxOrderSize",
    "MaxParticipation",
    "MaxTurnover",
    "PositionLimit",
    "PriceCollar",
    "RestrictedList",
    "Rule",
    "SelfTradePrevention",
    "Throttle",
    "WashTrade",
    "make_execution",
    "make_portfolio",
    "resolve_rules",
]
