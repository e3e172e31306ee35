"""`OrderBook`: the thin Python owner of the numba book state (see `kernels.py`).

It validates every batch at the boundary, sizes the arrays so kernels never overflow, and
keeps a batch atomic: an invalid batch raises ``ValueError`` naming the message's index and
leaves the book exactly as it was.
"""

from __future__ import annotations

import numpy as np

from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.kernels import MESSAGE_DTYPE, TRADE_DTYPE
from trendgym.envs.lob.layout import STATUS, Book
from trendgym.envs.lob.retry import run_to_done

_MAX_LEVELS = 1 << 22  # a price window wider than this many ticks is refused, not allocated
_WINDOW_PAD = 256  # ticks kept free beyond the extreme prices when the window (re)grows


def _reason(msgs: np.ndarray, index: int, code: int) -> str:
    m = msgs[index]
    return f"message {index}: " + _REASONS[code].format(**{n: m[n] for n in MESSAGE_DTYPE.names})


def empty_messages(n: int) -> np.ndarray:
    """A zeroed message array (zero fields mean the plain behaviour: owner 0, no iceberg)."""
    return np.zeros(n, dtype=MESSAGE_DTYPE)


def as_messages(messages: np.ndarray) -> np.ndarray:
    """`messages` as a contiguous MESSAGE_DTYPE array; structured arrays with a subset of the
    fields (at least kind, side, price, qty, order_id) are accepted, missing fields are 0."""
    if not isinstance(messages, np.ndarray):
        raise TypeError(f"messages must be a numpy structured array, got {type(messages).__name__}")
    if messages.dtype == MESSAGE_DTYPE:
        return np.ascontiguousarray(messages)
    names = messages.dtype.names
    if names is None:
        raise TypeError(
            f"messages must be a structured array with MESSAGE_DTYPE fields, got dtype {messages.dtype}"
        )
    missing = {"kind", "side", "price", "qty", "order_id"} - set(names)
    if missing:
        raise TypeError(f"messages lack the fields {sorted(missing)}")
    if messages.ndim != 1:
        raise ValueError(f"messages must be one-dimensional, got shape {messages.shape}")
    out = empty_messages(messages.shape[0])
    for name in MESSAGE_DTYPE.names:
        if name in names:
            out[name] = messages[name]
    return out


_REASONS = {
    k.ERR.kind: "unknown kind {kind} (0 limit, 1 market, 2 cancel, 3 modify)",
    k.ERR.side: "side must be +1 (buy) or -1 (sell), got {side}",
    k.ERR.qty: "quantity must be positive, got qty={qty}",
    k.ERR.limit_price: "a limit price must be positive, got price={price}",
    k.ERR.modify_price: "a modify price must be >= 0 (0 keeps it), got price={price}",
    k.ERR.price_range: f"price {{price}} exceeds the largest tick {k.MAX_TICK}",
    k.ERR.owner: f"owner must be in [0, {k.MAX_OWNERS}), got owner={{owner}}",
    k.ERR.peak: "iceberg peak must be >= 0, got peak={peak}",
    k.ERR.id: "order_id {order_id} is reserved",
}


