"""Pre-trade rules: small frozen dataclasses holding parameters, validated once.

The checks themselves live with the env they guard (``execution.py`` checks order messages,
``portfolio.py`` checks target-weight changes); a rule only says what the limit is and what
to do when it is crossed (its ``mode``):

- ``block``: the order (or the asset's weight change) is refused;
- ``clip``: it is reduced to the limit;
- ``penalize``: it goes through and the step's reward loses ``penalty``.

Units follow the env: lots and currency (``qty × price × tick_size``) in Execution-v0;
fractions of NAV (weights) in Portfolio-v0, where NAV starts at 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

MODES = ("block", "clip", "penalize")
EXECUTION, PORTFOLIO = "execution", "portfolio"
DEFAULT_PENALTY = {EXECUTION: 1.0, PORTFOLIO: 1e-3}  # reward units: bps of IS; log return


def _positive(rule: Rule, name: str, allow_none: bool = True, integer: bool = False) -> None:
    value = getattr(rule, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{type(rule).__name__}.{name} must be a number, got {value!r}")
    if integer and int(value) != value:
        raise ValueError(f"{type(rule).__name__}.{name} must be an integer, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{type(rule).__name__}.{name} must be positive and finite, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Base of every rule: a ``mode`` and the reward ``penalty`` per penalised intervention
    (None: 1 bp of shortfall in Execution-v0, 0.001 of log return in Portfolio-v0)."""

    name: ClassVar[str] = "rule"
    modes: ClassVar[tuple[str, ...]] = MODES
    envs: ClassVar[tuple[str, ...]] = (EXECUTION, PORTFOLIO)

    mode: str = "block"
    penalty: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in self.modes:
            raise ValueError(
                f"{type(self).__name__}.mode must be one of {self.modes}, got {self.mode!r}"
            )
        if self.penalty is not None:
            if isinstance(self.penalty, bool) or not isinstance(self.penalty, (int, float)):
                raise TypeError(
                    f"{type(self).__name__}.penalty must be a number, got {self.penalty!r}"
                )
            if not (math.isfinite(self.penalty) and self.penalty >= 0):
                raise ValueError(
                    f"{type(self).__name__}.penalty must be >= 0, got {self.penalty!r}"
                )
        self._validate()

    def _validate(self) -> None:
        pass

    def penalty_for(self, env_kind: str) -> float:
        return float(self.penalty if self.penalty is not None else DEFAULT_PENALTY[env_kind])

    def params(self) -> dict[str, Any]:
        """The rule's parameters as JSON-serialisable values (what a ``compliance=`` dict takes)."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in fields(self)
        }


@dataclass(frozen=True, kw_only=True)
class PriceCollar(Rule):
    """A limit (or repriced modify) must lie within ``max_pct`` of the mid and/or within
    ``max_spreads`` spreads of it (the tighter band counts). Clip reprices to the band's edge."""

    name: ClassVar[str] = "price_collar"
    envs: ClassVar[tuple[str, ...]] = (EXECUTION,)
    mode: str = "block"
    max_pct: float | None = 0.05
    max_spreads: float | None = None

    def _validate(self) -> None:
        if self.max_pct is None and self.max_spreads is None:
            raise ValueError("PriceCollar needs max_pct or max_spreads")
        _positive(self, "max_pct")
        _positive(self, "max_spreads")


@dataclass(frozen=True, kw_only=True)
class MaxOrderSize(Rule):
    """Erroneous-size check: an order's quantity ≤ ``max_qty`` lots (Execution-v0) and its
    notional ≤ ``max_notional`` (Execution-v0: qty × price × tick_size, market orders at the
    far touch; Portfolio-v0: |Δweight| × NAV, per asset)."""

    name: ClassVar[str] = "max_order_size"
    mode: str = "clip"
    max_qty: int | None = None
    max_notional: float | None = None

    def _validate(self) -> None:
        if self.max_qty is None and self.max_notional is None:
            raise ValueError("MaxOrderSize needs max_qty or max_notional")
        _positive(self, "max_qty", integer=True)
        _positive(self, "max_notional")


@dataclass(frozen=True, kw_only=True)
class MaxParticipation(Rule):
    """A market order's or marketable limit's quantity ≤ ``max_rate`` × the market volume of
    the last decision interval (before the first one: the mean interval volume measured in
    the env's warm-up). Resting orders are not capped: they trade only when others come."""

    name: ClassVar[str] = "max_participation"
    envs: ClassVar[tuple[str, ...]] = (EXECUTION,)
    mode: str = "clip"
    max_rate: float = 0.25

    def _validate(self) -> None:
        _positive(self, "max_rate", allow_none=False)


@dataclass(frozen=True, kw_only=True)
class PositionLimit(Rule):
    """|position| ≤ ``max_position`` if every order fully filled. Execution-v0: lots, filled
    plus resting plus the new order (None: the parent quantity, so the agent can never
    overshoot its order). Portfolio-v0: |weight| per asset after the trade (None: 1.0)."""

    name: ClassVar[str] = "position_limit"
    mode: str = "block"
    max_position: float | None = None

    def _validate(self) -> None:
        _positive(self, "max_position")


