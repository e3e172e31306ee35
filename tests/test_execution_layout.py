"""Execution-v0's layouts, the grow-and-retry driver, the info contract every RL client relies
on, and pure-Python twins of the small kernels the step was split into."""

import math

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from trendgym.envs.execution import INFO_KEYS, PRESET_NAMES, ExecutionEnv, encode_action
from trendgym.envs.execution import layout as L
from trendgym.envs.execution.observe import shortfall_bps_nb
from trendgym.envs.execution.orders import _limit_price_nb, decide_nb
from trendgym.envs.execution.reset import warm_vol_bps_nb
from trendgym.envs.execution.vector import ExecutionVectorEnv
from trendgym.envs.lob.flow import FS, IS, MAX_DEPTH, N_FSTATE, N_ISTATE, N_PARAMS, PARAM
from trendgym.envs.lob.layout import STATUS, block_layout, layout
from trendgym.envs.lob.retry import run_to_done

SMALL = dict(horizon=6, warmup_seconds=10.0)


# --------------------------------------------------------------------------- layouts
def test_layouts_number_their_columns_consecutively_and_once():
    for lay in (L.EI, L.EF, L.CFG, L.PHASE, L.ORDER, L.TOB, L.OWN, L.OBS, STATUS, IS):
        assert list(lay) == list(range(len(lay))), type(lay).__name__
    offsets, width = block_layout("B", {"a": 3, "b": 1, "c": 2})
    assert tuple(offsets) == (0, 3, 4) and width == 6
    assert tuple(layout("X", "p q r")) == (0, 1, 2)


def test_flow_blocks_cover_their_arrays_exactly():
    assert PARAM.theta - PARAM.lam == MAX_DEPTH == PARAM.theta_far - PARAM.theta
    assert N_PARAMS == PARAM.burst_off + 1
    assert N_FSTATE == FS.limit_cum + MAX_DEPTH and N_ISTATE == len(IS)


def test_observation_names_bounds_and_table_come_from_one_spec():
    env = ExecutionEnv(**SMALL)
    assert env.observation_space.shape == (len(L.OBS_SPEC),)
    np.testing.assert_array_equal(env.observation_space.low, [f.low for f in L.OBS_SPEC])
    np.testing.assert_array_equal(env.observation_space.high, [f.high for f in L.OBS_SPEC])
    for i, f in enumerate(L.OBS_SPEC):
        assert f"| {i} | {f.name} | {f.meaning} |" in ExecutionEnv.__doc__
    for key in INFO_KEYS:
        assert f"| {key} |" in ExecutionEnv.__doc__
    assert "{obs_table}" not in ExecutionEnv.__doc__ and "{info_table}" not in ExecutionEnv.__doc__


def test_the_envs_are_importable_from_the_envs_package():
    from trendgym.envs import ExecutionEnv as E
    from trendgym.envs import ExecutionVectorEnv as V

    assert E is ExecutionEnv and V is ExecutionVectorEnv
    import trendgym.envs

    with pytest.raises(AttributeError, match="NoSuchEnv"):
        trendgym.envs.NoSuchEnv  # noqa: B018


# --------------------------------------------------------------------------- the driver
def test_run_to_done_grows_once_per_stop_then_calls_again():
    answers = iter([STATUS.need_slot, STATUS.need_window, STATUS.done, STATUS.need_slot])
    calls, grown = [], []

    def call():
        calls.append(1)
        return next(answers)

    run_to_done(call, grown.append)
    assert len(calls) == 3 and grown == [STATUS.need_slot, STATUS.need_window]


def test_run_to_done_passes_on_what_make_room_raises():
    def refuse(status):
        raise RuntimeError(f"cannot grow for {status}")

    with pytest.raises(RuntimeError, match="cannot grow"):
        run_to_done(lambda: STATUS.stuck, refuse)


# --------------------------------------------------------------------------- infos
def _check_info(info):
    assert tuple(info) == INFO_KEYS
    for key, value in info.items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (key, value)


def test_every_info_has_the_same_numeric_keys_from_reset_on():
    env = ExecutionEnv(**SMALL)
    for seed in range(3):
        _, info = env.reset(seed=seed)
        infos, done = [info], False
        while not done:
            _, _, done, _, info = env.step(env.action_space.sample())
            infos.append(info)
        types = [{k: type(v) for k, v in i.items()} for i in infos]
        assert all(t == types[0] for t in types)  # one dtype per key: a buffer can stack them
        for i in infos:
            _check_info(i)
        for i in infos[:-1]:  # results are 0 before the end
            assert i["shortfall_bps"] == i["avg_price"] == i["fill_rate"] == 0.0
            assert i["unfilled_marked"] == 0 and isinstance(i["fill_rate"], float)
        final = infos[-1]
        assert final["side"] in (1, -1) and PRESET_NAMES[final["preset"]] == env.preset
        for key in ("shortfall_bps", "fill_rate", "arrival_price", "avg_price", "n_orders"):
            assert math.isfinite(final[key]), key
        assert final["compliance_violations"] == 0
        stacked = {k: np.array([i[k] for i in infos]) for k in INFO_KEYS}
        assert all(a.dtype.kind in "if" for a in stacked.values())


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_infos_have_every_key_every_step(mode):
    venv = ExecutionVectorEnv(3, autoreset_mode=mode, **SMALL)
    _, infos = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    seen_end = False
    for _ in range(2 * SMALL["horizon"] + 2):
        for key in INFO_KEYS:
            assert infos[key].dtype.kind in "if" and infos[f"_{key}"].all(), key
        _, _, term, _, infos = venv.step(rng.uniform(-1, 1, (3, 3)).astype(np.float32))
        if term.any():
            seen_end = True
            rows = infos["final_info"] if mode is AutoresetMode.SAME_STEP else infos
            assert np.isfinite(rows["shortfall_bps"][term]).all()
            if mode is AutoresetMode.SAME_STEP:  # the rows are the new episodes' first infos
                assert (infos["shortfall_bps"][term] == 0.0).all()
    assert seen_end


