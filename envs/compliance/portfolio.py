"""Weight-level checks for Portfolio-v0, run inside the env's own numba step.

The wrapper packs the rules' parameters and state into one float64 "guard" array and installs
it, with ``guarded_step_nb``, into the env (`PortfolioEnv.attach_compliance`). Each step the env's
kernel then validates the action, runs the kill-switch test, applies the rules to the weights
the action would execute (``check_weights_nb``: the env's tradable mask and ``max_leverage``
scaling, then the rules on the executed weights and their change from the current drifted
weights) and trades the checked weights, all in one call. Interventions are written as rows of
a preallocated ``events`` array; Python turns them into audit records only when there are any.
When nothing intervenes the agent's own action is traded, so the env computes exactly what it
would have without the wrapper.

Order of the checks: restricted list, wash trades, order notional, turnover, throttle (flow
rules, which can only hold a trade back), then position and exposure limits (state rules,
applied last so that a hard limit always holds, even when a held-back trade leaves a drifted
position beyond it; such a reduction may exceed the turnover cap).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from trendgym.envs.compliance.rules import (
    ExposureLimit,
    KillSwitch,
    MaxOrderSize,
    MaxTurnover,
    PositionLimit,
    RestrictedList,
    Rule,
    Throttle,
    WashTrade,
)
from trendgym.envs.portfolio.kernels import check_action_nb, record_nb, trade_nb
from trendgym.envs.portfolio.layout import ActionCode, FState, IState, MarketRow

# rule slots of the kernel, in the order it checks them
R_RESTRICTED, R_WASH, R_SIZE, R_TURNOVER, R_THROTTLE, R_POSITION, R_GROSS, R_NET, R_KILL = range(9)
N_SLOTS = 9
OFF, BLOCK, CLIP, PENALIZE, TRIP = -1, 0, 1, 2, 3
MODE_CODES = {"block": BLOCK, "clip": CLIP, "penalize": PENALIZE}
ACTION_NAMES = {BLOCK: "block", CLIP: "clip", PENALIZE: "penalize", TRIP: "trip"}
# params vector
(
    P_MAX_POSITION,
    P_MAX_GROSS,
    P_MAX_NET,
    P_MAX_TURNOVER,
    P_MAX_NOTIONAL,
    P_NAV,
    P_WASH_MIN,
    P_MAX_MESSAGES,
) = range(8)
N_PARAMS = 8
# the guard array: modes, params, kill-switch limits (< 0: none), state, sizes, then per asset
# no_buy, no_sell, out (the checked weights) and the wash / throttle rings
G_MODES = 0
G_PARAMS = G_MODES + N_SLOTS
G_MAX_LOSS, G_MAX_DRAWDOWN, G_MAX_BREACHES = range(G_PARAMS + N_PARAMS, G_PARAMS + N_PARAMS + 3)
S_STEP, S_KILLED, S_BREACHES, S_PREV_NAV, S_PEAK, S_PENDING = range(
    G_MAX_BREACHES + 1, G_MAX_BREACHES + 7
)  # S_PENDING: event rows written and not yet turned into audit records
G_KILL_ON, G_WASH_ROWS, G_THROTTLE_ROWS = range(S_PENDING + 1, S_PENDING + 4)
HEADER = G_THROTTLE_ROWS + 1
N_EVENT_COLS = 6  # slot, asset, asked, done, mode, weight before
PENDING_STEPS = 8  # steps of events the buffer holds before they must be reported
# kill-switch triggers (an event row's asset column for a trip)
TRIG_LOSS, TRIG_DRAWDOWN, TRIG_BREACHES = 0, 1, 2
EPS = 1e-12  # weight changes smaller than this are no trade
TOL = 1e-6  # a limit counts as broken beyond this (float32 actions round by ~1e-8 per weight)
WASH_MIN_DEFAULT = 0.05

# The checks run inside every step, so their kernels allocate nothing and are compiled without
# numba's reference counting (as the order book's are): with it, each array argument and each
# view taken of the guard costs atomic incref/decref pairs, measured at ~+0.7 µs per step here.
kernel = njit(cache=True, _nrt=False)


@kernel
def _event_nb(events, w_now, ne, slot, asset, asked, done, mode):
    events[ne, 0] = slot
    events[ne, 1] = asset
    events[ne, 2] = asked
    events[ne, 3] = done
    events[ne, 4] = mode
    events[ne, 5] = w_now[asset] if asset >= 0 else 0.0
    return ne + 1


@kernel
def _scale_exposure_nb(out, max_gross, max_net):
    """Scale `out` down (one factor) until gross ≤ max_gross and |net| ≤ max_net (0 = no cap)."""
    gross = 0.0
    net = 0.0
    for i in range(out.shape[0]):
        gross += abs(out[i])
        net += out[i]
    f = 1.0
    if max_gross > 0.0 and gross > max_gross:
        f = max_gross / gross
    if max_net > 0.0 and abs(net) > max_net:
        f = min(f, max_net / abs(net))
    if f < 1.0:
        for i in range(out.shape[0]):
            out[i] *= f


@kernel
def kill_test_nb(guard, nav, events, ne):
    """Kill switch before the step's orders: trips on a one-step NAV loss, a drawdown from the
    NAV peak or the breach count (a TRIP row, its trigger in the asset column, the measured
    value as asked, the limit as done); then remembers NAV and its peak. Returns n_events."""
    if guard[G_KILL_ON] == 0.0:
        return ne
    if guard[S_KILLED] == 0.0:
        prev, peak = guard[S_PREV_NAV], guard[S_PEAK]
        loss = 1.0 - nav / prev if prev > 0 else 1.0
        drawdown = 1.0 - nav / peak if peak > 0 else 1.0
        trigger, value, limit = -1, 0.0, 0.0
        if guard[G_MAX_LOSS] >= 0.0 and loss > guard[G_MAX_LOSS]:
            trigger, value, limit = TRIG_LOSS, loss, guard[G_MAX_LOSS]
        elif guard[G_MAX_DRAWDOWN] >= 0.0 and drawdown > guard[G_MAX_DRAWDOWN]:
            trigger, value, limit = TRIG_DRAWDOWN, drawdown, guard[G_MAX_DRAWDOWN]
        elif guard[G_MAX_BREACHES] >= 0.0 and guard[S_BREACHES] >= guard[G_MAX_BREACHES]:
            trigger, value, limit = TRIG_BREACHES, guard[S_BREACHES], guard[G_MAX_BREACHES]
        if trigger >= 0:
            guard[S_KILLED] = 1.0
            events[ne, 0] = R_KILL
            events[ne, 1] = trigger
            events[ne, 2] = value
            events[ne, 3] = limit
            events[ne, 4] = TRIP
            events[ne, 5] = 0.0
            ne += 1
    guard[S_PREV_NAV] = nav
    if nav > guard[S_PEAK]:
        guard[S_PEAK] = nav
    return ne


@kernel
def _rings_nb(guard, n):
    """The guard's wash ring (one row of weight changes per step) and throttle ring (one
    order count per step), views."""
    wash_rows = int(guard[G_WASH_ROWS])
    throttle_rows = int(guard[G_THROTTLE_ROWS])
    ring = HEADER + 3 * n
    wash_hist = guard[ring : ring + wash_rows * n].reshape((wash_rows, n))
    throttle_hist = guard[ring + wash_rows * n : ring + wash_rows * n + throttle_rows]
    return wash_hist, throttle_hist


@kernel
def _asset_hit_nb(m, rule, i, out, w_now, events, ne):
    """Asset `i`'s trade broke `rule` (mode `m`): a block keeps its current weight. Returns
    n_events."""
    asked = out[i]
    if m == BLOCK:
        out[i] = w_now[i]
    return _event_nb(events, w_now, ne, rule, i, asked, out[i], m)


@kernel
def _restricted_nb(m, no_buy, no_sell, out, w_now, events, ne):
    """Restricted list: a buy of a no-buy asset or a sale of a no-sell one. Returns (n_events,
    changed)."""
    changed = False
    for i in range(out.shape[0]):
        dw = out[i] - w_now[i]
        if (no_buy[i] != 0.0 and dw > EPS) or (no_sell[i] != 0.0 and dw < -EPS):
            ne = _asset_hit_nb(m, R_RESTRICTED, i, out, w_now, events, ne)
            changed = changed or m == BLOCK
    return ne, changed


@kernel
def _wash_nb(m, wash_min, wash_hist, wash_slot, out, w_now, events, ne):
    """Wash trades: a change offsetting the ring's opposite changes of the window."""
    changed = False
    for i in range(out.shape[0]):
        dw = out[i] - w_now[i]
        if abs(dw) <= EPS:
            continue
        opposite = 0.0
        for r in range(wash_hist.shape[0]):  # adding 0.0 instead of branching: the
            x = wash_hist[r, i]  # signs are random, a branch mispredicts half the time
            opposite += abs(x) if (x * dw < 0.0) & (r != wash_slot) else 0.0
        if min(abs(dw), opposite) >= wash_min - TOL:
            ne = _asset_hit_nb(m, R_WASH, i, out, w_now, events, ne)
            changed = changed or m == BLOCK
    return ne, changed


