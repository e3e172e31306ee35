"""Replay: a real message tape drives an env's book instead of the simulated flow.

The tape's messages are applied to the env's book as the tape rebuild applies them
(``lob/rebuild_nb.apply_nb``); the agent's orders sit in the same FIFO queues, so replayed
cancels and executions of orders ahead of the agent move it up. The queue model, with L3 ids:

- a replayed execution (event 4) of an order *behind* the agent at its price, or at a price
  worse than the agent's, fills the agent first (the aggressor would have met it first): the
  agent gets min(execution size, its size) at its own limit price; a hidden execution
  (event 5) at the agent's price or worse does the same (displayed orders go before hidden
  ones at a price);
- a replayed new order that crosses the agent's resting order trades with it (the agent at
  its price); what the agent took is gone from that order, and if nothing is left it never
  rests;
- replay assumes no impact: the replayed message is still applied as recorded, so the real
  order behind a fill is executed too, and nobody reacts to the agent's orders.

Liquidity the agent took (by its market orders, crossing limits, or the crossing new orders
above) stays gone: a tape order it took part of is tagged ``CONSUMED`` (owner), one it took
all of is remembered in the env's ring of ids; later messages on either are counted in
``EI.consumed_msgs`` and only reduce what is left (never below zero).

Halt messages set the env's trading state (``TRADING``, in ``EI.halt``). Outside open
trading the agent never fills, and its messages that the state refuses are dropped before
they reach the book (``reject_in_halt_nb``); the forced completion waits (``step.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trendgym.envs.execution.layout import (
    AGENT,
    CFG,
    CK,
    CONSUMED_SLOTS,
    EF,
    EI,
    PHASE,
    RS,
    TOB_LEVELS,
    TRADING,
)
from trendgym.envs.execution.observe import mid_nb
from trendgym.envs.execution.orders import copy_msg_nb
from trendgym.envs.execution.reset import clear_book_nb, draw_order_nb
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob import rebuild_nb as rb
from trendgym.envs.lob.flow import FS, IS
from trendgym.envs.lob.kernels import kernel
from trendgym.envs.lob.layout import STATUS, Book
from trendgym.envs.lob.rng import unit_nb

CONSUMED = k.MAX_OWNERS - 1  # owner tag of a tape order the agent took part of
AGENT_FIRST_ID = k.EMPTY_KEY + 1  # the agent's ids lie below every tape and anonymous id
NEW, EXECUTE, HIDDEN, HALT = rb.NEW, rb.EXECUTE, rb.HIDDEN, rb.HALT


@kernel
def apply_tape_nb(book, trades, m, tick, counters):
    """``rebuild_nb.apply_nb`` as a call: it inlines the book's whole matching loop, and one
    copy of it serves every call site here (compiling a copy at each takes minutes)."""
    rb.apply_nb(book, trades, m, tick, counters)


# ------------------------------------------------------------------ the agent's fills
@njit(cache=True, _nrt=False)
def agent_fill_nb(book, own, qty, fstate):
    """The agent's resting order in slot `own` trades `qty` at its price, as maker; returns
    its slot, or -1 when nothing is left of it."""
    orders, meta, stats = book.orders, book.meta, book.owner_stats
    o = orders[own]
    price = o.price
    if o.side == k.BUY:
        stats[AGENT, k.BOUGHT_QTY] += qty
        stats[AGENT, k.BOUGHT_VALUE] += qty * price
    else:
        stats[AGENT, k.SOLD_QTY] += qty
        stats[AGENT, k.SOLD_VALUE] += qty * price
    stats[AGENT, k.MAKER_QTY] += qty
    meta[k.TRADED_QTY] += qty
    fstate[FS.traded_qty] += qty
    fstate[FS.traded_value] += qty * price
    if qty >= o.qty:
        rb.book_cancel_nb(book, o.id)
        return -1
    rb.book_shrink_nb(book, own, qty)
    return own


@njit(cache=True, _nrt=False, inline="always")
def agent_ahead_nb(book, own, m, tick):
    """Whether execution `m` (on the agent's side) would have met the agent's order first:
    at a worse price, or behind it in the queue of its price (hidden volume: at its price)."""
    orders, keys, slots = book.orders, book.keys, book.slots
    a, q, side = orders[own].price, m.price // tick, orders[own].side
    if (side == k.BUY and a > q) or (side == k.SELL and a < q):
        return True
    if a != q:
        return False
    if m.event == HIDDEN:
        return True
    slot = k.hash_find_nb(keys, slots, m.order_id)
    if slot < 0:  # anonymous volume, always first in its level
        return False
    s = orders[own].next
    while s >= 0:
        if s == slot:
            return True
        s = orders[s].next
    return False


# ------------------------------------------------------------------ consumed liquidity
@njit(cache=True, _nrt=False)
def remember_nb(consumed, ei, order_id):
    """Add `order_id` to the env's ring of tape orders the agent took all of."""
    consumed[ei[EI.n_consumed] % CONSUMED_SLOTS] = order_id
    ei[EI.n_consumed] += 1


@njit(cache=True, _nrt=False, inline="always")
def remembered_nb(consumed, ei, order_id):
    for j in range(min(ei[EI.n_consumed], CONSUMED_SLOTS)):
        if consumed[j] == order_id:
            return True
    return False


@njit(cache=True, _nrt=False, inline="always")
def consumed_hit_nb(book, consumed, ei, m, tick):
    """Whether cancel/execution `m` falls on liquidity the agent took (then counted), and
    whether it must be skipped (the agent took all of it: nothing is left to reduce)."""
    orders, keys, slots = book.orders, book.keys, book.slots
    slot = k.hash_find_nb(keys, slots, m.order_id)
    if slot >= 0:
        return orders[slot].owner == CONSUMED, False
    if remembered_nb(consumed, ei, m.order_id):
        return True, True
    anon = rb.anonymous_id_nb(m.direction, m.price // tick)
    slot = k.hash_find_nb(keys, slots, anon)
    if slot >= 0:
        return orders[slot].owner == CONSUMED, False
    gone = remembered_nb(consumed, ei, anon)
    return gone, gone


@njit(cache=True, _nrt=False)
def take_from_nb(book, consumed, ei, maker_id):
    """Mark tape order `maker_id` as one the agent took from (tagged if some is left)."""
    slot = k.hash_find_nb(book.keys, book.slots, maker_id)
    if slot >= 0:
        book.orders[slot].owner = CONSUMED
    else:
        remember_nb(consumed, ei, maker_id)


@njit(cache=True, _nrt=False)
def note_consumed_nb(i, book, trades, ep, replay):
    """After the agent's batch: mark every tape order its trades took from."""
    ei = ep.ei[i]
    b = book
    row = Book(b.orders[i], b.levels[i], b.keys[i], b.slots[i], b.meta[i], b.owner_stats[i])
    for j in range(ei[EI.batch_trades]):
        take_from_nb(row, replay.consumed[i], ei, trades[i, j].maker_id)
    ei[EI.batch_trades] = 0


# ------------------------------------------------------------------ halts
@njit(cache=True, _nrt=False, inline="always")
def set_trading_nb(ei, price):
    """A halt message's price sets the trading state: -1 halted, 0 quoting, 1 open (any
    other price leaves it)."""
    if price == -1:
        ei[EI.halt] = TRADING.halted
    elif price == 0:
        ei[EI.halt] = TRADING.quoting
    elif price == 1:
        ei[EI.halt] = TRADING.open


@njit(cache=True, _nrt=False)
def _rejected_in_halt_nb(meta, m, state):
    """Whether the agent's message `m` is refused in trading state `state` (not open):
    halted, all but cancels; quoting, market orders and limits that would cross."""
    if m.kind == k.CANCEL:
        return False
    if state == TRADING.halted or m.kind == k.MARKET:
        return True
    if m.kind != k.LIMIT:
        return False  # a modify changes only the size: it never crosses
    opp = meta[k.BEST_ASK] if m.side == k.BUY else meta[k.BEST_BID]
    return opp > 0 and (m.price >= opp if m.side == k.BUY else m.price <= opp)


@njit(cache=True, _nrt=False)
def reject_in_halt_nb(i, book, ep):
    """Before env `i`'s batch reaches its book in a halt: drop the messages the trading
    state refuses (counted in ``EI.rejected``; nothing of them trades, so the agent's
    quantity and cash stay as they were), keeping the others in order."""
    ei, msgs = ep.ei[i], ep.msgs[i]
    state = ei[EI.halt]
    n = ei[EI.n_msgs]
    if state == TRADING.open or ei[EI.msg_start] != 0 or n == 0:
        return
    kept = 0
    for j in range(n):
        if _rejected_in_halt_nb(book.meta[i], msgs[j], state):
            ei[EI.rejected] += 1
            if msgs[j].kind == k.LIMIT and msgs[j].order_id == ei[EI.own_id]:
                ei[EI.own_id] = k.EMPTY_KEY  # a refused limit never rests
        else:
            if kept != j:
                copy_msg_nb(msgs[kept], msgs[j])
            kept += 1
    ei[EI.n_msgs] = kept


# ------------------------------------------------------------------ one tape message
@njit(cache=True, _nrt=False)
def crossing_new_nb(book, trades, m, tick, own, fstate, consumed, ei, counters):
    """A new tape order that crosses the agent's resting order trades with it first; returns
    the agent's slot (or -1)."""
    orders = book.orders
    qty = min(m.size, orders[own].qty)
    own = agent_fill_nb(book, own, qty, fstate)
    if qty == m.size:  # all of it traded with the agent: it never rests
        remember_nb(consumed, ei, m.order_id)
        return own
    apply_tape_nb(book, trades, m, tick, counters)  # the rest rests as recorded, less the fill
    slot = k.hash_find_nb(book.keys, book.slots, m.order_id)
    if slot >= 0:
        rb.book_shrink_nb(book, slot, qty)
        orders[slot].owner = CONSUMED
    return own


@njit(cache=True, _nrt=False, inline="always")
def replay_message_nb(book, trades, m, tick, own, fstate, consumed, ei, counters):
    """Apply tape message `m` with the agent's resting order (slot `own`, -1 none) in the
    queue (the model in the module doc); returns the agent's slot after it."""
    orders = book.orders
    side = ei[EI.side]
    ev = m.event
    trading = ei[EI.halt] == TRADING.open  # in a halt the agent's order never fills
    if ev == NEW:
        if trading and own >= 0 and m.direction == -side:
            a, p = orders[own].price, m.price // tick
            if (side == k.BUY and p <= a) or (side == k.SELL and p >= a):
                return crossing_new_nb(book, trades, m, tick, own, fstate, consumed, ei, counters)
        apply_tape_nb(book, trades, m, tick, counters)
        if own >= 0 and (orders[own].id != ei[EI.own_id] or orders[own].qty == 0):
            own = -1  # a crossing add cleared the agent's level (a data quirk)
        return own
    if ev == EXECUTE or ev == HIDDEN:
        if trading and own >= 0 and m.direction == side and agent_ahead_nb(book, own, m, tick):
            own = agent_fill_nb(book, own, min(m.size, orders[own].qty), fstate)
        fstate[FS.traded_qty] += m.size
        fstate[FS.traded_value] += m.size * (m.price // tick)
        if ev == HIDDEN:
            return own
    if ev <= EXECUTE:
        hit, skip = consumed_hit_nb(book, consumed, ei, m, tick)
        if hit:
            ei[EI.consumed_msgs] += 1
        if not skip:
            apply_tape_nb(book, trades, m, tick, counters)
        return own
    if ev == HALT:
        set_trading_nb(ei, m.price)
    apply_tape_nb(book, trades, m, tick, counters)  # halts are counted; crosses change nothing
    return own


# ------------------------------------------------------------------ a stretch of the tape
@njit(cache=True, _nrt=False, inline="always")
def _top_nb(levels, meta, side):
    best = meta[k.BEST_BID] if side == k.BUY else meta[k.BEST_ASK]
    return best, (levels[best - meta[k.BASE]].qty if best > 0 else 0)


@njit(cache=True, _nrt=False, inline="always")
def track_quotes_nb(book, fstate, istate):
    """After a message: the last known quotes and the order-flow imbalance, as the flow keeps
    them (Cont, Kukanov & Stoikov 2014)."""
    pb, qb = _top_nb(book.levels, book.meta, k.BUY)
    pa, qa = _top_nb(book.levels, book.meta, k.SELL)
    if pb > 0:
        istate[IS.last_bid] = pb
    if pa > 0:
        istate[IS.last_ask] = pa
    prev_bid, prev_bidq = istate[IS.prev_bid], istate[IS.prev_bidq]
    prev_ask, prev_askq = istate[IS.prev_ask], istate[IS.prev_askq]
    e = (qb if pb >= prev_bid else 0) - (prev_bidq if pb <= prev_bid else 0)
    e -= qa if (pa <= prev_ask) | (prev_ask == 0) else 0
    e += prev_askq if (pa >= prev_ask) & (prev_ask > 0) else 0
    fstate[FS.ofi] += e
    istate[IS.prev_bid], istate[IS.prev_bidq] = pb, qb
    istate[IS.prev_ask], istate[IS.prev_askq] = pa, qa


@njit(cache=True, _nrt=False)
def replay_run_nb(i, book, trades, flow, ep, replay):
    """Apply env `i`'s tape messages timed before ``ef[i, EF.t_end]``, then move its clock
    there; done, or ``need_slot`` before a message when the pool is full (resumable)."""
    b = book
    row = Book(b.orders[i], b.levels[i], b.keys[i], b.slots[i], b.meta[i], b.owner_stats[i])
    fstate, istate, ei = flow.fstate[i], flow.istate[i], ep.ei[i]
    tape, tick = replay.tape, replay.settings[RS.tick]
    consumed, counters = replay.consumed[i], replay.counters[i]
    t_end = ep.ef[i, EF.t_end]
    own = -1
    if ei[EI.own_id] != k.EMPTY_KEY:
        own = k.hash_find_nb(row.keys, row.slots, ei[EI.own_id])
    c = ei[EI.cursor]
    while c < tape.shape[0] and tape[c].time < t_end:
        if row.meta[k.FREE_HEAD] < 0:
            ei[EI.cursor] = c
            return STATUS.need_slot
        own = replay_message_nb(row, trades[i], tape[c], tick, own, fstate, consumed, ei, counters)
        track_quotes_nb(row, fstate, istate)
        c += 1
    ei[EI.cursor] = c
    fstate[FS.time] = t_end
    return STATUS.done


# ------------------------------------------------------------------ a replay reset
@njit(cache=True, _nrt=False)
def restore_nb(row, trades, replay, c, istate):
    """Rest checkpoint `c`'s orders in a cleared book (each level front to back)."""
    ck = replay.ck_orders
    for r in range(replay.ck_offsets[c], replay.ck_offsets[c + 1]):
        rb.book_limit_nb(row, trades, 0, ck[r, CK.order_id], ck[r, CK.side], ck[r, CK.price],
                         ck[r, CK.qty])  # fmt: skip
    istate[IS.last_bid], istate[IS.last_ask] = replay.ck_quotes[c, 0], replay.ck_quotes[c, 1]
    bid, bidq = _top_nb(row.levels, row.meta, k.BUY)
    ask, askq = _top_nb(row.levels, row.meta, k.SELL)
    istate[IS.prev_bid], istate[IS.prev_bidq] = bid, bidq
    istate[IS.prev_ask], istate[IS.prev_askq] = ask, askq


@njit(cache=True, _nrt=False)
def draw_replay_episode_nb(i, raw, cfg, ep, replay):
    """Env i's episode from its raw words: side, quantity (each unless given) and the start
    time, uniform over the tape's admissible span; returns the start time."""
    r = raw[i]
    side, qty = draw_order_nb(r, cfg)
    ep.ei[i, EI.side] = side
    ep.ei[i, EI.qty] = qty
    ep.ei[i, EI.preset] = -1
    ep.ef[i, EF.urgency] = 0.0
    t_lo, t_hi = replay.span[0], replay.span[1]
    return t_lo + unit_nb(r[2]) * (t_hi - t_lo)


@njit(cache=True, _nrt=False)
def replay_reset_nb(i, book, trades, flow, ep, cfg, replay):
    """Clear env `i`'s book, draw its episode, restore the checkpoint before the start time,
    replay up to it and start the warm-up; ``need_slot`` (nothing kept) while the pool is too
    small for the tape, and the reset starts over once it has grown."""
    if book.orders.shape[1] < replay.settings[RS.capacity]:
        return STATUS.need_slot
    fstate, istate, ei, ef = flow.fstate, flow.istate, ep.ei, ep.ef
    clear_book_nb(i, replay.settings[RS.base], 2, book, fstate, istate)
    book.meta[i, k.UNINDEXED_BACKGROUND] = 0  # tape messages name their orders by id
    t0 = draw_replay_episode_nb(i, ep.nx_raw, cfg, ep, replay)
    start = np.searchsorted(replay.times, t0)
    c = start // replay.settings[RS.every]
    b = book
    row = Book(b.orders[i], b.levels[i], b.keys[i], b.slots[i], b.meta[i], b.owner_stats[i])
    restore_nb(row, trades[i], replay, c, istate[i])
    ei[i, EI.halt] = replay.ck_halt[c]
    ei[i, EI.rejected] = 0
    ei[i, EI.cursor] = c * replay.settings[RS.every]
    ei[i, EI.own_id] = k.EMPTY_KEY
    ei[i, EI.n_consumed] = 0
    ei[i, EI.consumed_msgs] = 0
    ei[i, EI.batch_trades] = 0
    ef[i, EF.start_time] = t0
    ef[i, EF.t_end] = t0
    status = replay_run_nb(i, book, trades, flow, ep, replay)
    if status != STATUS.done:
        return status
    for j in range(fstate.shape[1]):
        fstate[i, j] = 0.0
    fstate[i, FS.time] = t0
    k.top_of_book_nb(book.levels[i], book.meta[i], TOB_LEVELS, ep.tob[i])
    ep.mids[i, 0] = mid_nb(i, ep.tob, istate)
    ef[i, EF.warm_depth] = 0.0
    ei[i, EI.warm_i] = 0
    ef[i, EF.t_end] = t0 + cfg[CFG.step_seconds]
    ei[i, EI.phase] = PHASE.warm_flow
    return STATUS.done


@njit(cache=True, _nrt=False)
def after_replay_flow_nb(i, ep, replay):
    """After a replay flow phase: a finished reset gives the agent ids no tape order has;
    a forced completion that ran off the end of the tape marks the rest at the mid."""
    ei = ep.ei
    if ei[i, EI.reset_done] == 1:
        ei[i, EI.next_id] = AGENT_FIRST_ID
    # not an `elif`: the single env never clears `reset_done` (only the vector env's Python
    # does), and a completion halted until the tape ends would otherwise wait forever
    if (
        ei[i, EI.phase] == PHASE.complete_market
        and ei[i, EI.remaining] != 0
        and ei[i, EI.cursor] >= replay.tape.shape[0]
    ):
        ei[i, EI.phase] = PHASE.finish


# ------------------------------------------------------------------ checkpoints
@njit(cache=True, _nrt=False)
def dump_book_nb(orders, levels, meta, out, n_out):
    """Write the book's resting orders to `out` from row `n_out` (CK columns), level by level,
    each queue front to back (the order that rests them again); returns the next row, or -1
    when `out` is too short."""
    base = meta[k.BASE]
    for lv in range(levels.shape[0]):
        if levels[lv].count == 0:
            continue
        s = levels[lv].head
        while s >= 0:
            if n_out >= out.shape[0]:
                return -1
            o = orders[s]
            out[n_out, CK.order_id], out[n_out, CK.side] = o.id, o.side
            out[n_out, CK.price], out[n_out, CK.qty] = base + lv, o.qty
            n_out += 1
            s = o.next
    return n_out
