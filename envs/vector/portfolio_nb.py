"""Batched Portfolio-v0 step: N portfolios over one dataset advanced by one parallel numba call.

Every sub-env is a row of the state arrays (start row, NAV, weights, episode accumulators).
Per env the step is exactly ``PortfolioEnv.step``: the single env's ``step_into_nb`` arithmetic
written out in one flat loop (``step_range_nb``: the same operations in the same order, indexed
straight into the batch arrays instead of through per-env slices), then the same NAV, reward and
episode-end arithmetic in the same order, so trajectories match the single env bit for bit (no
fastmath: no reassociation, no fused multiply-add). Tests hold the copy to the single env.

Resets happen inside the kernel from a pre-drawn next start row per env (``next_start``), drawn
one at a time from that env's own generator exactly as the single env draws it at ``reset()``,
so the Python side never loops over envs on an ordinary step.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from trendgym.envs.market.accounting import (
    ACTION_NAN,
    ACTION_OK,
    ACTION_OUT_OF_RANGE,
    ROW_IMPACT,
    ROW_RET_NEXT,
    ROW_TRADABLE,
    ROW_VOL,
)

LOG_FLOOR = 1e-12  # as PortfolioEnv: growth at or below this wipes NAV out (terminated)
DSR_MIN_VAR = 1e-12

# state columns of the float state array [N, N_FSTATE]
F_NAV, F_TURNOVER_SUM, F_COST_SUM, F_DSR_A, F_DSR_B = 0, 1, 2, 3, 4
N_FSTATE = 5
# state columns of the int state array [N, N_ISTATE]
I_T, I_END, I_K = 0, 1, 2
N_ISTATE = 3
# rows of the per-step outcome array [N_OUT, N]: what the Python side reads after a step
# (one contiguous row per quantity, so reading one for every env is a plain copy)
O_NAV, O_TURNOVER, O_COST, O_T, O_K, O_TURNOVER_SUM, O_COST_SUM, O_REWARD = 0, 1, 2, 3, 4, 5, 6, 7
N_OUT = 8
# rows of the bool episode-end array [2, N]
D_TERMINATED, D_TRUNCATED = 0, 1


@njit(cache=True)
def reset_one_nb(i, start, window, last, fstate, istate, weights, static_obs, obs):
    """Start env `i`'s episode at row `start` (NAV 1, all cash) and write its first observation."""
    istate[i, I_T] = start
    istate[i, I_END] = start + window if window > 0 else last
    istate[i, I_K] = 0
    fstate[i, F_NAV] = 1.0
    fstate[i, F_TURNOVER_SUM] = 0.0
    fstate[i, F_COST_SUM] = 0.0
    fstate[i, F_DSR_A] = 0.0
    fstate[i, F_DSR_B] = 0.0
    for j in range(weights.shape[1]):
        weights[i, j] = 0.0
    row = static_obs[start]
    for j in range(row.shape[0]):
        obs[i, j] = row[j]


@njit(cache=True)
def vector_reset_nb(mask, starts, window, last, fstate, istate, weights, static_obs, obs):
    """Reset the envs where `mask` is set to their `starts`; other rows are left untouched.

    One thread: resets are rare, and a prange region waits for every core.
    """
    for i in range(mask.shape[0]):
        if mask[i]:
            reset_one_nb(i, starts[i], window, last, fstate, istate, weights, static_obs, obs)


@njit(cache=True)
def differential_sharpe_nb(r, a, b, k, eta):
    """Moody & Saffell's differential Sharpe of return `r` from the moments `a`, `b` before it.

    Returns (reward, new a, new b); `k` is the episode length including this return.
    """
    da = r - a
    db = r * r - b
    var = b - a * a
    a_new = a + eta * da
    b_new = b + eta * db
    if k <= 1 or var <= DSR_MIN_VAR:
        return 0.0, a_new, b_new
    d = (b * da - 0.5 * a * db) / var**1.5
    return (d if np.isfinite(d) else 0.0), a_new, b_new


