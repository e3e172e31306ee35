"""numba kernels of the limit order book: plain functions over preallocated arrays.

State (owned by :class:`trendgym.envs.lob.book.OrderBook`; kernels that change the book take
the six arrays as one ``layout.Book``):

- ``orders``  ORDER_DTYPE pool; a live order is linked into its price level's FIFO
  (``prev``/``next`` are slot indices, -1 = none); free slots are chained through ``next``.
- ``levels``  LEVEL_DTYPE, one row per tick in the price window ``[base, base + len)``.
- ``keys``/``slots``  open-addressing hash table (linear probing, backward-shift deletion)
  from order id to pool slot, so cancel and modify by id are O(1). A book whose
  ``meta[UNINDEXED_BACKGROUND]`` is 1 keeps the background flow's orders (owner 0) out of it:
  the flow cancels by pool slot, never by id, which saves the table's two random memory
  accesses per flow event (costly when many books share the caches).
- ``meta``    int64 scalars (indices below); best prices are absolute ticks, 0 = side empty.
- ``owner_stats`` int64 (MAX_OWNERS, N_OWNER_STATS): per-owner fill report.

Kernels trust their inputs: :class:`OrderBook` validates every batch and sizes every array
before calling them (the pool, hash table and price window never overflow inside a kernel).
Kernels never allocate: before each message they check that the trade buffer can hold
the worst case (every resting order plus every iceberg refill) and hand back to the caller
to grow it otherwise.
"""

import numpy as np
from numba import njit

from trendgym.envs.lob.layout import STATUS, layout

# Hot-path kernels never allocate, so they are compiled without numba's reference counting:
# with it, every call increfs/decrefs each array argument with atomic operations that the
# pruning pass cannot remove around loops, which costs many times the work of a hash probe.
kernel = njit(cache=True, _nrt=False)
# Helpers called once or more per message are inlined into their callers: a numba call passes
# every array as an exploded struct, which costs more than the work of a small helper.
inline_kernel = njit(cache=True, _nrt=False, inline="always")

