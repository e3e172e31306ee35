"""The numba order book against its pure-Python twin, plus its invariants and its refusals."""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.lob_twin import TwinBook
from trendgym.envs.lob import MESSAGE_DTYPE, OrderBook, empty_messages
from trendgym.envs.lob import kernels as k


# ----------------------------------------------------------------------------- streams
@st.composite
def message(draw, ids):
    kind = draw(st.sampled_from([0, 0, 0, 0, 1, 2, 2, 3]))
    side = draw(st.sampled_from([1, -1]))
    owner = draw(st.integers(0, 3))
    oid = draw(ids)
    if kind == 0:
        price = draw(st.integers(95, 105))
        qty = draw(st.integers(1, 20))
        peak = draw(st.sampled_from([0, 0, 0, 1, 3, 50]))
        return (0, side, owner, price, qty, oid, peak)
    if kind == 1:
        return (1, side, owner, 0, draw(st.integers(1, 40)), oid, 0)
    if kind == 2:
        return (2, 0, 0, 0, 0, oid, 0)
    return (3, 0, 0, draw(st.sampled_from([0, 0, 96, 100, 104])), draw(st.integers(1, 25)), oid, 0)


def streams(id_space=60, max_batches=6):
    """Batches of messages over a narrow price band (so orders cross) with ids reused often
    (so cancels hit live and dead ids, and some limits reuse a live id -> rejected batch)."""
    return st.lists(
        st.lists(message(st.integers(0, id_space)), min_size=0, max_size=25),
        min_size=1,
        max_size=max_batches,
    )


def to_array(msgs):
    arr = empty_messages(len(msgs))
    for i, m in enumerate(msgs):
        arr[i] = m
    return arr


def run_both(batches, book=None):
    """Feed both books; yield (trades_nb, trades_twin, error_nb, error_twin) per batch."""
    book = book or OrderBook(capacity=4, price_levels=8)  # tiny: growth gets exercised
    twin = TwinBook()
    for batch in batches:
        err_nb = err_tw = None
        try:
            out = book.process(to_array(batch))
            got = [tuple(int(x) for x in t) for t in out]
        except ValueError as e:
            err_nb, got = str(e), None
        try:
            want = twin.process(batch)
        except ValueError as e:
            err_tw, want = str(e), None
        yield book, twin, got, want, err_nb, err_tw


def assert_same_book(book, twin):
    for side in (1, -1):
        assert book.depth(side, 100).tolist() == twin.depth(side, 100)
    assert book.best_bid() == twin.best(1)
    assert book.best_ask() == twin.best(-1)
    assert book.n_orders == len(twin.live)
    for oid in twin.live:
        assert book.queue_ahead(oid) == twin.queue_ahead(oid)
        o = book.order(oid)
        assert (o["qty"], o["hidden"], o["price"]) == (
            twin.live[oid]["qty"],
            twin.live[oid]["hidden"],
            twin.live[oid]["price"],
        )
    tob = np.zeros(6, dtype=np.int64)
    k.top_of_book_nb(book.levels, book.meta, 5, tob)
    bids, asks = twin.depth(1, 5), twin.depth(-1, 5)
    assert tob.tolist() == [
        bids[0][0] if bids else 0,
        asks[0][0] if asks else 0,
        bids[0][1] if bids else 0,
        asks[0][1] if asks else 0,
        sum(q for _, q in bids),
        sum(q for _, q in asks),
    ]
    state = np.zeros(3, dtype=np.int64)
    for oid, o in twin.live.items():
        assert k.order_state_nb(*book.state[:5], oid, state)
        assert state.tolist() == [o["qty"] + o["hidden"], o["price"], twin.queue_ahead(oid)]
    assert not k.order_state_nb(*book.state[:5], 10_000, state) and state.tolist() == [0, 0, 0]
    for owner in range(4):
        row = twin.fills.get(owner, [0] * 6)
        f = book.fills(owner)
        assert [
            f["bought_qty"],
            f["bought_value"],
            f["sold_qty"],
            f["sold_value"],
            f["maker_qty"],
            f["taker_qty"],
        ] == row


