"""numba kernels of Execution-v0's pre-trade checks: one call per hooked batch.

`ExecutionCompliance` (``execution.py``) owns the arrays and calls two kernels:

- ``begin_step_nb`` once per step: interval volume, the wash rule's fill snapshot and the
  kill switch's loss / drawdown test (the trip itself, rare, is handled in Python);
- ``pre_trade_nb`` once per batch of new orders and modifies: every rule, in the order of the
  rules module's docs, on each message; the allowed messages are compacted in place.

Layout (indices below): ``params`` float64, the rules' limits and modes (OFF when a rule is
not active, -1 for an unset limit); ``fstate`` float64 and ``istate`` int64, the episode's
scalars (and the buffers' sizes); ``live`` int64 rows [order id, side, price, remaining qty (-1: not read back yet)] of
the agent's orders the checks saw go to the book, in the order they were sent; ``dup`` int64
ring rows [step, kind, side, price, qty] of messages sent (duplicate window); ``sent`` int64
ring of the steps of messages sent (throttle); ``fills`` int64 ring rows [step, bought, sold]
(the agent's cumulative fills at step starts, wash window). Interventions are written as rows
of ``records`` (float64, columns ``C_*``), lists of order ids into ``ids``; Python turns them
into audit entries only when there are any. The float64 arrays share one buffer and the int64
ones another (``views_nb``), so that a kernel call passes two arguments for all of them.

Kernels allocate nothing and are compiled without numba's reference counting, like the order
book's: with it, every array argument and view costs an atomic incref/decref pair.
They cancel orders on the book with the book's own ``cancel_nb`` (what ``OrderBook.process``
does with a cancel message), so that a cancel and the checks after it see the same book.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from trendgym.envs.execution import AGENT
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.layout import STATUS

kernel = njit(cache=True, _nrt=False)

# rule codes (the order of the checks), and the modes
(
    R_RESTRICTED,
    R_DUPLICATE,
    R_COLLAR,
    R_STP,
    R_WASH,
    R_SIZE,
    R_PARTICIPATION,
    R_POSITION,
    R_THROTTLE,
    R_KILL,
) = range(10)
N_RULES = 10
OFF, BLOCK, CLIP, PENALIZE, CANCEL, TRIP = -1, 0, 1, 2, 3, 4
STP_NEWEST, STP_OLDEST, STP_BOTH = 0, 1, 2

# params: modes[N_RULES], then the limits (-1: not set)
(
    P_BUY_RESTRICTED,
    P_SELL_RESTRICTED,
    P_DUP_WINDOW,
    P_COLLAR_PCT,
    P_COLLAR_SPREADS,
    P_STP_POLICY,
    P_WASH_WINDOW,
    P_WASH_MIN,
    P_MAX_QTY,
    P_MAX_NOTIONAL,
    P_MAX_RATE,
    P_MAX_POSITION,
    P_MAX_MESSAGES,
    P_THROTTLE_WINDOW,
    P_MAX_OTR,
    P_MIN_VOLUME,
    P_MAX_LOSS,
    P_MAX_DRAWDOWN,
    P_MAX_BREACHES,
    P_TICK_SIZE,
    P_ARRIVAL,  # the episode's arrival mid, ticks (market orders' notional on an empty side)
    P_QUANTITY,  # the episode's parent quantity (the default position limit)
    P_SIDE,  # the episode's side (a modify of an order the checks never saw)
) = range(N_RULES, N_RULES + 23)
N_PARAMS = N_RULES + 23
F_INTERVAL_VOLUME, F_BEST_SHORTFALL = range(2)
N_FSTATE = 2
(
    I_STEP,
    I_KILLED,
    I_BREACHES,
    I_ORDERED,
    I_MARKET_SEEN,
    I_N_LIVE,
    I_DUP_HEAD,
    I_DUP_N,
    I_SENT_HEAD,
    I_SENT_N,
    I_FILLS_HEAD,
    I_FILLS_N,
    I_N_RECORDS,
    I_N_IDS,
    I_LIVE_ROWS,  # the buffers' sizes (they are laid out one after the other, see views_nb)
    I_DUP_ROWS,
    I_SENT_ROWS,
    I_FILLS_ROWS,
    I_IDS_LEN,
    I_RECORD_ROWS,
) = range(20)
N_ISTATE = 20

# record columns
(
    C_RULE,
    C_ACTION,
    C_KIND,
    C_SIDE,
    C_PRICE,
    C_QTY,
    C_OID,
    C_DONE_QTY,
    C_DONE_PRICE,
    C_WHY,  # which reason (WHY_*)
    C_V1,
    C_V2,
    C_V3,
    C_IDS,  # first id of the crossing (STP) or cancelled (trip) list in `ids`
    C_N_IDS,
    C_CANCELLED,  # first id of the STP's cancelled list
    C_N_CANCELLED,
) = range(17)
N_COLS = 17
(
    WHY_RESTRICTED,
    WHY_DUPLICATE,
    WHY_COLLAR,
    WHY_STP,
    WHY_WASH,
    WHY_MAX_QTY,
    WHY_NOTIONAL,
    WHY_PARTICIPATION,
    WHY_POSITION,
    WHY_RATE,
    WHY_ORDER_TO_TRADE,
    WHY_KILLED,
    WHY_BREACHES,
) = range(13)
SUFFIX_CLIPPED_TO_NOTHING, SUFFIX_NOT_CLIPPABLE = 100, 200  # added to C_WHY
RECORDS_PER_MESSAGE = 16  # every rule once, a trip and a kill block, with room to spare
TRIG_LOSS, TRIG_DRAWDOWN = 0, 1


# ------------------------------------------------------------------------------ layout
def buffer_sizes(
    live_rows: int, dup_rows: int, sent_rows: int, fills_rows: int, ids_len: int, record_rows: int
):
    """Lengths of the float64 and int64 buffers that hold every array of the checks."""
    floats = N_PARAMS + N_FSTATE + record_rows * N_COLS
    ints = N_ISTATE + 4 * live_rows + 5 * dup_rows + sent_rows + 3 * fills_rows + ids_len
    return floats, ints


class Checks(NamedTuple):
    """The named arrays of the checks (views into the two buffers), one argument for a kernel."""

    params: np.ndarray
    fstate: np.ndarray
    records: np.ndarray
    istate: np.ndarray
    live: np.ndarray
    dup: np.ndarray
    sent: np.ndarray
    fills: np.ndarray
    ids: np.ndarray


@kernel
def views_nb(fbuf, ibuf):
    """The named arrays inside the two buffers (one argument each for a kernel call, where
    every argument costs dispatch time): params, fstate, records, istate, live, dup, sent,
    fills, ids, laid out in that order with the sizes the istate header gives."""
    params = fbuf[:N_PARAMS]
    fstate = fbuf[N_PARAMS : N_PARAMS + N_FSTATE]
    o = N_PARAMS + N_FSTATE
    rows = ibuf[I_RECORD_ROWS]
    records = fbuf[o : o + rows * N_COLS].reshape((rows, N_COLS))
    istate = ibuf[:N_ISTATE]
    o = N_ISTATE
    rows = ibuf[I_LIVE_ROWS]
    live = ibuf[o : o + 4 * rows].reshape((rows, 4))
    o += 4 * rows
    rows = ibuf[I_DUP_ROWS]
    dup = ibuf[o : o + 5 * rows].reshape((rows, 5))
    o += 5 * rows
    rows = ibuf[I_SENT_ROWS]
    sent = ibuf[o : o + rows]
    o += rows
    rows = ibuf[I_FILLS_ROWS]
    fills = ibuf[o : o + 3 * rows].reshape((rows, 3))
    o += 3 * rows
    ids = ibuf[o : o + ibuf[I_IDS_LEN]]
    return Checks(params, fstate, records, istate, live, dup, sent, fills, ids)


# ------------------------------------------------------------------------------ helpers
@kernel
def _record_nb(records, istate, rule, action, kind, side, price, qty, oid, why):
    """Append a record (done = nothing sent, no values, no ids); returns its row."""
    r = istate[I_N_RECORDS]
    istate[I_N_RECORDS] = r + 1
    row = records[r]
    row[C_RULE] = rule
    row[C_ACTION] = action
    row[C_KIND] = kind
    row[C_SIDE] = side
    row[C_PRICE] = price
    row[C_QTY] = qty
    row[C_OID] = oid
    row[C_DONE_QTY] = 0.0
    row[C_DONE_PRICE] = price
    row[C_WHY] = why
    row[C_V1] = row[C_V2] = row[C_V3] = 0.0
    row[C_IDS] = row[C_CANCELLED] = istate[I_N_IDS]
    row[C_N_IDS] = row[C_N_CANCELLED] = 0.0
    return r


@kernel
def _live_index_nb(live, n_live, oid):
    for j in range(n_live):
        if live[j, 0] == oid:
            return j
    return -1


@kernel
def _drop_live_nb(live, istate, j):
    """Forget live row j, keeping the others in the order they were sent."""
    n = istate[I_N_LIVE]
    for r in range(j, n - 1):
        for c in range(4):
            live[r, c] = live[r + 1, c]
    istate[I_N_LIVE] = n - 1


@kernel
def refresh_live_nb(orders, keys, slots, live, istate):
    """Read each tracked order's price and remaining qty back from the book; forget the gone."""
    j = 0
    while j < istate[I_N_LIVE]:
        slot = k.hash_find_nb(keys, slots, live[j, 0])
        if slot < 0:
            _drop_live_nb(live, istate, j)
        else:
            live[j, 2] = orders[slot].price
            live[j, 3] = orders[slot].qty + orders[slot].hidden
            j += 1


