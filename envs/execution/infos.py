"""Execution-v0's info entries for every env of a batch in one kernel call.

The entries of ``INFO_SPEC`` (env.py) go into two tables, ints (``INFO_INT`` rows) and floats
(``INFO_FLOAT`` rows), one column per env; the envs read each key as a row of its table. One
pass over the state rows, instead of a numpy operation per key, keeps the vector env's infos
cheap beside its step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trendgym.envs.execution.layout import EF, EI, INFO_FLOAT, INFO_INT

__all__ = ["infos_nb"]


@njit(cache=True, error_model="numpy")
def infos_nb(
    ei: np.ndarray,
    ef: np.ndarray,
    tick_size: float,
    ended: np.ndarray,
    violations: int,
    calibrated: bool,
    ints: np.ndarray,
    floats: np.ndarray,
) -> None:
    """Fill `ints` [len(INFO_INT), N] and `floats` [len(INFO_FLOAT), N] from the state rows;
    the end-only entries of envs whose episode has not `ended` are 0. Lots compliance kept
    from completing are marked at the last mid, so ``shortfall_bps == side·(avg_price /
    arrival_price − 1)·1e4`` always holds."""
    for i in range(ei.shape[0]):
        side, qty, remaining = ei[i, EI.side], ei[i, EI.qty], ei[i, EI.remaining]
        arrival = ef[i, EF.arrival] * tick_size
        ints[INFO_INT.remaining, i] = remaining
        ints[INFO_INT.n_orders, i] = ei[i, EI.n_orders]
        ints[INFO_INT.compliance_violations, i] = violations
        ints[INFO_INT.side, i] = side
        ints[INFO_INT.quantity, i] = qty
        ints[INFO_INT.preset, i] = -2 if calibrated else ei[i, EI.preset]
        ints[INFO_INT.replay_consumed, i] = ei[i, EI.consumed_msgs]
        ints[INFO_INT.replay_halted, i] = ei[i, EI.halt]
        ints[INFO_INT.replay_rejected, i] = ei[i, EI.rejected]
        floats[INFO_FLOAT.running_shortfall_bps, i] = ef[i, EF.shortfall]
        floats[INFO_FLOAT.arrival_price, i] = arrival
        floats[INFO_FLOAT.urgency, i] = ef[i, EF.urgency]
        floats[INFO_FLOAT.replay_start_time, i] = ef[i, EF.start_time]
        _end_entries_nb(ei, ef, tick_size, i, ended[i], arrival, ints, floats)


@njit(cache=True, error_model="numpy")
def _end_entries_nb(ei, ef, tick_size, i, ended, arrival, ints, floats) -> None:
    """Env `i`'s end-only entries: its episode's outcome, or 0 while it runs."""
    if not ended:
        ints[INFO_INT.unfilled_marked, i] = 0
        for row in (
            INFO_FLOAT.shortfall_bps,
            INFO_FLOAT.fill_rate,
            INFO_FLOAT.avg_price,
            INFO_FLOAT.market_vwap,
            INFO_FLOAT.vwap_slippage_bps,
        ):
            floats[row, i] = 0.0
        return
    side, qty, remaining = ei[i, EI.side], ei[i, EI.qty], ei[i, EI.remaining]
    marked = remaining * ef[i, EF.prev_mid]
    avg = (ei[i, EI.cash] + side * ef[i, EF.fees] + marked) / qty * tick_size
    market_qty = ei[i, EI.market_qty]
    vwap = ef[i, EF.market_value] / market_qty * tick_size if market_qty > 0 else arrival
    ints[INFO_INT.unfilled_marked, i] = remaining
    floats[INFO_FLOAT.shortfall_bps, i] = side * (avg / arrival - 1.0) * 1e4
    floats[INFO_FLOAT.fill_rate, i] = ei[i, EI.filled_end] / qty
    floats[INFO_FLOAT.avg_price, i] = avg
    floats[INFO_FLOAT.market_vwap, i] = vwap
    floats[INFO_FLOAT.vwap_slippage_bps, i] = side * (avg / vwap - 1.0) * 1e4
