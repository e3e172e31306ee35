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
from one xoshiro stream seeded by the caller's ``np.random.Generator`` (waiting times and
sizes from an exact ziggurat exponential, see ``rng.py``). The kernel keeps the near queues'
counts and cancellation rates up to date event by event instead of rescanning the book per
event.

Speed of ``flow_run_nb``: the near queues (orders at distances 1..MAX_DEPTH) and their
cancellation rates are counted once per call and then updated event by event (a limit adds an
order, a cancel removes one); a side is recounted only when its reference quote moves or a
market order eats into it. The clock, Hawkes state and quotes stay in local variables until
the call returns. The event (kind and side) is one of six cases picked by counting thresholds
rather than by nested branches, and limits and cancels inline their book operation once per
side, so the side is a constant there. Its helpers are inlined (``inline_kernel``), so
splitting it into phases costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal, localcontext
from typing import NamedTuple

import numpy as np

from trendgym.envs.fastcall import compiled_entry
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.book import OrderBook, grow_trades
from trendgym.envs.lob.kernels import inline_kernel, kernel
from trendgym.envs.lob.layout import STATUS, FlowState, block_layout, layout
from trendgym.envs.lob.retry import run_to_done
from trendgym.envs.lob.rng import exponential_nb, seed_state, uniform_nb

MAX_DEPTH = 10  # distances 1..MAX_DEPTH ticks from the opposite best get their own rates
BACKGROUND = 0  # owner tag of the flow's orders
_FIRST_ID = 1 << 40  # flow ids start here, leaving small ids to other participants

# the float64 parameter vector handed to the kernel: per-distance limit arrival and cancel
# rates, then scalars
PARAM, N_PARAMS = block_layout(
    "FlowParam",
    {
        "lam": MAX_DEPTH,
        "theta": MAX_DEPTH,
        "theta_far": 1,
        "mu": 1,
        "drift": 1,
        "alpha": 1,
        "beta": 1,
        "limit_size": 1,
        "market_size": 1,
        "market_tail": 1,
        "burst_scale": 1,
        "burst_on": 1,
        "burst_off": 1,
    },
)
# float state: clock (s), Hawkes excitation per side, order-flow imbalance accumulator, burst
# on/off, traded quantity and tick value accumulators (for the market's VWAP); the near
# queues' cancellation rates carried from a stop to the resumed call; scratch for the
# cumulative limit rates over distances, refreshed by every call
FS, N_FSTATE = block_layout(
    "FlowFloat",
    {
        "time": 1,
        "exc_buy": 1,
        "exc_sell": 1,
        "ofi": 1,
        "burst": 1,
        "traded_qty": 1,
        "traded_value": 1,
        "near_rate_bid": 1,
        "near_rate_ask": 1,
        "limit_cum": MAX_DEPTH,
    },
)
# int state: next order id, last known quotes (used while a side is empty), previous top of
# book; whether the last call stopped early and the quotes its near queues were counted from
IS = layout(
    "FlowInt",
    "next_id last_bid last_ask prev_bid prev_bidq prev_ask prev_askq resume ref_bid ref_ask",
)
N_ISTATE = len(IS)


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
        p[PARAM.lam : PARAM.lam + lam.size] = lam
        p[PARAM.theta : PARAM.theta + MAX_DEPTH] = self.cancel_rate_far  # distances past the table
        p[PARAM.theta : PARAM.theta + theta.size] = theta
        bursts = self.burst_scale > 1
        scalars = {
            PARAM.theta_far: self.cancel_rate_far,
            PARAM.mu: self.market_rate,
            PARAM.drift: self.drift,
            PARAM.alpha: self.hawkes_alpha,
            PARAM.beta: self.hawkes_beta,
            PARAM.limit_size: self.limit_size,
            PARAM.market_size: self.market_size,
            PARAM.market_tail: self.market_size_tail,
            PARAM.burst_scale: self.burst_scale,
            PARAM.burst_on: 1.0 / self.burst_every if bursts else 0.0,
            PARAM.burst_off: 1.0 / self.burst_seconds,
        }
        p[list(scalars)] = list(scalars.values())
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
_EXP_BITS = 8  # table of 2^(j/256)


