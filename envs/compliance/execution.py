"""Order-level checks for Execution-v0, run by the env's pre-trade hook.

`ExecutionCompliance.pre_trade(messages, env)` sees every new order and modify (kind 0 limit,
1 market, 3 modify) before the book does, including the forced completion at the horizon,
and returns them dropped or shrunk (or repriced toward the mid by a collar in clip mode).
Cancels never reach it: the env always lets them through.

The checks themselves are numba kernels (``execution_nb.py``): one call per step
(``begin_step_nb``) and one per hooked batch (``pre_trade_nb``), over preallocated arrays
that this class owns. Python turns the kernels' records into audit entries only when a rule
intervened, and trips the kill switch when the per-step test says so: the rare paths.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trendgym.envs.compliance import execution_nb as nb
from trendgym.envs.compliance.rules import (
    EXECUTION,
    DuplicateOrder,
    KillSwitch,
    MaxOrderSize,
    MaxParticipation,
    PositionLimit,
    PriceCollar,
    RestrictedList,
    Rule,
    SelfTradePrevention,
    Throttle,
    WashTrade,
)
from trendgym.envs.fastcall import compiled_entry
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.layout import STATUS

KIND_NAMES = {k.LIMIT: "limit", k.MARKET: "market", k.MODIFY: "modify"}
ACTION_NAMES = {nb.BLOCK: "block", nb.CLIP: "clip", nb.PENALIZE: "penalize", nb.CANCEL: "cancel"}
MODE_CODES = {"block": nb.BLOCK, "clip": nb.CLIP, "penalize": nb.PENALIZE}
Record = Callable[[Rule, str, dict, dict, str], None]
RULE_SLOTS = {
    RestrictedList: nb.R_RESTRICTED,
    DuplicateOrder: nb.R_DUPLICATE,
    PriceCollar: nb.R_COLLAR,
    SelfTradePrevention: nb.R_STP,
    WashTrade: nb.R_WASH,
    MaxOrderSize: nb.R_SIZE,
    MaxParticipation: nb.R_PARTICIPATION,
    PositionLimit: nb.R_POSITION,
    Throttle: nb.R_THROTTLE,
    KillSwitch: nb.R_KILL,
}


def _asked(kind: int, side: int, price: int, qty: int, oid: int) -> dict[str, Any]:
    return {
        "kind": KIND_NAMES.get(kind, str(kind)),
        "side": side,
        "price": price,
        "qty": qty,
        "order_id": oid,
    }


def _limit(value: float | None) -> float:
    return -1.0 if value is None else float(value)


class ExecutionSteps:
    """The wrapper's `Engine` protocol for Execution-v0, over an engine's ``reset``,
    ``begin_step`` and ``pre_trade`` (shared with the tests' pure-Python twin)."""

    _shortfall: float | None = None  # the env's running shortfall, as its last info reported

    @classmethod
    def for_env(cls, rules: list[Rule], record: Record, env: Any, instrument: str) -> Any:
        return cls(rules, record, instrument)

    def close_episode(self, env: Any) -> None:
        pass  # every intervention was reported by the hook as it happened

    def start_episode(self, env: Any, info: dict[str, Any]) -> None:
        self._shortfall = info.get("running_shortfall_bps")
        self.reset(env)

    def before_step(self, env: Any, step: int) -> None:
        # the running shortfall at the step's start is the one the last info reported
        self.begin_step(env, step, self._shortfall)

    def after_step(self, env: Any, info: dict[str, Any]) -> None:
        self._shortfall = info.get("running_shortfall_bps")

    def count(self, env: Any, violations: int) -> None:
        env.compliance_violations = violations  # the terminal info's contract key


class ExecutionCompliance(ExecutionSteps):
    """The rules' parameters and state for one Execution-v0 env; `record` is the wrapper's
    audit callback, called as ``record(rule, action, asked, done, reason)``."""

    def __init__(self, rules: list[Rule], record: Record, instrument: str) -> None:
        self._begin_step = self._pre_trade = None  # compiled kernels, resolved on first use
        by_type = {type(r): r for r in rules}
        self.kill: KillSwitch | None = by_type.get(KillSwitch)
        self.restricted: RestrictedList | None = by_type.get(RestrictedList)
        if self.restricted is not None and instrument not in self.restricted.assets:
            self.restricted = None  # nothing this env trades is on the list
            by_type.pop(RestrictedList)
        self.duplicate: DuplicateOrder | None = by_type.get(DuplicateOrder)
        self.collar: PriceCollar | None = by_type.get(PriceCollar)
        self.stp: SelfTradePrevention | None = by_type.get(SelfTradePrevention)
        self.wash: WashTrade | None = by_type.get(WashTrade)
        self.size: MaxOrderSize | None = by_type.get(MaxOrderSize)
        self.participation: MaxParticipation | None = by_type.get(MaxParticipation)
        self.position: PositionLimit | None = by_type.get(PositionLimit)
        self.throttle: Throttle | None = by_type.get(Throttle)
        self.record = record
        self.slot_rule: dict[int, Rule] = {}
        self._allocate(16, (self.wash.window if self.wash else 0) + 2)
        p = self.params
        p[:] = -1.0
        for cls, slot in RULE_SLOTS.items():
            rule = by_type.get(cls)
            if rule is not None:
                p[slot] = MODE_CODES[rule.mode]
                self.slot_rule[slot] = rule
        if (r := self.restricted) is not None:
            p[nb.P_BUY_RESTRICTED], p[nb.P_SELL_RESTRICTED] = r.blocks(+1), r.blocks(-1)
        if (r := self.duplicate) is not None:
            p[nb.P_DUP_WINDOW] = r.window
        if (r := self.collar) is not None:
            p[nb.P_COLLAR_PCT], p[nb.P_COLLAR_SPREADS] = _limit(r.max_pct), _limit(r.max_spreads)
        if (r := self.stp) is not None:
            p[nb.P_STP_POLICY] = SelfTradePrevention.POLICIES.index(r.policy)
        if (r := self.wash) is not None:
            p[nb.P_WASH_WINDOW] = r.window
            p[nb.P_WASH_MIN] = float(r.min_size if r.min_size else 1.0)
        if (r := self.size) is not None:
            p[nb.P_MAX_QTY], p[nb.P_MAX_NOTIONAL] = _limit(r.max_qty), _limit(r.max_notional)
        if (r := self.participation) is not None:
            p[nb.P_MAX_RATE] = r.max_rate
        if (r := self.position) is not None:
            p[nb.P_MAX_POSITION] = _limit(r.max_position)
        if (r := self.throttle) is not None:
            p[nb.P_MAX_MESSAGES], p[nb.P_THROTTLE_WINDOW] = r.max_messages, r.window
            p[nb.P_MAX_OTR], p[nb.P_MIN_VOLUME] = _limit(r.max_order_to_trade), r.min_volume
        self._reads_shortfall = self.kill is not None and (
            self.kill.max_loss is not None or self.kill.max_drawdown is not None
        )
        if (r := self.kill) is not None:
            p[nb.P_MAX_LOSS], p[nb.P_MAX_DRAWDOWN] = _limit(r.max_loss), _limit(r.max_drawdown)
            p[nb.P_MAX_BREACHES] = _limit(r.max_breaches)
        self.kill_reason = ""
        self.reset(None)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_begin_step"] = state["_pre_trade"] = None  # resolved again after unpickling
        return state

    def _allocate(self, live_rows: int, fills_rows: int) -> None:
        """(Re)allocate the two buffers for `live_rows` tracked orders, keeping the state. Every
        array is a view into them: ``params``, ``fstate``, ``records`` (float64), ``istate``,
        ``live``, ``dup``, ``sent``, ``fills``, ``ids`` (int64)."""
        sizes = (live_rows, 4 * live_rows, 4 * live_rows, fills_rows, 3 * (live_rows + 1) * live_rows,
                 nb.RECORDS_PER_MESSAGE * live_rows)  # fmt: skip
        n_floats, n_ints = nb.buffer_sizes(*sizes)
        old = self._views() if hasattr(self, "ibuf") else None
        self.fbuf, self.ibuf = np.zeros(n_floats), np.zeros(n_ints, dtype=np.int64)
        self.ibuf[nb.I_LIVE_ROWS : nb.I_RECORD_ROWS + 1] = sizes
        (self.params, self.fstate, self.records, self.istate, self.live, self.dup, self.sent,
         self.fills, self.ids) = self._views()  # fmt: skip
        if old is None:
            return
        params, fstate, _, istate, live, dup, sent, fills, _ = old
        self.params[:], self.fstate[:], self.fills[:] = params, fstate, fills
        self.istate[: nb.I_LIVE_ROWS] = istate[: nb.I_LIVE_ROWS]
        self.live[: live.shape[0]] = live
        s = self.istate
        for ring, new, head, count in ((dup, self.dup, nb.I_DUP_HEAD, nb.I_DUP_N),
                                       (sent, self.sent, nb.I_SENT_HEAD, nb.I_SENT_N)):  # fmt: skip
            new[: s[count]] = ring[(s[head] + np.arange(s[count])) % ring.shape[0]]
            s[head] = 0

    def _views(self) -> tuple[np.ndarray, ...]:
        return nb.views_nb.py_func(self.fbuf, self.ibuf)  # the kernel's own layout, in Python

    # ------------------------------------------------------------------ episode state
    def reset(self, env: Any) -> None:
        self.fstate[:] = 0.0
        self.istate[: nb.I_LIVE_ROWS] = 0  # the episode's state; the sizes stay
        self.kill_reason = ""
        p = self.params
        if env is not None:
            self.fstate[nb.F_INTERVAL_VOLUME] = float(env.step_volume)
            p[nb.P_TICK_SIZE], p[nb.P_ARRIVAL] = env.tick_size, env.arrival_ticks
            p[nb.P_QUANTITY], p[nb.P_SIDE] = env.quantity, env.side

    @property
    def step(self) -> int:
        return int(self.istate[nb.I_STEP])

    @property
    def killed(self) -> bool:
        return bool(self.istate[nb.I_KILLED])

    @property
    def breaches(self) -> int:
        """Interventions by rules other than the kill switch this episode."""
        return int(self.istate[nb.I_BREACHES])

    @property
    def interval_volume(self) -> float:
        return float(self.fstate[nb.F_INTERVAL_VOLUME])

    def live_orders(self) -> dict[int, tuple[int, int, int]]:
        """The agent's orders the checks track: id -> (side, price, remaining qty or -1)."""
        n = int(self.istate[nb.I_N_LIVE])
        return {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in self.live[:n]}

    def begin_step(self, env: Any, step: int, shortfall: float | None = None) -> None:
        """Bookkeeping before the env acts: interval volume, fill snapshot, kill-switch test
        (on `shortfall`, the env's running shortfall, read from it when None)."""
        if shortfall is None and self._reads_shortfall:
            shortfall = env.shortfall
        b = env.book
        args = (b.owner_stats, b.meta, self.fbuf, self.ibuf, step,
                float(shortfall) if self._reads_shortfall else 0.0)  # fmt: skip
        if self._begin_step is None:  # the same types every step: skip numba's dispatch
            self._begin_step = compiled_entry(nb.begin_step_nb, args)
        trigger = self._begin_step(*args)
        if trigger >= 0:
            kill = self.kill
            if trigger == nb.TRIG_LOSS:
                why = f"running shortfall {shortfall:.2f} bps > max_loss {kill.max_loss} bps"
            else:
                rise = shortfall - self.fstate[nb.F_BEST_SHORTFALL]
                why = (
                    f"shortfall rose {rise:.2f} bps from its best "
                    f"> max_drawdown {kill.max_drawdown} bps"
                )
            self.trip(env, why)

    def trip(self, env: Any, why: str) -> None:
        """Kill switch: cancel every resting agent order, refuse every later one this episode."""
        self.kill_reason = why
        b = env.book
        n = nb.trip_cancel_nb(b.state, self.fbuf, self.ibuf, env.own_id)
        cancelled = self.ids[:n].tolist()
        self.record(self.kill, "trip", {"trigger": why}, {"cancelled_orders": cancelled}, why)

    # ------------------------------------------------------------------ the hook
    def pre_trade(self, msgs: np.ndarray, env: Any) -> np.ndarray:
        b = env.book
        pending = env._msgs
        kernel = nb.pre_trade_nb
        if msgs.flags.c_contiguous and pending.flags.c_contiguous:  # the env's own buffers
            if self._pre_trade is None:
                args = (msgs, b.state, pending, self.fbuf, self.ibuf)
                self._pre_trade = compiled_entry(kernel, args)
            kernel = self._pre_trade
        while True:
            status, n, n_records = kernel(msgs, b.state, pending, self.fbuf, self.ibuf)
            if status == STATUS.done:
                break
            self._allocate(2 * max(self.live.shape[0], msgs.shape[0]), self.fills.shape[0])
        if n_records:
            self._audit(n_records)
        return msgs[:n] if n < msgs.shape[0] else msgs

    # ------------------------------------------------------------------ the rare path
    def _audit(self, n_records: int) -> None:
        """Turn the last call's records into audit entries, in the order they happened."""
        ids = self.ids
        for row in self.records[:n_records].tolist():
            rule = self.slot_rule[int(row[nb.C_RULE])]
            action = int(row[nb.C_ACTION])
            why_code = int(row[nb.C_WHY])
            first, n_ids = int(row[nb.C_IDS]), int(row[nb.C_N_IDS])
            listed = ids[first : first + n_ids].tolist()
            if why_code == nb.WHY_BREACHES:  # the kill switch tripped on the breach count
                why = f"{int(row[nb.C_V1])} interventions >= max_breaches {rule.max_breaches}"
                self.kill_reason = why
                self.record(rule, "trip", {"trigger": why}, {"cancelled_orders": listed}, why)
                continue
            kind, side, price, qty, oid = map(int, row[nb.C_KIND : nb.C_OID + 1])
            asked = _asked(kind, side, price, qty, oid)
            why = self._reason(rule, why_code % 100, row, asked, listed)
            if why_code >= nb.SUFFIX_NOT_CLIPPABLE:
                why += " (cannot be clipped)"
            elif why_code >= nb.SUFFIX_CLIPPED_TO_NOTHING:
                why += " (nothing left after clipping)"
            if rule is self.stp and action in (nb.BLOCK, nb.CANCEL):
                c0, nc = int(row[nb.C_CANCELLED]), int(row[nb.C_N_CANCELLED])
                done = {
                    "qty": int(row[nb.C_DONE_QTY]),
                    "cancelled_orders": ids[c0 : c0 + nc].tolist(),
                }
            elif action == nb.BLOCK:
                done = {"qty": 0}
            else:
                done = {"qty": int(row[nb.C_DONE_QTY]), "price": int(row[nb.C_DONE_PRICE])}
            self.record(rule, ACTION_NAMES[action], asked, done, why)

    def _reason(self, rule: Any, code: int, row: list, asked: dict, listed: list) -> str:
        price, qty, side = asked["price"], asked["qty"], asked["side"]
        v1, v2, v3 = row[nb.C_V1], row[nb.C_V2], row[nb.C_V3]
        if code == nb.WHY_RESTRICTED:
            return f"instrument restricted for {rule.side}"
        if code == nb.WHY_DUPLICATE:
            return f"identical order sent within {rule.window} step(s)"
        if code == nb.WHY_COLLAR:
            return f"price {price} outside the collar mid {v1:.1f} ± {v2:.1f} ticks"
        if code == nb.WHY_STP:
            return f"would trade with own resting order(s) {listed} ({rule.policy})"
        if code == nb.WHY_WASH:
            return (
                f"{'buy' if side == 1 else 'sell'} of {qty} offsets {int(v1)} lots "
                f"{'sold' if side == 1 else 'bought'} within {rule.window} steps"
            )
        if code == nb.WHY_MAX_QTY:
            return f"qty {qty} > max_qty {rule.max_qty}"
        if code == nb.WHY_NOTIONAL:
            return f"notional {v1:.2f} > max_notional {rule.max_notional}"
        if code == nb.WHY_PARTICIPATION:
            return f"qty {qty} > {rule.max_rate} × interval volume {v1:.0f}"
        if code == nb.WHY_POSITION:
            net, resting, limit = int(v1), int(v2), int(v3)
            return (
                f"position {net:+d} + resting {side * resting:+d} + order {side * qty:+d} "
                f"breaks ±{limit} lots"
            )
        if code == nb.WHY_RATE:
            return f"{int(v1)} messages in {rule.window} steps > max_messages {rule.max_messages}"
        if code == nb.WHY_ORDER_TO_TRADE:
            return f"order-to-trade {v1:.1f} > {rule.max_order_to_trade}"
        return f"kill switch tripped ({self.kill_reason})"  # WHY_KILLED


__all__ = ["ExecutionCompliance", "EXECUTION"]
