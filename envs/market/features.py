"""Observation features, precomputed once per dataset as [T, N, F] / [T, G] arrays.

Every feature at row t uses prices up to and including t's close (expanding or trailing
windows only, cross-sections within the row), so the env's step is a slice, never a pandas
call, and no feature can see the future.

Per asset (clipped to the bounds in ``ASSET_BOUNDS``; rows of untradable assets are zero):

* ``ret_1m .. ret_12m``  log return over 21/63/126/252 days divided by daily ex-ante vol x sqrt(h)
  (the TSMOM signals; recently listed assets use the history they have);
* ``macd_8_24, macd_16_48, macd_32_96``  EWMA(log price, fast) - EWMA(log price, slow), over
  daily vol x sqrt(slow);
* ``vol``  ex-ante annualised vol: sqrt(261 x EWMA(r^2, com=60)), as in ``tsmom_weights``;
* ``csmom_rank``  cross-sectional rank of 12-1 momentum among assets with a year of history,
  scaled to (-1, 1) (0 when unranked).

Global: ``avg_corr`` (EWMA average pairwise correlation of vol-scaled returns, com 30),
``market_drawdown`` (drawdown of the equal-weight index of live assets) and
``regime_similarity`` (exp(-d), d the Euclidean distance of today's standardised
(log vol, correlation, trend strength) state to its nearest past state at least 63 days old).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from trendgym.envs.market.calendar import BUSINESS_DAYS_PER_YEAR

VOL_COM = 60.0
HORIZONS = {"ret_1m": 21, "ret_3m": 63, "ret_6m": 126, "ret_12m": 252}
MACD_SPEEDS = ((8, 24), (16, 48), (32, 96))
ASSET_BOUNDS = {
    **{name: (-10.0, 10.0) for name in HORIZONS},
    **{f"macd_{fast}_{slow}": (-10.0, 10.0) for fast, slow in MACD_SPEEDS},
    "vol": (0.0, 10.0),
    "csmom_rank": (-1.0, 1.0),
}
SIGNAL_BOUNDS = (-10.0, 10.0)
GLOBAL_BOUNDS = {
    "avg_corr": (-1.0, 1.0),
    "market_drawdown": (-1.0, 0.0),
    "regime_similarity": (0.0, 1.0),
}
CORR_COM = 30.0
REGIME_MIN_AGE = 63
REGIME_STRIDE = 5


@njit(cache=True)
def ewm_mean_nb(x, com):
    """Column-wise EWMA with centre of mass `com`, NaN-aware exactly like pandas' ``ewm(com).mean()``.

    (adjust=True, ignore_na=False: a NaN decays the old weights, leading NaNs stay NaN.)
    """
    n_rows, n_cols = x.shape
    out = np.empty((n_rows, n_cols))
    if n_rows == 0:
        return out
    decay = 1.0 - 1.0 / (1.0 + com)
    weighted = x[0].copy()
    old_wt = np.ones(n_cols)
    out[0] = weighted
    for i in range(1, n_rows):  # rows outer: walks the C-ordered array in memory order
        for j in range(n_cols):
            cur = x[i, j]
            w = weighted[j]
            if w == w:
                old_wt[j] *= decay
                if cur == cur:
                    if w != cur:
                        weighted[j] = (old_wt[j] * w + cur) / (old_wt[j] + 1.0)
                    old_wt[j] += 1.0
            elif cur == cur:
                weighted[j] = cur
            out[i, j] = weighted[j]
    return out


@dataclass(frozen=True)
class FeatureSet:
    """Precomputed features of one dataset.

    Attributes
    ----------
    asset : float32 [T, N, F]   per-asset features in ``asset_names`` order
    glob : float32 [T, G]       global features in ``global_names`` order
    vol : float64 [T, N]        annualised ex-ante vol (0 where untradable)
    avg_corr : float64 [T]
    """

    asset: np.ndarray
    asset_names: tuple[str, ...]
    glob: np.ndarray
    global_names: tuple[str, ...]
    vol: np.ndarray
    avg_corr: np.ndarray


def _lagged(x: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """x[t - lag[t, i], i] (lag >= 0 and t - lag >= 0 assumed)."""
    rows = np.arange(x.shape[0])[:, None] - lag
    return np.take_along_axis(x, np.maximum(rows, 0), axis=0)


def _avg_corr(z: np.ndarray, tradable: np.ndarray) -> np.ndarray:
    """EWMA average pairwise correlation from vol-scaled returns z (NaN where not live), O(T N)."""
    total = np.where(np.isnan(z), 0.0, z).sum(axis=1, keepdims=True)
    q = ewm_mean_nb(total**2, CORR_COM)[:, 0]
    s = np.sqrt(ewm_mean_nb(z**2, CORR_COM))
    s = np.where(tradable & ~np.isnan(s), s, 0.0)
    sum_s, sum_s2 = s.sum(axis=1), (s**2).sum(axis=1)
    denom = sum_s**2 - sum_s2
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(denom > 1e-12, (q - sum_s2) / denom, 0.0)
    rho = np.where((tradable.sum(axis=1) >= 2) & np.isfinite(rho), rho, 0.0)
    return np.clip(rho, -1.0, 1.0)


@njit(cache=True)
def nearest_state_distance_nb(state, std, min_age, stride):
    """Per row t: min over past rows j (j % stride == 0, j <= t - min_age) of the Euclidean
    distance of state[j] to state[t], each dimension divided by std[t]; -1 where none exists."""
    n, d = state.shape
    out = np.full(n, -1.0)
    for t in range(min_age, n):
        best = np.inf
        for j in range(0, t - min_age + 1, stride):
            acc = 0.0
            for k in range(d):
                x = (state[j, k] - state[t, k]) / std[t, k]
                acc += x * x
            if acc < best:
                best = acc
        out[t] = np.sqrt(best)
    return out


def _regime_similarity(state: np.ndarray) -> np.ndarray:
    """exp(-distance) of each row's state to its nearest past state >= REGIME_MIN_AGE rows old.

    Standardised with expanding (point-in-time) means and stds; 0 while there is no past.
    """
    n = state.shape[0]
    count = np.arange(1, n + 1)[:, None]
    mean = np.cumsum(state, axis=0) / count
    var = np.maximum(np.cumsum(state**2, axis=0) / count - mean**2, 0.0)
    std = np.where(var > 1e-12, np.sqrt(var), 1.0)
    dist = nearest_state_distance_nb(
        np.ascontiguousarray(state), std, REGIME_MIN_AGE, REGIME_STRIDE
    )
    return np.where(dist >= 0, np.exp(-np.maximum(dist, 0.0)), 0.0)


def compute_features(
    prices: np.ndarray,
    tradable: np.ndarray,
    signals: dict[str, np.ndarray] | None = None,
) -> FeatureSet:
    """All observation features of a validated, gap-filled price array [T, N] (NaN = not listed)."""
    n_days, n_assets = prices.shape
    signals = signals or {}
    log_p = np.log(prices)
    var_d = ewm_mean_nb(squared_returns(prices), VOL_COM)
    vol_d = np.sqrt(var_d)
    with np.errstate(invalid="ignore", divide="ignore"):
        hist = np.where(
            np.isnan(prices), 0, np.arange(n_days)[:, None] - np.argmax(~np.isnan(prices), axis=0)
        )
        feats: list[np.ndarray] = []
        for h in HORIZONS.values():
            h_eff = np.minimum(h, hist)
            move = log_p - _lagged(log_p, h_eff)
            feats.append(move / (vol_d * np.sqrt(np.maximum(h_eff, 1))))
        for fast, slow in MACD_SPEEDS:
            gap = ewm_mean_nb(log_p, (fast - 1) / 2.0) - ewm_mean_nb(log_p, (slow - 1) / 2.0)
            feats.append(gap / (vol_d * np.sqrt(slow)))
        vol_ann = vol_d * np.sqrt(BUSINESS_DAYS_PER_YEAR)
        feats.append(vol_ann)
        mom = np.where(
            hist >= 252,
            _lagged(log_p, np.full_like(hist, 21)) - _lagged(log_p, np.full_like(hist, 252)),
            np.nan,
        )
        mom = np.where(tradable, mom, np.nan)
        ranks = pd.DataFrame(mom).rank(axis=1).to_numpy()
        n_ranked = np.sum(~np.isnan(mom), axis=1, keepdims=True)
        feats.append(np.where(n_ranked > 1, 2.0 * (ranks - 0.5) / n_ranked - 1.0, 0.0))
    names = [*HORIZONS, *(f"macd_{fast}_{slow}" for fast, slow in MACD_SPEEDS), "vol", "csmom_rank"]
    bounds = [ASSET_BOUNDS[k] for k in names]
    for key, values in signals.items():
        feats.append(values)
        names.append(key)
        bounds.append(SIGNAL_BOUNDS)
    asset = np.stack(feats, axis=2)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    asset = np.clip(np.nan_to_num(asset, nan=0.0, posinf=0.0, neginf=0.0), lo, hi)
    asset = np.where(tradable[:, :, None], asset, 0.0).astype(np.float32)

    # global features
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = np.full_like(prices, np.nan)
        returns[1:] = prices[1:] / prices[:-1] - 1.0
        prev_vol = np.full_like(prices, np.nan)
        prev_vol[1:] = vol_d[:-1]
        z = np.where(tradable & (prev_vol > 0), returns / prev_vol, np.nan)
    avg_corr = _avg_corr(z, tradable)
    live_ret = np.where(tradable & ~np.isnan(returns), returns, 0.0)
    n_live = np.maximum((tradable & ~np.isnan(returns)).sum(axis=1), 1)
    index = np.cumprod(1.0 + live_ret.sum(axis=1) / n_live)
    drawdown = index / np.maximum.accumulate(index) - 1.0
    n_trad = np.maximum(tradable.sum(axis=1), 1)
    mean_vol = np.where(tradable, np.nan_to_num(vol_ann), 0.0).sum(axis=1) / n_trad
    trend = np.abs(asset[:, :, names.index("ret_12m")]).sum(axis=1) / n_trad
    state = np.column_stack([np.log(np.maximum(mean_vol, 1e-4)), avg_corr, trend])
    similarity = _regime_similarity(state)
    glob = np.column_stack([avg_corr, np.clip(drawdown, -1.0, 0.0), similarity]).astype(np.float32)
    return FeatureSet(
        asset=asset,
        asset_names=tuple(names),
        glob=glob,
        global_names=tuple(GLOBAL_BOUNDS),
        vol=np.where(tradable, np.nan_to_num(vol_ann), 0.0),
        avg_corr=avg_corr,
    )


def squared_returns(prices: np.ndarray) -> np.ndarray:
    """Squared simple daily returns (row 0 and unlisted days NaN)."""
    out = np.full_like(prices, np.nan)
    out[1:] = (prices[1:] / prices[:-1] - 1.0) ** 2
    return out
