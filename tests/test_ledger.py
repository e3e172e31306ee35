"""Trial ledger: round trips, append-only, concurrent writers, writers killed mid-transaction."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sqlite3
import time

import numpy as np
import pytest

from trendgym.evaluate import (
    DEFAULT_LEDGER_PATH,
    Ledger,
    TrialRecord,
    deflated_sharpe_ratio,
    probabilistic_sharpe_ratio,
    return_moments,
    sharpe_ratio,
)

ENV = "trendgym/Portfolio-v0"
# fork: children start in milliseconds and open their own connections (Ledger holds a path only)
CTX = mp.get_context("fork")


def _returns(seed: int, n: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0005, 0.01, n)


def test_round_trip(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    r = _returns(0)
    tid = ledger.append(
        ENV,
        agent="ppo",
        experiment="smoke",
        fold=2,
        seed=7,
        params={"lr": 3e-4, "net_arch": [8, 8], "gamma": np.float32(0.99)},
        is_metrics={"sharpe": 0.12},
        oos_metrics={"sharpe": np.float64(0.03), "turnover": 1.5},
        oos_returns=r,
        code_version="test-1",
    )
    df = ledger.trials(with_returns=True)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["id"] == tid and row["env_id"] == ENV and row["agent"] == "ppo"
    assert row["fold"] == 2 and row["seed"] == 7 and row["code_version"] == "test-1"
    assert row["params"] == {"lr": 3e-4, "net_arch": [8, 8], "gamma": pytest.approx(0.99)}
    assert row["oos_metrics"]["turnover"] == 1.5
    assert row["n_oos"] == 50
    assert np.array_equal(row["oos_returns"], r)  # float64 bytes: bit-exact
    assert np.array_equal(ledger.oos_returns(tid), r)
    assert row["created_at"].tzinfo is not None
    # pickles as its path (for worker processes) and reads the same rows
    assert pickle.loads(pickle.dumps(ledger)).n_trials() == 1


def test_default_path_and_code_version(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ledger = Ledger()
    assert DEFAULT_LEDGER_PATH.as_posix() == "runs/ledger.sqlite"
    assert (tmp_path / "runs" / "ledger.sqlite").exists()
    ledger.append(ENV)
    version = ledger.trials()["code_version"].iloc[0]
    assert version.startswith(("git:", "trendgym ")) and len(version) > 5


def test_filters_and_counts(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    for fold in range(3):
        for seed in range(4):
            ledger.append(ENV, agent="ppo" if seed % 2 else "sac", fold=fold, seed=seed)
    ledger.append("trendgym/Execution-v0", agent="ppo", experiment="other")
    assert ledger.n_trials() == 13
    assert ledger.n_trials(env_id=ENV) == 12
    assert ledger.n_trials(env_id=ENV, agent="ppo") == 6
    assert ledger.n_trials(fold=1, seed=[0, 3]) == 2
    assert ledger.n_trials(experiment="other") == 1
    df = ledger.trials(agent="sac", fold=0)
    assert df["seed"].tolist() == [0, 2]
    assert df["id"].is_monotonic_increasing
    with pytest.raises(TypeError, match="unknown filter 'sharpe'"):
        ledger.n_trials(sharpe=1)


def test_sr_variance(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    rets = [_returns(s, 80) for s in range(6)]
    for s, r in enumerate(rets):
        ledger.append(ENV, seed=s, oos_returns=r, is_metrics={"sharpe": 0.1 * s})
    expected = np.var([sharpe_ratio(r) for r in rets], ddof=1)
    assert ledger.sr_variance(env_id=ENV) == pytest.approx(expected)
    assert ledger.sr_variance(source="is_metrics") == pytest.approx(
        np.var([0.1 * s for s in range(6)], ddof=1)
    )
    with pytest.raises(ValueError, match="at least 2 trials"):
        ledger.sr_variance(seed=0)
    with pytest.raises(ValueError, match="no 'calmar'"):
        ledger.sr_variance(source="oos_metrics", metric="calmar")


def test_deflated_sharpe_and_oos_matrix_from_ledger(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    rets = [_returns(s, 300) for s in range(20)]
    ids = [ledger.append(ENV, seed=s, oos_returns=r) for s, r in enumerate(rets)]
    best = int(np.argmax([sharpe_ratio(r) for r in rets]))
    m = return_moments(rets[best])
    expected = deflated_sharpe_ratio(
        m.sharpe,
        np.var([sharpe_ratio(r) for r in rets], ddof=1),
        20,
        300,
        skew=m.skew,
        kurtosis=m.kurtosis,
    )
    dsr = ledger.deflated_sharpe(ids[best], env_id=ENV)
    assert dsr == pytest.approx(expected)
    # paying for the search: the best of 20 deflates below its undeflated PSR
    assert dsr < probabilistic_sharpe_ratio(m.sharpe, 0.0, 300, m.skew, m.kurtosis)
    matrix = ledger.oos_matrix(env_id=ENV)
    assert matrix.shape == (300, 20) and list(matrix.columns) == ids
    assert np.array_equal(matrix[ids[3]].to_numpy(), rets[3])
    ledger.append(ENV, seed=99, oos_returns=_returns(0, 10))
    with pytest.raises(ValueError, match="same periods"):
        ledger.oos_matrix(env_id=ENV)


def test_update_and_delete_refused(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.append(ENV, seed=1)
    conn = sqlite3.connect(ledger.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
        conn.execute("UPDATE trials SET seed = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
        conn.execute("DELETE FROM trials")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE meta SET value = '0'")
    conn.close()
    assert ledger.trials()["seed"].tolist() == [1]
    # re-opening never rewrites the existing schema or rows
    assert Ledger(ledger.path).n_trials() == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(env_id=""), ValueError, "env_id"),
        (dict(env_id=ENV, oos_returns=[0.1, float("nan")]), ValueError, "oos_returns contains NaN"),
        (dict(env_id=ENV, oos_metrics={"sharpe": float("nan")}), ValueError, "oos_metrics"),
        (dict(env_id=ENV, params={"f": object()}), TypeError, "params"),
        (dict(env_id=ENV, params=[1, 2]), TypeError, "params"),
        (dict(env_id=ENV, seed=1.5), TypeError, "seed"),
        (dict(env_id=ENV, fold="0"), TypeError, "fold"),
    ],
)
def test_bad_records_refused_before_writing(tmp_path, kwargs, error, match):
    ledger = Ledger(tmp_path / "l.sqlite")
    env_id = kwargs.pop("env_id")
    with pytest.raises(error, match=match):
        ledger.append(env_id, **kwargs)
    assert ledger.n_trials() == 0


def test_append_many_is_all_or_nothing(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    good = TrialRecord(env_id=ENV, seed=1)
    bad = TrialRecord(env_id=ENV, oos_returns=[np.inf])
    with pytest.raises(ValueError, match="inf"):
        ledger.append_many([good, bad])
    assert ledger.n_trials() == 0
    assert len(ledger.append_many([good, good])) == 2


# ----------------------------------------------------------------- concurrency and crashes


def _writer(path: str, worker: int, n_rows: int, start: mp.Event) -> None:
    ledger = Ledger(path)
    start.wait()
    for i in range(n_rows):
        ledger.append(
            ENV,
            agent=f"w{worker}",
            seed=i,
            params={"worker": worker, "i": i},
            oos_returns=np.full(20, worker + i * 1e-3) + np.arange(20) * 1e-6,
            code_version="test",
        )


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "l.sqlite")
    n_workers, n_rows = 4, 250
    start = CTX.Event()
    procs = [CTX.Process(target=_writer, args=(path, w, n_rows, start)) for w in range(n_workers)]
    for p in procs:
        p.start()
    start.set()  # all writers race from here, including on schema creation
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    ledger = Ledger(path)
    assert ledger.n_trials() == n_workers * n_rows
    df = ledger.trials(with_returns=True)
    for w in range(n_workers):
        mine = df[df["agent"] == f"w{w}"]
        assert sorted(mine["seed"].tolist()) == list(range(n_rows))  # every row, once
        for seed, r in zip(mine["seed"], mine["oos_returns"], strict=True):
            assert np.array_equal(r, np.full(20, w + seed * 1e-3) + np.arange(20) * 1e-6)
    assert df["id"].is_unique
    assert ledger.integrity_check() == "ok"


def _die_mid_transaction(path: str, ready: mp.Event) -> None:
    """Take the write lock, insert rows through the ledger's own insert, then hang (until killed)."""
    ledger = Ledger(path)
    conn = ledger._connect()
    conn.execute("BEGIN IMMEDIATE")
    rows = [
        TrialRecord(env_id=ENV, seed=100 + i, oos_returns=_returns(i)).to_row("now")
        for i in range(50)
    ]
    ledger._insert(conn, rows)
    ready.set()
    time.sleep(600)


