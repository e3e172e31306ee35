"""Background order flow: the Cont–Stoikov–Talreja (2010) queueing model, run in numba.

Limit orders arrive at rate ``limit_rates[i-1]`` per side at ``i`` ticks from the opposite best
quote, market orders at ``market_rate`` per side, and each resting order at distance ``i`` is
cancelled at rate ``cancel_rates[i-1]`` (so cancellations are proportional to queue size).
Optional extras the execution env uses:

- **Hawkes** self-excitation of market orders (``hawkes_alpha``, ``hawkes_beta``): each market
  order raises its side's rate by alpha, decaying at rate beta — bursts and fat tails.
- **Activity bursts** (``burst_scale``, ``burst_every``, ``burst_seconds``): a two-state
  Markov switch that speeds every rate up by ``burst_scale`` while it is on, so volatility
  clusters and minute returns are fat-tailed, as in real markets.
- **Informed drift** (``drift`` in [-1, 1]): buy market orders arrive at ``(1 + drift) * rate``
  and sells at ``(1 - drift) * rate``, so the price trends; its sign and strength are the
  momentum and urgency an execution agent faces.

Events are simulated exactly (Gillespie) with rates held between events, every random draw
from one xoshiro stream seeded by the caller's ``np.random.Generator``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.book import OrderBook, grow_trades
from trendgym.envs.lob.kernels import inline_kernel, kernel
from trendgym.envs.lob.rng import exponential_nb, seed_state, uniform_nb

MAX_DEPTH = 10  # distances 1..MAX_DEPTH ticks from the opposite best get their own rates
BACKGROUND = 0  # owner tag of the flow's orders
_FIRST_ID = 1 << 40  # flow ids start here, leaving small ids to other participants

# params layout (float64 vector handed to the kernel)
P_LAM, P_THETA = 0, MAX_DEPTH
P_THETA_FAR, P_MU, P_DRIFT = 2 * MAX_DEPTH, 2 * MAX_DEPTH + 1, 2 * MAX_DEPTH + 2
P_ALPHA, P_BETA = 2 * MAX_DEPTH + 3, 2 * MAX_DEPTH + 4
P_LIMIT_SIZE, P_MARKET_SIZE, P_MARKET_TAIL = 2 * MAX_DEPTH + 5, 2 * MAX_DEPTH + 6, 2 * MAX_DEPTH + 7
P_BURST_SCALE, P_BURST_ON, P_BURST_OFF = 2 * MAX_DEPTH + 8, 2 * MAX_DEPTH + 9, 2 * MAX_DEPTH + 10
N_PARAMS = 2 * MAX_DEPTH + 11
# float state: clock (s), Hawkes excitation per side, order-flow imbalance accumulator, burst
# on/off, traded quantity and tick value accumulators (for the market's VWAP)
F_TIME, F_EXC_BUY, F_EXC_SELL, F_OFI, F_BURST, F_TRADED_QTY, F_TRADED_VALUE = range(7)
N_FSTATE = 7
# int state: next order id, last known quotes (used while a side is empty), previous top of book
I_NEXT_ID, I_LAST_BID, I_LAST_ASK, I_PREV_BID, I_PREV_BIDQ, I_PREV_ASK, I_PREV_ASKQ = range(7)
N_ISTATE = 7
DONE, NEED_WINDOW, NEED_SLOT, NEED_TRADE_ROOM = 0, 1, 2, 3


@dataclass(frozen=True)
class FlowParams:
    """Rates are per second. Defaults: the calibrated values of Cont, Stoikov & Talreja (2010),
    Table 2 (limit arrivals k/i^a with k=1.92, a=0.52; their five cancel rates; mu=0.94), with
    sizes in lots of a few units instead of the paper's unit orders."""

    limit_rates: tuple[float, ...] = tuple(1.92 / i**0.52 for i in range(1, MAX_DEPTH + 1))
    cancel_rates: tuple[float, ...] = (0.71, 0.81, 0.68, 0.56, 0.47, 0.47, 0.47, 0.47, 0.47, 0.47)
    cancel_rate_far: float = 0.47
    market_rate: float = 0.94
    drift: float = 0.0
    hawkes_alpha: float = 0.0
    hawkes_beta: float = 1.0
    limit_size: float = 5.0
    market_size: float = 5.0
    market_size_tail: float = 0.0  # Pareto tail index of market sizes; 0 = geometric sizes
    burst_scale: float = 1.0  # rate multiplier while a burst is on; 1 = no bursts
    burst_every: float = 600.0  # mean seconds between bursts
    burst_seconds: float = 60.0  # mean burst duration
    initial_depth: int = 4  # resting orders per level per side when a book is seeded

    def __post_init__(self) -> None:
        for name in ("limit_rates", "cancel_rates"):
            rates = getattr(self, name)
            if not 1 <= len(rates) <= MAX_DEPTH or any(not np.isfinite(r) or r < 0 for r in rates):
                raise ValueError(f"{name} must be 1..{MAX_DEPTH} finite rates >= 0, got {rates}")
        checks = {
            "cancel_rate_far": self.cancel_rate_far > 0,
            "market_rate": self.market_rate >= 0,
            "drift": -1.0 <= self.drift <= 1.0,
            "hawkes_alpha": self.hawkes_alpha >= 0 and self.hawkes_alpha < self.hawkes_beta,
            "hawkes_beta": self.hawkes_beta > 0,
            "limit_size": self.limit_size >= 1,
            "market_size": self.market_size >= 1,
            "market_size_tail": self.market_size_tail == 0 or self.market_size_tail > 1,
            "burst_scale": self.burst_scale >= 1,
            "burst_every": self.burst_every > 0,
            "burst_seconds": self.burst_seconds > 0,
            "initial_depth": self.initial_depth >= 0,
        }
        for name, ok in checks.items():
            if not ok or not np.isfinite(float(getattr(self, name))):
                raise ValueError(
                    f"invalid flow parameter {name}={getattr(self, name)!r}"
                    + (
                        " (Hawkes needs 0 <= alpha < beta to stay stationary)"
                        if "hawkes" in name
                        else ""
                    )
                )

    def to_array(self) -> np.ndarray:
        p = np.zeros(N_PARAMS)
        lam = np.asarray(self.limit_rates, dtype=float)
        theta = np.asarray(self.cancel_rates, dtype=float)
        p[P_LAM : P_LAM + lam.size] = lam
        p[P_THETA : P_THETA + MAX_DEPTH] = self.cancel_rate_far  # distances past the table
        p[P_THETA : P_THETA + theta.size] = theta
        bursts = self.burst_scale > 1
        p[
            [
                P_THETA_FAR,
                P_MU,
                P_DRIFT,
                P_ALPHA,
                P_BETA,
                P_LIMIT_SIZE,
                P_MARKET_SIZE,
                P_MARKET_TAIL,
                P_BURST_SCALE,
                P_BURST_ON,
                P_BURST_OFF,
            ]
        ] = [
            self.cancel_rate_far,
            self.market_rate,
            self.drift,
            self.hawkes_alpha,
            self.hawkes_beta,
            self.limit_size,
            self.market_size,
            self.market_size_tail,
            self.burst_scale,
            1.0 / self.burst_every if bursts else 0.0,
            1.0 / self.burst_seconds,
        ]
        return p

    def as_dict(self) -> dict:
        return asdict(self)


