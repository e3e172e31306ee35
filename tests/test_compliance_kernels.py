"""Execution-v0's compliance kernels against their pure-Python twin.

`TwinExecutionCompliance` is the checks' Python implementation from before they moved into
numba (``envs/compliance/execution_nb.py``): dicts of live orders, deques of recent messages,
one loop per message. The differential tests give both the same random batches of orders on
the same random books (background orders, trades with the agent, pending cancels) and
require the same decisions (what reaches the book, with which qty and price), the same audit
records and the same books after; and whole wrapped episodes with either engine must match.
Portfolio-v0's in-step checks are compared with the Python path they replaced: the checks'
own kernel run in Python (``py_func``) before a plain env step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import trendgym  # noqa: F401  (registers the ids)
from trendgym.envs.compliance import (
    ComplianceWrapper,
    DuplicateOrder,
    KillSwitch,
    MaxOrderSize,
    MaxParticipation,
    PositionLimit,
    PriceCollar,
    RestrictedList,
    SelfTradePrevention,
    Throttle,
    WashTrade,
)
from trendgym.envs.compliance.execution import ExecutionCompliance, ExecutionSteps
from trendgym.envs.compliance.rules import Rule
from trendgym.envs.execution import AGENT, ExecutionEnv
from trendgym.envs.lob import kernels as k

KIND_NAMES = {k.LIMIT: "limit", k.MARKET: "market", k.MODIFY: "modify"}
Record = Callable[[Rule, str, dict, dict, str], None]


def _asked(kind: int, side: int, price: int, qty: int, oid: int) -> dict[str, Any]:
    return {
        "kind": KIND_NAMES.get(kind, str(kind)),
        "side": side,
        "price": price,
        "qty": qty,
        "order_id": oid,
    }


class TwinExecutionCompliance(ExecutionSteps):
    """The pure-Python twin of `ExecutionCompliance` (what it was before its checks moved into
    numba): dicts and deques, one Python loop per message. It counts its own breaches (the
    kernel does), so `record` is only the audit callback."""

    def __init__(self, rules: list[Rule], record: Record, instrument: str) -> None:
        by_type = {type(r): r for r in rules}
        self.kill: KillSwitch | None = by_type.get(KillSwitch)
        self.restricted: RestrictedList | None = by_type.get(RestrictedList)
        if self.restricted is not None and instrument not in self.restricted.assets:
            self.restricted = None  # nothing this env trades is on the list
        self.duplicate: DuplicateOrder | None = by_type.get(DuplicateOrder)
        self.collar: PriceCollar | None = by_type.get(PriceCollar)
        self.stp: SelfTradePrevention | None = by_type.get(SelfTradePrevention)
        self.wash: WashTrade | None = by_type.get(WashTrade)
        self.size: MaxOrderSize | None = by_type.get(MaxOrderSize)
        self.participation: MaxParticipation | None = by_type.get(MaxParticipation)
        self.position: PositionLimit | None = by_type.get(PositionLimit)
        self.throttle: Throttle | None = by_type.get(Throttle)
        self._audit = record
        self._env: Any = None
        self.wash_min = float(self.wash.min_size if self.wash and self.wash.min_size else 1.0)
        self._state = np.zeros(3, dtype=np.int64)  # order_state_nb's out: qty, price, queue ahead
        self._cancel = np.zeros(1, dtype=k.MESSAGE_DTYPE)
        self._cancel["kind"], self._cancel["owner"] = k.CANCEL, AGENT
        self.reset(None)

    def record(self, rule: Rule, action: str, asked: dict, done: dict, why: str) -> None:
        self._audit(rule, action, asked, done, why)
        if rule is not self.kill:
            self.note_breach(self._env)

    # ------------------------------------------------------------------ episode state
    def reset(self, env: Any) -> None:
        self._env = env
        self.step = 0
        self.killed = False
        self.breaches = 0  # interventions by rules other than the kill switch
        self.live: dict[int, list[int]] = {}  # agent order id -> [side, price] (pruned lazily)
        self.sent_steps: deque[int] = deque()  # step of each message that reached the book
        self.recent: deque[tuple] = deque()  # (step, kind, side, price, qty) for duplicates
        self.fills: deque[tuple[int, int, int]] = (
            deque()
        )  # (step, bought, sold) cumulative, at step starts
        self.ordered = 0  # lots ordered (new orders and modifies' sizes) for order-to-trade
        self.best_shortfall = 0.0
        self.market_seen = int(env.book.meta[k.TRADED_QTY]) if env is not None else 0
        self.interval_volume = float(env.step_volume) if env is not None else 0.0

    def begin_step(self, env: Any, step: int, shortfall: float | None = None) -> None:
        """Bookkeeping before the env acts: interval volume, fill snapshot, kill-switch test."""
        self.step = step
        self._env = env
        mq = int(env.book.meta[k.TRADED_QTY])  # = env.market_qty's change (tested below)
        if step > 0:
            self.interval_volume = float(mq - self.market_seen)
        self.market_seen = mq
        if self.wash is not None:
            row = env.book.owner_stats[AGENT]
            self.fills.append((step, int(row[k.BOUGHT_QTY]), int(row[k.SOLD_QTY])))
            while self.fills[0][0] < step - self.wash.window:
                self.fills.popleft()
        kill = self.kill
        if kill is not None and not self.killed:
            shortfall = env.shortfall if shortfall is None else shortfall
            if shortfall < self.best_shortfall:
                self.best_shortfall = shortfall
            if kill.max_loss is not None and shortfall > kill.max_loss:
                self.trip(
                    env, f"running shortfall {shortfall:.2f} bps > max_loss {kill.max_loss} bps"
                )
            elif (
                kill.max_drawdown is not None
                and shortfall - self.best_shortfall > kill.max_drawdown
            ):
                self.trip(
                    env,
                    f"shortfall rose {shortfall - self.best_shortfall:.2f} bps from its best "
                    f"> max_drawdown {kill.max_drawdown} bps",
                )

    def note_breach(self, env: Any) -> None:
        """Called by the wrapper after each intervention of another rule."""
        self.breaches += 1
        kill = self.kill
        if (
            kill is not None
            and not self.killed
            and kill.max_breaches is not None
            and self.breaches >= kill.max_breaches
        ):
            self.trip(env, f"{self.breaches} interventions >= max_breaches {kill.max_breaches}")

    def trip(self, env: Any, why: str) -> None:
        """Kill switch: cancel every resting agent order, refuse every later one this episode."""
        self.killed = True
        self.kill_reason = why
        cancelled = self._cancel_resting(env, None)
        self.record(self.kill, "trip", {"trigger": why}, {"cancelled_orders": cancelled}, why)

    def _cancel_resting(self, env: Any, side: int | None) -> list[int]:
        """Cancel the agent's live orders (of `side`, or all) straight on the book; cancels
        trade nothing, so the env's accounting is untouched (it re-reads its child's state)."""
        ids = set(self._live_orders(env.book))
        if env.own_id != k.EMPTY_KEY:
            ids.add(int(env.own_id))
        done = []
        for oid in sorted(ids):
            if side is not None and self.live.get(oid, [0])[0] != side:
                continue
            if env.book.queue_ahead(oid) is not None:
                self._cancel["order_id"] = oid
                env.book.process(self._cancel)
                done.append(oid)
            self.live.pop(oid, None)
        return done

    def _live_orders(self, book: Any) -> dict[int, list[int]]:
        """The tracked agent orders still on the book, with [side, price, remaining qty]."""
        b, out = book, self._state
        for oid in list(self.live):
            if k.order_state_nb(b.orders, b.levels, b.keys, b.slots, b.meta, oid, out):
                self.live[oid][1] = int(out[1])
                if len(self.live[oid]) == 2:
                    self.live[oid].append(int(out[0]))
                else:
                    self.live[oid][2] = int(out[0])
            else:
                del self.live[oid]
        return self.live

    # ------------------------------------------------------------------ the hook
    def pre_trade(self, msgs: np.ndarray, env: Any) -> np.ndarray:
        self._env = env
        rows = msgs.tolist()  # (kind, side, owner, price, qty, order_id, peak) as Python ints
        keep = None  # None: all untouched; else per-message (qty, price) or None to drop
        if self.live:
            self._live_orders(env.book)
        for i, (kind, side, _owner, price, qty, oid, _peak) in enumerate(rows):
            if kind == k.MODIFY:
                entry = self.live.get(oid)
                if entry is None:  # an order the wrapper never saw (or already gone): ask the book
                    o = env.book.order(oid)
                    entry = (
                        [o["side"], o["price"], o["qty"] + o["hidden"]] if o else [env.side, 0, 0]
                    )
                side = entry[0]
            result = self._check(env, kind, side, price, qty, oid)
            if result != (qty, price):
                if keep is None:
                    keep = [(r[4], r[3]) for r in rows]
                keep[i] = result
        if keep is None:
            for kind, side, _owner, price, qty, oid, _peak in rows:
                self._sent(kind, side, price, qty, oid)
            return msgs
        mask = np.array([r is not None for r in keep], dtype=bool)
        for i, r in enumerate(keep):
            if r is not None:
                msgs["qty"][i], msgs["price"][i] = r
                kind, side, _owner, _p, _q, oid, _peak = rows[i]
                if kind == k.MODIFY:
                    side = self.live.get(oid, [env.side])[0]
                self._sent(kind, side, r[1], r[0], oid)
        return msgs[mask]

    def _sent(self, kind: int, side: int, price: int, qty: int, oid: int) -> None:
        """A message is going to the book: remember it for throttle, duplicates and STP."""
        step = self.step
        if self.throttle is not None:
            self.sent_steps.append(step)
            self.ordered += qty
        if self.duplicate is not None and kind != k.MODIFY:
            self.recent.append((step, kind, side, price, qty))
        if kind == k.LIMIT:
            self.live[oid] = [side, price]
        elif kind == k.MODIFY and oid in self.live and price > 0:
            self.live[oid][1] = price

    def _check(self, env: Any, kind: int, side: int, price: int, qty: int, oid: int):
        """(qty, price) to send, or None to drop; records every intervention."""
        if not self.killed:
            result = self._check_rules(env, kind, side, price, qty, oid)
            if not self.killed or result is None:
                return result
        # the switch is (or just got) tripped: nothing more reaches the book
        self.record(
            self.kill,
            "block",
            _asked(kind, side, price, qty, oid),
            {"qty": 0},
            f"kill switch tripped ({self.kill_reason})",
        )
        return None

    def _check_rules(self, env: Any, kind: int, side: int, price: int, qty: int, oid: int):
        step = self.step
        r = self.restricted
        if r is not None and r.blocks(side):
            if self._hit(
                r, kind, side, price, qty, oid, None, f"instrument restricted for {r.side}"
            ):
                return None
        r = self.duplicate
        if r is not None and kind != k.MODIFY:
            recent = self.recent
            while recent and recent[0][0] < step - r.window:
                recent.popleft()
            key = (kind, side, price, qty)
            if any(x[1:] == key for x in recent):
                if self._hit(
                    r,
                    kind,
                    side,
                    price,
                    qty,
                    oid,
                    None,
                    f"identical order sent within {r.window} step(s)",
                ):
                    return None
        book = env.book
        meta = book.meta
        if self.collar is not None and price > 0:  # limits, and modifies that reprice
            bid, ask = int(meta[k.BEST_BID]), int(meta[k.BEST_ASK])
            if bid and ask:
                mid = 0.5 * (bid + ask)
                c = self.collar
                band = c.max_pct * mid if c.max_pct is not None else float("inf")
                if c.max_spreads is not None:
                    band = min(band, c.max_spreads * (ask - bid))
                if abs(price - mid) > band:
                    edge = int(np.floor(mid + band)) if price > mid else int(np.ceil(mid - band))
                    # clipping may only make a price less aggressive: a passive price far
                    # from the mid is refused, never pulled toward the market
                    less_aggressive = side * (edge - price) < 0
                    why = f"price {price} outside the collar mid {mid:.1f} ± {band:.1f} ticks"
                    if self._hit(
                        c,
                        kind,
                        side,
                        price,
                        qty,
                        oid,
                        (qty, edge) if less_aggressive else None,
                        why,
                    ):
                        return None
                    if c.mode == "clip":
                        price = edge
        r = self.stp
        if r is not None and self.live and (kind != k.MODIFY or price > 0):
            going = self._pending_cancels(env)
            crossing = [
                o
                for o, (s, p, *_) in self.live.items()
                if o != oid
                and o not in going
                and s == -side
                and (kind == k.MARKET or (side == 1 and price >= p) or (side == -1 and price <= p))
            ]
            if crossing:
                why = f"would trade with own resting order(s) {crossing} ({r.policy})"
                if r.mode == "penalize":
                    self._hit(r, kind, side, price, qty, oid, None, why)
                else:
                    cancelled = []
                    if r.policy != "cancel_newest":
                        cancelled = self._cancel_resting(env, -side)
                    drop = r.policy != "cancel_oldest"
                    self.record(
                        r,
                        "block" if drop else "cancel",
                        _asked(kind, side, price, qty, oid),
                        {"qty": 0 if drop else qty, "cancelled_orders": cancelled},
                        why,
                    )
                    if drop:
                        return None
        r = self.wash
        if r is not None and self.fills:
            row = book.owner_stats[AGENT]
            first = self.fills[0]
            opposite = (
                (int(row[k.SOLD_QTY]) - first[2])
                if side == 1
                else (int(row[k.BOUGHT_QTY]) - first[1])
            )
            if min(qty, opposite) >= self.wash_min:
                why = (
                    f"{'buy' if side == 1 else 'sell'} of {qty} offsets {opposite} lots "
                    f"{'sold' if side == 1 else 'bought'} within {r.window} steps"
                )
                if self._hit(r, kind, side, price, qty, oid, None, why):
                    return None
        r = self.size
        if r is not None:
            if r.max_qty is not None and qty > r.max_qty:
                qty = self._capped(
                    r, kind, side, price, qty, oid, r.max_qty, f"qty {qty} > max_qty {r.max_qty}"
                )
                if qty is None:
                    return None
            if r.max_notional is not None:
                px = (
                    price
                    if price > 0
                    else (self.live.get(oid, [0, 0])[1] if kind == k.MODIFY else 0)
                )
                if px <= 0:  # a market order walks from the far touch
                    px = int(meta[k.BEST_ASK] if side == 1 else meta[k.BEST_BID]) or int(
                        env.arrival_ticks
                    )
                unit = px * env.tick_size
                if qty * unit > r.max_notional:
                    cap = int(r.max_notional // unit)
                    qty = self._capped(
                        r,
                        kind,
                        side,
                        price,
                        qty,
                        oid,
                        cap,
                        f"notional {qty * unit:.2f} > max_notional {r.max_notional}",
                    )
                    if qty is None:
                        return None
        r = self.participation
        # participation caps what takes liquidity: market orders and marketable limits (a
        # resting order trades only when others come to it)
        if r is not None and (
            kind == k.MARKET
            or (kind != k.MODIFY and price > 0 and self._marketable(meta, side, price))
        ):
            cap = int(r.max_rate * self.interval_volume)
            if qty > cap:
                qty = self._capped(
                    r,
                    kind,
                    side,
                    price,
                    qty,
                    oid,
                    cap,
                    f"qty {qty} > {r.max_rate} × interval volume {self.interval_volume:.0f}",
                )
                if qty is None:
                    return None
        r = self.position
        if r is not None:
            limit = int(r.max_position) if r.max_position is not None else env.quantity
            row = book.owner_stats[AGENT]
            net = int(row[k.BOUGHT_QTY]) - int(row[k.SOLD_QTY])
            resting = 0
            if self.live:
                going = self._pending_cancels(env)
                resting = sum(
                    v[2]
                    for o, v in self.live.items()
                    if o != oid and o not in going and v[0] == side and len(v) > 2
                )
            cap = limit - side * net - resting  # most this order may add on its side
            if qty > cap:
                cap = max(cap, 0)
                qty = self._capped(
                    r,
                    kind,
                    side,
                    price,
                    qty,
                    oid,
                    cap,
                    f"position {net:+d} + resting {side * resting:+d} + order {side * qty:+d} "
                    f"breaks ±{limit} lots",
                )
                if qty is None:
                    return None
        r = self.throttle
        if r is not None:
            sent = self.sent_steps
            while sent and sent[0] <= step - r.window:
                sent.popleft()
            why = None
            if len(sent) + 1 > r.max_messages:
                why = (
                    f"{len(sent) + 1} messages in {r.window} steps > max_messages {r.max_messages}"
                )
            elif r.max_order_to_trade is not None and self.ordered + qty >= r.min_volume:
                row = book.owner_stats[AGENT]
                filled = max(int(row[k.BOUGHT_QTY]) + int(row[k.SOLD_QTY]), 1)
                ratio = (self.ordered + qty) / filled
                if ratio > r.max_order_to_trade:
                    why = f"order-to-trade {ratio:.1f} > {r.max_order_to_trade}"
            if why is not None and self._hit(r, kind, side, price, qty, oid, None, why):
                return None
        return (qty, price) if qty > 0 else None

    @staticmethod
    def _marketable(meta: np.ndarray, side: int, price: int) -> bool:
        far = int(meta[k.BEST_ASK] if side == 1 else meta[k.BEST_BID])
        return far > 0 and (price >= far if side == 1 else price <= far)

    @staticmethod
    def _pending_cancels(env: Any) -> set[int]:
        """Ids the env cancels in the batch now being checked. The hook sees only new orders
        and modifies; the batch's cancels (applied first, right after the hook) are still
        in the env's message buffer. Stale entries there name orders already gone."""
        buf = getattr(env, "_msgs", None)
        if buf is None:
            return set()
        return {int(m[5]) for m in buf.tolist() if m[0] == k.CANCEL}

    def _capped(
        self, rule: Rule, kind: int, side: int, price: int, qty: int, oid: int, cap: int, why: str
    ) -> int | None:
        """A size limit of `cap` lots was broken: the quantity to send on (the cap when the
        rule clips, unchanged when it penalises), or None when the order is dropped."""
        if self._hit(rule, kind, side, price, qty, oid, (cap, price), why):
            return None
        return cap if rule.mode == "clip" else qty

    def _hit(
        self,
        rule: Rule,
        kind: int,
        side: int,
        price: int,
        qty: int,
        oid: int,
        clipped: tuple[int, int] | None,
        why: str,
    ) -> bool:
        """Record an intervention; True when the order is dropped (block, or clip to nothing)."""
        asked = _asked(kind, side, price, qty, oid)
        mode = rule.mode
        if mode == "clip" and clipped is not None and clipped[0] > 0:
            self.record(rule, "clip", asked, {"qty": clipped[0], "price": clipped[1]}, why)
            return False
        if mode == "penalize":
            self.record(rule, "penalize", asked, {"qty": qty, "price": price}, why)
            return False
        if mode == "clip":
            why += (
                " (nothing left after clipping)" if clipped is not None else " (cannot be clipped)"
            )
        self.record(rule, "block", asked, {"qty": 0}, why)
        return True


