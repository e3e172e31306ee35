"""ComplianceWrapper: every rule at its limit, fuzzed hard limits, kill switch, self-trade,
audit log round trips, registration, checkers, determinism, pickling and a PPO smoke run."""

from __future__ import annotations

import math
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trendgym  # noqa: F401  (registers the ids)
from trendgym.agents.execution import (
    TWAP,
    VWAP,
    Aggressive,
    AlmgrenChriss,
    PassiveLimit,
    run_execution_episode,
)
from trendgym.agents.portfolio import EqualWeight, StaticTSMOM, run_episode
from trendgym.envs.compliance import (
    AuditLog,
    ComplianceWrapper,
    DuplicateOrder,
    ExposureLimit,
    KillSwitch,
    MaxOrderSize,
    MaxParticipation,
    MaxTurnover,
    PositionLimit,
    PriceCollar,
    RestrictedList,
    SelfTradePrevention,
    Throttle,
    WashTrade,
    resolve_rules,
)
from trendgym.envs.execution import AGENT, ExecutionEnv
from trendgym.envs.lob import kernels as k
from trendgym.envs.portfolio import PortfolioEnv

EXEC_SMALL = dict(horizon=8, warmup_seconds=10.0)
PORT_SMALL = dict(n_years=3.0, n_assets=8, warmup=60)
FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------ helpers
def exec_wrapped(rules, **kw):
    env = ComplianceWrapper(
        ExecutionEnv(side="buy", quantity=50, preset="calm", **{**EXEC_SMALL, **kw}), rules=rules
    )
    env.reset(seed=3)
    return env


def msg(kind, side, price, qty, oid):
    m = np.zeros(1, dtype=k.MESSAGE_DTYPE)
    m[0] = (kind, side, AGENT, price, qty, oid, 0)
    return m


def send(env, kind, side, price, qty, oid):
    """Offer one crafted agent order to the hook; what it allows goes to the book.
    Returns the allowed messages as a list of (kind, side, price, qty)."""
    base = env.unwrapped
    allowed = env.engine.pre_trade(msg(kind, side, price, qty, oid), base)
    if allowed.shape[0]:
        base.book.process(allowed)
    return [(int(m["kind"]), int(m["side"]), int(m["price"]), int(m["qty"])) for m in allowed]


def mid(env):
    b = env.unwrapped.book
    return 0.5 * (b.best_bid() + b.best_ask())


def only_record(env, rule, action):
    recs = env.audit.to_dicts()
    assert len(recs) == 1, recs
    assert recs[0]["rule"] == rule and recs[0]["action"] == action
    return recs[0]


LIMIT, MARKET, MODIFY = k.LIMIT, k.MARKET, k.MODIFY


# ------------------------------------------------------------------------------ execution rules
@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_price_collar(mode):
    env = exec_wrapped([PriceCollar(max_pct=0.01, mode=mode)])
    m = mid(env)
    edge = math.floor(m + 0.01 * m)
    assert send(env, LIMIT, 1, edge, 1, 9001) == [(LIMIT, 1, edge, 1)]  # just inside: untouched
    assert len(env.audit) == 0
    out = send(env, LIMIT, 1, edge + 1, 1, 9002)  # just outside, aggressive
    expected = {"block": [], "clip": [(LIMIT, 1, edge, 1)], "penalize": [(LIMIT, 1, edge + 1, 1)]}[
        mode
    ]
    assert out == expected
    rec = only_record(env, "price_collar", mode)
    assert rec["asked"]["price"] == edge + 1 and rec["penalty"] == (
        1.0 if mode == "penalize" else 0.0
    )


def test_price_collar_never_pulls_a_passive_price_toward_the_market():
    env = exec_wrapped([PriceCollar(max_pct=0.01, mode="clip")])
    far = math.ceil(mid(env) * 0.99) - 1  # a buy far below the collar
    assert send(env, LIMIT, 1, far, 1, 9001) == []
    assert only_record(env, "price_collar", "block")["reason"].endswith("(cannot be clipped)")


@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_max_order_qty(mode):
    env = exec_wrapped([MaxOrderSize(max_qty=10, mode=mode)])
    bid = env.unwrapped.book.best_bid()
    assert send(env, LIMIT, 1, bid - 5, 10, 9001) == [(LIMIT, 1, bid - 5, 10)]
    out = send(env, LIMIT, 1, bid - 5, 11, 9002)
    assert (
        out
        == {"block": [], "clip": [(LIMIT, 1, bid - 5, 10)], "penalize": [(LIMIT, 1, bid - 5, 11)]}[
            mode
        ]
    )
    only_record(env, "max_order_size", mode)


