"""Batched Portfolio-v0 step: N portfolios over one dataset advanced by one parallel numba call.

Every sub-env is a row of the state arrays (start row, NAV, weights, episode accumulators).
Per env the step is exactly ``PortfolioEnv.step``: the shared ``step_into_nb`` core, then the
same NAV, reward and episode-end arithmetic in the same order, so trajectories match the single
env bit for bit (no fastmath: no reassociation, no fused multiply-add).

Resets happen inside the kernel from a pre-drawn next start row per env (``next_start``), drawn
one at a time from that env's own generator exactly as the single env draws it at ``reset()``,
so the Python side never loops over envs on an ordinary step.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from trendgym.envs.market.accounting import ACTION_OK, check_action_nb, step_into_nb

LOG_FLOOR = 1e-12  # as PortfolioEnv: growth at or below this wipes NAV out (terminated)
DSR_MIN_VAR = 1e-12

# state columns of the float state array [N, N_FSTATE]
F_NAV, F_TURNOVER_SUM, F_COST_SUM, F_DSR_A, F_DSR_B = 0, 1, 2, 3, 4
N_FSTATE = 5
# state columns of the int state array [N, N_ISTATE]
I_T, I_END, I_K = 0, 1, 2
N_ISTATE = 3


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
def differential_sharpe_nb(r, i, fstate, k, eta):
    """Moody & Saffell's differential Sharpe of return `r`, from env `i`'s moments before it."""
    a = fstate[i, F_DSR_A]
    b = fstate[i, F_DSR_B]
    da = r - a
    db = r * r - b
    fstate[i, F_DSR_A] = a + eta * da
    fstate[i, F_DSR_B] = b + eta * db
    var = b - a * a
    if k <= 1 or var <= DSR_MIN_VAR:
        return 0.0
    d = (b * da - 0.5 * a * db) / var**1.5
    return d if np.isfinite(d) else 0.0


@njit(cache=True)
def step_env_nb(
    i,
    actions,
    targets,
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
    rewards,
    terminated,
    truncated,
    step_out,
):
    """Step (or next-step reset) env `i`, exactly as ``PortfolioEnv.step`` / ``reset`` would."""
    if reset_first[i]:
        reset_one_nb(i, next_start[i], window, last, fstate, istate, weights, static_obs, obs)
        rewards[i] = 0.0
        terminated[i] = False
        truncated[i] = False
        step_out[i, 0] = 1.0
        step_out[i, 1] = 0.0
        step_out[i, 2] = 0.0
        step_out[i, 3] = istate[i, I_T]
        step_out[i, 4] = 0.0
        step_out[i, 5] = 0.0
        step_out[i, 6] = 0.0
        return
    target = targets[i]
    for j in range(target.shape[0]):
        target[j] = actions[i, j]
    t = istate[i, I_T]
    net, _gross, cost, turnover = step_into_nb(
        target,
        weights[i],
        t,
        market,
        avg_corr,
        prop_cost,
        max_leverage,
        target_vol,
        static_obs,
        n_features,
        weight_col,
        weight_clip,
        obs[i],
    )
    growth = 1.0 + net
    term = growth <= LOG_FLOOR
    fstate[i, F_NAV] = fstate[i, F_NAV] * growth if not term else 0.0
    k = istate[i, I_K]
    rets[i, k] = net
    k += 1
    istate[i, I_K] = k
    fstate[i, F_TURNOVER_SUM] += turnover
    fstate[i, F_COST_SUM] += cost
    t += 1
    istate[i, I_T] = t
    if log_reward:
        rewards[i] = np.log(max(growth, LOG_FLOOR))
    else:
        rewards[i] = differential_sharpe_nb(net, i, fstate, k, dsr_eta)
    trunc = t >= istate[i, I_END] and not term
    terminated[i] = term
    truncated[i] = trunc
    step_out[i, 0] = fstate[i, F_NAV]
    step_out[i, 1] = turnover
    step_out[i, 2] = cost
    step_out[i, 3] = t
    step_out[i, 4] = k
    step_out[i, 5] = fstate[i, F_TURNOVER_SUM]
    step_out[i, 6] = fstate[i, F_COST_SUM]
    if same_step and (term or trunc):
        for j in range(obs.shape[1]):
            final_obs[i, j] = obs[i, j]
        reset_one_nb(i, next_start[i], window, last, fstate, istate, weights, static_obs, obs)


@njit(cache=True)
def first_refused_nb(actions, reset_first, codes):
    """Check every action that will be used; the first refused env's index, or -1."""
    for i in range(actions.shape[0]):
        codes[i] = ACTION_OK if reset_first[i] else check_action_nb(actions[i])
    for i in range(actions.shape[0]):
        if codes[i] != ACTION_OK:
            return i
    return -1


@njit(cache=True, parallel=True)
def vector_step_nb(
    actions,
    targets,
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
    rewards,
    terminated,
    truncated,
    step_out,
    codes,
):
    """One step of every env, envs spread over all cores; the first refused env's index, or -1.

    All actions are checked before any state changes (a refused batch changes nothing). Envs in
    `reset_first` (next-step autoreset) are reset to `next_start` instead of stepped: reward 0,
    not done, their action ignored. With `same_step`, an env whose episode ends writes its last
    observation to `final_obs` and is reset at once. `step_out[i]` holds the step's NAV, turnover,
    cost, row t, episode length k and summed turnover and costs, before any same-step reset.
    """
    bad = first_refused_nb(actions, reset_first, codes)
    if bad >= 0:
        return bad
    for i in prange(actions.shape[0]):
        step_env_nb(
            i, actions, targets, reset_first, same_step, next_start, window, last, fstate,
            istate, weights, rets, market, avg_corr, prop_cost, max_leverage, target_vol,
            static_obs, n_features, weight_col, weight_clip, log_reward, dsr_eta, obs,
            final_obs, rewards, terminated, truncated, step_out,
        )  # fmt: skip
    return -1


@njit(cache=True)
def vector_step_serial_nb(
    actions,
    targets,
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
    rewards,
    terminated,
    truncated,
    step_out,
    codes,
):
    """``vector_step_nb`` on one thread: for few envs, where waking the other cores costs more."""
    bad = first_refused_nb(actions, reset_first, codes)
    if bad >= 0:
        return bad
    for i in range(actions.shape[0]):
        step_env_nb(
            i, actions, targets, reset_first, same_step, next_start, window, last, fstate,
            istate, weights, rets, market, avg_corr, prop_cost, max_leverage, target_vol,
            static_obs, n_features, weight_col, weight_clip, log_reward, dsr_eta, obs,
            final_obs, rewards, terminated, truncated, step_out,
        )  # fmt: skip
    return -1
