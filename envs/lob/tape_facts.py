"""Stylized facts of a tape, and of the simulation calibrated to it, side by side."""

from __future__ import annotations

import numpy as np

from trendgym.envs.lob.book import OrderBook
from trendgym.envs.lob.calibrate import calibrate_flow
from trendgym.envs.lob.flow import OrderFlow
from trendgym.envs.lob.record import record_flow
from trendgym.envs.lob.tape import MessageTape

DEPTH_LEVELS = 5


def tape_facts(tape: MessageTape, sample: float = 1.0) -> dict[str, float]:
    """The book sampled every `sample` seconds (the rebuilt state after the last message at
    or before each sample time, while both sides quote): mean and median spread (ticks),
    mean displayed lots at each of the first DEPTH_LEVELS occupied levels (the two sides
    averaged), kurtosis (non-excess; > 3 is fat-tailed) of 1-minute log mid returns, and
    messages per second."""
    from scipy import stats

    if not isinstance(tape, MessageTape):
        raise TypeError(f"tape must be a MessageTape, got {type(tape).__name__}")
    if not sample > 0:
        raise ValueError(f"sample must be > 0 seconds, got {sample}")
    t = tape.time
    if len(tape) == 0 or not t[-1] > t[0]:
        raise ValueError(f"{tape.source}: the tape spans no time to take facts from")
    snaps = tape.snapshots(DEPTH_LEVELS)
    grid = np.arange(t[0] + sample, t[-1] + 1e-9, sample)
    rows = snaps[np.searchsorted(t, grid, side="right") - 1]
    quoted = (rows[:, 1] > 0) & (rows[:, 3] > 0)
    rows = rows[quoted]
    if rows.shape[0] < 2:
        raise ValueError(f"{tape.source}: the book is two-sided at fewer than 2 samples")
    ask, bid = rows[:, 0] / tape.tick, rows[:, 2] / tape.tick
    spread = ask - bid
    mid = 0.5 * (ask + bid)
    per_minute = max(1, round(60.0 / sample))
    r60 = np.diff(np.log(mid[::per_minute]))
    facts = {
        "spread_mean_ticks": float(spread.mean()),
        "spread_median_ticks": float(np.median(spread)),
        "kurtosis_1min": float(stats.kurtosis(r60, fisher=False)) if r60.size > 3 else np.nan,
        "messages_per_second": len(tape) / float(t[-1] - t[0]),
    }
    for i in range(DEPTH_LEVELS):
        both = rows[:, 4 * i + 1].astype(float) + rows[:, 4 * i + 3]
        facts[f"depth_level_{i + 1}"] = float(both.mean() / 2)
    return facts


def compare_facts(
    tape: MessageTape, *, seed: int = 0, seconds: float | None = None, sample: float = 1.0
) -> dict[str, tuple[float, float]]:
    """{fact: (tape's, calibrated simulation's)}: the flow fitted to `tape` (``calibrate_flow``)
    run for `seconds` (default: the tape's span) from a seeded book, recorded as a tape and
    measured the same way."""
    cal = calibrate_flow(tape)
    span = cal.seconds if seconds is None else float(seconds)
    flow = OrderFlow(OrderBook(), cal.params(), np.random.default_rng(seed), record=1 << 14)
    flow.seed_book()
    sim = record_flow(flow, span, resolution=0.02, tick=tape.tick)
    real, simulated = tape_facts(tape, sample), tape_facts(sim, sample)
    return {name: (real[name], simulated[name]) for name in real}
