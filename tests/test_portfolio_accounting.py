"""The accounting kernels against pure-Python twins, and the env's NAV against an independent ledger."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trendgym.envs.portfolio import PortfolioEnv
from trendgym.envs.portfolio.kernels import check_action_nb, portfolio_vol_nb, rebalance_nb


def rebalance_twin(
    target, weights, tradable, ret_next, tradable_next, prop, impact, vol, rho, lev, tvol
):
    """Pure-Python twin of rebalance_nb (returns new weights instead of writing in place)."""
    n = len(target)
    w = [target[i] if tradable[i] else 0.0 for i in range(n)]
    scale = 1.0
    if tvol > 0:
        x = [w[i] * vol[i] for i in range(n)]
        var = sum(v * v for v in x) + rho * (sum(x) ** 2 - sum(v * v for v in x))
        if var > 0:
            scale = tvol / math.sqrt(var)
    gross = sum(abs(v) for v in w)
    if gross * scale > lev:
        scale = lev / gross
    w = [v * scale for v in w]
    dw = [abs(w[i] - weights[i]) for i in range(n)]
    cost = sum(dw[i] * (prop[i] + impact[i] * math.sqrt(dw[i])) for i in range(n))
    gross_ret = sum(w[i] * ret_next[i] for i in range(n))
    net = gross_ret - cost
    new = [
        w[i] * (1 + ret_next[i]) / (1 + net) if tradable_next[i] and 1 + net > 0 else 0.0
        for i in range(n)
    ]
    return net, gross_ret, cost, sum(dw), new


@st.composite
def books(draw):
    n = draw(st.integers(1, 8))
    fl = st.floats(-1, 1, allow_nan=False)

    def arr(lo, hi):
        return np.array(draw(st.lists(st.floats(lo, hi, allow_nan=False), min_size=n, max_size=n)))

    target = np.array(draw(st.lists(fl, min_size=n, max_size=n)))
    weights = arr(-2, 2)
    tradable = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    tradable_next = tradable & np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    ret = arr(-0.9, 0.9)
    prop = arr(0, 0.01)
    impact = arr(0, 0.01)
    vol = arr(0.01, 1.0)
    rho = draw(st.floats(-0.2, 1.0))
    lev = draw(st.floats(0.1, 3.0))
    tvol = draw(st.sampled_from([0.0, 0.1, 0.4]))
    return target, weights, tradable, ret, tradable_next, prop, impact, vol, rho, lev, tvol


@settings(max_examples=200, deadline=None)
@given(books())
def test_rebalance_kernel_matches_python_twin(book):
    target, weights, tradable, ret, tradable_next, prop, impact, vol, rho, lev, tvol = book
    expected = rebalance_twin(
        target, weights, tradable, ret, tradable_next, prop, impact, vol, rho, lev, tvol
    )
    w = weights.copy()
    net, gross, cost, turnover = rebalance_nb(
        target, w, tradable, ret, tradable_next, prop, impact, vol, rho, lev, tvol
    )
    assert net == pytest.approx(expected[0], abs=1e-12)
    assert gross == pytest.approx(expected[1], abs=1e-12)
    assert cost == pytest.approx(expected[2], abs=1e-12)
    assert turnover == pytest.approx(expected[3], abs=1e-12)
    np.testing.assert_allclose(w, expected[4], atol=1e-10)
    assert net == pytest.approx(gross - cost, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(-1.5, 1.5), st.just(float("nan"))), min_size=1, max_size=6))
def test_check_action_matches_twin(values):
    a = np.array(values)
    expected = (
        1 if any(math.isnan(v) for v in values) else (2 if any(abs(v) > 1 for v in values) else 0)
    )
    assert check_action_nb(a) == expected


def test_portfolio_vol_matches_full_covariance():
    w, vol, rho = np.array([0.3, -0.2, 0.5]), np.array([0.1, 0.2, 0.3]), 0.4
    cov = rho * np.outer(vol, vol)
    np.fill_diagonal(cov, vol**2)
    assert portfolio_vol_nb(w, vol, rho) == pytest.approx(math.sqrt(w @ cov @ w), rel=1e-12)


def _frame(n_days=60, n_assets=3, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2020-01-01", periods=n_days)
    prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_days, n_assets)), axis=0))
    return pd.DataFrame(prices, index=idx, columns=[f"A{i}" for i in range(n_assets)])


def test_nav_equals_independent_ledger():
    """NAV path = compounded (weights . next returns - bps x |trade|), recomputed here from prices."""
    prices = _frame(n_days=80, n_assets=4)
    prices.iloc[:30, 3] = np.nan  # a late listing
    costs = {"A0": 1.0, "A1": 5.0, "A2": 0.0, "A3": 10.0}
    env = PortfolioEnv(
        prices=prices, costs_bps=costs, max_leverage=1.5, warmup=5, min_history=3, impact_coef=0.0
    )
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=0)
    p = prices.to_numpy()
    bps = np.array([1.0, 5.0, 0.0, 10.0]) * 1e-4
    nav, w = 1.0, np.zeros(4)
    t, done = env.t, False
    total_cost = total_turnover = 0.0
    while not done:
        a = rng.uniform(-1, 1, 4).astype(np.float32)
        obs, reward, term, trunc, info = env.step(a)
        done = term or trunc
        # independent ledger: tradable = has a price and >= 3 returns of history
        first = np.argmax(~np.isnan(p), axis=0)
        live = ~np.isnan(p[t]) & (t - first >= 3)
        target = np.where(live, a.astype(np.float64), 0.0)
        gross = np.abs(target).sum()
        if gross > 1.5:
            target *= 1.5 / gross
        trade = np.abs(target - w)
        cost = (trade * bps).sum()
        r = np.where(live, p[t + 1] / p[t] - 1, 0.0)
        net = target @ r - cost
        nav *= 1 + net
        w = np.where(live, target * (1 + r) / (1 + net), 0.0)
        t += 1
        assert info["nav"] == pytest.approx(nav, rel=1e-12)
        step = "step_" if done else ""  # the last info's turnover/costs are the episode's
        assert info[step + "costs"] == pytest.approx(cost, abs=1e-15)
        assert info[step + "turnover"] == pytest.approx(trade.sum(), abs=1e-12)
        total_cost += cost
        total_turnover += trade.sum()
        assert reward == pytest.approx(math.log(1 + net), abs=1e-12)
        assert info["date"] == prices.index[t]
        np.testing.assert_allclose(env.weights, w, atol=1e-12)
    assert info["total_return"] == pytest.approx(nav - 1, rel=1e-10)
    assert info["costs"] == pytest.approx(total_cost, rel=1e-12)
    assert info["turnover"] == pytest.approx(total_turnover * 261 / info["n_steps"], rel=1e-12)


def test_square_root_impact_cost():
    prices = _frame()
    env = PortfolioEnv(prices=prices, costs_bps=0.0, warmup=30, impact_coef=0.5, participation=0.04)
    env.reset()
    a = np.array([0.5, -0.25, 0.0], dtype=np.float32)
    t = env.t
    _, _, _, _, info = env.step(a)
    vol_daily = env.features.vol[t] / math.sqrt(261)
    expected = (0.5 * vol_daily * math.sqrt(0.04) * np.abs(a.astype(float)) ** 1.5).sum()
    assert info["costs"] == pytest.approx(expected, rel=1e-9)
    assert info["costs"] > 0


def _delisting_frame():
    idx = pd.bdate_range("2021-01-04", periods=12)
    a = 100.0 * 1.01 ** np.arange(12)
    b = np.array([50, 51, 52, 50, 49, 48, 47, np.nan, np.nan, np.nan, np.nan, np.nan])
    return pd.DataFrame({"SAFE": a, "GONE": b}, index=idx)


def test_delisting_loss_reaches_nav_and_asset_is_masked():
    prices = _delisting_frame()
    env = PortfolioEnv(
        prices=prices,
        costs_bps=0.0,
        warmup=2,
        min_history=1,
        delisting_returns={"GONE": -0.3},
        impact_coef=0.0,
    )
    obs, info = env.reset()
    n_feat = len(env.obs_layout["asset_features"])
    mask_col = env.obs_layout["asset_features"].index("mask")
    hold = np.array([0.5, 0.5], dtype=np.float32)
    navs = [info["nav"]]
    while env.t < 6:  # last price of GONE is row 6
        obs, _, _, _, info = env.step(hold)
        navs.append(info["nav"])
    assert env.t == 6 and obs[1 * n_feat + mask_col] == 1.0
    w_gone = env.weights[1]
    nav_before = info["nav"]
    obs, reward, term, trunc, info = env.step(hold)  # held over the delisting
    expected_net = 0.5 * 0.01 + 0.5 * (-0.3) - 0.0  # rebalanced to 50/50 at t=6 with zero costs
    assert info["nav"] == pytest.approx(nav_before * (1 + expected_net), rel=1e-12)
    assert w_gone > 0
    # masked from then on: mask 0, the whole row zero, its weight gone, actions on it ignored
    row = obs[n_feat : 2 * n_feat]
    assert np.all(row == 0.0)
    assert env.weights[1] == 0.0
    obs, _, _, _, info2 = env.step(np.array([0.5, 1.0], dtype=np.float32))
    assert env.weights[1] == 0.0
    assert info2["nav"] == pytest.approx(info["nav"] * 1.005, rel=1e-12)  # only SAFE's 0.5 x 1%


def test_delisting_without_return_closes_at_last_price():
    prices = _delisting_frame()
    env = PortfolioEnv(prices=prices, costs_bps=0.0, warmup=6, min_history=1, impact_coef=0.0)
    env.reset()
    _, _, _, _, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
    assert info["nav"] == pytest.approx(1.0, abs=1e-15)  # closed at its last price: 0 return


def test_delisting_loss_is_never_hidden_even_with_a_total_wipeout():
    prices = _delisting_frame()
    env = PortfolioEnv(
        prices=prices,
        costs_bps=0.0,
        warmup=6,
        min_history=1,
        delisting_returns=-1.0,
        impact_coef=0.0,
    )
    env.reset()
    _, reward, term, trunc, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
    assert info["nav"] == 0.0 and term and not trunc
    assert math.isfinite(reward) and reward < -20
    assert info["total_return"] == -1.0 and info["max_drawdown"] == 1.0


def record_twin(nav, k, turnover_sum, cost_sum, dsr_a, dsr_b, t, end, net, cost, turnover,
                log_reward, eta):  # fmt: skip
    """Pure-Python twin of record_nb: the step's bookkeeping after the trade."""
    growth = 1.0 + net
    term = growth <= 1e-12
    nav = 0.0 if term else nav * growth
    k += 1
    t += 1
    if log_reward:
        reward = math.log(max(growth, 1e-12))
    else:
        da, db, var = net - dsr_a, net * net - dsr_b, dsr_b - dsr_a * dsr_a
        d = 0.0 if k <= 1 or var <= 1e-12 else (dsr_b * da - 0.5 * dsr_a * db) / var**1.5
        reward = d if math.isfinite(d) else 0.0
        dsr_a, dsr_b = dsr_a + eta * da, dsr_b + eta * db
    trunc = t >= end and not term
    return nav, k, turnover_sum + turnover, cost_sum + cost, dsr_a, dsr_b, t, reward, term, trunc


