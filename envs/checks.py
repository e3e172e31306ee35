"""Argument checks shared by the envs: one error per bad keyword, naming it and its value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def check_number(
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    open_lo: bool = False,
    open_hi: bool = False,
    integer: bool = False,
) -> None:
    """TypeError unless `value` is a real number (an int when `integer`; never a bool, which
    Python counts as an int but no caller means as one); ValueError unless it is finite and
    inside the range [lo, hi] (an open end excludes its bound)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds):
        what = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    v = float(value)
    below = v < lo or (open_lo and v == lo)
    above = v > hi or (open_hi and v == hi)
    if not math.isfinite(v) or below or above:
        raise ValueError(f"{name} must be {_range(lo, hi, open_lo, open_hi)}, got {value!r}")


def _range(lo: float, hi: float, open_lo: bool, open_hi: bool) -> str:
    if math.isinf(hi):
        return "finite" if math.isinf(lo) else f"{'>' if open_lo else '>='} {lo:g}"
    if math.isinf(lo):
        return f"{'<' if open_hi else '<='} {hi:g}"
    return f"in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
