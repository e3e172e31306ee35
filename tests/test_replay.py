"""Execution-v0 replaying a message tape: the agent in the real queue, taken liquidity, resets,
the vector env on one shared tape, compliance, and the kernel against its Python twin."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.replay_twin import TwinReplay
from trendgym.envs.execution import AGENT, ORDER, ExecutionEnv, encode_action
from trendgym.envs.execution.layout import EI
from trendgym.envs.execution.replay import CONSUMED
from trendgym.envs.lob import OrderBook
from trendgym.envs.lob import kernels as k
from trendgym.envs.lob.flow import IS, OrderFlow, flow_params
from trendgym.envs.lob.lobster import write_lobster
from trendgym.envs.lob.record import record_flow
from trendgym.envs.lob.tape import TAPE_DTYPE, MessageTape

WAIT = encode_action(ORDER.wait, 0.0)
# a hand-built tape's episodes: 1 s warm-up and 2 decisions of 1 s each
SHORT = {"step_seconds": 1.0, "warmup_seconds": 1.0, "horizon": 2, "fee_bps": 0.0}
END = 3.0 + 1e-6  # a hand-built tape's last message: every episode starts within 1e-6 of 0


def tape_of(rows, tick=100):
    """A tape from (time, event, id, size, book price, direction) rows (prices in ticks; a
    halt's price, -1, 0 or 1, as it is)."""
    m = np.zeros(len(rows), dtype=TAPE_DTYPE)
    for i, (t, ev, oid, size, price, d) in enumerate(rows):
        m[i] = (t, oid, size, price if ev == 7 else price * tick, ev, d)
    return MessageTape(m, tick=tick)


# the book at time 0: bids 10 (id 1) then 5 (id 2) at 100; asks 10 (id 3) at 101 and 10
# (id 5) at 102
OPEN = [
    (0.0, 1, 1, 10, 100, 1),
    (0.0, 1, 2, 5, 100, 1),
    (0.0, 1, 3, 10, 101, -1),
    (0.0, 1, 5, 10, 102, -1),
]
TAIL = [(END, 1, 99, 1, 90, 1)]  # far from the touch: only sets where the tape ends


def place(env, order_type, fraction):
    """Send one decoded action now, from the touch the agent sees (no tape runs): the last
    known quote of its side when that side is empty, as a step's decision takes it."""
    touch = env.book.best_bid() if env.side == 1 else env.book.best_ask()
    if touch is None:
        touch = int(env._flow.istate[0, IS.last_bid if env.side == 1 else IS.last_ask])
    env._act(order_type, fraction, False, touch)


def buyer(rows, quantity=10, **kw):
    env = ExecutionEnv(
        replay=tape_of(OPEN + rows + TAIL), side="buy", quantity=quantity, **SHORT, **kw
    )
    env.reset(seed=0)
    return env


def test_queue_position_under_cancels_and_executions_ahead_and_behind():
    env = buyer(
        [
            (1.2, 3, 2, 5, 100, 1),  # delete id 2 (ahead): 10 ahead
            (1.4, 1, 4, 7, 100, 1),  # a new bid behind the agent
            (1.6, 4, 1, 4, 100, 1),  # execution of id 1 (ahead): 6 ahead, no fill
            (1.8, 4, 4, 3, 100, 1),  # execution of id 4 (behind): the agent fills 3 first
        ]
    )
    assert env.t == 0 and env.remaining == 10
    place(env, ORDER.touch, 1.0)
    assert env.book.queue_ahead(env.own_id) == 15
    env.step(WAIT)
    assert env.remaining == 7
    assert env.book.queue_ahead(env.own_id) == 6
    assert env.book.order(env.own_id)["qty"] == 7
    # id 4's execution is applied as recorded (no impact): 7 - 3 left behind the agent
    assert env.book.order(4)["qty"] == 4
    assert env.book.fills(AGENT)["bought_qty"] == 3
    assert env.book.fills(AGENT)["bought_value"] == 3 * 100


def test_executions_ahead_only_move_the_agent_up():
    env = buyer([(1.5, 4, 1, 10, 100, 1), (1.6, 3, 2, 5, 100, 1)])
    place(env, ORDER.touch, 1.0)
    env.step(WAIT)
    assert env.remaining == 10  # everything ahead went, nothing reached the agent
    assert env.book.queue_ahead(env.own_id) == 0


def test_trade_through_and_hidden_executions_fill_the_agent():
    env = buyer(
        [
            (1.1, 4, 1, 10, 100, 1),  # the agent is first at 100 after these
            (1.2, 3, 2, 5, 100, 1),
            (1.3, 1, 6, 8, 99, 1),
            (1.5, 4, 6, 4, 99, 1),  # traded through the agent's price: it fills 4
            (1.7, 5, 0, 2, 100, 1),  # hidden volume at the agent's price: it fills 2 first
        ]
    )
    place(env, ORDER.touch, 1.0)
    env.step(WAIT)
    assert env.remaining == 4
    assert env.book.order(6)["qty"] == 4


def test_a_crossing_new_order_trades_with_the_agent():
    env = buyer(
        [
            (0.5, 3, 3, 10, 101, -1),  # in the warm-up: the spread widens to 100 / 102
            (1.2, 1, 7, 3, 101, -1),  # a sell at the agent's bid: all of it trades with it
            (1.4, 1, 8, 9, 101, -1),  # 7 of 9 trade with the agent, 2 rest at 101
            (1.6, 3, 7, 3, 101, -1),  # delete of the order the agent took all of
            (1.8, 2, 8, 4, 101, -1),  # cancel of more than is left: nothing left
        ],
    )
    place(env, ORDER.inside, 1.0)
    assert env.book.order(env.own_id)["price"] == 101
    env.step(WAIT)
    assert env.remaining == 0
    assert env.cash_ticks == 10 * 101
    assert env.replay_consumed == 2
    assert env.book.order(7) is None and env.book.order(8) is None
    assert env.book.best_ask() == 102 and env.book.best_bid() == 100


def test_market_order_walks_the_book_and_later_messages_on_taken_liquidity_are_counted():
    env = buyer(
        [
            (1.2, 3, 3, 10, 101, -1),  # delete of id 3, which the agent took all of
            (1.4, 4, 5, 10, 102, -1),  # execution of 10 of id 5: the agent took 5 of them
            (1.6, 2, 5, 1, 102, -1),  # and a cancel on it after it is gone
            (1.8, 1, 9, 4, 101, -1),
        ],
        quantity=15,
    )
    place(env, ORDER.market, 1.0)
    assert env.remaining == 0
    assert env.cash_ticks == 10 * 101 + 5 * 102
    assert env.book.order(5)["owner"] == CONSUMED and env.book.order(5)["qty"] == 5
    _, _, _, _, info = env.step(WAIT)
    assert info["replay_consumed"] == 2  # the delete and the execution; id 5 then is gone
    assert env.book.order(5) is None
    assert env.book.depth(-1, 5).tolist() == [[101, 4]]
    assert (env.book.levels["qty"] >= 0).all()
    _, _, terminated, _, info = env.step(WAIT)
    assert terminated and info["fill_rate"] == 1.0 and info["replay_consumed"] == 2


def test_reset_is_deterministic_and_starts_at_seeded_times():
    tape = recorded_tape()
    env = ExecutionEnv(replay=tape, horizon=8, step_seconds=1.0, warmup_seconds=2.0)
    starts = set()
    for seed in range(4):
        runs = []
        for _ in range(2):
            obs, info = env.reset(seed=seed)
            traj = [obs.tolist(), sorted(info.items())]
            rng = np.random.default_rng(seed)
            done = False
            while not done:
                obs, r, done, _, info = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
                traj += [obs.tolist(), r, sorted(info.items())]
            runs.append(traj)
        assert runs[0] == runs[1]
        starts.add(env.replay_start_time)
        assert tape.time[0] < env.replay_start_time <= tape.time[-1] - 10.0
    assert len(starts) == 4


@pytest.mark.parametrize("parallel", [False, True])
def test_vector_env_on_one_tape_matches_single_envs(parallel):
    from trendgym.envs.execution.vector import ExecutionVectorEnv

    tape = recorded_tape()
    kw = {"horizon": 6, "step_seconds": 1.0, "warmup_seconds": 2.0}
    n = 3
    venv = ExecutionVectorEnv(n, replay=tape, parallel=parallel, **kw)
    assert venv._replay.tape is venv.template._replay.tape  # one tape, not n copies
    singles = [ExecutionEnv(replay=tape, **kw) for _ in range(n)]
    rng = np.random.default_rng(1)
    for seed in (5, 11):
        vobs, _ = venv.reset(seed=seed)
        sobs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
        np.testing.assert_array_equal(vobs, np.stack(sobs))
        for _ in range(kw["horizon"]):
            acts = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
            vobs, vr, vterm, _, vinfo = venv.step(acts)
            for i, e in enumerate(singles):
                obs, r, term, _, info = e.step(acts[i])
                np.testing.assert_array_equal(vobs[i], obs)
                assert vr[i] == r and vterm[i] == term
                for key, value in info.items():
                    assert vinfo[key][i] == value, key
        assert vterm.all()


def test_compliance_wrapper_and_env_checker_on_replay():
    tape = recorded_tape()
    env = gym.make(
        "trendgym/Execution-v0", replay=tape, horizon=5, step_seconds=1.0, warmup_seconds=2.0,
        compliance="default",
    )  # fmt: skip
    env.reset(seed=0)
    done = False
    while not done:
        _, _, done, _, info = env.step(encode_action(ORDER.market, 0.5))
    assert info["fill_rate"] > 0 and "shortfall_bps" in info
    check_env(
        ExecutionEnv(replay=tape, horizon=5, step_seconds=1.0, warmup_seconds=2.0),
        skip_render_check=True,
    )


def test_lobster_files_and_bad_input(tmp_path):
    tape = recorded_tape()
    msg, ob = tmp_path / "m.csv", tmp_path / "o.csv"
    write_lobster(tape, msg, ob, levels=5)
    kw = {"horizon": 4, "step_seconds": 1.0, "warmup_seconds": 2.0}
    a = ExecutionEnv(replay=str(msg), **kw)
    b = ExecutionEnv(replay=(str(msg), str(ob)), **kw)
    c = ExecutionEnv(replay=str(msg), replay_orderbook=str(ob), **kw)
    first = [e.reset(seed=3)[0].tolist() for e in (a, b, c)]
    assert first[0] == first[1] == first[2]
    assert a.tick_size == pytest.approx(tape.tick * 1e-4)
    with pytest.raises(ValueError, match="replay: no such file"):
        ExecutionEnv(replay=str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="too short"):
        ExecutionEnv(replay=tape, horizon=10_000)
    with pytest.raises(ValueError, match="preset"):
        ExecutionEnv(replay=tape, preset="calm")
    with pytest.raises(ValueError, match="urgency"):
        ExecutionEnv(replay=tape, urgency=0.5)
    with pytest.raises(ValueError, match="max_drift"):
        ExecutionEnv(replay=tape, max_drift=0.1)
    one_sided = [(float(t), 1, t + 1, 5, 100 - t, 1) for t in range(200)]
    with pytest.raises(ValueError, match="two-sided"):
        ExecutionEnv(replay=tape_of(one_sided))
    with pytest.raises(ValueError, match="replay_orderbook"):
        ExecutionEnv(replay_orderbook=str(ob))


def test_simulated_infos_carry_the_replay_keys_as_zero():
    env = ExecutionEnv(preset="calm", horizon=3)
    _, info = env.reset(seed=0)
    assert info["replay_consumed"] == 0 and info["replay_start_time"] == 0.0
    _, _, _, _, info = env.step(WAIT)
    assert info["replay_consumed"] == 0


# ------------------------------------------------------------------ the kernel vs its twin
_TAPES = {}


def recorded_tape(seconds=150.0, seed=0, preset="calm"):
    """A simulated day recorded as a tape (the project's own flow through record.py)."""
    key = (seconds, seed, preset)
    if key not in _TAPES:
        book = OrderBook()
        flow = OrderFlow(book, flow_params(preset), np.random.default_rng(seed), record=4096)
        flow.seed_book()
        _TAPES[key] = record_flow(flow, seconds, resolution=0.05)
    return _TAPES[key]


def twin_of(env, agent_id=None):
    """The env's book as a twin: every order in queue order, tags included."""
    book = env.book
    base = int(book.meta[k.BASE])
    orders = []
    for lv in np.flatnonzero(book.levels["count"] > 0):
        s = int(book.levels["head"][lv])
        while s >= 0:
            o = book.orders[s]
            orders.append(
                (
                    int(o["id"]),
                    int(o["side"]),
                    base + int(lv),
                    int(o["qty"]),
                    o["owner"] == CONSUMED,
                )
            )
            s = int(o["next"])
    return TwinReplay(env.replay_data.tape.tick, orders, agent_id, env.side)


def assert_same_book(env, twin):
    for side in (1, -1):
        got = [tuple(x) for x in env.book.depth(side, 10_000).tolist()]
        assert got == twin.depth(side)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    order_type=st.sampled_from([ORDER.behind_1, ORDER.touch, ORDER.inside, ORDER.market]),
    fraction=st.floats(0.05, 1.0),
)
def test_replay_kernel_matches_twin(seed, order_type, fraction):
    tape = recorded_tape()
    env = ExecutionEnv(replay=tape, horizon=10, step_seconds=1.0, warmup_seconds=2.0)
    env.reset(seed=seed)
    if order_type == ORDER.market:
        twin = twin_of(env)
        twin.market(env.side, int(np.rint(fraction * env.remaining)))
        place(env, order_type, fraction)
    else:
        place(env, order_type, fraction)
        twin = twin_of(env, env.own_id if env.book.order(env.own_id) else None)
    assert_same_book(env, twin)
    assert _filled(env) == twin.filled_qty
    for _ in range(env.horizon - 1):
        c0 = int(env._ei[0, EI.cursor])
        env.step(WAIT)
        for m in tape.messages[c0 : int(env._ei[0, EI.cursor])]:
            twin.replay(*(int(m[f]) for f in ("event", "order_id", "size", "price", "direction")))
        assert_same_book(env, twin)
        assert _filled(env) == twin.filled_qty
        assert env.replay_consumed == twin.consumed_msgs


