"""Fit the background flow (``flow.py``) to a `MessageTape`: the simulator calibrated to a day.

What is fitted, and how:

- **tick and lot**: the tape's tick (source price units per book tick) and the gcd of the new
  orders' sizes; every rate below is per book tick and every size in lots.
- **limit arrival rates** ``limit_rates[d-1]``: new orders placed ``d`` ticks from the opposite
  best quote (the last known one when that side is empty), per second, the two sides averaged.
- **cancel rates** ``cancel_rates[d-1]``: deletes of orders resting ``d`` ticks from the opposite
  best, divided by the time integral of the number of orders resting there (the simulator
  cancels each resting order at that rate); past ``MAX_DEPTH`` one far rate. The per-lot
  rate (cancelled lots, partial cancels included, over the time integral of resting lots) is
  kept too, for tapes whose cancels are mostly partial.
- **market orders**: a run of visible executions at one time stamp against one side is one
  market order (its size their sum). Sizes: the geometric family ``flow.py`` draws, whose
  maximum-likelihood mean is the sample mean. Times: a Hawkes process per side with an
  exponential kernel, baseline ``mu`` per side (their difference is the drift) and one shared
  ``alpha``, ``beta``, fitted by maximum likelihood (Ozaki's recursion; Nelder–Mead over
  log mu, logit(alpha / beta), log beta). ``hawkes=False`` fits a Poisson rate instead.

The queue sizes come from one pass of a numba kernel over the tape that keeps, per price,
resting orders and lots (orders are told apart by their id, mapped to dense indices first).
Orders that rested before the tape's first message are unknown to it. With the orderbook
file (``tape.orderbook``), the scan starts from the book before the first message: each
level's volume as anonymous orders (as many as its lots make orders of the tape's mean new
size, at least one); messages on unknown ids at that price take their size from it, a delete
takes one of its orders, and the last lot takes them all. Without the file, or beyond its
depth, messages on unknown ids are skipped and counted (``unknown_ids``), so such a tape
should start from an empty book or include its resting orders as new orders, as
``record_flow`` writes them.

Not fitted: activity bursts (their effect is averaged into every rate) and Pareto market
size tails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from trendgym.envs.lob.flow import MAX_DEPTH, FlowParams
from trendgym.envs.lob.kernels import inline_kernel, kernel
from trendgym.envs.lob.layout import layout
from trendgym.envs.lob.tape import EVENT, MessageTape, seed_levels

# per side (0 bid, 1 ask) and distance column (0..MAX_DEPTH-1 near, MAX_DEPTH far), the sums
# the scan accumulates
ACC = layout("CalibAcc", "arrivals deletes cancel_lots order_time lot_time")
COUNT = layout("CalibCount", "unknown_ids far_arrivals crossing_arrivals anonymous_reductions")
# per price (rows of the scan's `anon`): the anonymous volume resting before the tape, its
# estimated number of orders and its side (+1 bid, -1 ask, 0 none)
ANON = layout("CalibAnon", "lots orders side")


@kernel
def _near_nb(i, q, lo, n_px, ref, step):
    """The number of orders (or lots) in `q` at `ref + step * (i + 1)` (0 outside)."""
    j = ref + step * (i + 1) - lo
    return q[j] if 0 <= j < n_px else 0


@kernel
def _queue_time_nb(acc, count, lots, lo, ref_bid, ref_ask, totals, dt):
    """Add `dt` seconds of the book's queues (orders and lots, per side, by distance from the
    opposite quote; the far remainder in the last column) to `acc`."""
    n_px = count.shape[0]
    for s in range(2):
        ref, step = (ref_ask, -1) if s == 0 else (ref_bid, 1)
        near_o = near_l = 0
        for d in range(MAX_DEPTH):
            c = _near_nb(d, count, lo, n_px, ref, step)
            v = _near_nb(d, lots, lo, n_px, ref, step)
            near_o += c
            near_l += v
            acc[s, ACC.order_time, d] += c * dt
            acc[s, ACC.lot_time, d] += v * dt
        acc[s, ACC.order_time, MAX_DEPTH] += (totals[0][s] - near_o) * dt
        acc[s, ACC.lot_time, MAX_DEPTH] += (totals[1][s] - near_l) * dt


@kernel
def _seeded_quotes_nb(anon):
    """The book indices of the best bid and ask of the anonymous volume (-1: none)."""
    bid = ask = -1
    for j in range(anon.shape[1]):
        if anon[ANON.lots, j] > 0:
            if anon[ANON.side, j] > 0:
                bid = j
            elif ask < 0:
                ask = j
    return bid, ask


@inline_kernel
def _take_anonymous_nb(anon, j, ev, size):
    """Take a message's `size` from the anonymous volume at book index `j`; returns (lots,
    orders) removed."""
    q = min(size, anon[ANON.lots, j])
    anon[ANON.lots, j] -= q
    gone = 0
    if anon[ANON.lots, j] == 0:
        gone = anon[ANON.orders, j]
    elif ev == EVENT.delete and anon[ANON.orders, j] > 1:
        gone = 1
    anon[ANON.orders, j] -= gone
    return q, gone


@inline_kernel
def _quotes_after_nb(count, s, added, j, bid, ask):
    """The best bid and ask (book indices, -1: empty) after a message on side `s` at index
    `j` (`added`: a new order) moved the orders `count` per index."""
    if s == 0:
        if added and (bid < 0 or j > bid):
            bid = j
        while bid >= 0 and count[bid] == 0:
            bid -= 1
    else:
        if added and (ask < 0 or j < ask):
            ask = j
        while 0 <= ask < count.shape[0] and count[ask] == 0:
            ask += 1
        if ask >= count.shape[0]:
            ask = -1
    return bid, ask


@kernel
def queue_scan_nb(msgs, dense, ptick, lo, left, count, lots, totals, acc, counts, quotes, anon):
    """One pass over the tape `msgs` (TAPE_DTYPE): `dense` maps each row's order id to an index
    into `left` (its resting size), `ptick` is its price in book ticks, `count`/`lots` the
    orders and lots resting at each tick from `lo` and `totals` (2, 2) per side (orders,
    lots) (on entry: the anonymous volume `anon` (ANON rows), or zeros). Accumulates into
    `acc` (2, len(ACC), MAX_DEPTH + 1) and `counts` (COUNT) and writes each message's best
    bid and ask after it into `quotes` (n, 2) (0 when a side is empty)."""
    bid, ask = _seeded_quotes_nb(anon)  # book indices of the best quotes; -1: empty
    # last known quotes (ticks), the distances' reference
    ref_bid = bid + lo if bid >= 0 else -1
    ref_ask = ask + lo if ask >= 0 else -1
    tot_orders, tot_lots = totals[0], totals[1]
    for i in range(msgs.shape[0]):
        m = msgs[i]
        if i > 0:
            dt = m.time - msgs[i - 1].time
            if dt > 0.0 and ref_bid >= 0 and ref_ask >= 0:
                _queue_time_nb(acc, count, lots, lo, ref_bid, ref_ask, totals, dt)
        ev = m.event
        if 1 <= ev <= 4:
            s = 0 if m.direction > 0 else 1
            p = ptick[i]
            j = p - lo
            # distance from the opposite best; -1 when that side was never seen
            opp = ref_ask if s == 0 else ref_bid
            dist = (opp - p if s == 0 else p - opp) if opp >= 0 else -1
            col = min(dist, MAX_DEPTH + 1) - 1
            o = dense[i]
            if ev == 1:
                left[o] = m.size
                count[j] += 1
                lots[j] += m.size
                tot_orders[s] += 1
                tot_lots[s] += m.size
                if dist >= 1:
                    acc[s, ACC.arrivals, col] += 1
                    counts[COUNT.far_arrivals] += dist > MAX_DEPTH
                else:
                    counts[COUNT.crossing_arrivals] += 1
            elif left[o] <= 0 and anon[ANON.lots, j] > 0 and anon[ANON.side, j] == m.direction:
                q, gone = _take_anonymous_nb(anon, j, ev, m.size)
                counts[COUNT.anonymous_reductions] += 1
                lots[j] -= q
                tot_lots[s] -= q
                count[j] -= gone
                tot_orders[s] -= gone
                if ev != 4 and dist >= 1:
                    acc[s, ACC.cancel_lots, col] += q
                    acc[s, ACC.deletes, col] += ev == EVENT.delete
            elif left[o] <= 0:
                counts[COUNT.unknown_ids] += 1
            else:
                q = min(m.size, left[o]) if ev != 3 else left[o]
                left[o] -= q
                lots[j] -= q
                tot_lots[s] -= q
                gone = left[o] == 0
                count[j] -= gone
                tot_orders[s] -= gone
                if ev != 4 and dist >= 1:
                    acc[s, ACC.cancel_lots, col] += q
                    acc[s, ACC.deletes, col] += gone
            bid, ask = _quotes_after_nb(count, s, ev == 1, j, bid, ask)
            if s == 0 and bid >= 0:
                ref_bid = bid + lo
            if s == 1 and ask >= 0:
                ref_ask = ask + lo
        quotes[i, 0] = bid + lo if bid >= 0 else 0
        quotes[i, 1] = ask + lo if ask >= 0 else 0


@kernel
def hawkes_loglik_nb(times, t0, t1, mu, alpha, beta):
    """Log-likelihood of event `times` (sorted, in [t0, t1]) under a Hawkes process with
    intensity mu + alpha * sum exp(-beta (t - t_j)) over earlier events (Ozaki 1979)."""
    ll = 0.0
    a = 0.0  # sum over earlier events of exp(-beta (t_k - t_j))
    for k in range(times.shape[0]):
        if k > 0:
            a = np.exp(-beta * (times[k] - times[k - 1])) * (1.0 + a)
        ll += np.log(mu + alpha * a)
        ll -= alpha / beta * (1.0 - np.exp(-beta * (t1 - times[k])))
    return ll - mu * (t1 - t0)


@dataclass(frozen=True)
class Calibration:
    """The flow parameters fitted to a tape, and what they were fitted from. Rates per
    second, prices in ticks of ``tick`` source units, sizes in lots of ``lot``."""

    tick: int
    lot: int
    seconds: float
    limit_rates: tuple[float, ...]
    cancel_rates: tuple[float, ...]
    cancel_rates_per_lot: tuple[float, ...]
    cancel_rate_far: float
    market_rate: float  # Hawkes baseline per side
    drift: float
    hawkes_alpha: float
    hawkes_beta: float
    limit_size: float
    market_size: float
    n_messages: int
    n_market_orders: int
    unknown_ids: int
    far_arrivals: int
    crossing_arrivals: int
    anonymous_reductions: int = 0  # messages on orders resting before the tape (its file)

    @property
    def market_intensity(self) -> float:
        """Mean market orders per second per side: mu / (1 - alpha / beta)."""
        return self.market_rate / (1.0 - self.hawkes_alpha / self.hawkes_beta)

    def params(self, **overrides) -> FlowParams:
        """The fitted parameters as ``FlowParams``, what ``OrderFlow(book, params, rng)``
        takes (``.to_array()`` gives the kernel's vector); keyword overrides as in
        ``flow_params``."""
        fitted = dict(
            limit_rates=self.limit_rates,
            cancel_rates=self.cancel_rates,
            cancel_rate_far=max(self.cancel_rate_far, 1e-9),
            market_rate=self.market_rate,
            drift=self.drift,
            hawkes_alpha=self.hawkes_alpha,
            hawkes_beta=self.hawkes_beta,
            limit_size=max(self.limit_size, 1.0),
            market_size=max(self.market_size, 1.0),
            burst_scale=1.0,
        )
        return FlowParams(**{**fitted, **overrides})

    def as_dict(self) -> dict:
        return asdict(self)


def pre_start_volume(tape: MessageTape) -> np.ndarray:
    """(side, book price, lots) rows of the volume resting before the tape's first message,
    from its orderbook rows (none without them)."""
    if tape.orderbook is None or len(tape) == 0:
        return np.zeros((0, 3), np.int64)
    seed = seed_levels(tape.messages[0], tape.orderbook[0], tape.tick, tape.source)
    return np.column_stack([seed["side"], seed["price"], seed["qty"]]).astype(np.int64)


def _queue_sums(tape: MessageTape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(acc, counts, quotes) of `queue_scan_nb` over the tape, from the book before it."""
    m = tape.messages
    visible = (m["event"] >= EVENT.new) & (m["event"] <= EVENT.execute)
    ptick = np.where(visible, m["price"] // tape.tick, 0).astype(np.int64)
    seeded = pre_start_volume(tape)
    prices = np.concatenate([ptick[visible], seeded[:, 1]])
    lo = int(prices.min())
    n_px = int(prices.max()) - lo + 1
    ids, dense = np.unique(m["order_id"], return_inverse=True)
    acc = np.zeros((2, len(ACC), MAX_DEPTH + 1))
    counts = np.zeros(len(COUNT), np.int64)
    quotes = np.zeros((len(m), 2), np.int64)
    left = np.zeros(ids.size, np.int64)
    anon = np.zeros((len(ANON), n_px), np.int64)
    totals = np.zeros((2, 2), np.int64)
    if seeded.shape[0]:
        new = m["size"][m["event"] == EVENT.new]
        mean_size = float(new.mean()) if new.size else 1.0
        j = seeded[:, 1] - lo
        anon[ANON.side, j] = seeded[:, 0]
        anon[ANON.lots, j] = seeded[:, 2]
        anon[ANON.orders, j] = np.maximum(1, np.rint(seeded[:, 2] / mean_size)).astype(np.int64)
        for s, side in ((0, 1), (1, -1)):
            on = seeded[:, 0] == side
            totals[0, s] = anon[ANON.orders, j[on]].sum()
            totals[1, s] = seeded[on, 2].sum()
    count, lots = anon[ANON.orders].copy(), anon[ANON.lots].copy()
    queue_scan_nb(
        m, dense.astype(np.int64), ptick, lo, left, count, lots, totals, acc, counts, quotes, anon
    )
    return acc, counts, quotes


def market_orders(tape: MessageTape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, sides (+1 buy, -1 sell), sizes) of the market orders: each run of consecutive
    visible executions with one time stamp against one side."""
    m = tape.messages
    ex = np.flatnonzero(m["event"] == EVENT.execute)
    t, d = m["time"][ex], m["direction"][ex]
    start = np.ones(ex.size, bool)
    start[1:] = (np.diff(ex) != 1) | (t[1:] != t[:-1]) | (d[1:] != d[:-1])
    first = np.flatnonzero(start)
    sizes = np.add.reduceat(m["size"][ex], first) if ex.size else np.zeros(0, np.int64)
    return t[first], -d[first].astype(np.int64), sizes


def fit_hawkes(
    buys: np.ndarray, sells: np.ndarray, t0: float, t1: float
) -> tuple[float, float, float, float]:
    """(mu_buy, mu_sell, alpha, beta): maximum likelihood, each side its own baseline and
    both the same exponential kernel."""
    from scipy import optimize  # only a fit needs it: importing the book stays light

    span = t1 - t0

    def unpack(x):
        n = 1.0 / (1.0 + np.exp(-x[2]))  # branching ratio alpha / beta in (0, 1)
        beta = np.exp(x[3])
        return np.exp(x[0]), np.exp(x[1]), n * beta, beta

    def nll(x):
        mb, ms, a, b = unpack(x)
        return -(
            hawkes_loglik_nb(buys, t0, t1, mb, a, b) + hawkes_loglik_nb(sells, t0, t1, ms, a, b)
        )

    x0 = np.array(
        [np.log(max(buys.size, 1) / span / 2), np.log(max(sells.size, 1) / span / 2), 0.0, 0.0]
    )
    res = optimize.minimize(
        nll, x0, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 4000}
    )
    return unpack(res.x)


def calibrate_flow(tape: MessageTape, *, hawkes: bool = True) -> Calibration:
    """Fit ``flow.py``'s parameters to `tape` (see the module docstring for how); raises
    ValueError when the tape cannot support a fit (no messages, no time span, no limit
    orders, no trades)."""
    if not isinstance(tape, MessageTape):
        raise TypeError(f"tape must be a MessageTape, got {type(tape).__name__}")
    m = tape.messages
    if len(tape) == 0:
        raise ValueError(f"{tape.source}: the tape has no messages to calibrate from")
    t0, t1 = float(m["time"][0]), float(m["time"][-1])
    if not t1 > t0:
        raise ValueError(f"{tape.source}: the tape spans no time ({t0} to {t1} s)")
    new = m["event"] == EVENT.new
    if not new.any():
        raise ValueError(f"{tape.source}: the tape has no new limit orders (event 1)")
    if not (m["event"] == EVENT.execute).any():
        raise ValueError(
            f"{tape.source}: the tape has no trades (visible executions, event 4): "
            "market orders cannot be fitted"
        )
    lot = int(np.gcd.reduce(np.unique(m["size"][new])))
    acc, counts, _ = _queue_sums(tape)
    span = t1 - t0
    both = acc.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cancel = np.nan_to_num(both[ACC.deletes] / both[ACC.order_time])
        per_lot = np.nan_to_num(both[ACC.cancel_lots] / both[ACC.lot_time])
    times, sides, sizes = market_orders(tape)
    if hawkes:
        mu_b, mu_s, alpha, beta = fit_hawkes(times[sides > 0], times[sides < 0], t0, t1)
    else:
        mu_b, mu_s = (sides > 0).sum() / span, (sides < 0).sum() / span
        alpha, beta = 0.0, 1.0
    mu = 0.5 * (mu_b + mu_s)
    return Calibration(
        tick=tape.tick,
        lot=lot,
        seconds=span,
        limit_rates=tuple(float(r) for r in both[ACC.arrivals, :MAX_DEPTH] / (2 * span)),
        cancel_rates=tuple(float(c) for c in cancel[:MAX_DEPTH]),
        cancel_rates_per_lot=tuple(float(c) for c in per_lot[:MAX_DEPTH]),
        cancel_rate_far=float(cancel[MAX_DEPTH]),
        market_rate=float(mu),
        drift=float((mu_b - mu_s) / (mu_b + mu_s)) if mu > 0 else 0.0,
        hawkes_alpha=float(alpha),
        hawkes_beta=float(beta),
        limit_size=float(m["size"][new].mean() / lot),
        market_size=float(sizes.mean() / lot),
        n_messages=len(tape),
        n_market_orders=int(times.size),
        unknown_ids=int(counts[COUNT.unknown_ids]),
        far_arrivals=int(counts[COUNT.far_arrivals]),
        crossing_arrivals=int(counts[COUNT.crossing_arrivals]),
        anonymous_reductions=int(counts[COUNT.anonymous_reductions]),
    )


# ------------------------------------------------------------------------------ files
CALIBRATION_FORMAT = "trendgym.calibration/1"


def save_calibration(cal: Calibration, path, **extra) -> None:
    """Write `cal` (and its ``params()``) as JSON to `path`, with `extra` JSON-able entries
    (``trendgym calibrate`` adds the source files and the facts). NaN is written as null."""
    import json
    import math

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {key: clean(x) for key, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    doc = {
        "format": CALIBRATION_FORMAT,
        "calibration": cal.as_dict(),
        "flow_params": cal.params().as_dict(),
        **clean(extra),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, allow_nan=False)
        f.write("\n")


def load_calibration(path) -> Calibration:
    """The `Calibration` a ``save_calibration`` file holds; ValueError naming the file when
    it is not one (unreadable, not JSON, another format, fields missing or invalid)."""
    import json
    from dataclasses import MISSING, fields

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable calibration file ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != CALIBRATION_FORMAT:
        raise ValueError(
            f'{path}: not a calibration file (no "format": "{CALIBRATION_FORMAT}"; '
            "write one with trendgym calibrate)"
        )
    raw = doc.get("calibration")
    names = {f.name: f for f in fields(Calibration)}
    required = {n for n, f in names.items() if f.default is MISSING}
    if not isinstance(raw, dict) or not required <= raw.keys() or not raw.keys() <= names.keys():
        raise ValueError(f'{path}: its "calibration" entry lacks or adds fields')
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    try:
        cal = Calibration(**values)
        cal.params()  # validates every fitted value
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid calibration ({err})") from None
    return cal
