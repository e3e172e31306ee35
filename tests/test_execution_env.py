"""trendgym/Execution-v0: contract, accounting, economics and the execution baselines."""

import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

import trendgym  # noqa: F401  (registers the ids)
from trendgym.agents.execution import (
    TWAP,
    VWAP,
    Aggressive,
    AlmgrenChriss,
    PassiveLimit,
    almgren_chriss_trajectory,
    run_execution_episode,
)
from trendgym.envs.execution import AGENT, OBS_HIGH, OBS_LOW, ExecutionEnv, encode_action
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.book import OrderBook

ENV_ID = "trendgym/Execution-v0"
SMALL = dict(horizon=8, warmup_seconds=10.0)  # short episodes keep the suite fast


def rollout(env, seed, n_steps=None, action_seed=None):
    """(observations, rewards, infos) of an episode under seeded random actions."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed if action_seed is None else action_seed)
    observations, rewards, infos = [obs], [], [info]
    done, t = False, 0
    while not done and (n_steps is None or t < n_steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        done = terminated or truncated
        t += 1
    return np.array(observations), np.array(rewards), infos


# ------------------------------------------------------------------------- contract
def test_make_works_from_a_fresh_interpreter_elsewhere(tmp_path):
    code = (
        "import gymnasium as gym; env = gym.make('trendgym:trendgym/Execution-v0', preset='calm'); "
        "obs, info = env.reset(seed=0); print(obs.shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "(12,)"


def test_both_checkers_pass_without_warnings():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check(gym.make(ENV_ID, **SMALL).unwrapped)
        gym_check(gym.make(ENV_ID, latency=0.5, preset="crypto", **SMALL).unwrapped)
        sb3_check(gym.make(ENV_ID, **SMALL).unwrapped, warn=True)


def test_same_seed_same_episode_bit_for_bit():
    a = rollout(ExecutionEnv(latency=0.5, **SMALL), seed=7)
    b = rollout(ExecutionEnv(latency=0.5, **SMALL), seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2][-1] == b[2][-1]
    c = rollout(ExecutionEnv(latency=0.5, **SMALL), seed=8)
    assert not np.array_equal(a[1], c[1])


def test_pickled_env_continues_identically():
    env = ExecutionEnv(**SMALL)
    env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(3):
        env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    for action in [env.action_space.sample() for _ in range(5)]:
        obs_a, reward_a, done_a, _, info_a = env.step(action)
        obs_b, reward_b, done_b, _, info_b = clone.step(action)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert (reward_a, done_a, info_a) == (reward_b, done_b, info_b)


def test_growing_the_book_mid_step_changes_nothing():
    """A tiny order pool, price window and trade buffer: the step kernel stops for room (pool,
    window, trades), the env grows them and resumes; the episode matches a roomy env's."""
    kwargs = {"preset": "trending", "urgency": 1.0, "horizon": 12, "quantity": 300}
    roomy, tight = ExecutionEnv(**kwargs), ExecutionEnv(**kwargs)
    tight.book = OrderBook(capacity=50, price_levels=48)
    tight._trades = np.zeros((1, 4), dtype=k.TRADE_DTYPE)
    tight._bind()
    start = (tight.book.orders.shape[0], tight.book.levels.shape[0], tight._trades.shape[1])
    rng = np.random.default_rng(0)
    for seed in range(3):
        for env in (roomy, tight):
            env.reset(seed=seed)
        done = False
        while not done:
            a = rng.uniform(-1, 1, 3).astype(np.float32)
            r1, r2 = roomy.step(a), tight.step(a)
            np.testing.assert_array_equal(r1[0], r2[0])
            assert r1[1:] == r2[1:]
            done = r1[2]
    grown = (tight.book.orders.shape[0], tight.book.levels.shape[0], tight._trades.shape[1])
    assert all(after > before for after, before in zip(grown, start, strict=True))


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.array([np.nan, 0, 0], dtype=np.float32), "NaN"),
        (np.array([0, 1.5, 0], dtype=np.float32), r"\[-1, 1\]"),
        (np.array([0, 0], dtype=np.float32), "shape"),
        (np.array([0, 0, np.inf], dtype=np.float32), "NaN or inf"),
    ],
)
def test_invalid_actions_are_refused_and_change_nothing(bad, error):
    env, twin = ExecutionEnv(**SMALL), ExecutionEnv(**SMALL)
    env.reset(seed=1)
    twin.reset(seed=1)
    with pytest.raises(ValueError, match=error):
        env.step(bad)
    good = encode_action(3, 0.5)
    np.testing.assert_array_equal(env.step(good)[0], twin.step(good)[0])


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"side": "long"}, "side"),
        ({"preset": "wild"}, "preset"),
        ({"quantity": 0}, "quantity"),
        ({"urgency": 1.5}, "urgency"),
        ({"latency": 5.0}, "latency"),
        ({"horizon": 0}, "horizon"),
        ({"quantity_range": (10, 5)}, "quantity_range"),
    ],
)
def test_invalid_arguments_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        ExecutionEnv(**kwargs)


