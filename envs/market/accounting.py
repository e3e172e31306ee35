"""Portfolio accounting kernels: one rebalance-and-earn step as a pure function of arrays.

``rebalance_nb`` is the whole of a day's bookkeeping for one portfolio, written over 1-D
per-asset slices so a batched kernel can call it for many portfolios in one loop.

Timing (DESIGN.md): at t's close the target weights are masked to tradable assets, optionally
scaled to a target vol, capped at `max_leverage` gross; costs are charged on the turnover at t;
the executed weights earn the t -> t+1 returns. NAV_{t+1} = NAV_t x (1 + sum_i w_i r_i - cost_t).

Costs per asset, as a fraction of NAV: |dw| x (prop + impact_scale x sqrt(|dw|)), the
proportional spread + fee plus square-root impact (impact_scale = Y x daily vol x
sqrt(participation), participation = fraction of daily volume a trade of the whole NAV is).
"""

from __future__ import annotations

import numpy as np
from numba import njit

ACTION_OK = 0
ACTION_NAN = 1
ACTION_OUT_OF_RANGE = 2
ACTION_UNREPORTED = 3  # an installed pre-trade guard refused: its interventions await reporting

# rows of the packed per-day market array [T, 4, N] that the step kernel reads
ROW_TRADABLE, ROW_RET_NEXT, ROW_IMPACT, ROW_VOL = 0, 1, 2, 3


@njit(cache=True)
def check_action_nb(action):
    """ACTION_OK, or why the action is refused (NaN first, then outside [-1, 1])."""
    code = ACTION_OK
    for i in range(action.shape[0]):
        a = action[i]
        if a != a:
            return ACTION_NAN
        if a < -1.0 or a > 1.0:
            code = ACTION_OUT_OF_RANGE
    return code


@njit(cache=True)
def portfolio_vol_nb(weights, vol, avg_corr):
    """Ex-ante annualised vol of `weights` under a constant-correlation covariance."""
    s1 = 0.0
    s2 = 0.0
    for i in range(weights.shape[0]):
        x = weights[i] * vol[i]
        s1 += x
        s2 += x * x
    var = s2 + avg_corr * (s1 * s1 - s2)
    return np.sqrt(var) if var > 0.0 else 0.0


@njit(cache=True)
def rebalance_nb(
    target,
    weights,
    tradable,
    ret_next,
    tradable_next,
    prop_cost,
    impact_scale,
    vol,
    avg_corr,
    max_leverage,
    target_vol,
):
    """Trade `weights` to `target` at t, earn t -> t+1; `weights` becomes the drifted weights at t+1.

    Returns (net_return, gross_return, cost, turnover). Untradable assets get weight 0; a
    position on an asset that is not tradable at t+1 (delisted) turns into cash after earning
    its delisting return. Keeps: net = gross - cost, sum of new weights = exposure / NAV_{t+1}.
    """
    n = target.shape[0]
    gross_exposure = 0.0
    for i in range(n):
        if tradable[i]:
            gross_exposure += abs(target[i])
    scale = 1.0
    if target_vol > 0.0:
        s1 = 0.0
        s2 = 0.0
        for i in range(n):
            if tradable[i]:
                x = target[i] * vol[i]
                s1 += x
                s2 += x * x
        var = s2 + avg_corr * (s1 * s1 - s2)
        if var > 0.0:
            scale = target_vol / np.sqrt(var)
    if gross_exposure * scale > max_leverage:
        scale = max_leverage / gross_exposure
    gross_return = 0.0
    cost = 0.0
    turnover = 0.0
    for i in range(n):
        w = target[i] * scale if tradable[i] else 0.0
        dw = abs(w - weights[i])
        turnover += dw
        cost += dw * (prop_cost[i] + impact_scale[i] * np.sqrt(dw))
        gross_return += w * ret_next[i]
        weights[i] = w
    net = gross_return - cost
    growth = 1.0 + net
    for i in range(n):
        if tradable_next[i] and growth > 0.0:
            weights[i] = weights[i] * (1.0 + ret_next[i]) / growth
        else:
            weights[i] = 0.0
    return net, gross_return, cost, turnover


@njit(cache=True)
def step_into_nb(
    target,
    weights,
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
    obs,
):
    """Rebalance one portfolio at t and write the observation of t+1 into `obs`; allocates nothing.

    The shared core of the single env (``env_step_nb``) and the batched vector kernel. Tradable
    rows are read straight from `market` (exact 0/1 floats), so no mask is built per call.
    Returns (net, gross, cost, turnover).
    """
    net, gross, cost, turnover = rebalance_nb(
        target,
        weights,
        market[t, ROW_TRADABLE],
        market[t, ROW_RET_NEXT],
        market[t + 1, ROW_TRADABLE],
        prop_cost,
        market[t, ROW_IMPACT],
        market[t, ROW_VOL],
        avg_corr[t],
        max_leverage,
        target_vol,
    )
    row = static_obs[t + 1]
    for j in range(row.shape[0]):
        obs[j] = row[j]
    for i in range(weights.shape[0]):
        w = min(max(weights[i], -weight_clip), weight_clip)
        obs[i * n_features + weight_col] = w
    return net, gross, cost, turnover


@njit(cache=True)
def env_step_nb(
    action,
    weights,
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
):
    """Validate, rebalance at t, and build the observation of t+1 (static features + weights).

    Returns (code, net, gross, cost, turnover, obs); on a refused action nothing changes.
    """
    code = check_action_nb(action)
    if code != ACTION_OK:
        return code, 0.0, 0.0, 0.0, 0.0, static_obs[t].copy()
    target = action.astype(np.float64)
    obs = np.empty(static_obs.shape[1], dtype=static_obs.dtype)
    net, gross, cost, turnover = step_into_nb(
        target,
        weights,
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
        obs,
    )
    return code, net, gross, cost, turnover, obs