_CST = FlowParams()
PRESETS: dict[str, FlowParams] = {
    # CST with mild clustering: short bursts of activity and self-exciting market orders
    "calm": replace(_CST, hawkes_alpha=0.3, burst_scale=2.5, burst_every=600.0, burst_seconds=60.0),
    # more and burstier market orders, faster cancellation: wider swings, thinner touch
    "volatile": replace(
        _CST,
        market_rate=1.6,
        hawkes_alpha=0.6,
        hawkes_beta=1.0,
        market_size=7.0,
        cancel_rates=tuple(1.3 * r for r in _CST.cancel_rates),
        burst_scale=3.0,
        burst_every=360.0,
        burst_seconds=90.0,
    ),
    # informed buyers: the price drifts up; an execution env flips the sign to fit the side
    "trending": replace(
        _CST,
        drift=0.25,
        hawkes_alpha=0.3,
        hawkes_beta=1.0,
        burst_scale=2.5,
        burst_every=600.0,
        burst_seconds=60.0,
    ),
    # wider spread (little near-touch liquidity), burstier, thinner book, heavy-tailed sizes
    "crypto": replace(
        _CST,
        limit_rates=tuple(0.9 / i**0.15 for i in range(1, MAX_DEPTH + 1)),
        cancel_rates=tuple(1.2 for _ in range(MAX_DEPTH)),
        cancel_rate_far=1.2,
        market_rate=1.2,
        hawkes_alpha=0.75,
        hawkes_beta=1.0,
        market_size_tail=2.2,
        initial_depth=2,
        burst_scale=4.0,
        burst_every=300.0,
        burst_seconds=60.0,
    ),
}