def _exp_constants() -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """Constants of `_exp_neg_nb`: 256/ln2; ln2/256 split into a high part whose product with
    any integer the kernel meets (|n| < 2^18) is exact, and the rest (Cody–Waite); 2^(j/256)
    for j < 256; 2^-m for m < 1023."""
    with localcontext() as ctx:
        ctx.prec = 40
        ln2 = Decimal(2).ln()
        step = ln2 / (1 << _EXP_BITS)
        hi = math.floor(float(step) * 2.0**43) / 2.0**43  # 35 significant bits
        lo = float(step - Decimal(hi))
        inv = float((1 << _EXP_BITS) / ln2)
        # correctly rounded: each entry's error adds to the result's
        frac = np.array([float((j * step).exp()) for j in range(1 << _EXP_BITS)])
    return inv, hi, lo, frac, np.ldexp(1.0, -np.arange(1023))


_EXP_INV_STEP, _EXP_STEP_HI, _EXP_STEP_LO, _EXP_FRAC, _EXP_POW2 = _exp_constants()
_ROUNDER = 1.5 * 2.0**52  # x + _ROUNDER - _ROUNDER rounds x (|x| < 2^51) to an integer


@inline_kernel
def _exp_neg_nb(x):
    """exp(x) for x <= 0, within a few ulp of the library's, inlined: the Hawkes decay lies on
    the chain of dependent operations from one event's rates to the next, so it is written
    for latency. x = n ln2/256 + r with |r| <= ln2/512; exp(x) = 2^(n/256) e^r, the power
    from two tables (their product is exact) and e^r from its degree-4 Taylor polynomial
    (truncation < 4e-17 relative) in Estrin's order."""
    if x < -708.0:  # 2^(n/256) would leave the normal range: the library exp
        return np.exp(x)
    nf = (x * _EXP_INV_STEP + _ROUNDER) - _ROUNDER
    n = int(nf)
    scale = _EXP_POW2[-(n >> _EXP_BITS)] * _EXP_FRAC[n & ((1 << _EXP_BITS) - 1)]
    r = (x - nf * _EXP_STEP_HI) - nf * _EXP_STEP_LO
    r2 = r * r
    return scale * ((1.0 + r) + r2 * ((0.5 + r * (1.0 / 6.0)) + r2 * (1.0 / 24.0)))


@inline_kernel
def _log_q_nb(mean):
    """log(1 - 1/mean): the constant of geometric sizes with that mean (0 for mean <= 1)."""
    return np.log(1.0 - 1.0 / mean) if mean > 1.0 else 0.0


@inline_kernel
def _geometric_nb(rng, log_q):
    """A geometric size >= 1 whose mean m gives ``log_q = log(1 - 1/m)``: 1 + floor(E / -log_q)
    for a unit exponential E, since P(floor(E / -log_q) >= j) = (1 - 1/m)^j."""
    if log_q >= 0.0:
        return 1
    return 1 + int(exponential_nb(rng) / -log_q)


@inline_kernel
def _market_size_nb(rng, mean, log_q, tail):
    if tail <= 0.0:
        return _geometric_nb(rng, log_q)
    scale = mean * (tail - 1.0) / tail  # Pareto with this mean: scale U^(-1/tail)
    size = scale * np.exp(exponential_nb(rng) / tail)  # U^(-1/tail) = e^(E/tail)
    return max(1, min(int(size), int(100 * mean)))


@inline_kernel
def _side_queues_nb(levels, base, ref, side, params, out_q):
    """Orders at distances 1..MAX_DEPTH from the opposite reference quote on `side`, and
    their total cancellation rate (the far remainder uses the far rate)."""
    step = -1 if side == k.BUY else 1
    first = ref + step - base  # level index of distance 1
    last = first + step * (MAX_DEPTH - 1)
    n_lv = levels.shape[0]
    # even and odd distances in two sums: half the chain of dependent additions
    rate_even = rate_odd = 0.0
    near = 0
    if 0 <= min(first, last) and max(first, last) < n_lv:  # all inside the window
        for i in range(0, MAX_DEPTH - 1, 2):
            a = levels[first + step * i].count
            b = levels[first + step * (i + 1)].count
            out_q[i], out_q[i + 1] = a, b
            near += a + b
            rate_even += params[PARAM.theta + i] * a
            rate_odd += params[PARAM.theta + i + 1] * b
        if MAX_DEPTH % 2:
            a = levels[last].count
            out_q[MAX_DEPTH - 1] = a
            near += a
            rate_even += params[PARAM.theta + MAX_DEPTH - 1] * a
        return rate_even + rate_odd, near
    for i in range(MAX_DEPTH):  # near the window's edge: levels outside it are empty
        lv = first + step * i
        q = levels[lv].count if 0 <= lv < n_lv else 0
        out_q[i] = q
        near += q
        if i % 2 == 0:
            rate_even += params[PARAM.theta + i] * q
        else:
            rate_odd += params[PARAM.theta + i] * q
    return rate_even + rate_odd, near


