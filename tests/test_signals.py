"""Signal handlers set for a block: restored after it, a held signal handed on, and nothing
set outside the main thread."""

from __future__ import annotations

import os
import signal
import threading

from trendgym.evaluate.walkforward.signals import signals_held
from trendgym.train.signals import handlers_set


def test_handlers_set_restores_the_previous_handlers_after_an_error():
    got: list[int] = []
    before = signal.getsignal(signal.SIGUSR1)
    try:
        with handlers_set([signal.SIGUSR1], lambda s, f: got.append(s)) as previous:
            assert previous == {signal.SIGUSR1: before}
            os.kill(os.getpid(), signal.SIGUSR1)
            raise KeyError("the block fails")
    except KeyError:
        pass
    assert got == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) == before


def test_signals_held_hands_the_first_signal_on_after_the_block():
    seen: list[tuple[int, int]] = []
    old = signal.signal(signal.SIGINT, lambda s, f: seen.append((s, len(done))))
    done: list[bool] = []
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            done.append(True)  # the write finishes before the handler runs
        assert seen == [(signal.SIGINT, 1)]
    finally:
        signal.signal(signal.SIGINT, old)


def test_nothing_is_set_outside_the_main_thread():
    out: list[dict] = []

    def work():
        with handlers_set([signal.SIGUSR1], lambda s, f: None) as previous:
            out.append(previous)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out == [{}]
