"""Portfolio-v0's in-step compliance checks against the Python path they replaced.

Before, the wrapper ran the kill-switch test in Python, then a weight-checking kernel, then
the env's step on the weights it allowed. `TwinPortfolioCompliance` is that path, with the
checking kernel as a plain Python function. Given the same random rules and actions, the
wrapped env (whose own step kernel now runs the checks) must produce bit-identical
observations, rewards (less the same penalties) and infos, and the same audit records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trendgym.envs.compliance import (
    ComplianceWrapper,
    ExposureLimit,
    KillSwitch,
    MaxOrderSize,
    MaxTurnover,
    PositionLimit,
    RestrictedList,
    Throttle,
    WashTrade,
)
from trendgym.envs.compliance.rules import Rule
from trendgym.envs.portfolio import PortfolioEnv

# rule slots of the kernel, in the order it checks them
R_RESTRICTED, R_WASH, R_SIZE, R_TURNOVER, R_THROTTLE, R_POSITION, R_GROSS, R_NET, R_KILL = range(9)
N_SLOTS = 9
OFF, BLOCK, CLIP, PENALIZE = -1, 0, 1, 2
MODE_CODES = {"block": BLOCK, "clip": CLIP, "penalize": PENALIZE}
ACTION_NAMES = {BLOCK: "block", CLIP: "clip", PENALIZE: "penalize"}
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
EPS = 1e-12  # weight changes smaller than this are no trade
TOL = 1e-6  # a limit counts as broken beyond this (float32 actions round by ~1e-8 per weight)
WASH_MIN_DEFAULT = 0.05


def _p_event(events, ne, slot, asset, asked, done, mode):
    events[ne, 0] = slot
    events[ne, 1] = asset
    events[ne, 2] = asked
    events[ne, 3] = done
    events[ne, 4] = mode
    return ne + 1


def _p_scale_exposure(out, max_gross, max_net):
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


def py_check_weights(
    action,
    w_now,
    tradable_all,
    t,
    max_leverage,
    modes,
    params,
    no_buy,
    no_sell,
    wash_hist,
    throttle_hist,
    wash_slot,
    throttle_slot,
    killed,
    out,
    events,
):
    """Apply the rules to the weights `action` would execute; write the weights to send into
    `out` and the interventions into `events` rows [slot, asset (-1: whole book), asked, done,
    mode]. Records this step's executed changes in the wash / throttle rings at their slots.
    Returns (n_events, changed): when not changed, `out` equals what `action` executes;
    (-1, False) when `action` has NaN or values outside [-1, 1] (nothing is touched)."""
    action = np.asarray(action, dtype=np.float64)  # numba promotes float32 before arithmetic
    n = action.shape[0]
    tradable = tradable_all[t]  # the env's mask of the current row
    for i in range(n):
        if not -1.0 <= action[i] <= 1.0:  # NaN too: the env refuses it, nothing is recorded
            return -1, False
    gross = 0.0
    for i in range(n):
        if tradable[i]:
            gross += abs(action[i])
    scale = 1.0 if gross <= max_leverage else max_leverage / gross
    for i in range(n):
        out[i] = action[i] * scale if tradable[i] else 0.0
    ne = 0
    changed = False
    if killed:
        turnover = 0.0
        for i in range(n):
            turnover += abs(out[i] - w_now[i])
            out[i] = min(max(w_now[i], -1.0), 1.0) if tradable[i] else 0.0
        if turnover > EPS:
            ne = _p_event(events, ne, R_KILL, -1, turnover, 0.0, BLOCK)
        changed = True
    else:
        m = modes[R_RESTRICTED]
        if m != OFF:
            for i in range(n):
                dw = out[i] - w_now[i]
                if (dw > EPS and no_buy[i]) or (dw < -EPS and no_sell[i]):
                    asked = out[i]
                    if m == BLOCK:
                        out[i] = w_now[i]
                        changed = True
                    ne = _p_event(events, ne, R_RESTRICTED, i, asked, out[i], m)
        m = modes[R_WASH]
        if m != OFF:
            for i in range(n):
                dw = out[i] - w_now[i]
                if abs(dw) <= EPS:
                    continue
                opposite = 0.0
                for r in range(wash_hist.shape[0]):
                    if r != wash_slot and wash_hist[r, i] * dw < 0.0:
                        opposite += abs(wash_hist[r, i])
                if min(abs(dw), opposite) >= params[P_WASH_MIN] - TOL:
                    asked = out[i]
                    if m == BLOCK:
                        out[i] = w_now[i]
                        changed = True
                    ne = _p_event(events, ne, R_WASH, i, asked, out[i], m)
        m = modes[R_SIZE]
        if m != OFF:
            cap = params[P_MAX_NOTIONAL] / params[P_NAV]
            for i in range(n):
                dw = out[i] - w_now[i]
                if abs(dw) > cap + TOL:
                    asked = out[i]
                    if m == BLOCK:
                        out[i] = w_now[i]
                    elif m == CLIP:
                        out[i] = w_now[i] + (cap if dw > 0 else -cap)
                    changed = changed or m != PENALIZE
                    ne = _p_event(events, ne, R_SIZE, i, asked, out[i], m)
        m = modes[R_TURNOVER]
        if m != OFF:
            turnover = 0.0
            for i in range(n):
                turnover += abs(out[i] - w_now[i])
            cap = params[P_MAX_TURNOVER]
            if turnover > cap + TOL:
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
                changed = changed or m != PENALIZE
                ne = _p_event(events, ne, R_TURNOVER, -1, turnover, done, m)
        m = modes[R_THROTTLE]
        if m != OFF:
            orders = 0
            for i in range(n):
                if abs(out[i] - w_now[i]) > EPS:
                    orders += 1
            before = 0.0
            for r in range(throttle_hist.shape[0]):
                if r != throttle_slot:
                    before += throttle_hist[r]
            if orders > 0 and before + orders > params[P_MAX_MESSAGES] + 0.5:
                if m == BLOCK:
                    for i in range(n):
                        out[i] = w_now[i] if tradable[i] else 0.0
                    changed = True
                ne = _p_event(
                    events,
                    ne,
                    R_THROTTLE,
                    -1,
                    float(orders),
                    0.0 if m == BLOCK else float(orders),
                    m,
                )
        m = modes[R_POSITION]
        if m != OFF:
            cap = params[P_MAX_POSITION]
            for i in range(n):
                if abs(out[i]) > cap + TOL:
                    asked = out[i]
                    if m == CLIP:
                        out[i] = cap if out[i] > 0 else -cap
                    elif m == BLOCK:  # refused: keep the current weight, reduced inside the limit
                        out[i] = min(max(w_now[i], -cap), cap)
                    changed = changed or m != PENALIZE
                    ne = _p_event(events, ne, R_POSITION, i, asked, out[i], m)
        for rule, p in ((R_GROSS, P_MAX_GROSS), (R_NET, P_MAX_NET)):
            m = modes[rule]
            if m == OFF or params[p] <= 0.0:
                continue
            value = 0.0
            for i in range(n):
                value += abs(out[i]) if rule == R_GROSS else out[i]
            value = abs(value)
            cap = params[p]
            if value > cap + TOL:
                if m == BLOCK:  # the rebalance is refused; a drifted book is scaled inside
                    pos_cap = (
                        params[P_MAX_POSITION]
                        if modes[R_POSITION] == BLOCK or modes[R_POSITION] == CLIP
                        else 1e300
                    )
                    for i in range(n):
                        out[i] = min(max(w_now[i], -pos_cap), pos_cap) if tradable[i] else 0.0
                if m != PENALIZE:
                    hard_gross = (
                        params[P_MAX_GROSS]
                        if modes[R_GROSS] == BLOCK or modes[R_GROSS] == CLIP
                        else 0.0
                    )
                    hard_net = (
                        params[P_MAX_NET] if modes[R_NET] == BLOCK or modes[R_NET] == CLIP else 0.0
                    )
                    _p_scale_exposure(out, hard_gross, hard_net)
                    changed = True
                after = 0.0
                for i in range(n):
                    after += abs(out[i]) if rule == R_GROSS else out[i]
                ne = _p_event(events, ne, rule, -1, value, abs(after), m)
    if changed:  # what the env will execute: inside [-1, 1] and under max_leverage
        g = 0.0
        for i in range(n):
            out[i] = min(max(out[i], -1.0), 1.0)
            g += abs(out[i])
        if g > max_leverage:
            for i in range(n):
                out[i] *= max_leverage / g
    count = 0.0
    for i in range(n):
        dw = out[i] - w_now[i]
        wash_hist[wash_slot, i] = dw
        if abs(dw) > EPS:
            count += 1.0
    throttle_hist[throttle_slot] = count
    return ne, changed


class TwinPortfolioCompliance:
    """The Python path the in-step checks replaced: the kill test in Python, the weight checks
    as a plain Python function, then the env's own step on the weights they allow."""

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
        self._audit = record
        self.assets = [str(a) for a in base.assets]
        n = len(self.assets)
        self.modes = np.full(N_SLOTS, OFF, dtype=np.int64)
        self.params = np.zeros(N_PARAMS)
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
        if self.kill is not None:
            self.slot_rule[R_KILL] = self.kill
        self.no_buy = np.zeros(n, dtype=np.bool_)
        self.no_sell = np.zeros(n, dtype=np.bool_)
        if (r := by_type.get(RestrictedList)) is not None:
            unknown = sorted(set(r.assets) - set(self.assets))
            if unknown:
                raise ValueError(f"RestrictedList names assets not in the universe: {unknown}")
            idx = [self.assets.index(a) for a in r.assets]
            self.no_buy[idx] = r.blocks(+1)
            self.no_sell[idx] = r.blocks(-1)
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
        if (r := by_type.get(Throttle)) is not None:
            if r.max_order_to_trade is not None:
                raise ValueError(
                    "Throttle.max_order_to_trade has no meaning in Portfolio-v0 (every order fills)"
                )
            self.params[P_MAX_MESSAGES] = r.max_messages
        wash = by_type.get(WashTrade)
        self.params[P_WASH_MIN] = wash.min_size if wash and wash.min_size else WASH_MIN_DEFAULT
        # rings: the wash rule looks `window` steps back; the throttle counts `window` steps
        self.wash_hist = np.zeros(((wash.window if wash else 0) + 1, n))
        self.throttle_hist = np.zeros(r.window if r is not None else 1)
        self.out = np.zeros(n)
        self.events = np.zeros((8 * n + 8, 5))
        self.reset(base)

    def record(self, rule: Rule, action: str, asked: dict, done: dict, why: str) -> None:
        self._audit(rule, action, asked, done, why)
        if rule is not self.kill:
            self.note_breach(None)

    def reset(self, base: Any) -> None:
        self._w_now = self._weights_of(base)
        self.step = 0
        self.killed = False
        self.breaches = 0
        self.prev_nav = self.peak = float(base.nav)
        self.wash_hist[:] = 0.0
        self.throttle_hist[:] = 0.0

    def check(self, action: np.ndarray, base: Any, step: int):
        """The action to send to the env (the agent's own when nothing intervenes)."""
        self.step = step
        kill = self.kill
        if kill is not None:
            nav = base.nav
            if not self.killed:
                self._kill_test(nav, base)
            self.prev_nav = nav
            if nav > self.peak:
                self.peak = nav
        else:
            nav = base.nav
        self.params[P_NAV] = nav
        w_now = self._w_now if self._w_now is not None else base.weights
        ne, changed = py_check_weights(
            action,
            w_now,
            base.tradable,
            base.t,
            base.max_leverage,
            self.modes,
            self.params,
            self.no_buy,
            self.no_sell,
            self.wash_hist,
            self.throttle_hist,
            step % self.wash_hist.shape[0],
            step % self.throttle_hist.shape[0],
            self.killed,
            self.out,
            self.events,
        )
        if ne < 0:
            return None
        if ne:
            self._record(ne, w_now)
        return self.out if changed else action

    @staticmethod
    def _weights_of(base: Any) -> np.ndarray | None:
        """The env's array of current (drifted) weights, which it updates in place; read,
        never written (the public `weights` property copies: the fallback, per step)."""
        w = getattr(base, "_weights", None)
        return w if isinstance(w, np.ndarray) and w.shape == base.action_space.shape else None

    def _kill_test(self, nav: float, base: Any) -> None:
        kill = self.kill
        loss = 1.0 - nav / self.prev_nav if self.prev_nav > 0 else 1.0
        drawdown = 1.0 - nav / self.peak if self.peak > 0 else 1.0
        if kill.max_loss is not None and loss > kill.max_loss:
            self.trip(f"one-step NAV loss {loss:.2%} > max_loss {kill.max_loss:.2%}")
        elif kill.max_drawdown is not None and drawdown > kill.max_drawdown:
            self.trip(f"drawdown {drawdown:.2%} > max_drawdown {kill.max_drawdown:.2%}")
        elif kill.max_breaches is not None and self.breaches >= kill.max_breaches:
            self.trip(f"{self.breaches} interventions >= max_breaches {kill.max_breaches}")

    def note_breach(self, env: Any) -> None:
        """Called by the wrapper after each intervention of another rule (the kill switch
        looks at the count before the next step)."""
        self.breaches += 1

    def trip(self, why: str) -> None:
        self.killed = True
        self.kill_reason = why
        self.record(self.kill, "trip", {"trigger": why}, {"cancelled_orders": []}, why)

    def _record(self, ne: int, w_now: np.ndarray) -> None:
        for slot, asset, asked, done, mode in self.events[:ne].tolist():
            slot, asset, mode = int(slot), int(asset), int(mode)
            rule = self.slot_rule[slot]
            action = ACTION_NAMES[mode]
            if asset >= 0:
                name = self.assets[asset]
                what = {"asset": name, "weight": asked, "from": float(w_now[asset])}
                out = {"asset": name, "weight": done}
                why = _ASSET_REASONS[slot].format(name=name, asked=asked, p=self.params)
            else:
                key = _BOOK_KEYS[slot]
                what, out = {key: asked}, {key: done}
                why = _BOOK_REASONS[slot].format(
                    asked=asked, p=self.params, reason=getattr(self, "kill_reason", "")
                )
            self.record(rule, action, what, out, why)


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