@inline_kernel
def _rescan_nb(levels, base, ref, side, params, q, resumed, rate_kept):
    """`_side_queues_nb` into `q`; when `resumed` and `q` still holds exactly these counts,
    the cancellation rate carried over from the interrupted call (`rate_kept`) is kept, so
    a stop for room never changes a trajectory (an incremental sum can differ from a fresh
    one in the last bit)."""
    same = True
    step = -1 if side == k.BUY else 1
    for i in range(MAX_DEPTH):
        lv = ref + step * (1 + i) - base
        same = same and q[i] == (levels[lv].count if 0 <= lv < levels.shape[0] else 0)
    rate, near = _side_queues_nb(levels, base, ref, side, params, q)
    return (rate_kept if resumed and same else rate), near


@inline_kernel
def _pick_order_nb(orders, levels, base, price, rng):
    """A uniformly chosen resting order at `price` (walks the FIFO)."""
    lv = price - base
    j = int(uniform_nb(rng) * levels[lv].count)
    slot = levels[lv].head
    nxt = orders[slot].next
    slot = nxt if j > 0 else slot  # the first step as a select: queues are mostly short
    for _ in range(1, j):
        slot = orders[slot].next
    return slot


@inline_kernel
def _top_qty_nb(levels, meta, side):
    p = meta[k.BEST_BID] if side == k.BUY else meta[k.BEST_ASK]
    return (p, levels[p - meta[k.BASE]].qty) if p > 0 else (0, 0)


@inline_kernel
def _limit_arrival_nb(book, trades, n_trades, rng, cum, side, v, ref, log_q, oid):
    """A limit order at a distance drawn from the limit rates (`v` uniform on [0, their
    sum), `cum` their cumulative sums) behind the opposite quote `ref`. Returns (n_trades,
    price, qty, distance index)."""
    i = 0  # the number of cumulative rates below v: a count, no unpredictable loop exit
    for j in range(MAX_DEPTH - 1):
        i += cum[j] < v
    price = max(1, ref - 1 - i) if side == k.BUY else ref + 1 + i
    qty = _geometric_nb(rng, log_q)
    n_trades = k.limit_nb(book, trades, n_trades, oid, side, BACKGROUND, price, qty, 0)
    return n_trades, price, qty, (ref - 1 - price if side == k.BUY else price - ref - 1)


@inline_kernel
def _cancel_arrival_nb(book, rng, params, side, v, ref, q, far):
    """Cancel one order on `side`, chosen in proportion to the per-distance cancel rates
    (`v` uniform on [0, the side's near + far rate)). Returns (kind, price, order id,
    distance index of a removed near order or -1); kind -1 when nothing was cancelled."""
    orders, levels, keys, slots, meta, _ = book
    base = meta[k.BASE]
    n_lv = levels.shape[0]
    step = -1 if side == k.BUY else 1
    # d: how many cumulative near rates are <= v. The cumulative sums go by pairs, which
    # shortens the chain of dependent additions (the result differs in the last bit at most)
    d = 0
    acc = 0.0
    for j in range(0, MAX_DEPTH - 1, 2):
        a = params[PARAM.theta + j] * q[j]
        b = params[PARAM.theta + j + 1] * q[j + 1]
        d += (acc + a) <= v
        acc += a + b
        d += acc <= v
    if MAX_DEPTH % 2:
        acc += params[PARAM.theta + MAX_DEPTH - 1] * q[MAX_DEPTH - 1]
        d += acc <= v
    price = ref + step * (1 + d)
    if d == MAX_DEPTH:  # a far order: walk outward to the chosen one
        d = -1
        target = int(uniform_nb(rng) * far)
        lv = ref + step * (1 + MAX_DEPTH) - base
        seen = 0
        while 0 <= lv < n_lv:
            seen += levels[lv].count
            if seen > target:
                break
            lv += step
        price = lv + base
    if not (0 <= price - base < n_lv and levels[price - base].count > 0):
        return -1, price, 0, -1
    slot = _pick_order_nb(orders, levels, base, price, rng)
    oid = orders[slot].id
    if orders[slot].owner != BACKGROUND:  # never cancels someone else's order
        return -1, price, oid, -1
    meta[k.CANCELLED_QTY] += k._remove_nb(orders, levels, keys, slots, meta, slot)
    return k.CANCEL, price, oid, d


