"""`AuditLog`: every compliance intervention as a structured record, kept in memory as
tuples (cheap to append in the hot loop) and serialised on demand to JSONL or parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIELDS = ("episode", "step", "rule", "action", "asked", "done", "reason", "penalty")
ACTIONS = ("block", "clip", "penalize", "cancel", "trip")  # what the wrapper did


class AuditLog:
    """Append-only list of intervention records.

    Each record has ``episode`` (resets so far, from 1), ``step`` (decision index in the
    episode, from 0), ``rule`` (rule name), ``action`` (one of ``ACTIONS``), ``asked`` and
    ``done`` (dicts: the order or weight change requested, and what reached the market),
    ``reason`` (a sentence naming the limit) and ``penalty`` (reward subtracted, 0 unless
    the rule penalises).
    """

    def __init__(self, records: list[tuple] | None = None) -> None:
        self.records: list[tuple] = list(records or [])

    def append(
        self,
        episode: int,
        step: int,
        rule: str,
        action: str,
        asked: dict[str, Any],
        done: dict[str, Any],
        reason: str,
        penalty: float = 0.0,
    ) -> dict[str, Any]:
        """Add one record; returns it as a dict (what the step's `info` carries)."""
        rec = (int(episode), int(step), rule, action, asked, done, reason, float(penalty))
        self.records.append(rec)
        return dict(zip(FIELDS, rec, strict=True))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.to_dicts())

    def clear(self) -> None:
        self.records.clear()

    def to_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(FIELDS, r, strict=True)) for r in self.records]

    def count(self, episode: int | None = None, rule: str | None = None) -> int:
        return sum(
            1
            for r in self.records
            if (episode is None or r[0] == episode) and (rule is None or r[2] == rule)
        )

    # ------------------------------------------------------------------ files
    def to_jsonl(self, path: str | Path) -> Path:
        """One JSON object per line, fields in `FIELDS` order."""
        path = Path(path)
        with path.open("w", encoding="utf-8") as fh:
            for d in self.to_dicts():
                fh.write(json.dumps(d, sort_keys=False) + "\n")
        return path

    def to_frame(self):
        """A pandas DataFrame, one row per record (``asked`` / ``done`` stay dicts)."""
        import pandas as pd

        return pd.DataFrame(self.to_dicts(), columns=list(FIELDS))

    def to_parquet(self, path: str | Path) -> Path:
        """Parquet with ``asked`` / ``done`` as JSON strings (their keys vary by rule)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        cols = {name: [r[i] for r in self.records] for i, name in enumerate(FIELDS)}
        cols["asked"] = [json.dumps(v) for v in cols["asked"]]
        cols["done"] = [json.dumps(v) for v in cols["done"]]
        schema = pa.schema(
            [
                ("episode", pa.int64()),
                ("step", pa.int64()),
                ("rule", pa.string()),
                ("action", pa.string()),
                ("asked", pa.string()),
                ("done", pa.string()),
                ("reason", pa.string()),
                ("penalty", pa.float64()),
            ]
        )
        pq.write_table(pa.table(cols, schema=schema), path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> AuditLog:
        """Read a log written by `to_jsonl` (``.jsonl``/``.json``) or `to_parquet` (``.parquet``)."""
        path = Path(path)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path).to_pydict()
            missing = set(FIELDS) - set(table)
            if missing:
                raise ValueError(f"{path} is not an audit log: missing columns {sorted(missing)}")
            rows = zip(*(table[f] for f in FIELDS), strict=True)
            return cls(
                [
                    (e, s, r, a, json.loads(q), json.loads(d), why, p)
                    for e, s, r, a, q, d, why, p in rows
                ]
            )
        if path.suffix not in (".jsonl", ".json"):
            raise ValueError(f"audit logs are .jsonl or .parquet files, got {path.name!r}")
        records = []
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                d = json.loads(line)
                missing = set(FIELDS) - set(d)
                if missing:
                    raise ValueError(
                        f"{path}:{n} is not an audit record: missing {sorted(missing)}"
                    )
                records.append(tuple(d[f] for f in FIELDS))
        return cls(records)

    def summary(self):
        """Per rule and action: interventions, episodes touched, total penalty (a DataFrame
        for reports; ``.to_markdown()`` needs tabulate, ``.to_string()`` does not)."""
        import pandas as pd

        frame = self.to_frame()
        if frame.empty:
            return pd.DataFrame(columns=["rule", "action", "count", "episodes", "penalty"])
        out = (
            frame.groupby(["rule", "action"], sort=True)
            .agg(
                count=("step", "size"), episodes=("episode", "nunique"), penalty=("penalty", "sum")
            )
            .reset_index()
        )
        return out.sort_values(
            ["count", "rule"], ascending=[False, True], kind="stable"
        ).reset_index(drop=True)
