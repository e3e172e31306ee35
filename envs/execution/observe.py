"""What an env reads off its book: the mid, its resting order, the shortfall, the observation,
and the end of a step (reward and observation), all on row `i` of the batch."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from trendgym.envs.execution.layout import CFG, EF, EI, OBS, OBS_HIGH, OBS_LOW, OWN, PHASE, TOB
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.flow import IS


@njit(cache=True, _nrt=False)
def mid_nb(i, tob, istate):
    """The mid of the last top-of-book read (the last known quote stands in for an empty side)."""
    bid = tob[i, TOB.bid] if tob[i, TOB.bid] != 0 else istate[i, IS.last_bid]
    ask = tob[i, TOB.ask] if tob[i, TOB.ask] != 0 else istate[i, IS.last_ask]
    return 0.5 * float(bid + ask)


@njit(cache=True, _nrt=False)
def refresh_own_nb(i, book, ei, own):
    """Read the agent's resting order into ``own[i]``; forget its id once it is gone."""
    b = book
    if not k.order_state_nb(
        b.orders[i], b.levels[i], b.keys[i], b.slots[i], b.meta[i], ei[i, EI.own_id], own[i]
    ):
        ei[i, EI.own_id] = k.EMPTY_KEY


@njit(cache=True, _nrt=False)
def copy_row_nb(dst, src):
    """dst[:] = src[:dst.size], element by element (slice copies need numba's runtime)."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(cache=True, _nrt=False)
def shortfall_bps_nb(i, ei, ef, mid):
    """Running implementation shortfall, bps of the arrival notional, the rest marked at `mid`."""
    side = ei[i, EI.side]
    quantity = ei[i, EI.qty]
    remaining = ei[i, EI.remaining]
    filled = quantity - remaining
    arrival = ef[i, EF.arrival]
    cost = side * (ei[i, EI.cash] - filled * arrival) + ef[i, EF.fees]
    cost += side * (mid - arrival) * remaining
    return cost / (quantity * arrival) * 1e4


@njit(cache=True, _nrt=False)
def observation_nb(i, book, istate, ep, horizon):
    """Row `i` of ``ep.obs`` from the last top-of-book read (see ``layout.OBS_SPEC``)."""
    ei, ef, tob, own, obs = ep.ei, ep.ef, ep.tob, ep.own, ep.obs
    refresh_own_nb(i, book, ei, own)
    bid, ask = tob[i, TOB.bid], tob[i, TOB.ask]
    bq1, aq1 = tob[i, TOB.bid_qty], tob[i, TOB.ask_qty]
    bq5, aq5 = tob[i, TOB.bid_depth], tob[i, TOB.ask_depth]
    side = ei[i, EI.side]
    spread = float(ask - bid) if bid != 0 and ask != 0 else 0.0
    imb1 = side * (bq1 - aq1) / (bq1 + aq1) if bq1 + aq1 > 0 else 0.0
    imb5 = side * (bq5 - aq5) / (bq5 + aq5) if bq5 + aq5 > 0 else 0.0
    mid = mid_nb(i, tob, istate)
    vol_bps = math.sqrt(ef[i, EF.ewm_var])
    move = side * math.log(mid / ef[i, EF.arrival]) * 1e4 / ef[i, EF.vol_bps]
    own_qty, own_price, ahead = own[i, OWN.qty], own[i, OWN.price], own[i, OWN.ahead]
    touch = bid if side == 1 else ask
    distance = float(side * (own_price - touch)) if own_qty != 0 and touch != 0 else 0.0
    quantity = ei[i, EI.qty]
    depth = ef[i, EF.touch_depth]
    obs[i, OBS.time_left] = np.float32(1.0 - ei[i, EI.t] / horizon)
    obs[i, OBS.inventory_left] = np.float32(ei[i, EI.remaining] / quantity)
    obs[i, OBS.spread] = np.float32(spread)
    obs[i, OBS.imbalance_1] = np.float32(imb1)
    obs[i, OBS.imbalance_5] = np.float32(imb5)
    obs[i, OBS.ofi] = np.float32(side * ef[i, EF.last_ofi] / depth)
    obs[i, OBS.mid_move] = np.float32(move)
    obs[i, OBS.volatility] = np.float32(vol_bps)
    obs[i, OBS.own_size] = np.float32(own_qty / quantity)
    obs[i, OBS.own_distance] = np.float32(distance)
    obs[i, OBS.own_queue_ahead] = np.float32(ahead / depth)
    obs[i, OBS.urgency] = np.float32(ef[i, EF.urgency])
    for j in range(obs.shape[1]):
        obs[i, j] = min(max(obs[i, j], OBS_LOW[j]), OBS_HIGH[j])


@njit(cache=True, _nrt=False, inline="always")
def finish_step_nb(i, book, istate, ep, cfg, same_step):
    """The end of a step: update the volatility estimate, the reward (the shortfall's change,
    less the risk penalty before the end) and the observation; keep the terminal rows and
    reset at once when the episode ended and autoreset is same-step."""
    ei, ef, tob = ep.ei, ep.ef, ep.tob
    k.top_of_book_nb(book.levels[i], book.meta[i], 5, tob[i])
    mid = mid_nb(i, tob, istate)
    step_ret = math.log(mid / ef[i, EF.prev_mid]) * 1e4
    ef[i, EF.ewm_var] = 0.9 * ef[i, EF.ewm_var] + 0.1 * step_ret * step_ret
    ef[i, EF.prev_mid] = mid
    shortfall = shortfall_bps_nb(i, ei, ef, mid)
    reward = -(shortfall - ef[i, EF.shortfall])
    ef[i, EF.shortfall] = shortfall
    terminated = ei[i, EI.terminated] != 0
    risk_aversion = cfg[CFG.risk_aversion]
    if risk_aversion > 0 and not terminated:
        left = ei[i, EI.remaining] / ei[i, EI.qty]
        reward -= risk_aversion * (left * left) * math.sqrt(ef[i, EF.ewm_var])
    ef[i, EF.reward] = reward
    observation_nb(i, book, istate, ep, int(cfg[CFG.horizon]))
    if terminated:  # the summary reads these rows after a same-step reset
        copy_row_nb(ep.final_ei[i], ei[i])
        copy_row_nb(ep.final_ef[i], ef[i])
    if terminated and same_step:
        copy_row_nb(ep.final_obs[i], ep.obs[i])
        ei[i, EI.phase] = PHASE.reset
    else:
        ei[i, EI.phase] = PHASE.idle
