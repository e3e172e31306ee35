"""Order book throughput: `OrderBook.process` on a 1M-message generated stream, beside a fast
pure-Python book on the same stream in the same process (hftbacktest, the L3 peer, is not
measured: every 2.4.x release requires numpy < 2.3, and the line says so); then the background
flow's speed (generation + matching, the execution env's hot path) and its stylized facts.

    python benchmarks/lob.py [--messages 1000000] [--preset calm]
"""

from __future__ import annotations

import argparse
import heapq
import importlib.metadata
import importlib.util
import time
from collections import deque

import numpy as np

from trendgym.envs.lob import OrderBook
from trendgym.envs.lob.facts import stylized_facts
from trendgym.envs.lob.flow import OrderFlow, flow_params


class PythonBook:
    """A fast pure-Python price-time book: dict of price levels holding deques, heaps of
    prices for the best quotes (lazy deletion), and an id -> order map for O(1) cancel."""

    def __init__(self):
        self.levels = {1: {}, -1: {}}  # side -> price -> deque of [id, qty]
        self.heaps = {1: [], -1: []}  # bids stored negated
        self.orders = {}  # id -> [id, qty, side, price]

    def _best(self, side):
        heap, levels = self.heaps[side], self.levels[side]
        while heap:
            p = heap[0] if side == -1 else -heap[0]
            if p in levels:
                return p
            heapq.heappop(heap)
        return None

    def _match(self, side, qty, limit, trades, taker):
        opp = -side
        levels = self.levels[opp]
        while qty:
            best = self._best(opp)
            if best is None or (limit and (best > limit if side == 1 else best < limit)):
                break
            q = levels[best]
            while qty and q:
                maker = q[0]
                t = qty if qty < maker[1] else maker[1]
                trades.append((taker, maker[0], best, t))
                qty -= t
                maker[1] -= t
                if maker[1] == 0:
                    q.popleft()
                    del self.orders[maker[0]]
            if not q:
                del levels[best]
        return qty

    def process(self, kinds, sides, prices, qtys, ids):
        trades = []
        for kind, side, price, qty, oid in zip(kinds, sides, prices, qtys, ids, strict=True):
            if kind == 0:
                left = self._match(side, qty, price, trades, oid)
                if left:
                    order = [oid, left, side, price]
                    levels = self.levels[side]
                    if price not in levels:
                        levels[price] = deque()
                        heapq.heappush(self.heaps[side], price if side == -1 else -price)
                    levels[price].append(order)
                    self.orders[oid] = order
            elif kind == 1:
                self._match(side, qty, 0, trades, oid)
            else:
                order = self.orders.pop(oid, None)
                if order is not None:
                    q = self.levels[order[2]][order[3]]
                    q.remove(order)  # O(queue length): queues here are short
                    if not q:
                        del self.levels[order[2]][order[3]]
        return trades