@kernel
def _size_nb(m, cap, out, w_now, events, ne):
    """Order notional: a weight change above `cap` (max_notional / NAV)."""
    changed = False
    for i in range(out.shape[0]):
        dw = out[i] - w_now[i]
        if abs(dw) > cap + TOL:
            asked = out[i]
            if m == BLOCK:
                out[i] = w_now[i]
            elif m == CLIP:
                out[i] = w_now[i] + (cap if dw > 0 else -cap)
            changed = changed or m != PENALIZE
            ne = _event_nb(events, w_now, ne, R_SIZE, i, asked, out[i], m)
    return ne, changed


@kernel
def _turnover_nb(m, cap, out, w_now, tradable, events, ne):
    """Turnover: the sum of the weight changes above `cap`."""
    n = out.shape[0]
    turnover = 0.0
    for i in range(n):
        turnover += abs(out[i] - w_now[i])
    if not turnover > cap + TOL:
        return ne, False
    done = turnover
    if m == BLOCK:
        for i in range(n):
            out[i] = w_now[i] if tradable[i] else 0.0
        done = 0.0
    elif m == CLIP:
        f = cap / turnover
        for i in range(n):
            out[i] = w_now[i] + (out[i] - w_now[i]) * f
        done = cap
    ne = _event_nb(events, w_now, ne, R_TURNOVER, -1, turnover, done, m)
    return ne, m != PENALIZE