@kernel
def _pending_nb(pending, oid):
    """Whether the batch being sent cancels `oid` (its cancels go to the book right after)."""
    for m in range(pending.shape[0]):
        if pending[m].kind == k.CANCEL and pending[m].order_id == oid:
            return True
    return False


@kernel
def cancel_resting_nb(book, c, own_id, side):
    """Cancel the agent's tracked live orders of `side` (0: all, and the env's own child too)
    straight on the book, lowest id first; appends their ids to `c.ids`, returns how many."""
    orders, levels, keys, slots, meta, _ = book
    live, istate, ids = c.live, c.istate, c.ids
    refresh_live_nb(orders, keys, slots, live, istate)
    n = istate[I_N_LIVE]
    start = istate[I_N_IDS]
    # candidates: the tracked ids (and the env's child when cancelling all), sorted
    end = start
    for j in range(n):
        ids[end] = live[j, 0]
        end += 1
    if side == 0 and own_id != k.EMPTY_KEY and _live_index_nb(live, n, own_id) < 0:
        ids[end] = own_id
        end += 1
    for a in range(start + 1, end):  # insertion sort: a handful of ids
        x = ids[a]
        b = a - 1
        while b >= start and ids[b] > x:
            ids[b + 1] = ids[b]
            b -= 1
        ids[b + 1] = x
    done = start
    for a in range(start, end):
        oid = ids[a]
        j = _live_index_nb(live, istate[I_N_LIVE], oid)
        if side != 0 and (j < 0 or live[j, 1] != side):
            continue
        if k.hash_find_nb(keys, slots, oid) >= 0:
            k.cancel_nb(orders, levels, keys, slots, meta, oid)
            meta[k.N_MESSAGES] += 1  # as OrderBook.process counts a cancel message
            ids[done] = oid
            done += 1
        if j >= 0:
            _drop_live_nb(live, istate, j)
    istate[I_N_IDS] = done
    return done - start