def test_observations_stay_finite_and_inside_the_space_on_every_preset():
    for preset in ("calm", "volatile", "trending", "crypto"):
        env = ExecutionEnv(preset=preset, **SMALL)
        for seed in range(3):
            obs, rewards, _ = rollout(env, seed)
            assert np.isfinite(obs).all() and np.isfinite(rewards).all()
            assert (obs >= OBS_LOW).all() and (obs <= OBS_HIGH).all()


# ------------------------------------------------------------------------ accounting
@pytest.mark.parametrize("seed", range(6))
def test_rewards_sum_to_minus_shortfall_and_avg_price_identity(seed):
    env = ExecutionEnv(latency=0.3 * (seed % 2), **SMALL)
    _, rewards, infos = rollout(env, seed)
    final = infos[-1]
    assert rewards.sum() == pytest.approx(-final["shortfall_bps"], abs=1e-9)
    side = final["side"]  # +1 buy, -1 sell
    identity = side * (final["avg_price"] / final["arrival_price"] - 1.0) * 1e4
    assert final["shortfall_bps"] == pytest.approx(identity, abs=1e-9)
    assert 0.0 <= final["fill_rate"] <= 1.0
    assert final["compliance_violations"] == 0
    for key in ("arrival_price", "avg_price", "n_orders", "market_vwap", "vwap_slippage_bps"):
        assert key in final


@pytest.mark.parametrize("seed", range(6))
def test_fills_never_exceed_the_parent_and_every_trade_balances(seed):
    env = ExecutionEnv(**SMALL)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    done = False
    while not done:
        _, _, done, _, info = env.step(env.action_space.sample())
        fills = env.book.fills(AGENT)
        bought, sold = fills["bought_qty"], fills["sold_qty"]
        done_qty = bought if env.side == 1 else sold
        assert (sold if env.side == 1 else bought) == 0  # never trades against its own side
        assert done_qty == env.quantity - env.remaining <= env.quantity
        assert env.cash_ticks == (fills["bought_value"] if env.side == 1 else fills["sold_value"])
        stats = env.book.owner_stats  # every trade has a buyer and a seller at one price
        assert stats[:, 0].sum() == stats[:, 2].sum() and stats[:, 1].sum() == stats[:, 3].sum()
    assert env.remaining == 0


def test_unfilled_quantity_is_completed_at_market_and_counted():
    env = ExecutionEnv(preset="calm", urgency=0.0, quantity=40, **SMALL)
    env.reset(seed=0)
    done = False
    while not done:  # only ever waits: nothing fills before the horizon
        _, _, done, _, info = env.step(encode_action(0, 0.0))
    assert info["fill_rate"] == 0.0 and env.remaining == 0
    assert info["n_orders"] >= 1  # the forced completion is an order too


def test_resting_child_keeps_priority_when_shrunk_and_is_replaced_on_request():
    env = ExecutionEnv(preset="calm", urgency=0.0, quantity=50, side="buy", **SMALL)
    env.reset(seed=2)
    env.step(encode_action(1, 1.0))  # rest the whole parent two ticks behind the bid
    child = env.own_id
    before = env.book.order(child)
    assert before is not None and before["owner"] == AGENT
    ahead = env.book.queue_ahead(child)
    env._act(1, 0.5, False, before["price"] + 2)  # a smaller limit at the same price: resize
    after = env.book.order(child)
    assert after["price"] == before["price"] and after["qty"] + after["hidden"] == round(
        0.5 * env.remaining
    )
    assert env.book.queue_ahead(child) == ahead  # nobody jumped ahead of it
    env._act(3, 1.0, False, before["price"] + 5)  # another price, keep: unchanged
    assert env.book.order(child) == after
    env._act(3, 1.0, True, before["price"] + 5)  # another price, replace
    assert (
        env.book.order(child) is None and env.book.order(env.own_id)["price"] == before["price"] + 5
    )


