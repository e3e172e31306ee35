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

A reset (``P_RESET``) seeds the book and runs the warm-up here too; only the warm-up's
volatility (``np.std`` of log returns, kept in numpy for bit equality) is left to Python
(``P_WARM_DONE``).
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
    P_LIMIT_SIZE,
    _geometric_nb,
    _log_q_nb,
    flow_run_nb,
)

AGENT = 1  # as ExecutionEnv
WAIT, MARKET_TYPE, N_ORDER_TYPES = 0, 5, 6
NEED_SLOT, NEED_TRADE_ROOM, STUCK = (
    k.NEED_SLOT,
    k.NEED_TRADE_ROOM,
    4,
)  # statuses besides DONE/NEED_WINDOW
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
) = range(14)
N_EF = 14
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
) = range(24)
N_EI = 24

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
    P_WARM_DONE,
) = range(15)

_LIMIT_OFFSETS = np.array(
    [0, -2, -1, 0, 1, 0], dtype=np.int64
)  # order type -> ticks from own touch


@njit(cache=True)
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
    owner_stats[i, :, :] = 0
    fstate[i, :] = 0.0
    istate[i, :] = 0
    istate[i, I_NEXT_ID] = _FIRST_ID
    istate[i, I_LAST_BID] = start_price - 1
    istate[i, I_LAST_ASK] = start_price + 1


@njit(cache=True)
def _mid_nb(i, tob, istate):
    bid = tob[i, 0] if tob[i, 0] != 0 else istate[i, I_LAST_BID]
    ask = tob[i, 1] if tob[i, 1] != 0 else istate[i, I_LAST_ASK]
    return 0.5 * float(bid + ask)


@njit(cache=True)
def _refresh_own_nb(i, orders, levels, keys, slots, meta, ei, own):
    if not k.order_state_nb(
        orders[i], levels[i], keys[i], slots[i], meta[i], ei[i, EI_OWN_ID], own[i]
    ):
        ei[i, EI_OWN_ID] = k.EMPTY_KEY


@njit(cache=True)
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


@njit(cache=True)
def _take_flow_nb(i, fstate, owner_stats, ei, ef, fee_bps):
    """What ``ExecutionEnv._run_flow`` does after the flow ran: volume, fills, OFI."""
    ei[i, EI_MARKET_QTY] += int(fstate[i, F_TRADED_QTY])
    ef[i, EF_MARKET_VALUE] += fstate[i, F_TRADED_VALUE]
    fstate[i, F_TRADED_QTY] = 0.0
    fstate[i, F_TRADED_VALUE] = 0.0
    _book_fills_nb(i, owner_stats, ei, ef, fee_bps)
    ef[i, EF_LAST_OFI] = fstate[i, F_OFI]
    fstate[i, F_OFI] = 0.0


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
def _cancel_own_msg_nb(i, msgs, ei, n):
    m = msgs[i, n]
    m.kind = k.CANCEL
    m.order_id = ei[i, EI_OWN_ID]
    ei[i, EI_OWN_ID] = k.EMPTY_KEY
    return n + 1


@njit(cache=True)
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


@njit(cache=True)
def _submit_nb(i, orders, levels, keys, slots, meta, owner_stats, trades, msgs, ei, ef, fee_bps):
    """As ``ExecutionEnv._submit`` without a pre-trade hook, resumable: DONE or the room needed."""
    n = ei[i, EI_N_MSGS]
    start = ei[i, EI_MSG_START]
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


@njit(cache=True)
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


@njit(cache=True)
def observation_nb(
    i, orders, levels, keys, slots, meta, istate, ei, ef, tob, own, horizon, obs_low, obs_high, obs
):
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
        v = obs[i, j]
        if v < obs_low[j]:
            v = obs_low[j]
        if v > obs_high[j]:
            v = obs_high[j]
        obs[i, j] = v


@njit(cache=True)
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