def test_writer_killed_mid_transaction_leaves_ledger_consistent(tmp_path):
    path = str(tmp_path / "l.sqlite")
    ledger = Ledger(path)
    for s in range(10):
        ledger.append(ENV, seed=s, oos_returns=_returns(s))
    ready = CTX.Event()
    proc = CTX.Process(target=_die_mid_transaction, args=(path, ready))
    proc.start()
    assert ready.wait(60)
    # while it holds the lock, readers still see the committed rows (WAL)
    assert ledger.n_trials() == 10
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    # the half-written transaction is gone, the file is sound, and writing goes on
    assert ledger.integrity_check() == "ok"
    assert ledger.n_trials() == 10
    assert sorted(ledger.trials()["seed"].tolist()) == list(range(10))
    t0 = time.monotonic()
    ledger.append(ENV, seed=10)
    assert time.monotonic() - t0 < 5.0  # the dead writer's lock died with it
    assert ledger.n_trials() == 11


def _append_forever(path: str, counter: mp.Value) -> None:
    ledger = Ledger(path)
    i = 0
    while True:
        ledger.append(ENV, seed=i, oos_returns=_returns(i, 200))
        with counter.get_lock():
            counter.value = i + 1  # rows acknowledged as committed
        i += 1


def test_writer_killed_at_random_points(tmp_path):
    path = str(tmp_path / "l.sqlite")
    Ledger(path)
    rng = np.random.default_rng(0)
    acknowledged = 0
    for _ in range(4):
        counter = CTX.Value("q", 0)
        proc = CTX.Process(target=_append_forever, args=(path, counter))
        proc.start()
        time.sleep(float(rng.uniform(0.2, 0.5)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(30)
        ledger = Ledger(path)
        assert ledger.integrity_check() == "ok"
        n = ledger.n_trials()
        # every acknowledged row is there; at most the one in flight beyond it
        assert acknowledged + counter.value <= n <= acknowledged + counter.value + 1
        acknowledged = n
        df = ledger.trials(with_returns=True)
        assert all(r.size == 200 for r in df["oos_returns"])  # no torn rows
    assert acknowledged > 0
