"""`trendgym/Execution-v0`: work a parent order on the simulated limit order book."""

from __future__ import annotations

import textwrap
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from trendgym.envs import rendering
from trendgym.envs.checks import check_number
from trendgym.envs.execution import orders
from trendgym.envs.execution.infos import infos_nb
from trendgym.envs.execution.layout import (
    CFG,
    EF,
    EI,
    FLOW_PHASES,
    INFO_FLOAT,
    INFO_INT,
    MAX_COMPLETION_SECONDS,
    MSG_SLOTS,
    N_ORDER_TYPES,
    N_RAW,
    OBS_HIGH,
    OBS_LOW,
    PHASE,
    PRESET_NAMES,
    SIDE_NAMES,
    new_episode,
    obs_table,
)
from trendgym.envs.execution.replay_data import (
    LOBSTER_PRICE_UNIT,
    ReplayData,
    check_window,
    empty_replay,
    load_tape,
    prepare,
)
from trendgym.envs.execution.step import step_env_nb
from trendgym.envs.fastcall import compiled_entry
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.book import OrderBook, grow_trades
from trendgym.envs.lob.flow import (
    MAX_DEPTH,
    N_FSTATE,
    N_ISTATE,
    N_PARAMS,
    PRESETS,
    FlowParams,
    flow_price_span,
)
from trendgym.envs.lob.layout import STATUS, Book, FlowState
from trendgym.envs.lob.retry import run_to_done

_SIDES = {name: code for code, name in SIDE_NAMES.items()}
_FRAME_TICKS = 40  # price levels an rgb_array frame shows around the mid
TRADE_ROOM = 1024  # initial trade buffer of a book (grows when a step needs more)

# Every info's keys: (name, when it holds its value, meaning). "step": from reset on; "end":
# 0 until the step that ends the episode.
INFO_SPEC = (
    ("remaining", "step", "lots left to trade"),
    ("running_shortfall_bps", "step", "implementation shortfall so far, bps"),
    ("shortfall_bps", "end", "the episode's implementation shortfall, bps"),
    ("fill_rate", "end", "share of the parent filled before the forced completion"),
    ("arrival_price", "step", "mid at arrival (after the warm-up), price units"),
    ("avg_price", "end", "average fill price, fees and completion included"),
    ("n_orders", "step", "child orders sent (limit and market)"),
    ("compliance_violations", "step", "interventions of a compliance wrapper so far"),
    ("unfilled_marked", "end", "lots compliance kept from completing, marked at the last mid"),
    ("market_vwap", "end", "the market's VWAP since arrival (arrival price without volume)"),
    ("vwap_slippage_bps", "end", "side × (avg_price / market_vwap − 1), bps"),
    ("side", "step", "+1 buy, -1 sell"),
    ("quantity", "step", "parent order, lots"),
    (
        "preset",
        "step",
        "flow preset, index into PRESET_NAMES: "
        + ", ".join(PRESET_NAMES)
        + "; -1 in replay, -2 on a calibrated flow (flow=)",
    ),
    ("urgency", "step", "strength of the adverse drift, [0, 1]"),
    ("replay_start_time", "step", "replay: the episode's start in the tape, s after midnight"),
    ("replay_consumed", "step", "replay: tape messages on liquidity the agent took"),
    (
        "replay_halted",
        "step",
        "replay: the tape's trading state after the step: 0 open, 1 halted, 2 quoting only",
    ),
    ("replay_rejected", "step", "replay: the agent's orders refused in halts so far"),
)
INFO_KEYS = tuple(name for name, _, _ in INFO_SPEC)
# where each key's values are in ``(*ints, *floats)``, the rows of ``infos_nb``'s two tables
_INFO_ROWS = tuple(
    getattr(INFO_INT, key) if key in INFO_INT._fields else len(INFO_INT) + getattr(INFO_FLOAT, key)
    for key in INFO_KEYS
)


def info_table() -> str:
    """The info table of ``ExecutionEnv``'s docstring (markdown), from ``INFO_SPEC``."""
    rows = ["| key | holds | meaning |", "|---|---|---|"]
    rows += [f"| {name} | {when} | {meaning} |" for name, when, meaning in INFO_SPEC]
    return "\n".join(rows)