@njit(cache=True)
def step_range_nb(
    lo,
    hi,
    actions,
    reset_first,
    same_step,
    next_start,
    window,
    last,
    fstate,
    istate,
    weights,
    rets,
    market,
    avg_corr,
    prop_cost,
    max_leverage,
    target_vol,
    static_obs,
    n_features,
    weight_col,
    weight_clip,
    log_reward,
    dsr_eta,
    obs,
    final_obs,
    step_out,
    done,
):
    """Step (or next-step reset) envs `lo` to `hi` - 1, each exactly as ``PortfolioEnv.step``.

    One flat loop, on purpose: the single env's ``step_into_nb`` arithmetic (rebalance, then
    the observation of t+1) is written out here indexed straight into the batch arrays, because
    per-env slices and array-passing helper calls cost numba reference counts (atomic, and
    contended across threads) and call overhead that outweigh the arithmetic. The operations
    and their order are ``rebalance_nb``'s, so the bits are the same (tests hold them to it).

    Column `e` of `step_out` gets env e's NAV, turnover, cost, row t, episode length k, summed
    turnover and costs (before any same-step reset) and reward; column `e` of `done` whether
    its episode terminated, truncated. Returns how many episodes ended.
    """
    n = weights.shape[1]
    n_ended = 0
    for e in range(lo, hi):
        if reset_first[e]:
            reset_one_nb(e, next_start[e], window, last, fstate, istate, weights, static_obs, obs)
            step_out[O_NAV, e] = 1.0
            step_out[O_TURNOVER, e] = 0.0
            step_out[O_COST, e] = 0.0
            step_out[O_T, e] = istate[e, I_T]
            step_out[O_K, e] = 0.0
            step_out[O_TURNOVER_SUM, e] = 0.0
            step_out[O_COST_SUM, e] = 0.0
            step_out[O_REWARD, e] = 0.0
            done[D_TERMINATED, e] = False
            done[D_TRUNCATED, e] = False
            continue
        t = istate[e, I_T]
        # rebalance_nb: mask to tradable, vol-target, cap leverage, trade at t, earn t -> t+1
        gross_exposure = 0.0
        for i in range(n):
            if market[t, ROW_TRADABLE, i] != 0.0:
                gross_exposure += abs(np.float64(actions[e, i]))
        scale = 1.0
        if target_vol > 0.0:
            s1 = 0.0
            s2 = 0.0
            for i in range(n):
                if market[t, ROW_TRADABLE, i] != 0.0:
                    x = np.float64(actions[e, i]) * market[t, ROW_VOL, i]
                    s1 += x
                    s2 += x * x
            var = s2 + avg_corr[t] * (s1 * s1 - s2)
            if var > 0.0:
                scale = target_vol / np.sqrt(var)
        if gross_exposure * scale > max_leverage:
            scale = max_leverage / gross_exposure
        gross_return = 0.0
        cost = 0.0
        turnover = 0.0
        for i in range(n):
            w = np.float64(actions[e, i]) * scale if market[t, ROW_TRADABLE, i] != 0.0 else 0.0
            dw = abs(w - weights[e, i])
            turnover += dw
            cost += dw * (prop_cost[i] + market[t, ROW_IMPACT, i] * np.sqrt(dw))
            gross_return += w * market[t, ROW_RET_NEXT, i]
            weights[e, i] = w
        net = gross_return - cost
        growth = 1.0 + net
        for i in range(n):
            if market[t + 1, ROW_TRADABLE, i] != 0.0 and growth > 0.0:
                weights[e, i] = weights[e, i] * (1.0 + market[t, ROW_RET_NEXT, i]) / growth
            else:
                weights[e, i] = 0.0
        # the observation of t+1: static features, then the clipped drifted weights
        for j in range(static_obs.shape[1]):
            obs[e, j] = static_obs[t + 1, j]
        for i in range(n):
            obs[e, i * n_features + weight_col] = min(max(weights[e, i], -weight_clip), weight_clip)
        # PortfolioEnv.step's bookkeeping, in its order
        term = growth <= LOG_FLOOR
        nav = fstate[e, F_NAV] * growth if not term else 0.0
        fstate[e, F_NAV] = nav
        k = istate[e, I_K]
        rets[e, k] = net
        k += 1
        istate[e, I_K] = k
        turnover_sum = fstate[e, F_TURNOVER_SUM] + turnover
        cost_sum = fstate[e, F_COST_SUM] + cost
        fstate[e, F_TURNOVER_SUM] = turnover_sum
        fstate[e, F_COST_SUM] = cost_sum
        t += 1
        istate[e, I_T] = t
        if log_reward:
            reward = np.log(max(growth, LOG_FLOOR))
        else:
            reward, dsr_a, dsr_b = differential_sharpe_nb(
                net, fstate[e, F_DSR_A], fstate[e, F_DSR_B], k, dsr_eta
            )
            fstate[e, F_DSR_A] = dsr_a
            fstate[e, F_DSR_B] = dsr_b
        trunc = t >= istate[e, I_END] and not term
        step_out[O_NAV, e] = nav
        step_out[O_TURNOVER, e] = turnover
        step_out[O_COST, e] = cost
        step_out[O_T, e] = t
        step_out[O_K, e] = k
        step_out[O_TURNOVER_SUM, e] = turnover_sum
        step_out[O_COST_SUM, e] = cost_sum
        step_out[O_REWARD, e] = reward
        done[D_TERMINATED, e] = term
        done[D_TRUNCATED, e] = trunc
        if term or trunc:
            n_ended += 1
            if same_step:
                for j in range(obs.shape[1]):
                    final_obs[e, j] = obs[e, j]
                reset_one_nb(
                    e, next_start[e], window, last, fstate, istate, weights, static_obs, obs
                )
    return n_ended


