"""LOBSTER files: read them into a `MessageTape`, write any tape (or the simulator's flow).

A LOBSTER message file has one CSV row per message: time (seconds after midnight), event
type (1 new limit order, 2 partial cancel, 3 delete, 4 visible execution, 5 hidden
execution, 6 cross trade, 7 halt), order id, size, price x 10000, direction (+1 buy, -1 sell:
the side of the resting order). The orderbook file has, per message, the book after it: per
level ask price, ask size, bid price, bid size, empty levels as 9999999999 / 0 and
-9999999999 / 0. Files are parsed by pyarrow's multithreaded CSV reader straight into
columns and checked whole before a tape is built: a bad file raises ``ValueError`` naming
the file, the row (1-based, as an editor shows it) and the problem, and nothing is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trendgym.envs.lob.tape import (
    EMPTY_ASK,
    EMPTY_BID,
    EVENT,
    TAPE_DTYPE,
    MessageTape,
    seed_levels,
)

MESSAGE_COLUMNS = ("time", "event", "order_id", "size", "price", "direction")


def read_lobster(
    message_file: str | os.PathLike, orderbook_file: str | os.PathLike | None = None, *, tick=0
) -> MessageTape:
    """A LOBSTER day as a `MessageTape` (with the orderbook rows when given: any level
    count). `tick`: price units per book tick (default: the gcd of the prices, e.g. 100 for
    a one-cent tick)."""
    path = Path(message_file)
    cols = _read_csv(path, len(MESSAGE_COLUMNS), ["float64"] + ["int64"] * 5)
    msgs = np.empty(cols[0].shape[0], dtype=TAPE_DTYPE)
    for name, col in zip(MESSAGE_COLUMNS, cols, strict=True):
        if name in ("event", "direction"):  # checked before the narrowing cast
            bad = (col < -128) | (col > 127)
            if bad.any():
                r = int(np.argmax(bad))
                raise ValueError(f"{path}: row {r + 1}: {name} {col[r]} is out of range")
        msgs[name] = col
    check_messages(msgs, str(path))
    orderbook = None
    if orderbook_file is not None:
        orderbook = read_orderbook(orderbook_file)
        ob_path = Path(orderbook_file)
        if orderbook.shape[0] != msgs.shape[0]:
            raise ValueError(
                f"{ob_path}: {orderbook.shape[0]} rows for the {msgs.shape[0]} messages of "
                f"{path}: the files do not match"
            )
        check_rows_follow(msgs, orderbook, str(ob_path))
    tape = MessageTape(msgs, tick, orderbook, source=str(path))
    if orderbook is not None:  # row 1 must hold message 1's effect: checked before returning
        seed_levels(msgs[0], orderbook[0], tape.tick, str(Path(orderbook_file)))
    return tape


def read_orderbook(orderbook_file: str | os.PathLike) -> np.ndarray:
    """A LOBSTER orderbook file as int64 (n, 4*levels), each row checked (sizes, empty
    levels, price order, not crossed)."""
    path = Path(orderbook_file)
    first = _first_line(path)
    n_cols = first.count(",") + 1
    if n_cols % 4:
        raise ValueError(
            f"{path}: row 1: {n_cols} columns; an orderbook row has 4 per level "
            "(ask price, ask size, bid price, bid size)"
        )
    ob = np.column_stack(_read_csv(path, n_cols, ["int64"] * n_cols))
    check_orderbook(ob, str(path))
    return ob


# ------------------------------------------------------------------------------ checks
def _fail(source: str, mask: np.ndarray, problem) -> None:
    """Raise for the first row where `mask` holds; `problem(row)` describes it."""
    if mask.any():
        r = int(np.argmax(mask))
        raise ValueError(f"{source}: row {r + 1}: {problem(r)}")


def check_messages(m: np.ndarray, source: str) -> None:
    """Every rule a message row must keep, checked on whole columns."""
    t, ev, size, price, d = m["time"], m["event"], m["size"], m["price"], m["direction"]
    _fail(source, ~np.isfinite(t) | (t < 0), lambda r: f"time {t[r]} is not a time of day")
    if t.size > 1:
        back = np.concatenate([[False], t[1:] < t[:-1]])
        _fail(source, back, lambda r: f"time {t[r]} is before the previous row's {t[r - 1]}")
    _fail(
        source,
        (ev < EVENT.new) | (ev > EVENT.halt),
        lambda r: (
            f"unknown event type {ev[r]} (1 new, 2 cancel, 3 delete, 4 execution, "
            "5 hidden execution, 6 cross trade, 7 halt)"
        ),
    )
    trade = ev != EVENT.halt
    _fail(source, trade & (size <= 0), lambda r: f"size must be > 0, got {size[r]}")
    _fail(source, trade & (price <= 0), lambda r: f"price must be > 0, got {price[r]}")
    _fail(
        source,
        trade & (price >= EMPTY_ASK),
        lambda r: f"price {price[r]} is LOBSTER's empty-level marker",
    )
    _fail(source, trade & (d != 1) & (d != -1), lambda r: f"direction must be +1 or -1, got {d[r]}")
    _fail(
        source,
        (ev == EVENT.halt) & ((price < -1) | (price > 1)),
        lambda r: f"a halt's price must be -1, 0 or 1, got {price[r]}",
    )
    visible = ev <= EVENT.execute
    oid = m["order_id"]
    _fail(source, visible & (oid < 0), lambda r: f"order id must be >= 0, got {oid[r]}")


def check_orderbook(ob: np.ndarray, source: str) -> None:
    """Each row: non-empty levels first, sizes > 0, asks rising, bids falling, not crossed."""
    for col, empty, name, order in ((0, EMPTY_ASK, "ask", 1), (2, EMPTY_BID, "bid", -1)):
        p, q = ob[:, col::4], ob[:, col + 1 :: 4]
        is_empty = (p == empty) & (q == 0)
        bad = ~is_empty & ((q <= 0) | (p <= 0) | (p >= EMPTY_ASK))
        _fail(
            source,
            bad.any(axis=1),
            lambda r, p=p, q=q, bad=bad, name=name: (
                f"{name} level {int(np.argmax(bad[r])) + 1}: price {p[r, np.argmax(bad[r])]}, "
                f"size {q[r, np.argmax(bad[r])]} (a level needs price > 0 and size > 0, or "
                f"the empty marker)"
            ),
        )
        if p.shape[1] > 1:
            gap = is_empty[:, :-1] & ~is_empty[:, 1:]
            _fail(
                source,
                gap.any(axis=1),
                lambda r, name=name: f"an empty {name} level before a full one",
            )
            step = order * np.diff(p, axis=1) <= 0
            _fail(
                source,
                (step & ~is_empty[:, 1:]).any(axis=1),
                lambda r, name=name: (
                    f"{name} prices are not strictly {'rising' if name == 'ask' else 'falling'}"
                ),
            )
    crossed = (ob[:, 1] > 0) & (ob[:, 3] > 0) & (ob[:, 0] <= ob[:, 2])
    _fail(source, crossed, lambda r: f"crossed: best ask {ob[r, 0]} <= best bid {ob[r, 2]}")


def check_rows_follow(m: np.ndarray, ob: np.ndarray, source: str) -> None:
    """Rows that messages without a visible effect (hidden and cross trades, halts) cannot
    have changed must equal the row before them."""
    if ob.shape[0] < 2:
        return
    quiet = np.zeros(ob.shape[0], dtype=bool)
    quiet[1:] = (m["event"][1:] >= EVENT.hidden) & (ob[1:] != ob[:-1]).any(axis=1)
    _fail(
        source,
        quiet,
        lambda r: (
            f"the book changed on message {r + 1} (event {m['event'][r]}), which "
            "cannot change the visible book: the files do not match"
        ),
    )


# ------------------------------------------------------------------------------ parsing
def _first_line(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with open(path) as f:
        line = f.readline()
    if not line.strip():
        raise ValueError(f"{path}: row 1: the file is empty")
    return line


def _read_csv(path: Path, n_cols: int, types: list[str]) -> list[np.ndarray]:
    """The columns of a header-less CSV file with exactly `n_cols` numeric columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    first = _first_line(path)
    if first.count(",") + 1 != n_cols:
        raise ValueError(f"{path}: row 1: {first.count(',') + 1} columns, expected {n_cols}")
    names = [f"c{i}" for i in range(n_cols)]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(zip(names, types, strict=True)), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(_locate_bad_row(path, n_cols, types) or f"{path}: {e}") from None
    cols = []
    for name in names:
        col = table.column(name)
        if col.null_count:
            r = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
            raise ValueError(f"{path}: row {r + 1}: column {names.index(name) + 1} is empty")
        cols.append(col.to_numpy())
    return cols


