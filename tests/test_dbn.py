"""Databento MBO (DBN) files: written with the vendor's own encoder, read back as tapes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.test_tape import simulated_day
from trendgym.envs.lob.dbn import MBO_DTYPE, read_dbn, write_dbn
from trendgym.envs.lob.tape import EVENT

db = pytest.importorskip("databento_dbn")
BASE_NS = 1_704_153_600 * 10**9  # 2024-01-02 00:00 UTC


@pytest.fixture(scope="module")
def day():
    return simulated_day(seconds=60.0)


@pytest.mark.parametrize("zstd", [False, True])
def test_round_trip_through_the_vendor_encoder(day, tmp_path, zstd):
    tape = day[0]
    path = tmp_path / ("day.dbn.zst" if zstd else "day.dbn")
    write_dbn(tape, path, zstd=zstd)
    raw = path.read_bytes()
    assert raw[:4] == (b"\x28\xb5\x2f\xfd" if zstd else b"DBN\x03")
    back = read_dbn(path)
    for name in ("event", "order_id", "size", "price", "direction"):
        assert np.array_equal(back.messages[name], tape.messages[name]), name
    assert np.allclose(back.time, tape.time, rtol=0, atol=1e-6)
    assert back.tick == 100
    assert np.array_equal(back.snapshots(10), tape.snapshots(10))
    # the vendor's decoder agrees with the numpy view of the records
    dec = db.DBNDecoder(compression=db.Compression.ZSTD if zstd else db.Compression.NONE)
    dec.write(raw)
    records = dec.decode()[1:]
    fills = [r for r in records if r.action == "F"]
    assert len(records) == len(tape) + len(fills) and len(fills) == int(np.sum(tape.event == 4))


def mbo(action, side, oid, price, size, t, instrument=7):
    return bytes(
        db.MBOMsg(
            publisher_id=1, instrument_id=instrument, ts_event=BASE_NS + t, ts_recv=BASE_NS + t,
            order_id=oid, price=price, size=size, action=action, side=side,
        )
    )  # fmt: skip


def write_records(path, records, schema=None):
    meta = db.Metadata(
        dataset="TEST",
        start=BASE_NS,
        stype_in=db.SType.RAW_SYMBOL,
        stype_out=db.SType.INSTRUMENT_ID,
        schema=schema or db.Schema.MBO,
        symbols=["X"],
    )
    path.write_bytes(meta.encode() + b"".join(records))
    return path


A, C, M, R, T, F, N = (
    db.Action.ADD, db.Action.CANCEL, db.Action.MODIFY, db.Action.CLEAR, db.Action.TRADE,
    db.Action.FILL, db.Action.NONE,
)  # fmt: skip
BID, ASK, NONE = db.Side.BID, db.Side.ASK, db.Side.NONE
PX = 100 * 10**9  # $100.00 in 1e-9 units


def test_each_action(tmp_path):
    path = write_records(
        tmp_path / "x.dbn",
        [
            mbo(R, NONE, 0, db.UNDEF_PRICE, 0, 0),  # the snapshot's clear: nothing to delete
            mbo(A, BID, 1, PX, 10, 1),
            mbo(A, ASK, 2, PX + 10**7, 5, 2),
            mbo(T, ASK, 0, PX, 3, 3),  # the aggressor's trade: no event
            mbo(F, BID, 1, PX, 3, 3),  # the resting order's fill: its cancel is the execution
            mbo(C, BID, 1, PX, 3, 3),
            mbo(C, BID, 1, PX, 2, 4),  # a plain partial cancel
            mbo(M, BID, 1, PX, 4, 5),  # shrink in place: a partial cancel of 1
            mbo(M, ASK, 2, PX + 2 * 10**7, 5, 6),  # reprice: delete and new
            mbo(N, NONE, 0, 0, 0, 7),
            mbo(C, ASK, 99, PX + 10**7, 4, 8),  # an order from before the file
            mbo(R, NONE, 0, db.UNDEF_PRICE, 0, 9),  # clear: delete everything live
        ],
    )
    tape = read_dbn(path)
    m = tape.messages
    got = list(zip(m["event"].tolist(), m["order_id"].tolist(), m["size"].tolist(),
                   m["price"].tolist(), m["direction"].tolist(), strict=True))  # fmt: skip
    assert got == [
        (EVENT.new, 1, 10, 1_000_000, 1),
        (EVENT.new, 2, 5, 1_000_100, -1),
        (EVENT.execute, 1, 3, 1_000_000, 1),
        (EVENT.cancel, 1, 2, 1_000_000, 1),
        (EVENT.cancel, 1, 1, 1_000_000, 1),
        (EVENT.delete, 2, 5, 1_000_100, -1),
        (EVENT.new, 2, 5, 1_000_200, -1),
        (EVENT.cancel, 99, 4, 1_000_100, -1),
        (EVENT.delete, 1, 4, 1_000_000, 1),
        (EVENT.delete, 2, 5, 1_000_200, -1),
    ]
    assert np.allclose(tape.time, [1e-9, 2e-9, 3e-9, 4e-9, 5e-9, 6e-9, 6e-9, 8e-9, 9e-9, 9e-9])
    snaps = tape.snapshots(1)
    assert snaps[6].tolist() == [1_000_200, 5, 1_000_000, 4] and snaps[-1][[1, 3]].tolist() == [
        0,
        0,
    ]
    assert tape.stats["unknown_ids"] == 1


def test_timezone_puts_times_after_local_midnight(tmp_path):
    t = (14 * 3600 + 30 * 60) * 10**9  # 14:30 UTC = 09:30 in New York in January
    path = write_records(tmp_path / "x.dbn", [mbo(A, BID, 1, PX, 1, t)])
    assert read_dbn(path, timezone="America/New_York").time[0] == 34200.0
    assert read_dbn(path).time[0] == 52200.0


def test_bad_dbn_files(tmp_path):
    good = [mbo(A, BID, 1, PX, 10, 1), mbo(A, ASK, 2, PX + 10**7, 5, 2)]
    cases = {
        "not a DBN file": (tmp_path / "a.dbn").write_bytes(b"LOBSTER,1,2") and tmp_path / "a.dbn",
        "truncated": write_records(tmp_path / "b.dbn", good).write_bytes(
            (tmp_path / "b.dbn").read_bytes()[:-10]
        )
        and tmp_path / "b.dbn",
        "record 2: action 'A' without a side": write_records(
            tmp_path / "c.dbn", [good[0], mbo(A, NONE, 3, PX, 1, 3)]
        ),
        "record 2: ts_recv goes back": write_records(
            tmp_path / "d.dbn", [good[1], mbo(A, BID, 3, PX, 1, 0)]
        ),
        "2 instruments": write_records(tmp_path / "e.dbn", [good[0], mbo(A, BID, 3, PX, 1, 3, 8)]),
        "record 2: size 0": write_records(tmp_path / "f.dbn", [good[0], mbo(A, BID, 3, PX, 0, 3)]),
        "not a multiple of price_divisor": write_records(
            tmp_path / "g.dbn", [mbo(A, BID, 3, PX + 1, 1, 3)]
        ),
        "schema": write_records(tmp_path / "h.dbn", good, schema=db.Schema.TRADES),
    }
    for problem, path in cases.items():
        with pytest.raises(ValueError, match=path.name) as e:
            read_dbn(path)
        assert problem in str(e.value), (problem, str(e.value))
    rec = np.frombuffer(good[0], dtype=MBO_DTYPE).copy()
    rec["action"] = b"Z"
    write_records(tmp_path / "z.dbn", [rec.tobytes()])
    with pytest.raises(ValueError, match=r"z.dbn: record 1: unknown action 'Z'"):
        read_dbn(tmp_path / "z.dbn")
    two = write_records(tmp_path / "two.dbn", [good[0], mbo(A, BID, 3, PX, 1, 3, 8)])
    assert len(read_dbn(two, instrument_id=8)) == 1


def test_missing_vendor_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "databento_dbn", None)
    with pytest.raises(ImportError, match=r"pip install 'trendgym\[dbn\]'"):
        read_dbn(tmp_path / "x.dbn")
