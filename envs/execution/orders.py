"""The agent's side of a step: decode the action, turn it into at most two messages, send
them to the book (resumable), and accept what a pre-trade hook made of them."""

from __future__ import annotations

import numpy as np
from numba import njit

from trendgym.envs.execution.layout import (
    AGENT,
    EF,
    EI,
    LIMIT_OFFSETS,
    MSG_SLOTS,
    N_ORDER_TYPES,
    ORDER,
    OWN,
    PHASE,
    TOB,
)
from trendgym.envs.execution.observe import refresh_own_nb
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.flow import FS, IS
from trendgym.envs.lob.layout import STATUS, Book


@njit(cache=True, _nrt=False, inline="always")
def decide_nb(i, ep, fstate, istate, latency):
    """Decode env `i`'s action (order type bin, size fraction, replace flag) and note the
    quote the agent saw; the messages go out after `latency` seconds of flow."""
    ei, ef, actions, tob = ep.ei, ep.ef, ep.actions, ep.tob
    a0 = float(actions[i, 0])
    a1 = float(actions[i, 1])
    a2 = float(actions[i, 2])
    ei[i, EI.order_type] = min(int((a0 + 1.0) * 0.5 * N_ORDER_TYPES), N_ORDER_TYPES - 1)
    ef[i, EF.fraction] = (a1 + 1.0) * 0.5
    ei[i, EI.replace] = 1 if a2 > 0 else 0
    # the quotes the agent saw when deciding (the last observation's)
    if ei[i, EI.side] == 1:
        bid = tob[i, TOB.bid]
        ei[i, EI.ref_touch] = bid if bid != 0 else istate[i, IS.last_bid]
    else:
        ask = tob[i, TOB.ask]
        ei[i, EI.ref_touch] = ask if ask != 0 else istate[i, IS.last_ask]
    ei[i, EI.terminated] = 0
    if latency > 0:
        ef[i, EF.t_end] = fstate[i, FS.time] + latency
        ei[i, EI.phase] = PHASE.latency_flow
    else:
        ei[i, EI.phase] = PHASE.act


@njit(cache=True, _nrt=False)
def new_msg_nb(i, msgs, ei, n, kind, price, qty):
    """Write a new order of the agent as message `n` of its batch; returns n + 1."""
    m = msgs[i, n]
    m.kind = kind
    m.side = ei[i, EI.side]
    m.price = price
    m.qty = qty
    m.order_id = ei[i, EI.next_id]
    if kind == k.LIMIT:
        ei[i, EI.own_id] = ei[i, EI.next_id]
    ei[i, EI.next_id] += 1
    return n + 1


@njit(cache=True, _nrt=False)
def cancel_own_msg_nb(i, msgs, ei, n):
    """Write the cancel of the agent's resting order as message `n`; returns n + 1."""
    m = msgs[i, n]
    m.kind = k.CANCEL
    m.order_id = ei[i, EI.own_id]
    ei[i, EI.own_id] = k.EMPTY_KEY
    return n + 1


@njit(cache=True, _nrt=False)
def _market_msgs_nb(i, msgs, ei, fraction, replace, resting):
    """A market child sized on what is not already resting (unless it replaces that order)."""
    n = 0
    if replace and resting != 0:
        n = cancel_own_msg_nb(i, msgs, ei, n)
        resting = 0
    qty = int(np.rint(fraction * (ei[i, EI.remaining] - resting)))
    if qty > 0:
        n = new_msg_nb(i, msgs, ei, n, k.MARKET, 0, qty)
    return n


@njit(cache=True, _nrt=False)
def _limit_price_nb(i, ei, tob, order_type):
    """The price of a limit child of `order_type`, from the touch the agent saw."""
    side = ei[i, EI.side]
    ref_touch = ei[i, EI.ref_touch]
    price = ref_touch + side * LIMIT_OFFSETS[order_type]
    opposite = tob[i, TOB.ask] if side == 1 else tob[i, TOB.bid]
    if order_type == ORDER.inside and opposite != 0 and abs(opposite - ref_touch) <= 1:
        price = ref_touch  # no room inside a one-tick spread: join the touch
    return max(price, 1)


@njit(cache=True, _nrt=False, inline="always")
def act_nb(i, book, ep):
    """The decoded action as at most two messages in ``ep.msgs[i]``; returns how many."""
    ei, ef, own, msgs = ep.ei, ep.ef, ep.own, ep.msgs
    refresh_own_nb(i, book, ei, own)
    resting = own[i, OWN.qty]
    order_type = ei[i, EI.order_type]
    fraction = ef[i, EF.fraction]
    replace = ei[i, EI.replace] != 0
    if order_type == ORDER.wait:
        return 0
    if order_type == ORDER.market:
        return _market_msgs_nb(i, msgs, ei, fraction, replace, resting)
    price = _limit_price_nb(i, ei, ep.tob, order_type)
    qty = int(np.rint(fraction * ei[i, EI.remaining]))
    n = 0
    if resting != 0 and own[i, OWN.price] == price:
        if qty == 0:
            n = cancel_own_msg_nb(i, msgs, ei, n)
        elif qty != resting:
            m = msgs[i, n]
            m.kind = k.MODIFY
            m.price = 0
            m.qty = qty
            m.order_id = ei[i, EI.own_id]
            n += 1
    elif resting != 0 and not replace:
        return 0
    else:
        if resting != 0:
            n = cancel_own_msg_nb(i, msgs, ei, n)
        if qty > 0:
            n = new_msg_nb(i, msgs, ei, n, k.LIMIT, price, qty)
    return n


