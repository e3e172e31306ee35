"""What Execution-v0 needs to replay a tape: the tape itself (from a `MessageTape` or files),
the span of admissible start times, and book checkpoints so a reset never replays the tape
from its first message.

A checkpoint every ``every`` messages holds the rebuilt book before that message (its
orders, each level front to back) and the last quotes seen; a reset restores the checkpoint
before its start time and replays at most ``every`` messages to reach it.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trendgym.envs.execution.layout import CK, CONSUMED_SLOTS, RS, TRADING, Replay
from trendgym.envs.execution.replay import AGENT_FIRST_ID, dump_book_nb
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob import rebuild_nb as rb
from trendgym.envs.lob.tape import TAPE_DTYPE, MessageTape, is_dbn, read_tape

MAX_CHECKPOINTS = 512  # checkpoints per tape at most (fewer messages apart on short tapes)
MIN_EVERY = 64  # messages between checkpoints at least
LOBSTER_PRICE_UNIT = 1e-4  # a tape price unit in currency: both readers give 1e-4 dollars


@dataclass(frozen=True)
class ReplayData:
    """A tape prepared for replay (shared by every env that replays it)."""

    tape: MessageTape
    shared: Replay  # per-env arrays empty: see ``rows``
    price_levels: int  # width of the book's price window
    source: str
    episode_seconds: float = 0.0  # tape one episode spans (warm-up and horizon)
    # (first, last) tape time an episode may cover: the two-sided book's span, cut to the window
    usable: tuple[float, float] = (0.0, 0.0)

    def rows(self, n_envs: int) -> Replay:
        """The kernel's `Replay` for `n_envs` envs: the shared arrays and per-env rows."""
        return self.shared._replace(
            consumed=np.zeros((n_envs, CONSUMED_SLOTS), dtype=np.int64),
            counters=np.zeros((n_envs, len(rb.STAT_NAMES)), dtype=np.int64),
        )


def empty_replay(n_envs: int) -> Replay:
    """Simulated mode's `Replay`: no tape (the kernel then runs the flow)."""
    return Replay(
        tape=np.zeros(0, dtype=TAPE_DTYPE),
        times=np.zeros(0),
        settings=np.zeros(len(RS), dtype=np.int64),
        span=np.zeros(2),
        ck_offsets=np.zeros(1, dtype=np.int64),
        ck_orders=np.zeros((0, len(CK)), dtype=np.int64),
        ck_quotes=np.zeros((0, 2), dtype=np.int64),
        ck_halt=np.zeros(0, dtype=np.int64),
        consumed=np.zeros((n_envs, 0), dtype=np.int64),
        counters=np.zeros((n_envs, len(rb.STAT_NAMES)), dtype=np.int64),
    )


def load_tape(replay: Any, orderbook: Any = None) -> MessageTape:
    """The tape `replay` names: a `MessageTape`, a LOBSTER message file (with `orderbook`, or
    ``(messages, orderbook)``), or a Databento ``.dbn``/``.dbn.zst`` file."""
    if isinstance(replay, MessageTape):
        if orderbook is not None:
            raise ValueError("replay_orderbook goes with a replay= file path, not a MessageTape")
        return replay
    if isinstance(replay, (tuple, list)):
        if len(replay) != 2 or orderbook is not None:
            raise ValueError(
                f"replay=(messages, orderbook) takes two paths and no replay_orderbook, got {replay!r}"
            )
        replay, orderbook = replay
    if not isinstance(replay, (str, os.PathLike)):
        raise TypeError(
            f"replay must be a MessageTape, a file path or a (messages, orderbook) pair, got "
            f"{type(replay).__name__}"
        )
    for name, path in (("replay", replay), ("replay_orderbook", orderbook)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{name}: no such file {str(path)!r}")
    if is_dbn(replay) and orderbook is not None:
        raise ValueError("replay_orderbook goes with LOBSTER files, not DBN")
    return _read_once(_stamp(replay), None if orderbook is None else _stamp(orderbook))


def _stamp(path: Any) -> tuple[str, str, int, int]:
    """A file as the cache knows it: the path as given (error messages and the tape's source
    name it so), where it is, its modification time and size (an edited or replaced file is
    read again)."""
    st = os.stat(path)
    return os.fspath(path), os.path.abspath(path), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=2)
