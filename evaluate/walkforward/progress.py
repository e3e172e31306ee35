"""Progress of a search over trials: a tqdm bar on a terminal, plain lines in a log.

Each search says what it is (the walk-forward search, or placebo search k of n and what its
data are), so a log never shows the placebo as the real search starting over. Trials are
minutes apart, so a redirected run prints one line per finished trial.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm.auto import tqdm

__all__ = ["TrialProgress"]


class TrialProgress:
    """Trials finished out of `total`; `done` of them were finished before (resumed)."""

    def __init__(
        self, label: str, total: int, done: int = 0, enabled: bool = True, stream: Any = None
    ) -> None:
        self.label, self.total, self.done, self.enabled = label, int(total), int(done), enabled
        self.stream = stream if stream is not None else sys.stderr
        self.start_done, self.started = self.done, time.perf_counter()
        self.bar: tqdm | None = None
        if not enabled:
            return
        if self.stream.isatty():
            self.bar = tqdm(
                total=self.total, initial=self.done, unit="trial", desc=label, file=self.stream
            )
        else:
            before = f", {self.done} finished before (in the ledger)" if self.done else ""
            self._line(f"{self.total} trials{before}")

    def _line(self, text: str) -> None:
        print(f"trendgym: {self.label}: {text}", file=self.stream, flush=True)

    def update(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.started
        ran = self.done - self.start_done
        left = f"~{elapsed / ran * (self.total - self.done):.0f} s left" if ran else ""
        self._line(f"{self.done}/{self.total} trials, {elapsed:.0f} s elapsed, {left}".rstrip(", "))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