class _Rates(NamedTuple):
    """The flow's parameters as one call of ``flow_run_nb`` uses them."""

    lam_total: float  # limit arrival rate per side, all distances
    lam_cum: np.ndarray  # cumulative limit rates over distances (a view of the flow's fstate)
    mu_buy: float  # market order rates before bursts and excitation
    mu_sell: float
    alpha: float  # Hawkes jump and decay
    beta: float
    theta_far: float
    burst_scale: float
    burst_on: float
    burst_off: float
    log_q_limit: float  # geometric size constants (``_log_q_nb``)
    log_q_market: float
    market_mean: float
    market_tail: float


@inline_kernel
def _rates_nb(params, fstate):
    """The call's ``_Rates``; refreshes the cumulative limit rates in `fstate`."""
    lam_total = 0.0
    for i in range(MAX_DEPTH):
        lam_total += params[PARAM.lam + i]
        fstate[FS.limit_cum + i] = lam_total
    mu, drift = params[PARAM.mu], params[PARAM.drift]
    # (excitation is never negative, so clamping these keeps every market rate >= 0)
    return _Rates(
        lam_total,
        fstate[FS.limit_cum : FS.limit_cum + MAX_DEPTH],
        max(0.0, mu * (1.0 + drift)),
        max(0.0, mu * (1.0 - drift)),
        params[PARAM.alpha],
        params[PARAM.beta],
        params[PARAM.theta_far],
        params[PARAM.burst_scale],
        params[PARAM.burst_on],
        params[PARAM.burst_off],
        _log_q_nb(params[PARAM.limit_size]),
        _log_q_nb(params[PARAM.market_size]),
        params[PARAM.market_size],
        params[PARAM.market_tail],
    )


@inline_kernel
def _room_nb(levels, meta, trades, n_trades, bid, ask):
    """``STATUS.done`` when the next event surely fits, else the room to grow first."""
    if meta[k.FREE_HEAD] < 0:
        return STATUS.need_slot
    if trades.shape[0] - n_trades < k.trade_room_needed_nb(meta):
        return STATUS.need_trade_room
    # any new order lands in [ask - MAX_DEPTH, bid + MAX_DEPTH]; far cancels walk further
    base = meta[k.BASE]
    if max(1, ask - MAX_DEPTH - 1) < base or bid + MAX_DEPTH + 1 - base >= levels.shape[0]:
        return STATUS.need_window
    return STATUS.done


@inline_kernel
def _event_rates_nb(r, burst, exc_buy, exc_sell, rate_b, rate_a, far_bid, far_ask):
    """This event's rates: (1 / speed, limit rate per side, market buy, market sell, cancel
    bid, cancel ask, total). A burst speeds up the base rates; Hawkes excitation stays in real
    time (stationary)."""
    speed = r.burst_scale if burst > 0.0 else 1.0
    inv_speed = 1.0 / r.burst_scale if burst > 0.0 else 1.0
    switch = r.burst_off if burst > 0.0 else r.burst_on
    lim = speed * r.lam_total  # per side
    m_buy = speed * r.mu_buy + exc_buy
    m_sell = speed * r.mu_sell + exc_sell
    c_bid = speed * (rate_b + r.theta_far * far_bid)
    c_ask = speed * (rate_a + r.theta_far * far_ask)
    # the excitation, which the previous event's decay has just produced, is added last
    total = (2.0 * lim + c_bid + c_ask + switch + speed * (r.mu_buy + r.mu_sell)) + (
        exc_buy + exc_sell
    )
    return inv_speed, lim, m_buy, m_sell, c_bid, c_ask, total


@inline_kernel
def _decay_nb(r, dt, exc_buy, exc_sell):
    """The Hawkes excitations after `dt` seconds."""
    if r.alpha > 0.0:
        decay = _exp_neg_nb(-r.beta * dt)
        exc_buy *= decay
        exc_sell *= decay
    return exc_buy, exc_sell