@kernel
def _breach_nb(book, c):
    """An intervention by a rule other than the kill switch: count it; trip the switch when
    the count reaches ``max_breaches`` (cancel everything resting, record the trip). The env's
    child order is among the tracked ones: it reaches the book only through the hook."""
    params, istate, records = c.params, c.istate, c.records
    istate[I_BREACHES] += 1
    if (
        params[R_KILL] != OFF
        and istate[I_KILLED] == 0
        and params[P_MAX_BREACHES] >= 0
        and istate[I_BREACHES] >= params[P_MAX_BREACHES]
    ):
        istate[I_KILLED] = 1
        start = istate[I_N_IDS]
        n = cancel_resting_nb(book, c, k.EMPTY_KEY, 0)
        r = _record_nb(records, istate, R_KILL, TRIP, 0, 0, 0, 0, 0, WHY_BREACHES)
        records[r, C_V1] = istate[I_BREACHES]
        records[r, C_IDS] = start
        records[r, C_N_IDS] = n


# ------------------------------------------------------------------------------ per step
@kernel
def trip_cancel_nb(book, fbuf, ibuf, own_id):
    """The kill switch trips: cancel every tracked order and the env's own child; their ids
    are the first entries of `ids`, returns how many."""
    c = views_nb(fbuf, ibuf)
    c.istate[I_KILLED] = 1
    c.istate[I_N_IDS] = 0
    return cancel_resting_nb(book, c, own_id, 0)