@kernel
def _throttle_nb(m, max_messages, throttle_hist, throttle_slot, out, w_now, tradable, events, ne):
    """Throttle: this step's orders (assets whose weight changes) and the window's before it
    above `max_messages`."""
    n = out.shape[0]
    orders = 0
    for i in range(n):
        if abs(out[i] - w_now[i]) > EPS:
            orders += 1
    before = 0.0
    for r in range(throttle_hist.shape[0]):
        if r != throttle_slot:
            before += throttle_hist[r]
    if not (orders > 0 and before + orders > max_messages + 0.5):
        return ne, False
    if m == BLOCK:
        for i in range(n):
            out[i] = w_now[i] if tradable[i] else 0.0
    done = 0.0 if m == BLOCK else float(orders)
    ne = _event_nb(events, w_now, ne, R_THROTTLE, -1, float(orders), done, m)
    return ne, m == BLOCK


@kernel
def _position_nb(m, cap, out, w_now, events, ne):
    """Position limit: a weight beyond ±`cap`."""
    changed = False
    for i in range(out.shape[0]):
        if abs(out[i]) > cap + TOL:
            asked = out[i]
            if m == CLIP:
                out[i] = cap if out[i] > 0 else -cap
            elif m == BLOCK:  # refused: keep the current weight, reduced inside the limit
                out[i] = min(max(w_now[i], -cap), cap)
            changed = changed or m != PENALIZE
            ne = _event_nb(events, w_now, ne, R_POSITION, i, asked, out[i], m)
    return ne, changed


@kernel
def _hard_nb(modes, rule):
    """Whether `rule` changes the weights (blocks or clips) rather than only reporting."""
    return modes[rule] == BLOCK or modes[rule] == CLIP


