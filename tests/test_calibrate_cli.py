"""``trendgym calibrate`` on a LOBSTER tape the project writes, the facts it adds, and training
Execution-v0 on the calibrated flow (``flow=``)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.lob import (
    MessageTape,
    OrderBook,
    calibrate_flow,
    read_lobster,
    record_flow,
    write_lobster,
)
from trendgym.envs.lob import rebuild_nb as rb
from trendgym.envs.lob.calibrate import load_calibration, save_calibration
from trendgym.envs.lob.flow import OrderFlow, flow_params
from trendgym.envs.lob.tape_facts import FACT_NAMES, lag_autocorr, tape_facts, touch_ofi
from trendgym.train.calibrate_cli import CALIBRATION_JSON, CALIBRATION_PNG
from trendgym.train.cli import main

TINY = {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}


def _flow_tape(seconds: float, seed: int) -> MessageTape:
    flow = OrderFlow(
        OrderBook(), flow_params("calm", burst_scale=1.0), np.random.default_rng(seed), record=4096
    )
    flow.seed_book()
    return record_flow(flow, seconds, resolution=0.02)


@pytest.fixture(scope="module")
def lobster(tmp_path_factory) -> tuple:
    """A 10-minute LOBSTER message and orderbook file pair that starts after the book was
    built: the orders resting at its start are known only from the orderbook's first row."""
    tape = _flow_tape(600.0, seed=5)
    keep = tape.time > tape.time[0]
    cut = MessageTape(tape.messages[keep].copy(), tick=100, orderbook=tape.snapshots(10)[keep])
    root = tmp_path_factory.mktemp("lobster")
    msg, ob = root / "SIM_2026-12-07_message_10.csv", root / "SIM_2026-12-07_orderbook_10.csv"
    write_lobster(cut, msg, ob, levels=10)
    return msg, ob


@pytest.fixture(scope="module")
def calibrated(lobster, tmp_path_factory):
    """What ``trendgym calibrate`` printed and wrote, and where."""
    out = tmp_path_factory.mktemp("cal") / "run"
    capture = pytest.MonkeyPatch()
    import io
    import sys

    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    capture.setattr(sys, "stderr", stderr)
    try:
        code = main(["calibrate", str(lobster[0]), str(lobster[1]), "--out", str(out)])
    finally:
        capture.undo()
    return code, stdout.getvalue(), stderr.getvalue(), out


# ------------------------------------------------------------------------ the facts
def _ofi_twin(top: np.ndarray) -> list[float]:
    """Cont, Kukanov & Stoikov's e_n message by message, as written in their paper."""
    out = [0.0]
    for n in range(1, top.shape[0]):
        a1, qa1, b1, qb1 = top[n]
        a0, qa0, b0, qb0 = top[n - 1]
        if min(qa1, qb1, qa0, qb0) <= 0:
            out.append(0.0)
            continue
        e = 0
        e += qb1 if b1 >= b0 else 0
        e -= qb0 if b1 <= b0 else 0
        e -= qa1 if a1 <= a0 else 0
        e += qa0 if a1 >= a0 else 0
        out.append(float(e))
    return out


def test_touch_ofi_matches_its_twin():
    rng = np.random.default_rng(0)
    n = 400
    bid = 100 + rng.integers(-2, 3, n)
    top = np.column_stack(
        [bid + rng.integers(1, 3, n), rng.integers(0, 6, n), bid, rng.integers(0, 6, n)]
    )
    np.testing.assert_array_equal(touch_ofi(top), _ofi_twin(top))
    tape = _flow_tape(30.0, seed=2)
    top = tape.snapshots(1)
    np.testing.assert_array_equal(touch_ofi(top), _ofi_twin(top))


def test_lag_autocorr_counts_only_consecutive_buckets():
    rng = np.random.default_rng(1)
    d = rng.normal(size=50)
    pair = rng.random(49) < 0.8
    for lag in (1, 2, 3):
        a = [d[j] for j in range(50 - lag) if all(pair[j : j + lag])]
        b = [d[j + lag] for j in range(50 - lag) if all(pair[j : j + lag])]
        assert lag_autocorr(d, pair, lag) == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-12)
    assert np.isnan(lag_autocorr(d[:2], pair[:1]))


