"""Stylized facts of the simulated flow: is the book behaving like a market?"""

from __future__ import annotations

import numpy as np
from scipy import stats

from trendgym.envs.lob.book import OrderBook
from trendgym.envs.lob.flow import IS, OrderFlow, flow_params


def simulate_quotes(
    preset: str = "calm", seed: int = 0, seconds: int = 4 * 3600, sample: float = 1.0, **overrides
) -> dict[str, np.ndarray]:
    """Run the flow and sample the top of book every `sample` seconds: mid, spread,
    order-flow imbalance over the interval, and the depth profile (mean qty at levels 1..5)."""
    book = OrderBook()
    flow = OrderFlow(book, flow_params(preset, **overrides), np.random.default_rng(seed))
    flow.seed_book()
    flow.run(60.0)  # warm-up
    flow.take_ofi()
    n = int(seconds / sample)
    mid, spread, ofi = np.empty(n), np.empty(n), np.empty(n)
    depth = np.zeros(5)
    for i in range(n):
        flow.run(sample)
        bid, ask = book.best_bid(), book.best_ask()
        bid = bid or int(flow.istate[IS.last_bid])
        ask = ask or int(flow.istate[IS.last_ask])
        mid[i], spread[i], ofi[i] = 0.5 * (bid + ask), ask - bid, flow.take_ofi()
        for side in (1, -1):
            d = book.depth(side, 5)[:, 1]
            depth[: d.size] += d
    return {
        "mid": mid,
        "spread": spread,
        "ofi": ofi,
        "depth": depth / (2 * n),
        "messages": np.array(book.totals()["messages"]),
    }


def stylized_facts(
    preset: str = "calm", seed: int = 0, seconds: int = 4 * 3600
) -> dict[str, float]:
    """Spread, depth profile, return autocorrelation, 1-minute kurtosis (non-excess; > 3 is
    fat-tailed) and the slope of mid change on OFI over 10 s (positive: Cont, Kukanov &
    Stoikov 2014)."""
    q = simulate_quotes(preset, seed, seconds)
    mid = q["mid"]
    r10 = np.diff(mid[::10])
    r60 = np.diff(np.log(mid[::60]))
    # ofi[i] accrued between samples i-1 and i, so r10[j] (mid[10j] -> mid[10j+10]) pairs
    # with ofi[10j+1 .. 10j+10]
    ofi10 = q["ofi"][1 : 1 + 10 * r10.size].reshape(-1, 10).sum(axis=1)
    slope = stats.linregress(ofi10, r10)
    facts = {
        "spread_mean_ticks": float(q["spread"].mean()),
        "spread_median_ticks": float(np.median(q["spread"])),
        "return_autocorr_10s": float(np.corrcoef(r10[:-1], r10[1:])[0, 1]),
        "kurtosis_1min": float(stats.kurtosis(r60, fisher=False)),
        "ofi_slope_ticks_per_lot": float(slope.slope),
        "ofi_r2": float(slope.rvalue**2),
        "messages_per_second": float(q["messages"]) / (seconds + 60.0),
    }
    for i, d in enumerate(q["depth"], start=1):
        facts[f"depth_level_{i}"] = float(d)
    return facts
