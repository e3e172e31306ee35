"""Portfolio-v0's step arithmetic, once, and the batched kernels the envs run.

Timing: at t's close the target weights are masked to tradable assets, optionally scaled to a
target vol, capped at `max_leverage` gross; costs are charged on the turnover at t; the executed
weights earn the t -> t+1 returns. NAV_{t+1} = NAV_t x (1 + sum_i w_i r_i - cost_t).

Costs per asset, as a fraction of NAV: |dw| x (prop + impact_scale x sqrt(|dw|)), the
proportional spread + fee plus square-root impact (impact_scale = Y x daily vol x
sqrt(participation), participation = fraction of daily volume a trade of the whole NAV is).

Every portfolio is a row of the state arrays (``layout.PortfolioState``); ``vector_step_nb``
steps N of them in one call and the single env steps its one row (``env_step_nb``), both
through ``step_row_nb``, so there is one copy of the arithmetic: ``rebalance_nb`` (trade and
earn), ``observe_nb`` (the next observation) and ``record_nb`` (NAV, reward and episode end). No fastmath: no reassociation, no
fused multiply-add, so results do not depend on the batch or the thread split.

The per-env functions are compiled without numba's reference counting (``row_kernel``): they
take a row view of each batch array per env, and with counting every view costs an atomic
increment and decrement on the shared array, contended across threads.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from trendgym.envs.portfolio.layout import ActionCode, Ends, FState, IState, MarketRow, Out

LOG_FLOOR = 1e-12  # growth at or below this wipes NAV out (terminated); floor of the log reward
DSR_MIN_VAR = 1e-12  # below this variance the differential Sharpe is 0

row_kernel = njit(cache=True, _nrt=False, inline="always")


@njit(cache=True)
def check_action_nb(action):
    """ActionCode.ok, or why the action is refused (NaN first, then outside [-1, 1])."""
    code = ActionCode.ok
    for i in range(action.shape[0]):
        a = action[i]
        if a != a:
            return ActionCode.nan
        if a < -1.0 or a > 1.0:
            code = ActionCode.out_of_range
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


@row_kernel
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
    A float32 `target` gives the bits of its float64 cast (each value is widened before use).
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


@row_kernel
def observe_nb(t, weights, static_obs, n_features, weight_col, weight_clip, obs):
    """Write the observation of row `t` into `obs`: its static features, then the clipped
    drifted `weights` in each asset's weight column."""
    row = static_obs[t]
    for j in range(row.shape[0]):
        obs[j] = row[j]
    for i in range(weights.shape[0]):
        obs[i * n_features + weight_col] = min(max(weights[i], -weight_clip), weight_clip)


@row_kernel
def trade_nb(target, weights, t, data, settings, obs):
    """Rebalance one portfolio at t (``rebalance_nb`` on that day's market rows) and write
    the observation of t+1 into `obs`. Returns (net, gross, cost, turnover)."""
    market = data.market
    net, gross, cost, turnover = rebalance_nb(
        target,
        weights,
        market[t, MarketRow.tradable],
        market[t, MarketRow.ret_next],
        market[t + 1, MarketRow.tradable],
        data.prop_cost,
        market[t, MarketRow.impact],
        market[t, MarketRow.vol],
        data.avg_corr[t],
        settings.max_leverage,
        settings.target_vol,
    )
    observe_nb(
        t + 1,
        weights,
        data.static_obs,
        settings.n_features,
        settings.weight_col,
        settings.weight_clip,
        obs,
    )
    return net, gross, cost, turnover


@row_kernel
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


@row_kernel
def record_nb(e, net, cost, turnover, state, settings, buffers):
    """Book env `e`'s step (net return, cost, turnover): NAV, the episode's returns and sums,
    the next row, the reward and whether the episode ended; column `e` of ``buffers.out`` and
    ``buffers.ends`` get the outcome. Returns whether the episode ended."""
    fstate, istate = state.fstate, state.istate
    growth = 1.0 + net
    term = growth <= LOG_FLOOR
    nav = fstate[e, FState.nav] * growth if not term else 0.0
    fstate[e, FState.nav] = nav
    k = istate[e, IState.k]
    state.rets[e, k] = net
    k += 1
    istate[e, IState.k] = k
    turnover_sum = fstate[e, FState.turnover_sum] + turnover
    cost_sum = fstate[e, FState.cost_sum] + cost
    fstate[e, FState.turnover_sum] = turnover_sum
    fstate[e, FState.cost_sum] = cost_sum
    t = istate[e, IState.t] + 1
    istate[e, IState.t] = t
    if settings.log_reward:
        reward = np.log(max(growth, LOG_FLOOR))
    else:
        reward, dsr_a, dsr_b = differential_sharpe_nb(
            net, fstate[e, FState.dsr_a], fstate[e, FState.dsr_b], k, settings.dsr_eta
        )
        fstate[e, FState.dsr_a] = dsr_a
        fstate[e, FState.dsr_b] = dsr_b
    trunc = t >= istate[e, IState.end] and not term
    out = buffers.out
    out[Out.nav, e] = nav
    out[Out.turnover, e] = turnover
    out[Out.cost, e] = cost
    out[Out.t, e] = t
    out[Out.k, e] = k
    out[Out.turnover_sum, e] = turnover_sum
    out[Out.cost_sum, e] = cost_sum
    out[Out.reward, e] = reward
    buffers.ends[Ends.terminated, e] = term
    buffers.ends[Ends.truncated, e] = trunc
    return term or trunc