def flow_params(preset: str = "calm", **overrides) -> FlowParams:
    """The named preset's parameters, with keyword overrides (e.g. ``drift=-0.3``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown flow preset {preset!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[preset], **overrides)


# ------------------------------------------------------------------------------ kernels
@inline_kernel
def _log_q_nb(mean):
    """log(1 - 1/mean): the constant of geometric sizes with that mean (0 for mean <= 1)."""
    return np.log(1.0 - 1.0 / mean) if mean > 1.0 else 0.0


@inline_kernel
def _geometric_nb(rng, log_q):
    """A geometric size >= 1 whose mean m gives ``log_q = log(1 - 1/m)``."""
    if log_q >= 0.0:
        return 1
    return 1 + int(np.log(1.0 - uniform_nb(rng)) / log_q)


@inline_kernel
def _market_size_nb(rng, mean, log_q, tail):
    if tail <= 0.0:
        return _geometric_nb(rng, log_q)
    scale = mean * (tail - 1.0) / tail  # Pareto with this mean
    size = scale * (1.0 - uniform_nb(rng)) ** (-1.0 / tail)
    return max(1, min(int(size), int(100 * mean)))


@inline_kernel
def _side_queues_nb(levels, base, ref, side, params, out_q):
    """Orders at distances 1..MAX_DEPTH from the opposite reference quote on `side`, and
    their total cancellation rate (the far remainder uses the far rate)."""
    rate = 0.0
    near = 0
    for i in range(MAX_DEPTH):
        lv = (ref - 1 - i if side == k.BUY else ref + 1 + i) - base
        q = levels[lv].count if 0 <= lv < levels.shape[0] else 0
        out_q[i] = q
        near += q
        rate += params[P_THETA + i] * q
    return rate, near


@inline_kernel
def _pick_order_nb(orders, levels, base, price, rng):
    """A uniformly chosen resting order at `price` (walks the FIFO)."""
    lv = price - base
    j = int(uniform_nb(rng) * levels[lv].count)
    slot = levels[lv].head
    for _ in range(j):
        slot = orders[slot].next
    return slot


@inline_kernel
def _top_qty_nb(levels, meta, side):
    p = meta[k.BEST_BID] if side == k.BUY else meta[k.BEST_ASK]
    return (p, levels[p - meta[k.BASE]].qty) if p > 0 else (0, 0)


@kernel
def flow_run_nb(
    orders,
    levels,
    keys,
    slots,
    meta,
    owner_stats,
    trades,
    n_trades,
    rng,
    params,
    fstate,
    istate,
    t_end,
    out_msgs,
    q_bid,
    q_ask,
):
    """Simulate background events until the clock passes `t_end`.

    Returns (n_trades, status, n_events): DONE, or NEED_WINDOW / NEED_SLOT / NEED_TRADE_ROOM
    when the caller must grow the book or the trade buffer before continuing (checked before any random draw, so the
    trajectory never depends on array sizes). Each event is written to `out_msgs` when it
    has room (pass an empty array not to record). Keeps the book uncrossed: limits are placed
    strictly behind the opposite best. `q_bid`/`q_ask` are scratch (MAX_DEPTH,) int64 arrays."""
    base = meta[k.BASE]
    n_lv = levels.shape[0]
    lam_total = 0.0
    for i in range(MAX_DEPTH):
        lam_total += params[P_LAM + i]
    mu, drift = params[P_MU], params[P_DRIFT]
    alpha, beta = params[P_ALPHA], params[P_BETA]
    log_q_limit, log_q_market = _log_q_nb(params[P_LIMIT_SIZE]), _log_q_nb(params[P_MARKET_SIZE])
    n_events = 0
    record = out_msgs.shape[0]
    while True:
        if meta[k.FREE_HEAD] < 0:
            return n_trades, NEED_SLOT, n_events
        if trades.shape[0] - n_trades < k.trade_room_needed_nb(meta):
            return n_trades, NEED_TRADE_ROOM, n_events
        bid = meta[k.BEST_BID] if meta[k.BEST_BID] > 0 else istate[I_LAST_BID]
        ask = meta[k.BEST_ASK] if meta[k.BEST_ASK] > 0 else istate[I_LAST_ASK]
        # any new order lands in [ask - MAX_DEPTH, bid + MAX_DEPTH]; far cancels walk further
        if max(1, ask - MAX_DEPTH - 1) < base or bid + MAX_DEPTH + 1 - base >= n_lv:
            return n_trades, NEED_WINDOW, n_events
        c_bid, near_bid = _side_queues_nb(levels, base, ask, k.BUY, params, q_bid)
        c_ask, near_ask = _side_queues_nb(levels, base, bid, k.SELL, params, q_ask)
        far_bid = meta[k.N_BID_ORDERS] - near_bid
        far_ask = meta[k.N_ASK_ORDERS] - near_ask
        c_bid += params[P_THETA_FAR] * far_bid
        c_ask += params[P_THETA_FAR] * far_ask
        # a burst speeds up the base rates; Hawkes excitation stays in real time (stationary)
        speed = params[P_BURST_SCALE] if fstate[F_BURST] > 0.0 else 1.0
        switch = params[P_BURST_OFF] if fstate[F_BURST] > 0.0 else params[P_BURST_ON]
        lim = speed * lam_total  # per side
        m_buy = max(0.0, speed * mu * (1.0 + drift) + fstate[F_EXC_BUY])
        m_sell = max(0.0, speed * mu * (1.0 - drift) + fstate[F_EXC_SELL])
        c_bid *= speed
        c_ask *= speed
        total = 2.0 * lim + m_buy + m_sell + c_bid + c_ask + switch
        dt = exponential_nb(rng) / total
        t = fstate[F_TIME] + dt
        if t > t_end:  # memoryless: the unrealised event is simply not drawn again
            if alpha > 0.0:
                decay = np.exp(-beta * (t_end - fstate[F_TIME]))
                fstate[F_EXC_BUY] *= decay
                fstate[F_EXC_SELL] *= decay
            fstate[F_TIME] = t_end
            return n_trades, DONE, n_events
        if alpha > 0.0:
            decay = np.exp(-beta * dt)
            fstate[F_EXC_BUY] *= decay
            fstate[F_EXC_SELL] *= decay
        fstate[F_TIME] = t
        u = uniform_nb(rng) * total
        if u >= total - switch:  # a burst starts or ends; no message
            fstate[F_BURST] = 1.0 - fstate[F_BURST]
            continue
        kind, side, price, qty, oid = k.LIMIT, k.BUY, 0, 0, 0
        n_before = n_trades
        if u < 2.0 * lim:  # limit arrival
            side = k.BUY if u < lim else k.SELL
            v = (u if side == k.BUY else u - lim) / speed
            i = 0
            acc = params[P_LAM]
            while acc < v and i < MAX_DEPTH - 1:
                i += 1
                acc += params[P_LAM + i]
            price = max(1, ask - 1 - i) if side == k.BUY else bid + 1 + i
            qty = _geometric_nb(rng, log_q_limit)
            oid = istate[I_NEXT_ID]
            istate[I_NEXT_ID] += 1
            n_trades = k.limit_nb(
                orders,
                levels,
                keys,
                slots,
                meta,
                owner_stats,
                trades,
                n_trades,
                oid,
                side,
                BACKGROUND,
                price,
                qty,
                0,
            )
        elif u < 2.0 * lim + m_buy + m_sell:  # market order
            kind = k.MARKET
            side = k.BUY if u < 2.0 * lim + m_buy else k.SELL
            qty = _market_size_nb(rng, params[P_MARKET_SIZE], log_q_market, params[P_MARKET_TAIL])
            oid = istate[I_NEXT_ID]
            istate[I_NEXT_ID] += 1
            meta[k.MARKET_QTY] += qty
            n_trades, left = k.match_nb(
                orders,
                levels,
                keys,
                slots,
                meta,
                owner_stats,
                trades,
                n_trades,
                oid,
                side,
                BACKGROUND,
                qty,
                0,
            )
            meta[k.DROPPED_QTY] += left
            if side == k.BUY:
                fstate[F_EXC_BUY] += alpha
            else:
                fstate[F_EXC_SELL] += alpha
        else:  # cancellation, proportional to queue sizes
            kind = k.CANCEL
            v = u - 2.0 * lim - m_buy - m_sell
            side = k.BUY if v < c_bid else k.SELL
            if side == k.SELL:
                v -= c_bid
            v /= speed
            q = q_bid if side == k.BUY else q_ask
            ref = ask if side == k.BUY else bid
            step = -1 if side == k.BUY else 1
            price = -1
            acc = 0.0
            for i in range(MAX_DEPTH):
                acc += params[P_THETA + i] * q[i]
                if v < acc:
                    price = ref + step * (1 + i)
                    break
            if price < 0:  # a far order: walk outward to the chosen one
                far = far_bid if side == k.BUY else far_ask
                target = int(uniform_nb(rng) * far)
                lv = ref + step * (1 + MAX_DEPTH) - base
                seen = 0
                while 0 <= lv < n_lv:
                    seen += levels[lv].count
                    if seen > target:
                        break
                    lv += step
                price = lv + base
            if 0 <= price - base < n_lv and levels[price - base].count > 0:
                slot = _pick_order_nb(orders, levels, base, price, rng)
                oid = orders[slot].id
                if orders[slot].owner == BACKGROUND:  # never cancels someone else's order
                    meta[k.CANCELLED_QTY] += k._remove_nb(orders, levels, keys, slots, meta, slot)
                else:
                    kind = -1
            else:
                kind = -1
        for j in range(n_before, n_trades):
            fstate[F_TRADED_QTY] += trades[j].qty
            fstate[F_TRADED_VALUE] += trades[j].qty * trades[j].price
        if kind >= 0:
            if n_events < record:
                m = out_msgs[n_events]
                m.kind, m.side, m.owner, m.price, m.qty, m.order_id, m.peak = (
                    kind,
                    side,
                    0,
                    price,
                    qty,
                    oid,
                    0,
                )
            meta[k.N_MESSAGES] += 1
            n_events += 1
        # remember quotes for an emptied side, and accumulate order-flow imbalance
        # (Cont, Kukanov & Stoikov 2014): bid-side inflow minus ask-side inflow at the touch
        pb, qb = _top_qty_nb(levels, meta, k.BUY)
        pa, qa = _top_qty_nb(levels, meta, k.SELL)
        if pb > 0:
            istate[I_LAST_BID] = pb
        if pa > 0:
            istate[I_LAST_ASK] = pa
        e = 0.0
        if pb >= istate[I_PREV_BID]:
            e += qb
        if pb <= istate[I_PREV_BID]:
            e -= istate[I_PREV_BIDQ]
        if pa <= istate[I_PREV_ASK] or istate[I_PREV_ASK] == 0:
            e -= qa
        if pa >= istate[I_PREV_ASK] and istate[I_PREV_ASK] > 0:
            e += istate[I_PREV_ASKQ]
        fstate[F_OFI] += e
        istate[I_PREV_BID], istate[I_PREV_BIDQ] = pb, qb
        istate[I_PREV_ASK], istate[I_PREV_ASKQ] = pa, qa


# ------------------------------------------------------------------------------ driver
@dataclass
class OrderFlow:
    """Drives background flow on `book`. ``run(seconds)`` advances the clock and returns the
    trades that happened (a view valid until the next call). ``take_ofi()`` returns the
    order-flow imbalance accumulated since it was last taken, ``take_volume()`` the traded
    quantity and value."""

    book: OrderBook
    params: FlowParams
    rng: np.random.Generator
    start_price: int = 10_000
    record: int = 0  # keep up to this many generated messages per run() in `messages`
    _state: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.params, FlowParams):
            raise TypeError(f"params must be FlowParams, got {type(self.params).__name__}")
        if self.start_price <= 2 * MAX_DEPTH:
            raise ValueError(
                f"start_price must exceed {2 * MAX_DEPTH} ticks, got {self.start_price}"
            )
        self.p = self.params.to_array()
        self.xrng = seed_state(self.rng)
        self.fstate = np.zeros(N_FSTATE)
        self.istate = np.zeros(N_ISTATE, dtype=np.int64)
        self.istate[I_NEXT_ID] = _FIRST_ID
        self.istate[I_LAST_BID] = self.start_price - 1
        self.istate[I_LAST_ASK] = self.start_price + 1
        self.messages = np.zeros(self.record, dtype=k.MESSAGE_DTYPE)
        self.n_messages = 0
        self._trades = np.empty(1024, dtype=k.TRADE_DTYPE)
        self._q_bid = np.zeros(MAX_DEPTH, dtype=np.int64)
        self._q_ask = np.zeros(MAX_DEPTH, dtype=np.int64)

    @property
    def time(self) -> float:
        return float(self.fstate[F_TIME])

    def seed_book(self) -> np.ndarray:
        """Rest `initial_depth` orders at each of the first MAX_DEPTH levels on both sides."""
        d = self.params.initial_depth
        if d == 0:
            return np.empty(0, dtype=k.TRADE_DTYPE)
        n = 2 * MAX_DEPTH * d
        msgs = np.zeros(n, dtype=k.MESSAGE_DTYPE)
        dist = np.repeat(np.arange(1, MAX_DEPTH + 1), d)
        half = n // 2
        msgs["kind"] = k.LIMIT
        msgs["side"][:half], msgs["side"][half:] = k.BUY, k.SELL
        msgs["price"][:half] = self.start_price - dist
        msgs["price"][half:] = self.start_price + dist
        # geometric sizes, drawn from the flow's own stream
        log_q = _log_q_nb(self.p[P_LIMIT_SIZE])
        sizes = np.array([_geometric_nb(self.xrng, log_q) for _ in range(n)])
        msgs["qty"] = sizes
        msgs["order_id"] = np.arange(self.istate[I_NEXT_ID], self.istate[I_NEXT_ID] + n)
        self.istate[I_NEXT_ID] += n
        trades = self.book.process(msgs)
        for side, i_p, i_q in ((k.BUY, I_PREV_BID, I_PREV_BIDQ), (k.SELL, I_PREV_ASK, I_PREV_ASKQ)):
            top = self.book.depth(side, 1)
            self.istate[i_p], self.istate[i_q] = top[0] if len(top) else (0, 0)
        return trades

    def run(self, seconds: float) -> np.ndarray:
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        book = self.book
        t_end = self.fstate[F_TIME] + seconds
        n_trades = 0
        self.n_messages = 0
        while True:
            out = self.messages[self.n_messages :] if self.record else self.messages
            n_trades, status, n_ev = flow_run_nb(
                book.orders,
                book.levels,
                book.keys,
                book.slots,
                book.meta,
                book.owner_stats,
                self._trades,
                n_trades,
                self.xrng,
                self.p,
                self.fstate,
                self.istate,
                t_end,
                out,
                self._q_bid,
                self._q_ask,
            )
            self.n_messages = min(self.record, self.n_messages + n_ev)
            if status == DONE:
                return self._trades[:n_trades]
            if status == NEED_TRADE_ROOM:
                self._trades = grow_trades(
                    self._trades, n_trades, n_trades + k.trade_room_needed_nb(book.meta)
                )
            elif status == NEED_SLOT:
                book.reserve(book.orders.shape[0])  # double the pool
            else:  # NEED_WINDOW
                bid = book.best_bid() or int(self.istate[I_LAST_BID])
                ask = book.best_ask() or int(self.istate[I_LAST_ASK])
                book.reserve(0, min(bid, ask) - 4 * MAX_DEPTH, max(bid, ask) + 4 * MAX_DEPTH)

    def take_ofi(self) -> float:
        ofi = float(self.fstate[F_OFI])
        self.fstate[F_OFI] = 0.0
        return ofi

    def take_volume(self) -> tuple[float, float]:
        """(quantity, tick value) traded by the flow since last taken."""
        f = self.fstate
        out = (float(f[F_TRADED_QTY]), float(f[F_TRADED_VALUE]))
        f[F_TRADED_QTY] = f[F_TRADED_VALUE] = 0.0
        return out
