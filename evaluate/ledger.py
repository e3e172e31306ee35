"""Append-only SQLite ledger of every training run, so selection is always paid for.

Each row is one trial: env id, agent, experiment, fold, seed, hyper-parameters (JSON), code
version, in-sample and out-of-sample metrics (JSON), per-period OOS returns (little-endian
float64 bytes) and a UTC timestamp. The number of trials and the variance of their Sharpe
ratios, which the deflated Sharpe ratio needs, are read back from it.

Safety: WAL journal (readers never block the writer), a busy timeout so concurrent writer
processes queue instead of failing, one short ``BEGIN IMMEDIATE`` transaction per append, and
triggers that refuse UPDATE and DELETE. A writer killed mid-transaction leaves no trace: its
uncommitted WAL frames are ignored and rolled back by the next connection. (Dropping the table
or deleting the file cannot be refused from inside SQLite.)

Opening refuses, before anything is written, a file that is not SQLite, a corrupt database
(``PRAGMA quick_check``), an SQLite database that is not a trendgym ledger or has another
schema version, and a read-only file or directory: :func:`check_ledger` runs these checks on
their own (creating nothing), so a command can refuse a bad ``--ledger`` before it trains.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from trendgym.evaluate.stats import (
    as_returns,
    deflated_sharpe_ratio,
    return_moments,
    sharpe_ratio,
)
from trendgym.train.preflight import can_create_in

__all__ = ["DEFAULT_LEDGER_PATH", "Ledger", "TrialRecord", "check_ledger", "code_version"]

DEFAULT_LEDGER_PATH = Path("runs") / "ledger.sqlite"
SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 60.0
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT    NOT NULL,
    env_id       TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    experiment   TEXT    NOT NULL,
    fold         INTEGER,
    seed         INTEGER,
    params       TEXT    NOT NULL,
    code_version TEXT    NOT NULL,
    is_metrics   TEXT    NOT NULL,
    oos_metrics  TEXT    NOT NULL,
    n_oos        INTEGER NOT NULL,
    oos_returns  BLOB
);
CREATE INDEX IF NOT EXISTS trials_env ON trials (env_id, experiment, agent);
CREATE TRIGGER IF NOT EXISTS trials_no_update BEFORE UPDATE ON trials
BEGIN SELECT RAISE(ABORT, 'trial ledger is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS trials_no_delete BEFORE DELETE ON trials
BEGIN SELECT RAISE(ABORT, 'trial ledger is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'trial ledger is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'trial ledger is append-only: DELETE refused'); END;
"""

_COLUMNS = (
    "created_at, env_id, agent, experiment, fold, seed, params, code_version, "
    "is_metrics, oos_metrics, n_oos, oos_returns"
)
_FILTERS = ("env_id", "agent", "experiment", "fold", "seed", "code_version")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe --always --dirty --tags`` of the package's checkout, else the package version."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        if out.stdout.strip():
            return "git:" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "trendgym " + version("trendgym")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class TrialRecord:
    """One training run, validated and ready to append (see :meth:`Ledger.append`)."""

    env_id: str
    params: Mapping[str, Any] = field(default_factory=dict)
    is_metrics: Mapping[str, Any] = field(default_factory=dict)
    oos_metrics: Mapping[str, Any] = field(default_factory=dict)
    oos_returns: np.ndarray | Sequence[float] | None = None
    fold: int | None = None
    seed: int | None = None
    agent: str = ""
    experiment: str = ""
    code_version: str | None = None

    def to_row(self, now: str) -> tuple:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        for name in ("agent", "experiment"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(
                    f"{name} must be a string, got {type(getattr(self, name)).__name__}"
                )
        fold = _opt_int(self.fold, "fold")
        seed = _opt_int(self.seed, "seed")
        if self.oos_returns is None:
            blob, n_oos = None, 0
        else:
            r = as_returns(self.oos_returns, name="oos_returns", min_obs=1)
            blob, n_oos = r.astype("<f8").tobytes(), int(r.size)
        version = self.code_version if self.code_version is not None else code_version()
        return (
            now,
            self.env_id,
            self.agent,
            self.experiment,
            fold,
            seed,
            _json(self.params, "params"),
            str(version),
            _json(self.is_metrics, "is_metrics"),
            _json(self.oos_metrics, "oos_metrics"),
            n_oos,
            blob,
        )


def _opt_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer or None, got {type(value).__name__}")
    return int(value)


def _json(value: Mapping[str, Any], name: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping (dict), got {type(value).__name__}")
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False, default=_json_default)
    except ValueError as exc:
        raise ValueError(f"{name} contains NaN or inf, which JSON cannot hold: {value!r}") from exc
    except TypeError as exc:
        raise TypeError(f"{name} is not JSON-serialisable: {exc}") from exc


def _json_default(obj: object) -> object:
    # numpy scalars and small arrays are common in metrics dicts.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON-serialisable")


def _check_writable(path: Path) -> None:
    existing = path.parent
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"ledger {str(path)!r}: {str(existing)!r} is not a directory")
    if not can_create_in(existing):  # SQLite's journal files live beside the ledger
        raise ValueError(f"ledger {str(path)!r}: directory {str(existing)!r} is read-only")
    if path.exists():
        try:
            with open(path, "r+b"):  # opened for writing, nothing written
                pass
        except OSError as exc:
            raise ValueError(f"ledger {str(path)!r} is read-only ({exc.strerror})") from None


