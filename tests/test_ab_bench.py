"""benchmarks/ab.py: the engine at a git revision loads beside this tree and gives the same
results, and the timing alternates the two sides."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

from trendgym.benchmarks import ab


def test_rename_imports_renames_code_not_prose():
    text = (
        "from trendgym.envs import execution_nb as nb\n"
        "import trendgym\n"
        'ENTRY = "trendgym.envs.compliance:make_execution"\n'
        'ENV_ID = "trendgym/Execution-v0"\n'
        '"""trendgym\'s envs; pip install trendgym[bench]"""\n'
    )
    out = ab.rename_imports(text)
    assert out.splitlines()[:4] == [
        "from trendgym_before.envs import execution_nb as nb",
        "import trendgym_before",
        'ENTRY = "trendgym_before.envs.compliance:make_execution"',
        'ENV_ID = "trendgym_before/Execution-v0"',
    ]
    assert out.splitlines()[4] == text.splitlines()[4]
    assert ab.rename_imports(out) == out  # already renamed names stay as they are


def test_alternate_swaps_the_order_each_round():
    calls: list[str] = []

    def side(name, rate):
        def run(seconds):
            calls.append(name)
            return rate

        return run

    before, after = ab.alternate(side("b", 2.0), side("a", 3.0), rounds=4, seconds=0.0)
    assert calls == ["b", "a", "a", "b", "b", "a", "a", "b"]
    assert (before, after) == ([2.0] * 4, [3.0] * 4)
    # the ratio is the median of the rounds' paired ratios (1.5, 1.0, 2.0), not of the medians
    s = ab.summary([2.0, 4.0, 3.0], [3.0, 4.0, 6.0])
    assert (s["before"], s["after"], s["ratio"]) == (3.0, 4.0, 1.5)
    assert (s["ratio_min"], s["ratio_max"]) == (1.0, 2.0)


def test_alternate_interleaves_slices_within_a_round():
    calls: list[tuple[str, float]] = []
    rates = {"b": iter([1.0, 3.0, 5.0, 7.0]), "a": iter([2.0, 4.0, 6.0, 8.0])}

    def side(name):
        def run(seconds):
            calls.append((name, seconds))
            return next(rates[name])

        return run

    before, after = ab.alternate(side("b"), side("a"), rounds=2, seconds=1.0, slices=2)
    assert [name for name, _ in calls] == ["b", "a", "b", "a", "a", "b", "a", "b"]
    assert {seconds for _, seconds in calls} == {0.5}
    assert (before, after) == ([2.0, 6.0], [3.0, 7.0])  # each round: the mean of its slices


@pytest.fixture(scope="module")
def engines():
    try:
        home = ab.extract(ab.BEFORE)
    except (ab.RevisionMissing, subprocess.CalledProcessError) as exc:
        pytest.skip(f"revision {ab.BEFORE} is not in this checkout's history: {exc}")
    return ab.load_engine(ab.PACKAGE, home), ab.load_engine("trendgym")


def test_before_engine_is_the_revision_not_this_tree(engines):
    before, after = engines
    for name in ("ExecutionEnv", "OrderBook"):
        path = before[name].__module__
        assert path.startswith("trendgym_before.envs."), path
        assert before[name] is not after[name]
    assert before["ExecutionVectorEnv"].__module__ == "trendgym_before.envs.vector.execution"
    assert after["ExecutionVectorEnv"].__module__ == "trendgym.envs.execution.vector"


# the old engine's book kernels compile in about a minute on an empty cache: expensive
@pytest.mark.expensive
def test_order_books_of_both_engines_trade_alike(engines):
    before, after = engines
    w = ab.order_book(20_000)
    assert "trades from 20,000 messages" in w.same(before, after)
    assert w.build(before, time.perf_counter)(0.0) > 0
    assert w.build(after, time.thread_time)(0.0) > 0


@pytest.mark.expensive
def test_a_changed_engine_is_caught(engines):
    """The identity check fails when one side's results differ by a single trade."""
    before, after = engines
    original = after["OrderBook"]

    class OneTradeShort(original):
        def process(self, messages):
            return super().process(messages)[:-1]

    w = ab.order_book(20_000)
    with pytest.raises(AssertionError, match="different trades"):
        w.same(before, {**after, "OrderBook": OneTradeShort})


@pytest.mark.expensive
def test_every_workload_is_bit_identical_and_timed(engines):
    """The whole benchmark on a tiny budget (compiling the old engine takes minutes cold)."""
    before, after = engines
    for w in ab.workloads(parallel=False, messages=20_000, check_steps=20):
        assert w.same(before, after)  # says what it compared; a difference raises
        b, a = ab.alternate(
            w.build(before, time.perf_counter), w.build(after, time.thread_time), 2, 0.01
        )
        assert len(b) == len(a) == 2 and np.isfinite(b + a).all() and min(b + a) > 0
