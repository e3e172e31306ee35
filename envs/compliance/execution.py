"""Order-level checks for Execution-v0, run by the env's pre-trade hook.

`ExecutionCompliance.pre_trade(messages, env)` sees every new order and modify (kind 0 limit,
1 market, 3 modify) before the book does, including the forced completion at the horizon,
and returns them dropped or shrunk (or repriced toward the mid by a collar in clip mode).
Cancels never reach it: the env always lets them through. The hot path reads message fields
once as Python ints and touches the book only through preallocated kernels' buffers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

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
from trendgym.envs.execution import AGENT
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


class ExecutionCompliance:
    """The rules' state for one Execution-v0 env; `record` is the wrapper's audit callback,
    called as ``record(rule, action, asked, done, reason)``."""

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
        self.record = record
        self.wash_min = float(self.wash.min_size if self.wash and self.wash.min_size else 1.0)
        self._state = np.zeros(3, dtype=np.int64)  # order_state_nb's out: qty, price, queue ahead
        self._cancel = np.zeros(1, dtype=k.MESSAGE_DTYPE)
        self._cancel["kind"], self._cancel["owner"] = k.CANCEL, AGENT
        self.reset(None)

    # ------------------------------------------------------------------ episode state
    def reset(self, env: Any) -> None:
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
        self.market_seen = 0
        self.interval_volume = float(env.step_volume) if env is not None else 0.0

    def begin_step(self, env: Any, step: int) -> None:
        """Bookkeeping before the env acts: interval volume, fill snapshot, kill-switch test."""
        self.step = step
        mq = env.market_qty
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
            shortfall = env.shortfall
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


__all__ = ["ExecutionCompliance", "EXECUTION"]
