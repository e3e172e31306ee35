"""The native Portfolio-v0 vector env against N single envs, and the SB3 VecEnv adapter over it."""

import math
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import given, settings
from hypothesis import strategies as st

import trendgym  # noqa: F401  (registers the ids)
from trendgym.envs.portfolio import INFO_KEYS, PortfolioEnv
from trendgym.envs.portfolio.kernels import (
    check_action_nb,
    differential_sharpe_nb,
    first_refused_nb,
    trade_nb,
    vector_step_nb,
    vector_step_serial_nb,
)
from trendgym.envs.portfolio.layout import (
    Ends,
    FState,
    IState,
    MarketRow,
    Out,
    PortfolioData,
    PortfolioState,
    Resets,
    Settings,
    StepBuffers,
)
from trendgym.envs.vector import PortfolioVectorEnv

SMALL = {"n_years": 3.0, "n_assets": 8, "warmup": 60}
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]
VARIANTS = {
    "log_return": {**SMALL, "window": 20},
    "dsr_vol_target_delistings": {
        **SMALL,
        "preset": "equities",
        "window": 15,
        "reward": "differential_sharpe",
        "dsr_eta": 0.05,
        "target_vol": 0.15,
        "max_leverage": 2.0,
    },
    "whole_span": {"n_years": 1.0, "n_assets": 5, "warmup": 200, "window": None},
}


def _delisting_frame():
    idx = pd.bdate_range("2021-01-04", periods=12)
    a = 100.0 * 1.01 ** np.arange(12)
    b = np.array([50, 51, 52, 50, 49, 48, 47, np.nan, np.nan, np.nan, np.nan, np.nan])
    return pd.DataFrame({"SAFE": a, "GONE": b}, index=idx)


WIPEOUT = {  # holding GONE over its delisting (return -1) wipes NAV out: a terminated episode
    "prices": _delisting_frame(),
    "costs_bps": 0.0,
    "warmup": 2,
    "min_history": 1,
    "delisting_returns": -1.0,
    "impact_coef": 0.0,
}


def _assert_infos_equal(mine, theirs):
    """Vector infos equal key by key, masks included; dates compared as timestamps."""
    assert set(mine) == set(theirs), set(mine) ^ set(theirs)
    for key, want in theirs.items():
        got = mine[key]
        if key == "final_info":
            _assert_infos_equal(got, want)
        elif key == "final_obs":
            for g, w in zip(got, want, strict=True):
                assert (g is None and w is None) or np.array_equal(g, w)
        elif key == "date":
            mask = theirs["_date"]
            assert list(pd.to_datetime(got[mask])) == [pd.Timestamp(d) for d in want[mask]]
        else:
            assert got.dtype == want.dtype, key
            np.testing.assert_array_equal(got, want, err_msg=key)


def _assert_same_keys_every_step(infos):
    """Every vector info carries every single-env info key, with its mask."""
    keys = set(infos) - {"final_obs", "_final_obs", "final_info", "_final_info"}
    assert keys == set(INFO_KEYS) | {f"_{k}" for k in INFO_KEYS}, keys
    if "final_info" in infos:
        assert set(infos["final_info"]) == keys