def test_max_order_notional():
    env = exec_wrapped([MaxOrderSize(max_notional=1000.0)])  # clip by default
    bid = env.unwrapped.book.best_bid() - 5
    unit = bid * env.unwrapped.tick_size
    fit = int(1000.0 // unit)
    assert send(env, LIMIT, 1, bid, fit, 9001) == [(LIMIT, 1, bid, fit)]
    assert send(env, LIMIT, 1, bid, fit + 1, 9002) == [(LIMIT, 1, bid, fit)]
    assert only_record(env, "max_order_size", "clip")["done"]["qty"] == fit


@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_max_participation(mode):
    env = exec_wrapped([MaxParticipation(max_rate=0.5, mode=mode)])
    cap = int(0.5 * env.unwrapped.step_volume)  # before the first step: the warm-up's mean volume
    assert cap >= 1
    assert send(env, MARKET, 1, 0, cap, 9001) == [(MARKET, 1, 0, cap)]
    out = send(env, MARKET, 1, 0, cap + 1, 9002)
    assert (
        out
        == {"block": [], "clip": [(MARKET, 1, 0, cap)], "penalize": [(MARKET, 1, 0, cap + 1)]}[mode]
    )
    only_record(env, "max_participation", mode)
    bid = env.unwrapped.book.best_bid()
    assert send(env, LIMIT, 1, bid, 10 * cap, 9003)  # a resting limit is not capped
    ask = env.unwrapped.book.best_ask()
    out = send(env, LIMIT, 1, ask, 10 * cap, 9004)  # a marketable one is
    assert (out == [(LIMIT, 1, ask, 10 * cap)]) == (mode == "penalize")
    assert len(env.audit) == 2


@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_position_limit_counts_resting_orders(mode):
    env = exec_wrapped([PositionLimit(max_position=20, mode=mode)])
    bid = env.unwrapped.book.best_bid() - 5  # passive: rests, does not fill
    assert send(env, LIMIT, 1, bid, 12, 9001) == [(LIMIT, 1, bid, 12)]
    assert send(env, LIMIT, 1, bid, 8, 9002) == [(LIMIT, 1, bid, 8)]  # 12 + 8 = 20: inside
    out = send(env, LIMIT, 1, bid, 1, 9003)  # 21: outside; clip leaves nothing, so it blocks
    assert out == ([(LIMIT, 1, bid, 1)] if mode == "penalize" else [])
    only_record(env, "position_limit", "penalize" if mode == "penalize" else "block")


def test_position_limit_default_is_the_parent_order():
    env = exec_wrapped([PositionLimit(mode="clip")])
    bid = env.unwrapped.book.best_bid() - 5
    assert send(env, LIMIT, 1, bid, 50, 9001) == [(LIMIT, 1, bid, 50)]
    # a modify is its order's new total size: 51 is clipped back to 50 (that order is not counted twice)
    assert send(env, MODIFY, 0, 0, 51, 9001) == [(MODIFY, 0, 0, 50)]
    only_record(env, "position_limit", "clip")


@pytest.mark.parametrize("mode", ["block", "penalize"])
def test_throttle_message_rate(mode):
    env = exec_wrapped([Throttle(max_messages=2, window=1, mode=mode)])
    bid = env.unwrapped.book.best_bid() - 5
    assert send(env, LIMIT, 1, bid, 1, 9001) and send(env, LIMIT, 1, bid - 1, 1, 9002)
    assert len(env.audit) == 0
    assert bool(send(env, LIMIT, 1, bid - 2, 1, 9003)) == (mode == "penalize")
    only_record(env, "throttle", mode)
    env.engine.begin_step(env.unwrapped, 1)  # a new window: the budget is back
    assert send(env, LIMIT, 1, bid - 3, 1, 9004)


def test_throttle_order_to_trade():
    env = exec_wrapped([Throttle(max_messages=100, max_order_to_trade=4.0, min_volume=5)])
    bid = env.unwrapped.book.best_bid() - 5
    assert send(env, LIMIT, 1, bid, 4, 9001)  # 4 lots ordered, below min_volume
    assert send(env, LIMIT, 1, bid, 0 + 1, 9002) == []  # 5 ordered / max(0 filled, 1) = 5 > 4
    assert "order-to-trade 5.0 > 4.0" in only_record(env, "throttle", "block")["reason"]


@pytest.mark.parametrize("policy", SelfTradePrevention.POLICIES)
def test_self_trade_prevention(policy):
    env = exec_wrapped([SelfTradePrevention(policy=policy)])
    book = env.unwrapped.book
    ask = book.best_ask() + 10
    assert send(env, LIMIT, -1, ask, 3, 9001)  # the agent's own resting sell
    assert send(env, LIMIT, 1, ask - 1, 1, 9002)  # a buy just below it: cannot meet it
    assert len(env.audit) == 0
    out = send(env, LIMIT, 1, ask, 1, 9003)  # a buy at its price would trade with it
    rec = only_record(env, "self_trade", "cancel" if policy == "cancel_oldest" else "block")
    assert (out == []) == (policy != "cancel_oldest")
    assert (book.order(9001) is None) == (policy != "cancel_newest")
    assert rec["done"]["cancelled_orders"] == ([] if policy == "cancel_newest" else [9001])
    assert (
        book.fills(AGENT)["sold_qty"] == 0
    )  # its resting sell never traded (with itself or anyone)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SelfTradePrevention.POLICIES),
    st.lists(
        st.tuples(
            st.sampled_from([LIMIT, LIMIT, MARKET]),
            st.sampled_from([1, -1]),
            st.integers(-6, 6),
            st.integers(1, 6),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_agent_never_trades_with_itself(policy, orders):
    env = exec_wrapped([SelfTradePrevention(policy=policy)])
    base = env.unwrapped
    centre = int(mid(env))
    for i, (kind, side, offset, qty) in enumerate(orders):
        allowed = env.engine.pre_trade(
            msg(kind, side, centre + offset if kind == LIMIT else 0, qty, 9000 + i), base
        )
        if allowed.shape[0]:
            trades = base.book.process(allowed)
            own = (trades["taker_owner"] == AGENT) & (trades["maker_owner"] == AGENT)
            assert not own.any(), trades[own]


@pytest.mark.parametrize("mode", ["block", "penalize"])
def test_wash_trade(mode):
    env = exec_wrapped([WashTrade(window=2, min_size=3, mode=mode)])
    base = env.unwrapped
    env.engine.begin_step(base, 0)
    assert send(env, MARKET, -1, 0, 3, 9001)  # the agent sells 3 lots ...
    assert base.book.fills(AGENT)["sold_qty"] == 3
    bid = base.book.best_bid() - 5
    assert send(env, LIMIT, 1, bid, 2, 9002)  # ... buying 2 back offsets only 2 < 3: fine
    assert len(env.audit) == 0
    assert bool(send(env, LIMIT, 1, bid, 3, 9003)) == (mode == "penalize")  # 3 offsets 3
    only_record(env, "wash_trade", mode)
    for step in (1, 2, 3):  # three steps later the sale is out of the window
        env.engine.begin_step(base, step)
    assert send(env, LIMIT, 1, bid, 3, 9004)
    assert len(env.audit) == 1


@pytest.mark.parametrize("mode", ["block", "penalize"])
def test_duplicate_order(mode):
    env = exec_wrapped([DuplicateOrder(window=1, mode=mode)])
    base = env.unwrapped
    bid = base.book.best_bid() - 5
    env.engine.begin_step(base, 0)
    assert send(env, LIMIT, 1, bid, 2, 9001)
    env.engine.begin_step(base, 2)  # two steps later: outside a one-step window
    assert send(env, LIMIT, 1, bid, 2, 9002)
    assert len(env.audit) == 0
    env.engine.begin_step(base, 3)  # the next step: inside it
    assert bool(send(env, LIMIT, 1, bid, 2, 9003)) == (mode == "penalize")
    only_record(env, "duplicate_order", mode)


@pytest.mark.parametrize("mode", ["block", "penalize"])
def test_restricted_list(mode):
    env = exec_wrapped([RestrictedList(assets=["EXEC"], side="sell", mode=mode)])
    bid = env.unwrapped.book.best_bid()
    assert send(env, LIMIT, 1, bid - 5, 1, 9001)  # buying is allowed
    assert bool(send(env, LIMIT, -1, bid + 50, 1, 9002)) == (mode == "penalize")
    only_record(env, "restricted_list", mode)
    other = exec_wrapped(RestrictedList(assets=("OTHER",)))  # another name: nothing to do
    assert send(other, LIMIT, -1, bid + 50, 1, 9003)


@pytest.mark.parametrize("trigger", ["max_loss", "max_drawdown"])
def test_kill_switch_thresholds(trigger):
    env = exec_wrapped([KillSwitch(**{trigger: 10.0, "max_breaches": None})])
    base, eng = env.unwrapped, env.engine
    base.shortfall = 10.0  # at the limit: still trading
    eng.begin_step(base, 0)
    assert not eng.killed and len(env.audit) == 0
    base.shortfall = 10.0 + 1e-9
    eng.begin_step(base, 1)
    assert eng.killed
    only_record(env, "kill_switch", "trip")


def test_kill_switch_stops_everything_and_cancels_resting_orders():
    # every order breaks the size cap (penalised, so it rests); the third breach trips the switch
    rules = [KillSwitch(max_breaches=3), MaxOrderSize(max_qty=1, mode="penalize")]
    env = ComplianceWrapper(
        ExecutionEnv(side="buy", quantity=60, preset="calm", horizon=10, warmup_seconds=10.0), rules
    )
    base = env.unwrapped
    env.reset(seed=1)
    book = base.book
    policy = PassiveLimit(env)
    obs = env.reset(seed=1)[0]
    sent_before_trip = None
    rewards = []
    for _ in range(10):
        obs, reward, terminated, _, info = env.step(policy.predict(obs)[0])
        rewards.append(reward)
        if env.engine.killed and sent_before_trip is None:
            sent_before_trip = base.n_orders
            fills = book.fills(AGENT)
            assert all(book.order(i) is None for i in range(1, base.next_id))  # nothing rests
        if sent_before_trip is not None:
            assert base.n_orders == sent_before_trip  # no order reached the book since
            assert book.fills(AGENT) == fills
    assert terminated and sent_before_trip is not None
    assert info["unfilled_marked"] == base.remaining > 0  # the completion was blocked too
    recs = env.audit.to_dicts()
    assert [r["action"] for r in recs if r["rule"] == "kill_switch"][0] == "trip"
    assert info["compliance_violations"] == len(recs) == env.audit.count(episode=env.episode)
    # three penalised orders, 1 bp each; the third made the count and was blocked by the switch
    assert sum(r["penalty"] for r in recs) == pytest.approx(3.0)
    assert [r["rule"] for r in recs[:5]] == ["max_order_size"] * 3 + ["kill_switch"] * 2
    assert [r["action"] for r in recs[3:5]] == ["trip", "block"]


def test_penalty_is_subtracted_from_the_reward():
    rules = [MaxOrderSize(max_qty=1, mode="penalize", penalty=2.5)]
    bare = ExecutionEnv(side="buy", quantity=40, preset="calm", **EXEC_SMALL)
    wrapped = ComplianceWrapper(
        ExecutionEnv(side="buy", quantity=40, preset="calm", **EXEC_SMALL), rules
    )
    bare.reset(seed=4)
    wrapped.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(EXEC_SMALL["horizon"]):
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        o1, r1, *_ = bare.step(a)
        o2, r2, _, _, info = wrapped.step(a)
        np.testing.assert_array_equal(o1, o2)  # penalise lets the order through untouched
        n = len(wrapped.step_records)
        assert info["compliance"] == info["compliance_max_order_size"] == n
        assert info["compliance_penalty"] == 2.5 * n
        assert r2 == pytest.approx(r1 - 2.5 * n)


# ------------------------------------------------------------------------------ portfolio rules
def port_wrapped(rules):
    env = ComplianceWrapper(PortfolioEnv(**PORT_SMALL), rules=rules)
    env.reset(seed=0)
    assert env.unwrapped.tradable[env.unwrapped.t].all()
    return env


def weights(**by_index):
    a = np.zeros(PORT_SMALL["n_assets"], dtype=np.float32)
    for i, v in by_index.items():
        a[int(i[1:])] = v
    return a


def step_turnover(env, action):
    info = env.step(action)[4]
    return info["turnover"], info


@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_portfolio_position_limit(mode):
    env = port_wrapped([PositionLimit(max_position=0.25, mode=mode)])
    turnover, info = step_turnover(env, weights(a0=0.25))
    assert turnover == pytest.approx(0.25) and info["compliance"] == 0
    assert env.step_records == ()
    env.reset(seed=0)
    turnover, info = step_turnover(env, weights(a0=0.26))
    assert turnover == pytest.approx({"block": 0.0, "clip": 0.25, "penalize": 0.26}[mode], rel=1e-6)
    rec = only_record(env, "position_limit", mode)
    assert rec["asked"]["weight"] == pytest.approx(0.26)


@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_portfolio_gross_exposure(mode):
    env = port_wrapped([ExposureLimit(max_gross=0.5, max_net=None, mode=mode)])
    assert step_turnover(env, weights(a0=0.25, a1=-0.25))[0] == pytest.approx(0.5)
    env.reset(seed=0)
    turnover, _ = step_turnover(env, weights(a0=0.25, a1=-0.26))
    assert turnover == pytest.approx({"block": 0.0, "clip": 0.5, "penalize": 0.51}[mode], rel=1e-6)
    only_record(env, "exposure_limit", mode)


def test_portfolio_net_exposure():
    env = port_wrapped([ExposureLimit(max_gross=None, max_net=0.3, mode="clip")])
    assert step_turnover(env, weights(a0=0.2, a1=0.1))[0] == pytest.approx(0.3)
    env.reset(seed=0)
    turnover, info = step_turnover(env, weights(a0=0.2, a1=0.2))
    assert turnover == pytest.approx(0.3, rel=1e-6)
    assert only_record(env, "exposure_limit", "clip")["done"]["net"] == pytest.approx(0.3)


@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_portfolio_turnover(mode):
    env = port_wrapped([MaxTurnover(max_turnover=0.4, mode=mode)])
    assert step_turnover(env, weights(a0=0.2, a1=0.2))[0] == pytest.approx(0.4)
    env.reset(seed=0)
    turnover, _ = step_turnover(env, weights(a0=0.2, a1=0.21))
    assert turnover == pytest.approx({"block": 0.0, "clip": 0.4, "penalize": 0.41}[mode], rel=1e-6)
    only_record(env, "max_turnover", mode)


@pytest.mark.parametrize("mode", ["block", "clip", "penalize"])
def test_portfolio_order_notional(mode):
    env = port_wrapped([MaxOrderSize(max_notional=0.1, mode=mode)])
    assert step_turnover(env, weights(a0=0.1))[0] == pytest.approx(0.1)
    env.reset(seed=0)
    turnover, _ = step_turnover(env, weights(a0=0.11))
    assert turnover == pytest.approx({"block": 0.0, "clip": 0.1, "penalize": 0.11}[mode], rel=1e-6)
    only_record(env, "max_order_size", mode)


@pytest.mark.parametrize("mode", ["block", "penalize"])
def test_portfolio_throttle(mode):
    env = port_wrapped([Throttle(max_messages=2, window=1, mode=mode)])
    assert step_turnover(env, weights(a0=0.1, a1=0.1))[0] == pytest.approx(0.2)
    env.reset(seed=0)
    turnover, _ = step_turnover(env, weights(a0=0.1, a1=0.1, a2=0.1))
    assert turnover == pytest.approx(0.0 if mode == "block" else 0.3)
    only_record(env, "throttle", mode)


@pytest.mark.parametrize("mode", ["block", "penalize"])
def test_portfolio_restricted_list(mode):
    name = str(PortfolioEnv(**PORT_SMALL).assets[0])
    env = port_wrapped([RestrictedList(assets=[name], mode=mode)])
    assert step_turnover(env, weights(a1=0.3))[0] == pytest.approx(0.3)
    env.reset(seed=0)
    turnover, _ = step_turnover(env, weights(a0=0.3))
    assert turnover == pytest.approx(0.0 if mode == "block" else 0.3)
    assert only_record(env, "restricted_list", mode)["asked"]["asset"] == name


@pytest.mark.parametrize("mode", ["block", "penalize"])
def test_portfolio_wash_trade_and_its_penalty(mode):
    rules = [WashTrade(window=2, min_size=0.1, mode=mode)]
    env = port_wrapped(rules)
    bare = PortfolioEnv(**PORT_SMALL)
    bare.reset(seed=0)
    for a in (weights(a0=0.3), weights(a0=0.22)):  # selling 0.08 back: below min_size
        assert env.step(a)[1] == bare.step(a)[1]
    assert len(env.audit) == 0
    r_bare = bare.step(weights(a0=0.05))[1]  # selling ~0.17 back within two steps: a wash
    _, reward, _, _, info = env.step(weights(a0=0.05))
    rec = only_record(env, "wash_trade", mode)
    if mode == "block":
        assert info["turnover"] == 0.0
    else:
        assert env.unwrapped.nav == bare.nav  # the trade went through, at a documented price
        assert rec["penalty"] == 1e-3 and reward == pytest.approx(r_bare - 1e-3, abs=1e-15)


def test_portfolio_kill_switch_blocks_the_rest_of_the_episode():
    env = port_wrapped(
        [KillSwitch(max_breaches=1), PositionLimit(max_position=0.1, mode="penalize")]
    )
    rng = np.random.default_rng(0)
    tripped_at = None
    for t in range(30):
        gross_before = np.abs(env.unwrapped.weights).sum()
        turnover, info = step_turnover(env, rng.uniform(-0.3, 0.3, 8).astype(np.float32))
        if tripped_at is not None:
            # nothing the agent asks reaches the market after the trip; the env itself still
            # scales a book that drifted above max_leverage back to it
            assert turnover == pytest.approx(max(gross_before - 1.0, 0.0), abs=1e-12)
        if env.engine.killed and tripped_at is None:
            tripped_at = t
    assert tripped_at == 1  # the breach at step 0 trips the switch before step 1's orders
    assert info["compliance_violations"] == len(env.audit)


# ------------------------------------------------------------------------------ fuzz: hard limits hold
@FUZZ
@given(
    st.lists(st.lists(st.floats(-1, 1, width=32), min_size=8, max_size=8), min_size=1, max_size=12),
    st.sampled_from(["block", "clip"]),
)
def test_portfolio_hard_limits_hold_under_random_actions(actions, size_mode):
    name = str(PortfolioEnv(**PORT_SMALL).assets[3])
    rules = [
        PositionLimit(max_position=0.3),
        ExposureLimit(max_gross=0.8, max_net=0.4),
        MaxOrderSize(max_notional=0.25, mode=size_mode),
        RestrictedList(assets=[name]),
    ]
    env = ComplianceWrapper(PortfolioEnv(**PORT_SMALL), rules)
    base = env.unwrapped
    env.reset(seed=0)
    for a in actions:
        t, w_before, nav = base.t, base.weights, base.nav
        info = env.step(np.array(a, dtype=np.float32))[4]
        tradable = base.tradable[t]
        # the weights the env's step kernel traded after the checks
        w = np.where(tradable, env.engine.checked_weights, 0.0)
        w *= min(1.0, base.max_leverage / max(np.abs(w).sum(), 1e-300))  # what the env executed
        tol = 1e-6  # the limits' tolerance (float32 actions)
        assert np.abs(w).max() <= 0.3 + tol
        assert np.abs(w).sum() <= 0.8 + tol and abs(w.sum()) <= 0.4 + tol
        assert abs(w[3]) <= abs(w_before[3]) + tol  # the restricted asset never grows
        if (
            np.abs(w_before).max() <= 0.3
            and np.abs(w_before).sum() <= 0.8
            and abs(w_before.sum()) <= 0.4
        ):
            assert (
                np.abs(w - w_before).max() * nav <= 0.25 + tol
            )  # no forced reduction: order cap holds
        assert info["compliance_violations"] == len(env.audit)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.floats(-1, 1, width=32), st.floats(-1, 1, width=32), st.floats(-1, 1, width=32)
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 3),
)
def test_execution_hard_limits_hold_under_random_actions(actions, seed):
    rules = [
        MaxOrderSize(max_qty=15, mode="block"),
        PositionLimit(max_position=30),
        PriceCollar(max_pct=0.0003),
        MaxParticipation(max_rate=0.8, mode="block"),
    ]
    env = ComplianceWrapper(
        ExecutionEnv(side="buy", quantity=50, preset="volatile", **EXEC_SMALL), rules
    )
    base = env.unwrapped
    env.reset(seed=seed)
    book = base.book
    reached = []
    orig = book.process

    def spy(messages):
        for m in messages[(messages["owner"] == AGENT) & (messages["kind"] != k.CANCEL)]:
            two_sided = book.best_bid() is not None and book.best_ask() is not None
            centre = (
                0.5 * (book.best_bid() + book.best_ask()) if two_sided else None
            )  # the collar's reference
            reached.append((int(m["kind"]), int(m["price"]), int(m["qty"]), centre))
        return orig(messages)

    book.process = spy
    done, n_steps = False, 0
    while not done:
        a = np.array(actions[n_steps % len(actions)], dtype=np.float32)
        *_, terminated, truncated, info = env.step(a)
        done = terminated or truncated
        n_steps += 1
        stats = book.fills(AGENT)
        resting = sum(
            o["qty"] + o["hidden"] for i in range(1, base.next_id) if (o := book.order(i))
        )
        assert stats["bought_qty"] + resting <= 30  # position, counting what rests
        assert info["compliance_violations"] == len(env.audit)
    for kind, price, qty, m in reached:
        assert qty <= 15
        if kind == LIMIT and m is not None:
            assert abs(price - m) <= 0.0003 * m + 1e-9


# ------------------------------------------------------------------------------ transparency & baselines
@pytest.mark.parametrize("policy_cls", [TWAP, VWAP, AlmgrenChriss, Aggressive, PassiveLimit])
def test_execution_baselines_run_unchanged_when_no_rule_binds(policy_cls):
    bare = ExecutionEnv(preset="trending", **EXEC_SMALL)
    # every default rule but participation, which a schedule may well exceed in a thin step
    rules = {"preset": "default", "max_participation": False}
    wrapped = gym.make("trendgym/Execution-v0", compliance=rules, preset="trending", **EXEC_SMALL)
    a = run_execution_episode(bare, policy_cls(bare), seed=7)
    b = run_execution_episode(wrapped, policy_cls(wrapped), seed=7)
    assert b["compliance_violations"] == len(wrapped.get_wrapper_attr("audit")) == 0
    assert {k_: v for k_, v in a.items() if "compliance" not in k_} == {
        k_: v for k_, v in b.items() if "compliance" not in k_
    }


@pytest.mark.parametrize("policy_cls", [StaticTSMOM, EqualWeight])
def test_portfolio_baselines_run_unchanged_when_no_rule_binds(policy_cls):
    bare = PortfolioEnv(**PORT_SMALL)
    rules = {
        "preset": "default",
        "position_limit": {"max_position": 1.0},
        "wash_trade": False,
        "max_turnover": {"max_turnover": 10.0},
    }
    wrapped = gym.make("trendgym/Portfolio-v0", compliance=rules, **PORT_SMALL)
    a = run_episode(bare, policy_cls(bare), seed=0)
    b = run_episode(wrapped, policy_cls(wrapped), seed=0)
    assert b["compliance_violations"] == 0 and a.keys() <= b.keys()
    assert {k_: a[k_] for k_ in a if k_ != "compliance_violations"} == {
        k_: b[k_] for k_ in a if k_ != "compliance_violations"
    }


def test_strict_preset_intervenes_and_reports_it():
    env = gym.make("trendgym/Portfolio-v0", compliance="strict", **PORT_SMALL)
    info = run_episode(env, StaticTSMOM(env), seed=0)
    audit = env.get_wrapper_attr("audit")
    assert info["compliance_violations"] == len(audit) > 0


# ------------------------------------------------------------------------------ audit log
def test_audit_log_round_trips_through_jsonl_and_parquet(tmp_path):
    env = ComplianceWrapper(
        ExecutionEnv(side="sell", quantity=80, preset="volatile", **EXEC_SMALL), "strict"
    )
    run_execution_episode(env, Aggressive(env), seed=2)
    run_execution_episode(env, TWAP(env), seed=3)
    log = env.audit
    assert len(log) > 0
    for path in (tmp_path / "audit.jsonl", tmp_path / "audit.parquet"):
        getattr(log, "to_jsonl" if path.suffix == ".jsonl" else "to_parquet")(path)
        back = AuditLog.read(path)
        assert back.to_dicts() == log.to_dicts()
    summary = log.summary()
    assert summary["count"].sum() == len(log)
    assert set(summary["rule"]) == {r["rule"] for r in log.to_dicts()}
    with pytest.raises(ValueError, match="jsonl or .parquet"):
        AuditLog.read(tmp_path / "audit.csv")


# ------------------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "spec",
    [
        True,
        "default",
        "strict",
        {"price_collar": {"max_pct": 0.02}, "kill_switch": True},
        {"preset": "strict", "wash_trade": False, "mode": "penalize"},
        [{"rule": "max_order_size", "max_qty": 5}],
    ],
)
def test_json_forms_work_as_make_kwargs(spec):
    env = gym.make("trendgym/Execution-v0", compliance=spec, **EXEC_SMALL)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert isinstance(env.get_wrapper_attr("audit"), AuditLog)
    remade = gym.make(env.spec)  # the spec recreates the same stack, not a doubly wrapped one
    assert str(remade) == str(env)