# ------------------------------------------------------------------------------ strategies
EXEC_SMALL = dict(horizon=8, warmup_seconds=10.0)
LIMIT, MARKET, MODIFY = k.LIMIT, k.MARKET, k.MODIFY


def _maybe(strategy):
    return st.one_of(st.none(), strategy)


def _modes(*modes):
    return st.sampled_from(modes)


ALL = ("block", "clip", "penalize")
BP = ("block", "penalize")


@st.composite
def rule_sets(draw):
    """A random subset of the Execution-v0 rules with random limits and modes."""
    rules = []
    if draw(st.booleans()):
        rules.append(
            RestrictedList(
                assets=["EXEC"],
                side=draw(st.sampled_from(["both", "buy", "sell"])),
                mode=draw(_modes(*BP)),
            )
        )
    if draw(st.booleans()):
        rules.append(DuplicateOrder(window=draw(st.integers(0, 3)), mode=draw(_modes(*BP))))
    if draw(st.booleans()):
        pct = draw(st.sampled_from([None, 0.0003, 0.001, 0.01]))
        spreads = draw(st.sampled_from([None, 1.0, 3.0] if pct else [1.0, 3.0]))
        rules.append(PriceCollar(max_pct=pct, max_spreads=spreads, mode=draw(_modes(*ALL))))
    if draw(st.booleans()):
        rules.append(
            SelfTradePrevention(
                policy=draw(st.sampled_from(SelfTradePrevention.POLICIES)), mode=draw(_modes(*BP))
            )
        )
    if draw(st.booleans()):
        rules.append(
            WashTrade(
                window=draw(st.integers(1, 4)),
                min_size=draw(st.sampled_from([None, 1, 3])),
                mode=draw(_modes(*BP)),
            )
        )
    if draw(st.booleans()):
        qty = draw(st.sampled_from([None, 3, 8]))
        notional = draw(st.sampled_from([None, 300.0, 2000.0] if qty else [300.0, 2000.0]))
        rules.append(MaxOrderSize(max_qty=qty, max_notional=notional, mode=draw(_modes(*ALL))))
    if draw(st.booleans()):
        rules.append(
            MaxParticipation(
                max_rate=draw(st.sampled_from([0.05, 0.5, 2.0])), mode=draw(_modes(*ALL))
            )
        )
    if draw(st.booleans()):
        rules.append(
            PositionLimit(
                max_position=draw(st.sampled_from([None, 10, 30])), mode=draw(_modes(*ALL))
            )
        )
    if draw(st.booleans()):
        rules.append(
            Throttle(
                max_messages=draw(st.integers(1, 6)),
                window=draw(st.integers(1, 4)),
                max_order_to_trade=draw(st.sampled_from([None, 2.0, 10.0])),
                min_volume=draw(st.sampled_from([1, 5, 20])),
                mode=draw(_modes(*BP)),
            )
        )
    if draw(st.booleans()):
        rules.append(KillSwitch(max_loss=1e9, max_breaches=draw(st.sampled_from([None, 2, 5, 12]))))
    return rules


