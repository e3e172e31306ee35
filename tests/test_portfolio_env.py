"""Portfolio-v0 as a Gymnasium env: checkers, determinism, pickling, refusals, contract keys."""

import math
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import trendgym  # noqa: F401  (registers the ids)
from trendgym.envs.portfolio import INFO_KEYS, TRAINING_WINDOW, PortfolioEnv

ENV_ID = "trendgym:trendgym/Portfolio-v0"
SMALL = {"n_years": 3.0, "n_assets": 8, "warmup": 60}


@pytest.fixture(scope="module")
def default_env():
    env = gym.make(ENV_ID)
    yield env
    env.close()


def test_both_checkers_pass_without_warnings(default_env):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(default_env.unwrapped)
        sb3_check_env(default_env.unwrapped)


def test_default_env_runs_offline_on_the_futures_preset(default_env):
    u = default_env.unwrapped
    assert isinstance(u, PortfolioEnv)
    assert u.obs_layout["n_assets"] == 24 and len(u.dates) == 5220
    obs, info = default_env.reset(seed=0)
    assert obs.dtype == np.float32 and default_env.observation_space.contains(obs)
    assert set(info) == set(INFO_KEYS) and info["nav"] == 1.0 and info["date"] == u.dates[u.t]
    assert u.window == TRAINING_WINDOW  # synthetic data, no window=: bounded training episodes


def test_obs_layout_contract():
    env = PortfolioEnv(preset="equities", **SMALL)
    obs, _ = env.reset()
    lay = env.obs_layout
    n, names, glob = lay["n_assets"], lay["asset_features"], lay["global_features"]
    assert obs.shape == (n * len(names) + len(glob),)
    per_asset = obs[: n * len(names)].reshape(n, len(names))
    mask = per_asset[:, names.index("mask")]
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert np.all(per_asset[mask == 0] == 0.0)
    np.testing.assert_array_equal(mask, env.tradable[env.t])
    np.testing.assert_array_equal(
        per_asset[:, : len(env.features.asset_names)], env.features.asset[env.t]
    )
    np.testing.assert_array_equal(obs[n * len(names) :], env.features.glob[env.t])
    assert names[-2:] == ["weight", "mask"] and glob == [
        "avg_corr",
        "market_drawdown",
        "regime_similarity",
    ]
    for f in ["ret_1m", "ret_3m", "ret_6m", "ret_12m", "vol", "csmom_rank"]:
        assert f in names


def _episode(env, seed, n_steps=30):
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(7)
    out = [obs]
    for _ in range(n_steps):
        obs, r, term, trunc, info = env.step(
            rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        )
        out += [obs, np.array([r, info["nav"]])]
        if term or trunc:
            break
    return out


def test_same_seed_same_episode_bit_for_bit():
    a = gym.make(ENV_ID, window=50, **SMALL)
    b = gym.make(ENV_ID, window=50, **SMALL)
    for x, y in zip(_episode(a, 3), _episode(b, 3), strict=True):
        np.testing.assert_array_equal(x, y)
    starts = set()
    for seed in range(6):
        a.reset(seed=seed)
        starts.add(a.unwrapped.t)
    assert len(starts) > 1  # the seed moves the window


def test_pickle_round_trip_continues_identically():
    env = PortfolioEnv(window=40, **SMALL)
    env.reset(seed=1)
    env.step(np.full(8, 0.1, dtype=np.float32))
    clone = pickle.loads(pickle.dumps(env))
    a = np.linspace(-0.5, 0.5, 8).astype(np.float32)
    o1, r1, *_, i1 = env.step(a)
    o2, r2, *_, i2 = clone.step(a)
    np.testing.assert_array_equal(o1, o2)
    assert r1 == r2 and i1 == i2


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full(8, np.nan, dtype=np.float32), "NaN"),
        (np.full(8, 1.5, dtype=np.float32), "outside"),
        (np.full(7, 0.1, dtype=np.float32), "shape"),
        (np.array(["a"] * 8), "numeric"),
    ],
)
def test_bad_actions_are_refused_and_change_nothing(bad, match):
    env = PortfolioEnv(**SMALL)
    env.reset()
    t, nav, w = env.t, env.nav, env.weights
    with pytest.raises(ValueError, match=match):
        env.step(bad)
    assert env.t == t and env.nav == nav
    np.testing.assert_array_equal(env.weights, w)