def _filled(env):
    f = env.book.fills(AGENT)
    return f["bought_qty"] if env.side == 1 else f["sold_qty"]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    actions=st.lists(st.tuples(*[st.floats(-1, 1)] * 3), min_size=12, max_size=12),
)
def test_book_never_crossed_and_fills_add_up(seed, actions):
    env = ExecutionEnv(replay=recorded_tape(), horizon=10, step_seconds=1.0, warmup_seconds=2.0)
    env.reset(seed=seed)
    for a in actions:
        _, _, done, _, info = env.step(np.array(a, dtype=np.float32))
        bid, ask = env.book.best_bid(), env.book.best_ask()
        assert bid is None or ask is None or bid < ask
        assert _filled(env) + env.remaining == env.quantity
        assert (env.book.levels["qty"] >= 0).all() and (env.book.orders["qty"] >= 0).all()
        if done:
            assert info["fill_rate"] <= 1.0
            env.reset(seed=seed + 1)


def test_checkpoints_do_not_change_episodes(monkeypatch):
    """A reset from the checkpoint before its start gives the episode a replay of the whole
    tape from message 0 gives."""
    from trendgym.envs.execution import replay_data

    tape = recorded_tape()
    kw = {"horizon": 6, "step_seconds": 1.0, "warmup_seconds": 2.0}
    near = ExecutionEnv(replay=MessageTape(tape.messages.copy(), tick=tape.tick), **kw)
    monkeypatch.setattr(replay_data, "MAX_CHECKPOINTS", 1)
    monkeypatch.setattr(replay_data, "MIN_EVERY", len(tape) + 1)
    whole = ExecutionEnv(replay=MessageTape(tape.messages.copy(), tick=tape.tick), **kw)
    assert near._replay.settings[1] < len(tape) <= whole._replay.settings[1]
    rng = np.random.default_rng(0)
    for seed in range(3):
        assert near.reset(seed=seed)[0].tolist() == whole.reset(seed=seed)[0].tolist()
        for _ in range(kw["horizon"]):
            a = rng.uniform(-1, 1, 3).astype(np.float32)
            x, y = near.step(a), whole.step(a)
            assert x[0].tolist() == y[0].tolist() and x[1:] == y[1:]


def test_dbn_file_replays_like_its_tape(tmp_path):
    pytest.importorskip("databento_dbn")
    from trendgym.envs.lob.dbn import write_dbn

    tape = recorded_tape()
    path = tmp_path / "day.mbo.dbn.zst"
    write_dbn(tape, path, zstd=True)
    kw = {"horizon": 4, "step_seconds": 1.0, "warmup_seconds": 2.0}
    from_file, in_memory = ExecutionEnv(replay=str(path), **kw), ExecutionEnv(replay=tape, **kw)
    assert from_file.tick_size == in_memory.tick_size
    assert from_file.reset(seed=2)[0].tolist() == in_memory.reset(seed=2)[0].tolist()
    a = encode_action(ORDER.market, 0.3)
    assert from_file.step(a)[1] == in_memory.step(a)[1]