@dataclass(frozen=True, kw_only=True)
class ExposureLimit(Rule):
    """Portfolio-v0: gross Σ|w| ≤ ``max_gross`` and net |Σw| ≤ ``max_net`` after the trade.
    Clip scales every weight down by the same factor."""

    name: ClassVar[str] = "exposure_limit"
    envs: ClassVar[tuple[str, ...]] = (PORTFOLIO,)
    mode: str = "block"
    max_gross: float | None = 1.0
    max_net: float | None = 1.0

    def _validate(self) -> None:
        if self.max_gross is None and self.max_net is None:
            raise ValueError("ExposureLimit needs max_gross or max_net")
        _positive(self, "max_gross")
        _positive(self, "max_net")


@dataclass(frozen=True, kw_only=True)
class MaxTurnover(Rule):
    """Portfolio-v0: the step's order notional Σ|Δw| (fraction of NAV) ≤ ``max_turnover``.
    Clip scales every weight change down by the same factor."""

    name: ClassVar[str] = "max_turnover"
    envs: ClassVar[tuple[str, ...]] = (PORTFOLIO,)
    mode: str = "clip"
    max_turnover: float = 0.5

    def _validate(self) -> None:
        _positive(self, "max_turnover", allow_none=False)


@dataclass(frozen=True, kw_only=True)
class Throttle(Rule):
    """Message-rate throttle: at most ``max_messages`` orders (Execution-v0: new orders and
    modifies that reach the book; Portfolio-v0: assets traded) in any ``window`` consecutive
    steps. Execution-v0 also caps the volume order-to-trade ratio (lots ordered / lots filled)
    at ``max_order_to_trade`` once ``min_volume`` lots have been ordered (MiFID II RTS 9)."""

    name: ClassVar[str] = "throttle"
    modes: ClassVar[tuple[str, ...]] = ("block", "penalize")
    mode: str = "block"
    max_messages: int = 10
    window: int = 10
    max_order_to_trade: float | None = None
    min_volume: int = 100

    def _validate(self) -> None:
        _positive(self, "max_messages", allow_none=False, integer=True)
        _positive(self, "window", allow_none=False, integer=True)
        _positive(self, "max_order_to_trade")
        _positive(self, "min_volume", allow_none=False, integer=True)


@dataclass(frozen=True, kw_only=True)
class SelfTradePrevention(Rule):
    """Execution-v0: a new order that could trade with one of the agent's own resting orders
    on the other side (a limit that crosses it; any market order) is prevented by
    ``policy``: ``cancel_newest`` drops the new order, ``cancel_oldest`` cancels the resting
    one(s), ``cancel_both`` does both."""

    name: ClassVar[str] = "self_trade"
    modes: ClassVar[tuple[str, ...]] = ("block", "penalize")
    envs: ClassVar[tuple[str, ...]] = (EXECUTION,)
    POLICIES: ClassVar[tuple[str, ...]] = ("cancel_newest", "cancel_oldest", "cancel_both")
    mode: str = "block"
    policy: str = "cancel_newest"

    def _validate(self) -> None:
        if self.policy not in self.POLICIES:
            raise ValueError(
                f"SelfTradePrevention.policy must be one of {self.POLICIES}, got {self.policy!r}"
            )


@dataclass(frozen=True, kw_only=True)
class WashTrade(Rule):
    """Offsetting buys and sells within ``window`` steps that leave ownership unchanged: an
    order is flagged when min(its size, the opposite-side fills (Execution-v0, lots) or
    weight changes (Portfolio-v0, per asset) of the last ``window`` steps) ≥ ``min_size``
    (None: 1 lot; 0.05 of NAV)."""

    name: ClassVar[str] = "wash_trade"
    modes: ClassVar[tuple[str, ...]] = ("block", "penalize")
    mode: str = "penalize"
    window: int = 5
    min_size: float | None = None

    def _validate(self) -> None:
        _positive(self, "window", allow_none=False, integer=True)
        _positive(self, "min_size")