def test_render_modes_are_none_or_rgb_array():
    assert gym.make(ENV_ID, render_mode=None, **SMALL).unwrapped.render_mode is None
    assert gym.make(ENV_ID, render_mode="rgb_array", **SMALL).unwrapped.render_mode == "rgb_array"
    with pytest.raises(ValueError, match="render_mode"):
        PortfolioEnv(render_mode="human", **SMALL)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"max_leverage": 0.0}, ValueError),
        ({"max_leverage": "1"}, TypeError),
        ({"reward": "sharpe"}, ValueError),
        ({"window": 10_000}, ValueError),
        ({"window": 0}, ValueError),
        ({"target_vol": -0.1}, ValueError),
        ({"costs_bps": -1.0}, ValueError),
        ({"costs_bps": {"NOPE": 1.0}}, ValueError),
        ({"start": "not a date"}, ValueError),
        ({"preset": "bonds"}, ValueError),
    ],
)
def test_bad_kwargs_are_refused(kwargs, err):
    with pytest.raises(err):
        PortfolioEnv(**{**SMALL, **kwargs})


def test_full_episode_infos_and_terminal_summary():
    env = PortfolioEnv(preset="crypto", window=None, **SMALL)
    obs, info = env.reset()
    rng = np.random.default_rng(0)
    n, done, rewards = 0, False, []
    while not done:
        obs, r, term, trunc, info = env.step(
            rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        )
        assert np.all(np.isfinite(obs)) and env.observation_space.contains(obs) and math.isfinite(r)
        assert {"nav", "date", "turnover", "costs"} <= set(info)
        assert info["date"] == env.prices.index[env.t]
        rewards.append(r)
        n += 1
        done = term or trunc
    assert trunc and not term and env.t == len(env.dates) - 1 and n == len(env.dates) - 1 - 60
    for key in [
        "total_return",
        "sharpe",
        "max_drawdown",
        "turnover",
        "costs",
        "compliance_violations",
    ]:
        assert key in info and math.isfinite(info[key])
    assert info["compliance_violations"] == 0
    assert sum(rewards) == pytest.approx(math.log(info["nav"]), abs=1e-9)  # log rewards telescope
    assert info["total_return"] == pytest.approx(info["nav"] - 1, abs=1e-12)
    with pytest.raises(RuntimeError):
        env.step(np.zeros(env.action_space.shape, dtype=np.float32))


def test_gross_leverage_is_capped():
    env = PortfolioEnv(max_leverage=1.5, costs_bps=0.0, impact_coef=0.0, **SMALL)
    env.reset()
    live = env.tradable[env.t]
    _, _, _, _, info = env.step(np.ones(8, dtype=np.float32))
    assert info["turnover"] == pytest.approx(1.5)  # from cash: executed gross = the cap
    env.reset()
    _, _, _, _, info = env.step(np.where(live, 0.1, 0.0).astype(np.float32))
    assert info["turnover"] == pytest.approx(0.1 * live.sum())  # under the cap: untouched


def test_vol_targeting_hits_the_target_roughly():
    # the whole history (window=None): the default one-year window starts at an unseeded
    # random date, and one year's realised vol strays further from the target
    env = PortfolioEnv(
        target_vol=0.10, max_leverage=5.0, costs_bps=0.0, impact_coef=0.0, window=None
    )
    env.reset()
    done, rets = False, []
    while not done:
        _, r, term, trunc, info = env.step(
            np.where(env.tradable[env.t], 0.2, 0.0).astype(np.float32)
        )
        rets.append(math.expm1(r))
        done = term or trunc
    realised = np.std(rets) * math.sqrt(261)
    assert 0.07 < realised < 0.14, realised


def test_differential_sharpe_reward_matches_moody_saffell():
    env = PortfolioEnv(reward="differential_sharpe", dsr_eta=0.05, **SMALL)
    env.reset()
    a_prev = b_prev = 0.0
    rng = np.random.default_rng(2)
    nav_prev = 1.0
    for k in range(40):
        _, d, _, _, info = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
        r = info["nav"] / nav_prev - 1
        nav_prev = info["nav"]
        var = b_prev - a_prev**2
        expected = (
            0.0
            if k == 0 or var <= 1e-12
            else ((b_prev * (r - a_prev) - 0.5 * a_prev * (r * r - b_prev)) / var**1.5)
        )
        assert d == pytest.approx(expected, rel=1e-6, abs=1e-9)
        a_prev, b_prev = a_prev + 0.05 * (r - a_prev), b_prev + 0.05 * (r * r - b_prev)


def test_start_end_and_window_bound_the_episodes():
    env = PortfolioEnv(start="2001-06-01", end="2002-06-28", window=20, **SMALL)
    for seed in range(5):
        env.reset(seed=seed)
        t0 = env.t
        assert env.dates[t0] >= pd.Timestamp("2001-06-01")
        n = 0
        done = False
        while not done:
            _, _, term, trunc, info = env.step(np.zeros(8, dtype=np.float32))
            n += 1
            done = term or trunc
        assert n == 20 and info["date"] <= pd.Timestamp("2002-06-28")