@kernel
def _exposure_nb(rule, p, modes, params, out, w_now, tradable, events, ne):
    """Gross (`rule` R_GROSS) or net (R_NET) exposure beyond its limit ``params[p]``."""
    n = out.shape[0]
    m = modes[rule]
    if m == OFF or params[p] <= 0.0:
        return ne, False
    value = 0.0
    for i in range(n):
        value += abs(out[i]) if rule == R_GROSS else out[i]
    value = abs(value)
    if not value > params[p] + TOL:
        return ne, False
    if m == BLOCK:  # the rebalance is refused; a drifted book is scaled inside
        pos_cap = params[P_MAX_POSITION] if _hard_nb(modes, R_POSITION) else 1e300
        for i in range(n):
            out[i] = min(max(w_now[i], -pos_cap), pos_cap) if tradable[i] else 0.0
    if m != PENALIZE:
        hard_gross = params[P_MAX_GROSS] if _hard_nb(modes, R_GROSS) else 0.0
        hard_net = params[P_MAX_NET] if _hard_nb(modes, R_NET) else 0.0
        _scale_exposure_nb(out, hard_gross, hard_net)
    after = 0.0
    for i in range(n):
        after += abs(out[i]) if rule == R_GROSS else out[i]
    ne = _event_nb(events, w_now, ne, rule, -1, value, abs(after), m)
    return ne, m != PENALIZE


@kernel
def _rules_nb(guard, out, w_now, tradable, events, ne):
    """Every rule but the kill switch on `out`, in order: the flow rules, then the state
    rules. Returns (n_events, changed)."""
    n = out.shape[0]
    modes = guard[G_MODES : G_MODES + N_SLOTS]
    params = guard[G_PARAMS : G_PARAMS + N_PARAMS]
    wash_hist, throttle_hist = _rings_nb(guard, n)
    step = int(guard[S_STEP])
    changed = False
    if modes[R_RESTRICTED] != OFF:
        no_buy = guard[HEADER : HEADER + n]
        no_sell = guard[HEADER + n : HEADER + 2 * n]
        ne, c = _restricted_nb(modes[R_RESTRICTED], no_buy, no_sell, out, w_now, events, ne)
        changed = changed or c
    if modes[R_WASH] != OFF:
        slot = step % wash_hist.shape[0]
        wash_min = params[P_WASH_MIN]
        ne, c = _wash_nb(modes[R_WASH], wash_min, wash_hist, slot, out, w_now, events, ne)
        changed = changed or c
    if modes[R_SIZE] != OFF:
        cap = params[P_MAX_NOTIONAL] / params[P_NAV]
        ne, c = _size_nb(modes[R_SIZE], cap, out, w_now, events, ne)
        changed = changed or c
    if modes[R_TURNOVER] != OFF:
        cap = params[P_MAX_TURNOVER]
        ne, c = _turnover_nb(modes[R_TURNOVER], cap, out, w_now, tradable, events, ne)
        changed = changed or c
    if modes[R_THROTTLE] != OFF:
        slot = step % throttle_hist.shape[0]
        ne, c = _throttle_nb(
            modes[R_THROTTLE], params[P_MAX_MESSAGES], throttle_hist, slot, out, w_now,
            tradable, events, ne,
        )  # fmt: skip
        changed = changed or c
    if modes[R_POSITION] != OFF:
        cap = params[P_MAX_POSITION]
        ne, c = _position_nb(modes[R_POSITION], cap, out, w_now, events, ne)
        changed = changed or c
    for rule, p in ((R_GROSS, P_MAX_GROSS), (R_NET, P_MAX_NET)):
        ne, c = _exposure_nb(rule, p, modes, params, out, w_now, tradable, events, ne)
        changed = changed or c
    return ne, changed


