"""``replay_window``: Execution-v0 replay episodes confined to a window of the tape, in the
single env and the native vector env, and the refusals of windows that cannot hold one."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.lob import OrderBook
from trendgym.envs.lob.flow import OrderFlow, flow_params
from trendgym.envs.lob.record import record_flow

# 5 s warm-up and 10 decisions of 1 s: an episode spans 15 s of tape
SHORT = {"step_seconds": 1.0, "warmup_seconds": 5.0, "horizon": 10}
EPISODE = 15.0


@pytest.fixture(scope="module")
def tape():
    flow = OrderFlow(
        OrderBook(), flow_params("calm", burst_scale=1.0), np.random.default_rng(3), record=4096
    )
    flow.seed_book()
    return record_flow(flow, 300.0, resolution=0.02)  # 09:30:00 .. 09:35:00


def test_episodes_lie_inside_the_window_for_many_seeds(tape):
    lo, hi = 34_300.0, 34_340.0
    env = ExecutionEnv(replay=tape, replay_window=[lo, hi], **SHORT)
    assert env.replay_data.usable == (lo, hi)
    assert env.replay_data.episode_seconds == EPISODE
    starts = []
    for seed in range(200):
        env.reset(seed=seed)
        starts.append(env.replay_start_time)
    starts = np.array(starts)
    assert starts.min() >= lo and starts.max() + EPISODE <= hi
    # uniform over the admissible starts [lo, hi - 15]: both ends of it are reached
    assert starts.min() < lo + 2.5 and starts.max() > hi - EPISODE - 2.5
    # and the episodes run: a full one ends inside the window too
    env.reset(seed=7)
    start, done, info = env.replay_start_time, False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(3, dtype=np.float32))
        done = terminated or truncated
    assert info["replay_start_time"] == start


def test_no_window_keeps_the_whole_tape(tape):
    whole = ExecutionEnv(replay=tape, **SHORT)
    wide = ExecutionEnv(replay=tape, replay_window=[0.0, 86_400.0], **SHORT)
    assert np.array_equal(whole.replay_data.shared.span, wide.replay_data.shared.span)
    for seed in range(5):
        whole.reset(seed=seed)
        wide.reset(seed=seed)
        assert whole.replay_start_time == wide.replay_start_time


def test_the_window_is_clipped_to_the_tape(tape):
    env = ExecutionEnv(replay=tape, replay_window=(34_000, 34_260), **SHORT)
    lo, hi = env.replay_data.usable
    assert tape.time[0] < lo < tape.time[0] + 1.0 and hi == 34_260.0


def test_the_native_vector_env_takes_the_window(tape):
    lo, hi = 34_400.0, 34_430.0
    envs = gym.make_vec(
        "trendgym/Execution-v0",
        num_envs=4,
        vectorization_mode="vector_entry_point",
        replay=tape,
        replay_window=[lo, hi],
        **SHORT,
    )
    _, info = envs.reset(seed=1)
    starts = info["replay_start_time"]
    assert len(set(starts.tolist())) == 4
    assert (starts >= lo).all() and (starts + EPISODE <= hi).all()
    envs.close()


@pytest.mark.parametrize(
    ("window", "error", "words"),
    [
        ([100.0, 500.0], ValueError, ["replay_window=[100, 500]", "34200", "outside the tape"]),
        ([34_600.0, 34_700.0], ValueError, ["outside the tape", "34500"]),
        ([34_300.0, 34_310.0], ValueError, ["holds 10 s", "needs 15 s", "warm-up and horizon"]),
        ([34_490.0, 36_000.0], ValueError, ["too short for one episode", "needs 15 s"]),
        ([34_310.0, 34_300.0], ValueError, ["start < end"]),
        ([1.0, float("nan")], ValueError, ["finite"]),
        ([1.0], TypeError, ["[start, end] pair"]),
        ("34300-34400", TypeError, ["[start, end] pair"]),
        ([1.0, "2"], TypeError, ["two numbers"]),
    ],
)
def test_bad_windows_are_refused_naming_them(tape, window, error, words):
    with pytest.raises(error) as err:
        ExecutionEnv(replay=tape, replay_window=window, **SHORT)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_a_window_needs_replay():
    with pytest.raises(ValueError, match="replay_window needs replay="):
        ExecutionEnv(replay_window=[0.0, 100.0])


def test_a_tape_file_is_read_once_per_process_until_it_changes(tape, tmp_path):
    """Envs of the same files share one read (an evaluation builds one per block); a
    rewritten file is read again."""
    import os

    from trendgym.envs.lob import write_lobster

    msg, ob = tmp_path / "day_message_1.csv", tmp_path / "day_orderbook_1.csv"
    write_lobster(tape, msg, ob, levels=1)
    first = ExecutionEnv(replay=(str(msg), str(ob)), **SHORT).replay_data.tape
    again = ExecutionEnv(replay=[str(msg), str(ob)], **SHORT).replay_data.tape
    assert again is first
    st = os.stat(msg)
    os.utime(msg, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # as if rewritten
    fresh = ExecutionEnv(replay=(str(msg), str(ob)), **SHORT).replay_data.tape
    assert fresh is not first
    np.testing.assert_array_equal(fresh.messages, first.messages)