@settings(max_examples=80, deadline=None)
@given(
    net=st.floats(-1.5, 0.5),
    k=st.integers(0, 5),
    log_reward=st.booleans(),
    moments=st.tuples(st.floats(-0.05, 0.05), st.floats(0.0, 0.01)),
    until_end=st.integers(1, 3),
)
def test_record_kernel_matches_python_twin(net, k, log_reward, moments, until_end):
    from trendgym.envs.portfolio.kernels import record_nb
    from trendgym.envs.portfolio.layout import Out, PortfolioState, Settings, StepBuffers

    fstate = np.array([[1.3, 0.4, 0.01, *moments]])
    istate = np.array([[100, 100 + until_end, k]], dtype=np.int64)
    state = PortfolioState(fstate, istate, np.zeros((1, 2)), np.zeros((1, 8)))
    settings_ = Settings(1.0, 0.0, 0.05, log_reward, 10, 500, 3, 1, 10.0)
    buffers = StepBuffers(
        np.zeros((1, 4), np.float32), np.zeros((len(Out), 1)), np.zeros((2, 1), bool),
        np.zeros(1, np.int64),
    )  # fmt: skip
    ended = record_nb(0, net, 0.002, 0.3, state, settings_, buffers)
    want = record_twin(1.3, k, 0.4, 0.01, *moments, 100, 100 + until_end, net, 0.002, 0.3,
                       log_reward, 0.05)  # fmt: skip
    nav, k1, tsum, csum, a, b, t, reward, term, trunc = want
    assert fstate[0].tolist() == [nav, tsum, csum, a, b]
    assert istate[0].tolist() == [t, 100 + until_end, k1] and state.rets[0, k] == net
    out = buffers.out[:, 0]
    assert (out[Out.nav], out[Out.t], out[Out.k], out[Out.reward]) == (nav, t, k1, reward)
    assert buffers.ends[:, 0].tolist() == [term, trunc] and ended == (term or trunc)