# ----------------------------------------------------------------------- differential
@settings(max_examples=300, deadline=None)
@given(streams())
def test_kernels_match_python_twin(batches):
    for book, twin, got, want, err_nb, err_tw in run_both(batches):
        assert err_nb == err_tw
        assert got == want
        assert_same_book(book, twin)


@settings(max_examples=100, deadline=None)
@given(streams(max_batches=1))
def test_splitting_a_stream_into_batches_changes_nothing(batches):
    """One batch or one message at a time: same trades, same book (when the batch is valid)."""
    msgs = batches[0]
    whole = OrderBook()
    try:
        trades_whole = [tuple(t) for t in whole.process(to_array(msgs))]
    except ValueError:
        return
    piecewise = OrderBook(capacity=2, price_levels=4)
    trades_pieces = []
    for m in msgs:
        trades_pieces += [tuple(t) for t in piecewise.process(to_array([m]))]
    assert trades_whole == trades_pieces
    for side in (1, -1):
        assert whole.depth(side, 50).tolist() == piecewise.depth(side, 50).tolist()


# ------------------------------------------------------------------------- properties
@settings(max_examples=200, deadline=None)
@given(streams())
def test_invariants_hold_after_every_batch(batches):
    for book, _, got, *_ in run_both(batches):
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask, "book crossed"
        t = book.totals()
        # quantity conserved: every accepted limit share rests, traded, or was cancelled
        assert t["added"] == book.resting_qty() + t["traded"] + t["limit_taker"] + t["cancelled"]
        assert t["market"] == (t["traded"] - t["limit_taker"]) + t["dropped"]
        # trades never exceed what makers and takers offered, and prices are integers > 0
        if got:
            assert all(tr[3] > 0 and tr[2] > 0 for tr in got)
        # the level array agrees with the orders linked into it
        live = book.orders["qty"] > 0
        assert int(live.sum()) == book.n_orders


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=12), st.integers(1, 60))
def test_price_time_priority_and_queue_ahead(sizes, taker_qty):
    """Orders at one price fill strictly first-in-first-out; queue_ahead is what precedes."""
    book = OrderBook()
    msgs = empty_messages(len(sizes))
    for i, q in enumerate(sizes):
        msgs[i] = (0, -1, 0, 100, q, i, 0)
    book.process(msgs)
    for i in range(len(sizes)):
        assert book.queue_ahead(i) == sum(sizes[:i])
    trades = book.process(to_array([(1, 1, 1, 0, taker_qty, 999, 0)]))
    assert trades["maker_id"].tolist() == list(range(len(trades)))
    assert int(trades["qty"].sum()) == min(taker_qty, sum(sizes))


def test_limit_fills_only_after_queue_ahead_trades():
    book = OrderBook()
    book.process(to_array([(0, 1, 0, 100, 30, 1, 0), (0, 1, 1, 100, 5, 2, 0)]))
    assert book.queue_ahead(2) == 30
    trades = book.process(to_array([(1, -1, 0, 0, 29, 10, 0)]))
    assert set(trades["maker_id"]) == {1} and book.order(2)["qty"] == 5
    trades = book.process(to_array([(1, -1, 0, 0, 3, 11, 0)]))
    assert trades[["maker_id", "qty"]].tolist() == [(1, 1), (2, 2)]
    assert book.fills(1)["bought_qty"] == 2


# ------------------------------------------------------------------- modify and iceberg
def test_modify_down_keeps_priority_reprice_loses_it():
    book = OrderBook()
    book.process(to_array([(0, 1, 0, 100, 10, 1, 0), (0, 1, 0, 100, 10, 2, 0)]))
    book.process(to_array([(3, 0, 0, 0, 4, 1, 0)]))  # size down: still first
    assert book.queue_ahead(1) == 0 and book.queue_ahead(2) == 4
    book.process(to_array([(3, 0, 0, 0, 8, 1, 0)]))  # size up: to the back
    assert book.queue_ahead(1) == 10
    book.process(to_array([(3, 0, 0, 99, 8, 2, 0)]))  # new price: new level, back of it
    assert book.depth(1, 5).tolist() == [[100, 8], [99, 8]]