def _read_once(replay: tuple, orderbook: tuple | None) -> MessageTape:
    """The tape of these files, read once per process: an evaluation builds an env per held-out
    block and per baseline on the same day, and each would otherwise read it again (seconds
    for a real day); the tape also keeps its checkpoints (see ``prepare``)."""
    return read_tape(replay[0], None if orderbook is None else orderbook[0])


def prepare(
    tape: MessageTape, episode_seconds: float, window: tuple[float, float] | None = None
) -> ReplayData:
    """Checkpoints and the start-time span of `tape` for episodes of `episode_seconds` of tape
    (warm-up and horizon); cached on the tape. With `window` (``replay_window``: start and end,
    s after midnight), every episode lies wholly inside it. ValueError, naming ``replay`` (or
    ``replay_window``), when no start leaves that much tape with a two-sided book before it."""
    cache = getattr(tape, "_replay_cache", None)
    if cache is None:
        cache = tape._replay_cache = {}
    if "base" not in cache:
        cache["base"] = _checkpoints(tape)
    shared, levels, first_two_sided = cache["base"]
    src = tape.source
    if first_two_sided < 0:
        raise ValueError(f"replay: {src} never has a two-sided book (bids and asks at once)")
    times = shared.times
    t_lo = float(np.nextafter(times[first_two_sided], np.inf))
    t_end = float(times[-1])
    if t_end - episode_seconds < t_lo:
        raise ValueError(
            f"replay: {src} is too short for one episode: it has {t_end - t_lo:.6g} s of "
            f"two-sided book, an episode needs {episode_seconds:.6g} s (warm-up and horizon)"
        )
    if window is not None:
        t_lo, t_end = _in_window(window, (t_lo, t_end), episode_seconds, src)
    span = np.array([t_lo, t_end - episode_seconds])
    return ReplayData(
        tape, shared._replace(span=span), levels, src, float(episode_seconds), (t_lo, t_end)
    )


def _in_window(
    window: tuple[float, float], usable: tuple[float, float], episode_seconds: float, src: str
) -> tuple[float, float]:
    """The part of the tape's two-sided span `usable` inside `window`; ValueError when the
    window misses it or leaves too little of it for one episode."""
    w_lo, w_hi = float(window[0]), float(window[1])
    where = (
        f"replay_window=[{w_lo:.6g}, {w_hi:.6g}] (s after midnight) on {src}, whose two-sided "
        f"book spans [{usable[0]:.6g}, {usable[1]:.6g}] s"
    )
    if w_hi <= usable[0] or w_lo >= usable[1]:
        raise ValueError(f"{where}: the window lies outside the tape")
    lo, hi = max(w_lo, usable[0]), min(w_hi, usable[1])
    if hi - lo < episode_seconds:
        raise ValueError(
            f"{where}: the window holds {hi - lo:.6g} s of it, too short for one episode, which "
            f"needs {episode_seconds:.6g} s (warm-up and horizon)"
        )
    return lo, hi