# ------------------------------------------------------------------------- economics
def mean_shortfall(policy_cls, episodes=60, **kwargs):
    """Mean shortfall (bps) of `policy_cls` over seeded calm episodes."""
    env = ExecutionEnv(preset="calm", **kwargs)
    policy = policy_cls(env)
    return np.mean(
        [run_execution_episode(env, policy, seed)["shortfall_bps"] for seed in range(episodes)]
    )


@pytest.mark.parametrize("preset", ["calm", "volatile"])
def test_the_default_warm_up_reaches_the_stationary_book(preset):
    """After the default 30 s the book looks as it does after 300 s: as many resting orders
    and as much depth in the best five levels (means over 100 seeds, within 4 s.e.)."""

    def book_shape(warmup):
        env = ExecutionEnv(preset=preset, urgency=0.0, warmup_seconds=warmup)
        live, depth = [], []
        for seed in range(100):
            env.reset(seed=seed)
            live.append(env.book.meta[k.N_LIVE])
            depth.append(
                sum(q for _, q in env.book.depth(1, 5)) + sum(q for _, q in env.book.depth(-1, 5))
            )
        return np.array(live), np.array(depth)

    short, long = book_shape(ExecutionEnv().warmup_seconds), book_shape(300.0)
    for a, b in zip(short, long, strict=True):
        se = np.sqrt(a.var() / a.size + b.var() / b.size)
        assert abs(a.mean() - b.mean()) < 4 * se


def test_patience_pays_without_urgency_and_hurry_pays_with_it():
    # 200 seeded episodes per cell: the gaps are 2-3 bps, the standard errors about 0.5
    calm = dict(horizon=20, warmup_seconds=30.0, episodes=200)
    passive0, aggressive0 = (
        mean_shortfall(PassiveLimit, urgency=0.0, **calm),
        mean_shortfall(Aggressive, urgency=0.0, **calm),
    )
    passive1, aggressive1 = (
        mean_shortfall(PassiveLimit, urgency=1.0, **calm),
        mean_shortfall(Aggressive, urgency=1.0, **calm),
    )
    twap1 = mean_shortfall(TWAP, urgency=1.0, **calm)
    assert passive0 < aggressive0 - 1.0
    assert aggressive1 < passive1 and aggressive1 < twap1 - 3.0


def test_almgren_chriss_without_risk_aversion_is_twap():
    env = ExecutionEnv(**SMALL)
    for seed in range(5):
        a = run_execution_episode(env, TWAP(env), seed)
        b = run_execution_episode(env, AlmgrenChriss(env, lam=0.0), seed)
        assert a == b
    risky = [
        run_execution_episode(env, AlmgrenChriss(env, lam=1e-2), s)["shortfall_bps"]
        for s in range(5)
    ]
    twap = [run_execution_episode(env, TWAP(env), s)["shortfall_bps"] for s in range(5)]
    assert risky != twap


def test_every_baseline_runs_through_a_wrapped_env_and_completes():
    env = gym.make(ENV_ID, **SMALL)
    for cls in (TWAP, VWAP, AlmgrenChriss, Aggressive, PassiveLimit):
        info = run_execution_episode(env, cls(env), seed=4)
        assert np.isfinite(info["shortfall_bps"])
    with pytest.raises(TypeError, match="Execution-v0"):
        TWAP(gym.make("CartPole-v1"))


def test_batch_safe_baselines_accept_batches_and_env_readers_refuse_them():
    env = ExecutionEnv(**SMALL)
    obs, _ = env.reset(seed=0)
    batch = np.stack([obs, obs])
    actions, _ = TWAP(env).predict(batch)
    assert actions.shape == (2, 3)
    with pytest.raises(ValueError, match="one observation at a time"):
        VWAP(env).predict(batch)


# ------------------------------------------------------------------ Almgren–Chriss curve
def test_trajectory_is_the_twap_line_without_risk_aversion():
    x = almgren_chriss_trajectory(100.0, 1.0, 10, 0.3, 0.1, 0.0, 0.0)
    np.testing.assert_allclose(x, np.linspace(100, 0, 11), atol=1e-12)