@row_kernel
def reset_one_nb(e, start, state, static_obs, settings, obs):
    """Start env `e`'s episode at row `start` (NAV 1, all cash) and write its first observation."""
    istate, fstate = state.istate, state.fstate
    istate[e, IState.t] = start
    istate[e, IState.end] = start + settings.window if settings.window > 0 else settings.last
    istate[e, IState.k] = 0
    for j in range(fstate.shape[1]):
        fstate[e, j] = 0.0
    fstate[e, FState.nav] = 1.0
    for j in range(state.weights.shape[1]):
        state.weights[e, j] = 0.0
    row = static_obs[start]
    for j in range(row.shape[0]):
        obs[e, j] = row[j]


@row_kernel
def reset_out_nb(e, state, buffers):
    """The outcome of a next-step reset in column `e`: NAV 1, nothing traded, reward 0."""
    out = buffers.out
    for j in range(out.shape[0]):
        out[j, e] = 0.0
    out[Out.nav, e] = 1.0
    out[Out.t, e] = state.istate[e, IState.t]
    buffers.ends[Ends.terminated, e] = False
    buffers.ends[Ends.truncated, e] = False


@njit(cache=True)
def vector_reset_nb(mask, starts, state, static_obs, settings, obs):
    """Reset the envs where `mask` is set to their `starts`; other rows are left untouched.

    One thread: resets are rare, and a prange region waits for every core.
    """
    for e in range(mask.shape[0]):
        if mask[e]:
            reset_one_nb(e, starts[e], state, static_obs, settings, obs)


@row_kernel
def step_row_nb(e, action, state, data, settings, obs, buffers):
    """Step env `e` with its `action` row: trade at t, write the observation of t+1 into its
    `obs` row, book the step. Returns whether its episode ended."""
    t = state.istate[e, IState.t]
    net, _gross, cost, turnover = trade_nb(action, state.weights[e], t, data, settings, obs)
    return record_nb(e, net, cost, turnover, state, settings, buffers)


@njit(cache=True, _nrt=False)
def step_range_nb(lo, hi, actions, resets, state, data, settings, obs, buffers):
    """Step envs `lo` to `hi` - 1 (or, those in `resets.first`, reset them to their next start).

    With `resets.same_step`, an env whose episode ends writes its last observation to
    ``buffers.final_obs`` and is reset at once. Returns how many episodes ended.
    """
    reset_first, next_start = resets.first, resets.next_start
    n_ended = 0
    for e in range(lo, hi):
        if reset_first[e]:
            reset_one_nb(e, next_start[e], state, data.static_obs, settings, obs)
            reset_out_nb(e, state, buffers)
            continue
        if step_row_nb(e, actions[e], state, data, settings, obs[e], buffers):
            n_ended += 1
            if resets.same_step:
                for j in range(obs.shape[1]):
                    buffers.final_obs[e, j] = obs[e, j]
                reset_one_nb(e, next_start[e], state, data.static_obs, settings, obs)
    return n_ended


@njit(cache=True, _nrt=False)
def env_step_nb(action, state, data, settings, obs, buffers):
    """The single env's step: ``vector_step_nb`` for a batch of one (row 0 of each array,
    `action` and `obs` 1-D), without the batch's resets. Returns the action's ActionCode;
    a refused action changes nothing."""
    code = check_action_nb(action)
    if code == ActionCode.ok:
        step_row_nb(0, action, state, data, settings, obs, buffers)
    return code


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
        code = ActionCode.nan if nan else (ActionCode.out_of_range if outside else ActionCode.ok)
        codes[e] = ActionCode.ok if reset_first[e] else code
    for e in range(actions.shape[0]):
        if codes[e] != ActionCode.ok:
            return e
    return -1


def _vector_step(actions, resets, state, data, settings, obs, buffers, n_chunks):
    """One step of every env; how many episodes ended, or -1.

    All actions are checked before any state changes: if one is refused, nothing changes, the
    result is -1 and ``buffers.codes`` says which env and why. `resets` is (first, next_start,
    same_step): envs in `first` (next-step autoreset) are reset to `next_start` instead of
    stepped (reward 0, not done, their action ignored); with `same_step` an env whose episode
    ends is reset at once. Column `e` of ``buffers.out`` holds env e's outcome (rows ``Out``),
    before any same-step reset. The envs go out as `n_chunks` contiguous ranges, one
    ``step_range_nb`` call each (spread over the threads in the ``prange`` variant).
    """
    if first_refused_nb(actions, resets.first, buffers.codes) >= 0:
        return -1
    n = actions.shape[0]
    n_chunks = max(1, min(n, n_chunks))
    n_ended = 0
    for c in prange(n_chunks):
        lo, hi = c * n // n_chunks, (c + 1) * n // n_chunks
        n_ended += step_range_nb(lo, hi, actions, resets, state, data, settings, obs, buffers)
    return n_ended


def serial_and_parallel(body: Callable, name: str) -> tuple[Callable, Callable]:
    """Two numba kernels from one Python `body`: `name` + ``_serial_nb`` (one thread, ``prange``
    runs as ``range``) and `name` + ``_nb`` (``parallel=True``), each cached on disk under its
    own name (numba names a cache file after the function's qualified name)."""

    def compiled(qualname: str, **flags: bool) -> Callable:
        fn = types.FunctionType(body.__code__, body.__globals__, qualname, body.__defaults__)
        fn.__qualname__ = qualname
        fn.__doc__ = body.__doc__
        return njit(cache=True, **flags)(fn)

    return compiled(f"{name}_serial_nb"), compiled(f"{name}_nb", parallel=True)


vector_step_serial_nb, vector_step_nb = serial_and_parallel(_vector_step, "vector_step")