def _run_both(kwargs, mode, n_envs, n_steps, seed, actions, parallel=None):
    """Step the native env and a SyncVectorEnv of single envs side by side; compare everything."""
    native = PortfolioVectorEnv(n_envs, autoreset_mode=mode, parallel=parallel, **kwargs)
    sync = SyncVectorEnv(
        [lambda: PortfolioEnv(**kwargs) for _ in range(n_envs)], autoreset_mode=mode
    )
    o1, i1 = native.reset(seed=seed)
    o2, i2 = sync.reset(seed=seed)
    np.testing.assert_array_equal(o1, o2)
    _assert_infos_equal(i1, i2)
    _assert_same_keys_every_step(i1)
    n_ended = 0
    for step in range(n_steps):
        a = actions(step)
        r1, r2 = native.step(a), sync.step(a)
        for got, want in zip(r1[:4], r2[:4], strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want, err_msg=f"step {step}")
        _assert_infos_equal(r1[4], r2[4])
        _assert_same_keys_every_step(r1[4])
        n_ended += int(np.sum(r1[2] | r1[3]))
    return native, sync, n_ended


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "prange"])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_matches_n_single_envs_bit_for_bit(variant, mode, parallel):
    kwargs = VARIANTS[variant]
    n_envs = 3
    n_assets = PortfolioEnv(**kwargs).action_space.shape[0]
    rng = np.random.default_rng(11)
    batches = rng.uniform(-1, 1, (80, n_envs, n_assets)).astype(np.float32)
    native, sync, n_ended = _run_both(
        kwargs, mode, n_envs, 80, 5, lambda k: batches[k], parallel=parallel
    )
    assert native.parallel is parallel
    assert n_ended >= n_envs  # every env went through an autoreset
    if kwargs.get("window") is not None:
        assert n_ended >= 2 * n_envs  # several episodes each, through autoreset
        # the seed moved the windows apart, and a seed-less reset continues each generator
        assert len(set(native.get_attr("t"))) > 1
        o1, _ = native.reset()
        o2, _ = sync.reset()
        np.testing.assert_array_equal(o1, o2)
        assert native.get_attr("t") == sync.get_attr("t")


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "prange"])
def test_wipeout_terminates_identically(mode, parallel):
    hold = np.array([[0.0, 1.0], [1.0, 0.0], [0.3, 0.7]], dtype=np.float32)
    native, _, n_ended = _run_both(WIPEOUT, mode, 3, 25, 0, lambda k: hold, parallel=parallel)
    assert n_ended >= 6
    assert native.episode_ends.tolist() == [11, 11, 11]


def test_float64_and_integer_actions_match_single_envs():
    native, _, _ = _run_both(
        SMALL | {"window": 10}, AutoresetMode.NEXT_STEP, 2, 12, 1, lambda k: np.full((2, 8), 0.1)
    )
    native.reset(seed=0)
    native.step(np.zeros((2, 8), dtype=np.int64))  # numeric ints are accepted, as the single env


@settings(max_examples=8, deadline=None)
@given(
    n_envs=st.integers(1, 4),
    window=st.integers(1, 12),
    seed=st.integers(0, 2**31),
    scale=st.floats(0.0, 1.0),
)
def test_any_batch_matches_single_envs(n_envs, window, seed, scale):
    rng = np.random.default_rng(seed)
    batches = (scale * rng.uniform(-1, 1, (30, n_envs, 8))).astype(np.float32)
    _run_both(
        SMALL | {"window": window}, AutoresetMode.NEXT_STEP, n_envs, 30, seed, batches.__getitem__
    )


def differential_sharpe_twin(r, a, b, k, eta):
    """Pure-Python twin of differential_sharpe_nb: (reward, new a, new b)."""
    da, db = r - a, r * r - b
    var = b - a * a
    d = 0.0 if k <= 1 or var <= 1e-12 else (b * da - 0.5 * a * db) / var**1.5
    return (d if math.isfinite(d) else 0.0), a + eta * da, b + eta * db


@settings(max_examples=100, deadline=None)
@given(
    r=st.floats(-0.5, 0.5),
    a=st.floats(-0.1, 0.1),
    b=st.floats(0.0, 0.1),
    k=st.integers(1, 5),
    eta=st.floats(0.001, 1.0),
)
def test_differential_sharpe_kernel_matches_twin(r, a, b, k, eta):
    assert differential_sharpe_nb(r, a, b, k, eta) == differential_sharpe_twin(r, a, b, k, eta)