@inline_kernel
def _event_case_nb(u, lim, m_buy, m_sell, c_bid, c_ask):
    """Which event `u` (uniform on [0, total)) picks: the number of cumulative rates (limit
    buy, limit sell, market buy, market sell, cancel bid, cancel ask; then the burst switch)
    at or below it, counted rather than branched on; and where the cancels' rates start
    (market orders', bids')."""
    s_lim = 2.0 * lim
    s_mkt = s_lim + (m_buy + m_sell)
    s_bid = s_mkt + c_bid
    case = (
        (u >= lim)
        + (u >= s_lim)
        + (u >= s_lim + m_buy)
        + (u >= s_mkt)
        + (u >= s_bid)
        + (u >= s_bid + c_ask)
    )
    return case, s_mkt, s_bid


@inline_kernel
def _limit_event_nb(book, trades, n_trades, flow, r, side, v, ref, oid, near, rate):
    """A limit order on `side` (``_limit_arrival_nb``), counted in the side's near queues
    when it lands within MAX_DEPTH (it rests: limits never cross). Returns (n_trades, price,
    qty, near, rate)."""
    q = flow.q_bid if side == k.BUY else flow.q_ask
    n_trades, price, qty, d = _limit_arrival_nb(
        book, trades, n_trades, flow.rng, r.lam_cum, side, v, ref, r.log_q_limit, oid
    )
    if 0 <= d < MAX_DEPTH:
        q[d] += 1
        near += 1
        rate += flow.params[PARAM.theta + d]
    return n_trades, price, qty, near, rate


@inline_kernel
def _cancel_event_nb(book, flow, side, v, ref, far, near, rate):
    """A cancel on `side` (``_cancel_arrival_nb``), taken off the side's near queues when the
    order was near. Returns (kind, price, order id, near, rate)."""
    q = flow.q_bid if side == k.BUY else flow.q_ask
    kind, price, oid, d = _cancel_arrival_nb(book, flow.rng, flow.params, side, v, ref, q, far)
    if d >= 0:
        q[d] -= 1
        near -= 1
        rate -= flow.params[PARAM.theta + d]
    return kind, price, oid, near, rate


@inline_kernel
def _market_event_nb(book, trades, n_trades, rng, r, side, oid):
    """A market order on `side`, its size drawn; what the book cannot fill is dropped.
    Returns (n_trades, qty)."""
    meta = book.meta
    qty = _market_size_nb(rng, r.market_mean, r.log_q_market, r.market_tail)
    meta[k.MARKET_QTY] += qty
    n_trades, left = k.match_nb(book, trades, n_trades, oid, side, BACKGROUND, qty, 0)
    meta[k.DROPPED_QTY] += left
    return n_trades, qty


@inline_kernel
def _apply_event_nb(book, trades, n_trades, flow, r, case, pick, bid, ask, far, near, oid):
    """Event `case` (0-5, ``_event_case_nb``) on the book; `pick` is (u, limit rate per side,
    where the cancels' rates start (market, bid), 1 / speed), `far` the (bid, ask) counts of
    far orders, `near` the near queues' (rate_b, near_b, rate_a, near_a), `oid` the next
    order id. Returns (n_trades, kind, side, price, qty, order id, near); kind -1 when a
    cancel found nothing to cancel. Each case calls its book operation with a constant side,
    `v` uniform on [0, its own rate)."""
    rate_b, near_b, rate_a, near_a = near
    u, lim, s_mkt, s_bid, inv_speed = pick
    kind, side, qty = k.LIMIT, k.BUY, 0
    if case == 0:  # limit buy
        v = u * inv_speed
        n_trades, price, qty, near_b, rate_b = _limit_event_nb(
            book, trades, n_trades, flow, r, k.BUY, v, ask, oid, near_b, rate_b
        )
    elif case == 1:  # limit sell
        side = k.SELL
        v = (u - lim) * inv_speed
        n_trades, price, qty, near_a, rate_a = _limit_event_nb(
            book, trades, n_trades, flow, r, k.SELL, v, bid, oid, near_a, rate_a
        )
    elif case <= 3:  # market order
        kind, price = k.MARKET, 0
        side = k.BUY if case == 2 else k.SELL
        n_trades, qty = _market_event_nb(book, trades, n_trades, flow.rng, r, side, oid)
    elif case == 4:  # cancel a bid
        v = (u - s_mkt) * inv_speed
        kind, price, oid, near_b, rate_b = _cancel_event_nb(
            book, flow, k.BUY, v, ask, far[0], near_b, rate_b
        )
    else:  # cancel an ask
        side = k.SELL
        v = (u - s_bid) * inv_speed
        kind, price, oid, near_a, rate_a = _cancel_event_nb(
            book, flow, k.SELL, v, bid, far[1], near_a, rate_a
        )
    return n_trades, kind, side, price, qty, oid, (rate_b, near_b, rate_a, near_a)