@njit(cache=True)
def first_refused_nb(actions, reset_first, codes):
    """Check every action that will be used; the first refused env's index, or -1.

    Per env the code is ``check_action_nb``'s (NaN first, then outside [-1, 1]), computed
    without early exits so the check runs at vector speed over the batch.
    """
    for e in range(actions.shape[0]):
        nan = False
        outside = False
        for j in range(actions.shape[1]):
            a = actions[e, j]
            nan |= a != a
            outside |= (a < -1.0) | (a > 1.0)
        code = ACTION_NAN if nan else (ACTION_OUT_OF_RANGE if outside else ACTION_OK)
        codes[e] = ACTION_OK if reset_first[e] else code
    for e in range(actions.shape[0]):
        if codes[e] != ACTION_OK:
            return e
    return -1


@njit(cache=True, parallel=True)
def vector_step_nb(
    actions,
    reset_first,
    same_step,
    next_start,
    window,
    last,
    fstate,
    istate,
    weights,
    rets,
    market,
    avg_corr,
    prop_cost,
    max_leverage,
    target_vol,
    static_obs,
    n_features,
    weight_col,
    weight_clip,
    log_reward,
    dsr_eta,
    obs,
    final_obs,
    step_out,
    done,
    codes,
    n_chunks,
):
    """One step of every env, envs spread over all cores; how many episodes ended, or -1.

    All actions are checked before any state changes: if one is refused, nothing changes, the
    result is -1 and `codes` says which env and why (``check_action_nb``'s codes). Envs in
    `reset_first` (next-step autoreset) are reset to `next_start` instead of stepped: reward 0,
    not done, their action ignored. With `same_step`, an env whose episode ends writes its last
    observation to `final_obs` and is reset at once. Column `e` of `step_out` holds the
    step's outcome (rows ``O_*``), before any same-step reset. The envs go to the threads as
    `n_chunks` contiguous ranges, one ``step_range_nb`` call each.
    """
    if first_refused_nb(actions, reset_first, codes) >= 0:
        return -1
    n = actions.shape[0]
    n_chunks = max(1, min(n, n_chunks))
    n_ended = 0
    for c in prange(n_chunks):
        n_ended += step_range_nb(
            c * n // n_chunks, (c + 1) * n // n_chunks, actions, reset_first, same_step,
            next_start, window, last, fstate, istate, weights, rets, market, avg_corr, prop_cost,
            max_leverage, target_vol, static_obs, n_features, weight_col, weight_clip,
            log_reward, dsr_eta, obs, final_obs, step_out, done,
        )  # fmt: skip
    return n_ended


@njit(cache=True)
def vector_step_serial_nb(
    actions,
    reset_first,
    same_step,
    next_start,
    window,
    last,
    fstate,
    istate,
    weights,
    rets,
    market,
    avg_corr,
    prop_cost,
    max_leverage,
    target_vol,
    static_obs,
    n_features,
    weight_col,
    weight_clip,
    log_reward,
    dsr_eta,
    obs,
    final_obs,
    step_out,
    done,
    codes,
    n_chunks,
):
    """``vector_step_nb`` on one thread (`n_chunks` unused): for few envs or busy cores."""
    if first_refused_nb(actions, reset_first, codes) >= 0:
        return -1
    return step_range_nb(
        0, actions.shape[0], actions, reset_first, same_step, next_start, window, last, fstate,
        istate, weights, rets, market, avg_corr, prop_cost, max_leverage, target_vol,
        static_obs, n_features, weight_col, weight_clip, log_reward, dsr_eta, obs, final_obs,
        step_out, done,
    )  # fmt: skip