def _locate_bad_row(path: Path, n_cols: int, types: list[str]) -> str | None:
    """The first row pyarrow refused, found by reading the file line by line (error path
    only)."""
    with open(path) as f:
        for r, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").split(",")
            if len(fields) != n_cols:
                return f"{path}: row {r}: {len(fields)} columns, expected {n_cols}"
            for c, (text, kind) in enumerate(zip(fields, types, strict=True), start=1):
                try:
                    float(text) if kind == "float64" else int(text)
                except ValueError:
                    return f"{path}: row {r}: column {c} is {text!r}, not a {'number' if kind == 'float64' else 'whole number'}"
    return None


# ------------------------------------------------------------------------------ writing
def write_lobster(
    tape_or_flow,
    message_file: str | os.PathLike,
    orderbook_file: str | os.PathLike | None = None,
    levels: int = 10,
    **record,
) -> MessageTape:
    """Write a tape in LOBSTER format: the message file and, when asked, the orderbook file
    `levels` deep (the tape's own rows when it has them that deep, else the rebuilt book).
    An `OrderFlow` is first recorded with ``record_flow(flow, **record)`` (``seconds`` is
    required). Returns the tape written."""
    from trendgym.envs.lob.flow import OrderFlow
    from trendgym.envs.lob.record import record_flow

    if isinstance(tape_or_flow, OrderFlow):
        tape = record_flow(tape_or_flow, **record)
    elif isinstance(tape_or_flow, MessageTape):
        if record:
            raise TypeError(f"recording options {sorted(record)} apply to an OrderFlow only")
        tape = tape_or_flow
    else:
        raise TypeError(
            f"tape_or_flow must be a MessageTape or an OrderFlow, got {type(tape_or_flow).__name__}"
        )
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    import pyarrow as pa

    m = tape.messages
    table = pa.table(
        {
            name: m[name].astype(np.float64 if name == "time" else np.int64)
            for name in MESSAGE_COLUMNS
        }
    )
    _write_csv(table, message_file)
    if orderbook_file is not None:
        if tape.orderbook is not None and tape.levels >= levels:
            rows = tape.orderbook[:, : 4 * levels]
        else:
            rows = tape.snapshots(levels)
        _write_csv(pa.table({f"c{j}": rows[:, j] for j in range(rows.shape[1])}), orderbook_file)
    return tape


def _write_csv(table, path) -> None:
    import pyarrow.csv as pacsv

    pacsv.write_csv(
        table, path, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none")
    )
