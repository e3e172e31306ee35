"""Probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV).

Bailey, Borwein, López de Prado & Zhu (2017), "The probability of backtest overfitting".
Given a T x N matrix of per-period returns of N trials (configurations, seeds, ...), the rows
are cut into `n_splits` contiguous blocks. For every way of choosing half the blocks as the
in-sample set J (the rest, J-bar, out-of-sample), the trial with the best in-sample Sharpe is
picked and its out-of-sample rank among all N trials is recorded as a logit. PBO is the share
of combinations where the in-sample winner lands below the out-of-sample median, or exactly
on it without a tie: a winner tied with other trials out of sample (alike trials) was not
overfit, since choosing any of them would have done as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

__all__ = ["PBOResult", "pbo"]

# C(24, 12) = 2.7M combinations; beyond this the result does not need more and memory does.
_MAX_COMBINATIONS = 3_000_000


@dataclass(frozen=True, eq=False)
class PBOResult:
    """Outcome of CSCV.

    Attributes
    ----------
    pbo : share of combinations whose in-sample best trial has logit < 0, or logit 0 with no
        other trial tied with it out of sample (ties are not counted as overfit).
    logits : per combination, log(w / (1 - w)) with w = OOS rank of the IS-best trial / (N + 1).
    is_performance, oos_performance : per combination, the IS-best trial's in-sample and
        out-of-sample per-period Sharpe ratio.
    best_trial : per combination, the column index of the IS-best trial.
    degradation_slope, degradation_intercept, degradation_r2 : OLS of oos_performance on
        is_performance; a slope below 0 means a better in-sample Sharpe predicts a worse
        out-of-sample one.
    prob_oos_loss : share of combinations whose IS-best trial has an OOS Sharpe below 0.
    """

    pbo: float
    logits: np.ndarray = field(repr=False)
    is_performance: np.ndarray = field(repr=False)
    oos_performance: np.ndarray = field(repr=False)
    best_trial: np.ndarray = field(repr=False)
    degradation_slope: float
    degradation_intercept: float
    degradation_r2: float
    prob_oos_loss: float
    n_splits: int
    n_trials: int
    n_combinations: int


def _as_matrix(returns: np.ndarray | pd.DataFrame) -> np.ndarray:
    try:
        m = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"returns must be a numeric (T, N) matrix, got {type(returns).__name__}"
        ) from exc
    if m.ndim != 2:
        raise ValueError(
            f"returns must be a (T, N) matrix of per-period returns, got shape {m.shape}"
        )
    bad = ~np.isfinite(m)
    if bad.any():
        t, n = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(m[t, n]) else "inf"
        raise ValueError(
            f"returns contains {kind} at row {t}, column {n} ({int(bad.sum())} non-finite)"
        )
    return m


def _half_sharpe(
    sel: np.ndarray,
    s1: np.ndarray,
    s2: np.ndarray,
    count: np.ndarray,
    col_mean: np.ndarray,
    constant: np.ndarray,
) -> np.ndarray:
    """Per-period Sharpe (ddof=1) of every trial over the union of the selected blocks.

    `sel` (C, S) 0/1 block selection; `s1`, `s2` (S, N) per-block sums and sums of squares of
    returns centred on `col_mean` (N,); `count` (S,) rows per block; `constant` (C, N) marks halves whose
    returns are all equal (their Sharpe is set by the caller).
    """
    n = sel @ count
    total = sel @ s1
    mean = total / n[:, None]
    var = (sel @ s2 - total * mean) / (n[:, None] - 1.0)
    mean = mean + col_mean  # centring shifts the mean only
    var = np.where(constant, 1.0, np.maximum(var, 0.0))
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        sr = np.where(constant | (std == 0.0), 0.0, mean / std)
    return sr


def pbo(returns: np.ndarray | pd.DataFrame, n_splits: int = 16) -> PBOResult:
    """Probability of backtest overfitting of the best of N trials, by CSCV.

    Parameters
    ----------
    returns : (T, N) per-period returns, one column per trial, rows in time order, no NaN.
    n_splits : S, an even number of contiguous row blocks (sizes differ by at most one when
        S does not divide T). There are C(S, S/2) combinations; 16 gives 12,870.

    Zero variance: a trial whose returns over a half are all zero has Sharpe 0 there (a flat
    trial ranks in the middle); a constant non-zero return over a half raises ValueError.
    Ties in OOS Sharpe get the average rank; a median rank that comes from a tie is not
    counted as overfit.
    """
    m = _as_matrix(returns)
    t_obs, n_trials = m.shape
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise TypeError(f"n_splits must be an integer, got {type(n_splits).__name__}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even integer >= 2, got {n_splits}")
    if t_obs < 2 * n_splits:
        raise ValueError(f"returns needs at least 2 * n_splits = {2 * n_splits} rows, got {t_obs}")
    if n_trials < 2:
        raise ValueError(
            f"returns needs at least 2 trials (columns) to select from, got {n_trials}"
        )
    n_comb = math.comb(n_splits, n_splits // 2)
    if n_comb > _MAX_COMBINATIONS:
        raise ValueError(f"n_splits={n_splits} gives {n_comb} combinations; use n_splits <= 24")

    # Per-block sufficient statistics of column-centred returns (centring keeps the
    # sum-of-squares variance free of cancellation), so each half costs one matmul.
    col_mean = m.mean(axis=0)
    centred = m - col_mean
    edges = np.linspace(0, t_obs, n_splits + 1).round().astype(np.int64)
    blocks = [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    s1 = np.stack([centred[b].sum(axis=0) for b in blocks])
    s2 = np.stack([(centred[b] ** 2).sum(axis=0) for b in blocks])
    bmin = np.stack([m[b].min(axis=0) for b in blocks])
    bmax = np.stack([m[b].max(axis=0) for b in blocks])
    count = np.diff(edges).astype(np.float64)

    sel = np.zeros((n_comb, n_splits))
    for c, chosen in enumerate(combinations(range(n_splits), n_splits // 2)):
        sel[c, list(chosen)] = 1.0
    is_sel, oos_sel = sel, 1.0 - sel

    block_const = bmin == bmax
    const_cols = np.flatnonzero(block_const.any(axis=0))

    def constant_halves(mask: np.ndarray) -> np.ndarray:
        # A half is constant iff all its blocks are and they share one value; checked exactly,
        # only for the (usually few) trials that have a constant block at all.
        out = np.zeros((n_comb, n_trials), dtype=bool)
        if const_cols.size == 0:
            return out
        chosen = mask.astype(bool)[:, :, None]
        lo = np.where(chosen, bmin[None, :, const_cols], np.inf).min(axis=1)
        hi = np.where(chosen, bmax[None, :, const_cols], -np.inf).max(axis=1)
        const = lo == hi
        if (const & (lo != 0.0)).any():
            c, k = (int(v) for v in np.argwhere(const & (lo != 0.0))[0])
            raise ValueError(
                f"trial (column) {int(const_cols[k])} has a constant non-zero return "
                f"{float(lo[c, k])!r} over half the sample; its Sharpe ratio is undefined"
            )
        out[:, const_cols] = const
        return out

    sr_is = _half_sharpe(is_sel, s1, s2, count, col_mean, constant_halves(is_sel))
    sr_oos = _half_sharpe(oos_sel, s1, s2, count, col_mean, constant_halves(oos_sel))

    best = np.argmax(sr_is, axis=1)
    rows = np.arange(n_comb)
    best_is = sr_is[rows, best]
    best_oos = sr_oos[rows, best]
    # Average rank (1 = worst) of the IS winner among the N OOS Sharpe ratios.
    below = (sr_oos < best_oos[:, None]).sum(axis=1)
    ties = (sr_oos == best_oos[:, None]).sum(axis=1)
    rank = below + (ties + 1) / 2.0
    w = rank / (n_trials + 1.0)
    logits = np.log(w / (1.0 - w))
    logits[rank * 2 == n_trials + 1] = 0.0  # exactly the median, free of rounding

    slope, intercept, r2 = _ols(best_is, best_oos)
    return PBOResult(
        pbo=float(np.mean((logits < 0.0) | ((logits == 0.0) & (ties == 1)))),
        logits=logits,
        is_performance=best_is,
        oos_performance=best_oos,
        best_trial=best,
        degradation_slope=slope,
        degradation_intercept=intercept,
        degradation_r2=r2,
        prob_oos_loss=float(np.mean(best_oos < 0.0)),
        n_splits=int(n_splits),
        n_trials=int(n_trials),
        n_combinations=int(n_comb),
    )


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept, R^2 of y on x; a constant x gives slope 0 and R^2 0 (no information)."""
    xc = x - x.mean()
    yc = y - y.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        return 0.0, float(y.mean()), 0.0
    slope = float(xc @ yc) / sxx
    intercept = float(y.mean() - slope * x.mean())
    syy = float(yc @ yc)
    r2 = 0.0 if syy == 0.0 else float((xc @ yc) ** 2 / (sxx * syy))
    return slope, intercept, r2
