"""Stylized facts of a tape, and of the simulation calibrated to it, side by side.

The facts are those ``facts.py`` measures on the simulator, taken from the rebuilt book
sampled on a time grid: spread, depth profile, kurtosis of 1-minute returns, the slope and R²
of mid changes on order-flow imbalance over `bucket`-second buckets (Cont, Kukanov & Stoikov
2014), messages per second and the autocorrelation of successive `bucket`-second mid changes.
"""

from __future__ import annotations

import numpy as np

from trendgym.envs.lob.calibrate import Calibration, calibrate_flow
from trendgym.envs.lob.flow import MAX_DEPTH, OrderFlow
from trendgym.envs.lob.record import record_flow
from trendgym.envs.lob.tape import EVENT, MessageTape

DEPTH_LEVELS = 5
FACT_NAMES = (
    "spread_mean_ticks",
    "spread_median_ticks",
    *(f"depth_level_{i}" for i in range(1, DEPTH_LEVELS + 1)),
    "kurtosis_1min",
    "ofi_slope_ticks_per_lot",
    "ofi_r2",
    "return_autocorr_10s",
    "messages_per_second",
)


def touch_ofi(top: np.ndarray) -> np.ndarray:
    """The order-flow imbalance each message adds (lots), from `top`, the book's best level
    after every message (LOBSTER layout: ask price, ask size, bid price, bid size):
    ``e_n = 1{b_n >= b_n-1} qb_n - 1{b_n <= b_n-1} qb_n-1 - 1{a_n <= a_n-1} qa_n
    + 1{a_n >= a_n-1} qa_n-1``, bid inflow minus ask inflow at the touch. A message after
    which, or before which, a side is empty adds 0: a side appearing from nothing is not flow
    at the touch."""
    ap, aq, bp, bq = (top[:, c] for c in range(4))
    e = np.zeros(top.shape[0])
    if top.shape[0] < 2:
        return e
    quoted = (aq > 0) & (bq > 0)
    ok = quoted[1:] & quoted[:-1]
    b1, b0, a1, a0 = bp[1:], bp[:-1], ap[1:], ap[:-1]
    flow = (
        np.where(b1 >= b0, bq[1:], 0)
        - np.where(b1 <= b0, bq[:-1], 0)
        - np.where(a1 <= a0, aq[1:], 0)
        + np.where(a1 >= a0, aq[:-1], 0)
    )
    e[1:] = np.where(ok, flow, 0)
    return e


def tape_series(tape: MessageTape, sample: float = 1.0, bucket: float = 10.0) -> dict:
    """What the facts are taken from: the book sampled every `sample` seconds (the rebuilt
    state after the last message at or before each sample time) where both sides quote:
    ``spread`` (ticks), ``depth`` (mean lots at each of the first DEPTH_LEVELS occupied
    levels, the two sides averaged), ``r60`` (1-minute log mid returns); over `bucket`-second
    buckets whose two ends are two-sided: ``dmid`` (mid change, ticks), ``ofi`` (the
    bucket's ``touch_ofi``, lots) and ``pair`` (whether kept buckets j and j + 1 are
    consecutive in time)."""
    if not isinstance(tape, MessageTape):
        raise TypeError(f"tape must be a MessageTape, got {type(tape).__name__}")
    if not sample > 0:
        raise ValueError(f"sample must be > 0 seconds, got {sample}")
    every = round(bucket / sample) if bucket > 0 else 0
    if every < 1 or not np.isclose(every * sample, bucket):
        raise ValueError(f"bucket must be a positive multiple of sample ({sample}), got {bucket}")
    t = tape.time
    if len(tape) == 0 or not t[-1] > t[0]:
        raise ValueError(f"{tape.source}: the tape spans no time to take facts from")
    snaps = tape.snapshots(DEPTH_LEVELS)
    grid = np.arange(t[0] + sample, t[-1] + 1e-9, sample)
    at = np.searchsorted(t, grid, side="right") - 1
    all_rows = snaps[at]
    quoted = (all_rows[:, 1] > 0) & (all_rows[:, 3] > 0)
    rows = all_rows[quoted]
    if rows.shape[0] < 2:
        raise ValueError(f"{tape.source}: the book is two-sided at fewer than 2 samples")
    ask, bid = rows[:, 0] / tape.tick, rows[:, 2] / tape.tick
    mid = 0.5 * (ask + bid)
    per_minute = max(1, round(60.0 / sample))
    depth = [
        (rows[:, 4 * i + 1].astype(float) + rows[:, 4 * i + 3]).mean() / 2
        for i in range(DEPTH_LEVELS)
    ]
    all_mid = 0.5 * (all_rows[:, 0] + all_rows[:, 2]) / tape.tick  # valid where quoted
    cum_ofi = np.cumsum(touch_ofi(snaps[:, :4]))[at]
    ends = np.arange(0, grid.size, every)
    ok = quoted[ends[1:]] & quoted[ends[:-1]]
    dmid, ofi = np.diff(all_mid[ends]), np.diff(cum_ofi[ends])
    return {
        "spread": ask - bid,
        "depth": np.array(depth),
        "r60": np.diff(np.log(mid[::per_minute])),
        "dmid": dmid[ok],
        "ofi": ofi[ok],
        "pair": np.diff(np.flatnonzero(ok)) == 1,
        "messages_per_second": len(tape) / float(t[-1] - t[0]),
    }