# ------------------------------------------------------------------------------ the test
PORT_SMALL = dict(n_years=3.0, n_assets=8, warmup=60)
NAMES = [str(a) for a in PortfolioEnv(**PORT_SMALL).assets]
ALL, BP = ("block", "clip", "penalize"), ("block", "penalize")


@st.composite
def portfolio_rules(draw):
    rules = []
    if draw(st.booleans()):
        rules.append(
            RestrictedList(
                assets=draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=2, unique=True)),
                side=draw(st.sampled_from(["both", "buy", "sell"])),
                mode=draw(st.sampled_from(BP)),
            )
        )
    if draw(st.booleans()):
        rules.append(
            WashTrade(
                window=draw(st.integers(1, 4)),
                min_size=draw(st.sampled_from([None, 0.02, 0.1])),
                mode=draw(st.sampled_from(BP)),
            )
        )
    if draw(st.booleans()):
        rules.append(
            MaxOrderSize(
                max_notional=draw(st.sampled_from([0.05, 0.2])), mode=draw(st.sampled_from(ALL))
            )
        )
    if draw(st.booleans()):
        rules.append(
            MaxTurnover(
                max_turnover=draw(st.sampled_from([0.1, 0.5])), mode=draw(st.sampled_from(ALL))
            )
        )
    if draw(st.booleans()):
        rules.append(
            Throttle(
                max_messages=draw(st.integers(1, 12)),
                window=draw(st.integers(1, 3)),
                mode=draw(st.sampled_from(BP)),
            )
        )
    if draw(st.booleans()):
        rules.append(
            PositionLimit(
                max_position=draw(st.sampled_from([None, 0.1, 0.3])),
                mode=draw(st.sampled_from(ALL)),
            )
        )
    if draw(st.booleans()):
        gross = draw(st.sampled_from([None, 0.5, 1.5]))
        net = draw(st.sampled_from([None, 0.2, 0.6] if gross else [0.2, 0.6]))
        rules.append(ExposureLimit(max_gross=gross, max_net=net, mode=draw(st.sampled_from(ALL))))
    if draw(st.booleans()):
        loss = draw(st.sampled_from([None, 0.002, 0.05]))
        drawdown = draw(st.sampled_from([None, 0.01]))
        breaches = draw(
            st.sampled_from([3, 20] if loss is None and drawdown is None else [None, 3, 20])
        )
        rules.append(KillSwitch(max_loss=loss, max_drawdown=drawdown, max_breaches=breaches))
    return rules


