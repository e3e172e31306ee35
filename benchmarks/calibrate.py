"""Calibration and rebuild speed: a "real" tape (the simulator's calm flow, with its activity
bursts, written as a LOBSTER message and orderbook file pair that starts mid-session, as a
downloaded day does) calibrated and its stylized facts printed beside those of the calibrated
simulation; then the book rebuilt from a 1M-message tape, this tree's kernel and, in the same
process, the kernel at git revision --before (compile time excluded).

    python benchmarks/calibrate.py [--hours 1] [--messages 1000000] [--before REV]

No real data can be downloaded here; point ``trendgym calibrate`` at LOBSTER's sample files
for a real day.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.tape import best_of, simulated_tape  # noqa: E402
from trendgym.envs.lob import (  # noqa: E402
    MessageTape,
    OrderBook,
    calibrate_flow,
    read_lobster,
    record_flow,
    write_lobster,
)
from trendgym.envs.lob import rebuild_nb as rb  # noqa: E402
from trendgym.envs.lob.flow import OrderFlow, flow_params  # noqa: E402
from trendgym.envs.lob.tape import STAT_NAMES  # noqa: E402
from trendgym.envs.lob.tape_facts import compare_facts, simulate_calibrated  # noqa: E402
from trendgym.train.calibrate_cli import facts_table, fit_summary  # noqa: E402

BEFORE = "1d178fa"  # the last commit before the rebuild's per-message path was shortened


def real_day(hours: float, seed: int = 0) -> tuple[Path, Path, tempfile.TemporaryDirectory]:
    """The calm flow (bursts on) for `hours`, cut after its first time stamp so the book
    resting at the start is known only from the orderbook file, written as LOBSTER files."""
    flow = OrderFlow(OrderBook(), flow_params("calm"), np.random.default_rng(seed), record=4096)
    flow.seed_book()
    flow.run(300.0)  # a book that has lived before the file starts
    tape = record_flow(flow, hours * 3600.0, resolution=0.02)
    keep = tape.time > tape.time[0]
    cut = MessageTape(tape.messages[keep].copy(), tick=100, orderbook=tape.snapshots(10)[keep])
    tmp = tempfile.TemporaryDirectory()
    msg = Path(tmp.name) / "SIM_2026-12-07_34200_57600_message_10.csv"
    ob = Path(tmp.name) / "SIM_2026-12-07_34200_57600_orderbook_10.csv"
    write_lobster(cut, msg, ob, levels=10)
    return msg, ob, tmp


def load_rebuild_at(rev: str):
    """``rebuild_nb.py`` as it was at git revision `rev`, as a module (None if git cannot say)."""
    try:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{rev}:envs/lob/rebuild_nb.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / f"rebuild_nb_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"rebuild_nb_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rebuild_with(module, tape: MessageTape, span) -> None:
    """What ``tape.rebuild(0)`` does, with `module`'s kernel and `span` for the price window."""
    lo, hi = span(tape.messages)
    book = OrderBook()
    book.reserve(0, int(lo) // tape.tick, int(hi) // tape.tick)
    out = np.empty((len(tape), 0), dtype=np.int64)
    counters = np.zeros(len(STAT_NAMES), dtype=np.int64)
    ref = np.zeros((0, 4), np.int64)
    module.run_rebuild(book, tape.messages, tape.tick, len(tape), out, 0, ref, counters, False)
    return book, counters


def numpy_span(m: np.ndarray) -> tuple[int, int]:
    p = m["price"][m["event"] <= 4]
    return int(p.min()), int(p.max())


def facts_part(hours: float) -> None:
    msg, ob, tmp = real_day(hours)
    with tmp:
        t = time.perf_counter()
        tape = read_lobster(msg, ob)
        cal = calibrate_flow(tape)
        fit = time.perf_counter() - t
        print(f"{len(tape):,} messages read and calibrated in {fit:.1f} s")
        print(fit_summary(cal))
        t = time.perf_counter()
        sim = simulate_calibrated(cal, tape, seed=1)
        print(f"calibrated flow simulated for {hours:g} h in {time.perf_counter() - t:.1f} s\n")
        print(facts_table(compare_facts(tape, calibration=cal, simulated=sim)))


def speed_part(n_messages: int, before: str) -> None:
    t = time.perf_counter()
    tape = simulated_tape(n_messages, "calm")
    print(f"\nsimulated {len(tape):,} messages (calm) in {time.perf_counter() - t:.1f} s")
    old = load_rebuild_at(before)
    small = MessageTape(tape.messages[:1000], tick=100)
    small.rebuild(0)  # compile outside the timings
    if old is not None:
        rebuild_with(old, small, numpy_span)
        a, b = rebuild_with(old, tape, numpy_span), rebuild_with(rb, tape, rb.price_span_nb)
        same = (a[1] == b[1]).all() and (a[0].levels == b[0].levels).all()
        print(f"the two kernels leave the same book and counters: {same}")
    n = len(tape)
    rows = [("tape.rebuild(0), this tree", lambda: tape.rebuild(0))]
    if old is not None:
        rows.append((f"the same at {before}", lambda: rebuild_with(old, tape, numpy_span)))
    for label, fn in rows:
        s = best_of(fn, repeat=7)
        print(f"{label:<32} {n / s / 1e6:6.1f}M messages/s ({s * 1e3:.0f} ms)")
    for label, span in (("numpy", numpy_span), ("numba", rb.price_span_nb)):
        s = best_of(lambda span=span: span(tape.messages), repeat=7)
        print(f"price span of the tape ({label}): {s * 1e3:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--before", default=BEFORE, help="git revision of the 'before' kernel")
    args = ap.parse_args()
    facts_part(args.hours)
    speed_part(args.messages, args.before)


if __name__ == "__main__":
    main()