# --------------------------------------------------------------------------- kernel twins
def _decide_twin(action, side, bid, ask, last_bid, last_ask):
    a0, a1, a2 = (float(np.float32(x)) for x in action)
    order_type = min(int((a0 + 1.0) * 0.5 * L.N_ORDER_TYPES), L.N_ORDER_TYPES - 1)
    touch = (bid or last_bid) if side == 1 else (ask or last_ask)
    return order_type, (a1 + 1.0) * 0.5, int(a2 > 0), touch


@pytest.mark.parametrize("latency", [0.0, 0.3])
def test_decide_kernel_matches_its_twin(latency):
    ep = L.new_episode(1, 2)
    fstate, istate = np.zeros((1, N_FSTATE)), np.zeros((1, N_ISTATE), dtype=np.int64)
    istate[0, IS.last_bid], istate[0, IS.last_ask] = 99, 103
    fstate[0, FS.time] = 7.0
    rng = np.random.default_rng(1)
    for _ in range(200):
        side = int(rng.choice([1, -1]))
        bid, ask = int(rng.choice([0, 100])), int(rng.choice([0, 102]))
        ep.ei[0, L.EI.side] = side
        ep.tob[0, L.TOB.bid], ep.tob[0, L.TOB.ask] = bid, ask
        action = rng.uniform(-1, 1, 3).astype(np.float32)
        if rng.random() < 0.2:
            action = encode_action(int(rng.integers(L.N_ORDER_TYPES)), float(rng.random()))
        ep.actions[0] = action
        decide_nb(0, ep, fstate, istate, latency)
        order_type, fraction, replace, touch = _decide_twin(action, side, bid, ask, 99, 103)
        assert ep.ei[0, L.EI.order_type] == order_type
        assert ep.ef[0, L.EF.fraction] == fraction
        assert ep.ei[0, L.EI.replace] == replace and ep.ei[0, L.EI.ref_touch] == touch
        want = L.PHASE.latency_flow if latency > 0 else L.PHASE.act
        assert ep.ei[0, L.EI.phase] == want
        if latency > 0:
            assert ep.ef[0, L.EF.t_end] == 7.0 + latency


def test_limit_price_kernel_matches_its_twin():
    ei, tob = np.zeros((1, len(L.EI)), dtype=np.int64), np.zeros((1, len(L.TOB)), dtype=np.int64)
    offsets = {L.ORDER.behind_2: -2, L.ORDER.behind_1: -1, L.ORDER.touch: 0, L.ORDER.inside: 1}
    for side in (1, -1):
        for touch in (1, 2, 100):
            for opposite in (0, touch + side, touch + 2 * side, touch + 5 * side):
                for order_type, offset in offsets.items():
                    ei[0, L.EI.side], ei[0, L.EI.ref_touch] = side, touch
                    tob[0, L.TOB.ask if side == 1 else L.TOB.bid] = opposite
                    price = touch + side * offset
                    one_tick = opposite != 0 and abs(opposite - touch) <= 1
                    if order_type == L.ORDER.inside and one_tick:
                        price = touch
                    assert _limit_price_nb(0, ei, tob, order_type) == max(price, 1)


def test_shortfall_and_warm_volatility_kernels_match_their_twins():
    rng = np.random.default_rng(3)
    ei, ef = np.zeros((1, len(L.EI)), dtype=np.int64), np.zeros((1, len(L.EF)))
    for _ in range(100):
        side, qty = int(rng.choice([1, -1])), int(rng.integers(1, 500))
        remaining = int(rng.integers(0, qty + 1))
        arrival, mid = 10_000 + rng.normal(0, 5), 10_000 + rng.normal(0, 5)
        cash, fees = int(rng.integers(0, 10**7)), float(rng.random() * 10)
        ei[0, L.EI.side], ei[0, L.EI.qty], ei[0, L.EI.remaining] = side, qty, remaining
        ei[0, L.EI.cash], ef[0, L.EF.arrival], ef[0, L.EF.fees] = cash, arrival, fees
        cost = side * (cash - (qty - remaining) * arrival) + fees
        cost += side * (mid - arrival) * remaining
        assert shortfall_bps_nb(0, ei, ef, mid) == cost / (qty * arrival) * 1e4
    mids = 10_000 + np.cumsum(rng.normal(0, 1, 13))
    returns = np.diff(np.log(mids)) * 1e4
    assert warm_vol_bps_nb(mids, 12) == pytest.approx(max(np.std(returns), 0.1), rel=1e-12)
    assert warm_vol_bps_nb(np.full(13, 100.0), 12) == 0.1