def test_ofi_facts_of_a_hand_built_tape():
    """Two 10 s buckets and their OFI by hand: a bid joining the touch (+2 lots) lifts the mid
    half a tick; a 3-lot ask order inside the spread then lowers it half a tick."""
    from trendgym.envs.lob.tape import EVENT, empty_tape

    rows = [  # time, event, id, size, price (ticks), direction
        (0.0, EVENT.new, 1, 4, 99, 1),
        (0.0, EVENT.new, 2, 4, 102, -1),
        (5.0, EVENT.new, 3, 2, 100, 1),  # bid 99 -> 100: e = +2; mid 100.5 -> 101
        (15.0, EVENT.new, 4, 3, 101, -1),  # ask 102 -> 101: e = -3; mid 101 -> 100.5
        (31.5, EVENT.new, 5, 1, 90, 1),  # far from the touch: e = 0
    ]
    tape = empty_tape(len(rows))
    for i, (t, ev, oid, size, price, d) in enumerate(rows):
        tape[i] = (t, oid, size, price * 100, ev, d)
    facts = tape_facts(MessageTape(tape, tick=100), sample=1.0, bucket=10.0)
    np.testing.assert_array_equal(
        touch_ofi(MessageTape(tape, tick=100).snapshots(1)), [0, 0, 2, -3, 0]
    )
    # buckets between the samples at 1, 11, 21, 31 s: (1, 11] has +2 lots and +0.5 tick,
    # (11, 21] -3 lots and -0.5 tick, (21, 31] nothing: a slope through three points
    x, y = np.array([2.0, -3.0, 0.0]), np.array([0.5, -0.5, 0.0])
    slope = np.polyfit(x, y, 1)[0]
    assert facts["ofi_slope_ticks_per_lot"] == pytest.approx(slope)
    assert facts["ofi_r2"] == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2)
    assert list(facts) == list(FACT_NAMES)


def test_price_span_kernel_matches_numpy():
    tape = _flow_tape(20.0, seed=3)
    m = tape.messages
    p = m["price"][m["event"] <= 4]
    assert rb.price_span_nb(m) == (p.min(), p.max())
    assert rb.price_span_nb(m[:0]) == (0, 0)


# -------------------------------------------------------------------------- the CLI
def test_calibrate_prints_the_table_and_writes_json_and_png(calibrated, lobster):
    code, stdout, stderr, out = calibrated
    assert code == 0, stderr
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["fact", "tape", "calibrated"]
    names = [line.split()[0] for line in lines[2:]]
    assert names == list(FACT_NAMES)
    values = np.array([[float(v) for v in line.split()[1:]] for line in lines[2:]])
    assert np.isfinite(values).all()
    assert (out / CALIBRATION_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / CALIBRATION_JSON).read_text())
    assert doc["orderbook"] == str(lobster[1])
    assert set(doc["facts"]) == set(FACT_NAMES)
    # the table's numbers are the file's
    real = [doc["facts"][n]["tape"] for n in FACT_NAMES]
    np.testing.assert_allclose(values[:, 0], real, rtol=1e-3)


def test_calibration_json_round_trips_to_identical_flow_params(calibrated, lobster, tmp_path):
    out = calibrated[3]
    loaded = load_calibration(out / CALIBRATION_JSON)
    fitted = calibrate_flow(read_lobster(*lobster))
    assert loaded == fitted and loaded.params() == fitted.params()
    # the orderbook's first row seeded the fit: no message fell on an order it did not know
    assert loaded.unknown_ids == 0 and loaded.anonymous_reductions > 0
    save_calibration(loaded, tmp_path / "again.json")
    assert load_calibration(tmp_path / "again.json").params() == fitted.params()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["calibrate", "{tmp}/missing.csv"], ["TAPE", "missing.csv", "no such file"]),
        (["calibrate", "{tmp}"], ["TAPE", "is not a file"]),
        (["calibrate", "{msg}", "{tmp}/nope.csv"], ["ORDERBOOK", "nope.csv", "no such file"]),
        (["calibrate", "{garbage}"], ["garbage.csv", "row 1"]),
        (["calibrate", "{msg}", "--hours", "0"], ["--hours", "positive"]),
        (["calibrate", "{msg}", "--out", "{garbage}"], ["--out", "not a directory"]),
    ],
)
def test_bad_calibrate_input_is_one_line_exit_2(argv, words, lobster, tmp_path, capsys):
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("this,is,not\na,lobster,file\n")
    subs = {"{tmp}": str(tmp_path), "{msg}": str(lobster[0]), "{garbage}": str(garbage)}
    for key, value in subs.items():
        argv = [a.replace(key, value) for a in argv]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