agent_orders = st.tuples(
    st.sampled_from([LIMIT, LIMIT, MARKET, MODIFY]),
    st.sampled_from([1, -1]),
    st.integers(-8, 8),  # price offset from the mid (modify: 0 keeps the price half the time)
    st.integers(1, 12),  # qty
    st.integers(0, 30),  # modify: which earlier agent order
    st.booleans(),  # modify: keep the price
)
book_moves = st.tuples(
    st.sampled_from([LIMIT, LIMIT, MARKET]),
    st.sampled_from([1, -1]),
    st.integers(-6, 6),
    st.integers(1, 15),
)
steps = st.lists(
    st.tuples(
        st.lists(book_moves, max_size=4),  # the market moves between the agent's batches
        st.lists(agent_orders, min_size=1, max_size=3),  # one hooked batch
        st.integers(-1, 30),  # a cancel pending in the env's batch (index of an agent order)
    ),
    min_size=1,
    max_size=12,
)


def _message(kind, side, price, qty, oid, owner=AGENT):
    m = np.zeros(1, dtype=k.MESSAGE_DTYPE)
    m[0] = (kind, side, owner, price, qty, oid, 0)
    return m


def _rows(msgs):
    return [
        (int(m["kind"]), int(m["side"]), int(m["price"]), int(m["qty"]), int(m["order_id"]))
        for m in msgs
    ]