def _bits(x):
    """The raw bits of a float array: equal bits, not just equal values (0.0 vs -0.0)."""
    x = np.ascontiguousarray(x)
    return x.view(np.uint64 if x.dtype == np.float64 else np.uint32)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n_envs=st.integers(1, 9),
    n_assets=st.integers(1, 7),
    target_vol=st.sampled_from([0.0, 0.02, 0.3]),
    max_leverage=st.floats(0.2, 3.0),
    crash=st.booleans(),
)
def test_step_kernel_matches_the_single_env_kernel(
    seed, n_envs, n_assets, target_vol, max_leverage, crash
):
    """One batched step, both drivers, against ``trade_nb`` (the single env's core) per env:
    same weights, observation, net return, costs and turnover, bit for bit."""
    rng = np.random.default_rng(seed)
    n_features, weight_col, n_days = 3, 1, 4
    market = np.zeros((n_days, 4, n_assets))
    market[:, MarketRow.tradable] = rng.random((n_days, n_assets)) < 0.75
    market[:, MarketRow.ret_next] = rng.normal(0.0, 0.6 if crash else 0.03, (n_days, n_assets))
    market[:, MarketRow.ret_next] = np.maximum(market[:, MarketRow.ret_next], -1.0)  # -1: a wipeout
    market[:, MarketRow.impact] = rng.uniform(0.0, 0.02, (n_days, n_assets))
    market[:, MarketRow.vol] = rng.uniform(0.05, 0.6, (n_days, n_assets))
    avg_corr = rng.uniform(-0.2, 0.9, n_days)
    prop_cost = rng.uniform(0.0, 1e-3, n_assets)
    static_obs = rng.normal(size=(n_days, n_assets * n_features + 2)).astype(np.float32)
    actions = rng.uniform(-1, 1, (n_envs, n_assets)).astype(np.float32)
    actions[rng.random((n_envs, n_assets)) < 0.2] = 0.0
    weights0 = rng.uniform(-3, 3, (n_envs, n_assets)) * (rng.random((n_envs, 1)) < 0.7)
    t = rng.integers(0, n_days - 1, n_envs)

    want = []
    for e in range(n_envs):
        w, ob = weights0[e].copy(), np.empty(static_obs.shape[1], np.float32)
        net, _gross, cost, turnover = trade_nb(
            actions[e].astype(np.float64), w, t[e],
            PortfolioData(market, avg_corr, prop_cost, static_obs),
            Settings(max_leverage, target_vol, 0.01, True, 0, n_days - 1, n_features,
                     weight_col, 10.0),
            ob,
        )  # fmt: skip
        want.append((w, ob, net, cost, turnover))

    for kernel in (vector_step_serial_nb, vector_step_nb):
        fstate = np.zeros((n_envs, len(FState)))
        fstate[:, FState.nav] = 1.0
        istate = np.zeros((n_envs, len(IState)), dtype=np.int64)
        istate[:, IState.t] = t
        istate[:, IState.end] = n_days - 1
        weights = weights0.copy()
        rets = np.zeros((n_envs, 3))
        obs = np.zeros((n_envs, static_obs.shape[1]), np.float32)
        step_out = np.zeros((len(Out), n_envs))
        ends = np.zeros((len(Ends), n_envs), dtype=bool)
        no_reset = np.zeros(n_envs, dtype=bool)
        n_ended = kernel(
            actions,
            Resets(no_reset, np.zeros(n_envs, np.int64), False),
            PortfolioState(fstate, istate, weights, rets),
            PortfolioData(market, avg_corr, prop_cost, static_obs),
            Settings(max_leverage, target_vol, 0.01, True, 0, n_days - 1, n_features,
                     weight_col, 10.0),
            obs,
            StepBuffers(obs.copy(), step_out, ends, np.zeros(n_envs, np.int64)),
            3,
        )  # fmt: skip
        wiped = 1.0 + np.array([net for _, _, net, _, _ in want]) <= 1e-12
        window_over = (t + 1 >= n_days - 1) & ~wiped  # the episodes end at row n_days - 1
        np.testing.assert_array_equal(ends[Ends.terminated], wiped)
        np.testing.assert_array_equal(ends[Ends.truncated], window_over)
        assert n_ended == int(np.sum(wiped | window_over))
        for e, (w, ob, net, cost, turnover) in enumerate(want):
            assert np.array_equal(_bits(weights[e]), _bits(w)), (kernel, e)
            assert np.array_equal(_bits(obs[e]), _bits(ob)), (kernel, e)
            assert _bits(rets[e, :1]) == _bits(np.array([net]))
            assert step_out[Out.cost, e] == cost and step_out[Out.turnover, e] == turnover
            growth = 1.0 + net
            assert step_out[Out.nav, e] == (0.0 if wiped[e] else growth)
            assert step_out[Out.reward, e] == math.log(max(growth, 1e-12))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.lists(
            st.sampled_from([0.0, -1.0, 1.0, 0.5, -0.25, 1.5, -2.0, np.nan, np.inf]),
            min_size=3,
            max_size=3,
        ),
        min_size=1,
        max_size=6,
    ),
    skip=st.integers(0, 63),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_batch_action_check_matches_the_single_env_check(rows, skip, dtype):
    """Per env, ``first_refused_nb`` gives ``check_action_nb``'s code; envs reset this step
    (their action unused) are never refused; the first refused env is reported."""
    actions = np.array(rows, dtype=dtype)
    reset_first = np.array([bool(skip >> i & 1) for i in range(len(rows))])
    codes = np.full(len(rows), -7, dtype=np.int64)
    got = first_refused_nb(actions, reset_first, codes)
    want = [0 if reset_first[i] else check_action_nb(actions[i]) for i in range(len(rows))]
    assert codes.tolist() == want
    refused = [i for i, c in enumerate(want) if c != 0]
    assert got == (refused[0] if refused else -1)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_uneven_chunks_over_threads_match_single_envs(mode):
    """37 envs over 4 chunks per thread: uneven contiguous ranges, same bits as single envs."""
    kwargs = SMALL | {"window": 4}
    rng = np.random.default_rng(3)
    batches = rng.uniform(-1, 1, (9, 37, 8)).astype(np.float32)
    native, _, n_ended = _run_both(kwargs, mode, 37, 9, 1, batches.__getitem__, parallel=True)
    assert native.kernel_steps["prange"] == 9 and n_ended >= 37