@inline_kernel
def _traded_nb(trades, lo, hi, traded_qty, traded_value):
    """The market's traded quantity and tick value with trades `lo` to `hi` - 1 added."""
    for j in range(lo, hi):
        traded_qty += trades[j].qty
        traded_value += trades[j].qty * trades[j].price
    return traded_qty, traded_value


@inline_kernel
def _emit_nb(out_msgs, n_events, meta, kind, side, price, qty, oid):
    """Count an event as a book message, and write it to `out_msgs` while there is room."""
    if n_events < out_msgs.shape[0]:
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
    return n_events + 1


@inline_kernel
def _touch_nb(levels, meta, last, prev):
    """The touch after an event: the last known quotes (bid, ask), standing in for an emptied
    side; the top of book (bid, bid qty, ask, ask qty) against `prev`, the one before; and
    the event's order-flow imbalance (Cont, Kukanov & Stoikov 2014): bid-side inflow minus
    ask-side inflow at the touch (selects, not branches: the comparisons are unpredictable)."""
    prev_bid, prev_bidq, prev_ask, prev_askq = prev
    pb, qb = _top_qty_nb(levels, meta, k.BUY)
    pa, qa = _top_qty_nb(levels, meta, k.SELL)
    last_bid = pb if pb > 0 else last[0]
    last_ask = pa if pa > 0 else last[1]
    e = (qb if pb >= prev_bid else 0) - (prev_bidq if pb <= prev_bid else 0)
    e -= qa if (pa <= prev_ask) | (prev_ask == 0) else 0
    e += prev_askq if (pa >= prev_ask) & (prev_ask > 0) else 0
    return (last_bid, last_ask), (pb, qb, pa, qa), e


@inline_kernel
def _resume_queues_nb(levels, meta, flow, bid, ask):
    """Count the near queues at a call's start (bids from `ask`, asks from `bid`): (rate_b,
    near_b, rate_a, near_a). After a stop for room the carried rates are kept where the
    counts are unchanged (``_rescan_nb``)."""
    params, fstate, istate = flow.params, flow.fstate, flow.istate
    resumed = istate[IS.resume] != 0
    istate[IS.resume] = 0
    keep_b, keep_a = resumed and istate[IS.ref_bid] == ask, resumed and istate[IS.ref_ask] == bid
    base = meta[k.BASE]
    kept_b, kept_a = fstate[FS.near_rate_bid], fstate[FS.near_rate_ask]
    rate_b, near_b = _rescan_nb(levels, base, ask, k.BUY, params, flow.q_bid, keep_b, kept_b)
    rate_a, near_a = _rescan_nb(levels, base, bid, k.SELL, params, flow.q_ask, keep_a, kept_a)
    return rate_b, near_b, rate_a, near_a


@inline_kernel
def _suspend_queues_nb(flow, ref_b, ref_a, rate_b, rate_a):
    """Carry the near queues over to the call resumed after a stop for room."""
    flow.istate[IS.resume] = 1
    flow.istate[IS.ref_bid], flow.istate[IS.ref_ask] = ref_b, ref_a
    flow.fstate[FS.near_rate_bid], flow.fstate[FS.near_rate_ask] = rate_b, rate_a