def _pair(rules):
    """Two identical envs, one checked by the kernels, one by the twin; their audit trails."""
    out = []
    for engine_cls in (ExecutionCompliance, TwinExecutionCompliance):
        env = ExecutionEnv(side="buy", quantity=50, preset="calm", **EXEC_SMALL)
        env.reset(seed=3)
        trail: list = []

        def record(rule, action, asked, done, why, trail=trail):
            trail.append((rule.name, action, asked, done, why))

        engine = engine_cls(rules, record, "EXEC")
        engine.reset(env)
        out.append((env, engine, trail))
    return out


# ------------------------------------------------------------------------------ differential tests
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rule_sets(), steps)
@example(  # self-trade prevention cancelling the resting order (rarely drawn at random)
    [SelfTradePrevention(policy="cancel_oldest"), KillSwitch(max_breaches=2)],
    [
        ([], [(LIMIT, -1, 3, 2, 0, False)], -1),
        ([], [(LIMIT, 1, 3, 1, 0, False)], -1),
        ([], [(LIMIT, -1, 6, 2, 0, False), (LIMIT, 1, -6, 1, 0, False)], -1),
        ([], [(LIMIT, 1, 6, 1, 0, False), (MARKET, 1, 0, 1, 0, False)], -1),
    ],
)
def test_kernels_match_the_twin_on_random_batches_and_books(rules, script):
    (env_a, eng, trail_a), (env_b, twin, trail_b) = _pair(rules)
    sent_ids: list[int] = []
    next_id, flow_id = 5000, 10_000_000
    for step, (moves, batch, pending) in enumerate(script):
        eng.begin_step(env_a, step)
        twin.begin_step(env_b, step)
        assert trail_a == trail_b
        centre = (int(env_a.book.meta[k.BEST_BID]) + int(env_a.book.meta[k.BEST_ASK])) // 2
        for kind, side, offset, qty in moves:  # the same background orders on both books
            flow_id += 1
            m = _message(kind, side, centre + offset if kind == LIMIT else 0, qty, flow_id, owner=0)
            env_a.book.process(m)
            env_b.book.process(m)
        has_pending = 0 <= pending < len(sent_ids)
        for env in (env_a, env_b):  # a cancel the env's batch would apply after the hook (or none)
            env._msgs["kind"] = LIMIT
            if has_pending:
                env._msgs[0] = (k.CANCEL, 1, AGENT, 0, 0, sent_ids[pending], 0)
        msgs = np.zeros(len(batch), dtype=k.MESSAGE_DTYPE)
        for i, (kind, side, offset, qty, which, keep_price) in enumerate(batch):
            if kind == MODIFY and sent_ids:
                oid = sent_ids[which % len(sent_ids)]
                msgs[i] = (MODIFY, 0, AGENT, 0 if keep_price else centre + offset, qty, oid, 0)
            else:
                kind = LIMIT if kind == MODIFY else kind
                next_id += 1
                price = centre + offset if kind == LIMIT else 0
                msgs[i] = (kind, side, AGENT, price, qty, next_id, 0)
                sent_ids.append(next_id)
        allowed_a = eng.pre_trade(msgs.copy(), env_a)
        allowed_b = twin.pre_trade(msgs.copy(), env_b)
        assert _rows(allowed_a) == _rows(allowed_b)  # same decisions: what goes, qty and price
        assert trail_a == trail_b  # same records, in the same order
        assert (eng.killed, eng.breaches) == (twin.killed, twin.breaches)
        for env, allowed in ((env_a, allowed_a), (env_b, allowed_b)):
            if has_pending:
                env.book.process(env._msgs[:1])
            if allowed.shape[0]:
                env.book.process(allowed)
        for a, b in zip(env_a.book.state, env_b.book.state, strict=True):
            np.testing.assert_array_equal(a, b)
    tracked = {oid: (side, price) for oid, (side, price, _) in eng.live_orders().items()}
    assert tracked == {oid: tuple(v[:2]) for oid, v in twin.live.items()}


