"""Batched Execution-v0 step: N order books, each a row of 2-D arrays, advanced by one numba call.

Per env the step is ``ExecutionEnv.step`` redone in numba with the same float operations in the
same order (no fastmath), on row views ``orders[i]``, ``levels[i]``, ... handed to the book's
own 1-D kernels (``process_nb``, ``flow_run_nb``, ``top_of_book_nb``, ``order_state_nb``), so
trajectories match the single env bit for bit.

A step is a small state machine (``EI_PHASE``): decide, latency flow, agent messages, flow,
forced completion, observation. A book kernel that runs out of room (pool, price window, trade
buffer) stops *before* drawing anything; the env then keeps its phase, the kernel returns the
need, Python grows the arrays of every env and calls again, and the env resumes where it
stopped. Array sizes therefore never change a trajectory.

A reset (``P_RESET``) draws the episode from eight raw words of the env's generator (side,
quantity, preset, urgency and the flow's stream), seeds the book, runs the warm-up and records
the arrival price here too, so an autoreset costs Python one ``random_raw(8)`` call.

The single ``ExecutionEnv`` runs this same kernel on one-row views of its book, so the two
cannot drift apart. It alone sets ``hooked``: the kernel then stops with ``NEED_HOOK`` before
every batch holding a new order or modify, lets Python's pre-trade hook rewrite it, and resumes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.flow import (
    _FIRST_ID,
    DONE,
    F_OFI,
    F_TIME,
    F_TRADED_QTY,
    F_TRADED_VALUE,
    I_LAST_ASK,
    I_LAST_BID,
    I_NEXT_ID,
    I_PREV_ASK,
    I_PREV_ASKQ,
    I_PREV_BID,
    I_PREV_BIDQ,
    MAX_DEPTH,
    NEED_WINDOW,
    P_DRIFT,
    P_LIMIT_SIZE,
    _geometric_nb,
    _log_q_nb,
    flow_run_nb,
)
from trendgym.envs.lob.rng import unit_nb
from trendgym.envs.prefetch import prefetch_nb

AGENT = 1  # owner tag of the agent's orders on the book
WAIT, MARKET_TYPE, N_ORDER_TYPES = 0, 5, 6
# statuses besides DONE/NEED_WINDOW; NEED_HOOK: a batch waits for the pre-trade hook
NEED_SLOT, NEED_TRADE_ROOM, STUCK, NEED_HOOK = k.NEED_SLOT, k.NEED_TRADE_ROOM, 4, 5
MAX_COMPLETION_SECONDS = 3600

# float state columns [N, N_EF]
(
    EF_ARRIVAL,
    EF_VOL_BPS,
    EF_TOUCH_DEPTH,
    EF_URGENCY,
    EF_SHORTFALL,
    EF_EWM_VAR,
    EF_PREV_MID,
    EF_MARKET_VALUE,
    EF_LAST_OFI,
    EF_FEES,
    EF_T_END,
    EF_FRACTION,
    EF_WARM_DEPTH,
    EF_REWARD,
    EF_STEP_VOLUME,
) = range(15)
N_EF = 15
# int state columns [N, N_EI]
(
    EI_SIDE,
    EI_QTY,
    EI_REMAINING,
    EI_FILLED_END,
    EI_CASH,
    EI_N_ORDERS,
    EI_NEXT_ID,
    EI_OWN_ID,
    EI_T,
    EI_MARKET_QTY,
    EI_SEEN_QTY,
    EI_SEEN_VALUE,
    EI_PHASE,
    EI_N_MSGS,
    EI_MSG_START,
    EI_N_TRADES,
    EI_ITER,
    EI_WARM_I,
    EI_ORDER_TYPE,
    EI_REPLACE,
    EI_REF_TOUCH,
    EI_NEED_LO,
    EI_NEED_HI,
    EI_TERMINATED,
    EI_PRESET,
    EI_HOOKED,
    EI_ACT_ONLY,
    EI_RESET_DONE,
    EI_HOOK_FIRST,
) = range(29)
N_EI = 29
MSG_SLOTS = 2  # messages one decision sends at most (a cancel, then a new order or modify)
# settings shared by every env [N_CFG]: the env's kwargs (None as -1 / 0: "draw it")
(
    C_HORIZON,
    C_STEP_SECONDS,
    C_LATENCY,
    C_FEE_BPS,
    C_RISK_AVERSION,
    C_N_WARM,
    C_START_PRICE,
    C_SIDE,
    C_QUANTITY,
    C_QTY_LO,
    C_QTY_HI,
    C_PRESET,
    C_URGENCY,
    C_MAX_DRIFT,
) = range(14)
N_CFG = 14
N_RAW = 8  # raw generator words an episode draw uses

# phases: where an env's step (or reset) stands; a need status leaves the phase unchanged
(
    P_IDLE,
    P_DECIDE,
    P_LAT_FLOW,
    P_ACT,
    P_ACT_SUBMIT,
    P_FLOW_START,
    P_FLOW,
    P_COMPLETE_CANCEL,
    P_COMPLETE_MARKET,
    P_COMPLETE_SUBMIT,
    P_COMPLETE_FLOW,
    P_FINISH,
    P_RESET,
    P_WARM_FLOW,
) = range(14)
FLOW_PHASES = (P_LAT_FLOW, P_FLOW, P_COMPLETE_FLOW, P_WARM_FLOW)


def needed_prices(
    ei_row: np.ndarray, meta_row: np.ndarray, istate_row: np.ndarray
) -> tuple[int, int]:
    """The prices a book that stopped with NEED_WINDOW must cover: around its quotes while
    the flow runs (as ``OrderFlow.run``), else the limit prices of the agent's batch."""
    if ei_row[EI_PHASE] in FLOW_PHASES:
        bid = int(meta_row[k.BEST_BID]) or int(istate_row[I_LAST_BID])
        ask = int(meta_row[k.BEST_ASK]) or int(istate_row[I_LAST_ASK])
        return min(bid, ask) - 4 * MAX_DEPTH, max(bid, ask) + 4 * MAX_DEPTH
    return int(ei_row[EI_NEED_LO]), int(ei_row[EI_NEED_HI])


