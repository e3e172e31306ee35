"""Turn the simulator's orders into a `MessageTape`: what a LOBSTER file of its day would say.

An order book message (MESSAGE_DTYPE) becomes the events an exchange feed shows: a limit
order a new-order event (after one visible execution per resting order it crossed); a market
order one execution per resting order it hit, on the resting order's id and side; a cancel a
delete of what was left; a modify a partial cancel (same price, smaller) or a delete and a
new order. The stream is replayed through a fresh :class:`OrderBook` to know who was hit.
"""

from __future__ import annotations

import math

import numpy as np

from trendgym.envs.lob import kernels as k
from trendgym.envs.lob import rebuild_nb as rb
from trendgym.envs.lob.book import OrderBook, as_messages, empty_messages
from trendgym.envs.lob.kernels import inline_kernel, kernel
from trendgym.envs.lob.layout import STATUS
from trendgym.envs.lob.retry import run_to_done
from trendgym.envs.lob.tape import EVENT, TAPE_DTYPE, MessageTape, emit_event_nb


@inline_kernel
def _emit_limit_nb(book, trades, out, n, origin, i, t, oid, side, price, qty, tick):
    """A limit order: an execution per resting order it crossed, then the part that rests."""
    n_tr = rb.book_limit_nb(book, trades, 0, oid, side, price, qty)
    for j in range(n_tr):
        tr = trades[j]
        origin[n] = i
        n = emit_event_nb(out, n, t, EVENT.execute, tr.maker_id, tr.qty, tr.price * tick, -side)
    slot = k.hash_find_nb(book[2], book[3], oid)
    if slot >= 0:
        origin[n] = i
        n = emit_event_nb(out, n, t, EVENT.new, oid, book[0][slot].qty, price * tick, side)
    return n


@kernel
def orders_to_tape_nb(book, trades, msgs, times, start, out, n_out, origin, tick):
    """Replay `msgs` from `start` into `book`, writing their feed events to `out` from row
    `n_out` (and each row's message index to `origin`). Returns (next message, rows written,
    status): a ``STATUS``: done, need_trade_room (grow `out`/`trades`), need_slot (grow the
    pool) or duplicate_id (a limit reused a live id)."""
    orders, _, keys, slots, meta, _ = book
    n = n_out
    for i in range(start, msgs.shape[0]):
        room = k.trade_room_needed_nb(meta) + 2
        if out.shape[0] - n < room or trades.shape[0] < room:
            return i, n, STATUS.need_trade_room
        if meta[k.FREE_HEAD] < 0:
            return i, n, STATUS.need_slot
        m, t = msgs[i], times[i]
        if m.kind == k.LIMIT:
            if k.hash_find_nb(keys, slots, m.order_id) >= 0:
                return i, n, STATUS.duplicate_id
            n = _emit_limit_nb(
                book, trades, out, n, origin, i, t, m.order_id, m.side, m.price, m.qty, tick
            )
        elif m.kind == k.MARKET:
            n_tr = rb.book_market_nb(book, trades, 0, m.order_id, m.side, m.qty)
            for j in range(n_tr):
                tr = trades[j]
                origin[n] = i
                n = emit_event_nb(
                    out, n, t, EVENT.execute, tr.maker_id, tr.qty, tr.price * tick, -m.side
                )
        else:
            slot = k.hash_find_nb(keys, slots, m.order_id)
            if slot < 0:
                continue
            o = orders[slot]
            side, price, left = o.side, o.price, o.qty + o.hidden
            new_price = m.price if m.kind == k.MODIFY and m.price > 0 else price
            if m.kind == k.MODIFY and new_price == price and m.qty <= left:
                if m.qty < left:
                    origin[n] = i
                    n = emit_event_nb(
                        out, n, t, EVENT.cancel, m.order_id, left - m.qty, price * tick, side
                    )
                    rb.book_shrink_nb(book, slot, left - m.qty)
                continue
            origin[n] = i
            n = emit_event_nb(out, n, t, EVENT.delete, m.order_id, left, price * tick, side)
            rb.book_cancel_nb(book, m.order_id)
            if m.kind == k.MODIFY:  # to the back of the queue at the new price or size
                n = _emit_limit_nb(
                    book, trades, out, n, origin, i, t, m.order_id, side, new_price, m.qty, tick
                )
    return msgs.shape[0], n, STATUS.done


