"""The native Execution-v0 vector env against N single envs, bit for bit, and its SB3 adapter."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import given, settings
from hypothesis import strategies as st

import trendgym  # noqa: F401  (registers the ids)
from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.execution import vector as vexec
from trendgym.envs.execution.vector import ExecutionVectorEnv
from trendgym.envs.vector import threads

FAST = {"horizon": 5, "warmup_seconds": 10.0}
VARIANTS = {
    "drawn": FAST,
    "latency_risk_crypto": {
        **FAST,
        "latency": 0.4,
        "risk_aversion": 0.5,
        "preset": "crypto",
        "side": "sell",
        "urgency": 0.9,
    },
    "volatile_buy_big": {
        **FAST,
        "preset": "volatile",
        "side": "buy",
        "quantity": 400,
        "step_seconds": 1.0,
    },
}
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP]


def _assert_infos_equal(mine, theirs):
    assert set(mine) == set(theirs), set(mine) ^ set(theirs)
    for key, want in theirs.items():
        got = mine[key]
        if key == "final_info":
            _assert_infos_equal(got, want)
        elif key == "final_obs":
            for g, w in zip(got, want, strict=True):
                assert (g is None and w is None) or np.array_equal(g, w)
        else:
            assert got.dtype == want.dtype, key
            np.testing.assert_array_equal(got, want, err_msg=key)


def _run_both(kwargs, mode, n_envs, n_steps, seed, parallel=None, action_seed=0):
    native = ExecutionVectorEnv(n_envs, autoreset_mode=mode, parallel=parallel, **kwargs)
    sync = SyncVectorEnv(
        [lambda: ExecutionEnv(**kwargs) for _ in range(n_envs)], autoreset_mode=mode
    )
    o1, i1 = native.reset(seed=seed)
    o2, i2 = sync.reset(seed=seed)
    np.testing.assert_array_equal(o1, o2)
    _assert_infos_equal(i1, i2)
    rng = np.random.default_rng(action_seed)
    ended = 0
    for _ in range(n_steps):
        a = rng.uniform(-1, 1, (n_envs, 3)).astype(np.float32)
        r1, r2 = native.step(a), sync.step(a)
        for got, want in zip(r1[:4], r2[:4], strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        _assert_infos_equal(r1[4], r2[4])
        ended += int(r1[2].sum())
    return native, ended


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_matches_n_single_envs_bit_for_bit(variant, mode):
    native, ended = _run_both(VARIANTS[variant], mode, n_envs=4, n_steps=17, seed=11)
    assert ended >= 8  # several episodes per env, autoresets included


@pytest.mark.parametrize("parallel", [True, False])
def test_prange_and_one_thread_give_the_same_trajectories(parallel):
    _run_both(FAST, AutoresetMode.SAME_STEP, n_envs=9, n_steps=12, seed=5, parallel=parallel)


def test_auto_thread_choice_tries_both_kernels_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(ExecutionVectorEnv, "parallel_min_envs", 3)
    monkeypatch.setattr(threads, "PROBE_EVERY", 4)
    auto = ExecutionVectorEnv(3, **FAST)
    serial = ExecutionVectorEnv(3, **FAST, parallel=False)
    auto.reset(seed=3)
    serial.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
        for got, want in zip(auto.step(a)[:4], serial.step(a)[:4], strict=True):
            np.testing.assert_array_equal(got, want)
    assert min(auto.kernel_steps.values()) >= 2  # timed both, then probed the slower one
    assert serial.kernel_steps["prange"] == 0


def test_growing_books_mid_step_changes_nothing(monkeypatch):
    """Tiny initial pool, window and trade buffer: every kind of growth happens mid-step,
    the envs resume where they stopped, and trajectories still match the single envs."""
    monkeypatch.setattr(vexec, "CAPACITY", 50)
    monkeypatch.setattr(vexec, "PRICE_LEVELS", 48)
    monkeypatch.setattr(vexec, "TRADE_ROOM", 4)
    kwargs = {**FAST, "preset": "trending", "urgency": 1.0, "horizon": 12, "quantity": 300}
    native, _ = _run_both(kwargs, AutoresetMode.NEXT_STEP, n_envs=3, n_steps=26, seed=2)
    assert native.growths["pool"] >= 1 and native.growths["window"] >= 1
    assert native.growths["trades"] >= 1


def test_drifting_books_move_their_window_instead_of_widening_everyone(monkeypatch):
    """A book whose prices drift recentres its own window within the shared width (widening
    every book's window for each drifting book would compound into gigabytes at N = 1024)."""
    monkeypatch.setattr(vexec, "PRICE_LEVELS", 600)
    kwargs = {**FAST, "preset": "crypto", "urgency": 1.0, "horizon": 30, "step_seconds": 10.0}
    native, _ = _run_both(kwargs, AutoresetMode.NEXT_STEP, n_envs=4, n_steps=70, seed=1)
    assert native.growths["recentre"] >= 1
    assert native.levels.shape[1] == 600 * 2 ** native.growths["window"]


@settings(max_examples=6, deadline=None)
@given(n_envs=st.integers(1, 5), seed=st.integers(0, 2**31 - 1), action_seed=st.integers(0, 99))
def test_any_batch_matches_single_envs(n_envs, seed, action_seed):
    _run_both(
        {"horizon": 3, "warmup_seconds": 5.0},
        AutoresetMode.NEXT_STEP,
        n_envs,
        7,
        seed,
        action_seed=action_seed,
    )


def test_terminal_info_identity_and_rewards_sum_to_minus_shortfall():
    venv = ExecutionVectorEnv(3, autoreset_mode=AutoresetMode.SAME_STEP, **FAST)
    venv.reset(seed=0)
    total = np.zeros(3)
    rng = np.random.default_rng(1)
    for _ in range(FAST["horizon"]):
        _, r, term, _, infos = venv.step(rng.uniform(-1, 1, (3, 3)).astype(np.float32))
        total += r
    assert term.all()
    fi = infos["final_info"]
    side = fi["side"]  # +1 buy, -1 sell
    np.testing.assert_allclose(
        fi["shortfall_bps"], side * (fi["avg_price"] / fi["arrival_price"] - 1) * 1e4
    )
    np.testing.assert_allclose(total, -fi["shortfall_bps"], atol=1e-9)
    assert set(fi) >= {
        "shortfall_bps",
        "fill_rate",
        "arrival_price",
        "avg_price",
        "n_orders",
        "compliance_violations",
    }


def test_refused_batches_name_the_env_and_change_nothing():
    venv = ExecutionVectorEnv(3, **FAST)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((3, 3), np.float32))
    obs, _ = venv.reset(seed=0)
    state = venv.ei.copy(), venv.meta.copy()
    bad = np.zeros((3, 3), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="env 1 has NaN"):
        venv.step(bad)
    bad[1, 2] = 1.5
    with pytest.raises(ValueError, match="env 1 has values outside"):
        venv.step(bad)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(venv.ei, state[0])
    np.testing.assert_array_equal(venv.meta, state[1])


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"num_envs": 0}, ValueError),
        ({"num_envs": 2.0}, TypeError),
        ({"num_envs": 2, "horizon": 0}, ValueError),
        ({"num_envs": 2, "compliance": True}, ValueError),
        ({"num_envs": 2, "parallel": "yes"}, TypeError),
        ({"num_envs": 2, "autoreset_mode": "x"}, ValueError),
    ],
)
def test_bad_arguments_are_refused(kwargs, err):
    with pytest.raises(err):
        ExecutionVectorEnv(**kwargs)