@kernel
def begin_step_nb(owner_stats, meta, fbuf, ibuf, step, shortfall):
    """Bookkeeping before the env acts: interval volume (the quantity traded on the book
    since the last step began: the env's ``market_qty`` change), fill snapshot, kill-switch
    test. Returns the kill switch's trigger (TRIG_*) when it must trip now, else -1."""
    params, fstate, _, istate, _, _, _, fills, _ = views_nb(fbuf, ibuf)
    istate[I_STEP] = step
    traded = meta[k.TRADED_QTY]
    if step > 0:
        fstate[F_INTERVAL_VOLUME] = float(traded - istate[I_MARKET_SEEN])
    istate[I_MARKET_SEEN] = traded
    if params[R_WASH] != OFF:
        rows = fills.shape[0]
        if istate[I_FILLS_N] == rows:  # full: the oldest is out of any window by now
            istate[I_FILLS_HEAD] = (istate[I_FILLS_HEAD] + 1) % rows
            istate[I_FILLS_N] -= 1
        r = (istate[I_FILLS_HEAD] + istate[I_FILLS_N]) % rows
        fills[r, 0] = step
        fills[r, 1] = owner_stats[AGENT, k.BOUGHT_QTY]
        fills[r, 2] = owner_stats[AGENT, k.SOLD_QTY]
        istate[I_FILLS_N] += 1
        while fills[istate[I_FILLS_HEAD], 0] < step - params[P_WASH_WINDOW]:
            istate[I_FILLS_HEAD] = (istate[I_FILLS_HEAD] + 1) % rows
            istate[I_FILLS_N] -= 1
    if params[R_KILL] != OFF and istate[I_KILLED] == 0:
        if shortfall < fstate[F_BEST_SHORTFALL]:
            fstate[F_BEST_SHORTFALL] = shortfall
        if params[P_MAX_LOSS] >= 0 and shortfall > params[P_MAX_LOSS]:
            return TRIG_LOSS
        if (
            params[P_MAX_DRAWDOWN] >= 0
            and shortfall - fstate[F_BEST_SHORTFALL] > params[P_MAX_DRAWDOWN]
        ):
            return TRIG_DRAWDOWN
    return -1


# ------------------------------------------------------------------------------ per batch
@kernel
def _hit_nb(records, istate, rule, mode, kind, side, price, qty, oid, clip_qty, why):
    """Record an intervention by a rule in `mode`; `clip_qty` is what clipping leaves (-1:
    the order cannot be clipped). Returns (record row, dropped)."""
    if mode == CLIP and clip_qty > 0:
        r = _record_nb(records, istate, rule, CLIP, kind, side, price, qty, oid, why)
        records[r, C_DONE_QTY] = clip_qty
        return r, False
    if mode == PENALIZE:  # allowed as asked
        r = _record_nb(records, istate, rule, PENALIZE, kind, side, price, qty, oid, why)
        records[r, C_DONE_QTY] = qty
        return r, False
    if mode == CLIP:
        why += SUFFIX_CLIPPED_TO_NOTHING if clip_qty == 0 else SUFFIX_NOT_CLIPPABLE
    r = _record_nb(records, istate, rule, BLOCK, kind, side, price, qty, oid, why)
    return r, True