def test_refused_batch_names_the_env_and_changes_nothing():
    kwargs = SMALL | {"window": 10}
    native = PortfolioVectorEnv(3, **kwargs)
    sync = SyncVectorEnv([lambda: PortfolioEnv(**kwargs) for _ in range(3)])
    native.reset(seed=2)
    sync.reset(seed=2)
    good = np.full((3, 8), 0.2, dtype=np.float32)
    bad = good.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="env 1 .*NaN"):
        native.step(bad)
    bad[1, 3] = 1.5
    with pytest.raises(ValueError, match="env 1 .*outside"):
        native.step(bad)
    with pytest.raises(ValueError, match="shape"):
        native.step(good[:2])
    with pytest.raises(ValueError, match="numeric"):
        native.step(np.full((3, 8), "a"))
    for _ in range(12):  # nothing moved: still step for step equal to the single envs
        r1, r2 = native.step(good), sync.step(good)
        np.testing.assert_array_equal(r1[0], r2[0])
        np.testing.assert_array_equal(r1[1], r2[1])


def test_step_before_reset_and_disabled_autoreset():
    native = PortfolioVectorEnv(2, autoreset_mode="disabled", **SMALL, window=3)
    zeros = np.zeros((2, 8), dtype=np.float32)
    with pytest.raises(RuntimeError, match="reset"):
        native.step(zeros)
    native.reset(seed=0)
    for _ in range(3):
        *_, trunc, _ = native.step(zeros)
    assert trunc.all()
    with pytest.raises(RuntimeError, match="env 0"):
        native.step(zeros)
    obs, info = native.reset(options={"reset_mask": np.array([False, True])})
    assert info["_nav"].tolist() == [False, True]
    with pytest.raises(RuntimeError, match="env 0"):
        native.step(zeros)
    native.reset(options={"reset_mask": np.array([True, False])})
    native.step(zeros)
    with pytest.raises(ValueError, match="reset_mask"):
        native.reset(options={"reset_mask": np.array([1, 0])})