class OrderBook:
    """A price-time priority limit order book on integer ticks.

    >>> book = OrderBook()
    >>> msgs = empty_messages(2)
    >>> msgs[0] = (0, -1, 0, 101, 5, 1, 0)   # limit sell 5 @ 101, id 1
    >>> msgs[1] = (1, +1, 0, 0, 3, 2, 0)     # market buy 3, id 2
    >>> book.process(msgs)[["maker_id", "price", "qty"]].tolist()
    [(1, 101, 3)]
    >>> book.best_ask(), book.best_bid()
    (101, None)

    ``index_background=False`` keeps the background flow's orders (owner 0) out of the id
    table, as the execution envs' books do: the flow cancels by pool slot, so this saves two
    hash operations per flow event, but ``order``, ``queue_ahead`` and cancel or modify by id
    then see only the other owners' orders.
    """

    fused_batch = 4096  # batches at least this long are validated while applied (one pass)

    def __init__(
        self, capacity: int = 1024, price_levels: int = 1024, *, index_background: bool = True
    ) -> None:
        if capacity < 1 or price_levels < 1:
            raise ValueError(
                f"capacity and price_levels must be >= 1, got {capacity}, {price_levels}"
            )
        self._initial = (int(capacity), int(price_levels))
        self.index_background = bool(index_background)
        self.clear()

    # ------------------------------------------------------------------------ state
    def clear(self) -> None:
        """Empty the book and its counters (arrays keep their current sizes)."""
        capacity, price_levels = self._initial
        if getattr(self, "orders", None) is not None:
            capacity, price_levels = self.orders.shape[0], self.levels.shape[0]
        self.orders = np.zeros(capacity, dtype=k.ORDER_DTYPE)
        self.orders["next"] = np.arange(1, capacity + 1)
        self.orders["next"][-1] = -1
        self.orders["prev"] = -1
        self.levels = np.zeros(price_levels, dtype=k.LEVEL_DTYPE)
        self.levels["head"] = self.levels["tail"] = -1
        self.keys = np.full(id_table_size(capacity), k.EMPTY_KEY, dtype=np.int64)
        self.slots = np.full(self.keys.shape[0], -1, dtype=np.int64)
        self.meta = np.zeros(k.N_META, dtype=np.int64)
        self.meta[k.FREE_HEAD] = 0
        self.meta[k.UNINDEXED_BACKGROUND] = not self.index_background
        self.owner_stats = np.zeros((k.MAX_OWNERS, k.N_OWNER_STATS), dtype=np.int64)
        self._trades = np.empty(256, dtype=TRADE_DTYPE)
        self._state = None

    @property
    def state(self) -> Book:
        """The arrays kernels take: orders, levels, keys, slots, meta, owner_stats (built again
        only after a method here replaced an array: the flow asks for it every env step)."""
        if self._state is None:
            self._state = Book(
                self.orders, self.levels, self.keys, self.slots, self.meta, self.owner_stats
            )
        return self._state

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_state"] = None  # rebuilt from the unpickled arrays
        return state

    def _snapshot(self) -> Book:
        return Book(*(a.copy() for a in self.state))

    def _restore(self, snap: Book) -> None:
        (self.orders, self.levels, self.keys, self.slots, self.meta, self.owner_stats) = snap
        self._state = None

    def reserve(
        self, new_orders: int, price_lo: int | None = None, price_hi: int | None = None
    ) -> None:
        """Grow the pool, id table and price window so `new_orders` more resting orders and
        prices in [price_lo, price_hi] fit. Growing never changes what the book holds."""
        need = int(self.meta[k.N_LIVE]) + int(new_orders)
        if need > self.orders.shape[0]:
            self._grow_pool(max(need, 2 * self.orders.shape[0]))
        if price_lo is not None:
            self._cover_prices(int(price_lo), int(price_hi if price_hi is not None else price_lo))

    def _grow_pool(self, capacity: int) -> None:
        n_old = self.orders.shape[0]
        self.orders = grow_pool(self.orders, self.meta[k.FREE_HEAD], capacity)
        self.meta[k.FREE_HEAD] = n_old
        self.keys = np.full(id_table_size(capacity), k.EMPTY_KEY, dtype=np.int64)
        self.slots = np.full(self.keys.shape[0], -1, dtype=np.int64)
        k.rehash_nb(self.orders, self.keys, self.slots, self.meta)
        self._state = None

    def _cover_prices(self, lo: int, hi: int) -> None:
        base, n = int(self.meta[k.BASE]), self.levels.shape[0]
        window_set = base > 0  # the window starts at tick >= 1 once set
        if window_set and base <= lo and hi < base + n:
            return
        if not window_set:
            size = max(n, hi - lo + 1 + 2 * _WINDOW_PAD)
            new_base = max(1, (lo + hi) // 2 - size // 2)
        else:  # at least double, growing toward the side that ran out of room
            lo2, hi2 = min(base, lo - _WINDOW_PAD), max(base + n - 1, hi + _WINDOW_PAD)
            size = max(hi2 - lo2 + 1, 2 * n)
            new_base = max(1, lo2 if lo >= base else hi2 + 1 - size)
        size = max(size, hi + 1 - new_base)
        if size > _MAX_LEVELS:
            raise ValueError(
                f"prices {lo}..{hi} span more than the book's {_MAX_LEVELS}-tick window "
                f"(it holds {base}..{base + n - 1}); use a coarser tick"
            )
        levels = np.zeros(size, dtype=k.LEVEL_DTYPE)
        levels["head"] = levels["tail"] = -1
        if window_set:
            levels[base - new_base : base - new_base + n] = self.levels
        self.levels = levels
        self._state = None
        self.meta[k.BASE] = new_base

    # ------------------------------------------------------------------------ batch API
    def process(self, messages: np.ndarray) -> np.ndarray:
        """Apply a batch of messages in order; returns the trades (TRADE_DTYPE) in the order
        they happened. An invalid batch raises ValueError naming the index; the book is untouched."""
        msgs = as_messages(messages)
        if msgs.shape[0] == 0:
            return np.empty(0, dtype=TRADE_DTYPE)
        if msgs.shape[0] >= self.fused_batch:
            return self._process_fused(msgs)
        bad, code, lo, hi, maybe_reused = k.screen_nb(msgs, self.keys, self.slots)
        if bad >= 0:
            raise ValueError(_reason(msgs, bad, code))
        if hi > 0:
            self._cover_prices(int(lo), int(hi))
        # Whether a reused id is still live when its turn comes depends on fills inside the
        # batch, so such a batch runs on a snapshot; the usual batch (fresh, increasing ids)
        # runs directly. The pool grows only when it is really full, so it stays cache-sized.
        return self._apply(
            msgs,
            self._snapshot() if maybe_reused else None,
            check_live=maybe_reused,
            validate=False,
        )

    def process_trusted(self, msgs: np.ndarray) -> np.ndarray:
        """`process` for messages built by trendgym itself (an env's own orders): applied in
        one validating pass with no snapshot, and the trades returned are a view valid until
        the next call. A message that breaks a rule still raises, but the book is then left
        as far as it got, so user input must go through `process`."""
        return self._apply(msgs, None, check_live=True, validate=True, copy=False)

    def _process_fused(self, msgs: np.ndarray) -> np.ndarray:
        """A large batch: validated message by message while it is applied, under one
        snapshot of the book (cheap next to the batch), instead of a separate screening pass."""
        fresh = self._trades.shape[0] < msgs.shape[0] // 4
        if fresh:  # a guess that saves most regrowths; handed out without a copy below
            self._trades = np.empty(msgs.shape[0] // 4, dtype=TRADE_DTYPE)
        trades = self._apply(msgs, self._snapshot(), check_live=True, validate=True, copy=not fresh)
        if fresh:
            self._trades = np.empty(256, dtype=TRADE_DTYPE)
        return trades

    def _apply(self, msgs, snap, check_live: bool, validate: bool, copy: bool = True) -> np.ndarray:
        start, n_trades = 0, 0

        def call() -> int:
            nonlocal start, n_trades
            n_trades, start, status = k.process_nb(
                msgs, start, self.state, self._trades, n_trades, check_live, validate
            )
            return status

        def make_room(status: int) -> None:
            if status == STATUS.need_slot:
                self._grow_pool(2 * self.orders.shape[0])
            elif status == STATUS.need_trade_room:
                needed = n_trades + k.trade_room_needed_nb(self.meta)
                self._trades = grow_trades(self._trades, n_trades, needed)
            elif status == STATUS.need_window:
                price = int(msgs["price"][start])
                try:
                    self._cover_prices(price, price)
                except ValueError:
                    if snap is not None:
                        self._restore(snap)
                    raise
            else:
                self._refuse(msgs, start, status, snap)

        run_to_done(call, make_room)
        out = self._trades[:n_trades]
        return out.copy() if copy else out

    def _refuse(self, msgs: np.ndarray, index: int, status: int, snap: Book | None) -> None:
        """Undo a batch the kernel refused at message `index` and say why."""
        if snap is None:
            raise RuntimeError(f"trusted message {index} was refused: {msgs[index]}")
        self._restore(snap)
        if status == STATUS.invalid_message:
            _, code, *_ = k.screen_nb(msgs[index : index + 1], self.keys, self.slots)
            raise ValueError(_reason(msgs, index, code))
        raise ValueError(
            f"message {index}: limit order id {msgs['order_id'][index]} is already live"
        )

    # ------------------------------------------------------------------------ queries
    def best_bid(self) -> int | None:
        p = int(self.meta[k.BEST_BID])
        return p if p else None

    def best_ask(self) -> int | None:
        p = int(self.meta[k.BEST_ASK])
        return p if p else None

    def depth(self, side: int, levels: int) -> np.ndarray:
        """(levels_found, 2) int array of [price, displayed qty], best first."""
        if side not in (k.BUY, k.SELL):
            raise ValueError(f"side must be +1 (bids) or -1 (asks), got {side!r}")
        if levels < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        out = np.zeros((levels, 2), dtype=np.int64)
        return out[: k.depth_nb(self.levels, self.meta, int(side), out)]

    def queue_ahead(self, order_id: int) -> int | None:
        """Displayed quantity queued ahead of a live order at its price; None if not live."""
        out = np.zeros(3, dtype=np.int64)
        if not k.order_state_nb(
            self.orders, self.levels, self.keys, self.slots, self.meta, int(order_id), out
        ):
            return None
        return int(out[2])

    def order(self, order_id: int) -> dict | None:
        """A live order's price, side, owner, displayed qty and hidden reserve; None if not live."""
        slot = k.hash_find_nb(self.keys, self.slots, int(order_id))
        if slot < 0:
            return None
        o = self.orders[slot]
        return {
            "order_id": int(o["id"]),
            "side": int(o["side"]),
            "owner": int(o["owner"]),
            "price": int(o["price"]),
            "qty": int(o["qty"]),
            "hidden": int(o["hidden"]),
        }

    def fills(self, owner: int) -> dict[str, int]:
        """Per-owner fill report: quantity and tick value bought and sold, as maker and taker."""
        if not 0 <= owner < k.MAX_OWNERS:
            raise ValueError(f"owner must be in [0, {k.MAX_OWNERS}), got {owner}")
        row = self.owner_stats[owner]
        return {
            "bought_qty": int(row[k.BOUGHT_QTY]),
            "bought_value": int(row[k.BOUGHT_VALUE]),
            "sold_qty": int(row[k.SOLD_QTY]),
            "sold_value": int(row[k.SOLD_VALUE]),
            "maker_qty": int(row[k.MAKER_QTY]),
            "taker_qty": int(row[k.TAKER_QTY]),
        }

    @property
    def n_orders(self) -> int:
        """Number of live resting orders."""
        return int(self.meta[k.N_LIVE])

    def resting_qty(self) -> int:
        """Quantity resting on the book, displayed and hidden."""
        live = self.orders["qty"] > 0
        return int(self.orders["qty"][live].sum() + self.orders["hidden"][live].sum())

    def totals(self) -> dict[str, int]:
        """Running quantity counters, for conservation checks:
        added = resting + maker-side traded + limit-taker traded + cancelled."""
        m = self.meta
        return {
            "added": int(m[k.ADDED_QTY]),
            "cancelled": int(m[k.CANCELLED_QTY]),
            "traded": int(m[k.TRADED_QTY]),
            "dropped": int(m[k.DROPPED_QTY]),
            "market": int(m[k.MARKET_QTY]),
            "limit_taker": int(m[k.LIMIT_TAKER_QTY]),
            "messages": int(m[k.N_MESSAGES]),
        }


def grow_trades(trades: np.ndarray, n_trades: int, needed: int) -> np.ndarray:
    """A trade buffer with room for at least `needed` trades that keeps the first `n_trades`
    (along the last axis: one buffer, or a row per book)."""
    room = max(needed, 2 * trades.shape[-1])
    grown = np.empty(trades.shape[:-1] + (room,), dtype=TRADE_DTYPE)
    grown[..., :n_trades] = trades[..., :n_trades]
    return grown


def grow_pool(orders: np.ndarray, free_head: int | np.ndarray, capacity: int) -> np.ndarray:
    """The order pool grown to `capacity` slots along its last axis (one pool, or a row per
    book): old slots unchanged, new ones chained free ahead of each old free list, whose head
    is `free_head` (per book); the new head is the first new slot."""
    n_old = orders.shape[-1]
    grown = np.zeros(orders.shape[:-1] + (capacity,), dtype=k.ORDER_DTYPE)
    grown[..., :n_old] = orders
    grown["next"][..., n_old:] = np.arange(n_old + 1, capacity + 1)
    grown["next"][..., -1] = free_head  # new slots first, then the old free chain
    grown["prev"][..., n_old:] = -1
    return grown


def id_table_size(capacity: int) -> int:
    """Slots of the id table for a pool of `capacity` orders: a power of two, at most half full."""
    return 1 << max(4, int(2 * capacity - 1).bit_length())
