"""Background flow: determinism, the random stream, replay against both books, stylized facts."""

import numpy as np
import pytest

from tests.lob_twin import TwinBook
from trendgym.envs.lob import OrderBook
from trendgym.envs.lob.facts import stylized_facts
from trendgym.envs.lob.flow import PRESETS, FlowParams, OrderFlow, flow_params
from trendgym.envs.lob.rng import next_u64_nb, seed_state, uniform_nb

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


def test_trajectory_does_not_depend_on_initial_array_sizes():
    """Growth happens before any random draw, so a small book and a big one agree."""
    small = OrderBook(capacity=2, price_levels=2)
    big = OrderBook(capacity=1 << 14, price_levels=1 << 14)
    out = []
    for book in (small, big):
        flow = OrderFlow(book, flow_params("crypto"), np.random.default_rng(9))
        flow.seed_book()
        out.append(flow.run(600.0).copy())
    np.testing.assert_array_equal(out[0], out[1])
    assert small.depth(-1, 20).tolist() == big.depth(-1, 20).tolist()


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
