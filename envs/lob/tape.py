"""`MessageTape`: a day of market-by-order messages as numpy columns, and the book it implies.

A tape is one structured array with a record per message (``TAPE_DTYPE``: time, event, order
id, size, price, direction), in LOBSTER's vocabulary whatever the source: event 1 a new limit
order, 2 a partial cancel, 3 a delete, 4 a visible execution of a resting order, 5 a hidden
execution, 6 a cross trade, 7 a trading halt; direction is the side of the resting order
(+1 buy, -1 sell); prices are integers in the source's unit (LOBSTER: dollars x 10000) and
``tick`` of them make one tick of the rebuilt book.

The book after message i is rebuilt from messages 0..i in an :class:`OrderBook`, seeded from
the state before message 0: with an orderbook file, its first row minus the first message's
effect; orders resting before the file starts are *anonymous volume*, one order per level
(id ``anonymous_id(side, tick_price)``, always negative), ahead of every later order, and
later messages on ids the book does not know reduce it. Hidden executions, cross trades and
halts leave the visible book alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from trendgym.envs.lob import rebuild_nb as rb
from trendgym.envs.lob.book import OrderBook
from trendgym.envs.lob.kernels import inline_kernel

TAPE_DTYPE = np.dtype(
    [
        ("time", np.float64),  # seconds after midnight
        ("order_id", np.int64),
        ("size", np.int64),
        ("price", np.int64),  # source units (LOBSTER: dollars x 10000); halts: -1, 0, 1
        ("event", np.int8),  # EVENT
        ("direction", np.int8),  # side of the resting order: +1 buy, -1 sell
    ],
    align=True,
)


class EventT(NamedTuple):
    new: int = 1
    cancel: int = 2  # partial cancellation
    delete: int = 3
    execute: int = 4  # visible execution of a resting order
    hidden: int = 5  # execution of a hidden order
    cross: int = 6  # cross (auction) trade
    halt: int = 7  # price -1 halt, 0 quoting resumes, 1 trading resumes


EVENT = EventT()


@inline_kernel
def emit_event_nb(out, n, time, event, order_id, size, price, direction):
    """Write one event to row `n` of `out` (TAPE_DTYPE); the next free row."""
    r = out[n]
    r.time, r.event, r.order_id, r.size, r.price, r.direction = (
        time, event, order_id, size, price, direction,
    )  # fmt: skip
    return n + 1


EMPTY_ASK, EMPTY_BID = rb.EMPTY_ASK, rb.EMPTY_BID  # how LOBSTER writes an empty level's price
STAT_NAMES = rb.STAT_NAMES


def anonymous_id(side: int, tick_price: int) -> int:
    """The id of the anonymous volume resting at `tick_price` (book ticks) on `side`."""
    return int(rb.anonymous_id_nb(side, tick_price))


def empty_tape(n: int) -> np.ndarray:
    return np.zeros(n, dtype=TAPE_DTYPE)


@dataclass
class MessageTape:
    """Messages (TAPE_DTYPE) with, optionally, the source's book after each message
    (``orderbook``: int64 (n, 4*levels), LOBSTER layout) and where they came from.

    ``stats`` holds what the last rebuild met: rows that disagreed with ``orderbook``,
    resyncs, messages on unknown ids, and the other quirks listed in ``STAT_NAMES``."""

    messages: np.ndarray
    tick: int = 0  # source price units per book tick; 0: the gcd of the prices
    orderbook: np.ndarray | None = None
    source: str = "<tape>"
    stats: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.messages, np.ndarray) or self.messages.dtype != TAPE_DTYPE:
            raise TypeError(
                f"messages must be a TAPE_DTYPE array, got {getattr(self.messages, 'dtype', type(self.messages))}"
            )
        self.messages = np.ascontiguousarray(self.messages)
        if self.orderbook is not None:
            ob = np.ascontiguousarray(self.orderbook, dtype=np.int64)
            if ob.ndim != 2 or ob.shape[1] % 4 or ob.shape[1] == 0:
                raise ValueError(f"orderbook must be (n, 4*levels), got shape {ob.shape}")
            if ob.shape[0] != len(self):
                raise ValueError(
                    f"{self.source}: the orderbook has {ob.shape[0]} rows for {len(self)} messages"
                )
            self.orderbook = ob
        if not self.tick:
            self.tick = price_tick(self.messages, self.orderbook)
        if int(self.tick) < 1:
            raise ValueError(f"tick must be a positive integer, got {self.tick!r}")
        self.tick = int(self.tick)
        visible = self.messages["event"] <= EVENT.execute
        off = visible & (self.messages["price"] % self.tick != 0)
        if off.any():
            row = int(np.argmax(off))
            raise ValueError(
                f"{self.source}: row {row + 1}: price {self.messages['price'][row]} is not a "
                f"multiple of the tick {self.tick}"
            )

    def __len__(self) -> int:
        return int(self.messages.shape[0])

    # columns, as views
    @property
    def time(self) -> np.ndarray:
        return self.messages["time"]

    @property
    def event(self) -> np.ndarray:
        return self.messages["event"]

    @property
    def order_id(self) -> np.ndarray:
        return self.messages["order_id"]

    @property
    def size(self) -> np.ndarray:
        return self.messages["size"]

    @property
    def price(self) -> np.ndarray:
        return self.messages["price"]

    @property
    def direction(self) -> np.ndarray:
        return self.messages["direction"]

    @property
    def levels(self) -> int:
        """Depth of the source's orderbook rows (0 without them)."""
        return 0 if self.orderbook is None else self.orderbook.shape[1] // 4

    # ------------------------------------------------------------------ rebuilding
    def initial_book(self) -> OrderBook:
        """The book before message 0: empty, or the orderbook file's first row minus the
        first message's effect, as anonymous volume."""
        book = OrderBook()
        lo, hi = self._price_span()
        if hi > 0:
            book.reserve(0, lo, hi)
        if self.orderbook is not None and len(self):
            seed = seed_levels(self.messages[0], self.orderbook[0], self.tick, self.source)
            if seed.shape[0]:
                book.process(seed)
        return book

    def _price_span(self) -> tuple[int, int]:
        """Book ticks the rebuild can meet (messages and orderbook rows), so the book's price
        window is sized once and the kernel never stops for it."""
        lo, hi = (int(p) for p in rb.price_span_nb(self.messages))
        if self.orderbook is not None:
            ob = self.orderbook
            prices = np.concatenate([ob[:, 0::4].ravel(), ob[:, 2::4].ravel()])
            prices = prices[(prices > 0) & (prices != EMPTY_ASK)]
            if prices.size:
                lo = int(prices.min()) if hi == 0 else min(lo, int(prices.min()))
                hi = max(hi, int(prices.max()))
        return lo // self.tick, hi // self.tick

    def rebuild(
        self, levels: int = 0, *, resync: bool = False, start: int = 0, stop: int | None = None
    ) -> tuple[OrderBook, np.ndarray]:
        """Replay messages 0..stop-1 into a fresh book. Returns the book after them and the
        snapshots (LOBSTER layout, `levels` deep) after messages start..stop-1. With an
        orderbook, each rebuilt row is compared with the source's; ``resync`` then makes the
        book agree with every row that differs (anonymous volume added or taken, levels the
        source does not show removed). Counts land in ``self.stats``."""
        n = len(self)
        stop = n if stop is None else int(stop)
        if not 0 <= start <= stop <= n:
            raise ValueError(f"need 0 <= start <= stop <= {n}, got start={start}, stop={stop}")
        if levels < 0:
            raise ValueError(f"levels must be >= 0, got {levels}")
        book = self.initial_book()
        ref = self.orderbook if self.orderbook is not None else np.zeros((0, 4), np.int64)
        if resync and self.orderbook is None:
            raise ValueError(f"{self.source}: resync needs the orderbook file")
        out = np.empty((stop - start, 4 * levels), dtype=np.int64)
        counters = np.zeros(len(STAT_NAMES), dtype=np.int64)
        rb.run_rebuild(book, self.messages, self.tick, stop, out, start, ref, counters, resync)
        self.stats = {name: int(c) for name, c in zip(STAT_NAMES, counters, strict=True)}
        if self.orderbook is None:
            del self.stats["mismatched_rows"], self.stats["resyncs"]
        return book, out

    def snapshots(self, levels: int = 10, *, resync: bool = False, **span) -> np.ndarray:
        """The rebuilt book after every message: int64 (n, 4*levels), per level ask price,
        ask size, bid price, bid size; empty levels 9999999999 / 0 and -9999999999 / 0.
        ``start``/``stop`` keep rows start..stop-1 (the book still replays from message 0)."""
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        return self.rebuild(levels, resync=resync, **span)[1]


