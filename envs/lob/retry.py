"""The loop around every kernel that can stop early to ask for room.

Book kernels never allocate: when the order pool, the price window or the trade buffer may be
too small for the next event, a kernel stops *before* drawing or applying anything and returns
what it needs (a ``STATUS`` field). Its Python caller grows the arrays and calls it again; the
kernel resumes where it stopped, so array sizes never change a result.
"""

from __future__ import annotations

from collections.abc import Callable

from trendgym.envs.lob.layout import STATUS


def run_to_done(
    call: Callable[[], int], make_room: Callable[[int], None], status: int | None = None
) -> None:
    """Call `call()` until it returns ``STATUS.done``; after any other status, `make_room(status)`
    grows what the kernel asked for (or raises when it cannot) before the next call. `status`:
    that of a first call the caller already made (callers on a hot path make it themselves
    and come here only when it stopped)."""
    if status is None:
        status = call()
    while status != STATUS.done:
        make_room(status)
        status = call()