def check_window(window: Any) -> tuple[float, float]:
    """``replay_window`` as a (start, end) pair of floats; TypeError/ValueError naming it."""
    if isinstance(window, (str, bytes)) or not hasattr(window, "__len__") or len(window) != 2:
        raise TypeError(
            f"replay_window must be a [start, end] pair of seconds after midnight, got {window!r}"
        )
    for value in window:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"replay_window must hold two numbers, got {window!r}")
    lo, hi = float(window[0]), float(window[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(
            f"replay_window must be finite with start < end (s after midnight), got {window!r}"
        )
    return lo, hi


def _checkpoints(tape: MessageTape) -> tuple[Replay, int, int]:
    """The shared `Replay` arrays (span left to `prepare`), the book's window width, and the
    first message after which the book is two-sided (-1: never)."""
    m = tape.messages
    n = len(tape)
    if n == 0:
        raise ValueError(f"replay: {tape.source} has no messages")
    if m["order_id"].min() <= AGENT_FIRST_ID + (1 << 40):
        raise ValueError(f"replay: {tape.source} has order ids the agent's orders use")
    snaps = tape.snapshots(1)  # the top of book after every message
    bid, ask = snaps[:, 2], snaps[:, 0]
    bid_on, ask_on = snaps[:, 3] > 0, snaps[:, 1] > 0
    two = np.flatnonzero(bid_on & ask_on)
    first = int(two[0]) if two.size else -1
    every = max(MIN_EVERY, math.ceil(n / MAX_CHECKPOINTS))
    n_ck = math.ceil(n / every)
    book = tape.initial_book()
    book.reserve(2)
    ck_orders = np.zeros((max(64, 2 * int(book.meta[k.N_LIVE])), len(CK)), dtype=np.int64)
    offsets = np.zeros(n_ck + 1, dtype=np.int64)
    quotes = np.zeros((n_ck, 2), dtype=np.int64)
    last = _last_quotes(bid, ask, bid_on, ask_on, tape.tick)
    capacity, trades = 0, np.empty(1, dtype=k.TRADE_DTYPE)
    none_out, none_ref, no_row = (
        np.empty((0, 0), np.int64),
        np.zeros((0, 4), np.int64),
        np.zeros(0, np.int64),
    )
    counters = np.zeros(len(rb.STAT_NAMES), dtype=np.int64)
    tick = np.int64(tape.tick)
    for c in range(n_ck):
        while (end := dump_book_nb(book.orders, book.levels, book.meta, ck_orders, offsets[c])) < 0:
            ck_orders = np.resize(ck_orders, (2 * ck_orders.shape[0], len(CK)))
        offsets[c + 1] = end
        quotes[c] = last[c * every]
        capacity = max(capacity, int(book.meta[k.N_LIVE]))
        i, stop = c * every, min(n, (c + 1) * every)
        while True:
            st = book.state
            i, status = rb.rebuild_nb(
                st, trades, m, tick, i, stop, none_out, stop, none_ref, no_row, counters, False
            )
            if status == rb.STATUS.done:
                break
            book.reserve(book.orders.shape[0])
    settings = np.zeros(len(RS), dtype=np.int64)
    settings[RS.tick], settings[RS.every] = tape.tick, every
    settings[RS.base], settings[RS.capacity] = int(book.meta[k.BASE]), capacity + 2
    shared = Replay(
        tape=m,
        times=np.ascontiguousarray(m["time"]),
        settings=settings,
        span=np.zeros(2),
        ck_offsets=offsets,
        ck_orders=ck_orders[: offsets[-1]].copy(),
        ck_quotes=quotes,
        ck_halt=_trading_states(m)[::every].copy(),
        consumed=np.zeros((0, 0), dtype=np.int64),
        counters=np.zeros((0, len(rb.STAT_NAMES)), dtype=np.int64),
    )
    return shared, int(book.levels.shape[0]), first


def _trading_states(m: np.ndarray) -> np.ndarray:
    """(n,) the trading state (``TRADING``) before each message, as its halt messages set it
    (``replay.set_trading_nb``): open until the first."""
    n = m.shape[0]
    price = m["price"]
    sets = np.flatnonzero((m["event"] == rb.HALT) & (price >= -1) & (price <= 1))
    if sets.size == 0:
        return np.full(n, TRADING.open, dtype=np.int64)
    by_price = np.array([TRADING.halted, TRADING.quoting, TRADING.open], dtype=np.int64)
    state = by_price[price[sets] + 1]
    last = np.full(n, -1)  # before message j: the last setter before it
    last[sets[sets + 1 < n] + 1] = np.flatnonzero(sets + 1 < n)
    np.maximum.accumulate(last, out=last)
    return np.where(last >= 0, state[np.maximum(last, 0)], TRADING.open)


def _last_quotes(bid, ask, bid_on, ask_on, tick) -> np.ndarray:
    """(n, 2) book ticks: the last bid and ask shown before each message (1 and 2 before any,
    a stand-in mid that the two-sided start rule keeps from ever being used)."""
    n = bid.shape[0]
    out = np.empty((n, 2), dtype=np.int64)
    for col, price, on, none in ((0, bid, bid_on, 1), (1, ask, ask_on, 2)):
        idx = np.where(on, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        seen = np.where(idx >= 0, price[np.maximum(idx, 0)] // tick, none)
        out[1:, col] = seen[:-1]  # before message j: what message j-1 left
        out[0, col] = none
    return out