def price_tick(messages: np.ndarray, orderbook: np.ndarray | None = None) -> int:
    """The largest price unit every visible message price (and orderbook price) is a
    multiple of: the tape's tick."""
    # a day has few distinct prices: their gcd is much cheaper than one over every row
    p = np.unique(messages["price"][messages["event"] <= EVENT.execute])
    g = int(np.gcd.reduce(p)) if p.size else 0
    if orderbook is not None and orderbook.size:
        q = np.concatenate([orderbook[:, 0::4].ravel(), orderbook[:, 2::4].ravel()])
        q = q[(q > 0) & (q != EMPTY_ASK)]
        off = q[q % g != 0] if g else q  # the rows' prices are mostly the messages' own
        if off.size:
            g = int(np.gcd(g, np.gcd.reduce(np.unique(off))))
    return max(g, 1)


def seed_levels(first: np.ndarray, row: np.ndarray, tick: int, source: str) -> np.ndarray:
    """Limit messages (MESSAGE_DTYPE) resting the anonymous volume the book held before
    `first`, given `row`, the source's book after it."""
    from trendgym.envs.lob.book import empty_messages

    volume: dict[tuple[int, int], int] = {}
    for j in range(row.shape[0] // 4):
        for side, col in ((-1, 4 * j), (1, 4 * j + 2)):
            if row[col + 1] > 0:
                volume[(side, int(row[col]))] = int(row[col + 1])
    ev, price, size = int(first["event"]), int(first["price"]), int(first["size"])
    key = (int(first["direction"]), price)
    if ev == EVENT.new:  # the first row includes the new order: it did not rest before
        left = volume.get(key, 0) - size
        if left < 0:
            raise ValueError(
                f"{source}: row 1 of the orderbook shows {volume.get(key, 0)} at {price}, "
                f"less than message 1 adds there ({size}): the files do not match"
            )
        volume[key] = left
    elif ev in (EVENT.cancel, EVENT.delete, EVENT.execute):  # it removed volume that rested
        volume[key] = volume.get(key, 0) + size
    levels = sorted((k, v) for k, v in volume.items() if v > 0)
    msgs = empty_messages(len(levels))
    for i, ((side, price), qty) in enumerate(levels):
        msgs[i] = (0, side, 0, price // tick, qty, anonymous_id(side, price // tick), 0)
    return msgs


DBN_SUFFIXES = (".dbn", ".dbn.zst")


def is_dbn(path) -> bool:
    """Whether `path` names a Databento DBN file (plain or zstd) rather than LOBSTER messages."""
    return str(path).lower().endswith(DBN_SUFFIXES)


def read_tape(path, orderbook=None) -> MessageTape:
    """The tape in `path`: a Databento ``.dbn``/``.dbn.zst`` file, or a LOBSTER message file
    (with its `orderbook` file when given), told apart by the file's name."""
    if is_dbn(path):
        if orderbook is not None:
            raise ValueError(f"{path}: a DBN file carries no orderbook file")
        from trendgym.envs.lob.dbn import read_dbn

        return read_dbn(path)
    from trendgym.envs.lob.lobster import read_lobster

    return read_lobster(path, orderbook)
