"""numba kernels that rebuild an `OrderBook` from a message tape (see ``tape.py``).

Every change goes through the book's own kernels (a limit that rests, cancel, modify down in
place); only resync grows anonymous volume in place, which no book kernel does. The few
calls into ``kernels.py`` sit in the `_book_*` helpers below, so the book's kernel
signatures are met in one place.
"""

from __future__ import annotations

import numpy as np

from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.kernels import inline_kernel, kernel
from trendgym.envs.lob.layout import STATUS
from trendgym.envs.lob.retry import run_to_done

EMPTY_ASK, EMPTY_BID = 9999999999, -9999999999  # LOBSTER's price of an empty level

NEW, CANCEL, DELETE, EXECUTE, HIDDEN, CROSS, HALT = 1, 2, 3, 4, 5, 6, 7

# counters the rebuild fills, in this order
STAT_NAMES = (
    "mismatched_rows",  # rows that differed from the source's orderbook
    "resyncs",  # rows after which the book was made to agree with the source
    "unknown_ids",  # cancels/executions of ids neither live nor anonymous volume
    "anonymous_reductions",  # cancels/executions on unknown ids taken from anonymous volume
    "overshoots",  # cancels/executions larger than what rested (the order removed)
    "crossing_adds",  # new orders that crossed the rebuilt book (the crossed levels removed)
    "duplicate_adds",  # new orders whose id was live (skipped)
    "halts",  # halt messages (price -1)
)
(
    S_MISMATCH,
    S_RESYNC,
    S_UNKNOWN,
    S_ANON,
    S_OVERSHOOT,
    S_CROSSING,
    S_DUPLICATE,
    S_HALTS,
) = range(len(STAT_NAMES))

# The kernels here never allocate and are compiled without reference counting, as the
# book's are (see kernels.py): counting the references of the book's arrays at every
# message would cost more than the message's own work.


@inline_kernel
def anonymous_id_nb(side, tick_price):
    """Negative ids name the anonymous volume of each (side, level): never a real order."""
    return -(2 * tick_price + (1 if side == k.BUY else 0)) - 1


# ------------------------------------------------------------------ the book's kernels
# Off the per-message path, resting and matching are called, not inlined: the book's limit
# and match kernels inline their whole matching loop, and a copy at every call site makes
# compiling take minutes.
@inline_kernel
def book_limit_inline_nb(book, trades, n_trades, order_id, side, price, qty):
    """A limit order: trades what crosses into `trades` from `n_trades` on, rests the rest.
    Returns the new trade count."""
    return k.limit_nb(book, trades, n_trades, order_id, side, 0, price, qty, 0)


@inline_kernel
def book_rest_nb(book, order_id, side, price, qty):
    """A limit order known not to cross: rested at once (as ``limit_nb`` would, its matching
    loop skipped), the book's counters kept as it keeps them."""
    book[4][k.ADDED_QTY] += qty
    k._rest_nb(book, order_id, side, 0, price, qty, 0)


@kernel
def book_limit_nb(book, trades, n_trades, order_id, side, price, qty):
    """`book_limit_inline_nb` as a call, for paths off the per-message loop."""
    return book_limit_inline_nb(book, trades, n_trades, order_id, side, price, qty)


@kernel
def book_market_nb(book, trades, n_trades, order_id, side, qty):
    """A market order; returns the new trade count (an unfilled rest is dropped)."""
    meta = book[4]
    meta[k.MARKET_QTY] += qty
    n_trades, left = k.match_nb(book, trades, n_trades, order_id, side, 0, qty, 0)
    meta[k.DROPPED_QTY] += left
    return n_trades


@inline_kernel
def book_cancel_nb(book, order_id):
    orders, levels, keys, slots, meta, _ = book
    k.cancel_nb(orders, levels, keys, slots, meta, order_id)


@inline_kernel
def book_shrink_nb(book, slot, cut):
    """Take `cut` (less than it shows) from the displayed size of the order in `slot`,
    keeping its queue position: the book's modify-down, without its repricing branch."""
    orders, levels, _, _, meta, _ = book
    orders[slot].qty -= cut
    levels[orders[slot].price - meta[k.BASE]].qty -= cut
    meta[k.CANCELLED_QTY] += cut


@inline_kernel
def _reduce_nb(book, slot, size):
    """Take `size` from the order in `slot` (removing it when nothing is left); returns
    whether `size` exceeded what it had. Rebuilt orders show all they have."""
    orders, levels, keys, slots, meta, _ = book
    shown = orders[slot].qty
    if size >= shown:
        meta[k.CANCELLED_QTY] += k._remove_nb(orders, levels, keys, slots, meta, slot)
        return size > shown
    book_shrink_nb(book, slot, size)
    return False


@inline_kernel
def _clear_level_nb(book, price):
    """Remove every order resting at `price`."""
    orders, levels, _, _, meta, _ = book
    lv = price - meta[k.BASE]
    while levels[lv].count > 0:
        book_cancel_nb(book, orders[levels[lv].head].id)


