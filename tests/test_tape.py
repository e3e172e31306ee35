"""Message tapes: LOBSTER read/write, the book rebuilt from a tape, and its pure-Python twin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tape_twin import twin_snapshots
from trendgym.envs.lob import OrderBook
from trendgym.envs.lob.flow import OrderFlow, flow_params
from trendgym.envs.lob.lobster import read_lobster, write_lobster
from trendgym.envs.lob.record import record_flow, resting_orders, tape_from_orders
from trendgym.envs.lob.tape import (
    EMPTY_ASK,
    EMPTY_BID,
    TAPE_DTYPE,
    MessageTape,
    anonymous_id,
)


def tape_of(rows, tick=100, orderbook=None):
    """A tape from (time, event, id, size, price, direction) rows."""
    m = np.zeros(len(rows), dtype=TAPE_DTYPE)
    for i, (t, ev, oid, size, price, d) in enumerate(rows):
        m[i] = (t, oid, size, price, ev, d)
    return MessageTape(m, tick=tick, orderbook=orderbook)


def simulated_day(seconds=120.0, step=0.05, seed=0, preset="calm"):
    """A flow's day as a tape, with the simulator's own book (10 levels) after every step
    and the tape row each step ended on."""
    book = OrderBook()
    flow = OrderFlow(book, flow_params(preset), np.random.default_rng(seed), record=4096)
    flow.seed_book()
    msgs, times = [resting_orders(book)], [np.full(len(resting_orders(book)), 34200.0)]
    ends, books = [], []
    for _ in range(int(seconds / step)):
        flow.run(step)
        msgs.append(flow.messages[: flow.n_messages].copy())
        times.append(np.full(flow.n_messages, 34200.0 + flow.time))
        ends.append(sum(len(x) for x in msgs))
        books.append(book_row(book, 10))
    msgs = np.concatenate(msgs)
    tape, origin = tape_from_orders(msgs, np.concatenate(times), tick=100, return_origin=True)
    return tape, origin, msgs, ends, books


def book_row(book, n, tick=100):
    row = []
    asks, bids = book.depth(-1, n), book.depth(1, n)
    for j in range(n):
        row += [asks[j, 0] * tick, asks[j, 1]] if j < len(asks) else [EMPTY_ASK, 0]
        row += [bids[j, 0] * tick, bids[j, 1]] if j < len(bids) else [EMPTY_BID, 0]
    return row


@pytest.fixture(scope="module")
def day():
    return simulated_day()


# ------------------------------------------------------------------------ round trips
def test_round_trip_matches_the_simulator_at_every_message(day, tmp_path):
    tape, origin, msgs, ends, books = day
    assert len(tape) > 2000 and set(np.unique(tape.event)) == {1, 3, 4}
    write_lobster(tape, tmp_path / "m.csv")
    back = read_lobster(tmp_path / "m.csv")
    assert np.array_equal(back.messages, tape.messages) and back.tick == 100
    snaps = back.snapshots(10)
    # the simulator's own book at the end of every step
    last_row = np.searchsorted(origin, np.asarray(ends), side="left") - 1
    for row, want in zip(last_row, books, strict=True):
        assert snaps[row].tolist() == want
    # and after every single message, replayed into an independent OrderBook
    ref = OrderBook()
    last_of = np.searchsorted(origin, np.arange(len(msgs)), side="right") - 1
    for i in range(len(msgs)):
        ref.process(msgs[i : i + 1])
        assert snaps[last_of[i]].tolist() == book_row(ref, 10), i
    assert back.stats == {
        "unknown_ids": 0,
        "anonymous_reductions": 0,
        "overshoots": 0,
        "crossing_adds": 0,
        "duplicate_adds": 0,
        "halts": 0,
    }


def test_orderbook_file_seeds_anonymous_volume(day, tmp_path):
    """A file that starts after the book was built: its resting orders are anonymous volume;
    with the book deep enough in the file, every row agrees without a resync."""
    tape, *_ = day
    n_seed = int(np.sum(tape.time == tape.time[0]))
    deep = tape.snapshots(400)
    assert (deep[:, -1] == 0).all() and (deep[:, -3] == 0).all()  # 400 levels hold all
    cut = MessageTape(tape.messages[n_seed:], tick=100, orderbook=deep[n_seed:])
    write_lobster(cut, tmp_path / "m.csv", tmp_path / "o.csv", levels=400)
    back = read_lobster(tmp_path / "m.csv", tmp_path / "o.csv")
    assert back.levels == 400
    snaps = back.snapshots(400)
    assert back.stats["mismatched_rows"] == 0 and back.stats["unknown_ids"] == 0
    assert back.stats["anonymous_reductions"] > 0  # the seeded orders were cancelled and hit
    assert np.array_equal(snaps, deep[n_seed:])


def test_shallow_file_resyncs_to_every_row(day, tmp_path):
    tape, *_ = day
    n_seed = int(np.sum(tape.time == tape.time[0]))
    rows = tape.snapshots(2)[n_seed:]
    cut = MessageTape(tape.messages[n_seed:], tick=100, orderbook=rows)
    plain = cut.snapshots(2)
    drift = cut.stats["mismatched_rows"]
    assert drift > 0 and not np.array_equal(plain, rows)  # levels 3+ were never seen
    synced = cut.snapshots(2, resync=True)
    assert np.array_equal(synced, rows)
    assert 0 < cut.stats["resyncs"] == cut.stats["mismatched_rows"] <= drift
    twin_rows, twin_stats = twin_snapshots(
        cut.messages, 100, 2, seed=_seed_of(cut), ref=rows, resync=True
    )
    assert synced.tolist() == twin_rows and twin_stats == cut.stats


def _seed_of(tape):
    book = tape.initial_book()
    out = []
    for side in (1, -1):
        for p, q in book.depth(side, 10_000):
            out.append((side, int(p), int(q)))
    return out


def test_write_lobster_records_a_flow(tmp_path):
    flow = OrderFlow(OrderBook(), flow_params("calm"), np.random.default_rng(3), record=4096)
    flow.seed_book()
    tape = write_lobster(flow, tmp_path / "m.csv", tmp_path / "o.csv", levels=5, seconds=30.0)
    back = read_lobster(tmp_path / "m.csv", tmp_path / "o.csv")
    assert np.array_equal(back.messages, tape.messages)
    assert np.array_equal(back.orderbook, tape.snapshots(5))
    assert np.array_equal(back.snapshots(5), back.orderbook) and back.stats["mismatched_rows"] == 0
    with pytest.raises(TypeError, match="OrderFlow"):
        write_lobster(tape, tmp_path / "x.csv", seconds=3.0)
    with pytest.raises(ValueError, match="record"):
        record_flow(OrderFlow(OrderBook(), flow_params(), np.random.default_rng(0)), 1.0)


# ------------------------------------------------------------------- events and quirks
A, B = -1, 1  # directions: a resting sell (ask), a resting buy (bid)


def rows_of(tape, n=2):
    return tape.snapshots(n).tolist()


def lv(ask=(EMPTY_ASK, 0), bid=(EMPTY_BID, 0)):
    return [ask[0], ask[1], bid[0], bid[1]]


def test_each_event_type():
    tape = tape_of(
        [
            (1.0, 1, 10, 5, 1_000_100, A),  # new ask
            (1.0, 1, 11, 7, 999_900, B),  # new bid
            (1.1, 2, 10, 2, 1_000_100, A),  # partial cancel
            (1.2, 4, 11, 3, 999_900, B),  # visible execution of the bid
            (1.3, 5, 0, 9, 1_000_000, B),  # hidden execution: no visible change
            (1.4, 6, 0, 50, 1_000_000, A),  # cross trade: no change
            (1.5, 7, 0, 0, -1, -1),  # halt
            (1.6, 7, 0, 0, 1, -1),  # trading resumes
            (1.7, 3, 10, 3, 1_000_100, A),  # delete the ask
            (1.8, 4, 11, 4, 999_900, B),  # the bid executes fully
        ]
    )
    ask, bid = (1_000_100, 5), (999_900, 7)
    empty2 = lv() + lv()
    assert rows_of(tape) == [
        lv(ask) + lv(),
        lv(ask, bid) + lv(),
        lv((1_000_100, 3), bid) + lv(),
        lv((1_000_100, 3), (999_900, 4)) + lv(),
        *[lv((1_000_100, 3), (999_900, 4)) + lv()] * 4,
        lv(bid=(999_900, 4)) + lv(),
        empty2,
    ]
    assert tape.stats["halts"] == 1 and sum(tape.stats.values()) == 1


def test_queue_order_and_levels_sorted():
    tape = tape_of(
        [
            (0, 1, 1, 5, 1_000_300, A),
            (0, 1, 2, 4, 1_000_100, A),
            (0, 1, 3, 3, 1_000_200, A),
            (0, 1, 4, 2, 1_000_100, A),
            (0, 1, 5, 1, 999_000, B),
            (0, 1, 6, 6, 999_500, B),
        ]
    )
    assert rows_of(tape, 3)[-1] == (
        lv((1_000_100, 6), (999_500, 6)) + lv((1_000_200, 3), (999_000, 1)) + lv((1_000_300, 5))
    )


def test_unknown_ids_reduce_anonymous_volume():
    # before the file: 10 @ ask 1_000_100, 8 @ bid 999_900; message 1 deletes 2 of the bid
    ob = np.array(
        [lv((1_000_100, 10), (999_900, 6)), lv((1_000_100, 10), (999_900, 6)),
         lv((1_000_100, 7), (999_900, 6)), lv((1_000_100, 7), (999_900, 6)),
         lv((1_000_100, 3), (999_900, 6)), lv((1_000_100, 3), (999_900, 6))]
    )  # fmt: skip
    tape = tape_of(
        [
            (0, 3, 77, 2, 999_900, B),  # an order from before the file
            (1, 1, 20, 4, 1_000_100, A),  # joins behind the anonymous 10
            (2, 4, 78, 7, 1_000_100, A),  # unknown id: executes anonymous volume
            (3, 5, 79, 1, 1_000_100, A),  # hidden: nothing
            (4, 4, 20, 4, 1_000_100, A),  # the known order executes
            (5, 2, 99, 1, 1_000_500, A),  # unknown, no volume there either
        ]
    )
    tape.orderbook = ob.copy()
    ob[1] = lv((1_000_100, 14), (999_900, 6))
    ob[2] = ob[3] = lv((1_000_100, 7), (999_900, 6))
    ob[4] = ob[5] = lv((1_000_100, 3), (999_900, 6))
    tape = MessageTape(tape.messages, tick=100, orderbook=ob)
    book = tape.initial_book()
    assert book.depth(1, 2).tolist() == [[9999, 8]] and book.depth(-1, 2).tolist() == [[10001, 10]]
    assert book.order(anonymous_id(1, 9999))["qty"] == 8
    snaps = tape.snapshots(1)
    assert np.array_equal(snaps, ob)
    st_ = tape.stats
    assert (st_["anonymous_reductions"], st_["unknown_ids"], st_["mismatched_rows"]) == (2, 1, 0)


def test_overshoot_crossing_and_duplicate_adds():
    tape = tape_of(
        [
            (0, 1, 1, 5, 1_000_100, A),
            (0, 1, 2, 5, 1_000_200, A),
            (0, 2, 1, 9, 1_000_100, A),  # cancels more than rests: removed, counted
            (0, 1, 2, 3, 1_000_300, A),  # id 2 is live: skipped
            (0, 1, 3, 4, 1_000_300, B),  # a bid through the asks: the stale asks go
        ]
    )
    rows = rows_of(tape, 1)
    assert rows[2] == lv((1_000_200, 5)) and rows[3] == rows[2]
    assert rows[4] == lv(bid=(1_000_300, 4))
    s = tape.stats
    assert (s["overshoots"], s["duplicate_adds"], s["crossing_adds"]) == (1, 1, 1)


def test_start_stop_and_rebuild_book():
    tape = tape_of([(0, 1, i, i, 1_000_000 + 100 * i, A) for i in range(1, 6)])
    full = tape.snapshots(3)
    assert np.array_equal(tape.snapshots(3, start=2, stop=4), full[2:4])
    book, _ = tape.rebuild(stop=3)
    assert book.depth(-1, 9).tolist() == [[10001, 1], [10002, 2], [10003, 3]]
    with pytest.raises(ValueError, match="start"):
        tape.snapshots(3, start=4, stop=2)
    with pytest.raises(ValueError, match="resync needs"):
        tape.snapshots(3, resync=True)


# ---------------------------------------------------------------------------- bad files
GOOD = "34200.0,1,1,5,1000100,-1\n34200.5,1,2,5,999900,1\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("34200.5,1,1,5,1000100,-1\n34200.0,1,2,5,999900,1\n", "row 2: time 34200.0 is before"),
        (GOOD + "34201.0,8,3,5,999900,1\n", "row 3: unknown event type 8"),
        (GOOD + "34201.0,1,3,0,999900,1\n", "row 3: size must be > 0, got 0"),
        (GOOD + "34201.0,3,3,-4,999900,1\n", "row 3: size must be > 0, got -4"),
        (GOOD + "34201.0,1,3,5,0,1\n", "row 3: price must be > 0, got 0"),
        (GOOD + "34201.0,1,3,5,-100,1\n", "row 3: price must be > 0"),
        (GOOD + "34201.0,1,3,5,999900,0\n", "row 3: direction must be"),
        (GOOD + "34201.0,1,3,5,999900\n", "row 3: 5 columns, expected 6"),
        ("34201.0,1,3,5,999900,1,7\n", "row 1: 7 columns, expected 6"),
        (GOOD + "34201.0,1,x,5,999900,1\n", "row 3: column 3 is 'x'"),
        (GOOD + "34201.0,7,0,0,-5,-1\n", "row 3: a halt's price"),
        ("", "row 1: the file is empty"),
    ],
)
def test_bad_message_files(tmp_path, text, problem):
    path = tmp_path / "bad_messages.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad_messages.csv") as e:
        read_lobster(path)
    assert problem in str(e.value)


OB_GOOD = [
    "1000100,5,-9999999999,0,9999999999,0,-9999999999,0",
    "1000100,5,999900,5,9999999999,0,-9999999999,0",
]


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (OB_GOOD[:1], "1 rows for the 2 messages"),
        (OB_GOOD + OB_GOOD[1:], "3 rows for the 2 messages"),
        (
            [OB_GOOD[0], "1000100,5,999900,5,1000000,3,-9999999999,0"],
            "row 2: ask prices are not strictly rising",
        ),
        (
            [OB_GOOD[0], "999800,5,999900,5,9999999999,0,-9999999999,0"],
            "row 2: crossed: best ask 999800 <= best bid 999900",
        ),
        ([OB_GOOD[0], "1000100,0,999900,5,9999999999,0,-9999999999,0"], "row 2: ask level 1"),
        (
            [OB_GOOD[0], "9999999999,0,999900,5,1000200,5,-9999999999,0"],
            "row 2: an empty ask level before a full one",
        ),
        (["1000100,5,999900,5,1000200"] * 2, "row 1: 5 columns"),
        (
            ["1000100,3,-9999999999,0"] * 2,
            "row 1 of the orderbook shows 3 at 1000100, less than message 1 adds",
        ),
    ],
)
def test_bad_orderbook_files(tmp_path, rows, problem):
    (tmp_path / "m.csv").write_text(GOOD)
    path = tmp_path / "bad_book.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="bad_book.csv") as e:
        read_lobster(tmp_path / "m.csv", path)
    assert problem in str(e.value)


def test_orderbook_changing_on_a_hidden_execution_is_refused(tmp_path):
    (tmp_path / "m.csv").write_text(GOOD + "34202.0,5,0,3,1000000,1\n")
    rows = OB_GOOD + ["1000100,4,999900,5,9999999999,0,-9999999999,0"]
    (tmp_path / "o.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"o.csv: row 3: the book changed on message 3"):
        read_lobster(tmp_path / "m.csv", tmp_path / "o.csv")


def test_prices_off_the_tick_are_refused():
    with pytest.raises(ValueError, match="row 2: price 1000150 is not a multiple of the tick 100"):
        tape_of([(0, 1, 1, 5, 1_000_100, A), (0, 1, 2, 5, 1_000_150, A)], tick=100)


# ------------------------------------------------------------------ the twin, by property
@st.composite
def streams(draw):
    """Random valid tapes with every quirk: unknown ids, overshoots, crossing and duplicate
    adds, hidden trades and halts; and a random source orderbook to resync to."""
    n = draw(st.integers(1, 60))
    rows, live = [], []
    for i in range(n):
        kind = draw(st.sampled_from([1, 1, 1, 2, 3, 4, 5, 6, 7]))
        d = draw(st.sampled_from([A, B]))
        price = 100 * draw(st.integers(9990, 10010))
        size = draw(st.integers(1, 9))
        if kind == 1:
            oid = draw(st.integers(1, 200))
            live.append((oid, price, d))
        elif kind <= 4:
            if live and draw(st.booleans()):
                oid, price, d = draw(st.sampled_from(live))
            else:
                oid = draw(st.integers(300, 400))
        else:
            oid = 0
        if kind == 7:
            price, size = draw(st.sampled_from([-1, 0, 1])), 0
        rows.append((float(i), kind, oid, size, price, d))
    return rows


def random_orderbook(draw_rows, n, lref, rng):
    """Uncrossed random rows in LOBSTER layout."""
    ob = np.zeros((n, 4 * lref), dtype=np.int64)
    for i in range(n):
        mid = 100 * int(rng.integers(9995, 10005))
        na, nb = rng.integers(0, lref + 1, size=2)
        asks = mid + 100 * np.sort(rng.choice(np.arange(1, 8), na, replace=False))
        bids = mid - 100 * np.sort(rng.choice(np.arange(0, 8), nb, replace=False))
        for j in range(lref):
            ob[i, 4 * j : 4 * j + 2] = (asks[j], rng.integers(1, 9)) if j < na else (EMPTY_ASK, 0)
            ob[i, 4 * j + 2 : 4 * j + 4] = (
                (bids[j], rng.integers(1, 9)) if j < nb else (EMPTY_BID, 0)
            )
    return ob


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 4))
def test_rebuild_matches_its_twin(rows, depth):
    tape = tape_of(rows)
    snaps = tape.snapshots(depth)
    twin_rows, twin_stats = twin_snapshots(tape.messages, 100, depth)
    assert snaps.tolist() == twin_rows
    assert twin_stats == {"mismatched_rows": 0, "resyncs": 0, **tape.stats}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 3), st.integers(0, 2**32 - 1), st.booleans())
def test_resync_matches_its_twin(rows, lref, seed, resync):
    """Against a source orderbook that disagrees everywhere: the kernel and the twin count,
    resync and rebuild alike (the seed row is random too)."""
    rng = np.random.default_rng(seed)
    ob = random_orderbook(None, len(rows), lref, rng)
    ob[0] = ob[0]  # the first row seeds the book (minus message 0)
    m = tape_of(rows).messages
    try:
        tape = MessageTape(m, tick=100, orderbook=ob)
        tape.initial_book()
    except ValueError:  # row 1 cannot hold message 1's add: a mismatch the reader refuses
        return
    snaps = tape.snapshots(lref + 1, resync=resync)
    twin_rows, twin_stats = twin_snapshots(
        m, 100, lref + 1, seed=_seed_of(tape), ref=ob, resync=resync
    )
    assert snaps.tolist() == twin_rows
    assert twin_stats == tape.stats
    if resync:
        assert np.array_equal(snaps[:, : 4 * lref], ob)


def test_tick_is_the_gcd_of_messages_and_rows():
    m = tape_of([(0, 1, 1, 5, 1_000_200, A)], tick=100).messages
    ob = np.array([lv((1_000_200, 5), (1_000_100, 3))])
    assert MessageTape(m).tick == 1_000_200 and MessageTape(m, orderbook=ob).tick == 100