def preset_table(flow: FlowParams | None = None) -> np.ndarray:
    """Every preset's flow parameters (rows in ``PRESET_NAMES`` order), its initial depth in
    the last column: what the step kernel draws an episode's flow from. Given `flow`, the
    one row of that flow instead (a calibrated day, ``ExecutionEnv(flow=...)``)."""
    flows = [PRESETS[name] for name in PRESET_NAMES] if flow is None else [flow]
    return np.array([np.append(p.to_array(), p.initial_depth) for p in flows])


def resolve_flow(flow: Any) -> FlowParams:
    """The ``FlowParams`` of ``ExecutionEnv``'s `flow` argument: a ``FlowParams``, a
    ``Calibration`` or the path of the ``calibration.json`` ``trendgym calibrate`` writes."""
    import os

    if isinstance(flow, FlowParams):
        return flow
    if isinstance(flow, (str, os.PathLike)):
        from trendgym.envs.lob.calibrate import load_calibration

        try:
            return load_calibration(flow).params()
        except ValueError as err:
            raise ValueError(f"flow: {err}") from None
    from trendgym.envs.lob.calibrate import Calibration

    if isinstance(flow, Calibration):
        return flow.params()
    raise TypeError(
        "flow must be FlowParams, a Calibration or the path of a calibration.json, "
        f"got {type(flow).__name__}"
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


def episode_infos(
    ei: np.ndarray,
    ef: np.ndarray,
    tick_size: float,
    ended: np.ndarray,
    violations: int = 0,
    *,
    calibrated: bool = False,
) -> dict[str, np.ndarray]:
    """Every key's values (``INFO_KEYS`` order, one entry per env) from the step kernel's
    state; rows whose episode has not `ended` hold 0 in the end-only keys (see ``infos_nb``).
    Each key's array is a row of one of two fresh tables: two allocations per call."""
    n = ei.shape[0]
    ints = np.empty((len(INFO_INT), n), dtype=np.int64)
    floats = np.empty((len(INFO_FLOAT), n))
    infos_nb(ei, ef, tick_size, ended, violations, calibrated, ints, floats)
    return dict(zip(INFO_KEYS, map((*ints, *floats).__getitem__, _INFO_ROWS), strict=True))


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

    {obs_table}

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
    truncated.

    ## Info

    Every ``info``, from ``reset`` on, has the same keys, all numbers (so replay buffers that
    store infos as arrays, e.g. Tianshou's, take them as they are):

    {info_table}

    Results marked *end* are 0 until the step that ends the episode (check ``terminated``
    before reading them). Not NaN: Gymnasium's ``check_env`` compares two seeded runs' infos
    with ``==``, which NaN never passes, and a NaN would spread into any mean over steps. The
    terminal info has ``shortfall_bps``, ``fill_rate`` (before the forced completion),
    ``arrival_price``, ``avg_price`` (fees and completion included, so
    ``shortfall_bps == side·(avg_price/arrival_price − 1)·1e4``), ``n_orders``,
    ``compliance_violations``, ``market_vwap`` and ``vwap_slippage_bps``.

    ## Arguments

    ``side=None`` ("buy" | "sell" | None: drawn), ``quantity=None`` (lots; None: drawn from
    ``quantity_range=(20, 100)``; refused above ``fillable_bound``, more than the book can
    fill before the forced completion gives up), ``horizon=40``, ``step_seconds=2.5``, ``preset=None``
    (``"calm" | "volatile" | "trending" | "crypto"``; None: drawn), ``urgency=None`` (in
    [0, 1]; None: drawn uniformly), ``max_drift=0.3`` (drift at urgency 1), ``latency=0.0``
    (seconds between decision and arrival of the agent's messages), ``fee_bps=0.3`` (on every
    agent fill), ``risk_aversion=0.0``, ``warmup_seconds=30.0`` (the seeded book relaxes to
    its stationary shape within seconds, as cancel rates are about 0.5/s; the warm-up's 12
    step returns give the volatility estimate), ``tick_size=None`` (price of a book tick; None:
    0.01, or in replay the tape's tick × 1e-4, LOBSTER's price unit), ``start_price=10_000``
    (ticks), ``render_mode=None`` (or ``"ansi"``: text; ``"rgb_array"``: a 200×320 frame of the
    book and the episode's progress, see ``render``), ``replay=None`` (a ``MessageTape``, a
    LOBSTER message file, a ``(messages, orderbook)`` pair of files or a ``.dbn``/``.dbn.zst``
    file: the recorded day drives the book instead of the flow, episodes start at seeded times
    in it, and the agent's orders join its real queues; in the tape's trading halts its
    market orders (and, fully halted, any new order) are refused, nothing of its executes,
    and a forced completion waits for trading to resume; see docs/execution.md, "Replay"),
    ``replay_orderbook=None`` (the LOBSTER orderbook file that goes with ``replay``),
    ``replay_window=None`` (``[start, end]``, s after midnight in tape time: episodes start
    only where the whole episode, warm-up and horizon, lies inside it; e.g. disjoint windows of
    one day for validation and test),
    ``flow=None`` (instead of a preset, a calibrated flow: ``FlowParams``, a ``Calibration`` or
    the path of the ``calibration.json`` ``trendgym calibrate`` writes; its fitted drift's size
    is the base drift, turned against the agent's side as a preset's is; exclusive with
    ``preset`` and ``replay``).

    ## Version History

    * v0: first release.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    compliance_kind = "execution"  # ComplianceWrapper's adapter protocol (`Compliant`)

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
        tick_size: float | None = None,
        start_price: int = 10_000,
        render_mode: str | None = None,
        replay: Any = None,
        replay_orderbook: Any = None,
        flow: FlowParams | str | Any = None,
        replay_window: Any = None,
    ) -> None:
        if flow is not None:
            if preset is not None:
                raise ValueError(f"flow and preset are exclusive: got flow= and preset={preset!r}")
            if replay is not None:
                raise ValueError("flow and replay are exclusive: a replayed day has no flow")
            flow = resolve_flow(flow)
        self.flow_params = flow
        _check_kwargs(locals(), self.metadata["render_modes"])
        self.replay_data = None
        if replay is not None:
            self.replay_data = replay_setup(locals())
            if tick_size is None:
                tick_size = self.replay_data.tape.tick * LOBSTER_PRICE_UNIT
        tick_size = 0.01 if tick_size is None else tick_size
        self.side_arg, self.quantity_arg = side, quantity
        self.preset_arg, self.urgency_arg = preset, urgency
        self.horizon, self.step_seconds = int(horizon), float(step_seconds)
        self.max_drift, self.latency = float(max_drift), float(latency)
        self.fee_bps, self.risk_aversion = float(fee_bps), float(risk_aversion)
        self.warmup_seconds = float(warmup_seconds)
        self.quantity_range = (int(quantity_range[0]), int(quantity_range[1]))
        self.tick_size, self.start_price = float(tick_size), int(start_price)
        self.n_warm = int(self.warmup_seconds / self.step_seconds)
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.observation_space = spaces.Box(OBS_LOW, OBS_HIGH, dtype=np.float32)
        self.cfg = self.kernel_config()
        self.preset_params = preset_table(self.flow_params)
        if self.replay_data is None:
            self.book = OrderBook(index_background=False)
            self._replay = empty_replay(1)
        else:
            levels = self.replay_data.price_levels
            self.book = OrderBook(price_levels=levels, index_background=False)
            self._replay = self.replay_data.rows(1)
        self.episodes = 0  # resets so far: lets policies cache per-episode estimates
        # Pre-trade hook (set by ComplianceWrapper): pre_trade(messages, env) -> messages sees
        # every new order and modify before the book does and may drop or shrink them; cancels
        # always go through, so the env never loses track of a resting order.
        self.pre_trade = None
        self.compliance_violations = 0
        # the episode lives in one-row arrays, stepped by the vector env's kernel (row 0)
        self._trades = np.zeros((1, TRADE_ROOM), dtype=k.TRADE_DTYPE)
        self._flow = FlowState(
            rng=np.zeros((1, 4), dtype=np.uint64),
            params=np.zeros((1, N_PARAMS)),
            fstate=np.zeros((1, N_FSTATE)),
            istate=np.zeros((1, N_ISTATE), dtype=np.int64),
            q_bid=np.zeros((1, MAX_DEPTH), dtype=np.int64),
            q_ask=np.zeros((1, MAX_DEPTH), dtype=np.int64),
        )
        self._ep = new_episode(1, self.n_warm)
        self._ei, self._ef = self._ep.ei, self._ep.ef
        self._info_base: dict[str, Any] = {}
        self._started = False
        self._bind()

    def kernel_config(self) -> np.ndarray:
        """The settings the step kernel reads (``layout.CFG``); None kwargs mean "draw"."""
        cfg = np.zeros(len(CFG))
        cfg[CFG.horizon], cfg[CFG.step_seconds] = self.horizon, self.step_seconds
        cfg[CFG.latency], cfg[CFG.fee_bps] = self.latency, self.fee_bps
        cfg[CFG.risk_aversion], cfg[CFG.n_warm] = self.risk_aversion, self.n_warm
        cfg[CFG.start_price] = self.start_price
        cfg[CFG.side] = _SIDES[self.side_arg] if self.side_arg else 0
        cfg[CFG.quantity] = self.quantity_arg or 0
        cfg[CFG.qty_lo], cfg[CFG.qty_hi] = self.quantity_range
        cfg[CFG.preset] = PRESET_NAMES.index(self.preset_arg) if self.preset_arg else -1
        if self.flow_params is not None:
            cfg[CFG.preset] = 0  # the table's one row
        cfg[CFG.urgency] = -1.0 if self.urgency_arg is None else self.urgency_arg
        cfg[CFG.max_drift] = self.max_drift
        return cfg

    def _bind(self) -> None:
        """The kernel's arguments: one-row views of the book's arrays (rebound when it grows)."""
        b = self.book
        self._book_arrays = b.state
        self._msgs = self._ep.msgs[0]  # the batch being sent (read by compliance for its cancels)
        book = Book(*(a[None] for a in b.state))
        self._hooked = self.pre_trade is not None
        state = (book, self._trades, self._flow, self._ep, self.preset_params, self.cfg)
        self._args = (0, *state, False, self._hooked, self._replay)
        self._kernel = compiled_entry(step_env_nb, self._args)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for view in ("_args", "_msgs", "_book_arrays", "_kernel"):  # views would pickle as copies
            state.pop(view, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind()

    def attach_compliance(self, engine: Any) -> None:
        """Run `engine`'s checks in the pre-trade hook (ComplianceWrapper's adapter protocol)."""
        if self.pre_trade is not None:
            raise ValueError("this Execution-v0 already has a pre-trade hook (wrapped twice?)")
        self.pre_trade = engine.pre_trade

    # ------------------------------------------------------------------ running the kernel
    def _run(self) -> None:
        """Run the step kernel until the phase is done: grow the book when it asks for room,
        run the pre-trade hook when a batch waits for it."""
        if (self.pre_trade is not None) != self._hooked or self._stale():
            self._bind()
        status = self._kernel(*self._args)
        if status != STATUS.done:
            run_to_done(self._call, self._make_room, status)

    def _call(self) -> int:
        return self._kernel(*self._args)

    def _make_room(self, status: int) -> None:
        ei, b = self._ei[0], self.book
        if status == STATUS.need_hook:
            try:
                self._hook()
            except BaseException:  # the batch never reaches the book; the step is abandoned
                ei[EI.hooked] = ei[EI.n_msgs] = 0
                ei[EI.phase] = PHASE.idle
                raise
        elif status == STATUS.stuck:
            raise RuntimeError("the book stayed empty for an hour of simulated time")
        elif status == STATUS.need_slot:  # one more order than the pool holds: it doubles
            b.reserve(b.orders.shape[0] + 1 - int(b.meta[k.N_LIVE]))
        elif status == STATUS.need_trade_room:
            need = trade_room_needed(ei, b.meta)
            self._trades = grow_trades(self._trades, self._trades.shape[1], need)
            self._bind()
        else:
            b.reserve(0, *needed_prices(ei, b.meta, self._flow.istate[0]))
        if self._stale():  # the book grew (or a hook's direct book call replaced arrays)
            self._bind()

    def _stale(self) -> bool:
        """Whether the book replaced its arrays since ``_bind``: growing the pool replaces
        `orders`, widening the window `levels`, a restore or clear both."""
        b, bound = self.book, self._book_arrays
        return b.orders is not bound.orders or b.levels is not bound.levels

    def _hook(self) -> None:
        """The pre-trade hook rewrites the waiting batch's new orders and modifies (the kernel
        kept a copy of the batch to check the hook against)."""
        ei = self._ei[0]
        first, n = int(ei[EI.hook_first]), int(ei[EI.n_msgs])
        allowed = self.pre_trade(self._msgs[first:n], self)
        if (
            not isinstance(allowed, np.ndarray)
            or allowed.dtype != k.MESSAGE_DTYPE
            or allowed.ndim != 1
        ):
            raise TypeError("pre_trade must return a one-dimensional MESSAGE_DTYPE array")
        bad = orders.accept_hooked_nb(self._ep.msgs, self._ei, allowed)
        if bad >= 0:
            proposed = self._msgs[MSG_SLOTS + first : MSG_SLOTS + n]
            raise ValueError(
                "pre_trade may only drop, shrink or make more passive the proposed "
                f"orders; got {allowed[bad]} for {proposed}"
            )

    # ------------------------------------------------------------------ episode set-up
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episodes += 1
        self._ep.nx_raw[0] = self.np_random.bit_generator.random_raw(N_RAW)
        self._ei[0, EI.phase] = PHASE.reset
        self._run()
        self.compliance_violations = 0
        self._started = True
        rows = episode_infos(
            self._ei, self._ef, self.tick_size, np.zeros(1, dtype=bool), calibrated=self.calibrated
        )
        self._info_base = {key: v[0].item() for key, v in rows.items()}
        return self._ep.obs[0].copy(), self._info()

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
        row = self._ep.actions[0]
        row[0], row[1], row[2] = a0, a1, a2
        self._ei[0, EI.phase] = PHASE.decide
        self._run()
        terminated = self._ei.item(0, EI.terminated) == 1
        info = self._summary() if terminated else self._info()
        return self._ep.obs[0].copy(), self._ef.item(0, EF.reward), terminated, False, info

    def _act(self, order_type: int, fraction: float, replace: bool, ref_touch: int) -> None:
        """Send the messages of one decoded action now (no flow runs): what a step does first."""
        ei, ef = self._ei, self._ef
        ei[0, EI.order_type], ef[0, EF.fraction] = order_type, fraction
        ei[0, EI.replace], ei[0, EI.ref_touch] = int(replace), ref_touch
        ei[0, EI.act_only], ei[0, EI.phase] = 1, PHASE.act
        try:
            self._run()
        finally:
            ei[0, EI.act_only] = 0

    # ------------------------------------------------------------------ episode state
    side = _column("_ei", EI.side, int, "+1 buy, -1 sell")
    quantity = _column("_ei", EI.qty, int, "parent order, lots")
    remaining = _column("_ei", EI.remaining, int, "lots left")
    t = _column("_ei", EI.t, int, "decisions taken")
    own_id = _column("_ei", EI.own_id, int, "resting child's id")
    n_orders = _column("_ei", EI.n_orders, int)
    next_id = _column("_ei", EI.next_id, int, "id of the agent's next order")
    cash_ticks = _column("_ei", EI.cash, int, "Σ fill price·qty")
    market_qty = _column("_ei", EI.market_qty, int, "since arrival")
    filled_before_end = _column("_ei", EI.filled_end, int)
    urgency = _column("_ef", EF.urgency, float)
    shortfall = _column("_ef", EF.shortfall, float, "running, bps")
    arrival_ticks = _column("_ef", EF.arrival, float, "arrival mid")
    vol_bps = _column("_ef", EF.vol_bps, float, "warm-up, per step")
    touch_depth = _column("_ef", EF.touch_depth, float, "warm-up")
    step_volume = _column("_ef", EF.step_volume, float, "warm-up")
    fees_ticks = _column("_ef", EF.fees, float)
    market_value = _column("_ef", EF.market_value, float)
    prev_mid = _column("_ef", EF.prev_mid, float, "last mid, ticks")
    calibrated = property(lambda self: self.flow_params is not None, doc="runs on flow=")

    @property
    def preset(self) -> str:
        """The episode's flow preset ("replay" on ``replay=``, "calibrated" on ``flow=``)."""
        if self.replay_data is not None:
            return "replay"
        return "calibrated" if self.calibrated else PRESET_NAMES[int(self._ei[0, EI.preset])]

    replay_start_time = _column("_ef", EF.start_time, float, "replay: s after midnight")
    replay_consumed = _column("_ei", EI.consumed_msgs, int, "replay: messages on taken liquidity")
    replay_halted = _column("_ei", EI.halt, int, "replay: 0 open, 1 halted, 2 quoting only")
    replay_rejected = _column("_ei", EI.rejected, int, "replay: orders refused in halts")

    def _info(self) -> dict[str, Any]:
        """A step's info before the end: the episode's fixed entries (set at reset), the
        running ones updated."""
        info = self._info_base.copy()
        item = self._ei.item  # a Python int, without a numpy scalar on the way
        info["remaining"] = item(0, EI.remaining)
        info["running_shortfall_bps"] = self._ef.item(0, EF.shortfall)
        info["n_orders"] = item(0, EI.n_orders)
        info["compliance_violations"] = self.compliance_violations
        info["replay_consumed"] = item(0, EI.consumed_msgs)
        info["replay_halted"] = item(0, EI.halt)
        info["replay_rejected"] = item(0, EI.rejected)
        return info

    def _summary(self) -> dict[str, Any]:
        rows = episode_infos(
            self._ei,
            self._ef,
            self.tick_size,
            np.ones(1, dtype=bool),
            self.compliance_violations,
            calibrated=self.calibrated,
        )
        return {key: v[0].item() for key, v in rows.items()}

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


ExecutionEnv.__doc__ = ExecutionEnv.__doc__.replace(
    "{obs_table}", textwrap.indent(obs_table(), "    ").lstrip()
).replace("{info_table}", textwrap.indent(info_table(), "    ").lstrip())


def _check_kwargs(kw: dict[str, Any], render_modes: list[str]) -> None:
    """TypeError or ValueError naming the first invalid ``ExecutionEnv`` argument."""
    side, preset, quantity, urgency = kw["side"], kw["preset"], kw["quantity"], kw["urgency"]
    if side is not None and side not in _SIDES:
        raise ValueError(f"side must be 'buy', 'sell' or None, got {side!r}")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)} or None, got {preset!r}")
    check_number("horizon", kw["horizon"], lo=1, integer=True)
    check_number("step_seconds", kw["step_seconds"], lo=0.0, open_lo=True)
    if urgency is not None:
        check_number("urgency", urgency, lo=0.0, hi=1.0)
    check_number("max_drift", kw["max_drift"], lo=0.0, hi=0.9)
    check_number("latency", kw["latency"], lo=0.0, hi=kw["step_seconds"], open_hi=True)
    check_number("fee_bps", kw["fee_bps"], lo=0.0)
    check_number("risk_aversion", kw["risk_aversion"], lo=0.0)
    check_number("warmup_seconds", kw["warmup_seconds"], lo=kw["step_seconds"])
    if kw["tick_size"] is not None:
        check_number("tick_size", kw["tick_size"], lo=0.0, open_lo=True)
    check_number("start_price", kw["start_price"], lo=100, open_lo=True, integer=True)
    qrange = kw["quantity_range"]
    if not isinstance(qrange, (tuple, list)) or len(qrange) != 2:
        raise TypeError(f"quantity_range must be a (low, high) pair of ints, got {qrange!r}")
    check_number("quantity_range low", qrange[0], lo=1, integer=True)
    check_number("quantity_range high", qrange[1], lo=qrange[0], integer=True)
    if quantity is not None:
        check_number("quantity", quantity, lo=1, integer=True)
    if kw["render_mode"] is not None and kw["render_mode"] not in render_modes:
        raise ValueError(
            f"render_mode must be None, 'ansi' or 'rgb_array', got {kw['render_mode']!r}"
        )
    for name in ("replay_orderbook", "replay_window"):
        if kw["replay"] is None and kw[name] is not None:
            raise ValueError(f"{name} needs replay= (the message file)")
    if kw["replay"] is not None:
        return  # the tape, not a preset, bounds what can fill (replay_setup checks the rest)
    seconds = kw["warmup_seconds"] + kw["horizon"] * kw["step_seconds"] + MAX_COMPLETION_SECONDS
    flows = [kw["flow"]] if kw["flow"] is not None else [preset] if preset else list(PRESETS)
    most = fillable_bound(seconds, flows)
    for name, lots in (("quantity", quantity), ("quantity_range high", qrange[1])):
        if lots is not None and lots > most:
            raise ValueError(
                f"{name}={lots!r} is more than the book can fill: at most {most} lots reach "
                f"one side in the episode's {seconds:g} s (warm-up, horizon and the forced "
                f"completion's {MAX_COMPLETION_SECONDS} s), even at burst rates"
            )


