"""The state of an evaluation in its report folder, so an interrupted one can be resumed.

``evaluation.json`` in the report folder says what the evaluation runs (its config, ledger,
placebo and survivorship settings, code version) and whether it is ``running``,
``interrupted``, ``failed`` (an error, not a signal) or ``done``. The finished trials themselves live in the ledger, keyed by the
search's :func:`~trendgym.evaluate.walkforward.run_key`; this file is what lets
``--resume`` refuse a different evaluation and a plain rerun refuse to start over silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trendgym.evaluate.ledger import Ledger, code_version
from trendgym.evaluate.walkforward import WalkForwardConfig
from trendgym.evaluate.walkforward.config import run_key

__all__ = ["STATE_FILE", "EvaluationState"]

STATE_FILE = "evaluation.json"


@dataclass(frozen=True)
class EvaluationState:
    """What one evaluation is, written to ``<out_dir>/evaluation.json`` as it runs."""

    out_dir: Path
    settings: Mapping[str, Any]

    @classmethod
    def of(
        cls,
        out_dir: str | os.PathLike[str],
        config: WalkForwardConfig,
        ledger: Ledger | None,
        placebo: bool,
        survivorship: bool,
    ) -> EvaluationState:
        settings = {
            **config.to_json(),
            "ledger": None if ledger is None else str(Path(ledger.path).resolve()),
            "placebo": placebo,
            "survivorship": survivorship,
            "code_version": code_version(),
        }
        return cls(Path(out_dir), settings)

    @property
    def path(self) -> Path:
        return self.out_dir / STATE_FILE

    def saved(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        try:
            saved = json.loads(self.path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"--out: cannot read {str(self.path)!r} ({err})") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("settings"), dict):
            raise ValueError(f"--out: {str(self.path)!r} is not an evaluation's state file")
        return saved

    def check(self, resume: bool) -> str:
        """How this evaluation starts in its folder: "new" or "resume"; a ValueError when the
        folder holds an unfinished evaluation and `resume` is False, or another evaluation
        (naming the first setting that differs) and `resume` is True. Writes nothing."""
        saved = self.saved()
        if saved is None:
            return "resume" if resume else "new"
        if not resume:
            if saved.get("status") in ("done", "failed"):
                return "new"  # a finished evaluation's report is replaced; a failed one rerun
            raise ValueError(
                f"--out: {str(self.out_dir)!r} holds an evaluation that did not finish "
                f"({saved.get('status')}); continue it with --resume (resume=True), or choose "
                "another --out"
            )
        old = saved["settings"]
        for key in sorted(set(old) | set(self.settings)):
            if old.get(key) != self.settings.get(key):
                raise ValueError(
                    f"cannot resume the evaluation in {str(self.out_dir)!r}: {key}="
                    f"{_short(self.settings.get(key))} differs from its {_short(old.get(key))}"
                )
        return "resume"

    def write(self, status: str, **extra: Any) -> None:
        """Record `status` atomically (a reader never sees half a file)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        body = {"status": status, "settings": dict(self.settings), **extra}
        tmp = self.path.with_name(f".{STATE_FILE}.tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def finished_count(ledger: Ledger | None, configs: list[WalkForwardConfig]) -> int:
    """Trials the ledger holds for these searches (their run keys)."""
    if ledger is None:
        return 0
    keys = {run_key(c) for c in configs}
    rows = ledger.trials(env_id=configs[0].env_id)
    return sum(m.get("run_key") in keys for m in rows["is_metrics"])
