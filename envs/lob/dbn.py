"""Databento MBO (market by order) files in DBN, plain or zstd, as a `MessageTape`.

The metadata is decoded by the vendor's own ``databento-dbn`` package (the optional extra
``pip install trendgym[dbn]``); the records, fixed 56-byte MBO structs, are viewed as one
numpy array (zstd streams are inflated by pyarrow), so a day loads at memory speed.

Databento's actions become LOBSTER events (Databento documents that trades and fills never
change the book: the cancel that follows a fill does):

- ``A`` add: a new order (1);
- ``C`` cancel: a delete (3) when it removes what was left, else a partial cancel (2); a
  cancel that directly follows a fill of the same order and size is its visible execution
  (4), and the fill itself is not repeated;
- ``M`` modify: a partial cancel (2) when it only shrinks the order at its price (which
  keeps its priority), else a delete and a new order (it loses its priority);
- ``R`` clear: a delete of every order then live;
- ``T`` trade, ``F`` fill, ``N`` none: no event (fills reach the tape through the cancel
  after them).

A cancel of an order the file never added (it rested before the file starts) is a partial
cancel of its size, which the rebuild takes from that level's anonymous volume; a modify of
one is a new order at its new price and size (its old volume stays anonymous).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from numba import njit, types
from numba.typed import Dict

from trendgym.envs.lob.tape import EVENT, TAPE_DTYPE, MessageTape, emit_event_nb

MBO_DTYPE = np.dtype(
    [
        ("length", "u1"),  # record length in 4-byte words: 14
        ("rtype", "u1"),  # 160 for MBO
        ("publisher_id", "<u2"),
        ("instrument_id", "<u4"),
        ("ts_event", "<u8"),
        ("order_id", "<u8"),
        ("price", "<i8"),  # 1e-9 units
        ("size", "<u4"),
        ("flags", "u1"),
        ("channel_id", "u1"),
        ("action", "S1"),
        ("side", "S1"),
        ("ts_recv", "<u8"),
        ("ts_in_delta", "<i4"),
        ("sequence", "<u4"),
    ]
)
MBO_RTYPE = 160
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
UNDEF_PRICE = np.iinfo(np.int64).max


def _vendor():
    try:
        import databento_dbn
    except ImportError:
        raise ImportError(
            "reading or writing Databento DBN files needs the vendor's databento-dbn package: "
            "pip install 'trendgym[dbn]' (or pip install databento-dbn)"
        ) from None
    return databento_dbn


def read_dbn(
    path: str | os.PathLike,
    *,
    instrument_id: int | None = None,
    price_divisor: int = 100_000,
    timezone: str = "UTC",
    tick: int = 0,
) -> MessageTape:
    """A Databento MBO file (``.dbn`` or ``.dbn.zst``) as a tape. Prices (1e-9 units) are
    divided by `price_divisor` (default: LOBSTER's 1e-4 units; use 1 for prices finer than
    that); times are seconds after midnight in `timezone` of the first record's day (from
    ``ts_recv``, the order records are sorted in). A file with several instruments needs
    `instrument_id`."""
    db = _vendor()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:4] == _ZSTD_MAGIC:
        import pyarrow as pa

        try:
            raw = pa.CompressedInputStream(pa.BufferReader(raw), "zstd").read()
        except OSError as e:
            raise ValueError(f"{path}: not a readable zstd stream ({e})") from None
    if raw[:3] != b"DBN" or len(raw) < 8:
        raise ValueError(f"{path}: not a DBN file (it starts {raw[:8]!r})")
    end = 8 + int.from_bytes(raw[4:8], "little")
    decoder = db.DBNDecoder()
    decoder.write(raw[:end])
    metadata = decoder.decode()[0]
    if str(metadata.schema) != "mbo":
        raise ValueError(f"{path}: schema {metadata.schema}, not mbo (market by order)")
    body = memoryview(raw)[end:]
    if len(body) % MBO_DTYPE.itemsize:
        raise ValueError(
            f"{path}: {len(body)} bytes of records is not a whole number of "
            f"{MBO_DTYPE.itemsize}-byte MBO records: truncated?"
        )
    rec = np.frombuffer(body, dtype=MBO_DTYPE)
    bad = (rec["rtype"] != MBO_RTYPE) | (rec["length"] != MBO_DTYPE.itemsize // 4)
    _fail(path, bad, lambda r: f"record type {rec['rtype'][r]} is not an MBO record")
    rec = _one_instrument(path, rec, instrument_id)
    return MessageTape(mbo_to_tape(rec, path, price_divisor, timezone), tick=tick, source=str(path))


def _fail(path, mask, problem) -> None:
    if mask.any():
        r = int(np.argmax(mask))
        raise ValueError(f"{path}: record {r + 1}: {problem(r)}")


def _one_instrument(path, rec: np.ndarray, instrument_id: int | None) -> np.ndarray:
    ids = np.unique(rec["instrument_id"])
    if instrument_id is not None:
        return rec[rec["instrument_id"] == instrument_id]
    if ids.size > 1:
        raise ValueError(
            f"{path}: records of {ids.size} instruments ({ids[:5].tolist()}...): pass instrument_id"
        )
    return rec


def mbo_to_tape(rec: np.ndarray, path, price_divisor: int, timezone: str) -> np.ndarray:
    """TAPE_DTYPE events of one instrument's MBO records (checked first)."""
    action, side = rec["action"].view(np.uint8), rec["side"].view(np.uint8)
    known = np.isin(action, np.frombuffer(b"ACMRTFN", np.uint8))
    act = rec["action"]
    _fail(path, ~known, lambda r: f"unknown action {act[r].decode(errors='replace')!r}")
    book = np.isin(action, np.frombuffer(b"ACM", np.uint8))
    sided = (side == ord("A")) | (side == ord("B"))
    _fail(path, book & ~sided, lambda r: f"action {act[r].decode()!r} without a side")
    price = rec["price"]
    _fail(path, book & ((price <= 0) | (price == UNDEF_PRICE)), lambda r: f"price {price[r]}")
    _fail(path, book & (rec["size"] == 0), lambda r: "size 0")
    if price_divisor < 1:
        raise ValueError(f"price_divisor must be >= 1, got {price_divisor}")
    _fail(
        path,
        book & (price % price_divisor != 0),
        lambda r: (
            f"price {price[r]} (1e-9 units) is not a multiple of price_divisor "
            f"{price_divisor}: pass a smaller one (1 keeps every digit)"
        ),
    )
    ts = rec["ts_recv"]
    _fail(path, np.concatenate([[False], ts[1:] < ts[:-1]]), lambda r: "ts_recv goes back")
    midnight_ns = 0
    if ts.size:
        day = datetime.fromtimestamp(int(ts[0]) // 10**9, ZoneInfo(timezone))
        midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
        midnight_ns = int(midnight.timestamp()) * 10**9
    # each record makes at most two events, and a clear one delete per order added before
    out = np.empty(3 * ts.size + 16, dtype=TAPE_DTYPE)
    n = _mbo_events_nb(
        action, side, price // price_divisor, rec["size"].astype(np.int64),
        rec["order_id"].view(np.int64), (ts - np.uint64(midnight_ns)).astype(np.int64), out,
    )  # fmt: skip
    if n < 0:
        raise ValueError(f"{path}: record {-n}: order id above 2^63")
    return out[:n].copy()


_A, _C, _M, _R, _F, _B = ord("A"), ord("C"), ord("M"), ord("R"), ord("F"), ord("B")
_LIVE = types.UniTuple(types.int64, 3)  # a live order: size left, price, direction


@njit(cache=True)
def _mbo_events_nb(action, side, price, size, oid, t_ns, out):
    """Map MBO records to tape events, tracking each live order's (size, price, side). The
    output needs room for three events per record. Returns the events written, or
    -(record + 1) for an id that does not fit an int64."""
    live = Dict.empty(key_type=types.int64, value_type=_LIVE)
    n = 0
    fill_id, fill_size = np.int64(-1), np.int64(0)
    for i in range(action.shape[0]):
        a = action[i]
        o = oid[i]
        t = t_ns[i] / 1e9
        d = 1 if side[i] == _B else -1
        if (a == _A or a == _C or a == _M) and o < 0:
            return -(i + 1)
        if a == _A:
            live[o] = (size[i], price[i], d)
            n = emit_event_nb(out, n, t, EVENT.new, o, size[i], price[i], d)
        elif a == _C:
            if o in live:
                left, p, d = live[o]
                if o == fill_id and size[i] == fill_size:
                    ev = EVENT.execute
                else:
                    ev = EVENT.delete if size[i] >= left else EVENT.cancel
                n = emit_event_nb(out, n, t, ev, o, size[i], p, d)
                if size[i] >= left:
                    del live[o]
                else:
                    live[o] = (left - size[i], p, d)
            else:
                n = emit_event_nb(out, n, t, EVENT.cancel, o, size[i], price[i], d)
        elif a == _M:
            if o in live:
                left, p, d = live[o]
                if price[i] == p and size[i] <= left:
                    if size[i] < left:
                        n = emit_event_nb(out, n, t, EVENT.cancel, o, left - size[i], p, d)
                        live[o] = (size[i], p, d)
                    fill_id = -1
                    continue
                n = emit_event_nb(out, n, t, EVENT.delete, o, left, p, d)
            live[o] = (size[i], price[i], d)
            n = emit_event_nb(out, n, t, EVENT.new, o, size[i], price[i], d)
        elif a == _R:
            for key in live:
                left, p, d = live[key]
                n = emit_event_nb(out, n, t, EVENT.delete, key, left, p, d)
            live.clear()
        if a == _F:
            fill_id, fill_size = o, size[i]
        else:
            fill_id = -1
    return n


def write_dbn(
    tape: MessageTape,
    path: str | os.PathLike,
    *,
    zstd: bool = False,
    date: str = "2024-01-02",
    timezone: str = "UTC",
    price_multiplier: int = 100_000,
    instrument_id: int = 1,
) -> None:
    """Write `tape` as Databento MBO records with the vendor's encoder (adds as ``A``,
    cancels and deletes as ``C``, executions as ``F`` then ``C``; hidden and cross trades
    as ``T``; halts are left out), times on `date` in `timezone`."""
    db = _vendor()
    day = datetime.fromisoformat(date).replace(tzinfo=ZoneInfo(timezone))
    midnight_ns = int(day.timestamp()) * 10**9
    meta = db.Metadata(
        dataset="TRENDGYM.SIM",
        start=midnight_ns,
        stype_in=db.SType.RAW_SYMBOL,
        stype_out=db.SType.INSTRUMENT_ID,
        schema=db.Schema.MBO,
        symbols=["SIM"],
    )
    chunks = [meta.encode()]
    m = tape.messages
    for i in range(len(tape)):
        ev = int(m["event"][i])
        if ev == EVENT.halt:
            continue
        ts = midnight_ns + int(round(float(m["time"][i]) * 1e9))
        side = db.Side.BID if m["direction"][i] == 1 else db.Side.ASK
        common = dict(
            publisher_id=1, instrument_id=instrument_id, ts_event=ts, ts_recv=ts,
            order_id=int(m["order_id"][i]), price=int(m["price"][i]) * price_multiplier,
            size=int(m["size"][i]), side=side, sequence=i,
        )  # fmt: skip
        if ev == EVENT.new:
            actions = [db.Action.ADD]
        elif ev in (EVENT.cancel, EVENT.delete):
            actions = [db.Action.CANCEL]
        elif ev == EVENT.execute:
            actions = [db.Action.FILL, db.Action.CANCEL]
        else:
            actions = [db.Action.TRADE]
        chunks += [bytes(db.MBOMsg(action=a, **common)) for a in actions]
    data = b"".join(chunks)
    with open(path, "wb") as f:
        if zstd:
            enc = db.Transcoder(f, db.Encoding.DBN, db.Compression.ZSTD)
            enc.write(data)
            enc.finish()
        else:
            f.write(data)