def test_signals_enter_the_observation_at_their_own_date():
    env0 = PortfolioEnv(**SMALL)
    prices = env0.prices
    signal = pd.DataFrame(
        np.arange(prices.size, dtype=float).reshape(prices.shape) % 7 - 3,
        index=prices.index,
        columns=prices.columns,
    )
    env = PortfolioEnv(prices=prices, signals={"sentiment": signal}, warmup=60)
    obs, _ = env.reset()
    names = env.obs_layout["asset_features"]
    col = names.index("sentiment")
    per_asset = obs[: 8 * len(names)].reshape(8, len(names))
    expected = np.where(env.tradable[env.t], signal.iloc[env.t].to_numpy(), 0.0)
    np.testing.assert_array_equal(per_asset[:, col], expected.astype(np.float32))
    bad = signal.iloc[1:]
    with pytest.raises(ValueError, match="misaligned"):
        PortfolioEnv(prices=prices, signals={"sentiment": bad}, warmup=60)


def test_short_user_data_gets_a_shorter_warmup():
    idx = pd.bdate_range("2023-01-02", periods=41)
    prices = pd.DataFrame({"A": np.linspace(10, 12, 41), "B": np.linspace(30, 29, 41)}, index=idx)
    env = PortfolioEnv(prices=prices, min_history=5)
    _, info = env.reset()
    assert env.t == 20 and info["date"] == idx[20]
    with pytest.raises(ValueError, match="no room"):
        PortfolioEnv(prices=prices, warmup=40)


def _frame_of(env: PortfolioEnv) -> pd.DataFrame:
    return env.prices.iloc[:, :3]


def test_window_default_is_bounded_on_synthetic_data_and_whole_span_on_yours():
    synthetic = PortfolioEnv(**SMALL)
    first, last = synthetic._span
    assert synthetic.window == TRAINING_WINDOW < last - first
    for seed in range(3):
        synthetic.reset(seed=seed)
        assert synthetic._end - synthetic.t == TRAINING_WINDOW
    whole = PortfolioEnv(window=None, **SMALL)  # explicit None: the whole span
    whole.reset(seed=0)
    assert whole.window is None and (whole.t, whole._end) == (first, last)
    short = PortfolioEnv(n_years=1.0, n_assets=4, warmup=200)  # shorter than a training window
    assert short.window is None
    yours = PortfolioEnv(prices=_frame_of(synthetic), warmup=60)  # DESIGN: prices= walks it all
    yours.reset(seed=0)
    assert yours.window is None and (yours.t, yours._end) == yours._span
    assert PortfolioEnv(prices=_frame_of(synthetic), warmup=60, window=30).window == 30


def test_every_info_has_the_same_keys_and_numeric_values():
    """Batching clients (Tianshou's buffer, TorchRL) store infos as arrays: the keys never
    change from reset to the terminal step, and each key's values stack into one numeric
    array (``date``: Timestamps throughout)."""
    env = PortfolioEnv(window=15, **SMALL)
    _, info = env.reset(seed=3)
    infos, done = [info], False
    while not done:
        _, _, term, trunc, info = env.step(np.full(8, 0.1, dtype=np.float32))
        infos.append(info)
        done = term or trunc
    assert len(infos) == 16
    for i in infos:
        assert list(i) == list(INFO_KEYS)
    for key in INFO_KEYS:
        column = np.array([i[key] for i in infos])
        if key == "date":
            assert all(isinstance(d, pd.Timestamp) for d in column)
        else:
            assert column.dtype.kind in "fiu", (key, column.dtype)
    batched = np.array([tuple(i.values()) for i in infos], dtype=object)  # one row per step
    assert batched.shape == (16, len(INFO_KEYS))
    last = infos[-1]
    for key in ("total_return", "sharpe", "max_drawdown", "turnover", "costs"):
        assert math.isfinite(last[key])
        assert all(i[key] == 0.0 for i in infos[:-1]) or key in ("turnover", "costs")
    assert last["compliance_violations"] == 0 and last["n_steps"] == 15
    assert [i["n_steps"] for i in infos] == list(range(16))
    assert [i["step_turnover"] for i in infos[1:-1]] == [i["turnover"] for i in infos[1:-1]]


def test_the_env_classes_import_from_trendgym_envs():
    from trendgym.envs import PortfolioEnv as FromEnvs
    from trendgym.envs import PortfolioVectorEnv
    from trendgym.envs.portfolio.vector import PortfolioVectorEnv as FromPackage

    assert FromEnvs is PortfolioEnv and PortfolioVectorEnv is FromPackage