@kernel
def _clear_crossing_nb(book, side, price):
    """Remove the opposite side's levels that an order at `price` on `side` would cross;
    returns whether there were any."""
    meta = book[4]
    crossed = False
    while True:
        opp = meta[k.BEST_ASK] if side == k.BUY else meta[k.BEST_BID]
        if opp == 0 or (side == k.BUY and opp > price) or (side == k.SELL and opp < price):
            return crossed
        crossed = True
        _clear_level_nb(book, opp)


# ------------------------------------------------------------------------ snapshot rows
@inline_kernel
def side_row_nb(levels, meta, side, tick, row, n_levels):
    """Write `side`'s best `n_levels` levels into `row` (LOBSTER layout, source prices)."""
    col = 2 if side == k.BUY else 0
    best = meta[k.BEST_BID] if side == k.BUY else meta[k.BEST_ASK]
    base = meta[k.BASE]
    step = -1 if side == k.BUY else 1
    found = 0
    # orders not yet passed: the walk stops at the side's last order, not at the edge of a
    # price window sized for the whole day
    left = meta[k.N_BID_ORDERS] if side == k.BUY else meta[k.N_ASK_ORDERS]
    if best > 0:
        lv = best - base
        while found < n_levels and left > 0 and 0 <= lv < levels.shape[0]:
            count = levels[lv].count
            if count > 0:
                row[4 * found + col] = (lv + base) * tick
                row[4 * found + col + 1] = levels[lv].qty
                found += 1
                left -= count
            lv += step
    empty = EMPTY_BID if side == k.BUY else EMPTY_ASK
    for j in range(found, n_levels):
        row[4 * j + col] = empty
        row[4 * j + col + 1] = 0


@inline_kernel
def _in_view_nb(row, n_levels, side, price):
    """Whether a change at `price` (source units) on `side` can alter the row's levels."""
    if side == k.BUY:
        last = row[4 * (n_levels - 1) + 2]
        return last == EMPTY_BID or price >= last
    last = row[4 * (n_levels - 1)]
    return last == EMPTY_ASK or price <= last


# ------------------------------------------------------------------------------ resync
@inline_kernel
def _in_file_nb(ref, lref, col, price):
    for j in range(lref):
        if ref[4 * j + col + 1] > 0 and ref[4 * j + col] == price:
            return True
    return False


@inline_kernel
def _drop_unseen_nb(book, ref, lref, side, tick):
    """Remove the levels of `side` the source's row does not show, down to its deepest."""
    levels, meta = book[1], book[4]
    col = 2 if side == k.BUY else 0
    shown = 0
    for j in range(lref):
        shown += ref[4 * j + col + 1] > 0
    bound = ref[4 * (lref - 1) + col] // tick if shown == lref else 0  # 0: the whole side
    best = meta[k.BEST_BID] if side == k.BUY else meta[k.BEST_ASK]
    if best == 0:
        return
    base = meta[k.BASE]
    step = -1 if side == k.BUY else 1
    n_side = k.N_BID_ORDERS if side == k.BUY else k.N_ASK_ORDERS
    kept = 0  # orders on levels passed and kept: the walk ends when no order lies beyond
    lv = best - base
    while kept < meta[n_side]:
        p = lv + base
        if bound > 0 and ((side == k.BUY and p < bound) or (side == k.SELL and p > bound)):
            return
        if levels[lv].count > 0:
            if _in_file_nb(ref, lref, col, p * tick):
                kept += levels[lv].count
            else:
                _clear_level_nb(book, p)
        lv += step


@inline_kernel
def _match_level_nb(book, trades, side, price, qty):
    """Make the level at `price` hold `qty`: grow or add its anonymous volume, or take the
    excess from the anonymous volume first, then from the back of the queue."""
    orders, levels, keys, slots, meta, _ = book
    lv = price - meta[k.BASE]
    diff = qty - levels[lv].qty
    anon = anonymous_id_nb(side, price)
    slot = k.hash_find_nb(keys, slots, anon)
    if diff > 0:
        if slot >= 0:  # grow in place: it keeps its place in the queue
            orders[slot].qty += diff
            levels[lv].qty += diff
            meta[k.ADDED_QTY] += diff
        else:
            book_limit_nb(book, trades, 0, anon, side, price, diff)
        return
    need = -diff
    if need > 0 and slot >= 0:
        take = min(need, orders[slot].qty)
        _reduce_nb(book, slot, take)
        need -= take
    while need > 0:
        tail = levels[lv].tail
        take = min(need, orders[tail].qty)
        _reduce_nb(book, tail, take)
        need -= take


