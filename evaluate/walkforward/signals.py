"""Stopping a walk-forward evaluation on SIGINT or SIGTERM without losing a finished trial.

The process that runs the evaluation turns the first SIGINT or SIGTERM into
:class:`EvaluationInterrupted` (a KeyboardInterrupt) and ignores later ones while it cleans up;
a ledger write holds both signals until its row is committed, so a trial is recorded whole or
not at all. Worker processes ignore both (a terminal's Ctrl-C reaches the whole process group):
the parent stops them, so they never print a traceback.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from trendgym.train.signals import handlers_set

__all__ = ["SIGNALS", "EvaluationInterrupted", "ignore_signals", "signals_held", "stop_on_signals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class EvaluationInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped an evaluation; the trials it finished are in the ledger."""

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum  # the shell's convention for death by signal
        super().__init__(message or f"{signal.Signals(self.signum).name}: evaluation stopped")


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Raise :class:`EvaluationInterrupted` on the first SIGINT or SIGTERM; ignore later ones
    until the block is left (the cleanup runs undisturbed). Main thread only; elsewhere a no-op."""
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        raise EvaluationInterrupted(signum)

    with handlers_set(SIGNALS, handler):
        yield


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs (a ledger write), then hand the first one
    received to the handler that was in place before."""
    held: list[int] = []
    previous: dict[int, Any] = {}
    try:
        with handlers_set(SIGNALS, lambda signum, frame: held.append(signum)) as previous:
            yield
    finally:
        if held:  # the handlers are back: hand the signal to the one that was in place
            _deliver(held[0], previous[held[0]])


def _deliver(signum: int, handler: Any) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)  # the default action, now that the write is done


def ignore_signals() -> None:
    """In a worker process: leave SIGINT and SIGTERM to the parent, which stops the workers."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