@kernel
def check_weights_nb(action, w_now, tradable, max_leverage, guard, events, ne):
    """Apply the rules to the weights `action` would execute; write the weights to send into
    the guard's `out` and the interventions into `events` rows from `ne` on ([slot, asset
    (-1: whole book), asked, done, mode, the asset's weight before]). Records this step's
    executed changes in the guard's wash / throttle rings. Returns (n_events, changed): when
    not changed, `out` equals what `action` executes. `action` must be valid (in [-1, 1])."""
    n = action.shape[0]
    out = guard[HEADER + 2 * n : HEADER + 3 * n]
    gross = 0.0
    for i in range(n):
        if tradable[i]:
            gross += abs(action[i])
    scale = 1.0 if gross <= max_leverage else max_leverage / gross
    for i in range(n):
        out[i] = action[i] * scale if tradable[i] else 0.0
    if guard[S_KILLED] != 0.0:  # every trade is refused
        turnover = 0.0
        for i in range(n):
            turnover += abs(out[i] - w_now[i])
            out[i] = min(max(w_now[i], -1.0), 1.0) if tradable[i] else 0.0
        if turnover > EPS:
            ne = _event_nb(events, w_now, ne, R_KILL, -1, turnover, 0.0, BLOCK)
        changed = True
    else:
        ne, changed = _rules_nb(guard, out, w_now, tradable, events, ne)
    if changed:  # what the env will execute: inside [-1, 1] and under max_leverage
        g = 0.0
        for i in range(n):
            out[i] = min(max(out[i], -1.0), 1.0)
            g += abs(out[i])
        if g > max_leverage:
            for i in range(n):
                out[i] *= max_leverage / g
    wash_hist, throttle_hist = _rings_nb(guard, n)
    step = int(guard[S_STEP])
    wash_slot = step % wash_hist.shape[0]
    count = 0.0
    for i in range(n):
        dw = out[i] - w_now[i]
        wash_hist[wash_slot, i] = dw
        if abs(dw) > EPS:
            count += 1.0
    throttle_hist[step % throttle_hist.shape[0]] = count
    return ne, changed


@kernel
def guarded_step_nb(action, state, data, settings, obs, buffers, guard, events):
    """``env_step_nb`` with the rules in front: validate, kill-switch test, check the weights,
    trade the checked ones (the agent's own when nothing changed them), write the observation
    of t+1 into `obs` and book the step; allocates nothing.

    Returns (code, n_events): the events are appended after those not reported yet, and
    n_events counts them all (the wrapper reports them and sets the pending count back to 0).
    A refused action (NaN or outside [-1, 1]; ``ActionCode.unreported`` when the buffer is
    full of unreported events, i.e. the env was stepped without its wrapper) changes nothing,
    the rules' state included. Counts the step's interventions by rules other than the kill
    switch as breaches and advances the step."""
    code = check_action_nb(action)
    if code != ActionCode.ok:
        return code, 0
    weights = state.weights[0]
    n = weights.shape[0]
    first = int(guard[S_PENDING])
    if first + 4 * n + 8 > events.shape[0]:  # never overwrite what nobody reported
        return ActionCode.unreported, first
    nav = state.fstate[0, FState.nav]
    t = state.istate[0, IState.t]
    guard[G_PARAMS + P_NAV] = nav
    ne = kill_test_nb(guard, nav, events, first)
    tradable = data.market[t, MarketRow.tradable]
    ne, changed = check_weights_nb(
        action, weights, tradable, settings.max_leverage, guard, events, ne
    )
    for j in range(first, ne):
        if events[j, 0] != R_KILL:
            guard[S_BREACHES] += 1.0
    guard[S_STEP] += 1.0
    guard[S_PENDING] = ne
    out = guard[HEADER + 2 * n : HEADER + 3 * n]
    if not changed:  # trade the agent's own action, as the plain kernel would (float64 of it)
        for i in range(n):
            out[i] = action[i]
    net, _gross, cost, turnover = trade_nb(out, weights, t, data, settings, obs)
    record_nb(0, net, cost, turnover, state, settings, buffers)
    return code, ne