weights = st.lists(st.floats(-1, 1, width=32), min_size=8, max_size=8)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(portfolio_rules(), st.lists(weights, min_size=1, max_size=15), st.integers(0, 2))
def test_in_step_checks_match_the_python_path(rules, actions, seed):
    wrapped = ComplianceWrapper(PortfolioEnv(window=20, **PORT_SMALL), rules)
    bare = PortfolioEnv(window=20, **PORT_SMALL)
    trail: list = []

    def record(rule, action, asked, done, why):
        penalty = rule.penalty_for("portfolio") if action == "penalize" else 0.0
        trail.append(
            {
                "step": t,
                "rule": rule.name,
                "action": action,
                "asked": asked,
                "done": done,
                "reason": why,
                "penalty": penalty,
            }
        )

    twin = TwinPortfolioCompliance(wrapped.rules, record, bare)
    o1, i1 = wrapped.reset(seed=seed)
    o2, i2 = bare.reset(seed=seed)
    twin.reset(bare)
    np.testing.assert_array_equal(o1, o2)
    for t, a in enumerate(actions):
        a = np.array(a, dtype=np.float32)
        o1, r1, te1, tr1, i1 = wrapped.step(a)
        before = len(trail)
        send = twin.check(a, bare, t)
        o2, r2, te2, tr2, i2 = bare.step(a if send is a else send)
        mine = trail[before:]
        penalty = 0.0
        for rec in mine:
            penalty += rec["penalty"]
        assert list(wrapped.step_records) == mine
        assert i1["compliance"] == len(mine)
        assert i1["compliance_penalty"] == penalty
        assert i1["compliance_violations"] == len(trail) == len(wrapped.audit)
        np.testing.assert_array_equal(o1, o2)
        assert r1 == (float(r2) - penalty if penalty else r2)
        assert (te1, tr1) == (te2, tr2)
        assert {k: v for k, v in i1.items() if not k.startswith("compliance")} == {
            k: v for k, v in i2.items() if k != "compliance_violations"
        }
        assert wrapped.engine.killed == twin.killed and wrapped.engine.breaches == twin.breaches
        if te1 or tr1:
            break


