"""`trendgym/Execution-v0`: work a parent order on the simulated limit order book."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.book import OrderBook
from trendgym.envs.lob.flow import I_LAST_ASK, I_LAST_BID, PRESETS, OrderFlow, flow_params
from trendgym.envs.lob.kernels import kernel

AGENT = 1  # owner tag of the agent's orders on the book
WAIT, MARKET = 0, 5
LIMIT_OFFSETS = {1: -2, 2: -1, 3: 0, 4: 1}  # order type -> ticks from the own-side touch
N_ORDER_TYPES = 6
OBS_NAMES = (
    "time_left",
    "inventory_left",
    "spread",
    "imbalance_1",
    "imbalance_5",
    "ofi",
    "mid_move",
    "volatility",
    "own_size",
    "own_distance",
    "own_queue_ahead",
    "urgency",
)
OBS_LOW = np.array([0, 0, 0, -1, -1, -10, -10, 0, 0, -10, 0, 0], dtype=np.float32)
OBS_HIGH = np.array([1, 1, 50, 1, 1, 10, 10, 100, 1, 10, 10, 1], dtype=np.float32)
_SIDES = {"buy": 1, "sell": -1}


@kernel
def first_disallowed_nb(proposed, allowed):
    """Index of the first message a pre-trade hook returned that is not one of the proposed
    orders dropped, shrunk, or (a limit) made more passive; -1 when all of them are."""
    for i in range(allowed.shape[0]):
        a = allowed[i]
        ok = False
        for j in range(proposed.shape[0]):
            p = proposed[j]
            if p.order_id == a.order_id:
                same = (
                    p.kind == a.kind
                    and p.side == a.side
                    and p.owner == a.owner
                    and p.peak == a.peak
                )
                passive = a.price == p.price or (
                    p.kind == k.LIMIT and a.price > 0 and (a.price - p.price) * p.side < 0
                )
                ok = same and passive and 0 < a.qty <= p.qty
                break
        if not ok:
            return i
    return -1


def encode_action(order_type: int, fraction: float, replace: bool = False) -> np.ndarray:
    """The Box action for a decoded choice: the centre of the order type's bin, the size
    fraction of what remains, and keep (-1) or replace (+1) the resting child order."""
    if not 0 <= order_type < N_ORDER_TYPES:
        raise ValueError(f"order_type must be in [0, {N_ORDER_TYPES}), got {order_type}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    centre = -1.0 + (order_type + 0.5) * 2.0 / N_ORDER_TYPES
    return np.array([centre, 2.0 * fraction - 1.0, 1.0 if replace else -1.0], dtype=np.float32)


class ExecutionEnv(gym.Env[np.ndarray, np.ndarray]):
    """Work a parent order on a simulated limit order book, against the clock and the trend.

    ## Description

    A momentum signal has produced a parent order: buy or sell ``quantity`` lots within
    ``horizon`` decisions of ``step_seconds`` each. The book is fed by Cont–Stoikov–Talreja
    background flow (see ``trendgym.envs.lob.flow``) with an informed drift whose strength is
    the episode's *urgency*: the same signal keeps pushing the price away from the agent,
    so waiting costs. Trading aggressively costs too: market orders walk the book (impact
    emerges from depth), while limit orders queue behind resting volume and fill only when
    flow reaches them — or never. Unfilled quantity at the horizon is completed at market,
    so the implementation shortfall is always fully counted.

    ## Action Space

    ``Box(-1, 1, (3,), float32)`` — works with PPO, A2C and SAC as is.

    | index | meaning | mapping |
    |---|---|---|
    | 0 | order type | 6 equal bins of [-1, 1]: wait, limit 2 ticks behind the own touch, 1 behind, at the touch, 1 inside the spread (only when the spread is wider than a tick), market |
    | 1 | size | (a + 1) / 2 = fraction of the remaining parent quantity for the child order |
    | 2 | resting order | a <= 0 keeps the agent's resting order (a new limit at the same price resizes it: smaller keeps queue priority, larger goes to the back); a > 0 replaces it (cancel, then the new order) |

    The agent has at most one resting child order. A limit at a different price than the
    resting one needs a > 0 to replace it; otherwise the resting order is kept unchanged.
    A market order is sized on what is not already resting (unless it replaces it).

    ## Observation Space

    ``Box(float32, (12,))``, side-adjusted so a buy and a sell look alike (positive = good
    for the agent's side is never assumed: imbalance and OFI are multiplied by the side).

    | index | name | meaning | range |
    |---|---|---|---|
    | 0 | time_left | decisions left / horizon | [0, 1] |
    | 1 | inventory_left | quantity left / parent quantity | [0, 1] |
    | 2 | spread | best ask − best bid, ticks | [0, 50] |
    | 3 | imbalance_1 | side × (bid − ask)/(bid + ask) displayed qty at the touch | [-1, 1] |
    | 4 | imbalance_5 | the same over the best 5 levels | [-1, 1] |
    | 5 | ofi | side × order-flow imbalance over the last step / mean touch depth | [-10, 10] |
    | 6 | mid_move | side × (mid − arrival) in per-step volatilities (positive = price ran away) | [-10, 10] |
    | 7 | volatility | recent realised volatility, bps per step (EWMA) | [0, 100] |
    | 8 | own_size | resting child quantity / parent quantity | [0, 1] |
    | 9 | own_distance | ticks from the child's price to the own touch (negative = behind) | [-10, 10] |
    | 10 | own_queue_ahead | displayed lots queued ahead of the child / mean touch depth | [0, 10] |
    | 11 | urgency | strength of the adverse drift (the signal's strength, known to the trader) | [0, 1] |

    ## Rewards

    The per-step change of Perold's implementation shortfall, in basis points of the arrival
    notional, with unfilled quantity marked to the mid (opportunity cost):
    ``IS_t = [side·Σ(fill − arrival)·qty + fees + side·(mid_t − arrival)·remaining] / (X·arrival) · 1e4``
    and ``r_t = −(IS_t − IS_{t−1})``. The episode's rewards sum to ``−shortfall_bps`` exactly
    (with ``risk_aversion=0``); ``risk_aversion`` subtracts ``λ·(remaining/X)²·vol_bps`` per step.

    ## Starting State

    ``reset`` draws (unless given as kwargs) the side, quantity, flow preset and urgency from
    the env's generator, seeds the book, runs ``warmup_seconds`` of flow and records the
    arrival price (mid). Every random draw flows from ``reset(seed=...)``.

    ## Episode End

    Terminated after ``horizon`` decisions (the remainder then completes at market). Never
    truncated. The terminal ``info`` has ``shortfall_bps``, ``fill_rate`` (before the forced
    completion), ``arrival_price``, ``avg_price`` (fees and completion included, so
    ``shortfall_bps == side·(avg_price/arrival_price − 1)·1e4``), ``n_orders``,
    ``compliance_violations``, ``market_vwap`` and ``vwap_slippage_bps``.

    ## Arguments

    ``side=None`` ("buy" | "sell" | None: drawn), ``quantity=None`` (lots; None: drawn from
    ``quantity_range=(20, 100)``), ``horizon=40``, ``step_seconds=2.5``, ``preset=None``
    (``"calm" | "volatile" | "trending" | "crypto"``; None: drawn), ``urgency=None`` (in
    [0, 1]; None: drawn uniformly), ``max_drift=0.3`` (drift at urgency 1), ``latency=0.0``
    (seconds between decision and arrival of the agent's messages), ``fee_bps=0.3`` (on every
    agent fill), ``risk_aversion=0.0``, ``warmup_seconds=120.0``, ``tick_size=0.01``,
    ``start_price=10_000`` (ticks), ``render_mode=None`` (or ``"ansi"``).

    ## Version History

    * v0: first release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        side: str | None = None,
        quantity: int | None = None,
        horizon: int = 40,
        step_seconds: float = 2.5,
        preset: str | None = None,
        urgency: float | None = None,
        max_drift: float = 0.3,
        latency: float = 0.0,
        fee_bps: float = 0.3,
        risk_aversion: float = 0.0,
        warmup_seconds: float = 120.0,
        quantity_range: tuple[int, int] = (20, 100),
        tick_size: float = 0.01,
        start_price: int = 10_000,
        render_mode: str | None = None,
    ) -> None:
        if side is not None and side not in _SIDES:
            raise ValueError(f"side must be 'buy', 'sell' or None, got {side!r}")
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
        if quantity is not None and (not isinstance(quantity, (int, np.integer)) or quantity <= 0):
            raise ValueError(f"quantity must be a positive integer (lots), got {quantity!r}")
        lo, hi = quantity_range
        if not 0 < lo <= hi:
            raise ValueError(f"quantity_range must satisfy 0 < low <= high, got {quantity_range!r}")
        if urgency is not None and not 0.0 <= urgency <= 1.0:
            raise ValueError(f"urgency must be in [0, 1] or None, got {urgency!r}")
        checks = {
            "horizon": horizon >= 1,
            "step_seconds": step_seconds > 0,
            "max_drift": 0 <= max_drift <= 0.9,
            "latency": 0 <= latency < step_seconds,
            "fee_bps": fee_bps >= 0,
            "risk_aversion": risk_aversion >= 0,
            "warmup_seconds": warmup_seconds >= step_seconds,
            "tick_size": tick_size > 0,
            "start_price": start_price > 100,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"invalid {name}={locals()[name]!r}"
                    + (" (must be < step_seconds)" if name == "latency" else "")
                )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.side_arg, self.quantity_arg, self.preset_arg, self.urgency_arg = (
            side,
            quantity,
            preset,
            urgency,
        )
        self.horizon, self.step_seconds = int(horizon), float(step_seconds)
        self.max_drift, self.latency, self.fee_bps = (
            float(max_drift),
            float(latency),
            float(fee_bps),
        )
        self.risk_aversion, self.warmup_seconds = float(risk_aversion), float(warmup_seconds)
        self.quantity_range = (int(lo), int(hi))
        self.tick_size, self.start_price = float(tick_size), int(start_price)
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.book = OrderBook()
        self.flow: OrderFlow | None = None
        self.episodes = 0  # resets so far: lets policies cache per-episode estimates
        # Pre-trade hook (set by ComplianceWrapper): pre_trade(messages, env) -> messages sees
        # every new order and modify before the book does and may drop or shrink them; cancels
        # always go through, so the env never loses track of a resting order.
        self.pre_trade = None
        self.compliance_violations = 0
        self._tob = np.zeros(6, dtype=np.int64)
        self._own = np.zeros(3, dtype=np.int64)
        self._msgs = np.zeros(2, dtype=k.MESSAGE_DTYPE)
        self._msgs["owner"] = AGENT

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episodes += 1
        rng = self.np_random
        self.side = _SIDES[self.side_arg] if self.side_arg else int(rng.choice([1, -1]))
        self.quantity = int(
            self.quantity_arg or rng.integers(self.quantity_range[0], self.quantity_range[1] + 1)
        )
        self.preset = self.preset_arg or str(rng.choice(sorted(PRESETS)))
        self.urgency = float(self.urgency_arg if self.urgency_arg is not None else rng.uniform())
        base = PRESETS[self.preset]
        drift = self.side * min(0.9, abs(base.drift) + self.urgency * self.max_drift)
        self.book.clear()
        self.flow = OrderFlow(
            self.book, flow_params(self.preset, drift=drift), rng, start_price=self.start_price
        )
        self.flow.seed_book()
        # warm-up: learn the market's per-step volatility and touch depth before arrival
        n_warm = int(self.warmup_seconds / self.step_seconds)
        mids = np.empty(n_warm + 1)
        depth = 0.0
        self._read_book()
        mids[0] = self._mid()
        for i in range(n_warm):
            self.flow.run(self.step_seconds)
            self._read_book()
            mids[i + 1] = self._mid()
            depth += self._tob[2] + self._tob[3]
        warm_returns = np.diff(np.log(mids)) * 1e4
        self.vol_bps = max(float(np.std(warm_returns)), 0.1)  # per-step volatility, bps
        self.touch_depth = max(depth / (2 * n_warm), 1.0)  # mean displayed lots at the touch
        self.step_volume = self.flow.take_volume()[0] / n_warm  # mean market volume per step, lots
        self.flow.take_ofi()
        self.arrival_ticks = self._mid()
        self.t = 0
        self.remaining = self.quantity
        self.filled_before_end = 0
        self.cash_ticks = 0  # side-signed tick value paid so far: Σ price·qty
        self.fees_ticks = 0.0
        self.n_orders = 0
        self.compliance_violations = 0
        self.next_id = 1
        self.own_id = k.EMPTY_KEY
        self.shortfall = 0.0  # running IS in bps
        self.ewm_var = self.vol_bps**2
        self.prev_mid = self.arrival_ticks
        self.market_value = 0.0  # Σ price·qty of every trade since arrival (for VWAP)
        self.market_qty = 0
        self.last_ofi = 0.0
        self._fills_seen = self._agent_fills()
        return self._observation(), self._info()

    # ------------------------------------------------------------------ the step
    def step(self, action: np.ndarray):
        if self.flow is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (3,):
            raise ValueError(f"action must have shape (3,), got {a.shape}")
        a0, a1, a2 = a.tolist()
        if not (-1.0 <= a0 <= 1.0 and -1.0 <= a1 <= 1.0 and -1.0 <= a2 <= 1.0):  # NaN fails too
            if not np.isfinite(a).all():
                raise ValueError(f"action contains NaN or inf: {a}")
            raise ValueError(f"action must lie in [-1, 1], got {a}")
        order_type = min(int((a0 + 1.0) * 0.5 * N_ORDER_TYPES), N_ORDER_TYPES - 1)
        fraction = (a1 + 1.0) * 0.5
        replace = a2 > 0
        ref_touch = self._own_touch()  # quotes the agent saw when deciding (the last observation's)
        if self.latency > 0:
            self._run_flow(self.latency)
        self._act(order_type, fraction, replace, ref_touch)
        self._run_flow(self.step_seconds - self.latency)
        self.t += 1
        terminated = self.t >= self.horizon
        if terminated:
            self.filled_before_end = self.quantity - self.remaining
            self._complete_at_market()
        self._read_book()
        mid = self._mid()
        step_ret = math.log(mid / self.prev_mid) * 1e4
        self.ewm_var = 0.9 * self.ewm_var + 0.1 * step_ret * step_ret
        self.prev_mid = mid
        shortfall = self._shortfall_bps(mid)
        reward = -(shortfall - self.shortfall)
        self.shortfall = shortfall
        if self.risk_aversion > 0 and not terminated:
            reward -= (
                self.risk_aversion * (self.remaining / self.quantity) ** 2 * math.sqrt(self.ewm_var)
            )
        info = self._info()
        if terminated:
            info.update(self._summary())
        return self._observation(read=False), float(reward), terminated, False, info

    def _act(self, order_type: int, fraction: float, replace: bool, ref_touch: int) -> None:
        """Turn the decoded action into at most two messages (cancel/modify, then new)."""
        if order_type == WAIT:
            return
        self._refresh_own()
        resting = int(self._own[0])
        n = 0
        if order_type == MARKET:
            if replace and resting:
                n = self._cancel_own(n)
                resting = 0
            qty = int(round(fraction * (self.remaining - resting)))
            if qty > 0:
                n = self._new(n, k.MARKET, 0, qty)
        else:
            price = ref_touch + self.side * LIMIT_OFFSETS[order_type]
            opposite = self._tob[1] if self.side == 1 else self._tob[0]
            if order_type == 4 and opposite and abs(opposite - ref_touch) <= 1:
                price = ref_touch  # no room inside a one-tick spread: join the touch
            price = max(price, 1)
            qty = int(round(fraction * self.remaining))
            if resting and int(self._own[1]) == price:
                if qty == 0:
                    n = self._cancel_own(n)
                elif qty != resting:
                    m = self._msgs[n]
                    m["kind"], m["price"], m["qty"], m["order_id"] = k.MODIFY, 0, qty, self.own_id
                    n += 1
            elif resting and not replace:
                return
            else:
                if resting:
                    n = self._cancel_own(n)
                if qty > 0:
                    n = self._new(n, k.LIMIT, price, qty)
        if n:
            self._submit(self._msgs[:n])

    def _new(self, n: int, kind: int, price: int, qty: int) -> int:
        m = self._msgs[n]
        m["kind"], m["side"], m["price"], m["qty"], m["order_id"] = (
            kind,
            self.side,
            price,
            qty,
            self.next_id,
        )
        if kind == k.LIMIT:
            self.own_id = self.next_id
        self.next_id += 1
        return n + 1

    def _cancel_own(self, n: int) -> int:
        m = self._msgs[n]
        m["kind"], m["order_id"] = k.CANCEL, self.own_id
        self.own_id = k.EMPTY_KEY
        return n + 1

    def cancel_resting(self) -> int:
        """Cancel the agent's resting child order (a kill switch uses this); returns the
        quantity taken off the book."""
        self._refresh_own()
        qty = int(self._own[0])
        if qty:
            self._submit(self._msgs[: self._cancel_own(0)])
        return qty

    def _submit(self, msgs: np.ndarray) -> int:
        """Send messages to the book (through the pre-trade hook); returns how many reached it."""
        if self.pre_trade is not None:
            first = int(msgs["kind"][0] == k.CANCEL)  # a cancel always comes first, if at all
            proposed = msgs[first:]
            if proposed.shape[0]:
                allowed = self.pre_trade(proposed.copy(), self)
                if (
                    not isinstance(allowed, np.ndarray)
                    or allowed.dtype != k.MESSAGE_DTYPE
                    or allowed.ndim != 1
                ):
                    raise TypeError("pre_trade must return a one-dimensional MESSAGE_DTYPE array")
                bad = first_disallowed_nb(proposed, allowed)
                if bad >= 0:
                    raise ValueError(
                        "pre_trade may only drop, shrink or make more passive the proposed "
                        f"orders; got {allowed[bad]} for {proposed}"
                    )
                msgs = msgs[: first + allowed.shape[0]]
                msgs[first:] = allowed
        if msgs.shape[0] == 0:
            return 0
        self.n_orders += sum(1 for kind in msgs["kind"].tolist() if kind in (k.LIMIT, k.MARKET))
        self.book.process_trusted(msgs)  # the env built them (and the hook only shrank them)
        # every trade of this batch has the agent as taker: its fills are the market's volume
        qty, value = self._agent_fills()
        self.market_qty += qty - self._fills_seen[0]
        self.market_value += value - self._fills_seen[1]
        self._book_fills()
        return msgs.shape[0]

    def _run_flow(self, seconds: float) -> None:
        self.flow.run(seconds)
        qty, value = self.flow.take_volume()
        self.market_qty += int(qty)
        self.market_value += value
        self._book_fills()
        self.last_ofi = self.flow.take_ofi()

    def _agent_fills(self) -> tuple[int, int]:
        row = self.book.owner_stats[AGENT]
        if self.side == 1:
            return int(row[k.BOUGHT_QTY]), int(row[k.BOUGHT_VALUE])
        return int(row[k.SOLD_QTY]), int(row[k.SOLD_VALUE])

    def _book_fills(self) -> None:
        qty, value = self._agent_fills()
        d_qty, d_value = qty - self._fills_seen[0], value - self._fills_seen[1]
        if d_qty:
            self._fills_seen = (qty, value)
            self.remaining -= d_qty
            self.cash_ticks += d_value
            self.fees_ticks += d_value * self.fee_bps * 1e-4
            if self.remaining < 0:
                raise AssertionError("the agent filled more than its parent order")

    def _complete_at_market(self) -> None:
        """Cancel the child and walk the book for the rest; if the book runs dry, let the
        flow refill it (a second at a time). If compliance holds the completion back, the
        rest is marked at the last mid (Perold's opportunity cost): every lot is counted."""
        self.cancel_resting()
        for _ in range(3600):
            if self.remaining == 0:
                return
            if not self._submit(self._msgs[: self._new(0, k.MARKET, 0, self.remaining)]):
                return
            if self.remaining:
                self._run_flow(1.0)
        raise RuntimeError("the book stayed empty for an hour of simulated time")

    # ------------------------------------------------------------------ reading the book
    def _read_book(self) -> None:
        k.top_of_book_nb(self.book.levels, self.book.meta, 5, self._tob)

    def _refresh_own(self) -> None:
        if self.own_id == k.EMPTY_KEY:  # no child resting: nothing to look up
            self._own[:] = 0
            return
        b = self.book
        if not k.order_state_nb(
            b.orders, b.levels, b.keys, b.slots, b.meta, self.own_id, self._own
        ):
            self.own_id = k.EMPTY_KEY

    def _mid(self) -> float:
        """Mid of the last known quotes (a side that is momentarily empty keeps its last price)."""
        bid = self._tob[0] or self.flow.istate[I_LAST_BID]
        ask = self._tob[1] or self.flow.istate[I_LAST_ASK]
        return 0.5 * float(bid + ask)

    def _own_touch(self) -> int:
        bid = int(self._tob[0] or self.flow.istate[I_LAST_BID])
        ask = int(self._tob[1] or self.flow.istate[I_LAST_ASK])
        return bid if self.side == 1 else ask

    def _shortfall_bps(self, mid: float) -> float:
        filled = self.quantity - self.remaining
        arrival = self.arrival_ticks
        cost = self.side * (self.cash_ticks - filled * arrival) + self.fees_ticks
        cost += self.side * (mid - arrival) * self.remaining
        return cost / (self.quantity * arrival) * 1e4

    def _observation(self, read: bool = True) -> np.ndarray:
        if read:
            self._read_book()
        self._refresh_own()
        bid, ask, bq1, aq1, bq5, aq5 = self._tob.tolist()
        side = self.side
        spread = (ask - bid) if bid and ask else 0.0
        imb1 = side * (bq1 - aq1) / (bq1 + aq1) if bq1 + aq1 > 0 else 0.0
        imb5 = side * (bq5 - aq5) / (bq5 + aq5) if bq5 + aq5 > 0 else 0.0
        mid = self._mid()
        vol_bps = math.sqrt(self.ewm_var)
        move = side * math.log(mid / self.arrival_ticks) * 1e4 / self.vol_bps
        own_qty, own_price, ahead = self._own.tolist()
        touch = bid if side == 1 else ask
        distance = side * (own_price - touch) if own_qty and touch else 0.0
        obs = np.array(
            [
                1.0 - self.t / self.horizon,
                self.remaining / self.quantity,
                spread,
                imb1,
                imb5,
                side * self.last_ofi / self.touch_depth,
                move,
                vol_bps,
                own_qty / self.quantity,
                distance,
                ahead / self.touch_depth,
                self.urgency,
            ],
            dtype=np.float32,
        )
        return obs.clip(OBS_LOW, OBS_HIGH, out=obs)

    def _info(self) -> dict[str, Any]:
        return {"remaining": self.remaining, "running_shortfall_bps": self.shortfall}

    def _summary(self) -> dict[str, Any]:
        side, tick = self.side, self.tick_size
        arrival = self.arrival_ticks * tick
        marked = self.remaining * self.prev_mid  # lots compliance kept from completing, at the mid
        avg = (self.cash_ticks + side * self.fees_ticks + marked) / self.quantity * tick
        vwap = self.market_value / self.market_qty * tick if self.market_qty else arrival
        return {
            "shortfall_bps": side * (avg / arrival - 1.0) * 1e4,
            "fill_rate": self.filled_before_end / self.quantity,
            "arrival_price": arrival,
            "avg_price": avg,
            "n_orders": self.n_orders,
            "compliance_violations": self.compliance_violations,
            "unfilled_marked": self.remaining,
            "market_vwap": vwap,
            "vwap_slippage_bps": side * (avg / vwap - 1.0) * 1e4,
            "side": "buy" if side == 1 else "sell",
            "quantity": self.quantity,
            "preset": self.preset,
            "urgency": self.urgency,
        }

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.flow is None:
            return None
        bids = self.book.depth(1, 5).tolist()
        asks = self.book.depth(-1, 5).tolist()
        return (
            f"t={self.t}/{self.horizon} {'BUY' if self.side == 1 else 'SELL'} "
            f"left={self.remaining}/{self.quantity} IS={self.shortfall:.2f}bps\n"
            f"asks {asks}\nbids {bids}"
        )