class PortfolioCompliance:
    """The rules of one Portfolio-v0 env, packed into the guard array its step kernel reads;
    `record` is the wrapper's audit callback. `install` puts the checks into the env."""

    SLOT_RULES = {
        R_RESTRICTED: RestrictedList,
        R_WASH: WashTrade,
        R_SIZE: MaxOrderSize,
        R_TURNOVER: MaxTurnover,
        R_THROTTLE: Throttle,
        R_POSITION: PositionLimit,
        R_GROSS: ExposureLimit,
        R_NET: ExposureLimit,
        R_KILL: KillSwitch,
    }

    def __init__(self, rules: list[Rule], record: Callable, base: Any) -> None:
        by_type = {type(r): r for r in rules}
        self.record = record
        self.assets = [str(a) for a in base.assets]
        n = len(self.assets)
        wash = by_type.get(WashTrade)
        throttle = by_type.get(Throttle)
        # rings: the wash rule looks `window` steps back; the throttle counts `window` steps
        wash_rows = (wash.window if wash else 0) + 1
        throttle_rows = throttle.window if throttle is not None else 1
        self.guard = np.zeros(HEADER + 3 * n + wash_rows * n + throttle_rows)
        g = self.guard
        g[G_WASH_ROWS], g[G_THROTTLE_ROWS] = wash_rows, throttle_rows
        self.modes = g[G_MODES : G_MODES + N_SLOTS]
        self.params = g[G_PARAMS : G_PARAMS + N_PARAMS]
        self.no_buy = g[HEADER : HEADER + n]
        self.no_sell = g[HEADER + n : HEADER + 2 * n]
        self.modes[:] = OFF
        self.params[P_NAV] = 1.0
        self.slot_rule: dict[int, Rule] = {}
        for slot, cls in self.SLOT_RULES.items():
            rule = by_type.get(cls)
            if rule is None or slot == R_KILL:
                continue
            if (
                cls is ExposureLimit
                and (rule.max_gross if slot == R_GROSS else rule.max_net) is None
            ):
                continue
            self.modes[slot] = MODE_CODES[rule.mode]
            self.slot_rule[slot] = rule
        self.kill: KillSwitch | None = by_type.get(KillSwitch)
        g[G_MAX_LOSS] = g[G_MAX_DRAWDOWN] = g[G_MAX_BREACHES] = -1.0
        if self.kill is not None:
            self.slot_rule[R_KILL] = self.kill
            g[G_KILL_ON] = 1.0
            for index, value in (
                (G_MAX_LOSS, self.kill.max_loss),
                (G_MAX_DRAWDOWN, self.kill.max_drawdown),
                (G_MAX_BREACHES, self.kill.max_breaches),
            ):
                if value is not None:
                    g[index] = value
        if (r := by_type.get(RestrictedList)) is not None:
            unknown = sorted(set(r.assets) - set(self.assets))
            if unknown:
                raise ValueError(f"RestrictedList names assets not in the universe: {unknown}")
            idx = [self.assets.index(a) for a in r.assets]
            self.no_buy[idx] = float(r.blocks(+1))
            self.no_sell[idx] = float(r.blocks(-1))
        if (r := by_type.get(PositionLimit)) is not None:
            self.params[P_MAX_POSITION] = r.max_position if r.max_position is not None else 1.0
        if (r := by_type.get(ExposureLimit)) is not None:
            self.params[P_MAX_GROSS] = r.max_gross or 0.0
            self.params[P_MAX_NET] = r.max_net or 0.0
        if (r := by_type.get(MaxTurnover)) is not None:
            self.params[P_MAX_TURNOVER] = r.max_turnover
        if (r := by_type.get(MaxOrderSize)) is not None:
            if r.max_qty is not None:
                raise ValueError(
                    "MaxOrderSize.max_qty (lots) has no meaning in Portfolio-v0; use max_notional"
                )
            self.params[P_MAX_NOTIONAL] = r.max_notional
        if throttle is not None:
            if throttle.max_order_to_trade is not None:
                raise ValueError(
                    "Throttle.max_order_to_trade has no meaning in Portfolio-v0 (every order fills)"
                )
            self.params[P_MAX_MESSAGES] = throttle.max_messages
        self.params[P_WASH_MIN] = wash.min_size if wash and wash.min_size else WASH_MIN_DEFAULT
        # per step at most: a trip, per asset four rules, and five whole-book rules
        self.events = np.zeros((PENDING_STEPS * (4 * n + 8), N_EVENT_COLS))
        self.kill_reason = ""
        self.reset(base)

    kernel = staticmethod(guarded_step_nb)  # the env's step kernel with the checks inside

    @classmethod
    def for_env(
        cls, rules: list[Rule], record: Callable, env: Any, instrument: str
    ) -> PortfolioCompliance:
        sizing = [
            r.name
            for r in rules
            if isinstance(r, (PositionLimit, ExposureLimit, MaxTurnover, MaxOrderSize))
        ]
        if env.target_vol is not None and sizing:
            raise ValueError(
                f"Portfolio-v0 with target_vol rescales the weights after the wrapper, so the limits "
                f"{sizing} could not hold; use target_vol=None (or scale in the policy)"
            )
        return cls(rules, record, env)

    # the wrapper's Engine protocol: the env's step kernel ran the checks; Python only
    # reports what they did (the rare path)
    def close_episode(self, env: Any) -> None:
        if env.guard_events:  # the env was stepped around the wrapper
            self.records(env.guard_events, env)

    def start_episode(self, env: Any, info: dict[str, Any]) -> None:
        self.reset(env)

    def before_step(self, env: Any, step: int) -> None:
        pass

    def after_step(self, env: Any, info: dict[str, Any]) -> None:
        if env.guard_events:
            self.records(env.guard_events, env)

    def count(self, env: Any, violations: int) -> None:
        pass  # the wrapper's info carries the count

    def reset(self, base: Any) -> None:
        g = self.guard
        g[S_STEP] = g[S_KILLED] = g[S_BREACHES] = g[S_PENDING] = 0.0
        base.guard_events = 0
        g[S_PREV_NAV] = g[S_PEAK] = float(base.nav)
        g[HEADER + 2 * len(self.assets) :] = 0.0  # out and both rings
        self.kill_reason = ""

    @property
    def checked_weights(self) -> np.ndarray:
        """The target weights the last step traded (the agent's own when no rule changed them;
        the env then masks untradable assets and caps the gross at ``max_leverage``), a view."""
        n = len(self.assets)
        return self.guard[HEADER + 2 * n : HEADER + 3 * n]

    @property
    def killed(self) -> bool:
        return bool(self.guard[S_KILLED])

    @property
    def breaches(self) -> int:
        """Interventions of rules other than the kill switch this episode."""
        return int(self.guard[S_BREACHES])

    def records(self, ne: int, base: Any) -> None:
        """Turn the `ne` pending event rows into audit records (the rare path)."""
        self.guard[S_PENDING] = 0.0
        base.guard_events = 0
        for slot, asset, asked, done, mode, w_from in self.events[:ne].tolist():
            slot, asset, mode = int(slot), int(asset), int(mode)
            rule = self.slot_rule[slot]
            action = ACTION_NAMES[mode]
            if mode == TRIP:
                why = _TRIP_REASONS[asset].format(value=asked, limit=done)
                self.kill_reason = why
                self.record(rule, "trip", {"trigger": why}, {"cancelled_orders": []}, why)
                continue
            if asset >= 0:
                name = self.assets[asset]
                what = {"asset": name, "weight": asked, "from": w_from}
                out = {"asset": name, "weight": done}
                why = _ASSET_REASONS[slot].format(name=name, asked=asked, p=self.params)
            else:
                key = _BOOK_KEYS[slot]
                what, out = {key: asked}, {key: done}
                why = _BOOK_REASONS[slot].format(
                    asked=asked, p=self.params, reason=self.kill_reason
                )
            self.record(rule, action, what, out, why)