# Each rule's check on one message: returns (drop, qty, price), the message as it goes on
# (shrunk or repriced when the rule clips it); `c` is the checks' ``Checks``.
@kernel
def _restricted_nb(book, c, kind, side, price, qty, oid):
    """Restricted list: the side is on it."""
    params = c.params
    m = params[R_RESTRICTED]
    if m != OFF and (params[P_BUY_RESTRICTED] if side == 1 else params[P_SELL_RESTRICTED]) > 0:
        r, drop = _hit_nb(
            c.records, c.istate, R_RESTRICTED, m, kind, side, price, qty, oid, -1, WHY_RESTRICTED
        )
        _breach_nb(book, c)
        return drop, qty, price
    return False, qty, price


@kernel
def _duplicate_nb(book, c, kind, side, price, qty, oid):
    """Duplicate orders: the same kind, side, price and qty sent within the window."""
    params, istate, dup = c.params, c.istate, c.dup
    m = params[R_DUPLICATE]
    if m == OFF or kind == k.MODIFY:
        return False, qty, price
    rows = dup.shape[0]
    step = istate[I_STEP]
    while istate[I_DUP_N] > 0 and dup[istate[I_DUP_HEAD], 0] < step - params[P_DUP_WINDOW]:
        istate[I_DUP_HEAD] = (istate[I_DUP_HEAD] + 1) % rows
        istate[I_DUP_N] -= 1
    found = False
    for a in range(istate[I_DUP_N]):
        d = dup[(istate[I_DUP_HEAD] + a) % rows]
        if d[1] == kind and d[2] == side and d[3] == price and d[4] == qty:
            found = True
            break
    if not found:
        return False, qty, price
    r, drop = _hit_nb(
        c.records, istate, R_DUPLICATE, m, kind, side, price, qty, oid, -1, WHY_DUPLICATE
    )
    _breach_nb(book, c)
    return drop, qty, price


@kernel
def _collar_nb(book, c, kind, side, price, qty, oid):
    """Price collar: limits, and modifies that reprice, too far from the mid."""
    params, meta, records = c.params, book.meta, c.records
    m = params[R_COLLAR]
    if m == OFF or price <= 0:
        return False, qty, price
    bid, ask = meta[k.BEST_BID], meta[k.BEST_ASK]
    if bid == 0 or ask == 0:
        return False, qty, price
    mid = 0.5 * (bid + ask)
    band = params[P_COLLAR_PCT] * mid if params[P_COLLAR_PCT] >= 0 else np.inf
    if params[P_COLLAR_SPREADS] >= 0:
        band = min(band, params[P_COLLAR_SPREADS] * (ask - bid))
    if not abs(price - mid) > band:
        return False, qty, price
    edge = int(np.floor(mid + band)) if price > mid else int(np.ceil(mid - band))
    # clipping may only make a price less aggressive: a passive price far from
    # the mid is refused, never pulled toward the market
    clip_qty = qty if side * (edge - price) < 0 else -1
    r, drop = _hit_nb(
        records, c.istate, R_COLLAR, m, kind, side, price, qty, oid, clip_qty, WHY_COLLAR
    )
    if not drop and m == CLIP:
        records[r, C_DONE_PRICE] = edge
    records[r, C_V1] = mid
    records[r, C_V2] = band
    _breach_nb(book, c)
    if drop:
        return True, qty, price
    return False, qty, (edge if m == CLIP else price)


