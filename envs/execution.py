"""`trendgym/Execution-v0`: work a parent order on the simulated limit order book."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trendgym.envs import execution_nb as nb
from trendgym.envs import rendering
from trendgym.envs.execution_nb import AGENT, N_ORDER_TYPES, OBS_HIGH, OBS_LOW
from trendgym.envs.fastcall import compiled_entry
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.book import OrderBook, grow_trades
from trendgym.envs.lob.flow import (
    MAX_DEPTH,
    N_FSTATE,
    N_ISTATE,
    N_PARAMS,
    PRESETS,
)

MARKET = nb.MARKET_TYPE  # the order type index of a market order
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
_SIDES = {"buy": 1, "sell": -1}
_FRAME_TICKS = 40  # price levels an rgb_array frame shows around the mid
PRESET_NAMES = tuple(sorted(PRESETS))  # a drawn preset is an index into this
TRADE_ROOM = 1024  # initial trade buffer of a book (grows when a step needs more)


def preset_table() -> np.ndarray:
    """Every preset's flow parameters (rows in ``PRESET_NAMES`` order), its initial depth in
    the last column: what the step kernel draws an episode's flow from."""
    return np.array(
        [np.append(PRESETS[name].to_array(), PRESETS[name].initial_depth) for name in PRESET_NAMES]
    )