@njit(cache=True, _nrt=False)
def book_fills_nb(i, owner_stats, ei, ef, fee_bps):
    """New agent fills lower what remains and add to the cash and the fees."""
    if ei[i, EI.side] == 1:
        qty = owner_stats[i, AGENT, k.BOUGHT_QTY]
        value = owner_stats[i, AGENT, k.BOUGHT_VALUE]
    else:
        qty = owner_stats[i, AGENT, k.SOLD_QTY]
        value = owner_stats[i, AGENT, k.SOLD_VALUE]
    d_qty = qty - ei[i, EI.seen_qty]
    d_value = value - ei[i, EI.seen_value]
    if d_qty != 0:
        ei[i, EI.seen_qty] = qty
        ei[i, EI.seen_value] = value
        ei[i, EI.remaining] -= d_qty
        ei[i, EI.cash] += d_value
        ef[i, EF.fees] += float(d_value) * fee_bps * 1e-4


@njit(cache=True, _nrt=False)
def _window_short_nb(i, book, msgs, ei, n):
    """Whether the price window misses a limit price of the batch (noted in need_lo/hi): the
    book must cover them before the batch, as ``OrderBook.process`` does."""
    base = book.meta[i, k.BASE]
    lo, hi = k.MAX_TICK, 0
    for j in range(n):
        if msgs[i, j].kind == k.LIMIT:
            lo = min(lo, msgs[i, j].price)
            hi = max(hi, msgs[i, j].price)
    if hi > 0 and (lo < base or hi >= base + book.levels.shape[1]):
        ei[i, EI.need_lo] = lo
        ei[i, EI.need_hi] = hi
        return True
    return False


@njit(cache=True, _nrt=False)
def _count_batch_nb(i, msgs, ei, ef, trades, n, n_trades):
    """Count the orders the batch sent and the market volume its trades made."""
    for j in range(n):
        kind = msgs[i, j].kind
        if kind == k.LIMIT or kind == k.MARKET:
            ei[i, EI.n_orders] += 1
    if n_trades > 0:
        qty = 0
        value = 0
        for j in range(n_trades):
            qty += trades[i, j].qty
            value += trades[i, j].price * trades[i, j].qty
        ei[i, EI.market_qty] += qty
        ef[i, EF.market_value] += float(value)


@njit(cache=True, _nrt=False, inline="always")
def submit_nb(i, book, trades, ep, fee_bps):
    """Send env `i`'s batch to its book, resumable: ``STATUS.done`` or the room it needs."""
    ei, msgs = ep.ei, ep.msgs
    n = ei[i, EI.n_msgs]
    start = ei[i, EI.msg_start]
    if n == 0:
        return STATUS.done
    if start == 0 and _window_short_nb(i, book, msgs, ei, n):
        return STATUS.need_window
    b = book
    row = Book(b.orders[i], b.levels[i], b.keys[i], b.slots[i], b.meta[i], b.owner_stats[i])
    n_trades, start, status = k.process_nb(
        msgs[i, :n], start, row, trades[i], ei[i, EI.n_trades], False, False
    )
    ei[i, EI.n_trades] = n_trades
    ei[i, EI.msg_start] = start
    if status != STATUS.done:
        return status
    _count_batch_nb(i, msgs, ei, ep.ef, trades, n, n_trades)
    book_fills_nb(i, book.owner_stats, ei, ep.ef, fee_bps)
    ei[i, EI.batch_trades] = n_trades  # replay marks the tape orders these trades took from
    ei[i, EI.n_trades] = 0
    ei[i, EI.msg_start] = 0
    ei[i, EI.n_msgs] = 0
    return STATUS.done


@njit(cache=True, _nrt=False)
def hold_for_hook_nb(i, msgs, ei):
    """Whether the batch holds a new order or modify, which the pre-trade hook must see first
    (a cancel, always first, needs no check); keeps the copy the hook's answer is checked
    against."""
    n = ei[i, EI.n_msgs]
    first = 1 if msgs[i, 0].kind == k.CANCEL else 0
    if n <= first:
        return False
    for j in range(n):
        copy_msg_nb(msgs[i, MSG_SLOTS + j], msgs[i, j])
    ei[i, EI.hook_first] = first
    ei[i, EI.hooked] = 1
    return True


@njit(cache=True, _nrt=False)
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


@njit(cache=True, _nrt=False)
def copy_msg_nb(dst, src):
    dst.kind, dst.side, dst.owner, dst.price = src.kind, src.side, src.owner, src.price
    dst.qty, dst.order_id, dst.peak = src.qty, src.order_id, src.peak


@njit(cache=True, _nrt=False)
def accept_hooked_nb(msgs, ei, allowed):
    """Put what env 0's pre-trade hook `allowed` in place of the proposed new orders and
    modifies, if it only dropped, shrank or made them more passive (checked against the copy
    the kernel kept); returns -1, or the index of the first message that breaks this."""
    first, n = ei[0, EI.hook_first], ei[0, EI.n_msgs]
    proposed = msgs[0, MSG_SLOTS + first : MSG_SLOTS + n]
    bad = first_disallowed_nb(proposed, allowed)
    if bad >= 0:
        return bad
    m = allowed.shape[0]
    if m > n - first:  # an order repeated
        return n - first
    for j in range(m):  # through the copy's slots: `allowed` may be a view of the batch
        copy_msg_nb(msgs[0, MSG_SLOTS + first + j], allowed[j])
    for j in range(m):
        copy_msg_nb(msgs[0, first + j], msgs[0, MSG_SLOTS + first + j])
    ei[0, EI.n_msgs] = first + m
    return -1