@kernel
def _stp_nb(book, pending, c, kind, side, price, qty, oid):
    """Self-trade prevention: the message would cross the agent's own resting orders (those
    `pending` does not cancel)."""
    params, istate, live, ids, records = c.params, c.istate, c.live, c.ids, c.records
    m = params[R_STP]
    if m == OFF or istate[I_N_LIVE] <= 0 or (kind == k.MODIFY and price <= 0):
        return False, qty, price
    start = istate[I_N_IDS]
    end = start
    for j in range(istate[I_N_LIVE]):
        o = live[j, 0]
        p = live[j, 2]
        if (
            o != oid
            and live[j, 1] == -side
            and not _pending_nb(pending, o)
            and (kind == k.MARKET or (side == 1 and price >= p) or (side == -1 and price <= p))
        ):
            ids[end] = o
            end += 1
    if end == start:
        return False, qty, price
    istate[I_N_IDS] = end
    if m == PENALIZE:
        r, drop = _hit_nb(records, istate, R_STP, m, kind, side, price, qty, oid, -1, WHY_STP)
        records[r, C_IDS] = start
        records[r, C_N_IDS] = end - start
    else:
        policy = params[P_STP_POLICY]
        n_cancelled = 0
        if policy != STP_NEWEST:
            n_cancelled = cancel_resting_nb(book, c, k.EMPTY_KEY, -side)
        drop = policy != STP_OLDEST
        action = BLOCK if drop else CANCEL
        r = _record_nb(records, istate, R_STP, action, kind, side, price, qty, oid, WHY_STP)
        records[r, C_DONE_QTY] = 0 if drop else qty
        records[r, C_IDS] = start
        records[r, C_N_IDS] = end - start
        records[r, C_CANCELLED] = end
        records[r, C_N_CANCELLED] = n_cancelled
    _breach_nb(book, c)
    return drop, qty, price


@kernel
def _wash_nb(book, c, kind, side, price, qty, oid):
    """Wash trades: offsetting the agent's opposite fills of the window."""
    params, istate, owner_stats = c.params, c.istate, book.owner_stats
    m = params[R_WASH]
    if m == OFF or istate[I_FILLS_N] <= 0:
        return False, qty, price
    first = c.fills[istate[I_FILLS_HEAD]]
    if side == 1:
        opposite = owner_stats[AGENT, k.SOLD_QTY] - first[2]
    else:
        opposite = owner_stats[AGENT, k.BOUGHT_QTY] - first[1]
    if not min(qty, opposite) >= params[P_WASH_MIN]:
        return False, qty, price
    r, drop = _hit_nb(c.records, istate, R_WASH, m, kind, side, price, qty, oid, -1, WHY_WASH)
    c.records[r, C_V1] = opposite
    _breach_nb(book, c)
    return drop, qty, price


