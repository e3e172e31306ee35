"""Point-in-time universe: who is listed, who is tradable, and what a held position earns next.

An asset is *live* on the days it has a price (between its first and last price), and
*tradable* while live with at least `min_history` daily returns behind it (so its risk can be
measured). A position held at the close of an asset's last price day earns, over the next day,
its delisting return (the close-out at last price x (1 + delisting return)); the loss reaches
NAV and the asset is masked from then on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def listing_span(prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last row with a price, per column (-1 where a column is empty)."""
    has = ~np.isnan(prices)
    any_ = has.any(axis=0)
    first = np.where(any_, np.argmax(has, axis=0), -1)
    last = np.where(any_, prices.shape[0] - 1 - np.argmax(has[::-1], axis=0), -1)
    return first, last


def history_length(prices: np.ndarray) -> np.ndarray:
    """Daily returns observed since listing, per [t, asset] (-1 before listing)."""
    first, _ = listing_span(prices)
    t = np.arange(prices.shape[0])[:, None]
    return np.where(t >= first[None, :], t - first[None, :], -1)


def tradable_mask(prices: np.ndarray, min_history: int) -> np.ndarray:
    """True where an asset has a price and at least `min_history` returns of history."""
    return ~np.isnan(prices) & (history_length(prices) >= min_history)


def next_returns(
    prices: np.ndarray, tradable: np.ndarray, delisting_returns: np.ndarray
) -> np.ndarray:
    """Return earned over t -> t+1 by a position held at t's close (0 where none can be held).

    On an asset's last price day before the end of the data, that is its delisting return.
    """
    n_days = prices.shape[0]
    out = np.zeros_like(prices)
    with np.errstate(invalid="ignore", divide="ignore"):
        simple = prices[1:] / prices[:-1] - 1.0
    live_next = ~np.isnan(simple)
    out[:-1] = np.where(tradable[:-1] & live_next, simple, 0.0)
    _, last = listing_span(prices)
    for i in np.flatnonzero((last >= 0) & (last < n_days - 1)):
        if tradable[last[i], i]:
            out[last[i], i] = delisting_returns[i]
    return out


def survivors(prices: pd.DataFrame) -> list[str]:
    """Assets still priced on the last date: the survivorship-biased subset of a universe."""
    return [str(c) for c in prices.columns[prices.iloc[-1].notna().to_numpy()]]