def test_iceberg_shows_peak_and_refills_at_the_back():
    book = OrderBook()
    book.process(to_array([(0, -1, 0, 101, 10, 1, 4), (0, -1, 0, 101, 3, 2, 0)]))
    assert book.depth(-1, 1).tolist() == [[101, 7]]  # 4 shown + 3
    trades = book.process(to_array([(1, 1, 0, 0, 9, 50, 0)]))
    # 4 from the iceberg's display, then order 2 (queued behind it), then the refill
    assert trades[["maker_id", "qty"]].tolist() == [(1, 4), (2, 3), (1, 2)]
    assert book.order(1) == {
        "order_id": 1,
        "side": -1,
        "owner": 0,
        "price": 101,
        "qty": 2,
        "hidden": 2,
    }


# ------------------------------------------------------------------------ refusals
def _state_copy(book):
    return [a.copy() for a in book.state]


def _assert_state_equal(book, saved):
    for a, b in zip(book.state, saved, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "bad, needle",
    [
        ((0, 1, 0, 100, 0, 7, 0), "quantity must be positive"),
        ((1, -1, 0, 0, -5, 7, 0), "quantity must be positive"),
        ((5, 1, 0, 100, 1, 7, 0), "unknown kind 5"),
        ((0, 2, 0, 100, 1, 7, 0), "side must be +1"),
        ((0, 1, 0, 0, 1, 7, 0), "limit price must be positive"),
        ((0, 1, 0, -3, 1, 7, 0), "limit price must be positive"),
        ((0, 1, 99, 100, 1, 7, 0), "owner must be in"),
        ((0, 1, 0, 100, 1, 7, -1), "peak must be >= 0"),
        ((0, 1, 0, 100, 1, 1, 0), "id 1 is already live"),
    ],
)
def test_invalid_message_rejects_whole_batch_and_names_index(bad, needle):
    book = OrderBook()
    book.process(to_array([(0, 1, 0, 100, 5, 1, 0), (0, -1, 0, 102, 5, 2, 0)]))
    saved = _state_copy(book)
    batch = to_array([(0, 1, 0, 101, 3, 3, 0), (1, -1, 0, 0, 4, 4, 0), bad])
    with pytest.raises(ValueError, match=rf"message 2: .*{re.escape(needle)}"):
        book.process(batch)
    _assert_state_equal(book, saved)


def test_reusing_an_id_after_it_filled_in_the_same_batch_is_legal():
    book = OrderBook()
    trades = book.process(
        to_array([(0, -1, 0, 100, 5, 1, 0), (1, 1, 0, 0, 5, 9, 0), (0, -1, 0, 101, 2, 1, 0)])
    )
    assert trades["qty"].tolist() == [5] and book.order(1)["price"] == 101
    with pytest.raises(ValueError, match="message 1: limit order id 1"):
        book.process(to_array([(0, 1, 0, 90, 1, 2, 0), (0, -1, 0, 105, 1, 1, 0)]))
    assert book.order(2) is None  # the whole batch was rolled back


def test_wrong_types_and_shapes_are_refused():
    book = OrderBook()
    with pytest.raises(TypeError, match="structured array"):
        book.process(np.zeros((3, 5)))
    with pytest.raises(TypeError, match="lack the fields"):
        book.process(np.zeros(2, dtype=[("kind", "i1"), ("qty", "i8")]))
    with pytest.raises(TypeError, match="numpy structured array"):
        book.process([(0, 1, 0, 100, 1, 1, 0)])
    with pytest.raises(ValueError, match="side must be"):
        book.depth(0, 3)


def test_minimal_dtype_subset_is_accepted():
    dt = np.dtype(
        [("kind", "i8"), ("side", "i8"), ("price", "i8"), ("qty", "i8"), ("order_id", "i8")]
    )
    msgs = np.array([(0, -1, 100, 5, 1), (1, 1, 0, 2, 2)], dtype=dt)
    trades = OrderBook().process(msgs)
    assert trades[["maker_id", "price", "qty"]].tolist() == [(1, 100, 2)]