def test_disabled_autoreset_and_partial_reset_match_single_envs():
    kw = FAST
    native = ExecutionVectorEnv(2, autoreset_mode=AutoresetMode.DISABLED, **kw)
    singles = [ExecutionEnv(**kw) for _ in range(2)]
    native.reset(seed=[4, 9])
    [e.reset(seed=s) for e, s in zip(singles, (4, 9), strict=True)]
    a = np.full((2, 3), 0.9, np.float32)
    for _ in range(kw["horizon"]):
        obs, *_ = native.step(a)
    with pytest.raises(RuntimeError, match="env 0"):
        native.step(a)
    obs, _ = native.reset(options={"reset_mask": np.array([True, False])})
    want, _ = singles[0].reset()
    np.testing.assert_array_equal(obs[0], want)
    assert native.get_attr("episodes") == (2, 1)
    with pytest.raises(RuntimeError, match="env 1"):  # env 1's episode is still over
        native.step(a)
    native.reset(options={"reset_mask": np.array([False, True])})
    native.step(a)  # both run again


def test_make_vec_uses_the_native_env():
    venv = gym.make_vec(
        "trendgym/Execution-v0", num_envs=3, vectorization_mode="vector_entry_point", **FAST
    )
    assert isinstance(venv, ExecutionVectorEnv)
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (3, 12) and venv.observation_space.contains(obs)
    assert venv.get_attr("horizon") == (5, 5, 5)


def test_sb3_adapter_with_vec_normalize_monitor_and_ppo():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

    from trendgym.envs.sb3_vec import make_sb3_vec_env

    native = make_sb3_vec_env("trendgym/Execution-v0", n_envs=3, seed=0, **FAST)
    dummy = DummyVecEnv([lambda: ExecutionEnv(**FAST) for _ in range(3)])
    dummy.seed(0)
    np.testing.assert_array_equal(native.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    for _ in range(12):
        a = rng.uniform(-1, 1, (3, 3)).astype(np.float32)
        o1, r1, d1, inf1 = native.step(a)
        o2, r2, d2, inf2 = dummy.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        for x, y in zip(inf1, inf2, strict=True):
            if "terminal_observation" in y:
                np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"])
                assert x["shortfall_bps"] == y["shortfall_bps"]
    venv = VecNormalize(
        VecMonitor(make_sb3_vec_env("trendgym/Execution-v0", n_envs=4, seed=0, **FAST))
    )
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
    assert model.num_timesteps >= 256
    assert venv.venv.episode_count >= 256 // FAST["horizon"] - 4  # VecMonitor saw the episodes
    obs = venv.reset()
    assert np.isfinite(obs).all()


def test_prefetch_hint_compiles_for_2d_arrays_and_changes_nothing():
    from numba import njit
    from numba.core.errors import TypingError

    from trendgym.envs.prefetch import prefetch_nb

    @njit(cache=False)
    def hint_all(a):
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                prefetch_nb(a, i, j)
        return a.sum()

    a = np.arange(12.0).reshape(3, 4)
    assert hint_all(a) == 66.0 and np.array_equal(a, np.arange(12.0).reshape(3, 4))
    with pytest.raises(TypingError):
        hint_all(np.arange(3.0))  # a hint takes a row and a column
