"""Calling a numba kernel without numba's per-call type dispatch.

A dispatcher call types every argument before it picks the compiled function, on every call;
for a kernel called every env step that is a visible share of the step. `compiled_entry` resolves the compiled function once for the types of a given argument tuple;
call it only with arguments of exactly those types (the envs rebuild it whenever they rebind
their arrays, whose dtypes and layouts never change).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numba


def compiled_entry(dispatcher: Any, args: Sequence[Any]) -> Callable[..., Any]:
    """The compiled function `dispatcher` runs for `args`' types (compiled, or loaded from
    numba's cache, on first use); call it with arguments of the same types only."""
    types = tuple(numba.typeof(a) for a in args)
    if types not in dispatcher.overloads:
        dispatcher.compile(types)
    return dispatcher.overloads[types].entry_point
