"""Background flow: determinism, the random stream, replay against both books, stylized facts."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from scipy import stats

from tests.lob_twin import TwinBook
from trendgym.envs.lob import OrderBook
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.facts import stylized_facts
from trendgym.envs.lob.flow import (
    FS,
    IS,
    MAX_DEPTH,
    PARAM,
    PRESETS,
    FlowParams,
    OrderFlow,
    _exp_neg_nb,
    _geometric_nb,
    _log_q_nb,
    _pick_order_nb,
    _side_queues_nb,
    flow_params,
    flow_run_nb,
)
from trendgym.envs.lob.layout import STATUS
from trendgym.envs.lob.rng import (
    _ZIG_F,
    _ZIG_K,
    _ZIG_R,
    _ZIG_W,
    exponential_nb,
    next_u64_nb,
    seed_state,
    uniform_nb,
    ziggurat_tables,
)

MASK = (1 << 64) - 1


def xoshiro_twin(state):
    """Reference xoshiro256** in Python integers (Blackman & Vigna)."""
    s = [int(x) for x in state]
    rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & MASK  # noqa: E731
    while True:
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        yield result


def test_rng_kernel_matches_reference_xoshiro():
    state = seed_state(np.random.default_rng(5))
    twin = xoshiro_twin(state.copy())
    for _ in range(1000):
        assert int(next_u64_nb(state)) == next(twin)
    u = np.array([uniform_nb(state) for _ in range(20000)])
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.01


def run(preset, seed, seconds=300.0, record=0, **overrides):
    book = OrderBook()
    flow = OrderFlow(
        book, flow_params(preset, **overrides), np.random.default_rng(seed), record=record
    )
    flow.seed_book()
    trades = flow.run(seconds).copy()
    return book, flow, trades


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_same_seed_same_messages_and_book(preset):
    a_book, a_flow, a_trades = run(preset, 3, record=100_000)
    b_book, b_flow, b_trades = run(preset, 3, record=100_000)
    np.testing.assert_array_equal(
        a_flow.messages[: a_flow.n_messages], b_flow.messages[: b_flow.n_messages]
    )
    np.testing.assert_array_equal(a_trades, b_trades)
    assert a_book.depth(1, 10).tolist() == b_book.depth(1, 10).tolist()
    _, c_flow, _ = run(preset, 4, record=100_000)
    assert not np.array_equal(a_flow.messages[:100], c_flow.messages[:100])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_trajectory_does_not_depend_on_initial_array_sizes(preset):
    """Growth happens before any random draw, and the near queues the kernel keeps carry over
    a NEED_* return, so a small book and a big one agree bit for bit."""
    small = OrderBook(capacity=2, price_levels=2)
    big = OrderBook(capacity=1 << 14, price_levels=1 << 14)
    out, states = [], []
    for book in (small, big):
        flow = OrderFlow(book, flow_params(preset), np.random.default_rng(9))
        flow.seed_book()
        out.append(flow.run(600.0).copy())
        states.append(flow.fstate[:7].copy())  # clock, excitation, OFI, burst, volume
    np.testing.assert_array_equal(out[0], out[1])
    np.testing.assert_array_equal(states[0], states[1])
    assert small.depth(-1, 20).tolist() == big.depth(-1, 20).tolist()


@pytest.mark.parametrize("preset", ["calm", "crypto"])
def test_unindexed_background_orders_change_nothing_but_the_id_table(preset):
    """An env's book keeps the flow's orders out of the id table (the flow cancels by slot):
    the flow runs the same, through pool growth (a rehash), and the table holds exactly the
    other owners' live orders, which stay reachable by id, while the flow's are not."""
    books = {True: OrderBook(), False: OrderBook(capacity=8, index_background=False)}
    runs = {}
    for indexed, book in books.items():
        flow = OrderFlow(book, flow_params(preset), np.random.default_rng(4))
        flow.seed_book()
        mine = np.zeros(2, dtype=k.MESSAGE_DTYPE)  # owner 3 rests a bid and an ask far away
        mine[["kind", "owner", "qty"]] = [(k.LIMIT, 3, 7)] * 2
        mine["side"], mine["price"], mine["order_id"] = [k.BUY, k.SELL], [9_900, 10_100], [1, 2]
        book.process(mine)
        runs[indexed] = (flow.run(600.0).copy(), flow.fstate[:7].copy())
    np.testing.assert_array_equal(runs[True][0], runs[False][0])
    np.testing.assert_array_equal(runs[True][1], runs[False][1])
    plain, env_book = books[True], books[False]
    assert env_book.orders.shape[0] > 8  # the pool grew and rehashed mid-run
    live = env_book.orders[env_book.orders["qty"] > 0]
    in_table = set(env_book.keys[env_book.keys != k.EMPTY_KEY].tolist())
    assert in_table == set(live["id"][live["owner"] != 0].tolist())
    assert env_book.n_orders == live.size and (env_book.keys != k.EMPTY_KEY).sum() == len(in_table)
    used = env_book.keys != k.EMPTY_KEY
    assert (env_book.orders["id"][env_book.slots[used]] == env_book.keys[used]).all()
    assert plain.depth(1, 20).tolist() == env_book.depth(1, 20).tolist()
    for oid in (1, 2):
        if plain.order(oid) is not None:  # still resting (not reached by the flow)
            assert env_book.order(oid) == plain.order(oid)
            assert env_book.queue_ahead(oid) == plain.queue_ahead(oid)
    background = int(live["id"][live["owner"] == 0][0])
    assert plain.order(background) is not None and env_book.order(background) is None


@pytest.mark.parametrize("preset", ["calm", "crypto"])
def test_recorded_stream_replays_to_the_same_trades_on_both_books(preset):
    """The flow kernel drives the book kernels directly; replaying what it recorded through
    OrderBook.process and through the pure-Python twin gives the trades it produced."""
    book = OrderBook()
    flow = OrderFlow(book, flow_params(preset), np.random.default_rng(1), record=200_000)
    live_before = None
    flow.seed_book()
    live = book.orders[book.orders["qty"] > 0]
    live_before = live[np.argsort(live["id"])]
    trades = flow.run(900.0).copy()
    msgs = flow.messages[: flow.n_messages]
    seed = np.zeros(live_before.size, dtype=msgs.dtype)
    seed["kind"], seed["side"], seed["price"], seed["qty"], seed["order_id"] = (
        0,
        live_before["side"],
        live_before["price"],
        live_before["qty"],
        live_before["id"],
    )
    replay = OrderBook()
    replay.process(seed)
    np.testing.assert_array_equal(replay.process(msgs), trades)
    twin = TwinBook()
    twin.process([tuple(int(x) for x in m) for m in seed])
    twin_trades = twin.process([tuple(int(x) for x in m) for m in msgs])
    assert [(t[1], t[2], t[3]) for t in twin_trades] == list(
        zip(
            trades["maker_id"].tolist(),
            trades["price"].tolist(),
            trades["qty"].tolist(),
            strict=True,
        )
    )
    assert twin.depth(1, 20) == book.depth(1, 20).tolist()


def test_event_frequencies_follow_the_rates():
    """Without bursts or Hawkes, market orders arrive at 2·mu per second overall, and the
    sides split by the drift: (1 + d) : (1 - d)."""
    p = FlowParams(drift=0.4)
    book = OrderBook()
    flow = OrderFlow(book, p, np.random.default_rng(0), record=1_000_000)
    flow.seed_book()
    seconds = 20_000.0
    flow.run(seconds)
    m = flow.messages[: flow.n_messages]
    market = m[m["kind"] == 1]
    rate = market.size / seconds
    assert rate == pytest.approx(2 * p.market_rate, rel=0.03)
    buys = np.count_nonzero(market["side"] == 1) / market.size
    assert buys == pytest.approx((1 + p.drift) / 2, abs=0.01)
    limits = m[m["kind"] == 0]
    assert limits.size / seconds == pytest.approx(2 * sum(p.limit_rates), rel=0.03)


def test_book_never_crosses_and_quantities_balance_under_flow():
    for preset in PRESETS:
        book = OrderBook()
        flow = OrderFlow(book, flow_params(preset), np.random.default_rng(2))
        flow.seed_book()
        for _ in range(200):
            flow.run(5.0)
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is None or ask is None or bid < ask
        t = book.totals()
        assert t["added"] == book.resting_qty() + t["traded"] + t["limit_taker"] + t["cancelled"]
        assert t["market"] == t["traded"] - t["limit_taker"] + t["dropped"]


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="drift"):
        flow_params("calm", drift=1.5)
    with pytest.raises(ValueError, match="stationary"):
        flow_params("calm", hawkes_alpha=2.0, hawkes_beta=1.0)
    with pytest.raises(ValueError, match="unknown flow preset"):
        flow_params("frantic")
    with pytest.raises(ValueError, match="limit_rates"):
        FlowParams(limit_rates=(1.0, -1.0))
    with pytest.raises(TypeError, match="FlowParams"):
        OrderFlow(OrderBook(), {"drift": 0.1}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="seconds"):
        OrderFlow(OrderBook(), FlowParams(), np.random.default_rng(0)).run(-1.0)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_stylized_facts_fall_in_sane_bands(preset):
    f = stylized_facts(preset, seed=0, seconds=6 * 3600)
    assert 1.0 <= f["spread_mean_ticks"] < 8.0
    assert abs(f["return_autocorr_10s"]) < 0.2  # no free lunch from the last move
    assert f["kurtosis_1min"] > 3.0  # fat tails
    assert f["ofi_slope_ticks_per_lot"] > 0 and f["ofi_r2"] > 0.2  # OFI moves prices (CKS 2014)
    assert all(f[f"depth_level_{i}"] > 0 for i in range(1, 6))


# ------------------------------------------------- fast exact draws, near queues, the driver
def exponential_twin(bits):
    """The ziggurat exponential in plain Python over a stream of 64-bit draws."""
    offset = 0.0
    while True:
        b = next(bits)
        i, m = b & 255, b >> 11
        x = float(m) * float(_ZIG_W[i])
        if m < int(_ZIG_K[i]):
            return offset + x
        if i == 0:
            offset += _ZIG_R
        else:
            u = float(next(bits) >> 11) * 2.0**-53
            if float(_ZIG_F[i]) + u * float(_ZIG_F[i + 1] - _ZIG_F[i]) < math.exp(-x):
                return offset + x


@njit  # not cached: numba would not notice a change in the kernels it inlines
def _exponentials(state, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = exponential_nb(state)
    return out


@njit  # not cached: numba would not notice a change in the kernels it inlines
def _geometrics(state, mean, n):
    out = np.empty(n, dtype=np.int64)
    log_q = _log_q_nb(mean)
    for i in range(n):
        out[i] = _geometric_nb(state, log_q)
    return out


@njit  # not cached: numba would not notice a change in the kernels it inlines
def _exps(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = _exp_neg_nb(x[i])
    return out


def test_ziggurat_tables_cover_equal_areas_under_the_density():
    r, x, kk, w = ziggurat_tables()
    assert r == pytest.approx(7.69711747013104972, abs=1e-12)  # Marsaglia & Tsang's value
    assert x[1] == r and x[-1] == 0.0 and np.all(np.diff(x) < 0)
    v = (r + 1.0) * np.exp(-r)
    assert x[0] * np.exp(-r) == pytest.approx(v, rel=1e-13)  # base strip incl. the tail
    strips = x[1:-1] * (np.exp(-x[2:]) - np.exp(-x[1:-1]))
    np.testing.assert_allclose(strips, v, rtol=1e-9)
    assert np.all((kk >= 0) & (kk < 2**53)) and np.array_equal(w, x[:-1] / 2.0**53)


def test_ziggurat_exponential_matches_its_python_twin_bit_for_bit():
    state = seed_state(np.random.default_rng(11))
    bits = xoshiro_twin(state.copy())
    draws = _exponentials(state, 20_000)
    assert draws.tolist() == [exponential_twin(bits) for _ in range(draws.size)]
    assert int(next_u64_nb(state)) == next(bits)  # same number of 64-bit draws consumed


def test_ziggurat_exponential_is_unit_exponential():
    e = _exponentials(seed_state(np.random.default_rng(12)), 400_000)
    assert stats.kstest(e, "expon").pvalue > 1e-3
    assert e.mean() == pytest.approx(1.0, abs=5 * 1 / np.sqrt(e.size))
    assert e.var() == pytest.approx(1.0, abs=0.02)
    tail = np.count_nonzero(e > _ZIG_R)  # the memoryless-tail branch
    expected = e.size * np.exp(-_ZIG_R)
    assert abs(tail - expected) < 5 * np.sqrt(expected)


def test_geometric_sizes_follow_their_law():
    state = seed_state(np.random.default_rng(13))
    bits = xoshiro_twin(state.copy())
    g = _geometrics(state, 5.0, 200_000)
    q = 1.0 - 1.0 / 5.0
    twin = [1 + int(exponential_twin(bits) / -math.log(q)) for _ in range(1000)]
    assert g[:1000].tolist() == twin
    sizes = np.arange(1, 16)
    observed = np.array([np.count_nonzero(g == s) for s in sizes] + [np.count_nonzero(g > 15)])
    pmf = np.append((1 - q) * q ** (sizes - 1), q**15)
    assert stats.chisquare(observed, pmf * g.size).pvalue > 1e-3
    assert _geometrics(state, 1.0, 10).tolist() == [1] * 10


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-800.0, max_value=0.0))
def test_fast_exp_is_within_a_few_ulp_of_the_library(x):
    got, want = float(_exps(np.array([x]))[0]), math.exp(x)
    assert abs(got - want) <= 4 * np.spacing(want) or got == want


def test_fast_exp_on_a_dense_grid():
    x = -np.concatenate([np.linspace(0.0, 1.0, 100_001), np.geomspace(1e-300, 745.0, 100_000)])
    got, want = _exps(x), np.exp(x)
    normal = want > np.finfo(float).tiny
    rel = np.abs(got[normal] - want[normal]) / want[normal]
    assert rel.max() < 5e-16 and _exps(np.array([0.0]))[0] == 1.0
    np.testing.assert_array_equal(got[~normal], want[~normal])  # the library's own values


def side_queues_twin(counts, base, ref, side, theta):
    q = []
    for i in range(MAX_DEPTH):
        lv = (ref - 1 - i if side == 1 else ref + 1 + i) - base
        q.append(int(counts[lv]) if 0 <= lv < len(counts) else 0)
    return q, sum(t * c for t, c in zip(theta, q, strict=True)), sum(q)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=1, max_size=40),
    st.integers(-15, 55),
    st.sampled_from([1, -1]),
    st.lists(st.floats(0.0, 5.0), min_size=MAX_DEPTH, max_size=MAX_DEPTH),
)
def test_side_queues_kernel_matches_twin(counts, ref, side, theta):
    levels = np.zeros(len(counts), dtype=k.LEVEL_DTYPE)
    levels["count"] = counts
    params = flow_params("calm").to_array()
    params[PARAM.theta : PARAM.theta + MAX_DEPTH] = theta
    q = np.zeros(MAX_DEPTH, dtype=np.int64)
    rate, near = _side_queues_nb(levels, 0, ref, side, params, q)
    q_twin, rate_twin, near_twin = side_queues_twin(counts, 0, ref, side, theta)
    assert q.tolist() == q_twin and near == near_twin
    assert rate == pytest.approx(rate_twin, rel=1e-12, abs=1e-12)


def _recount_near(book, flow, side):
    """Near queue counts and rate recounted from the book, or None when the queues carried
    over are not the ones a resumed call goes on with (the kernel marked them for a recount,
    or the opposite quote has moved since they were counted)."""
    ref = int(flow.istate[IS.ref_bid if side == 1 else IS.ref_ask])
    opposite = (
        (book.best_ask() or flow.istate[IS.last_ask])
        if side == 1
        else (book.best_bid() or flow.istate[IS.last_bid])
    )
    if ref != opposite:
        return None
    theta = flow.p[PARAM.theta : PARAM.theta + MAX_DEPTH]
    return side_queues_twin(book.levels["count"], int(book.meta[k.BASE]), ref, side, theta)


@pytest.mark.parametrize("preset", ["calm", "volatile", "crypto"])
def test_incremental_near_queues_match_a_recount_at_every_interruption(preset):
    """The kernel keeps the near queues up to date event by event; whenever it hands back
    for more room, the counts and rates it carries over equal a fresh count of the book."""
    book = OrderBook()
    flow = OrderFlow(book, flow_params(preset), np.random.default_rng(5))
    flow.seed_book()
    checked = 0
    for _ in range(20):
        t_end = flow.time + 5.0
        # a trade buffer with no spare room: the kernel stops whenever the book grows
        flow._trades = np.empty(int(k.trade_room_needed_nb(book.meta)), dtype=k.TRADE_DTYPE)
        while True:
            _, status, _ = flow_run_nb(
                book.state, flow._trades, 0, flow.state, t_end, flow.messages
            )
            if status == STATUS.done:
                break
            assert flow.istate[IS.resume] == 1
            for side, q, rate in (
                (1, flow._q_bid, FS.near_rate_bid),
                (-1, flow._q_ask, FS.near_rate_ask),
            ):
                recount = _recount_near(book, flow, side)
                if recount is not None:
                    assert q.tolist() == recount[0]
                    assert flow.fstate[rate] == pytest.approx(recount[1], rel=1e-9, abs=1e-9)
                    checked += 1
            if status == STATUS.need_trade_room:
                room = int(k.trade_room_needed_nb(book.meta))
                flow._trades = np.empty(room, dtype=k.TRADE_DTYPE)
            elif status == STATUS.need_slot:
                book.reserve(book.orders.shape[0])
            else:
                bid = book.best_bid() or int(flow.istate[IS.last_bid])
                ask = book.best_ask() or int(flow.istate[IS.last_ask])
                book.reserve(0, min(bid, ask) - 4 * MAX_DEPTH, max(bid, ask) + 4 * MAX_DEPTH)
    assert checked >= 100


def test_run_matches_the_kernel_called_through_numbas_dispatcher():
    """`run` calls the kernel's compiled entry point directly; the same calls through the
    dispatcher produce the same trajectory."""
    a_book, b_book = (
        OrderBook(capacity=1 << 12, price_levels=1 << 12),
        OrderBook(capacity=1 << 12, price_levels=1 << 12),
    )
    a = OrderFlow(a_book, flow_params("volatile"), np.random.default_rng(8))
    b = OrderFlow(b_book, flow_params("volatile"), np.random.default_rng(8))
    a.seed_book(), b.seed_book()
    trades_b = np.empty(1 << 14, dtype=k.TRADE_DTYPE)
    for _ in range(40):
        ta = a.run(2.5)
        t_end = b.time + 2.5
        n, status, _ = flow_run_nb(b_book.state, trades_b, 0, b.state, t_end, b.messages)
        assert status == STATUS.done
        np.testing.assert_array_equal(ta, trades_b[:n])
    np.testing.assert_array_equal(a.fstate, b.fstate)
    np.testing.assert_array_equal(a.istate, b.istate)


@njit  # not cached: numba would not notice a change in the kernels it inlines
def _picks(orders, levels, base, price, state, n):
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = _pick_order_nb(orders, levels, base, price, state)
    return out


@pytest.mark.parametrize("queue", [1, 2, 5])
def test_cancelled_order_is_uniform_over_its_queue(queue):
    """`_pick_order_nb` walks to the j-th order of the FIFO, j = floor(u * count): the same
    slots as a Python walk over the same stream, each with probability 1/count."""
    book = OrderBook()
    msgs = np.zeros(queue, dtype=k.MESSAGE_DTYPE)
    msgs["kind"], msgs["side"], msgs["price"], msgs["qty"] = k.LIMIT, 1, 100, 1
    msgs["order_id"] = np.arange(1, queue + 1)
    book.process(msgs)
    base = int(book.meta[k.BASE])
    state = seed_state(np.random.default_rng(queue))
    bits = xoshiro_twin(state.copy())
    picks = _picks(book.orders, book.levels, base, 100, state, 30_000)
    fifo = [int(book.levels[100 - base]["head"])]
    while len(fifo) < queue:
        fifo.append(int(book.orders[fifo[-1]]["next"]))
    twin = [fifo[int(float(next(bits) >> 11) * 2.0**-53 * queue)] for _ in range(picks.size)]
    assert picks.tolist() == twin
    counts = np.array([np.count_nonzero(picks == s) for s in fifo])
    assert counts.sum() == picks.size
    if queue > 1:
        assert stats.chisquare(counts).pvalue > 1e-3