def _check_contents(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if not head:
        return  # an empty file is an empty database to SQLite
    if head != _SQLITE_MAGIC:
        raise ValueError(
            f"ledger {str(path)!r} is not an SQLite database (it starts with {head[:8]!r}); "
            "refusing to write into it"
        )
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"  # read-only: the check never writes
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
            if problems != ["ok"]:
                raise ValueError(
                    f"ledger {str(path)!r} is corrupt (SQLite quick_check: {_one_line(problems)}); "
                    "restore it from a backup or choose another ledger"
                )
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            tables.discard("sqlite_sequence")
            if not tables:
                return  # a new, empty database becomes a ledger
            if not {"meta", "trials"} <= tables:
                raise ValueError(
                    f"ledger {str(path)!r} is an SQLite database but not a trendgym ledger "
                    f"(tables: {', '.join(sorted(tables))})"
                )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"ledger {str(path)!r} is corrupt or unreadable ({exc})") from None
    version = row[0] if row else None
    if version != str(SCHEMA_VERSION):
        raise ValueError(
            f"ledger {str(path)!r} has schema version {version!r}; this trendgym reads "
            f"version {SCHEMA_VERSION}"
        )


def _one_line(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def check_ledger(path: str | os.PathLike[str] = DEFAULT_LEDGER_PATH) -> Path:
    """Refuse a ledger that cannot take trials, before any training; creates and writes nothing.

    A ValueError naming the path when it is a directory, not SQLite, corrupt (SQLite's
    ``quick_check``), an SQLite file that is not a ledger, another schema version, or in a
    read-only file or directory. A path that does not exist yet passes if it can be created.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"ledger {str(path)!r} is a directory, not a file")
    _check_writable(path)
    if path.exists():
        _check_contents(path)
    return path


class Ledger:
    """The trial ledger at `path` (default ``runs/ledger.sqlite``), created on first use.

    Safe to pickle and to hand to worker processes or threads: it pickles as its path, and
    keeps one connection per process and thread (closing the last connection to a WAL
    database checkpoints and fsyncs it, which would cost milliseconds per append).

    Example::

        ledger = Ledger("runs/ledger.sqlite")
        ledger.append("trendgym/Portfolio-v0", agent="ppo", fold=0, seed=1,
                      params={"lr": 3e-4}, oos_metrics={"sharpe": 0.05}, oos_returns=r)
        ledger.n_trials(env_id="trendgym/Portfolio-v0")
    """

    preflight = staticmethod(check_ledger)

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_LEDGER_PATH) -> None:
        self.path = check_ledger(path)
        self._local = threading.local()
        self._ensure_schema()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._local = threading.local()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close this thread's connection (reopened on next use)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    def _conn(self) -> sqlite3.Connection:
        # A connection inherited through fork() must never be used: open a fresh one per pid.
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = self._connect()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    # ------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so transactions stay short.
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        return conn

    def _ensure_schema(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:  # switching to WAL can report "locked" while another process does the same
            try:
                with closing(self._connect()) as conn:
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if mode.lower() != "wal":
                        raise RuntimeError(
                            f"{self.path}: could not enable WAL (journal_mode={mode})"
                        )
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        # statement by statement: executescript() would COMMIT our transaction
                        for stmt in _split_sql(_SCHEMA):
                            conn.execute(stmt)
                        conn.execute(
                            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),),
                        )
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise ValueError(f"ledger {str(self.path)!r}: {exc}") from exc
                time.sleep(0.05)

    # ------------------------------------------------------------------ writing

    def append(
        self,
        env_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        is_metrics: Mapping[str, Any] | None = None,
        oos_metrics: Mapping[str, Any] | None = None,
        oos_returns: np.ndarray | Sequence[float] | None = None,
        fold: int | None = None,
        seed: int | None = None,
        agent: str = "",
        experiment: str = "",
        code_version: str | None = None,
    ) -> int:
        """Append one trial and return its row id. `code_version` defaults to :func:`code_version`."""
        record = TrialRecord(
            env_id=env_id,
            params=params if params is not None else {},
            is_metrics=is_metrics if is_metrics is not None else {},
            oos_metrics=oos_metrics if oos_metrics is not None else {},
            oos_returns=oos_returns,
            fold=fold,
            seed=seed,
            agent=agent,
            experiment=experiment,
            code_version=code_version,
        )
        return self.append_many([record])[0]

    def append_many(self, records: Iterable[TrialRecord]) -> list[int]:
        """Append several trials in one transaction (all or none); returns their row ids."""
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        rows = [r.to_row(now) for r in records]  # validate and serialise before locking
        if not rows:
            return []
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self._insert(conn, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    @staticmethod
    def _insert(conn: sqlite3.Connection, rows: Sequence[tuple]) -> list[int]:
        ids = []
        for row in rows:
            cur = conn.execute(
                f"INSERT INTO trials ({_COLUMNS}) VALUES ({', '.join('?' * 12)})", row
            )
            ids.append(int(cur.lastrowid or 0))  # always set after an INSERT
        return ids

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
        clauses, args = [], []
        for key, value in filters.items():
            if key not in _FILTERS:
                raise TypeError(f"unknown filter {key!r}; use one of {', '.join(_FILTERS)}")
            if value is None:
                continue
            if isinstance(value, list | tuple | set | frozenset):
                values = list(value)
                if not values:
                    raise ValueError(f"filter {key}= is an empty collection")
                clauses.append(f"{key} IN ({', '.join('?' * len(values))})")
                args.extend(values)
            else:
                clauses.append(f"{key} = ?")
                args.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def n_trials(self, **filters: Any) -> int:
        """Number of trials matching the filters (env_id, agent, experiment, fold, seed,
        code_version; a value or a list of values; None means any)."""
        where, args = self._where(filters)
        return int(self._conn().execute(f"SELECT COUNT(*) FROM trials{where}", args).fetchone()[0])

    def trials(self, *, with_returns: bool = False, **filters: Any) -> pd.DataFrame:
        """Matching trials as a DataFrame, one row per trial in insertion order.

        `params`, `is_metrics` and `oos_metrics` are dicts; `created_at` is a UTC Timestamp;
        with `with_returns=True` an `oos_returns` column holds float64 arrays.
        """
        where, args = self._where(filters)
        cols = "id, " + _COLUMNS if with_returns else "id, " + _COLUMNS.replace(", oos_returns", "")
        cur = self._conn().execute(f"SELECT {cols} FROM trials{where} ORDER BY id", args)
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        df = pd.DataFrame.from_records(rows, columns=names)
        for col in ("params", "is_metrics", "oos_metrics"):
            df[col] = [json.loads(v) for v in df[col]]
        df["created_at"] = pd.to_datetime(df["created_at"], utc=True, format="ISO8601")
        df["fold"] = df["fold"].astype("Int64")
        df["seed"] = df["seed"].astype("Int64")
        if with_returns:
            df["oos_returns"] = [
                np.frombuffer(b, dtype="<f8").astype(np.float64) if b is not None else np.empty(0)
                for b in df["oos_returns"]
            ]
        return df

    def oos_returns(self, trial_id: int) -> np.ndarray:
        """The stored per-period OOS returns of one trial (empty if none were stored)."""
        row = (
            self._conn()
            .execute("SELECT oos_returns FROM trials WHERE id = ?", (int(trial_id),))
            .fetchone()
        )
        if row is None:
            raise KeyError(f"no trial with id {trial_id}")
        return (
            np.empty(0) if row[0] is None else np.frombuffer(row[0], dtype="<f8").astype(np.float64)
        )

    def sr_variance(
        self, *, source: str = "oos_returns", metric: str = "sharpe", **filters: Any
    ) -> float:
        """Variance (ddof=1) across matching trials of their per-period Sharpe ratios, for DSR.

        `source="oos_returns"` computes each trial's Sharpe from its stored returns (trials
        without returns are an error); ``"oos_metrics"`` / ``"is_metrics"`` read `metric`
        from that JSON column. Needs at least two trials.
        """
        if source not in ("oos_returns", "oos_metrics", "is_metrics"):
            raise ValueError(
                f"source must be 'oos_returns', 'oos_metrics' or 'is_metrics', got {source!r}"
            )
        df = self.trials(with_returns=source == "oos_returns", **filters)
        if len(df) < 2:
            raise ValueError(f"sr_variance needs at least 2 trials, found {len(df)} for {filters}")
        if source == "oos_returns":
            srs = []
            for tid, r in zip(df["id"], df["oos_returns"], strict=True):
                if r.size < 2:
                    raise ValueError(
                        f"trial {tid} has {r.size} stored OOS returns; need at least 2"
                    )
                srs.append(sharpe_ratio(r))
        else:
            srs = []
            for tid, m in zip(df["id"], df[source], strict=True):
                if metric not in m:
                    raise ValueError(f"trial {tid} has no {metric!r} in {source}")
                value = float(m[metric])
                if not math.isfinite(value):
                    raise ValueError(f"trial {tid} has a non-finite {metric!r} in {source}")
                srs.append(value)
        return float(np.var(srs, ddof=1))

    def oos_matrix(self, **filters: Any) -> pd.DataFrame:
        """Stored OOS returns of the matching trials as a (T, N) frame, one column per trial id,
        ready for :func:`trendgym.evaluate.pbo`. All trials must have the same number of
        returns (the same OOS windows)."""
        df = self.trials(with_returns=True, **filters)
        if df.empty:
            raise ValueError(f"no trials match {filters}")
        lengths = {int(r.size) for r in df["oos_returns"]}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(
                f"trials matching {filters} have OOS return series of lengths {sorted(lengths)}; "
                "PBO needs every trial evaluated on the same periods"
            )
        return pd.DataFrame(np.column_stack(list(df["oos_returns"])), columns=df["id"].tolist())

    def deflated_sharpe(self, trial_id: int, **filters: Any) -> float:
        """DSR of one trial's stored OOS returns, deflated by every matching trial.

        N is ``n_trials(**filters)`` and V[SR] is ``sr_variance(**filters)`` (per-period
        Sharpe from stored returns); skew and kurtosis come from the trial's own returns.
        Picking the best of many seeds is paid for because every seed is in the ledger.
        """
        r = self.oos_returns(trial_id)
        if r.size < 2:
            raise ValueError(f"trial {trial_id} has {r.size} stored OOS returns; need at least 2")
        m = return_moments(r)
        return deflated_sharpe_ratio(
            m.sharpe,
            self.sr_variance(**filters),
            self.n_trials(**filters),
            m.n_obs,
            skew=m.skew,
            kurtosis=m.kurtosis,
        )

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ('ok' when the file is sound)."""
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])


def _split_sql(script: str) -> list[str]:
    """Split the schema script into complete statements (triggers hold ';' inside BEGIN ... END)."""
    out, buf = [], ""
    for line in script.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError("unterminated SQL statement in the ledger schema")
    return out