@kernel
def flow_run_nb(book, trades, n_trades, flow, t_end, out_msgs):
    """Simulate background events until the clock passes `t_end`.

    Returns (n_trades, status, n_events): ``STATUS.done``, or the room the caller must grow
    (``need_window``, ``need_slot``, ``need_trade_room``) before calling again; checked before
    any random draw, so the trajectory never depends on array sizes. `book` is a ``layout.Book``,
    `flow` a ``layout.FlowState`` (its (MAX_DEPTH,) `q_bid`/`q_ask`: the near queues' counts,
    carried from a stop for room to the resumed call). Each event is written to `out_msgs`
    while it has room (pass an empty array not to record). Keeps the book uncrossed: limits go
    strictly behind the opposite best. The module's docstring says what it does for speed."""
    levels, meta, base = book.levels, book.meta, book.meta[k.BASE]
    rng, params, fstate, istate, q_bid, q_ask = flow
    r = _rates_nb(params, fstate)
    # state held in registers during the call
    t, exc_buy, exc_sell = fstate[FS.time], fstate[FS.exc_buy], fstate[FS.exc_sell]
    ofi, traded_qty, traded_value = fstate[FS.ofi], fstate[FS.traded_qty], fstate[FS.traded_value]
    burst, next_id = fstate[FS.burst], istate[IS.next_id]
    prev = (istate[IS.prev_bid], istate[IS.prev_bidq], istate[IS.prev_ask], istate[IS.prev_askq])
    last = (istate[IS.last_bid], istate[IS.last_ask])
    bid = meta[k.BEST_BID] if meta[k.BEST_BID] > 0 else last[0]
    ask = meta[k.BEST_ASK] if meta[k.BEST_ASK] > 0 else last[1]
    # near queues: bids counted from the ask (ref_b), asks from the bid (ref_a); a ref of -1
    # marks a side to recount
    rate_b, near_b, rate_a, near_a = _resume_queues_nb(levels, meta, flow, bid, ask)
    ref_b, ref_a = ask, bid
    n_events = 0
    while True:
        status = _room_nb(levels, meta, trades, n_trades, bid, ask)
        if status != STATUS.done:
            break
        if ref_b != ask:
            rate_b, near_b = _side_queues_nb(levels, base, ask, k.BUY, params, q_bid)
            ref_b = ask
        if ref_a != bid:
            rate_a, near_a = _side_queues_nb(levels, base, bid, k.SELL, params, q_ask)
            ref_a = bid
        far_bid, far_ask = meta[k.N_BID_ORDERS] - near_b, meta[k.N_ASK_ORDERS] - near_a
        inv_speed, lim, m_buy, m_sell, c_bid, c_ask, total = _event_rates_nb(
            r, burst, exc_buy, exc_sell, rate_b, rate_a, far_bid, far_ask
        )
        dt = exponential_nb(rng) * (1.0 / total)
        if t + dt > t_end:  # memoryless: the unrealised event is simply not drawn again
            exc_buy, exc_sell = _decay_nb(r, t_end - t, exc_buy, exc_sell)
            t = t_end
            break
        exc_buy, exc_sell = _decay_nb(r, dt, exc_buy, exc_sell)
        t += dt
        u = uniform_nb(rng) * total
        case, s_mkt, s_bid = _event_case_nb(u, lim, m_buy, m_sell, c_bid, c_ask)
        if case == 6:  # a burst starts or ends; no message
            burst = 1.0 - burst
            continue
        n_before = n_trades
        n_trades, kind, side, price, qty, oid, near = _apply_event_nb(
            book, trades, n_trades, flow, r, case, (u, lim, s_mkt, s_bid, inv_speed), bid, ask,
            (far_bid, far_ask), (rate_b, near_b, rate_a, near_a), next_id,
        )  # fmt: skip
        rate_b, near_b, rate_a, near_a = near
        next_id += case <= 3  # limits and market orders take a new id
        if case == 2:  # a market buy ate asks: recount them
            exc_buy += r.alpha
            ref_a = -1
        elif case == 3:
            exc_sell += r.alpha
            ref_b = -1
        traded_qty, traded_value = _traded_nb(trades, n_before, n_trades, traded_qty, traded_value)
        if kind >= 0:
            n_events = _emit_nb(out_msgs, n_events, meta, kind, side, price, qty, oid)
        last, prev, e = _touch_nb(levels, meta, last, prev)
        bid, ask = last
        ofi += e
    fstate[FS.time], fstate[FS.exc_buy], fstate[FS.exc_sell] = t, exc_buy, exc_sell
    fstate[FS.ofi], fstate[FS.traded_qty], fstate[FS.traded_value] = ofi, traded_qty, traded_value
    fstate[FS.burst], istate[IS.next_id] = burst, next_id
    istate[IS.last_bid], istate[IS.last_ask] = last
    istate[IS.prev_bid], istate[IS.prev_bidq], istate[IS.prev_ask], istate[IS.prev_askq] = prev
    if status != STATUS.done:
        _suspend_queues_nb(flow, ref_b, ref_a, rate_b, rate_a)
    return n_trades, status, n_events