# ---------------------------------------------------------------------------------- dtypes
MESSAGE_DTYPE = np.dtype(
    [
        ("kind", np.int8),  # 0 limit, 1 market, 2 cancel, 3 modify
        ("side", np.int8),  # +1 buy, -1 sell (ignored by cancel and modify)
        ("owner", np.int16),  # 0 background flow; small ints tag other participants
        ("price", np.int64),  # limit price in ticks; modify: new price (0 = keep)
        ("qty", np.int64),  # limit/market quantity; modify: new total remaining quantity
        ("order_id", np.int64),
        ("peak", np.int64),  # iceberg display size; 0 = fully displayed
    ],
    align=True,
)
TRADE_DTYPE = np.dtype(
    [
        ("taker_id", np.int64),
        ("maker_id", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("taker_side", np.int8),
        ("taker_owner", np.int16),
        ("maker_owner", np.int16),
    ],
    align=True,
)
ORDER_DTYPE = np.dtype(
    [
        ("id", np.int64),
        ("price", np.int64),
        ("qty", np.int64),  # displayed remaining
        ("hidden", np.int64),  # iceberg reserve not yet displayed
        ("peak", np.int64),  # display size of each iceberg refill (0 = plain order)
        ("next", np.int64),
        ("prev", np.int64),
        ("side", np.int8),
        ("owner", np.int16),
    ],
    align=True,
)
LEVEL_DTYPE = np.dtype(
    [("head", np.int64), ("tail", np.int64), ("qty", np.int64), ("count", np.int64)],
    align=True,
)

LIMIT, MARKET, CANCEL, MODIFY = 0, 1, 2, 3
BUY, SELL = 1, -1
MAX_OWNERS = 16
EMPTY_KEY = np.iinfo(np.int64).min  # reserved: never a valid order id

# meta indices
BASE = 0  # tick price of levels[0]
BEST_BID = 1  # 0 when the bid side is empty
BEST_ASK = 2  # 0 when the ask side is empty
FREE_HEAD = 3  # first free pool slot, -1 when full
N_LIVE = 4  # live orders (= used hash entries, unless background orders are unindexed)
N_BID_ORDERS = 5
N_ASK_ORDERS = 6
ADDED_QTY = 7  # limit quantity ever accepted (displayed + hidden)
CANCELLED_QTY = 8  # limit quantity removed by cancel / modify
TRADED_QTY = 9  # quantity of all trades
DROPPED_QTY = 10  # market-order quantity that found no liquidity
MARKET_QTY = 11  # market quantity ever submitted
LIMIT_TAKER_QTY = 12  # part of TRADED_QTY where the taker was a limit order
N_MESSAGES = 13
REFILLS = 14  # iceberg refills still to come, summed over live orders (bounds trades per message)
UNINDEXED_BACKGROUND = 15  # 1: owner 0's orders are not in the id table (see the module doc)
N_META = 16

# owner_stats columns
BOUGHT_QTY, BOUGHT_VALUE, SOLD_QTY, SOLD_VALUE, MAKER_QTY, TAKER_QTY = 0, 1, 2, 3, 4, 5
N_OWNER_STATS = 6

_HASH_MULT = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64 (Fibonacci hashing)


# ------------------------------------------------------------------------------ hash table
@inline_kernel
def _hash_nb(key, mask):
    h = key * _HASH_MULT
    return (h ^ (h >> 29)) & mask


@inline_kernel
def hash_find_nb(keys, slots, key):
    """Pool slot of order `key`, or -1 when it is not live."""
    mask = keys.shape[0] - 1
    i = _hash_nb(key, mask)
    while True:
        k = keys[i]
        if k == key:
            return slots[i]
        if k == EMPTY_KEY:
            return -1
        i = (i + 1) & mask


@inline_kernel
def hash_insert_nb(keys, slots, key, slot):
    """Map `key` to `slot`; the caller guarantees the key is absent and the table has room."""
    mask = keys.shape[0] - 1
    i = _hash_nb(key, mask)
    while keys[i] != EMPTY_KEY:
        i = (i + 1) & mask
    keys[i] = key
    slots[i] = slot


@inline_kernel
def hash_delete_nb(keys, slots, key):
    """Remove `key` by backward-shift deletion, so probe chains stay unbroken without tombstones."""
    mask = keys.shape[0] - 1
    i = _hash_nb(key, mask)
    while keys[i] != key:
        if keys[i] == EMPTY_KEY:
            return
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        k = keys[j]
        if k == EMPTY_KEY:
            break
        home = _hash_nb(k, mask)
        # move k back into the hole at i unless its home lies cyclically in (i, j]
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            keys[i] = k
            slots[i] = slots[j]
            i = j
    keys[i] = EMPTY_KEY
    slots[i] = -1


@inline_kernel
def indexed_nb(meta, owner):
    """Whether an order of `owner` is in the book's id table."""
    return owner != 0 or meta[UNINDEXED_BACKGROUND] == 0


@kernel
def rehash_nb(orders, keys, slots, meta):
    """Insert every live indexed order of the pool into empty `keys`/`slots` (after the
    table grew)."""
    for s in range(orders.shape[0]):
        if orders[s].qty > 0 and indexed_nb(meta, orders[s].owner):
            hash_insert_nb(keys, slots, orders[s].id, s)


# ------------------------------------------------------------------------------ FIFO levels
@inline_kernel
def _append_nb(orders, levels, base, slot):
    """Link `slot` at the back of its price level's queue (time priority)."""
    lv = orders[slot].price - base
    tail = levels[lv].tail
    orders[slot].prev = tail
    orders[slot].next = -1
    if tail < 0:
        levels[lv].head = slot
    else:
        orders[tail].next = slot
    levels[lv].tail = slot
    levels[lv].qty += orders[slot].qty
    levels[lv].count += 1


@inline_kernel
def _unlink_nb(orders, levels, base, slot):
    """Unlink `slot` from its level's queue in O(1); the order record itself is kept."""
    lv = orders[slot].price - base
    prv = orders[slot].prev
    nxt = orders[slot].next
    if prv < 0:
        levels[lv].head = nxt
    else:
        orders[prv].next = nxt
    if nxt < 0:
        levels[lv].tail = prv
    else:
        orders[nxt].prev = prv
    levels[lv].qty -= orders[slot].qty
    levels[lv].count -= 1


@inline_kernel
def _refresh_best_nb(levels, meta, side):
    """Move the best price of `side` outward past empty levels (the side is known non-empty)."""
    base = meta[BASE]
    if side == BUY:
        if meta[N_BID_ORDERS] == 0:
            meta[BEST_BID] = 0
            return
        lv = meta[BEST_BID] - base
        while levels[lv].count == 0:
            lv -= 1
        meta[BEST_BID] = lv + base
    else:
        if meta[N_ASK_ORDERS] == 0:
            meta[BEST_ASK] = 0
            return
        lv = meta[BEST_ASK] - base
        while levels[lv].count == 0:
            lv += 1
        meta[BEST_ASK] = lv + base


@inline_kernel
def _release_nb(orders, keys, slots, meta, slot):
    """Return an unlinked order's slot to the free list and forget its id."""
    if indexed_nb(meta, orders[slot].owner):
        hash_delete_nb(keys, slots, orders[slot].id)
    meta[REFILLS] -= _refills_nb(orders[slot].hidden, orders[slot].peak)
    orders[slot].qty = 0
    orders[slot].hidden = 0
    orders[slot].next = meta[FREE_HEAD]
    orders[slot].prev = -1
    meta[FREE_HEAD] = slot
    meta[N_LIVE] -= 1
    if orders[slot].side == BUY:
        meta[N_BID_ORDERS] -= 1
    else:
        meta[N_ASK_ORDERS] -= 1


@inline_kernel
def _remove_nb(orders, levels, keys, slots, meta, slot):
    """Take a resting order off the book entirely; returns the quantity it still had."""
    side = orders[slot].side
    price = orders[slot].price
    remaining = orders[slot].qty + orders[slot].hidden
    _unlink_nb(orders, levels, meta[BASE], slot)
    _release_nb(orders, keys, slots, meta, slot)
    best = meta[BEST_BID] if side == BUY else meta[BEST_ASK]
    if price == best and levels[price - meta[BASE]].count == 0:
        _refresh_best_nb(levels, meta, side)
    return remaining


# ------------------------------------------------------------------------------- matching
@inline_kernel
def _record_trade_nb(trades, n_trades, taker_id, taker_side, taker_owner, maker, price, qty):
    t = trades[n_trades]
    t.taker_id = taker_id
    t.maker_id = maker.id
    t.price = price
    t.qty = qty
    t.taker_side = taker_side
    t.taker_owner = taker_owner
    t.maker_owner = maker.owner


@inline_kernel
def _refills_nb(hidden, peak):
    """How many more times an order with this reserve will refill its display."""
    return (hidden + peak - 1) // peak if hidden > 0 else 0


@inline_kernel
def trade_room_needed_nb(meta):
    """Trades one message can produce at most: each resting order once, plus every iceberg
    refill, plus the taker's last partial fill."""
    return meta[N_LIVE] + meta[REFILLS] + 1


@inline_kernel
def _book_fill_nb(owner_stats, owner, side, price, qty, is_maker):
    if side == BUY:
        owner_stats[owner, BOUGHT_QTY] += qty
        owner_stats[owner, BOUGHT_VALUE] += qty * price
    else:
        owner_stats[owner, SOLD_QTY] += qty
        owner_stats[owner, SOLD_VALUE] += qty * price
    owner_stats[owner, MAKER_QTY if is_maker else TAKER_QTY] += qty


@inline_kernel
def match_nb(book, trades, n_trades, taker_id, taker_side, taker_owner, qty, limit_price):
    """Trade `qty` against the opposite side up to `limit_price` (0 = no limit), in
    price-time priority at the makers' prices. Returns (n_trades, unfilled qty).
    An iceberg maker whose display is exhausted refills from its reserve at the back of
    the queue, so the taker reaches it again only after everyone queued behind it."""
    orders, levels, keys, slots, meta, owner_stats = book
    base = meta[BASE]
    best_idx = BEST_ASK if taker_side == BUY else BEST_BID
    while qty > 0:
        best = meta[best_idx]
        if best == 0:
            break
        if limit_price > 0 and (
            (taker_side == BUY and best > limit_price)
            or (taker_side == SELL and best < limit_price)
        ):
            break
        lv = best - base
        while qty > 0 and levels[lv].count > 0:
            slot = levels[lv].head
            maker = orders[slot]
            traded = min(qty, maker.qty)
            _record_trade_nb(
                trades, n_trades, taker_id, taker_side, taker_owner, maker, best, traded
            )
            n_trades += 1
            _book_fill_nb(owner_stats, taker_owner, taker_side, best, traded, False)
            _book_fill_nb(owner_stats, maker.owner, -taker_side, best, traded, True)
            meta[TRADED_QTY] += traded
            qty -= traded
            maker.qty -= traded
            levels[lv].qty -= traded
            if maker.qty == 0:
                if maker.hidden > 0:
                    _unlink_nb(orders, levels, base, slot)
                    refill = min(maker.peak, maker.hidden)
                    meta[REFILLS] -= 1
                    maker.hidden -= refill
                    maker.qty = refill
                    _append_nb(orders, levels, base, slot)
                else:
                    _unlink_nb(orders, levels, base, slot)
                    _release_nb(orders, keys, slots, meta, slot)
        if levels[lv].count == 0:
            _refresh_best_nb(levels, meta, -taker_side)
    return n_trades, qty


@inline_kernel
def _rest_nb(book, order_id, side, owner, price, qty, peak):
    """Queue a (non-crossing) remainder at `price`; an iceberg shows `peak` and hides the rest."""
    orders, levels, keys, slots, meta, _ = book
    slot = meta[FREE_HEAD]
    o = orders[slot]
    meta[FREE_HEAD] = o.next
    o.id = order_id
    o.side = side
    o.owner = owner
    o.price = price
    shown = qty if peak <= 0 or peak >= qty else peak
    o.qty = shown
    o.hidden = qty - shown
    o.peak = peak if shown < qty else 0
    meta[REFILLS] += _refills_nb(o.hidden, o.peak)
    _append_nb(orders, levels, meta[BASE], slot)
    if indexed_nb(meta, owner):
        hash_insert_nb(keys, slots, order_id, slot)
    meta[N_LIVE] += 1
    if side == BUY:
        meta[N_BID_ORDERS] += 1
        if meta[BEST_BID] == 0 or price > meta[BEST_BID]:
            meta[BEST_BID] = price
    else:
        meta[N_ASK_ORDERS] += 1
        if meta[BEST_ASK] == 0 or price < meta[BEST_ASK]:
            meta[BEST_ASK] = price


@inline_kernel
def limit_nb(book, trades, n_trades, order_id, side, owner, price, qty, peak):
    """A limit order: trade what crosses at the makers' prices, rest the remainder at `price`."""
    meta = book.meta
    meta[ADDED_QTY] += qty
    n_trades, left = match_nb(book, trades, n_trades, order_id, side, owner, qty, price)
    meta[LIMIT_TAKER_QTY] += qty - left
    if left > 0:
        _rest_nb(book, order_id, side, owner, price, left, peak)
    return n_trades


@inline_kernel
def cancel_nb(orders, levels, keys, slots, meta, order_id):
    """Cancel a live order by id in O(1); an unknown or filled id is a no-op. Returns qty removed."""
    slot = hash_find_nb(keys, slots, order_id)
    if slot < 0:
        return 0
    removed = _remove_nb(orders, levels, keys, slots, meta, slot)
    meta[CANCELLED_QTY] += removed
    return removed


@inline_kernel
def modify_nb(book, trades, n_trades, order_id, new_price, new_qty):
    """Resize and/or reprice a live order. Shrinking at the same price keeps queue priority;
    a new price or a larger size sends it to the back (and it may trade if it now crosses).
    An unknown id is a no-op."""
    orders, levels, keys, slots, meta, _ = book
    slot = hash_find_nb(keys, slots, order_id)
    if slot < 0:
        return n_trades
    o = orders[slot]
    remaining = o.qty + o.hidden
    if new_price <= 0:
        new_price = o.price
    if new_price == o.price and new_qty <= remaining:
        cut = remaining - new_qty
        from_hidden = min(cut, o.hidden)
        meta[REFILLS] -= _refills_nb(o.hidden, o.peak)
        o.hidden -= from_hidden
        meta[REFILLS] += _refills_nb(o.hidden, o.peak)
        from_shown = cut - from_hidden
        o.qty -= from_shown
        levels[o.price - meta[BASE]].qty -= from_shown
        meta[CANCELLED_QTY] += cut
        return n_trades
    side, owner, peak = o.side, o.owner, o.peak
    meta[CANCELLED_QTY] += _remove_nb(orders, levels, keys, slots, meta, slot)
    return limit_nb(book, trades, n_trades, order_id, side, owner, new_price, new_qty, peak)


@kernel
def process_nb(msgs, start, book, trades, n_trades, check_live, validate):
    """Apply a batch from message `start` on. Returns (n_trades, index, status): done;
    need_slot / need_trade_room / need_window when the order pool / trade buffer / tick
    window may be too small for message `index` (grow it and call again from there);
    duplicate_id when the limit at `index` reuses a live id (only looked for when
    `check_live`) and invalid_message when it breaks a stateless rule (only looked for when
    `validate`, i.e. when the batch was not screened first): the caller then restores its
    snapshot."""
    orders, levels, keys, slots, meta, _ = book
    n_levels = levels.shape[0]
    for i in range(start, msgs.shape[0]):
        m = msgs[i]
        kind = m.kind
        if validate:
            if message_error_nb(m) != ERR.ok:
                return n_trades, i, STATUS.invalid_message
            if kind == LIMIT or (kind == MODIFY and m.price > 0):
                base = meta[BASE]
                if base == 0 or m.price < base or m.price >= base + n_levels:
                    return n_trades, i, STATUS.need_window
        if kind != CANCEL:
            if meta[FREE_HEAD] < 0:
                return n_trades, i, STATUS.need_slot
            if trades.shape[0] - n_trades < trade_room_needed_nb(meta):
                return n_trades, i, STATUS.need_trade_room
        if kind == LIMIT:
            if check_live and hash_find_nb(keys, slots, m.order_id) >= 0:
                return n_trades, i, STATUS.duplicate_id
            n_trades = limit_nb(
                book, trades, n_trades, m.order_id, m.side, m.owner, m.price, m.qty, m.peak
            )
        elif kind == MARKET:
            meta[MARKET_QTY] += m.qty
            n_trades, left = match_nb(book, trades, n_trades, m.order_id, m.side, m.owner, m.qty, 0)
            meta[DROPPED_QTY] += left
        elif kind == CANCEL:
            cancel_nb(orders, levels, keys, slots, meta, m.order_id)
        else:
            n_trades = modify_nb(book, trades, n_trades, m.order_id, m.price, m.qty)
        meta[N_MESSAGES] += 1
    return n_trades, msgs.shape[0], STATUS.done


# -------------------------------------------------------------------------------- queries
@kernel
def depth_nb(levels, meta, side, out):
    """Fill `out` (n, 2) with [price, displayed qty] of the best non-empty levels of `side`;
    returns how many were found."""
    best = meta[BEST_BID] if side == BUY else meta[BEST_ASK]
    if best == 0:
        return 0
    base = meta[BASE]
    lv = best - base
    step = -1 if side == BUY else 1
    found = 0
    while found < out.shape[0] and 0 <= lv < levels.shape[0]:
        if levels[lv].count > 0:
            out[found, 0] = lv + base
            out[found, 1] = levels[lv].qty
            found += 1
        lv += step
    return found


# the stateless rule a message breaks (what screen_nb and message_error_nb report)
ERR = layout("MessageError", "ok kind side qty limit_price modify_price price_range owner peak id")
MAX_TICK = 1 << 53


@inline_kernel
def message_error_nb(m):
    """The stateless rule message `m` breaks (an ERR field), or ERR.ok."""
    kind = m.kind
    if kind < 0 or kind > MODIFY:
        return ERR.kind
    trading = kind == LIMIT or kind == MARKET
    if trading and m.side != BUY and m.side != SELL:
        return ERR.side
    if (trading or kind == MODIFY) and m.qty <= 0:
        return ERR.qty
    if kind == LIMIT and m.price <= 0:
        return ERR.limit_price
    if kind == MODIFY and m.price < 0:
        return ERR.modify_price
    if m.price > MAX_TICK:
        return ERR.price_range
    if m.owner < 0 or m.owner >= MAX_OWNERS:
        return ERR.owner
    if kind == LIMIT and m.peak < 0:
        return ERR.peak
    if m.order_id == EMPTY_KEY:
        return ERR.id
    return ERR.ok


@kernel
def screen_nb(msgs, keys, slots):
    """One pass over a batch before anything is applied. Returns (bad_index, code, price_lo,
    price_hi, maybe_reused_id): the first message breaking a stateless rule (or -1, ERR.ok), the
    span of prices that may rest, and whether some limit id is live already or repeats
    within the batch (ids not strictly increasing), in which case the exact check must run
    under a snapshot."""
    lo, hi = MAX_TICK, 0
    maybe_reused = False
    last_id = EMPTY_KEY
    for i in range(msgs.shape[0]):
        m = msgs[i]
        code = message_error_nb(m)
        if code != ERR.ok:
            return i, code, 0, 0, False
        kind = m.kind
        if kind == LIMIT or (kind == MODIFY and m.price > 0):
            lo = min(lo, m.price)
            hi = max(hi, m.price)
        if kind == LIMIT and not maybe_reused:
            maybe_reused = m.order_id <= last_id or hash_find_nb(keys, slots, m.order_id) >= 0
            last_id = m.order_id
    return -1, ERR.ok, lo, hi, maybe_reused


@kernel
def top_of_book_nb(levels, meta, n_levels, out):
    """Fill `out` with [best_bid, best_ask, bid_qty_1, ask_qty_1, bid_qty_n, ask_qty_n]
    (qty summed over the best `n_levels` non-empty levels; 0 for an empty side)."""
    base = meta[BASE]
    for col, side in ((0, BUY), (1, SELL)):
        best = meta[BEST_BID] if side == BUY else meta[BEST_ASK]
        out[col] = best
        out[2 + col] = 0
        out[4 + col] = 0
        if best == 0:
            continue
        lv = best - base
        step = -1 if side == BUY else 1
        found = 0
        while found < n_levels and 0 <= lv < levels.shape[0]:
            if levels[lv].count > 0:
                if found == 0:
                    out[2 + col] = levels[lv].qty
                out[4 + col] += levels[lv].qty
                found += 1
            lv += step


@kernel
def order_state_nb(orders, levels, keys, slots, meta, order_id, out):
    """Fill `out` with [remaining qty (shown + hidden), price, queue ahead] of a live order;
    all zeros when it is not live. Returns whether it is live."""
    slot = hash_find_nb(keys, slots, order_id) if order_id != EMPTY_KEY else -1
    if slot < 0:
        out[0] = out[1] = out[2] = 0
        return False
    out[0] = orders[slot].qty + orders[slot].hidden
    out[1] = orders[slot].price
    ahead = 0
    s = levels[orders[slot].price - meta[BASE]].head
    while s != slot:
        ahead += orders[s].qty
        s = orders[s].next
    out[2] = ahead
    return True