def test_partial_reset_matches_single_envs():
    kwargs = SMALL | {"window": 6}
    native = PortfolioVectorEnv(3, autoreset_mode="disabled", **kwargs)
    singles = [PortfolioEnv(**kwargs) for _ in range(3)]
    native.reset(seed=[4, None, 9])
    singles[0].reset(seed=4)
    singles[2].reset(seed=9)
    singles[1].reset(seed=None)
    # an unseeded draw: start env 1's twin where the native env 1 started
    start = native.get_attr("t")[1]
    singles[1]._state.istate[0, IState.t] = start
    singles[1]._state.istate[0, IState.end] = start + 6
    a = np.full(8, 0.1, dtype=np.float32)
    for _ in range(2):
        native.step(np.stack([a] * 3))
        for env in singles:
            env.step(a)
    mask = np.array([True, False, True])
    obs, info = native.reset(options={"reset_mask": mask})
    for i in (0, 2):
        want, _ = singles[i].reset()
        np.testing.assert_array_equal(obs[i], want)
    assert native.get_attr("nav")[1] == singles[1].nav and info["_nav"].tolist() == mask.tolist()


def test_auto_kernel_choice_changes_nothing():
    from trendgym.envs.portfolio.vector import PARALLEL_MIN_ENVS
    from trendgym.envs.vector.threads import PROBE_EVERY

    few = PortfolioVectorEnv(PARALLEL_MIN_ENVS - 1, **SMALL)
    few.reset(seed=0)
    few.step(np.zeros((PARALLEL_MIN_ENVS - 1, 8), dtype=np.float32))
    assert few.kernel_steps == {"prange": 0, "serial": 1}
    n = PARALLEL_MIN_ENVS
    auto = PortfolioVectorEnv(n, **SMALL, window=30)
    serial = PortfolioVectorEnv(n, **SMALL, window=30, parallel=False)
    auto.reset(seed=7)
    serial.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(2 * PROBE_EVERY + 5):
        a = rng.uniform(-1, 1, (n, 8)).astype(np.float32)
        for got, want in zip(auto.step(a)[:4], serial.step(a)[:4], strict=True):
            np.testing.assert_array_equal(got, want)
    # both kernels ran (timing, then at least the probes), with identical results
    assert min(auto.kernel_steps.values()) >= 2
    assert serial.kernel_steps["prange"] == 0
    with pytest.raises(TypeError, match="parallel"):
        PortfolioVectorEnv(2, parallel="yes", **SMALL)


def test_copy_flag_and_spaces():
    native = PortfolioVectorEnv(2, copy=False, **SMALL)
    o1, _ = native.reset(seed=0)
    s1 = native.step(np.zeros((2, 8), dtype=np.float32))[0]
    s2 = native.step(np.zeros((2, 8), dtype=np.float32))[0]
    assert s1 is s2  # one reused buffer
    fresh = PortfolioVectorEnv(2, **SMALL)
    fresh.reset(seed=0)
    f1 = fresh.step(np.zeros((2, 8), dtype=np.float32))[0]
    f2 = fresh.step(np.zeros((2, 8), dtype=np.float32))[0]
    assert f1 is not f2 and not np.shares_memory(f1, f2)
    assert fresh.observation_space.shape == (2, *fresh.single_observation_space.shape)
    assert fresh.observation_space.contains(f2) and f2.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"num_envs": 0}, ValueError),
        ({"num_envs": 2.0}, TypeError),
        ({"num_envs": 2, "autoreset_mode": "sometimes"}, ValueError),
        ({"num_envs": 2, "max_leverage": 0.0}, ValueError),  # the env's own checks still apply
        ({"num_envs": 2, "compliance": "default"}, ValueError),
    ],
)
def test_bad_arguments_are_refused(kwargs, err):
    with pytest.raises(err):
        PortfolioVectorEnv(**{**SMALL, **kwargs})