def _wrapped(rules, twin: bool):
    env = ComplianceWrapper(ExecutionEnv(preset="volatile", **EXEC_SMALL), rules)
    if twin:  # the same wrapper with the twin as its engine
        base = env.unwrapped
        env.engine = TwinExecutionCompliance(env.rules, env._record, "EXEC")
        base.pre_trade = env.engine.pre_trade
    return env


@pytest.mark.parametrize("rules", ["default", "strict", {"preset": "strict", "mode": "penalize"}])
def test_wrapped_episodes_match_the_twin(rules):
    a, b = _wrapped(rules, False), _wrapped(rules, True)
    rng = np.random.default_rng(7)
    for seed in range(3):
        out = []
        actions = rng.uniform(-1, 1, (EXEC_SMALL["horizon"], 3)).astype(np.float32)
        for env in (a, b):
            obs, info = env.reset(seed=seed)
            trace = [(obs, info)]
            done = False
            for act in actions:
                if done:
                    break
                obs, reward, terminated, truncated, info = env.step(act)
                trace.append((obs, reward, info))
                done = terminated or truncated
            out.append(repr(trace))
        assert out[0] == out[1]
    assert a.audit.to_dicts() == b.audit.to_dicts()
    assert len(a.audit) > 0


def test_interval_volume_is_the_env_market_volume():
    """The kernels read the interval volume off the book (its traded quantity); it is the
    change of the env's own ``market_qty`` over every step."""
    env = ExecutionEnv(preset="volatile", **EXEC_SMALL)
    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        before = (env.market_qty, int(env.book.meta[k.TRADED_QTY]))
        done = False
        while not done:
            *_, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
            done = terminated or truncated
            after = (env.market_qty, int(env.book.meta[k.TRADED_QTY]))
            assert after[0] - before[0] == after[1] - before[1]
            before = after


def test_buffers_grow_and_keep_the_state():
    """More orders than the buffers were sized for: they grow (the kernel asks, changing
    nothing first) and keep every tracked order, message and fill snapshot."""
    rules = [
        DuplicateOrder(window=3),
        Throttle(max_messages=500, window=3),
        WashTrade(window=2),
        PositionLimit(max_position=10_000),
    ]
    (env_a, eng, trail_a), (env_b, twin, trail_b) = _pair(rules)
    size = eng.live.shape[0]
    bid = int(env_a.book.meta[k.BEST_BID])
    for step in range(3):
        eng.begin_step(env_a, step)
        twin.begin_step(env_b, step)
        for i in range(size):
            oid = 100 * (step + 1) + i
            msgs = _message(LIMIT, 1, bid - 20 - i, 1 + step, oid)
            a, b = eng.pre_trade(msgs.copy(), env_a), twin.pre_trade(msgs.copy(), env_b)
            assert _rows(a) == _rows(b) and len(a) == 1
            env_a.book.process(a)
            env_b.book.process(b)
    assert eng.live.shape[0] > size and len(eng.live_orders()) == len(twin.live) == 3 * size
    assert trail_a == trail_b == []