def test_interventions_of_steps_around_the_wrapper_are_reported_not_dropped():
    """Stepping the unwrapped env still runs the checks; their records wait in the buffer
    and the wrapper reports them at its next step (or reset). Past the buffer's room the env
    refuses to step rather than lose one."""
    import pytest

    from trendgym.envs.compliance.portfolio import PENDING_STEPS

    env = ComplianceWrapper(PortfolioEnv(**PORT_SMALL), [PositionLimit(max_position=0.1)])
    base = env.unwrapped
    env.reset(seed=0)
    big = np.full(8, 0.12, dtype=np.float32)  # every asset beyond the limit: 8 blocks a step
    base.step(big)
    base.step(big)
    assert len(env.audit) == 0 and base.guard_events == 16
    info = env.step(np.zeros(8, dtype=np.float32))[4]
    assert len(env.step_records) == 16 == info["compliance"] == info["compliance_violations"]
    assert info["compliance_position_limit"] == 16 == len(env.audit)
    stepped = 0
    with pytest.raises(RuntimeError, match="nobody reported"):
        for _ in range(PENDING_STEPS * 40):
            base.step(big)
            stepped += 1
    assert stepped >= PENDING_STEPS  # room for that many steps of the worst case
    env.reset(seed=0)  # reports what waited, into the episode it belongs to
    assert len(env.audit) == 16 + 8 * stepped == env.audit.count(episode=1)