@njit(cache=True)
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
    nx_side,
    nx_qty,
    nx_urgency,
    nx_xrng,
    nx_params,
    initial_depth,
    same_step,
    horizon,
    step_seconds,
    latency,
    fee_bps,
    risk_aversion,
    n_warm,
    start_price,
    obs_low,
    obs_high,
):
    """Advance env `i` from its phase until its step (or reset) is done, or a book needs room.

    Returns DONE (0) or the need (NEED_WINDOW, NEED_SLOT, NEED_TRADE_ROOM) or STUCK."""
    while True:
        phase = ei[i, EI_PHASE]
        if phase == P_IDLE or phase == P_WARM_DONE:
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
                    ei[i, EI_PHASE] = P_WARM_DONE
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
            ei[i, EI_PHASE] = P_ACT_SUBMIT if n > 0 else P_FLOW_START
        elif phase == P_ACT_SUBMIT or phase == P_COMPLETE_SUBMIT:
            status = _submit_nb(
                i, orders, levels, keys, slots, meta, owner_stats, trades, msgs, ei, ef, fee_bps
            )
            if status != DONE:
                return status
            if phase == P_ACT_SUBMIT:
                ei[i, EI_PHASE] = P_FLOW_START
            elif ei[i, EI_REMAINING] != 0:
                ef[i, EF_T_END] = fstate[i, F_TIME] + 1.0
                ei[i, EI_PHASE] = P_COMPLETE_FLOW
            else:
                ei[i, EI_PHASE] = P_COMPLETE_MARKET
        elif phase == P_FLOW_START:
            ef[i, EF_T_END] = fstate[i, F_TIME] + (step_seconds - latency)
            ei[i, EI_PHASE] = P_FLOW
        elif phase == P_COMPLETE_CANCEL:
            # cancel_resting, then walk the book for the rest (a cancel never needs room)
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
            if risk_aversion > 0 and not terminated:
                left = ei[i, EI_REMAINING] / ei[i, EI_QTY]
                reward -= risk_aversion * (left * left) * math.sqrt(ef[i, EF_EWM_VAR])
            ef[i, EF_REWARD] = reward
            observation_nb(
                i,
                orders,
                levels,
                keys,
                slots,
                meta,
                istate,
                ei,
                ef,
                tob,
                own,
                horizon,
                obs_low,
                obs_high,
                obs,
            )
            if terminated:  # the summary reads these rows after a same-step reset
                final_ei[i, :] = ei[i, :]
                final_ef[i, :] = ef[i, :]
            if terminated and same_step:
                final_obs[i, :] = obs[i, :]
                ei[i, EI_PHASE] = P_RESET
            else:
                ei[i, EI_PHASE] = P_IDLE
        elif phase == P_RESET:
            if orders.shape[1] <= 2 * MAX_DEPTH * initial_depth[i]:
                return NEED_SLOT  # the seeded book must fit (checked before anything changes)
            # the pre-drawn episode (drawn from env i's generator as ExecutionEnv.reset draws)
            base = max(1, start_price - levels.shape[1] // 2)
            clear_book_nb(
                i, base, start_price, orders, levels, keys, slots, meta, owner_stats, fstate, istate
            )
            ei[i, EI_SIDE] = nx_side[i]
            ei[i, EI_QTY] = nx_qty[i]
            ef[i, EF_URGENCY] = nx_urgency[i]
            xrng[i, :] = nx_xrng[i, :]
            params[i, :] = nx_params[i, :]
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
                initial_depth[i],
            )
            k.top_of_book_nb(levels[i], meta[i], 5, tob[i])
            mids[i, 0] = _mid_nb(i, tob, istate)
            ef[i, EF_WARM_DEPTH] = 0.0
            ei[i, EI_WARM_I] = 0
            ef[i, EF_T_END] = fstate[i, F_TIME] + step_seconds
            ei[i, EI_PHASE] = P_WARM_FLOW
        else:
            return STUCK  # unreachable: an unknown phase


@njit(cache=True)
def finish_reset_nb(
    i,
    orders,
    levels,
    keys,
    slots,
    meta,
    owner_stats,
    fstate,
    istate,
    ei,
    ef,
    tob,
    own,
    vol_bps,
    touch_depth,
    horizon,
    obs_low,
    obs_high,
    obs,
):
    """The end of ``ExecutionEnv.reset`` after the warm-up statistics: episode counters, arrival
    price, and the first observation (book read again, as ``_observation()`` does)."""
    fstate[i, F_TRADED_QTY] = 0.0
    fstate[i, F_TRADED_VALUE] = 0.0
    fstate[i, F_OFI] = 0.0
    ef[i, EF_VOL_BPS] = vol_bps
    ef[i, EF_TOUCH_DEPTH] = touch_depth
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
    if ei[i, EI_SIDE] == 1:
        ei[i, EI_SEEN_QTY] = owner_stats[i, AGENT, k.BOUGHT_QTY]
        ei[i, EI_SEEN_VALUE] = owner_stats[i, AGENT, k.BOUGHT_VALUE]
    else:
        ei[i, EI_SEEN_QTY] = owner_stats[i, AGENT, k.SOLD_QTY]
        ei[i, EI_SEEN_VALUE] = owner_stats[i, AGENT, k.SOLD_VALUE]
    k.top_of_book_nb(levels[i], meta[i], 5, tob[i])
    observation_nb(
        i,
        orders,
        levels,
        keys,
        slots,
        meta,
        istate,
        ei,
        ef,
        tob,
        own,
        horizon,
        obs_low,
        obs_high,
        obs,
    )
    ei[i, EI_PHASE] = P_IDLE


@njit(cache=True, parallel=True)
def vector_run_nb(
    status,
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
    nx_side,
    nx_qty,
    nx_urgency,
    nx_xrng,
    nx_params,
    initial_depth,
    same_step,
    horizon,
    step_seconds,
    latency,
    fee_bps,
    risk_aversion,
    n_warm,
    start_price,
    obs_low,
    obs_high,
):
    """Advance every env whose phase is not idle (``step_env_nb``), envs spread over all cores;
    `status[i]` gets env i's outcome (DONE or the room its book needs)."""
    for i in prange(status.shape[0]):
        status[i] = step_env_nb(
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
            nx_side,
            nx_qty,
            nx_urgency,
            nx_xrng,
            nx_params,
            initial_depth,
            same_step,
            horizon,
            step_seconds,
            latency,
            fee_bps,
            risk_aversion,
            n_warm,
            start_price,
            obs_low,
            obs_high,
        )


@njit(cache=True)
def vector_run_serial_nb(
    status,
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
    nx_side,
    nx_qty,
    nx_urgency,
    nx_xrng,
    nx_params,
    initial_depth,
    same_step,
    horizon,
    step_seconds,
    latency,
    fee_bps,
    risk_aversion,
    n_warm,
    start_price,
    obs_low,
    obs_high,
):
    """``vector_run_nb`` on one thread (few envs, or cores busy with other work)."""
    for i in range(status.shape[0]):
        status[i] = step_env_nb(
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
            nx_side,
            nx_qty,
            nx_urgency,
            nx_xrng,
            nx_params,
            initial_depth,
            same_step,
            horizon,
            step_seconds,
            latency,
            fee_bps,
            risk_aversion,
            n_warm,
            start_price,
            obs_low,
            obs_high,
        )