def generate_stream(n: int, preset: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(seed messages, flow messages): the flow recorded while it ran on a book of its own."""
    book = OrderBook()
    flow = OrderFlow(book, flow_params(preset), np.random.default_rng(seed), record=n)
    flow.seed_book()
    seed_msgs = _seed_messages(flow)
    recorded = np.zeros(0, dtype=flow.messages.dtype)
    while recorded.size < n:
        flow.run(max(60.0, (n - recorded.size) / 30.0))
        recorded = np.concatenate([recorded, flow.messages[: flow.n_messages]])
    return seed_msgs, recorded[:n]


def _seed_messages(flow: OrderFlow) -> np.ndarray:
    """The seed book as messages, so a replay starts from the same state."""
    msgs = np.zeros(flow.book.n_orders, dtype=flow.messages.dtype)
    live = flow.book.orders[flow.book.orders["qty"] > 0]
    live = live[np.argsort(live["id"])]
    msgs["kind"], msgs["side"], msgs["price"], msgs["qty"], msgs["order_id"] = (
        0,
        live["side"],
        live["price"],
        live["qty"],
        live["id"],
    )
    return msgs


def time_numba(seed_msgs, stream, repeats=5):
    best, trades = np.inf, None
    warm = OrderBook()  # compile (or load the cache) outside the timing
    t0 = time.perf_counter()
    warm.process(seed_msgs)
    warm.process(stream[:1000])
    compile_s = time.perf_counter() - t0
    for _ in range(repeats):
        book = OrderBook()
        book.process(seed_msgs)
        t0 = time.perf_counter()
        trades = book.process(stream)
        best = min(best, time.perf_counter() - t0)
    return best, trades, compile_s


def _columns(m: np.ndarray) -> tuple[list, ...]:
    return tuple(m[name].tolist() for name in ("kind", "side", "price", "qty", "order_id"))


def time_python(seed_msgs, stream):
    book = PythonBook()
    book.process(*_columns(seed_msgs))
    args = _columns(stream)
    t0 = time.perf_counter()
    trades = book.process(*args)
    return time.perf_counter() - t0, trades


def time_flow(preset: str, seconds: float = 20_000.0, step_seconds: float = 2.5, repeats: int = 3):
    """Messages/s of generation + matching: one long call, and env-sized calls; and CPU ns
    per event of env-sized calls (thread time, best of `repeats`: the cores are shared)."""
    book = OrderBook()
    flow = OrderFlow(book, flow_params(preset), np.random.default_rng(1))
    flow.seed_book()
    flow.run(100.0)  # compile + warm-up
    m0, t0 = book.totals()["messages"], time.perf_counter()
    flow.run(seconds)
    long_rate = (book.totals()["messages"] - m0) / (time.perf_counter() - t0)
    calls = int(seconds / step_seconds / 4)
    best = None
    for _ in range(repeats):
        m0, t0, c0 = book.totals()["messages"], time.perf_counter(), time.thread_time()
        for _ in range(calls):
            flow.run(step_seconds)
        dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
        n = book.totals()["messages"] - m0
        if best is None or cpu / n < best[4]:
            best = (long_rate, n / dt, dt / calls * 1e6, n / calls, cpu / n)
    return best[0], best[1], best[2], best[3], best[4] * 1e9


# hftbacktest 2.4.3/2.4.4 require this (2.4.0-2.4.2 state it too, under an extra named "numpy"),
# with numba~=0.61: no 2.4.x release supports numpy >= 2.3.
HFTBACKTEST_NUMPY = "numpy>=2.0,<2.3"


def hftbacktest_row() -> str:
    """Why hftbacktest's L3 (market-by-order) replay has no figure here."""
    if importlib.util.find_spec("hftbacktest") is None:
        return (
            f"hftbacktest: not measured: not installed. hftbacktest 2.4.x requires {HFTBACKTEST_NUMPY} "
            f"and this environment has numpy {np.__version__}; installing it would downgrade numpy, "
            "so it is not in the bench extra"
        )
    return (
        f"hftbacktest {importlib.metadata.version('hftbacktest')}: importable, but not measured: "
        "this script has no L3 replay for it (written while 2.4.x could not be installed beside "
        f"numpy {np.__version__}: it requires {HFTBACKTEST_NUMPY})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--preset", default="calm")
    args = ap.parse_args()

    seed_msgs, stream = generate_stream(args.messages, args.preset)
    kinds = np.bincount(stream["kind"], minlength=3)
    print(
        f"stream: {stream.size:,} messages from the '{args.preset}' flow "
        f"(limit {kinds[0]:,}, market {kinds[1]:,}, cancel {kinds[2]:,})"
    )
    nb_s, nb_trades, compile_s = time_numba(seed_msgs, stream)
    py_s, py_trades = time_python(seed_msgs, stream)
    same = len(py_trades) == nb_trades.size and all(
        (a[1], a[2], a[3]) == (int(b["maker_id"]), int(b["price"]), int(b["qty"]))
        for a, b in zip(py_trades[:10_000], nb_trades[:10_000], strict=False)
    )
    print(f"{'book':<28}{'messages/s':>16}{'seconds':>10}{'trades':>10}")
    print(
        f"{'trendgym OrderBook (numba)':<28}{stream.size / nb_s:>16,.0f}{nb_s:>10.4f}{nb_trades.size:>10,}"
    )
    print(f"{'pure-Python book':<28}{stream.size / py_s:>16,.0f}{py_s:>10.4f}{len(py_trades):>10,}")
    print(
        f"ratio numba / Python: {py_s / nb_s:.1f}x   same trades: {same}   "
        f"first-call compile/cache load: {compile_s:.2f} s (excluded)"
    )
    print(hftbacktest_row())

    print("\nbackground flow (generation + matching in one numba kernel, compiled above):")
    print(
        f"{'preset':<10}{'msgs/s, one call':>18}{'msgs/s, env-sized calls':>26}{'us/call':>10}"
        f"{'msgs/call':>11}{'ns/event CPU':>14}"
    )
    for preset in ("calm", "volatile", "trending", "crypto"):
        long_rate, step_rate, us, per_call, ns = time_flow(preset)
        print(
            f"{preset:<10}{long_rate:>18,.0f}{step_rate:>26,.0f}{us:>10.1f}{per_call:>11.0f}"
            f"{ns:>14.1f}"
        )
    print(
        "(ns/event CPU: thread time per message of 2.5 s calls, the execution env's step, "
        "including ~0.7 us of Python per call)"
    )

    print("\nstylized facts (4 simulated hours each, 1 s sampling):")
    rows = {
        p: stylized_facts(p, seed=0, seconds=4 * 3600)
        for p in ("calm", "volatile", "trending", "crypto")
    }
    names = list(next(iter(rows.values())))
    print(f"{'fact':<26}" + "".join(f"{p:>11}" for p in rows))
    for name in names:
        print(f"{name:<26}" + "".join(f"{rows[p][name]:>11.3f}" for p in rows))


if __name__ == "__main__":
    main()