def test_mode_override_and_bad_specs():
    rules = resolve_rules("default", "execution", mode="penalize")
    assert {r.name: r.mode for r in rules}["kill_switch"] == "block"  # it has only block
    assert {r.name: r.mode for r in rules}["price_collar"] == "penalize"
    with pytest.raises(ValueError, match="unknown compliance preset"):
        resolve_rules("lax", "execution")
    with pytest.raises(ValueError, match="unknown compliance rule"):
        resolve_rules({"collar": {}}, "execution")
    with pytest.raises(ValueError, match="applies to portfolio only"):
        resolve_rules([ExposureLimit()], "execution")
    with pytest.raises(ValueError, match="given twice"):
        resolve_rules([PriceCollar(), PriceCollar(max_pct=0.1)], "execution")
    with pytest.raises(ValueError, match="mode must be one of"):
        PriceCollar(mode="warn")
    with pytest.raises(ValueError, match="mode must be one of"):
        KillSwitch(mode="clip")
    with pytest.raises(ValueError, match="positive"):
        MaxOrderSize(max_qty=-1)
    with pytest.raises(TypeError):
        PriceCollar(0.01)  # keywords only: a bare number could not say what it limits
    with pytest.raises(ValueError, match="not in the universe"):
        ComplianceWrapper(PortfolioEnv(**PORT_SMALL), [RestrictedList(assets=["NOPE"])])
    with pytest.raises(ValueError, match="target_vol"):
        ComplianceWrapper(PortfolioEnv(target_vol=0.1, **PORT_SMALL), "default")
    with pytest.raises(TypeError, match="wraps Execution-v0 or Portfolio-v0"):
        ComplianceWrapper(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="pre-trade hook"):
        ComplianceWrapper(ComplianceWrapper(ExecutionEnv(**EXEC_SMALL)))


