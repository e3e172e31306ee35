"""A reset, in numba: empty the env's book, draw the episode from eight raw generator words,
seed the book, run the warm-up (``PHASE.warm_flow``, in ``step.py``) and record the arrival
price and the first observation. An autoreset therefore costs Python one ``random_raw`` call."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from trendgym.envs.execution.layout import CFG, EF, EI, PHASE, TOB, TOB_LEVELS
from trendgym.envs.execution.observe import copy_row_nb, mid_nb, observation_nb
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.flow import (
    _FIRST_ID,
    FS,
    IS,
    MAX_DEPTH,
    PARAM,
    _geometric_nb,
    _log_q_nb,
)
from trendgym.envs.lob.layout import STATUS, Book
from trendgym.envs.lob.rng import unit_nb


@njit(cache=True, _nrt=False)
def clear_book_nb(i, base, start_price, book, fstate, istate):
    """Empty env `i`'s book and flow state (as ``OrderBook.clear`` and a new ``OrderFlow``)."""
    orders, levels = book.orders, book.levels
    cap = orders.shape[1]
    for s in range(cap):
        o = orders[i, s]
        o.id = 0
        o.price = 0
        o.qty = 0
        o.hidden = 0
        o.peak = 0
        o.next = s + 1 if s + 1 < cap else -1
        o.prev = -1
        o.side = 0
        o.owner = 0
    for lv in range(levels.shape[1]):
        v = levels[i, lv]
        v.head = -1
        v.tail = -1
        v.qty = 0
        v.count = 0
    for h in range(book.keys.shape[1]):
        book.keys[i, h] = k.EMPTY_KEY
        book.slots[i, h] = -1
    meta = book.meta
    meta[i, :] = 0
    meta[i, k.FREE_HEAD] = 0
    meta[i, k.BASE] = base
    meta[i, k.UNINDEXED_BACKGROUND] = 1  # the flow cancels by slot: keep its orders unhashed
    book.owner_stats[i, :, :] = 0
    fstate[i, :] = 0.0
    istate[i, :] = 0
    istate[i, IS.next_id] = _FIRST_ID
    istate[i, IS.last_bid] = start_price - 1
    istate[i, IS.last_ask] = start_price + 1


@njit(cache=True, _nrt=False)
def draw_order_nb(r, cfg):
    """The parent order's side and quantity, each from its kwarg when given, else from the raw
    words r[0] and r[1]: the same draw in simulated and replay mode."""
    side = int(cfg[CFG.side]) if cfg[CFG.side] != 0 else (1 if unit_nb(r[0]) < 0.5 else -1)
    if cfg[CFG.quantity] > 0:
        return side, int(cfg[CFG.quantity])
    lo, hi = int(cfg[CFG.qty_lo]), int(cfg[CFG.qty_hi])
    return side, lo + int(unit_nb(r[1]) * (hi - lo + 1))


@njit(cache=True, _nrt=False)
def draw_episode_nb(i, raw, cfg, preset_params, ep, flow):
    """Env i's episode from eight raw words of its generator: side, quantity, preset, urgency
    (each drawn only when its kwarg is None) and the flow's xoshiro stream; returns the
    preset's initial depth. The informed drift is side × (preset drift + urgency × max_drift)."""
    r = raw[i]
    side, qty = draw_order_nb(r, cfg)
    n_presets = preset_params.shape[0]
    preset = int(cfg[CFG.preset]) if cfg[CFG.preset] >= 0 else int(unit_nb(r[2]) * n_presets)
    urgency = cfg[CFG.urgency] if cfg[CFG.urgency] >= 0 else unit_nb(r[3])
    ep.ei[i, EI.side] = side
    ep.ei[i, EI.qty] = qty
    ep.ei[i, EI.preset] = preset
    ep.ef[i, EF.urgency] = urgency
    params = flow.params
    copy_row_nb(params[i], preset_params[preset])  # the last column (depth) is not a param
    base_drift = abs(preset_params[preset, PARAM.drift])
    params[i, PARAM.drift] = side * min(0.9, base_drift + urgency * cfg[CFG.max_drift])
    zero = True
    for j in range(4):
        flow.rng[i, j] = r[4 + j]
        zero = zero and r[4 + j] == 0
    if zero:
        flow.rng[i, 0] = np.uint64(0x9E3779B97F4A7C15)
    return int(preset_params[preset, -1])  # the last column holds the initial depth


@njit(cache=True, _nrt=False)
def seed_book_nb(i, start_price, book, trades, flow, initial_depth):
    """As ``OrderFlow.seed_book``: `initial_depth` orders at each of the first MAX_DEPTH levels
    per side, bids first, geometric sizes from the flow's stream (drawn in message order)."""
    b, istate, rng = book, flow.istate, flow.rng[i]
    row = Book(b.orders[i], b.levels[i], b.keys[i], b.slots[i], b.meta[i], b.owner_stats[i])
    log_q = _log_q_nb(flow.params[i, PARAM.limit_size])
    for half in range(2):
        side = k.BUY if half == 0 else k.SELL
        for dist in range(1, MAX_DEPTH + 1):
            for _ in range(initial_depth):
                qty = _geometric_nb(rng, log_q)
                price = start_price - dist if side == k.BUY else start_price + dist
                oid = istate[i, IS.next_id]
                istate[i, IS.next_id] += 1
                k.limit_nb(row, trades[i], 0, oid, side, 0, price, qty, 0)
                row.meta[k.N_MESSAGES] += 1
    meta, levels = row.meta, row.levels
    bid, ask = meta[k.BEST_BID], meta[k.BEST_ASK]
    base = meta[k.BASE]
    istate[i, IS.prev_bid] = bid
    istate[i, IS.prev_bidq] = levels[bid - base].qty if bid > 0 else 0
    istate[i, IS.prev_ask] = ask
    istate[i, IS.prev_askq] = levels[ask - base].qty if ask > 0 else 0


