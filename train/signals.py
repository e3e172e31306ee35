"""Signal handlers set for the length of a block, then the previous ones put back."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def handlers_set(
    signals: Iterable[int], handler: Callable[[int, Any], Any]
) -> Iterator[dict[int, Any]]:
    """Set `handler` for each of `signals` while the block runs, then restore the handlers
    that were in place (yielded, by signal). Only the main thread may set handlers; elsewhere
    nothing is set and the mapping is empty."""
    if threading.current_thread() is not threading.main_thread():
        yield {}
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield previous
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
