"""Named layouts usable inside numba kernels, and the status every book kernel returns.

A layout is a NamedTuple instance whose fields are column indices: ``EI = layout("EI",
"side qty ...")`` numbers the columns in the order given, so a kernel reads ``ei[i, EI.side]``
and numba folds ``EI.side`` to a constant. Each layout is defined once, where its columns are
written; ``len(EI)`` is the number of columns.

`Book` and `FlowState` bundle the arrays a kernel works on, so they travel as one argument:
numba passes a tuple of arrays exactly as it passes the arrays one by one.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, NamedTuple

import numpy as np


def layout(name: str, fields: str) -> Any:
    """A NamedTuple instance mapping each of the space-separated `fields` to its position."""
    cls = namedtuple(name, fields)
    return cls(*range(len(cls._fields)))


def block_layout(name: str, widths: dict[str, int]) -> tuple[Any, int]:
    """(offsets, total width) of consecutive blocks: a NamedTuple instance mapping each field
    of `widths` to the first column of its block of ``widths[field]`` columns."""
    cls = namedtuple(name, list(widths))
    starts = np.cumsum([0, *widths.values()])
    return cls(*(int(s) for s in starts[:-1])), int(starts[-1])


# What a kernel that can stop early returns: done, or what its caller must do before calling
# again (grow the price window / the order pool / the trade buffer; run the pre-trade hook;
# grow the pre-trade checks' own buffers). DUPLICATE_ID and INVALID_MESSAGE refuse a batch;
# STUCK: a book stayed empty too long.
STATUS = layout(
    "Status",
    "done need_window need_slot need_trade_room duplicate_id invalid_message stuck need_hook"
    " need_check_room",
)
NEEDS_ROOM = (STATUS.need_window, STATUS.need_slot, STATUS.need_trade_room)


class Book(NamedTuple):
    """The arrays of one order book (or, one row per book, of a batch of books); see
    ``kernels.py`` for what each holds."""

    orders: np.ndarray
    levels: np.ndarray
    keys: np.ndarray
    slots: np.ndarray
    meta: np.ndarray
    owner_stats: np.ndarray


class FlowState(NamedTuple):
    """The background flow's arrays (``flow.py``): its xoshiro stream, parameters, float and
    int state, and the near-queue counts carried from a stop to the resumed call."""

    rng: np.ndarray
    params: np.ndarray
    fstate: np.ndarray
    istate: np.ndarray
    q_bid: np.ndarray
    q_ask: np.ndarray
