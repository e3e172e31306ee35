"""``infos_nb`` against a numpy twin: every key, every row, bit for bit, on real and on
random episode states (ended and running rows, replay and calibrated codes)."""

from __future__ import annotations

import numpy as np
import pytest

from trendgym.envs.execution import INFO_KEYS, ExecutionEnv, episode_infos
from trendgym.envs.execution.layout import EF, EI, INFO_FLOAT, INFO_INT


def infos_twin(ei, ef, tick_size, ended, violations=0, calibrated=False):
    """The info entries as numpy expressions, one per key."""
    side, quantity, remaining = ei[:, EI.side], ei[:, EI.qty], ei[:, EI.remaining]
    arrival = ef[:, EF.arrival] * tick_size
    avg = (ei[:, EI.cash] + side * ef[:, EF.fees] + remaining * ef[:, EF.prev_mid]) / quantity
    avg = avg * tick_size
    market_qty = ei[:, EI.market_qty]
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = np.where(market_qty > 0, ef[:, EF.market_value] / market_qty * tick_size, arrival)
    infos = {
        "remaining": remaining,
        "running_shortfall_bps": ef[:, EF.shortfall],
        "shortfall_bps": side * (avg / arrival - 1.0) * 1e4,
        "fill_rate": ei[:, EI.filled_end] / quantity,
        "arrival_price": arrival,
        "avg_price": avg,
        "n_orders": ei[:, EI.n_orders],
        "compliance_violations": np.full(len(ei), violations, dtype=np.int64),
        "unfilled_marked": remaining,
        "market_vwap": vwap,
        "vwap_slippage_bps": side * (avg / vwap - 1.0) * 1e4,
        "side": side,
        "quantity": quantity,
        "preset": np.full_like(side, -2) if calibrated else ei[:, EI.preset],
        "urgency": ef[:, EF.urgency],
        "replay_start_time": ef[:, EF.start_time],
        "replay_consumed": ei[:, EI.consumed_msgs],
        "replay_halted": ei[:, EI.halt],
        "replay_rejected": ei[:, EI.rejected],
    }
    end_only = ("shortfall_bps", "fill_rate", "avg_price", "unfilled_marked", "market_vwap")
    for key in (*end_only, "vwap_slippage_bps"):
        infos[key] = np.where(ended, infos[key], 0)
    return infos


def assert_same(got, want):
    assert list(got) == list(INFO_KEYS)
    for key in INFO_KEYS:
        a, b = np.asarray(got[key]), np.asarray(want[key])
        assert a.dtype == b.dtype, key
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=key)


def test_every_key_has_one_row():
    assert sorted(INFO_INT._fields + INFO_FLOAT._fields) == sorted(INFO_KEYS)


@pytest.mark.parametrize("calibrated", [False, True])
def test_random_states_match_the_twin(calibrated):
    rng = np.random.default_rng(7)
    n = 97
    ei = rng.integers(-50, 5_000, (n, len(EI)), dtype=np.int64)
    ei[:, EI.side] = rng.choice([-1, 1], n)
    ei[:, EI.qty] = rng.integers(1, 400, n)
    ei[:, EI.market_qty] = rng.integers(0, 3, n) * rng.integers(1, 900, n)  # some without volume
    ef = rng.normal(1_000.0, 300.0, (n, len(EF)))
    ended = rng.random(n) < 0.4
    got = episode_infos(ei, ef, 0.01, ended, 3, calibrated=calibrated)
    assert_same(got, infos_twin(ei, ef, 0.01, ended, 3, calibrated))


def test_real_episodes_match_the_twin():
    env = ExecutionEnv()
    rng = np.random.default_rng(0)
    for seed in range(4):
        env.reset(seed=seed)
        done = False
        while not done:
            *_, done, _, _ = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
            for ended in (np.zeros(1, bool), np.ones(1, bool)):
                got = episode_infos(env._ei, env._ef, env.tick_size, ended)
                assert_same(got, infos_twin(env._ei, env._ef, env.tick_size, ended))