_TRIP_REASONS = {
    TRIG_LOSS: "one-step NAV loss {value:.2%} > max_loss {limit:.2%}",
    TRIG_DRAWDOWN: "drawdown {value:.2%} > max_drawdown {limit:.2%}",
    TRIG_BREACHES: "{value:.0f} interventions >= max_breaches {limit:.0f}",
}
_ASSET_REASONS = {
    R_RESTRICTED: "{name} is on the restricted list",
    R_WASH: "trade in {name} offsets trades of the last steps (no change of ownership)",
    R_SIZE: "order notional in {name} above max_notional {p[4]:g}",
    R_POSITION: "weight {asked:.4f} in {name} beyond ±{p[0]:g}",
}
_BOOK_KEYS = {
    R_TURNOVER: "turnover",
    R_THROTTLE: "orders",
    R_GROSS: "gross",
    R_NET: "net",
    R_KILL: "turnover",
}
_BOOK_REASONS = {
    R_TURNOVER: "turnover {asked:.4f} > max_turnover {p[3]:g}",
    R_THROTTLE: "{asked:.0f} orders would exceed max_messages {p[7]:g} in the window",
    R_GROSS: "gross exposure {asked:.4f} > max_gross {p[1]:g}",
    R_NET: "net exposure {asked:.4f} > max_net {p[2]:g}",
    R_KILL: "kill switch tripped ({reason})",
}