def test_attributes_and_calls():
    native = PortfolioVectorEnv(3, **SMALL, window=5)
    native.reset(seed=0)
    native.step(np.full((3, 8), 0.5, dtype=np.float32))
    assert len(native.get_attr("obs_layout")) == 3
    assert all(w.shape == (8,) for w in native.get_attr("weights"))
    native.set_attr("max_leverage", 0.5)
    assert native.get_attr("max_leverage") == (0.5,) * 3
    _, _, _, _, info = native.step(np.full((3, 8), 1.0, dtype=np.float32))
    assert np.all(info["turnover"] <= 1.5 + 1e-12)  # capped at 0.5 gross from <= 1 held
    with pytest.raises(ValueError, match="shared"):
        native.set_attr("max_leverage", [0.5, 0.6, 0.5])
    with pytest.raises(ValueError, match="cannot set"):
        native.set_attr("prices", None)
    summaries = native.call("episode_summary")
    assert [s["n_steps"] for s in summaries] == [2, 2, 2]
    with pytest.raises(ValueError, match="per env"):
        native.call("reset")
    with pytest.raises(AttributeError):
        native.get_attr("no_such_thing")


def test_make_vec_uses_the_native_env():
    env = gym.make_vec(
        "trendgym/Portfolio-v0", num_envs=4, vectorization_mode="vector_entry_point", **SMALL
    )
    assert isinstance(env.unwrapped, PortfolioVectorEnv) and env.num_envs == 4
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, *env.single_observation_space.shape)
    same = gym.make_vec(
        "trendgym/Portfolio-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP,
        **SMALL,
    )
    assert same.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP


def test_make_vec_from_a_fresh_interpreter_keeps_import_light(tmp_path):
    code = (
        "import sys, gymnasium as gym\n"
        "env = gym.make_vec('trendgym:trendgym/Portfolio-v0', num_envs=2,"
        " vectorization_mode='vector_entry_point', n_years=2.0, n_assets=4, warmup=60)\n"
        "obs, _ = env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"
        "from trendgym.envs.sb3_vec import make_sb3_vec_env\n"
        "heavy = [m for m in ('torch', 'stable_baselines3') if m in sys.modules]\n"
        "print(type(env.unwrapped).__name__, obs.shape, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0].startswith("PortfolioVectorEnv (2, ") and "[]" in out.stdout


# ---------------------------------------------------------------- SB3 adapter


def _sb3_pair(n_envs, seed, kwargs):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from trendgym.envs.sb3_vec import make_sb3_vec_env

    native = make_sb3_vec_env("trendgym:trendgym/Portfolio-v0", n_envs, seed=seed, **kwargs)
    dummy = DummyVecEnv([lambda: PortfolioEnv(**kwargs) for _ in range(n_envs)])
    dummy.seed(seed)
    return native, dummy


def test_sb3_adapter_matches_dummy_vec_env():
    kwargs = SMALL | {"window": 7}
    native, dummy = _sb3_pair(3, 21, kwargs)
    np.testing.assert_array_equal(native.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    n_done = 0
    for _ in range(30):
        a = rng.uniform(-1, 1, (3, 8)).astype(np.float32)
        obs1, rew1, done1, infos1 = native.step(a)
        obs2, rew2, done2, infos2 = dummy.step(a)
        np.testing.assert_array_equal(obs1, obs2)
        np.testing.assert_array_equal(rew1, rew2)
        np.testing.assert_array_equal(done1, done2)
        assert rew1.dtype == rew2.dtype and done1.dtype == done2.dtype
        for i in np.flatnonzero(done1):
            n_done += 1
            mine, theirs = infos1[i], infos2[i]
            np.testing.assert_array_equal(
                mine["terminal_observation"], theirs["terminal_observation"]
            )
            assert mine.keys() == theirs.keys()
            for key in theirs:
                if key not in ("terminal_observation", "date"):
                    assert mine[key] == theirs[key], key
            assert mine["TimeLimit.truncated"] is True
            assert pd.Timestamp(mine["date"]) == theirs["date"]
            assert native.reset_infos[i]["nav"] == 1.0
    assert n_done >= 9


def test_sb3_vec_env_api():
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import VecEnv

    from trendgym.envs.sb3_vec import make_sb3_vec_env
    from trendgym.envs.vector.sb3 import NativeVecEnv

    venv = make_sb3_vec_env("trendgym/Portfolio-v0", n_envs=4, **SMALL, window=5)
    assert isinstance(venv, VecEnv) and venv.num_envs == 4
    assert venv.seed(3) == [3, 4, 5, 6]
    obs = venv.reset()
    assert obs.shape == (4, *venv.observation_space.shape)
    assert venv.get_attr("t", indices=[1, 2]) == list(venv.venv.get_attr("t")[1:3])
    assert venv.get_attr("render_mode") == [None] * 4
    assert venv.env_is_wrapped(Monitor) == [False] * 4
    venv.set_attr("max_leverage", 0.25)
    assert venv.get_attr("max_leverage", indices=0) == [0.25]
    with pytest.raises(ValueError, match="all"):
        venv.set_attr("max_leverage", 0.5, indices=[0])
    venv.step_async(np.zeros((4, 8), dtype=np.float32))
    _, _, _, infos = venv.step_wait()
    assert infos == [{}, {}, {}, {}]
    assert [s["n_steps"] for s in venv.env_method("episode_summary", indices=[0, 3])] == [1, 1]
    with pytest.warns(UserWarning, match="render_mode"):
        assert venv.render() is None  # no render mode: SB3 warns and returns None
    venv.close()
    with pytest.raises(ValueError, match="same step"):
        NativeVecEnv(PortfolioVectorEnv(2, **SMALL))
    with pytest.raises(ValueError, match="n_envs"):
        make_sb3_vec_env("trendgym/Portfolio-v0", n_envs=0)
    gym.register(id="trendgym-test/NoVector-v0", entry_point=PortfolioEnv)
    try:
        with pytest.raises(ValueError, match="vector_entry_point"):
            make_sb3_vec_env("trendgym-test/NoVector-v0", n_envs=2)
    finally:
        del gym.registry["trendgym-test/NoVector-v0"]


def test_vec_normalize_and_vec_monitor_on_top():
    from stable_baselines3.common.vec_env import VecMonitor, VecNormalize

    from trendgym.envs.sb3_vec import make_sb3_vec_env

    raw = make_sb3_vec_env("trendgym/Portfolio-v0", n_envs=4, seed=0, **SMALL, window=6)
    venv = VecNormalize(VecMonitor(raw), norm_reward=True)
    obs = venv.reset()
    returns = np.zeros(4)
    episodes = []
    for _ in range(13):
        obs, rew, done, infos = venv.step(np.full((4, 8), 0.3, dtype=np.float32))
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rew))
        returns += venv.get_original_reward()
        for i in np.flatnonzero(done):
            ep = infos[i]["episode"]
            assert ep["l"] == 6
            assert ep["r"] == pytest.approx(returns[i], abs=1e-5)  # VecMonitor sums raw rewards
            assert ep["r"] == pytest.approx(math.log(infos[i]["nav"]), abs=1e-5)
            assert infos[i]["terminal_observation"].shape == obs.shape[1:]
            episodes.append(ep)
            returns[i] = 0.0
    assert len(episodes) == 8
    np.testing.assert_array_equal(venv.get_original_obs().shape, obs.shape)


def test_ppo_trains_on_the_native_vec_env():
    from stable_baselines3 import PPO

    from trendgym.envs.sb3_vec import make_sb3_vec_env

    venv = make_sb3_vec_env("trendgym/Portfolio-v0", n_envs=8, seed=0, **SMALL, window=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no SB3 complaint about the VecEnv
        model = PPO(
            "MlpPolicy",
            venv,
            n_steps=32,
            batch_size=64,
            n_epochs=1,
            policy_kwargs={"net_arch": [8]},
            seed=0,
            device="cpu",
        )
    model.learn(256)
    assert model.num_timesteps == 256 and len(model.ep_info_buffer) == 0  # no Monitor: no stats
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (8, 8)