def tape_from_orders(
    messages: np.ndarray, times: np.ndarray, *, tick: int = 1, return_origin: bool = False
):
    """The feed events of an order book message stream applied to an empty book, at
    `times` (seconds after midnight, one per message, non-decreasing), prices in ticks x
    `tick`. With ``return_origin`` also each event's message index."""
    msgs = as_messages(messages)
    times = np.asarray(times, dtype=np.float64)
    if times.shape != msgs.shape:
        raise ValueError(
            f"times must have one entry per message, got {times.shape} for {msgs.shape}"
        )
    if times.size and (not np.isfinite(times).all() or (np.diff(times) < 0).any()):
        raise ValueError("times must be finite and non-decreasing")
    if (msgs["peak"] != 0).any():
        raise ValueError("iceberg orders (peak > 0) have no LOBSTER event for their hidden part")
    if tick < 1:
        raise ValueError(f"tick must be >= 1, got {tick}")
    OrderBook().process(msgs)  # refuses an invalid stream, naming the message, before anything
    book = OrderBook()
    prices = msgs["price"][msgs["price"] > 0]
    if prices.size:
        book.reserve(0, int(prices.min()), int(prices.max()))
    out, origin, n = _record_events(book, msgs, times, tick)
    tape = MessageTape(out[:n].copy(), tick=tick, source="<orders>")
    return (tape, origin[:n].copy()) if return_origin else tape


def _record_events(
    book: OrderBook, msgs: np.ndarray, times: np.ndarray, tick: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(events, their message indices, rows used): `orders_to_tape_nb` run to the end, the
    arrays grown whenever it stops for room."""
    out = np.empty(msgs.shape[0] + 64, dtype=TAPE_DTYPE)
    origin = np.empty(out.shape[0], dtype=np.int64)
    trades = np.empty(256, dtype=k.TRADE_DTYPE)
    i, n = 0, 0

    def call() -> int:
        nonlocal i, n
        i, n, status = orders_to_tape_nb(
            book.state, trades, msgs, times, i, out, n, origin, np.int64(tick)
        )
        return status

    def make_room(status: int) -> None:
        nonlocal trades, out, origin
        if status == STATUS.need_slot:
            book.reserve(book.orders.shape[0])
        elif status == STATUS.need_trade_room:
            room = k.trade_room_needed_nb(book.meta) + 2
            if trades.shape[0] < room:
                trades = np.empty(2 * room, dtype=k.TRADE_DTYPE)
            if out.shape[0] - n < room:
                out = np.resize(out, 2 * out.shape[0] + room)
                origin = np.resize(origin, out.shape[0])
        else:
            raise ValueError(f"message {i}: limit order id {msgs['order_id'][i]} is already live")

    run_to_done(call, make_room)
    return out, origin, n


def resting_orders(book: OrderBook) -> np.ndarray:
    """The book's resting orders as limit messages in an order that rebuilds it exactly:
    level by level, each level's queue front to back."""
    orders, levels, base = book.orders, book.levels, int(book.meta[k.BASE])
    out = []
    for lv in np.flatnonzero(levels["count"] > 0):
        slot = int(levels["head"][lv])
        while slot >= 0:
            o = orders[slot]
            if o["hidden"] or o["peak"]:
                raise ValueError("iceberg orders have no LOBSTER event for their hidden part")
            out.append((k.LIMIT, o["side"], 0, base + lv, o["qty"], o["id"], 0))
            slot = int(o["next"])
    msgs = empty_messages(len(out))
    for i, row in enumerate(out):
        msgs[i] = row
    return msgs


def record_flow(
    flow, seconds: float, *, resolution: float = 0.01, start_time: float = 34200.0, tick: int = 100
) -> MessageTape:
    """Run `flow` for `seconds` and return its day as a tape: first the orders resting on
    its book as new orders at `start_time`, then its events, each stamped with the end of
    the `resolution`-second step it happened in (the flow does not report event times
    finer than the steps it is run in), times shifted by `start_time` (09:30 by default)
    and prices in ticks x `tick` (100: a one-cent tick in LOBSTER's units).

    The flow must keep its messages (``OrderFlow(..., record=N)``) with `N` above the
    events of one step."""
    if flow.record <= 0:
        raise ValueError("record_flow needs OrderFlow(..., record=N) with N > 0")
    if not seconds >= 0 or not resolution > 0:
        raise ValueError(f"need seconds >= 0 and resolution > 0, got {seconds}, {resolution}")
    chunks = [resting_orders(flow.book)]
    times = [np.full(chunks[0].shape[0], start_time)]
    t0 = flow.time
    for _ in range(math.ceil(seconds / resolution)):
        flow.run(resolution)
        if flow.n_messages >= flow.record:
            raise ValueError(
                f"a {resolution} s step made {flow.n_messages}+ messages, the flow's record "
                "limit: raise record or lower resolution"
            )
        chunks.append(flow.messages[: flow.n_messages].copy())
        times.append(np.full(flow.n_messages, start_time + flow.time - t0))
    return tape_from_orders(np.concatenate(chunks), np.concatenate(times), tick=tick)