# ------------------------------------------------------------------- flow= in the env
def _trajectory(env, steps: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=7)
    out = [obs.astype(float), [info["arrival_price"], info["preset"]]]
    for _ in range(steps):
        obs, reward, terminated, _, info = env.step(rng.uniform(-1, 1, 3).astype(np.float32))
        out += [obs.astype(float), [reward]]
        if terminated:
            out.append([info["shortfall_bps"], info["preset"]])
            obs, _ = env.reset()
            out.append(obs.astype(float))
    return np.concatenate([np.ravel(o) for o in out])


def test_flow_path_steps_as_the_same_flow_params(calibrated):
    path = calibrated[3] / CALIBRATION_JSON
    params = load_calibration(path).params()
    by_path = gym.make("trendgym/Execution-v0", flow=str(path), horizon=20).unwrapped
    by_params = ExecutionEnv(flow=params, horizon=20)
    by_cal = ExecutionEnv(flow=load_calibration(path), horizon=20)
    a, b, c = _trajectory(by_path), _trajectory(by_params), _trajectory(by_cal)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert by_path.preset == "calibrated" and by_path.calibrated
    # the flow is the calibrated one: a preset's trajectory differs
    assert not np.array_equal(a, _trajectory(ExecutionEnv(preset="calm", horizon=20)))
    np.testing.assert_array_equal(by_path.preset_params[0, :-1], params.to_array())


def test_flow_works_in_the_native_vector_env(calibrated):
    path = str(calibrated[3] / CALIBRATION_JSON)
    vec = gym.make_vec(
        "trendgym/Execution-v0", num_envs=2, vectorization_mode="vector_entry_point", flow=path
    )
    obs, info = vec.reset(seed=7)
    single = ExecutionEnv(flow=path)
    obs0, _ = single.reset(seed=7)
    np.testing.assert_array_equal(obs[0], obs0)
    np.testing.assert_array_equal(info["preset"], [-2, -2])
    for _ in range(3):
        obs, *_ = vec.step(np.zeros((2, 3), np.float32))
        obs0, *_ = single.step(np.zeros(3, np.float32))
    np.testing.assert_array_equal(obs[0], obs0)
    assert vec.get_attr("preset") == ("calibrated", "calibrated")
    vec.close()


@pytest.mark.parametrize(
    "flow, error, words",
    [
        (3, TypeError, ["flow", "int"]),
        ("{tmp}/missing.json", ValueError, ["flow", "missing.json"]),
        ("{tmp}/other.json", ValueError, ["flow", "other.json", "not a calibration file"]),
        ("{tmp}/broken.json", ValueError, ["flow", "broken.json", "invalid calibration"]),
    ],
)
def test_bad_flow_is_refused_naming_flow(flow, error, words, calibrated, tmp_path):
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    doc = json.loads((calibrated[3] / CALIBRATION_JSON).read_text())
    doc["calibration"]["hawkes_alpha"] = 99.0  # not stationary: FlowParams refuses it
    (tmp_path / "broken.json").write_text(json.dumps(doc))
    if isinstance(flow, str):
        flow = flow.replace("{tmp}", str(tmp_path))
    with pytest.raises(error) as err:
        ExecutionEnv(flow=flow)
    for word in words:
        assert word in str(err.value)


def test_flow_is_exclusive_with_preset_and_replay(calibrated, lobster):
    path = str(calibrated[3] / CALIBRATION_JSON)
    with pytest.raises(ValueError, match="flow and preset"):
        ExecutionEnv(flow=path, preset="calm")
    with pytest.raises(ValueError, match="flow and replay"):
        ExecutionEnv(flow=path, replay=str(lobster[0]), replay_orderbook=str(lobster[1]))


def test_train_cli_on_the_calibrated_flow(calibrated, tmp_path, capsys):
    path = str(calibrated[3] / CALIBRATION_JSON)
    argv = ["train", "--env", "trendgym/Execution-v0", "--env-kwargs", json.dumps({"flow": path})]
    argv += ["--timesteps", "64", "--out", str(tmp_path / "run"), "--no-progress"]
    argv += ["--checkpoint-every", "0", "--model-kwargs", json.dumps(TINY), "--no-tensorboard"]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["env_kwargs"] == {"flow": path}
    assert (tmp_path / "run" / "model.zip").is_file()