def trade_room_needed(ei_row: np.ndarray, meta_row: np.ndarray) -> int:
    """Trade rows a book that stopped with NEED_TRADE_ROOM needs: what its batch already
    produced plus what one more message can."""
    return int(ei_row[EI_N_TRADES]) + int(k.trade_room_needed_nb(meta_row))


# observation bounds (ExecutionEnv's observation space): numba freezes them as constants
OBS_LOW = np.array([0, 0, 0, -1, -1, -10, -10, 0, 0, -10, 0, 0], dtype=np.float32)
OBS_HIGH = np.array([1, 1, 50, 1, 1, 10, 10, 100, 1, 10, 10, 1], dtype=np.float32)
_LIMIT_OFFSETS = np.array(
    [0, -2, -1, 0, 1, 0], dtype=np.int64
)  # order type -> ticks from own touch


@njit(cache=True, _nrt=False)
def clear_book_nb(
    i, base, start_price, orders, levels, keys, slots, meta, owner_stats, fstate, istate
):
    """Empty env `i`'s book and flow state (as ``OrderBook.clear`` + a new ``OrderFlow``)."""
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
    for h in range(keys.shape[1]):
        keys[i, h] = k.EMPTY_KEY
        slots[i, h] = -1
    meta[i, :] = 0
    meta[i, k.FREE_HEAD] = 0
    meta[i, k.BASE] = base
    meta[i, k.UNINDEXED_BACKGROUND] = 1  # the flow cancels by slot: keep its orders unhashed
    owner_stats[i, :, :] = 0
    fstate[i, :] = 0.0
    istate[i, :] = 0
    istate[i, I_NEXT_ID] = _FIRST_ID
    istate[i, I_LAST_BID] = start_price - 1
    istate[i, I_LAST_ASK] = start_price + 1


@njit(cache=True, _nrt=False)
def _mid_nb(i, tob, istate):
    bid = tob[i, 0] if tob[i, 0] != 0 else istate[i, I_LAST_BID]
    ask = tob[i, 1] if tob[i, 1] != 0 else istate[i, I_LAST_ASK]
    return 0.5 * float(bid + ask)


@njit(cache=True, _nrt=False)
def _refresh_own_nb(i, orders, levels, keys, slots, meta, ei, own):
    if not k.order_state_nb(
        orders[i], levels[i], keys[i], slots[i], meta[i], ei[i, EI_OWN_ID], own[i]
    ):
        ei[i, EI_OWN_ID] = k.EMPTY_KEY


@njit(cache=True, _nrt=False)
def _book_fills_nb(i, owner_stats, ei, ef, fee_bps):
    """As ``ExecutionEnv._book_fills``: new agent fills lower what remains, add cash and fees."""
    if ei[i, EI_SIDE] == 1:
        qty = owner_stats[i, AGENT, k.BOUGHT_QTY]
        value = owner_stats[i, AGENT, k.BOUGHT_VALUE]
    else:
        qty = owner_stats[i, AGENT, k.SOLD_QTY]
        value = owner_stats[i, AGENT, k.SOLD_VALUE]
    d_qty = qty - ei[i, EI_SEEN_QTY]
    d_value = value - ei[i, EI_SEEN_VALUE]
    if d_qty != 0:
        ei[i, EI_SEEN_QTY] = qty
        ei[i, EI_SEEN_VALUE] = value
        ei[i, EI_REMAINING] -= d_qty
        ei[i, EI_CASH] += d_value
        ef[i, EF_FEES] += float(d_value) * fee_bps * 1e-4


@njit(cache=True, _nrt=False)
def _take_flow_nb(i, fstate, owner_stats, ei, ef, fee_bps):
    """What ``ExecutionEnv._run_flow`` does after the flow ran: volume, fills, OFI."""
    ei[i, EI_MARKET_QTY] += int(fstate[i, F_TRADED_QTY])
    ef[i, EF_MARKET_VALUE] += fstate[i, F_TRADED_VALUE]
    fstate[i, F_TRADED_QTY] = 0.0
    fstate[i, F_TRADED_VALUE] = 0.0
    _book_fills_nb(i, owner_stats, ei, ef, fee_bps)
    ef[i, EF_LAST_OFI] = fstate[i, F_OFI]
    fstate[i, F_OFI] = 0.0