# ------------------------------------------------------------------------- capacity
def test_pool_and_window_grow_without_losing_orders():
    book = OrderBook(capacity=2, price_levels=4)
    rng = np.random.default_rng(0)
    n = 5000
    msgs = empty_messages(n)
    msgs["kind"] = 0
    msgs["side"] = np.where(np.arange(n) % 2 == 0, 1, -1)
    msgs["price"] = np.where(
        msgs["side"] == 1, rng.integers(1000, 2000, n), rng.integers(3000, 9000, n)
    )
    msgs["qty"] = rng.integers(1, 10, n)
    msgs["order_id"] = np.arange(n)
    book.process(msgs)
    assert book.n_orders == n
    assert book.resting_qty() == int(msgs["qty"].sum())
    assert book.best_bid() == int(msgs["price"][msgs["side"] == 1].max())
    assert book.best_ask() == int(msgs["price"][msgs["side"] == -1].min())
    for oid in rng.integers(0, n, 50):
        assert book.order(int(oid))["qty"] == int(msgs["qty"][oid])


def test_price_span_too_wide_is_refused_cleanly():
    book = OrderBook()
    book.process(to_array([(0, 1, 0, 100, 5, 1, 0)]))
    saved = _state_copy(book)
    with pytest.raises(ValueError, match="tick window"):
        book.process(to_array([(0, -1, 0, 100 + (1 << 23), 5, 2, 0)]))
    _assert_state_equal(book, saved)


def test_hash_table_deletion_keeps_every_other_id_findable():
    """Backward-shift deletion: random inserts/deletes against a Python dict."""
    rng = np.random.default_rng(1)
    keys = np.full(64, k.EMPTY_KEY, dtype=np.int64)
    slots = np.full(64, -1, dtype=np.int64)
    model = {}
    for _ in range(3000):
        key = int(rng.integers(-40, 40)) * 1_000_003
        if key in model and rng.random() < 0.6:
            k.hash_delete_nb(keys, slots, key)
            del model[key]
        elif key not in model and len(model) < 30:
            s = int(rng.integers(0, 1000))
            k.hash_insert_nb(keys, slots, key, s)
            model[key] = s
        for q in list(model)[:5] + [key]:
            assert k.hash_find_nb(keys, slots, q) == model.get(q, -1)


def test_message_dtype_contract():
    for name in ("kind", "side", "price", "qty", "order_id"):
        assert name in MESSAGE_DTYPE.names
    from trendgym.envs.lob import TRADE_DTYPE

    for name in ("taker_id", "maker_id", "price", "qty"):
        assert name in TRADE_DTYPE.names


# ------------------------------------------------------------- large batches: one pass
@settings(max_examples=150, deadline=None)
@given(streams(max_batches=4))
def test_large_batch_path_matches_the_twin(batches):
    """Batches of at least `fused_batch` messages are validated while applied under a
    snapshot; force that path on every batch and compare with the twin, errors included."""
    fused = OrderBook(capacity=4, price_levels=8)
    fused.fused_batch = 0
    for book, twin, got, want, err_nb, err_tw in run_both(batches, book=fused):
        assert err_nb == err_tw
        assert got == want
        assert_same_book(book, twin)


@pytest.mark.parametrize("bad_at", [0, 4999, 9999])
def test_invalid_message_deep_in_a_large_batch_rolls_everything_back(bad_at):
    rng = np.random.default_rng(3)
    book = OrderBook()
    book.process(to_array([(0, 1, 0, 1000, 5, 10**9, 0), (0, -1, 0, 1010, 5, 10**9 + 1, 0)]))
    saved = _state_copy(book)
    n = 10_000
    msgs = empty_messages(n)
    msgs["kind"] = rng.choice([0, 0, 1, 2], n)
    msgs["side"] = rng.choice([1, -1], n)
    msgs["price"] = np.where(msgs["kind"] == 0, rng.integers(990, 1020, n), 0)
    msgs["qty"] = rng.integers(1, 10, n)
    msgs["order_id"] = np.arange(n)
    msgs[bad_at] = (0, 1, 0, 1000, 0, bad_at, 0)  # qty 0: invalid
    with pytest.raises(ValueError, match=f"message {bad_at}: quantity must be positive"):
        book.process(msgs)
    _assert_state_equal(book, saved)
    msgs[bad_at]["qty"] = 3
    trades = book.process(msgs)  # the same batch, now valid, goes through whole
    assert book.totals()["messages"] == n + 2 and trades.size > 0