def test_invalid_actions_still_raise_through_the_wrapper():
    env = port_wrapped("default")
    with pytest.raises(ValueError):
        env.step(np.full(8, np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        env.step(np.full(8, 1.5, dtype=np.float32))
    assert len(env.audit) == 0


# ------------------------------------------------------------------------------ gym contract
def compliance_layer(env):
    """The ComplianceWrapper inside what gymnasium.make returns (checker wrappers peeled off)."""
    while not isinstance(env, ComplianceWrapper):
        env = env.env
    return env


@pytest.mark.parametrize(
    "make",
    [
        lambda: compliance_layer(
            gym.make("trendgym/Execution-v0", compliance="strict", **EXEC_SMALL)
        ),
        lambda: compliance_layer(
            gym.make("trendgym/Portfolio-v0", compliance="strict", **PORT_SMALL)
        ),
    ],
)
def test_both_checkers_pass_with_the_wrapper(make):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # gymnasium always notes that a wrapped env is not its unwrapped self; nothing else may warn
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version.*")
        gym_check(make())
        sb3_check(make(), warn=True)


@pytest.mark.parametrize(
    "env_id, kwargs", [("trendgym/Execution-v0", EXEC_SMALL), ("trendgym/Portfolio-v0", PORT_SMALL)]
)
def test_same_seed_same_episode_and_pickling(env_id, kwargs):
    def rollout(env, n=12):
        obs, _ = env.reset(seed=5)
        rng = np.random.default_rng(1)
        out = [obs]
        for _ in range(n):
            obs, r, term, trunc, info = env.step(
                rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            )
            records = env.get_wrapper_attr("step_records")
            out.append((obs, r, info, list(records)))
            if term or trunc:
                env.reset()
        return out

    a = gym.make(env_id, compliance="strict", **kwargs)
    b = gym.make(env_id, compliance="strict", **kwargs)
    ra, rb = rollout(a), rollout(b)
    assert repr(ra) == repr(rb)
    a.reset(seed=9)
    a.step(a.action_space.sample())
    c = pickle.loads(pickle.dumps(a))
    act = np.zeros(a.action_space.shape, dtype=np.float32)
    sa, sc = a.step(act), c.step(act)
    assert repr(sa) == repr(sc)
    assert len(c.get_wrapper_attr("audit")) == len(a.get_wrapper_attr("audit"))


def test_ppo_smoke_under_the_wrapper():
    torch = pytest.importorskip("torch")
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = gym.make("trendgym/Execution-v0", compliance="strict", **EXEC_SMALL)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={"net_arch": [8]},
        device="cpu",
    )
    model.learn(256)
    info = run_execution_episode(env, model, seed=0)
    assert info["compliance_violations"] == env.get_wrapper_attr("audit").count(
        episode=env.get_wrapper_attr("episode")
    )