@njit(cache=True, _nrt=False)
def _flow_nb(
    i,
    orders,
    levels,
    keys,
    slots,
    meta,
    owner_stats,
    trades,
    xrng,
    params,
    fstate,
    istate,
    no_msgs,
    q_bid,
    q_ask,
    ef,
):
    """Run env `i`'s background flow up to ``ef[i, EF_T_END]``; DONE or the room it needs."""
    # earlier trades were already counted by the flow kernel: the buffer restarts at 0
    _, status, _ = flow_run_nb(
        orders[i],
        levels[i],
        keys[i],
        slots[i],
        meta[i],
        owner_stats[i],
        trades[i],
        0,
        xrng[i],
        params[i],
        fstate[i],
        istate[i],
        ef[i, EF_T_END],
        no_msgs,
        q_bid[i],
        q_ask[i],
    )
    return status


@njit(cache=True, _nrt=False)
def _new_msg_nb(i, msgs, ei, n, kind, price, qty):
    m = msgs[i, n]
    m.kind = kind
    m.side = ei[i, EI_SIDE]
    m.price = price
    m.qty = qty
    m.order_id = ei[i, EI_NEXT_ID]
    if kind == k.LIMIT:
        ei[i, EI_OWN_ID] = ei[i, EI_NEXT_ID]
    ei[i, EI_NEXT_ID] += 1
    return n + 1


@njit(cache=True, _nrt=False)
def _cancel_own_msg_nb(i, msgs, ei, n):
    m = msgs[i, n]
    m.kind = k.CANCEL
    m.order_id = ei[i, EI_OWN_ID]
    ei[i, EI_OWN_ID] = k.EMPTY_KEY
    return n + 1


@njit(cache=True, _nrt=False)
def _act_nb(i, orders, levels, keys, slots, meta, msgs, ei, ef, tob, own):
    """As ``ExecutionEnv._act``: the decoded action as at most two messages; returns how many."""
    _refresh_own_nb(i, orders, levels, keys, slots, meta, ei, own)
    resting = own[i, 0]
    order_type = ei[i, EI_ORDER_TYPE]
    fraction = ef[i, EF_FRACTION]
    replace = ei[i, EI_REPLACE] != 0
    side = ei[i, EI_SIDE]
    n = 0
    if order_type == WAIT:
        return 0
    if order_type == MARKET_TYPE:
        if replace and resting != 0:
            n = _cancel_own_msg_nb(i, msgs, ei, n)
            resting = 0
        qty = int(np.rint(fraction * (ei[i, EI_REMAINING] - resting)))
        if qty > 0:
            n = _new_msg_nb(i, msgs, ei, n, k.MARKET, 0, qty)
        return n
    ref_touch = ei[i, EI_REF_TOUCH]
    price = ref_touch + side * _LIMIT_OFFSETS[order_type]
    opposite = tob[i, 1] if side == 1 else tob[i, 0]
    if order_type == 4 and opposite != 0 and abs(opposite - ref_touch) <= 1:
        price = ref_touch  # no room inside a one-tick spread: join the touch
    price = max(price, 1)
    qty = int(np.rint(fraction * ei[i, EI_REMAINING]))
    if resting != 0 and own[i, 1] == price:
        if qty == 0:
            n = _cancel_own_msg_nb(i, msgs, ei, n)
        elif qty != resting:
            m = msgs[i, n]
            m.kind = k.MODIFY
            m.price = 0
            m.qty = qty
            m.order_id = ei[i, EI_OWN_ID]
            n += 1
    elif resting != 0 and not replace:
        return 0
    else:
        if resting != 0:
            n = _cancel_own_msg_nb(i, msgs, ei, n)
        if qty > 0:
            n = _new_msg_nb(i, msgs, ei, n, k.LIMIT, price, qty)
    return n


@njit(cache=True, _nrt=False)
def _submit_nb(i, orders, levels, keys, slots, meta, owner_stats, trades, msgs, ei, ef, fee_bps):
    """As ``ExecutionEnv._submit`` without a pre-trade hook, resumable: DONE or the room needed."""
    n = ei[i, EI_N_MSGS]
    start = ei[i, EI_MSG_START]
    if n == 0:
        return DONE
    if start == 0:
        # the book covers the limit prices before the batch (as OrderBook.process)
        base = meta[i, k.BASE]
        lo, hi = k.MAX_TICK, 0
        for j in range(n):
            if msgs[i, j].kind == k.LIMIT:
                lo = min(lo, msgs[i, j].price)
                hi = max(hi, msgs[i, j].price)
        if hi > 0 and (lo < base or hi >= base + levels.shape[1]):
            ei[i, EI_NEED_LO] = lo
            ei[i, EI_NEED_HI] = hi
            return NEED_WINDOW
    n_trades, start, outcome = k.process_nb(
        msgs[i, :n],
        start,
        orders[i],
        levels[i],
        keys[i],
        slots[i],
        meta[i],
        owner_stats[i],
        trades[i],
        ei[i, EI_N_TRADES],
        False,
        False,
    )
    ei[i, EI_N_TRADES] = n_trades
    ei[i, EI_MSG_START] = start
    if outcome != k.APPLIED:
        return outcome
    for j in range(n):
        kind = msgs[i, j].kind
        if kind == k.LIMIT or kind == k.MARKET:
            ei[i, EI_N_ORDERS] += 1
    if n_trades > 0:
        qty = 0
        value = 0
        for j in range(n_trades):
            qty += trades[i, j].qty
            value += trades[i, j].price * trades[i, j].qty
        ei[i, EI_MARKET_QTY] += qty
        ef[i, EF_MARKET_VALUE] += float(value)
    _book_fills_nb(i, owner_stats, ei, ef, fee_bps)
    ei[i, EI_N_TRADES] = 0
    ei[i, EI_MSG_START] = 0
    ei[i, EI_N_MSGS] = 0
    return DONE