@kernel
def resync_nb(book, trades, ref, lref, tick):
    """Make the book's best `lref` levels per side equal the source's row `ref`."""
    _drop_unseen_nb(book, ref, lref, k.SELL, tick)
    _drop_unseen_nb(book, ref, lref, k.BUY, tick)
    for j in range(lref):
        for col, side in ((0, k.SELL), (2, k.BUY)):
            if ref[4 * j + col + 1] > 0:
                _match_level_nb(book, trades, side, ref[4 * j + col] // tick, ref[4 * j + col + 1])


# ------------------------------------------------------------------------------ replay
@kernel
def price_span_nb(tape):
    """(lowest, highest) price (source units) of the visible events (new order to
    execution) in `tape`; (0, 0) when there are none. One pass, no temporary arrays."""
    lo, hi, seen = 0, 0, False
    for i in range(tape.shape[0]):
        m = tape[i]
        if m.event <= EXECUTE:
            p = m.price
            if not seen:
                lo, hi, seen = p, p, True
            elif p < lo:
                lo = p
            elif p > hi:
                hi = p
    return lo, hi


@inline_kernel
def apply_nb(book, trades, m, tick, counters):
    """Apply one tape message; returns the side whose levels may have changed (0 none, 2
    both) and the price (source units) of the change."""
    orders, _, keys, slots, meta, _ = book
    ev = m.event
    if ev == NEW:
        if k.hash_find_nb(keys, slots, m.order_id) >= 0:
            counters[S_DUPLICATE] += 1
            return 0, 0
        p = m.price // tick
        touched = m.direction
        opp = meta[k.BEST_ASK] if m.direction == k.BUY else meta[k.BEST_BID]
        if opp > 0 and (opp <= p if m.direction == k.BUY else opp >= p):
            _clear_crossing_nb(book, m.direction, p)
            counters[S_CROSSING] += 1
            touched = 2
        book_rest_nb(book, m.order_id, m.direction, p, m.size)
        return touched, m.price
    if ev <= EXECUTE:
        slot = k.hash_find_nb(keys, slots, m.order_id)
        if slot < 0:
            slot = k.hash_find_nb(keys, slots, anonymous_id_nb(m.direction, m.price // tick))
            if slot < 0:
                counters[S_UNKNOWN] += 1
                return 0, 0
            counters[S_ANON] += 1
        side, price = orders[slot].side, orders[slot].price * tick
        counters[S_OVERSHOOT] += _reduce_nb(book, slot, m.size)
        return side, price
    if ev == HALT and m.price == -1:
        counters[S_HALTS] += 1
    return 0, 0


@kernel
def rebuild_nb(book, trades, tape, tick, start, stop, out, out_from, ref, row, counters, resync):
    """Apply tape messages start..stop-1 to `book`. `row` (4 * depth) carries the rebuilt
    row from message to message (depth: the larger of `out`'s and `ref`'s); after message i
    its first columns go to ``out[i - out_from]`` when i >= out_from, and it is compared
    with ``ref[i]`` when `ref` has rows (and the book resynced to it if `resync`). Returns
    (next message, ``STATUS.done``) or, when the pool may lack room, (that message,
    ``STATUS.need_slot``)."""
    orders, levels, meta = book[0], book[1], book[4]
    n_row = row.shape[0] // 4
    n_out = out.shape[1] // 4
    lref = ref.shape[1] // 4 if ref.shape[0] > 0 else 0
    want_rows = n_row > 0
    for i in range(start, stop):
        if orders.shape[0] - meta[k.N_LIVE] < 2 * lref + 2:
            return i, STATUS.need_slot
        touched, price = apply_nb(book, trades, tape[i], tick, counters)
        if not want_rows:
            continue
        if touched == 2 or i == 0:
            side_row_nb(levels, meta, k.SELL, tick, row, n_row)
            side_row_nb(levels, meta, k.BUY, tick, row, n_row)
        elif touched != 0 and _in_view_nb(row, n_row, touched, price):
            side_row_nb(levels, meta, touched, tick, row, n_row)
        if lref > 0:
            same = True
            for c in range(4 * lref):
                if row[c] != ref[i, c]:
                    same = False
                    break
            if not same:
                counters[S_MISMATCH] += 1
                if resync:
                    resync_nb(book, trades, ref[i], lref, tick)
                    counters[S_RESYNC] += 1
                    side_row_nb(levels, meta, k.SELL, tick, row, n_row)
                    side_row_nb(levels, meta, k.BUY, tick, row, n_row)
        if i >= out_from:
            for c in range(4 * n_out):
                out[i - out_from, c] = row[c]
    return stop, STATUS.done


def run_rebuild(book, tape, tick, stop, out, out_from, ref, counters, resync) -> None:
    """Drive `rebuild_nb` over messages 0..stop-1, growing the book's pool when asked."""
    depth = max(out.shape[1], ref.shape[1] if ref.shape[0] else 0) // 4
    row = np.zeros(4 * depth, dtype=np.int64)
    trades = np.empty(1, dtype=k.TRADE_DTYPE)  # the rebuild never trades
    i = 0

    def call() -> int:
        nonlocal i
        i, status = rebuild_nb(
            book.state, trades, tape, np.int64(tick), i, stop, out, out_from, ref, row,
            counters, bool(resync),
        )  # fmt: skip
        return status

    run_to_done(call, lambda status: book.reserve(book.orders.shape[0]))