def fillable_bound(seconds: float, presets: list[str | FlowParams]) -> int:
    """More lots than an episode's book can ever fill on one side: the seeded depth plus the
    expected volume of limit orders the flow adds to that side in `seconds` (warm-up, every
    decision and the forced completion's whole give-up time), as if every second were a burst
    second, for the most liquid of `presets` (names or ``FlowParams``). Background market orders and cancels only take
    from that volume, so a parent order above it runs the forced completion out of time."""
    most = 0.0
    for name in presets:
        p = PRESETS[name] if isinstance(name, str) else name
        seeded = p.initial_depth * MAX_DEPTH * p.limit_size
        added = sum(p.limit_rates) * p.limit_size * p.burst_scale * seconds
        most = max(most, seeded + added)
    return int(most)


def needed_prices(
    ei_row: np.ndarray, meta_row: np.ndarray, istate_row: np.ndarray
) -> tuple[int, int]:
    """The prices a book that stopped with ``need_window`` must cover: around its quotes while
    the flow runs, else the limit prices of the agent's batch."""
    if ei_row[EI.phase] in FLOW_PHASES:
        return flow_price_span(meta_row, istate_row)
    return int(ei_row[EI.need_lo]), int(ei_row[EI.need_hi])


def trade_room_needed(ei_row: np.ndarray, meta_row: np.ndarray) -> int:
    """Trade rows a book that stopped with ``need_trade_room`` needs: what its batch already
    produced plus what one more message can."""
    return int(ei_row[EI.n_trades]) + int(k.trade_room_needed_nb(meta_row))


# kwargs that shape the simulated flow, and their defaults: replay has no flow to shape
_SIMULATOR_ONLY = {"preset": None, "urgency": None, "max_drift": 0.3, "start_price": 10_000}


def replay_setup(kw: dict[str, Any]) -> ReplayData:
    """The tape ``replay=`` names, prepared for episodes of these kwargs; ValueError naming a
    simulator-only kwarg given with it."""
    for name, default in _SIMULATOR_ONLY.items():
        if kw[name] != default:
            raise ValueError(
                f"{name}={kw[name]!r} shapes the simulated flow and means nothing with replay=: "
                f"leave it at {default!r}"
            )
    tape = load_tape(kw["replay"], kw["replay_orderbook"])
    window = None if kw["replay_window"] is None else check_window(kw["replay_window"])
    n_warm = int(kw["warmup_seconds"] / kw["step_seconds"])
    return prepare(tape, (n_warm + kw["horizon"]) * kw["step_seconds"], window)