# ------------------------------------------------------------------------------ driver
def flow_price_span(meta: np.ndarray, istate: np.ndarray) -> tuple[int, int]:
    """The prices a book whose flow stopped with ``need_window`` must cover: around its quotes
    (the last known ones for an emptied side), wide enough for many events."""
    bid = int(meta[k.BEST_BID]) or int(istate[IS.last_bid])
    ask = int(meta[k.BEST_ASK]) or int(istate[IS.last_ask])
    return min(bid, ask) - 4 * MAX_DEPTH, max(bid, ask) + 4 * MAX_DEPTH


_FLOW_ENTRY = None  # flow_run_nb's compiled entry point for the argument types run() passes


def _flow_entry(args: tuple):
    """``run`` is called every env step for some hundred events, and numba's dispatcher types
    every argument on every call; the types never change (the book's arrays keep their dtypes
    and layouts when they grow), so the entry point is resolved once."""
    global _FLOW_ENTRY
    _FLOW_ENTRY = compiled_entry(flow_run_nb, args)
    return _FLOW_ENTRY


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
        self.istate[IS.next_id] = _FIRST_ID
        self.istate[IS.last_bid] = self.start_price - 1
        self.istate[IS.last_ask] = self.start_price + 1
        self.messages = np.zeros(self.record, dtype=k.MESSAGE_DTYPE)
        self.n_messages = 0
        self._trades = np.empty(1024, dtype=k.TRADE_DTYPE)
        self._q_bid = np.zeros(MAX_DEPTH, dtype=np.int64)
        self._q_ask = np.zeros(MAX_DEPTH, dtype=np.int64)
        self._flow = FlowState(
            self.xrng, self.p, self.fstate, self.istate, self._q_bid, self._q_ask
        )

    @property
    def time(self) -> float:
        return float(self.fstate[FS.time])

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
        log_q = _log_q_nb(self.p[PARAM.limit_size])
        sizes = np.array([_geometric_nb(self.xrng, log_q) for _ in range(n)])
        msgs["qty"] = sizes
        msgs["order_id"] = np.arange(self.istate[IS.next_id], self.istate[IS.next_id] + n)
        self.istate[IS.next_id] += n
        trades = self.book.process(msgs)
        for side, i_p, i_q in (
            (k.BUY, IS.prev_bid, IS.prev_bidq),
            (k.SELL, IS.prev_ask, IS.prev_askq),
        ):
            top = self.book.depth(side, 1)
            self.istate[i_p], self.istate[i_q] = top[0] if len(top) else (0, 0)
        return trades

    @property
    def state(self) -> FlowState:
        """The flow's arrays as ``flow_run_nb`` takes them (updated in place, never replaced)."""
        return self._flow

    def run(self, seconds: float) -> np.ndarray:
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self._t_end = self.fstate.item(FS.time) + seconds
        self._n_trades = 0
        self.n_messages = 0
        status = self._call()
        if status != STATUS.done:
            run_to_done(self._call, self._make_room, status)
        return self._trades[: self._n_trades]

    def _call(self) -> int:
        """One call of the flow kernel from where the last one stopped; returns its status."""
        record = self.record
        out = self.messages[self.n_messages :] if record else self.messages
        args = (self.book.state, self._trades, self._n_trades, self._flow, self._t_end, out)
        self._n_trades, status, n_ev = (_FLOW_ENTRY or _flow_entry(args))(*args)
        if record:
            self.n_messages = min(record, self.n_messages + n_ev)
        return status

    def _make_room(self, status: int) -> None:
        book, n_trades = self.book, self._n_trades
        if status == STATUS.need_trade_room:
            needed = n_trades + k.trade_room_needed_nb(book.meta)
            self._trades = grow_trades(self._trades, n_trades, needed)
        elif status == STATUS.need_slot:
            book.reserve(book.orders.shape[0])  # double the pool
        else:
            book.reserve(0, *flow_price_span(book.meta, self.istate))

    def take_ofi(self) -> float:
        ofi = float(self.fstate[FS.ofi])
        self.fstate[FS.ofi] = 0.0
        return ofi

    def take_volume(self) -> tuple[float, float]:
        """(quantity, tick value) traded by the flow since last taken."""
        f = self.fstate
        out = (float(f[FS.traded_qty]), float(f[FS.traded_value]))
        f[FS.traded_qty] = f[FS.traded_value] = 0.0
        return out