@kernel
def _size_nb(book, c, kind, side, price, qty, oid):
    """Order size: quantity, then notional."""
    params, istate, records, meta = c.params, c.istate, c.records, book.meta
    m = params[R_SIZE]
    if m == OFF:
        return False, qty, price
    if params[P_MAX_QTY] >= 0 and qty > params[P_MAX_QTY]:
        cap = int(params[P_MAX_QTY])
        r, drop = _hit_nb(records, istate, R_SIZE, m, kind, side, price, qty, oid, cap, WHY_MAX_QTY)
        _breach_nb(book, c)
        if drop:
            return True, qty, price
        if m == CLIP:
            qty = cap
    if params[P_MAX_NOTIONAL] >= 0:
        px = price
        if px <= 0 and kind == k.MODIFY:
            j = _live_index_nb(c.live, istate[I_N_LIVE], oid)
            px = c.live[j, 2] if j >= 0 else 0
        if px <= 0:  # a market order walks from the far touch
            px = meta[k.BEST_ASK] if side == 1 else meta[k.BEST_BID]
            if px == 0:
                px = int(params[P_ARRIVAL])
        unit = px * params[P_TICK_SIZE]
        if qty * unit > params[P_MAX_NOTIONAL]:
            cap = int(params[P_MAX_NOTIONAL] // unit)
            r, drop = _hit_nb(
                records, istate, R_SIZE, m, kind, side, price, qty, oid, cap, WHY_NOTIONAL
            )
            records[r, C_V1] = qty * unit
            _breach_nb(book, c)
            if drop:
                return True, qty, price
            if m == CLIP:
                qty = cap
    return False, qty, price


@kernel
def _participation_nb(book, c, kind, side, price, qty, oid):
    """Participation: what takes liquidity (market orders, marketable limits) only, within a
    fraction of the last interval's volume."""
    params, fstate, meta = c.params, c.fstate, book.meta
    m = params[R_PARTICIPATION]
    if m == OFF:
        return False, qty, price
    takes = kind == k.MARKET
    if not takes and kind != k.MODIFY and price > 0:
        far = meta[k.BEST_ASK] if side == 1 else meta[k.BEST_BID]
        takes = far > 0 and (price >= far if side == 1 else price <= far)
    if not takes:
        return False, qty, price
    cap = int(params[P_MAX_RATE] * fstate[F_INTERVAL_VOLUME])
    if not qty > cap:
        return False, qty, price
    why = WHY_PARTICIPATION
    r, drop = _hit_nb(
        c.records, c.istate, R_PARTICIPATION, m, kind, side, price, qty, oid, cap, why
    )
    c.records[r, C_V1] = fstate[F_INTERVAL_VOLUME]
    _breach_nb(book, c)
    if drop:
        return True, qty, price
    return False, (cap if m == CLIP else qty), price


@kernel
def _position_nb(book, pending, c, kind, side, price, qty, oid):
    """Position: filled plus resting (what `pending` does not cancel) plus this order, within
    the limit."""
    params, istate, live, records, owner_stats = (
        c.params,
        c.istate,
        c.live,
        c.records,
        book.owner_stats,
    )
    m = params[R_POSITION]
    if m == OFF:
        return False, qty, price
    limit = int(params[P_MAX_POSITION]) if params[P_MAX_POSITION] >= 0 else int(params[P_QUANTITY])
    net = owner_stats[AGENT, k.BOUGHT_QTY] - owner_stats[AGENT, k.SOLD_QTY]
    resting = 0
    for j in range(istate[I_N_LIVE]):
        o = live[j, 0]
        if o != oid and live[j, 1] == side and live[j, 3] >= 0 and not _pending_nb(pending, o):
            resting += live[j, 3]
    cap = limit - side * net - resting  # most this order may add on its side
    if not qty > cap:
        return False, qty, price
    cap = max(cap, 0)
    r, drop = _hit_nb(
        records, istate, R_POSITION, m, kind, side, price, qty, oid, cap, WHY_POSITION
    )
    records[r, C_V1] = net
    records[r, C_V2] = resting
    records[r, C_V3] = limit
    _breach_nb(book, c)
    if drop:
        return True, qty, price
    return False, (cap if m == CLIP else qty), price


@kernel
def _throttle_nb(book, c, kind, side, price, qty, oid):
    """Throttle: message rate over the window, and the order-to-trade ratio."""
    params, istate, sent, owner_stats = c.params, c.istate, c.sent, book.owner_stats
    m = params[R_THROTTLE]
    if m == OFF:
        return False, qty, price
    rows = sent.shape[0]
    step = istate[I_STEP]
    while istate[I_SENT_N] > 0 and sent[istate[I_SENT_HEAD]] <= step - params[P_THROTTLE_WINDOW]:
        istate[I_SENT_HEAD] = (istate[I_SENT_HEAD] + 1) % rows
        istate[I_SENT_N] -= 1
    why = -1
    value = 0.0
    if istate[I_SENT_N] + 1 > params[P_MAX_MESSAGES]:
        why, value = WHY_RATE, float(istate[I_SENT_N] + 1)
    elif params[P_MAX_OTR] >= 0 and istate[I_ORDERED] + qty >= params[P_MIN_VOLUME]:
        filled = max(owner_stats[AGENT, k.BOUGHT_QTY] + owner_stats[AGENT, k.SOLD_QTY], 1)
        ratio = (istate[I_ORDERED] + qty) / filled
        if ratio > params[P_MAX_OTR]:
            why, value = WHY_ORDER_TO_TRADE, ratio
    if why < 0:
        return False, qty, price
    r, drop = _hit_nb(c.records, istate, R_THROTTLE, m, kind, side, price, qty, oid, -1, why)
    c.records[r, C_V1] = value
    _breach_nb(book, c)
    return drop, qty, price


@kernel
def _check_nb(book, pending, c, kind, side, price, qty, oid):
    """Every rule on one message, in order; returns (qty, price) to send, qty 0 to drop it."""
    drop, qty, price = _restricted_nb(book, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _duplicate_nb(book, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _collar_nb(book, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _stp_nb(book, pending, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _wash_nb(book, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _size_nb(book, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _participation_nb(book, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _position_nb(book, pending, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    drop, qty, price = _throttle_nb(book, c, kind, side, price, qty, oid)
    if drop:
        return 0, price
    return qty, price


@kernel
def _sent_nb(params, istate, live, dup, sent, kind, side, price, qty, oid):
    """A message is going to the book: remember it for throttle, duplicates and STP."""
    step = istate[I_STEP]
    if params[R_THROTTLE] != OFF:
        r = (istate[I_SENT_HEAD] + istate[I_SENT_N]) % sent.shape[0]
        sent[r] = step
        istate[I_SENT_N] += 1
        istate[I_ORDERED] += qty
    if params[R_DUPLICATE] != OFF and kind != k.MODIFY:
        r = (istate[I_DUP_HEAD] + istate[I_DUP_N]) % dup.shape[0]
        dup[r, 0], dup[r, 1], dup[r, 2], dup[r, 3], dup[r, 4] = step, kind, side, price, qty
        istate[I_DUP_N] += 1
    if kind == k.LIMIT:
        j = _live_index_nb(live, istate[I_N_LIVE], oid)
        if j < 0:
            j = istate[I_N_LIVE]
            istate[I_N_LIVE] = j + 1
        live[j, 0], live[j, 1], live[j, 2], live[j, 3] = oid, side, price, -1
    elif kind == k.MODIFY and price > 0:
        j = _live_index_nb(live, istate[I_N_LIVE], oid)
        if j >= 0:
            live[j, 2] = price


@kernel
def pre_trade_nb(msgs, book, pending, fbuf, ibuf):
    """Check a batch of new orders and modifies; compact the allowed ones (shrunk or repriced
    as the rules say) to the front of `msgs`. Returns (``STATUS.done``, how many, records
    written), or (``STATUS.need_check_room``, 0, 0) with nothing touched when a buffer could
    overflow. Records start afresh at row 0 on each call."""
    c = views_nb(fbuf, ibuf)
    params, records, istate, live, dup, sent, ids = (
        c.params,
        c.records,
        c.istate,
        c.live,
        c.dup,
        c.sent,
        c.ids,
    )
    orders, keys, slots = book.orders, book.keys, book.slots
    n = msgs.shape[0]
    if (
        istate[I_N_LIVE] + n > live.shape[0]
        or istate[I_DUP_N] + n > dup.shape[0]
        or istate[I_SENT_N] + n > sent.shape[0]
        or n * RECORDS_PER_MESSAGE > records.shape[0]
        or n * 3 * (live.shape[0] + 1) > ids.shape[0]
    ):
        return STATUS.need_check_room, 0, 0
    istate[I_N_RECORDS] = 0
    istate[I_N_IDS] = 0
    if istate[I_N_LIVE] > 0:
        refresh_live_nb(orders, keys, slots, live, istate)
    for i in range(n):
        msg = msgs[i]
        kind, side, price, qty, oid = msg.kind, msg.side, msg.price, msg.qty, msg.order_id
        if kind == k.MODIFY:  # its side: the tracked order's, else the book's, else the env's
            j = _live_index_nb(live, istate[I_N_LIVE], oid)
            if j >= 0:
                side = live[j, 1]
            else:
                slot = k.hash_find_nb(keys, slots, oid)
                side = orders[slot].side if slot >= 0 else int(params[P_SIDE])
        send_qty, send_price = 0, price
        killed = istate[I_KILLED] != 0
        if not killed:
            send_qty, send_price = _check_nb(book, pending, c, kind, side, price, qty, oid)
            killed = istate[I_KILLED] != 0 and send_qty > 0
        if killed:  # the switch is (or just got) tripped: nothing more reaches the book
            _record_nb(records, istate, R_KILL, BLOCK, kind, side, price, qty, oid, WHY_KILLED)
            send_qty = 0
        msg.qty = send_qty
        msg.price = send_price
    out = 0
    for i in range(n):
        msg = msgs[i]
        if msg.qty > 0:
            _sent_nb(
                params,
                istate,
                live,
                dup,
                sent,
                msg.kind,
                msg.side,
                msg.price,
                msg.qty,
                msg.order_id,
            )
            if out != i:
                msgs[out] = msg
            out += 1
    return STATUS.done, out, istate[I_N_RECORDS]