def encode_action(order_type: int, fraction: float, replace: bool = False) -> np.ndarray:
    """The Box action for a decoded choice: the centre of the order type's bin, the size
    fraction of what remains, and keep (-1) or replace (+1) the resting child order."""
    if not 0 <= order_type < N_ORDER_TYPES:
        raise ValueError(f"order_type must be in [0, {N_ORDER_TYPES}), got {order_type}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    centre = -1.0 + (order_type + 0.5) * 2.0 / N_ORDER_TYPES
    return np.array([centre, 2.0 * fraction - 1.0, 1.0 if replace else -1.0], dtype=np.float32)


def episode_summaries(
    ei: np.ndarray, ef: np.ndarray, tick_size: float, violations: int = 0
) -> dict[str, np.ndarray]:
    """The terminal ``info`` of every row of the step kernel's state (one entry per env). Lots
    compliance kept from completing are marked at the last mid, so
    ``shortfall_bps == side·(avg_price/arrival_price − 1)·1e4`` always holds."""
    side, quantity, remaining = ei[:, nb.EI_SIDE], ei[:, nb.EI_QTY], ei[:, nb.EI_REMAINING]
    arrival = ef[:, nb.EF_ARRIVAL] * tick_size
    marked = remaining * ef[:, nb.EF_PREV_MID]
    avg = (ei[:, nb.EI_CASH] + side * ef[:, nb.EF_FEES] + marked) / quantity * tick_size
    market_qty = ei[:, nb.EI_MARKET_QTY]
    with np.errstate(divide="ignore", invalid="ignore"):  # no market volume: VWAP is arrival
        vwap = np.where(market_qty > 0, ef[:, nb.EF_MARKET_VALUE] / market_qty * tick_size, arrival)
    return {
        "shortfall_bps": side * (avg / arrival - 1.0) * 1e4,
        "fill_rate": ei[:, nb.EI_FILLED_END] / quantity,
        "arrival_price": arrival,
        "avg_price": avg,
        "n_orders": ei[:, nb.EI_N_ORDERS].copy(),
        "compliance_violations": np.full(ei.shape[0], violations, dtype=np.int64),
        "unfilled_marked": remaining.copy(),
        "market_vwap": vwap,
        "vwap_slippage_bps": side * (avg / vwap - 1.0) * 1e4,
        "side": np.where(side == 1, "buy", "sell").astype(object),
        "quantity": quantity.copy(),
        "preset": np.array(PRESET_NAMES, dtype=object)[ei[:, nb.EI_PRESET]],
        "urgency": ef[:, nb.EF_URGENCY].copy(),
    }


def _column(table: str, col: int, cast: type, doc: str = "") -> property:
    """An episode variable kept in the kernel's state row (settable, e.g. by tests)."""

    def get(self):
        return cast(getattr(self, table)[0, col])

    def put(self, value):
        getattr(self, table)[0, col] = value

    return property(get, put, doc=doc)


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
    agent fill), ``risk_aversion=0.0``, ``warmup_seconds=30.0`` (the seeded book relaxes to
    its stationary shape within seconds, as cancel rates are about 0.5/s; the warm-up's 12
    step returns give the volatility estimate), ``tick_size=0.01``, ``start_price=10_000``
    (ticks), ``render_mode=None`` (or ``"ansi"``: text; ``"rgb_array"``: a 200×320 frame of the
    book and the episode's progress, see ``render``).

    ## Version History

    * v0: first release.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

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
        warmup_seconds: float = 30.0,
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
            raise ValueError(
                f"render_mode must be None, 'ansi' or 'rgb_array', got {render_mode!r}"
            )
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
        self.n_warm = int(self.warmup_seconds / self.step_seconds)
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.cfg = self.kernel_config()
        self.preset_params = preset_table()
        self.book = OrderBook(index_background=False)
        self.episodes = 0  # resets so far: lets policies cache per-episode estimates
        # Pre-trade hook (set by ComplianceWrapper): pre_trade(messages, env) -> messages sees
        # every new order and modify before the book does and may drop or shrink them; cancels
        # always go through, so the env never loses track of a resting order.
        self.pre_trade = None
        self.compliance_violations = 0
        # the episode lives in one-row arrays, stepped by the vector env's kernel (row 0)
        self._actions = np.zeros((1, 3), dtype=np.float32)
        self._trades = np.zeros((1, TRADE_ROOM), dtype=k.TRADE_DTYPE)
        self._xrng = np.zeros((1, 4), dtype=np.uint64)
        self._params = np.zeros((1, N_PARAMS))
        self._fstate = np.zeros((1, N_FSTATE))
        self._istate = np.zeros((1, N_ISTATE), dtype=np.int64)
        self._no_msgs = np.zeros(0, dtype=k.MESSAGE_DTYPE)
        self._q_bid = np.zeros((1, MAX_DEPTH), dtype=np.int64)
        self._q_ask = np.zeros((1, MAX_DEPTH), dtype=np.int64)
        # the agent's batch, then the copy a pre-trade hook is checked against
        self._msgs2 = np.zeros((1, 2 * nb.MSG_SLOTS), dtype=k.MESSAGE_DTYPE)
        self._msgs2["owner"] = AGENT
        self._ei = np.zeros((1, nb.N_EI), dtype=np.int64)
        self._ef = np.zeros((1, nb.N_EF))
        self._final_ei, self._final_ef = np.zeros_like(self._ei), np.zeros_like(self._ef)
        self._tob = np.zeros((1, 6), dtype=np.int64)
        self._own = np.zeros((1, 3), dtype=np.int64)
        self._mids = np.zeros((1, self.n_warm + 1))
        self._obs = np.zeros((1, 12), dtype=np.float32)
        self._final_obs = np.zeros_like(self._obs)
        self._nx_raw = np.zeros((1, nb.N_RAW), dtype=np.uint64)
        self._started = False
        self._bind()

    def kernel_config(self) -> np.ndarray:
        """The settings the step kernel reads (``execution_nb.C_*``); None kwargs mean "draw"."""
        cfg = np.zeros(nb.N_CFG)
        cfg[nb.C_HORIZON], cfg[nb.C_STEP_SECONDS] = self.horizon, self.step_seconds
        cfg[nb.C_LATENCY], cfg[nb.C_FEE_BPS] = self.latency, self.fee_bps
        cfg[nb.C_RISK_AVERSION], cfg[nb.C_N_WARM] = self.risk_aversion, self.n_warm
        cfg[nb.C_START_PRICE] = self.start_price
        cfg[nb.C_SIDE] = _SIDES[self.side_arg] if self.side_arg else 0
        cfg[nb.C_QUANTITY] = self.quantity_arg or 0
        cfg[nb.C_QTY_LO], cfg[nb.C_QTY_HI] = self.quantity_range
        cfg[nb.C_PRESET] = PRESET_NAMES.index(self.preset_arg) if self.preset_arg else -1
        cfg[nb.C_URGENCY] = -1.0 if self.urgency_arg is None else self.urgency_arg
        cfg[nb.C_MAX_DRIFT] = self.max_drift
        return cfg

    def _bind(self) -> None:
        """The kernel's arguments: one-row views of the book's arrays (rebound when it grows)."""
        b = self.book
        self._book_arrays = b.state
        self._msgs = self._msgs2[0]  # the batch being sent (read by compliance for its cancels)
        self._args = (
            self._actions, b.orders[None], b.levels[None], b.keys[None], b.slots[None],
            b.meta[None], b.owner_stats[None], self._trades, self._xrng, self._params,
            self._fstate, self._istate, self._no_msgs, self._q_bid, self._q_ask, self._msgs2,
            self._ei, self._ef, self._tob, self._own, self._mids, self._obs, self._final_obs,
            self._final_ei, self._final_ef, self._nx_raw, self.preset_params, self.cfg, False,
            self.pre_trade is not None,
        )  # fmt: skip
        self._kernel = compiled_entry(nb.step_env_nb, (0, *self._args))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for view in ("_args", "_msgs", "_book_arrays", "_kernel"):  # views would pickle as copies
            state.pop(view, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind()

    # ------------------------------------------------------------------ running the kernel
    def _run(self) -> None:
        """Run the step kernel until the phase is done: grow the book when it asks for room,
        run the pre-trade hook when a batch waits for it."""
        if (self.pre_trade is not None) != self._args[-1] or self._stale():
            self._bind()
        while True:
            status = self._kernel(0, *self._args)
            if status == nb.DONE:
                return
            if status == nb.NEED_HOOK:
                try:
                    self._hook()
                except BaseException:  # the batch never reaches the book; the step is abandoned
                    ei = self._ei[0]
                    ei[nb.EI_HOOKED] = ei[nb.EI_N_MSGS] = 0
                    ei[nb.EI_PHASE] = nb.P_IDLE
                    raise
            elif status == nb.STUCK:
                raise RuntimeError("the book stayed empty for an hour of simulated time")
            elif status == nb.NEED_SLOT:  # one more order than the pool holds: it doubles
                b = self.book
                b.reserve(b.orders.shape[0] + 1 - int(b.meta[k.N_LIVE]))
            elif status == nb.NEED_TRADE_ROOM:
                need = nb.trade_room_needed(self._ei[0], self.book.meta)
                self._trades = grow_trades(self._trades, self._trades.shape[1], need)
                self._bind()
            else:  # NEED_WINDOW
                self.book.reserve(
                    0, *nb.needed_prices(self._ei[0], self.book.meta, self._istate[0])
                )
            if self._stale():  # the book grew (or a hook's direct book call replaced arrays)
                self._bind()

    def _stale(self) -> bool:
        """Whether the book replaced its arrays since ``_bind``: growing the pool replaces
        `orders`, widening the window `levels`, a restore or clear both."""
        b, bound = self.book, self._book_arrays
        return b.orders is not bound[0] or b.levels is not bound[1]

    def _hook(self) -> None:
        """The pre-trade hook rewrites the waiting batch's new orders and modifies (the kernel
        kept a copy of the batch to check the hook against)."""
        ei = self._ei[0]
        first, n = int(ei[nb.EI_HOOK_FIRST]), int(ei[nb.EI_N_MSGS])
        allowed = self.pre_trade(self._msgs[first:n], self)
        if (
            not isinstance(allowed, np.ndarray)
            or allowed.dtype != k.MESSAGE_DTYPE
            or allowed.ndim != 1
        ):
            raise TypeError("pre_trade must return a one-dimensional MESSAGE_DTYPE array")
        bad = nb.accept_hooked_nb(self._msgs2, self._ei, allowed)
        if bad >= 0:
            proposed = self._msgs[nb.MSG_SLOTS + first : nb.MSG_SLOTS + n]
            raise ValueError(
                "pre_trade may only drop, shrink or make more passive the proposed "
                f"orders; got {allowed[bad]} for {proposed}"
            )

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episodes += 1
        self._nx_raw[0] = self.np_random.bit_generator.random_raw(nb.N_RAW)
        self._ei[0, nb.EI_PHASE] = nb.P_RESET
        self._run()
        self.compliance_violations = 0
        self._started = True
        return self._obs[0].copy(), self._info()

    # ------------------------------------------------------------------ the step
    def step(self, action: np.ndarray):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (3,):
            raise ValueError(f"action must have shape (3,), got {a.shape}")
        a0, a1, a2 = a.tolist()
        if not (-1.0 <= a0 <= 1.0 and -1.0 <= a1 <= 1.0 and -1.0 <= a2 <= 1.0):  # NaN fails too
            if not np.isfinite(a).all():
                raise ValueError(f"action contains NaN or inf: {a}")
            raise ValueError(f"action must lie in [-1, 1], got {a}")
        row = self._actions[0]
        row[0], row[1], row[2] = a0, a1, a2
        ei, ef = self._ei[0], self._ef[0]
        ei[nb.EI_PHASE] = nb.P_DECIDE
        self._run()
        terminated = ei[nb.EI_TERMINATED] == 1
        info = {
            "remaining": int(ei[nb.EI_REMAINING]),
            "running_shortfall_bps": float(ef[nb.EF_SHORTFALL]),
        }
        if terminated:
            info.update(self._summary())
        return self._obs[0].copy(), float(ef[nb.EF_REWARD]), bool(terminated), False, info

    def _act(self, order_type: int, fraction: float, replace: bool, ref_touch: int) -> None:
        """Send the messages of one decoded action now (no flow runs): what a step does first."""
        ei, ef = self._ei, self._ef
        ei[0, nb.EI_ORDER_TYPE], ef[0, nb.EF_FRACTION] = order_type, fraction
        ei[0, nb.EI_REPLACE], ei[0, nb.EI_REF_TOUCH] = int(replace), ref_touch
        ei[0, nb.EI_ACT_ONLY], ei[0, nb.EI_PHASE] = 1, nb.P_ACT
        try:
            self._run()
        finally:
            ei[0, nb.EI_ACT_ONLY] = 0

    # ------------------------------------------------------------------ episode state
    side = _column("_ei", nb.EI_SIDE, int, "+1 buy, -1 sell")
    quantity = _column("_ei", nb.EI_QTY, int, "parent order, lots")
    remaining = _column("_ei", nb.EI_REMAINING, int, "lots left")
    t = _column("_ei", nb.EI_T, int, "decisions taken")
    own_id = _column("_ei", nb.EI_OWN_ID, int, "resting child's id")
    n_orders = _column("_ei", nb.EI_N_ORDERS, int)
    next_id = _column("_ei", nb.EI_NEXT_ID, int, "id of the agent's next order")
    cash_ticks = _column("_ei", nb.EI_CASH, int, "Σ fill price·qty")
    market_qty = _column("_ei", nb.EI_MARKET_QTY, int, "since arrival")
    filled_before_end = _column("_ei", nb.EI_FILLED_END, int)
    urgency = _column("_ef", nb.EF_URGENCY, float)
    shortfall = _column("_ef", nb.EF_SHORTFALL, float, "running, bps")
    arrival_ticks = _column("_ef", nb.EF_ARRIVAL, float, "arrival mid")
    vol_bps = _column("_ef", nb.EF_VOL_BPS, float, "warm-up, per step")
    touch_depth = _column("_ef", nb.EF_TOUCH_DEPTH, float, "warm-up")
    step_volume = _column("_ef", nb.EF_STEP_VOLUME, float, "warm-up")
    fees_ticks = _column("_ef", nb.EF_FEES, float)
    market_value = _column("_ef", nb.EF_MARKET_VALUE, float)
    prev_mid = _column("_ef", nb.EF_PREV_MID, float, "last mid, ticks")
    preset = property(lambda self: PRESET_NAMES[int(self._ei[0, nb.EI_PRESET])])

    def _info(self) -> dict[str, Any]:
        return {"remaining": self.remaining, "running_shortfall_bps": self.shortfall}

    def _summary(self) -> dict[str, Any]:
        rows = episode_summaries(self._ei, self._ef, self.tick_size, self.compliance_violations)
        return {
            key: v[0].item() if isinstance(v[0], np.generic) else v[0] for key, v in rows.items()
        }

    def render(self) -> str | np.ndarray | None:
        """``"ansi"``: the episode's progress and the top five levels as text. ``"rgb_array"``:
        a (200, 320, 3) frame: a strip of decisions used (dark) and one of quantity done
        (blue) over the displayed depth of the 40 ticks around the mid, bids green, asks red,
        the agent's resting child blue at the foot of its level. None before the first reset."""
        if self.render_mode is None or not self._started:
            return None
        if self.render_mode == "rgb_array":
            return self._frame()
        bids = self.book.depth(1, 5).tolist()
        asks = self.book.depth(-1, 5).tolist()
        return (
            f"t={self.t}/{self.horizon} {'BUY' if self.side == 1 else 'SELL'} "
            f"left={self.remaining}/{self.quantity} IS={self.shortfall:.2f}bps\n"
            f"asks {asks}\nbids {bids}"
        )

    def _frame(self) -> np.ndarray:
        book = self.book
        img = rendering.canvas()
        rendering.progress(img, 0, 8, self.t / self.horizon, rendering.DARK)
        rendering.progress(img, 10, 8, 1.0 - self.remaining / self.quantity, rendering.BLUE)
        bid, ask = book.best_bid(), book.best_ask()
        centre = (bid + ask) // 2 if bid and ask else (bid or ask or self.start_price)
        prices = np.arange(centre - _FRAME_TICKS // 2, centre + _FRAME_TICKS // 2)
        base, n_levels = int(book.meta[k.BASE]), book.levels.shape[0]
        inside = (prices >= base) & (prices < base + n_levels)
        qty = np.zeros(prices.size)
        qty[inside] = book.levels["qty"][prices[inside] - base]
        scale = max(qty.max(), 1.0)
        colors = [rendering.GREEN if p <= centre else rendering.RED for p in prices]
        top = 24
        rendering.columns(img, top, rendering.HEIGHT, qty / scale, colors)
        own = book.order(self.own_id)
        if own is not None and prices[0] <= own["price"] <= prices[-1]:
            j = own["price"] - prices[0]
            rendering.bar(
                img, top, rendering.HEIGHT, j, prices.size, own["qty"] / scale, rendering.BLUE
            )
        return img