@njit(cache=True, _nrt=False)
def shortfall_bps_nb(i, ei, ef, mid):
    """As ``ExecutionEnv._shortfall_bps``: running implementation shortfall, bps."""
    side = ei[i, EI_SIDE]
    quantity = ei[i, EI_QTY]
    remaining = ei[i, EI_REMAINING]
    filled = quantity - remaining
    arrival = ef[i, EF_ARRIVAL]
    cost = side * (ei[i, EI_CASH] - filled * arrival) + ef[i, EF_FEES]
    cost += side * (mid - arrival) * remaining
    return cost / (quantity * arrival) * 1e4


@njit(cache=True, _nrt=False)
def observation_nb(i, orders, levels, keys, slots, meta, istate, ei, ef, tob, own, horizon, obs):
    """As ``ExecutionEnv._observation(read=False)``: row `i` of `obs` from the last book read."""
    _refresh_own_nb(i, orders, levels, keys, slots, meta, ei, own)
    bid, ask, bq1, aq1, bq5, aq5 = tob[i, 0], tob[i, 1], tob[i, 2], tob[i, 3], tob[i, 4], tob[i, 5]
    side = ei[i, EI_SIDE]
    spread = float(ask - bid) if bid != 0 and ask != 0 else 0.0
    imb1 = side * (bq1 - aq1) / (bq1 + aq1) if bq1 + aq1 > 0 else 0.0
    imb5 = side * (bq5 - aq5) / (bq5 + aq5) if bq5 + aq5 > 0 else 0.0
    mid = _mid_nb(i, tob, istate)
    ewm_var = ef[i, EF_EWM_VAR]
    vol_bps = math.sqrt(ewm_var)
    move = side * math.log(mid / ef[i, EF_ARRIVAL]) * 1e4 / ef[i, EF_VOL_BPS]
    own_qty, own_price, ahead = own[i, 0], own[i, 1], own[i, 2]
    touch = bid if side == 1 else ask
    distance = float(side * (own_price - touch)) if own_qty != 0 and touch != 0 else 0.0
    quantity = ei[i, EI_QTY]
    depth = ef[i, EF_TOUCH_DEPTH]
    obs[i, 0] = np.float32(1.0 - ei[i, EI_T] / horizon)
    obs[i, 1] = np.float32(ei[i, EI_REMAINING] / quantity)
    obs[i, 2] = np.float32(spread)
    obs[i, 3] = np.float32(imb1)
    obs[i, 4] = np.float32(imb5)
    obs[i, 5] = np.float32(side * ef[i, EF_LAST_OFI] / depth)
    obs[i, 6] = np.float32(move)
    obs[i, 7] = np.float32(vol_bps)
    obs[i, 8] = np.float32(own_qty / quantity)
    obs[i, 9] = np.float32(distance)
    obs[i, 10] = np.float32(ahead / depth)
    obs[i, 11] = np.float32(ef[i, EF_URGENCY])
    for j in range(obs.shape[1]):
        obs[i, j] = min(max(obs[i, j], OBS_LOW[j]), OBS_HIGH[j])


@njit(cache=True, _nrt=False)
def _seed_book_nb(
    i,
    start_price,
    orders,
    levels,
    keys,
    slots,
    meta,
    owner_stats,
    trades,
    xrng,
    params,
    istate,
    initial_depth,
):
    """As ``OrderFlow.seed_book``: `initial_depth` orders at each of the first MAX_DEPTH levels
    per side, bids first, geometric sizes from the flow's stream (drawn in message order)."""
    log_q = _log_q_nb(params[i, P_LIMIT_SIZE])
    for half in range(2):
        side = k.BUY if half == 0 else k.SELL
        for dist in range(1, MAX_DEPTH + 1):
            for _ in range(initial_depth):
                qty = _geometric_nb(xrng[i], log_q)
                price = start_price - dist if side == k.BUY else start_price + dist
                oid = istate[i, I_NEXT_ID]
                istate[i, I_NEXT_ID] += 1
                k.limit_nb(
                    orders[i],
                    levels[i],
                    keys[i],
                    slots[i],
                    meta[i],
                    owner_stats[i],
                    trades[i],
                    0,
                    oid,
                    side,
                    0,
                    price,
                    qty,
                    0,
                )
                meta[i, k.N_MESSAGES] += 1
    bid, ask = meta[i, k.BEST_BID], meta[i, k.BEST_ASK]
    base = meta[i, k.BASE]
    istate[i, I_PREV_BID] = bid
    istate[i, I_PREV_BIDQ] = levels[i, bid - base].qty if bid > 0 else 0
    istate[i, I_PREV_ASK] = ask
    istate[i, I_PREV_ASKQ] = levels[i, ask - base].qty if ask > 0 else 0