def test_trajectory_solves_the_discrete_relation_and_front_loads():
    X, T, N, sigma, eta, gamma, lam = 1e5, 5.0, 50, 0.95, 2.5e-6, 2.5e-7, 2e-6
    x = almgren_chriss_trajectory(X, T, N, sigma, eta, gamma, lam)
    tau = T / N
    eta_t = eta - 0.5 * gamma * tau
    kappa = np.arccosh(1 + 0.5 * lam * sigma**2 / eta_t * tau**2) / tau
    assert (2 / tau**2) * (np.cosh(kappa * tau) - 1) == pytest.approx(
        lam * sigma**2 / eta_t, rel=1e-9
    )
    t = np.arange(N + 1) * tau
    np.testing.assert_allclose(x, X * np.sinh(kappa * (T - t)) / np.sinh(kappa * T))
    assert x[0] == X and x[-1] == pytest.approx(0.0, abs=1e-9)
    assert (np.diff(x) < 0).all() and (np.diff(x, 2) > 0).all()  # sells faster early: convex
    linear = np.linspace(X, 0, N + 1)
    assert (x[1:-1] < linear[1:-1]).all()


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"N": 0}, "N"),
        ({"T": -1.0}, "T"),
        ({"lam": -1.0}, "lam"),
        ({"eta": 1e-9, "gamma": 1.0}, "temporary impact"),
        ({"sigma": np.nan}, "sigma"),
    ],
)
def test_trajectory_refuses_bad_parameters(kwargs, needle):
    args = dict(X=10.0, T=1.0, N=5, sigma=0.1, eta=0.1, gamma=0.0, lam=1e-3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        almgren_chriss_trajectory(**args)


# ------------------------------------------------------------------------- training
def test_tiny_ppo_trains_on_the_env():
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    model = PPO(
        "MlpPolicy",
        ExecutionEnv(**SMALL),
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        policy_kwargs={"net_arch": [8]},
        seed=0,
    )
    model.learn(256)
    action, _ = model.predict(ExecutionEnv(**SMALL).reset(seed=0)[0], deterministic=True)
    assert action.shape == (3,)


# ------------------------------------------------------------------- pre-trade hook
def test_pre_trade_hook_sees_orders_first_and_may_only_drop_or_shrink():
    seen = []

    def halve(msgs, env):
        seen.append(msgs.copy())
        msgs["qty"] = np.maximum(msgs["qty"] // 2, 1)
        return msgs

    env = ExecutionEnv(quantity=40, side="buy", **SMALL)
    env.pre_trade = halve
    env.reset(seed=0)
    env.step(encode_action(5, 1.0))  # market for all 40: the hook lets 20 through
    assert seen[0]["qty"].tolist() == [40] and env.remaining == 20

    env.pre_trade = lambda msgs, env: msgs[:0]  # block everything, including the completion
    done = False
    while not done:
        _, _, done, _, info = env.step(encode_action(5, 1.0))
    assert info["unfilled_marked"] == 20 and info["fill_rate"] == 0.5
    side = 1
    assert info["shortfall_bps"] == pytest.approx(
        side * (info["avg_price"] / info["arrival_price"] - 1) * 1e4
    )

    def enlarge(msgs, env):
        msgs["qty"] += 1
        return msgs

    env.pre_trade = enlarge
    env.reset(seed=0)
    with pytest.raises(ValueError, match="only drop, shrink"):
        env.step(encode_action(5, 0.5))
    env.pre_trade = lambda msgs, env: list(msgs)
    with pytest.raises(TypeError, match="MESSAGE_DTYPE"):
        env.step(encode_action(5, 0.5))


def test_the_env_book_indexes_only_the_agents_orders():
    """Execution books keep the flow's orders out of the id table (the flow cancels by
    slot): after every step the table holds exactly the agent's live orders."""
    env = ExecutionEnv(**SMALL)
    env.reset(seed=2)
    env.action_space.seed(2)
    for _ in range(3 * SMALL["horizon"]):
        _, _, terminated, _, _ = env.step(env.action_space.sample())
        book = env.book
        live = book.orders[book.orders["qty"] > 0]
        in_table = set(book.keys[book.keys != k.EMPTY_KEY].tolist())
        assert in_table == set(live["id"][live["owner"] == AGENT].tolist())
        assert (live["owner"] == 0).any()  # the flow's orders rest, unindexed
        if terminated:
            env.reset()