@njit(cache=True, _nrt=False)
def warm_vol_bps_nb(mids_row, n_warm):
    """Per-step volatility of the warm-up, bps: the standard deviation of its log returns
    (population, as ``np.std``), floored at 0.1."""
    mean = 0.0
    for j in range(n_warm):
        mean += (math.log(mids_row[j + 1]) - math.log(mids_row[j])) * 1e4
    mean /= n_warm
    var = 0.0
    for j in range(n_warm):
        d = (math.log(mids_row[j + 1]) - math.log(mids_row[j])) * 1e4 - mean
        var += d * d
    return max(math.sqrt(var / n_warm), 0.1)


@njit(cache=True, _nrt=False)
def start_reset_nb(i, book, trades, flow, ep, preset_params, cfg):
    """Clear env `i`'s book, draw its episode, seed the book and start the warm-up; asks for
    a larger pool first when some preset's seeded book would not fit (nothing changed yet)."""
    initial_depth = int(preset_params[0, -1])
    for j in range(preset_params.shape[0]):
        initial_depth = max(initial_depth, int(preset_params[j, -1]))
    if book.orders.shape[1] <= 2 * MAX_DEPTH * initial_depth:
        return STATUS.need_slot
    start_price = int(cfg[CFG.start_price])
    base = max(1, start_price - book.levels.shape[1] // 2)
    clear_book_nb(i, base, start_price, book, flow.fstate, flow.istate)
    depth = draw_episode_nb(i, ep.nx_raw, cfg, preset_params, ep, flow)
    seed_book_nb(i, start_price, book, trades, flow, depth)
    k.top_of_book_nb(book.levels[i], book.meta[i], TOB_LEVELS, ep.tob[i])
    ep.mids[i, 0] = mid_nb(i, ep.tob, flow.istate)
    ep.ef[i, EF.warm_depth] = 0.0
    ep.ei[i, EI.warm_i] = 0
    ep.ef[i, EF.t_end] = flow.fstate[i, FS.time] + cfg[CFG.step_seconds]
    ep.ei[i, EI.phase] = PHASE.warm_flow
    return STATUS.done


@njit(cache=True, _nrt=False)
def warm_step_nb(i, book, flow, ep, cfg):
    """After one warm-up step of flow: record its mid and touch depth; after the last one,
    finish the reset."""
    ei, ef, tob = ep.ei, ep.ef, ep.tob
    k.top_of_book_nb(book.levels[i], book.meta[i], TOB_LEVELS, tob[i])
    w = ei[i, EI.warm_i] + 1
    ep.mids[i, w] = mid_nb(i, tob, flow.istate)
    ef[i, EF.warm_depth] += tob[i, TOB.bid_qty] + tob[i, TOB.ask_qty]
    ei[i, EI.warm_i] = w
    if w < int(cfg[CFG.n_warm]):
        ef[i, EF.t_end] = flow.fstate[i, FS.time] + cfg[CFG.step_seconds]
    else:
        finish_reset_nb(i, book, flow, ep, cfg)


@njit(cache=True, _nrt=False)
def finish_reset_nb(i, book, flow, ep, cfg):
    """The end of a reset, after the warm-up: its statistics (per-step volatility, touch depth,
    volume per step), the episode's counters, the arrival price and the first observation."""
    ei, ef, fstate = ep.ei, ep.ef, flow.fstate
    n_warm = int(cfg[CFG.n_warm])
    vol_bps = warm_vol_bps_nb(ep.mids[i], n_warm)
    ef[i, EF.touch_depth] = max(ef[i, EF.warm_depth] / (2 * n_warm), 1.0)
    ef[i, EF.step_volume] = fstate[i, FS.traded_qty] / n_warm
    fstate[i, FS.traded_qty] = 0.0
    fstate[i, FS.traded_value] = 0.0
    fstate[i, FS.ofi] = 0.0
    ef[i, EF.vol_bps] = vol_bps
    arrival = mid_nb(i, ep.tob, flow.istate)
    ef[i, EF.arrival] = arrival
    for col in (EI.t, EI.filled_end, EI.cash, EI.n_orders, EI.market_qty, EI.seen_qty):
        ei[i, col] = 0  # a cleared book: the agent has no orders and no fills yet
    ei[i, EI.seen_value] = 0
    ei[i, EI.remaining] = ei[i, EI.qty]
    ei[i, EI.next_id] = 1
    ei[i, EI.own_id] = k.EMPTY_KEY
    for col in (EF.fees, EF.shortfall, EF.market_value, EF.last_ofi):
        ef[i, col] = 0.0
    ef[i, EF.ewm_var] = vol_bps * vol_bps
    ef[i, EF.prev_mid] = arrival
    observation_nb(i, book, flow.istate, ep, int(cfg[CFG.horizon]))
    ei[i, EI.reset_done] = 1
    ei[i, EI.phase] = PHASE.idle