@njit(cache=True, _nrt=False)
def _copy_row_nb(dst, src):
    """dst[:] = src[:dst.size], element by element (slice copies need numba's runtime)."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@njit(cache=True, _nrt=False)
def first_disallowed_nb(proposed, allowed):
    """Index of the first message a pre-trade hook returned that is not one of the proposed
    orders dropped, shrunk, or (a limit) made more passive; -1 when all of them are."""
    for i in range(allowed.shape[0]):
        a = allowed[i]
        ok = False
        for j in range(proposed.shape[0]):
            p = proposed[j]
            if p.order_id == a.order_id:
                same = (
                    p.kind == a.kind
                    and p.side == a.side
                    and p.owner == a.owner
                    and p.peak == a.peak
                )
                passive = a.price == p.price or (
                    p.kind == k.LIMIT and a.price > 0 and (a.price - p.price) * p.side < 0
                )
                ok = same and passive and 0 < a.qty <= p.qty
                break
        if not ok:
            return i
    return -1


@njit(cache=True, _nrt=False)
def _copy_msg_nb(dst, src):
    dst.kind, dst.side, dst.owner, dst.price = src.kind, src.side, src.owner, src.price
    dst.qty, dst.order_id, dst.peak = src.qty, src.order_id, src.peak


@njit(cache=True, _nrt=False)
def accept_hooked_nb(msgs, ei, allowed):
    """Put what env 0's pre-trade hook `allowed` in place of the proposed new orders and
    modifies, if it only dropped, shrank or made them more passive (checked against the copy
    the kernel kept); returns -1, or the index of the first message that breaks this."""
    first, n = ei[0, EI_HOOK_FIRST], ei[0, EI_N_MSGS]
    proposed = msgs[0, MSG_SLOTS + first : MSG_SLOTS + n]
    bad = first_disallowed_nb(proposed, allowed)
    if bad >= 0:
        return bad
    m = allowed.shape[0]
    if m > n - first:  # an order repeated
        return n - first
    for j in range(m):  # through the copy's slots: `allowed` may be a view of the batch
        _copy_msg_nb(msgs[0, MSG_SLOTS + first + j], allowed[j])
    for j in range(m):
        _copy_msg_nb(msgs[0, first + j], msgs[0, MSG_SLOTS + first + j])
    ei[0, EI_N_MSGS] = first + m
    return -1


@njit(cache=True, _nrt=False)
def draw_episode_nb(i, raw, cfg, preset_params, ei, ef, xrng, params):
    """Env i's episode from eight raw words of its generator: side, quantity, preset, urgency
    (each drawn only when its kwarg is None) and the flow's xoshiro stream; returns the
    preset's initial depth. The informed drift is side × (preset drift + urgency × max_drift)."""
    r = raw[i]
    side = int(cfg[C_SIDE]) if cfg[C_SIDE] != 0 else (1 if unit_nb(r[0]) < 0.5 else -1)
    if cfg[C_QUANTITY] > 0:
        qty = int(cfg[C_QUANTITY])
    else:
        lo, hi = int(cfg[C_QTY_LO]), int(cfg[C_QTY_HI])
        qty = lo + int(unit_nb(r[1]) * (hi - lo + 1))
    n_presets = preset_params.shape[0]
    preset = int(cfg[C_PRESET]) if cfg[C_PRESET] >= 0 else int(unit_nb(r[2]) * n_presets)
    urgency = cfg[C_URGENCY] if cfg[C_URGENCY] >= 0 else unit_nb(r[3])
    ei[i, EI_SIDE] = side
    ei[i, EI_QTY] = qty
    ei[i, EI_PRESET] = preset
    ef[i, EF_URGENCY] = urgency
    _copy_row_nb(params[i], preset_params[preset])  # the last column (depth) is not a param
    base_drift = abs(preset_params[preset, P_DRIFT])
    params[i, P_DRIFT] = side * min(0.9, base_drift + urgency * cfg[C_MAX_DRIFT])
    zero = True
    for j in range(4):
        xrng[i, j] = r[4 + j]
        zero = zero and r[4 + j] == 0
    if zero:
        xrng[i, 0] = np.uint64(0x9E3779B97F4A7C15)
    return int(preset_params[preset, -1])  # the last column holds the initial depth


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
def step_env_nb(
    i,
    actions,
    orders,
    levels,
    keys,
    slots,
    meta,
    owner_stats,
    trades,
    xrng,
    params,
    fstate,
    istate,
    no_msgs,
    q_bid,
    q_ask,
    msgs,
    ei,
    ef,
    tob,
    own,
    mids,
    obs,
    final_obs,
    final_ei,
    final_ef,
    nx_raw,
    preset_params,
    cfg,
    same_step,
    hooked,
):
    """Advance env `i` from its phase until its step (or reset) is done, or a book needs room.

    Returns DONE (0), the need (NEED_WINDOW, NEED_SLOT, NEED_TRADE_ROOM), NEED_HOOK (only when
    `hooked`) or STUCK."""
    horizon = int(cfg[C_HORIZON])
    step_seconds = cfg[C_STEP_SECONDS]
    latency = cfg[C_LATENCY]
    fee_bps = cfg[C_FEE_BPS]
    n_warm = int(cfg[C_N_WARM])
    start_price = int(cfg[C_START_PRICE])
    while True:
        phase = ei[i, EI_PHASE]
        if phase == P_IDLE:
            return DONE
        if phase == P_DECIDE:
            a0 = float(actions[i, 0])
            a1 = float(actions[i, 1])
            a2 = float(actions[i, 2])
            ei[i, EI_ORDER_TYPE] = min(int((a0 + 1.0) * 0.5 * N_ORDER_TYPES), N_ORDER_TYPES - 1)
            ef[i, EF_FRACTION] = (a1 + 1.0) * 0.5
            ei[i, EI_REPLACE] = 1 if a2 > 0 else 0
            # the quotes the agent saw when deciding (the last observation's)
            if ei[i, EI_SIDE] == 1:
                ei[i, EI_REF_TOUCH] = tob[i, 0] if tob[i, 0] != 0 else istate[i, I_LAST_BID]
            else:
                ei[i, EI_REF_TOUCH] = tob[i, 1] if tob[i, 1] != 0 else istate[i, I_LAST_ASK]
            ei[i, EI_TERMINATED] = 0
            if latency > 0:
                ef[i, EF_T_END] = fstate[i, F_TIME] + latency
                ei[i, EI_PHASE] = P_LAT_FLOW
            else:
                ei[i, EI_PHASE] = P_ACT
        elif (
            phase == P_LAT_FLOW
            or phase == P_FLOW
            or phase == P_COMPLETE_FLOW
            or phase == P_WARM_FLOW
        ):
            status = _flow_nb(
                i,
                orders,
                levels,
                keys,
                slots,
                meta,
                owner_stats,
                trades,
                xrng,
                params,
                fstate,
                istate,
                no_msgs,
                q_bid,
                q_ask,
                ef,
            )
            if status != DONE:
                return status
            if phase == P_WARM_FLOW:
                k.top_of_book_nb(levels[i], meta[i], 5, tob[i])
                w = ei[i, EI_WARM_I] + 1
                mids[i, w] = _mid_nb(i, tob, istate)
                ef[i, EF_WARM_DEPTH] += tob[i, 2] + tob[i, 3]
                ei[i, EI_WARM_I] = w
                if w < n_warm:
                    ef[i, EF_T_END] = fstate[i, F_TIME] + step_seconds
                else:
                    _finish_reset_nb(
                        i, orders, levels, keys, slots, meta, owner_stats, fstate, istate,
                        ei, ef, tob, own, mids, obs, horizon, n_warm,
                    )  # fmt: skip
                continue
            _take_flow_nb(i, fstate, owner_stats, ei, ef, fee_bps)
            if phase == P_LAT_FLOW:
                ei[i, EI_PHASE] = P_ACT
            elif phase == P_COMPLETE_FLOW:
                ei[i, EI_PHASE] = P_COMPLETE_MARKET
            else:
                ei[i, EI_T] += 1
                if ei[i, EI_T] >= horizon:
                    ei[i, EI_TERMINATED] = 1
                    ei[i, EI_FILLED_END] = ei[i, EI_QTY] - ei[i, EI_REMAINING]
                    ei[i, EI_PHASE] = P_COMPLETE_CANCEL
                else:
                    ei[i, EI_PHASE] = P_FINISH
        elif phase == P_ACT:
            n = _act_nb(i, orders, levels, keys, slots, meta, msgs, ei, ef, tob, own)
            ei[i, EI_N_MSGS] = n
            ei[i, EI_MSG_START] = 0
            ei[i, EI_N_TRADES] = 0
            if n > 0:
                ei[i, EI_PHASE] = P_ACT_SUBMIT
            elif ei[i, EI_ACT_ONLY] != 0:
                ei[i, EI_PHASE] = P_IDLE
            else:
                ei[i, EI_PHASE] = P_FLOW_START
        elif phase == P_ACT_SUBMIT or phase == P_COMPLETE_SUBMIT:
            if hooked and ei[i, EI_HOOKED] == 0:
                # a cancel (always first, if any) needs no check: hook only new orders/modifies
                n = ei[i, EI_N_MSGS]
                first = 1 if msgs[i, 0].kind == k.CANCEL else 0
                if n > first:
                    for j in range(n):  # the copy the hook's answer is checked against
                        _copy_msg_nb(msgs[i, MSG_SLOTS + j], msgs[i, j])
                    ei[i, EI_HOOK_FIRST] = first
                    ei[i, EI_HOOKED] = 1
                    return NEED_HOOK
            reached = ei[i, EI_N_MSGS] > 0  # zero only when the hook dropped the whole batch
            status = _submit_nb(
                i, orders, levels, keys, slots, meta, owner_stats, trades, msgs, ei, ef, fee_bps
            )
            if status != DONE:
                return status
            ei[i, EI_HOOKED] = 0
            ei[i, EI_N_MSGS] = 0
            if phase == P_ACT_SUBMIT:
                ei[i, EI_PHASE] = P_IDLE if ei[i, EI_ACT_ONLY] != 0 else P_FLOW_START
            elif not reached:  # compliance held the completion back: mark the rest at the mid
                ei[i, EI_PHASE] = P_FINISH
            elif ei[i, EI_REMAINING] != 0:
                ef[i, EF_T_END] = fstate[i, F_TIME] + 1.0
                ei[i, EI_PHASE] = P_COMPLETE_FLOW
            else:
                ei[i, EI_PHASE] = P_COMPLETE_MARKET
        elif phase == P_FLOW_START:
            ef[i, EF_T_END] = fstate[i, F_TIME] + (step_seconds - latency)
            ei[i, EI_PHASE] = P_FLOW
        elif phase == P_COMPLETE_CANCEL:
            # cancel the resting child, then walk the book for the rest (a cancel never needs room)
            _refresh_own_nb(i, orders, levels, keys, slots, meta, ei, own)
            ei[i, EI_ITER] = 0
            ei[i, EI_PHASE] = P_COMPLETE_MARKET
            if own[i, 0] != 0:
                ei[i, EI_N_MSGS] = _cancel_own_msg_nb(i, msgs, ei, 0)
                ei[i, EI_MSG_START] = 0
                ei[i, EI_N_TRADES] = 0
                _submit_nb(
                    i, orders, levels, keys, slots, meta, owner_stats, trades, msgs, ei, ef, fee_bps
                )
                ei[i, EI_N_MSGS] = 0
        elif phase == P_COMPLETE_MARKET:
            if ei[i, EI_REMAINING] == 0:
                ei[i, EI_PHASE] = P_FINISH
                continue
            if ei[i, EI_ITER] >= MAX_COMPLETION_SECONDS:
                return STUCK
            ei[i, EI_ITER] += 1
            ei[i, EI_N_MSGS] = _new_msg_nb(i, msgs, ei, 0, k.MARKET, 0, ei[i, EI_REMAINING])
            ei[i, EI_MSG_START] = 0
            ei[i, EI_N_TRADES] = 0
            ei[i, EI_PHASE] = P_COMPLETE_SUBMIT
        elif phase == P_FINISH:
            k.top_of_book_nb(levels[i], meta[i], 5, tob[i])
            mid = _mid_nb(i, tob, istate)
            step_ret = math.log(mid / ef[i, EF_PREV_MID]) * 1e4
            ef[i, EF_EWM_VAR] = 0.9 * ef[i, EF_EWM_VAR] + 0.1 * step_ret * step_ret
            ef[i, EF_PREV_MID] = mid
            shortfall = shortfall_bps_nb(i, ei, ef, mid)
            reward = -(shortfall - ef[i, EF_SHORTFALL])
            ef[i, EF_SHORTFALL] = shortfall
            terminated = ei[i, EI_TERMINATED] != 0
            risk_aversion = cfg[C_RISK_AVERSION]
            if risk_aversion > 0 and not terminated:
                left = ei[i, EI_REMAINING] / ei[i, EI_QTY]
                reward -= risk_aversion * (left * left) * math.sqrt(ef[i, EF_EWM_VAR])
            ef[i, EF_REWARD] = reward
            observation_nb(
                i, orders, levels, keys, slots, meta, istate, ei, ef, tob, own, horizon, obs
            )
            if terminated:  # the summary reads these rows after a same-step reset
                _copy_row_nb(final_ei[i], ei[i])
                _copy_row_nb(final_ef[i], ef[i])
            if terminated and same_step:
                _copy_row_nb(final_obs[i], obs[i])
                ei[i, EI_PHASE] = P_RESET
            else:
                ei[i, EI_PHASE] = P_IDLE
        elif phase == P_RESET:
            initial_depth = int(preset_params[0, -1])
            for j in range(preset_params.shape[0]):
                initial_depth = max(initial_depth, int(preset_params[j, -1]))
            if orders.shape[1] <= 2 * MAX_DEPTH * initial_depth:
                return (
                    NEED_SLOT  # any preset's seeded book must fit (checked before anything changes)
                )
            base = max(1, start_price - levels.shape[1] // 2)
            clear_book_nb(
                i, base, start_price, orders, levels, keys, slots, meta, owner_stats, fstate, istate
            )
            depth = draw_episode_nb(i, nx_raw, cfg, preset_params, ei, ef, xrng, params)
            _seed_book_nb(
                i,
                start_price,
                orders,
                levels,
                keys,
                slots,
                meta,
                owner_stats,
                trades,
                xrng,
                params,
                istate,
                depth,
            )
            k.top_of_book_nb(levels[i], meta[i], 5, tob[i])
            mids[i, 0] = _mid_nb(i, tob, istate)
            ef[i, EF_WARM_DEPTH] = 0.0
            ei[i, EI_WARM_I] = 0
            ef[i, EF_T_END] = fstate[i, F_TIME] + step_seconds
            ei[i, EI_PHASE] = P_WARM_FLOW
        else:
            return STUCK  # unreachable: an unknown phase


@njit(cache=True, _nrt=False)
def _finish_reset_nb(
    i, orders, levels, keys, slots, meta, owner_stats, fstate, istate, ei, ef, tob, own, mids,
    obs, horizon, n_warm,
):  # fmt: skip
    """The end of a reset, after the warm-up: its statistics (per-step volatility, touch depth,
    volume per step), the episode's counters, the arrival price and the first observation."""
    vol_bps = warm_vol_bps_nb(mids[i], n_warm)
    ef[i, EF_TOUCH_DEPTH] = max(ef[i, EF_WARM_DEPTH] / (2 * n_warm), 1.0)
    ef[i, EF_STEP_VOLUME] = fstate[i, F_TRADED_QTY] / n_warm
    fstate[i, F_TRADED_QTY] = 0.0
    fstate[i, F_TRADED_VALUE] = 0.0
    fstate[i, F_OFI] = 0.0
    ef[i, EF_VOL_BPS] = vol_bps
    arrival = _mid_nb(i, tob, istate)
    ef[i, EF_ARRIVAL] = arrival
    ei[i, EI_T] = 0
    ei[i, EI_REMAINING] = ei[i, EI_QTY]
    ei[i, EI_FILLED_END] = 0
    ei[i, EI_CASH] = 0
    ef[i, EF_FEES] = 0.0
    ei[i, EI_N_ORDERS] = 0
    ei[i, EI_NEXT_ID] = 1
    ei[i, EI_OWN_ID] = k.EMPTY_KEY
    ef[i, EF_SHORTFALL] = 0.0
    ef[i, EF_EWM_VAR] = vol_bps * vol_bps
    ef[i, EF_PREV_MID] = arrival
    ef[i, EF_MARKET_VALUE] = 0.0
    ei[i, EI_MARKET_QTY] = 0
    ef[i, EF_LAST_OFI] = 0.0
    ei[i, EI_SEEN_QTY] = 0  # a cleared book: the agent has no fills yet
    ei[i, EI_SEEN_VALUE] = 0
    observation_nb(i, orders, levels, keys, slots, meta, istate, ei, ef, tob, own, horizon, obs)
    ei[i, EI_RESET_DONE] = 1
    ei[i, EI_PHASE] = P_IDLE


@njit(cache=True, _nrt=False, inline="always")
def _prefetch_env_nb(j, orders, levels, meta, fstate, istate, params, ei, ef):
    """Hint env j's book into the cache before its turn: every pool slot (the live orders
    are scattered through the pool), the price levels around its quotes, and its state rows."""
    for s in range(orders.shape[1]):
        prefetch_nb(orders, j, s)
    base = meta[j, k.BASE]
    bid = meta[j, k.BEST_BID] if meta[j, k.BEST_BID] > 0 else istate[j, I_LAST_BID]
    ask = meta[j, k.BEST_ASK] if meta[j, k.BEST_ASK] > 0 else istate[j, I_LAST_ASK]
    lo = max(0, bid - base - 2 * MAX_DEPTH)
    hi = min(levels.shape[1], ask - base + 2 * MAX_DEPTH + 1)
    for lv in range(lo, hi, 2):  # two 32-byte levels per cache line
        prefetch_nb(levels, j, lv)
    for row in (fstate, params, ef):
        prefetch_nb(row, j, 0)
    prefetch_nb(ei, j, 0)


@njit(cache=True, parallel=True, _nrt=False)
def vector_run_nb(
    status, actions, orders, levels, keys, slots, meta, owner_stats, trades, xrng, params,
    fstate, istate, no_msgs, q_bid, q_ask, msgs, ei, ef, tob, own, mids, obs, final_obs,
    final_ei, final_ef, nx_raw, preset_params, cfg, same_step,
):  # fmt: skip
    """Advance every env whose phase is not idle (``step_env_nb``), envs spread over all cores;
    `status[i]` gets env i's outcome (DONE or the room its book needs)."""
    n = status.shape[0]
    for i in prange(n):
        if i + 1 < n:
            _prefetch_env_nb(i + 1, orders, levels, meta, fstate, istate, params, ei, ef)
        status[i] = step_env_nb(
            i, actions, orders, levels, keys, slots, meta, owner_stats, trades, xrng, params,
            fstate, istate, no_msgs, q_bid, q_ask, msgs, ei, ef, tob, own, mids, obs, final_obs,
            final_ei, final_ef, nx_raw, preset_params, cfg, same_step, False,
        )  # fmt: skip


@njit(cache=True, _nrt=False)
def vector_run_serial_nb(
    status, actions, orders, levels, keys, slots, meta, owner_stats, trades, xrng, params,
    fstate, istate, no_msgs, q_bid, q_ask, msgs, ei, ef, tob, own, mids, obs, final_obs,
    final_ei, final_ef, nx_raw, preset_params, cfg, same_step,
):  # fmt: skip
    """``vector_run_nb`` on one thread (few envs, or cores busy with other work)."""
    n = status.shape[0]
    for i in range(n):
        if i + 1 < n:
            _prefetch_env_nb(i + 1, orders, levels, meta, fstate, istate, params, ei, ef)
        status[i] = step_env_nb(
            i, actions, orders, levels, keys, slots, meta, owner_stats, trades, xrng, params,
            fstate, istate, no_msgs, q_bid, q_ask, msgs, ei, ef, tob, own, mids, obs, final_obs,
            final_ei, final_ef, nx_raw, preset_params, cfg, same_step, False,
        )  # fmt: skip
