"""Compliance for both envs: pre-trade rules, a kill switch and an audit trail.

``ComplianceWrapper(env, rules="default")`` or ``gymnasium.make(id, compliance="default")``
(``True``, a preset name, a dict of rule parameters or a list of rule dicts: the
JSON-serialisable forms work as ``gymnasium.make`` keywords). An env takes part through the
`Compliant` protocol (``adapter.py``).
"""

from __future__ import annotations

from trendgym.envs.compliance.adapter import Compliant, Engine
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

__all__ = [
    "FIELDS",
    "MODES",
    "PRESETS",
    "RULES",
    "AuditLog",
    "ComplianceWrapper",
    "Compliant",
    "DuplicateOrder",
    "Engine",
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
    "resolve_rules",
]