@dataclass(frozen=True, kw_only=True)
class DuplicateOrder(Rule):
    """Execution-v0: an order identical (kind, side, price, qty) to one sent in the same
    step or in the ``window`` steps before is refused as duplicative (SEC 15c3-5)."""

    name: ClassVar[str] = "duplicate_order"
    modes: ClassVar[tuple[str, ...]] = ("block", "penalize")
    envs: ClassVar[tuple[str, ...]] = (EXECUTION,)
    mode: str = "block"
    window: int = 0

    def _validate(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 0:
            raise ValueError(f"DuplicateOrder.window must be an int >= 0, got {self.window!r}")


@dataclass(frozen=True, kw_only=True)
class RestrictedList(Rule):
    """No trading in ``assets`` on ``side`` (``both``, ``buy``: no buying, ``sell``: no
    selling). Portfolio-v0 names are the price columns; Execution-v0 has one instrument,
    named by the wrapper's ``instrument=`` (default ``"EXEC"``)."""

    name: ClassVar[str] = "restricted_list"
    modes: ClassVar[tuple[str, ...]] = ("block", "penalize")
    SIDES: ClassVar[tuple[str, ...]] = ("both", "buy", "sell")
    mode: str = "block"
    assets: tuple[str, ...] = field(default=())
    side: str = "both"

    def _validate(self) -> None:
        if isinstance(self.assets, str) or not all(isinstance(a, str) for a in self.assets):
            raise TypeError(
                f"RestrictedList.assets must be a sequence of names, got {self.assets!r}"
            )
        object.__setattr__(self, "assets", tuple(self.assets))
        if self.side not in self.SIDES:
            raise ValueError(f"RestrictedList.side must be one of {self.SIDES}, got {self.side!r}")

    def blocks(self, direction: int) -> bool:
        """Whether a trade in `direction` (+1 buy, -1 sell) is restricted."""
        return self.side == "both" or (self.side == "buy") == (direction > 0)


@dataclass(frozen=True, kw_only=True)
class KillSwitch(Rule):
    """Trips on a loss, a drawdown or too many breaches; then every resting order is
    cancelled and every new one blocked for the rest of the episode. Execution-v0: ``max_loss``
    and ``max_drawdown`` in bps of running shortfall (its level; its rise from its best);
    Portfolio-v0: one step's (a day's) NAV loss and the drawdown from the NAV peak, as
    fractions. ``max_breaches``: interventions of the other rules in the episode."""

    name: ClassVar[str] = "kill_switch"
    modes: ClassVar[tuple[str, ...]] = ("block",)
    mode: str = "block"
    max_loss: float | None = None
    max_drawdown: float | None = None
    max_breaches: int | None = 50

    def _validate(self) -> None:
        if self.max_loss is None and self.max_drawdown is None and self.max_breaches is None:
            raise ValueError("KillSwitch needs max_loss, max_drawdown or max_breaches")
        _positive(self, "max_loss")
        _positive(self, "max_drawdown")
        _positive(self, "max_breaches", integer=True)


RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (
        PriceCollar,
        MaxOrderSize,
        MaxParticipation,
        PositionLimit,
        ExposureLimit,
        MaxTurnover,
        Throttle,
        SelfTradePrevention,
        WashTrade,
        DuplicateOrder,
        RestrictedList,
        KillSwitch,
    )
}

# Presets: every rule that applies to the env, with parameters a sensible desk would start
# from ("default") or a tight risk budget ("strict").
PRESETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "default": {
        EXECUTION: {
            "restricted_list": {},
            "kill_switch": {"max_loss": 200.0, "max_breaches": 50},
            "duplicate_order": {},
            "price_collar": {"max_pct": 0.05},
            "self_trade": {},
            "wash_trade": {},
            "max_order_size": {"max_qty": 1000},
            "max_participation": {"max_rate": 0.5},
            "position_limit": {},
            "throttle": {"max_messages": 20, "window": 10},
        },
        PORTFOLIO: {
            "restricted_list": {},
            "kill_switch": {"max_loss": 0.2, "max_drawdown": 0.5},
            "wash_trade": {"min_size": 0.25},
            "max_order_size": {"max_notional": 1.0},
            "position_limit": {"max_position": 0.5},
            "exposure_limit": {"max_gross": 2.0, "max_net": 1.0},
            "max_turnover": {"max_turnover": 1.0},
            "throttle": {"max_messages": 250, "window": 5},
        },
    },
    "strict": {
        EXECUTION: {
            "restricted_list": {},
            "kill_switch": {"max_loss": 50.0, "max_drawdown": 30.0, "max_breaches": 10},
            "duplicate_order": {"window": 1},
            "price_collar": {"max_pct": 0.01, "max_spreads": 10.0},
            "self_trade": {"policy": "cancel_both"},
            "wash_trade": {"mode": "block"},
            "max_order_size": {"max_qty": 50},
            "max_participation": {"max_rate": 0.2},
            "position_limit": {},
            "throttle": {"max_messages": 10, "window": 10, "max_order_to_trade": 20.0},
        },
        PORTFOLIO: {
            "restricted_list": {},
            "kill_switch": {"max_loss": 0.05, "max_drawdown": 0.2, "max_breaches": 100},
            "wash_trade": {"min_size": 0.05},
            "max_order_size": {"max_notional": 0.2},
            "position_limit": {"max_position": 0.2},
            "exposure_limit": {"max_gross": 1.0, "max_net": 0.5},
            "max_turnover": {"max_turnover": 0.3},
            "throttle": {"max_messages": 50, "window": 5},
        },
    },
}
