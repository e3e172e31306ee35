"""The ledger refuses a corrupt, foreign or read-only file before anything is written, and a
writer killed with SIGKILL loses no committed row."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trendgym.evaluate.ledger import Ledger, check_ledger

ENV = "trendgym/Portfolio-v0"
PAGE = 4096


def _filled_ledger(path: Path, n: int = 200) -> Path:
    ledger = Ledger(path)
    for i in range(n):
        ledger.append(ENV, seed=i, params={"i": i}, oos_returns=np.full(100, i * 1e-3))
    ledger.close()
    with sqlite3.connect(
        path
    ) as conn:  # move the WAL into the main file, as a closed run leaves it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _overwrite(path: Path, offset: int, n: int) -> None:
    data = bytearray(path.read_bytes())
    assert offset + n < len(data)
    data[offset : offset + n] = b"\xaa" * n
    path.write_bytes(bytes(data))


def _corrupt_page_header(path: Path) -> None:
    _filled_ledger(path)
    _overwrite(path, 2 * PAGE, 64)  # a b-tree page's header: the structure, not a value


def _corrupt_mid_file(path: Path) -> None:
    _filled_ledger(path)
    _overwrite(path, (path.stat().st_size // PAGE // 2) * PAGE, 100)


def _text_file(path: Path) -> None:
    path.write_text("date,asset,price\n2020-01-01,A,1.0\n" * 50)


def _foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER)")
        conn.execute("INSERT INTO orders (qty) VALUES (5)")


def _newer_schema(path: Path) -> None:
    _filled_ledger(path, 3)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER meta_no_update")
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")


# how the file is spoiled -> words the ValueError must contain (besides the path)
BAD_LEDGERS = {
    "b-tree page header overwritten": (_corrupt_page_header, ["is corrupt"]),
    "bytes overwritten mid-file": (_corrupt_mid_file, ["is corrupt"]),
    "a CSV, not SQLite": (_text_file, ["not an SQLite database", "b'date,ass'"]),
    "another program's database": (_foreign_sqlite, ["not a trendgym ledger", "orders"]),
    "newer schema version": (_newer_schema, ["schema version '99'", "reads version 1"]),
}


@pytest.mark.parametrize("case", list(BAD_LEDGERS))
def test_bad_ledger_is_refused_and_left_byte_for_byte(case, tmp_path):
    spoil, words = BAD_LEDGERS[case]
    path = tmp_path / "ledger.sqlite"
    spoil(path)
    before = _digest(path)
    for open_it in (check_ledger, Ledger.preflight, Ledger):
        with pytest.raises(ValueError) as err:
            open_it(path)
        message = str(err.value)
        assert str(path) in message and "\n" not in message
        for word in words:
            assert word in message, (word, message)
    assert _digest(path) == before  # refused files are never written


def test_sound_ledgers_pass(tmp_path):
    path = _filled_ledger(tmp_path / "l.sqlite", 5)
    assert check_ledger(path) == path
    assert Ledger(path).n_trials() == 5
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # an empty file is an empty database: it becomes a ledger
    assert Ledger(empty).n_trials() == 0


# where the ledger would go -> words; a refusal creates nothing
UNWRITABLE = {
    "directory is read-only": ("/proc/trendgym-ledger.sqlite", ["directory '/proc' is read-only"]),
    "parent is a file": ("{file}/ledger.sqlite", ["is not a directory"]),
    "path is a directory": ("{dir}", ["is a directory"]),
}


@pytest.mark.parametrize("case", list(UNWRITABLE))
def test_unwritable_ledger_path_is_refused_and_nothing_created(case, tmp_path):
    template, words = UNWRITABLE[case]
    (tmp_path / "a_file").write_text("x")
    path = template.format(file=tmp_path / "a_file", dir=tmp_path)
    before = sorted(tmp_path.rglob("*"))
    for open_it in (check_ledger, Ledger):
        with pytest.raises(ValueError) as err:
            open_it(path)
        assert path in str(err.value)
        for word in words:
            assert word in str(err.value)
    assert sorted(tmp_path.rglob("*")) == before


def test_new_ledger_path_passes_without_creating_it(tmp_path):
    path = tmp_path / "new" / "dir" / "ledger.sqlite"
    check_ledger(path)
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only modes")
def test_read_only_file_is_refused(tmp_path):
    path = _filled_ledger(tmp_path / "l.sqlite", 2)
    path.chmod(0o444)
    with pytest.raises(ValueError, match="is read-only"):
        Ledger(path)


_APPEND_FOREVER = """
import sys
import numpy as np
from trendgym.evaluate.ledger import Ledger
ledger = Ledger(sys.argv[1])
i = 0
while True:
    row = ledger.append("trendgym/Portfolio-v0", seed=i, oos_returns=np.full(500, i * 1e-4))
    print(row, flush=True)  # acknowledged: the transaction has committed
    i += 1
"""


def test_kill_9_during_appends_loses_no_committed_row(tmp_path):
    path = tmp_path / "l.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPEND_FOREVER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acknowledged = []
    deadline = time.monotonic() + 120
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        acknowledged.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)  # most likely mid-transaction: it appends nonstop
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    acknowledged += [int(line) for line in proc.stdout.read().split()]  # printed before the kill
    check_ledger(path)  # passes SQLite's quick_check and the schema check
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    trials = Ledger(path).trials(with_returns=True)
    assert set(acknowledged) <= set(trials["id"])  # every committed row survived
    assert len(trials) <= len(acknowledged) + 1  # at most the one in flight beyond them
    for seed, returns in zip(trials["seed"], trials["oos_returns"], strict=True):
        np.testing.assert_array_equal(returns, np.full(500, seed * 1e-4))  # no torn row


def test_evaluate_refuses_a_corrupt_ledger_before_training(tmp_path):
    path = _filled_ledger(tmp_path / "ledger.sqlite", 20)
    _corrupt_mid_file(path)
    before = _digest(path)
    done = subprocess.run(
        [sys.executable, "-m", "trendgym.train.cli", "evaluate", "--env", "trendgym/Portfolio-v0"]
        + ["--ledger", str(path), "--out", str(tmp_path / "report")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "is corrupt" in done.stderr and str(path) in done.stderr
    assert _digest(path) == before
    assert not (tmp_path / "report").exists()