def _ofi_facts(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of `y` on `x` and its R² (NaN when either does not vary)."""
    if x.size < 3 or not x.std() > 0 or not y.std() > 0:
        return float("nan"), float("nan")
    c = np.cov(x, y, bias=True)
    return float(c[0, 1] / c[0, 0]), float(c[0, 1] ** 2 / (c[0, 0] * c[1, 1]))


def lag_autocorr(d: np.ndarray, pair: np.ndarray, lag: int = 1) -> float:
    """Correlation of d[j] with d[j + lag] over the j where `pair` marks d[j]..d[j + lag] as
    consecutive buckets (NaN when fewer than 3 pairs or no variation)."""
    if d.size <= lag:
        return float("nan")
    run = np.ones(d.size - lag, bool)
    for step in range(lag):
        run &= pair[step : step + d.size - lag]
    a, b = d[:-lag][run], d[lag:][run]
    if a.size < 3 or not a.std() > 0 or not b.std() > 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def facts_of(series: dict) -> dict[str, float]:
    """The stylized facts (``FACT_NAMES`` order) of a ``tape_series``."""
    from scipy import stats

    spread, r60 = series["spread"], series["r60"]
    facts = {
        "spread_mean_ticks": float(spread.mean()),
        "spread_median_ticks": float(np.median(spread)),
    }
    for i, d in enumerate(series["depth"], start=1):
        facts[f"depth_level_{i}"] = float(d)
    facts["kurtosis_1min"] = (
        float(stats.kurtosis(r60, fisher=False)) if r60.size > 3 else float("nan")
    )
    slope, r2 = _ofi_facts(series["ofi"], series["dmid"])
    facts["ofi_slope_ticks_per_lot"], facts["ofi_r2"] = slope, r2
    facts["return_autocorr_10s"] = lag_autocorr(series["dmid"], series["pair"])
    facts["messages_per_second"] = float(series["messages_per_second"])
    return {name: facts[name] for name in FACT_NAMES}


def tape_facts(tape: MessageTape, sample: float = 1.0, bucket: float = 10.0) -> dict[str, float]:
    """The book sampled every `sample` seconds (see ``tape_series``; samples where a side is
    empty are left out): mean and median spread (ticks), mean displayed lots at each of the
    first DEPTH_LEVELS occupied levels (the two sides averaged), kurtosis (non-excess; > 3 is
    fat-tailed) of 1-minute log mid returns, slope (ticks per lot) and R² of `bucket`-second
    mid changes on the OFI of the same bucket (``touch_ofi``), the autocorrelation of
    successive `bucket`-second mid changes (named ``return_autocorr_10s`` whatever the
    bucket, as in ``facts.py``) and messages per second. Facts a tape is too short or too
    quiet for are NaN. Keys in ``FACT_NAMES`` order."""
    return facts_of(tape_series(tape, sample, bucket))


def start_price(tape: MessageTape) -> int:
    """The tape's first mid (book ticks) where both sides quote, else its median new-order
    price: where a simulation of it starts."""
    top = tape.snapshots(1)
    both = np.flatnonzero((top[:, 1] > 0) & (top[:, 3] > 0))
    if both.size:
        return int((top[both[0], 0] + top[both[0], 2]) // (2 * tape.tick))
    new = tape.price[tape.event == EVENT.new]
    return int(np.median(new) // tape.tick) if new.size else 10_000


def simulate_calibrated(
    cal: Calibration, tape: MessageTape, seconds: float | None = None, *, seed: int = 0
) -> MessageTape:
    """The flow of `cal` (fitted to `tape`) run for `seconds` (default: the tape's span) and
    recorded as a tape in the tape's price units, from the tape's book before its first
    message (``tape.initial_book()``: its orderbook file's first row) when that book is
    two-sided, else from a book the flow seeds around the tape's first mid."""
    span = cal.seconds if seconds is None else float(seconds)
    book = tape.initial_book()
    rng = np.random.default_rng(seed)
    price = max(start_price(tape), 2 * MAX_DEPTH + 1)
    flow = OrderFlow(book, cal.params(), rng, start_price=price, record=1 << 14)
    if not (book.best_bid() and book.best_ask()):
        book.clear()
        flow.seed_book()
    return record_flow(flow, span, resolution=0.02, start_time=float(tape.time[0]), tick=tape.tick)


def compare_facts(
    tape: MessageTape,
    *,
    seed: int = 0,
    seconds: float | None = None,
    sample: float = 1.0,
    calibration: Calibration | None = None,
    simulated: MessageTape | None = None,
) -> dict[str, tuple[float, float]]:
    """{fact: (tape's, calibrated simulation's)}: the flow fitted to `tape` (``calibrate_flow``,
    or `calibration` when given) run for `seconds` (default: the tape's span) by
    ``simulate_calibrated``, recorded as a tape and measured the same way (or `simulated`,
    such a tape made already)."""
    cal = calibrate_flow(tape) if calibration is None else calibration
    if simulated is None:
        simulated = simulate_calibrated(cal, tape, seconds, seed=seed)
    real, sim = tape_facts(tape, sample), tape_facts(simulated, sample)
    return {name: (real[name], sim[name]) for name in real}
