"""Time-ordered train/test splits: walk-forward folds and combinatorial purged CV.

All index ranges are half-open positions ``[start, stop)`` into the data's rows.

- **purge** (observations): a training sample's label looks ``purge`` periods ahead, so the
  training rows within ``purge`` of a test block are dropped (López de Prado 2018, ch. 7).
- **embargo** (observations): features are serially correlated, so rows right after a test
  block are not used for training either. In a walk-forward fold training always precedes
  testing, so the embargo is kept as a further gap between the purged training span and the
  test block: ``train_stop + purge + embargo == test_start``. In combinatorial purged CV,
  where training rows also follow test blocks, it has its textbook meaning: the ``embargo``
  rows after each test block are dropped from training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

__all__ = [
    "CombinatorialFold",
    "Fold",
    "backtest_paths",
    "combinatorial_purged_splits",
    "walk_forward_splits",
]

Size: TypeAlias = int | str | pd.DateOffset | pd.Timedelta


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: train on ``[train_start, train_stop)``, test on ``[test_start, test_stop)``.

    Dates are the first and last timestamps of each span (inclusive) when the splits were
    built from a DatetimeIndex, else None.
    """

    fold: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int
    train_start_date: pd.Timestamp | None = None
    train_end_date: pd.Timestamp | None = None
    test_start_date: pd.Timestamp | None = None
    test_end_date: pd.Timestamp | None = None

    @property
    def train(self) -> slice:
        return slice(self.train_start, self.train_stop)

    @property
    def test(self) -> slice:
        return slice(self.test_start, self.test_stop)

    @property
    def train_indices(self) -> np.ndarray:
        return np.arange(self.train_start, self.train_stop)

    @property
    def test_indices(self) -> np.ndarray:
        return np.arange(self.test_start, self.test_stop)

    @property
    def train_size(self) -> int:
        return self.train_stop - self.train_start

    @property
    def test_size(self) -> int:
        return self.test_stop - self.test_start


@dataclass(frozen=True)
class CombinatorialFold:
    """One CPCV split: `test_groups` (group numbers) are tested, the purged rest trains."""

    split: int
    test_groups: tuple[int, ...]
    train_indices: np.ndarray
    test_indices: np.ndarray


# --------------------------------------------------------------------------- argument checks


def _int_arg(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _as_index(index: int | pd.DatetimeIndex) -> tuple[int, pd.DatetimeIndex | None]:
    if isinstance(index, pd.DatetimeIndex):
        if index.hasnans:
            raise ValueError("index contains NaT")
        if not index.is_monotonic_increasing or not index.is_unique:
            raise ValueError("index must be strictly increasing (sorted, no duplicate dates)")
        return len(index), index
    if isinstance(index, bool) or not isinstance(index, int | np.integer):
        raise TypeError(
            f"index must be a number of observations (int) or a pandas DatetimeIndex, "
            f"got {type(index).__name__}"
        )
    return _int_arg(index, "index", 1), None


def _is_calendar(value: object) -> bool:
    return isinstance(value, str | pd.DateOffset | pd.Timedelta)


def _offset(value: Size, name: str, dates: pd.DatetimeIndex | None) -> pd.DateOffset:
    if dates is None:
        raise TypeError(f"{name}={value!r} is a calendar length; it needs a DatetimeIndex as index")
    try:
        off = to_offset(value)
    except ValueError as exc:
        raise ValueError(
            f"{name}={value!r} is not a pandas frequency such as '90D' or '3MS'"
        ) from exc
    probe = dates[0]
    if not probe + off > probe:
        raise ValueError(f"{name}={value!r} must be a positive length")
    return off


def _date(dates: pd.DatetimeIndex | None, pos: int) -> pd.Timestamp | None:
    return None if dates is None else dates[pos]


# --------------------------------------------------------------------------- walk-forward


def walk_forward_splits(
    index: int | pd.DatetimeIndex,
    *,
    test_size: Size | None = None,
    n_splits: int | None = None,
    train_size: Size | None = None,
    mode: Literal["expanding", "rolling"] = "expanding",
    step: Size | None = None,
    purge: int = 0,
    embargo: int = 0,
) -> list[Fold]:
    """Walk-forward folds: train on the past only, test on the next block.

    Parameters
    ----------
    index : number of observations, or the data's DatetimeIndex (folds then carry dates and
        sizes may be calendar lengths such as ``"90D"`` or ``"3MS"``).
    test_size : length of each test block (observations or calendar). If omitted, `n_splits`
        equal blocks fill the data after the first training span.
    n_splits : keep only the last `n_splits` folds (raise if fewer fit).
    train_size : rolling: the training window's length; expanding: the first window's length
        (default: `test_size`). Windows always start at row 0 when expanding.
    mode : ``"expanding"`` or ``"rolling"``.
    step : distance between consecutive test starts (default `test_size`); must be at least
        `test_size` so test blocks never overlap.
    purge, embargo : gaps in observations between training and testing (module docstring).

    Test blocks are ordered and disjoint; the last one may be shorter when the data end.
    """
    n_obs, dates = _as_index(index)
    purge = _int_arg(purge, "purge", 0)
    embargo = _int_arg(embargo, "embargo", 0)
    gap = purge + embargo
    if mode not in ("expanding", "rolling"):
        raise ValueError(f"mode must be 'expanding' or 'rolling', got {mode!r}")
    if n_splits is not None:
        n_splits = _int_arg(n_splits, "n_splits", 1)
    if test_size is None and n_splits is None:
        raise ValueError("give test_size or n_splits")
    if mode == "rolling" and train_size is None:
        raise ValueError("train_size is required when mode='rolling'")

    # First training span, in observations, measured from row 0.
    train_off: pd.DateOffset | None = None
    first_train: int | None = None
    if train_size is not None and _is_calendar(train_size):
        train_off = _offset(train_size, "train_size", dates)
        assert dates is not None  # _offset refused calendar lengths without dates
        first_train = int(dates.searchsorted(dates[0] + train_off, side="left"))
        if first_train < 1:
            raise ValueError(f"train_size={train_size!r} covers no observation")
    elif train_size is not None:
        first_train = _int_arg(train_size, "train_size", 1)

    if test_size is None:
        assert n_splits is not None  # checked above
        # n equal blocks that end exactly at the data end; leftovers go to the first training span.
        base = first_train if first_train is not None else 1
        if step is not None:
            raise ValueError("step needs test_size")
        size = (n_obs - base - gap) // n_splits
        if size < 1:
            raise ValueError(
                f"n_splits={n_splits} test blocks do not fit in {n_obs} observations after a "
                f"training span of {base} and a gap of {gap}"
            )
        first_test = n_obs - n_splits * size
        blocks = [(first_test + k * size, first_test + (k + 1) * size) for k in range(n_splits)]
    else:
        blocks = _test_blocks(n_obs, dates, test_size, step, first_train, gap)

    if n_splits is not None:
        if len(blocks) < n_splits:
            raise ValueError(
                f"n_splits={n_splits} folds requested but only {len(blocks)} fit in the data"
            )
        blocks = blocks[-n_splits:]

    folds = []
    for k, (t0, t1) in enumerate(blocks):
        train_stop = t0 - gap
        if mode == "expanding":
            train_start = 0
        elif train_off is not None and dates is not None:
            train_start = int(dates.searchsorted(dates[train_stop] - train_off, side="left"))
        else:
            assert first_train is not None  # rolling requires train_size
            train_start = train_stop - first_train
        if train_start < 0 or train_stop - train_start < 1:
            raise ValueError(
                f"fold {k} has no room for its training window (train_size={train_size!r})"
            )
        folds.append(
            Fold(
                fold=k,
                train_start=train_start,
                train_stop=train_stop,
                test_start=t0,
                test_stop=t1,
                train_start_date=_date(dates, train_start),
                train_end_date=_date(dates, train_stop - 1),
                test_start_date=_date(dates, t0),
                test_end_date=_date(dates, t1 - 1),
            )
        )
    return folds


def _test_blocks(
    n_obs: int,
    dates: pd.DatetimeIndex | None,
    test_size: Size,
    step: Size | None,
    first_train: int | None,
    gap: int,
) -> list[tuple[int, int]]:
    """Test blocks walking forward from the first test start; the last one may be cut short."""
    calendar = _is_calendar(test_size)
    if step is None:
        step = test_size
    if _is_calendar(step) != calendar:
        raise TypeError(
            "test_size and step must both be observation counts or both calendar lengths"
        )
    if calendar:
        size_off = _offset(test_size, "test_size", dates)
        step_off = _offset(step, "step", dates)
        assert dates is not None  # _offset refused calendar lengths without dates
        probe = dates[0]
        if probe + step_off < probe + size_off:
            raise ValueError(
                f"step={step!r} must be >= test_size={test_size!r} (test blocks would overlap)"
            )
    else:
        size = _int_arg(test_size, "test_size", 1)
        stride = _int_arg(step, "step", 1)
        if stride < size:
            raise ValueError(
                f"step={stride} must be >= test_size={size} (test blocks would overlap)"
            )

    if first_train is not None:
        train0 = first_train
    elif dates is not None and calendar:  # default first training span: one test length
        train0 = max(1, int(dates.searchsorted(dates[0] + size_off, side="left")))
    else:
        train0 = size
    start = train0 + gap
    if start >= n_obs:
        raise ValueError(
            f"no test block fits: the first training span ({train0}) plus purge and embargo "
            f"({gap}) leaves nothing of {n_obs} observations"
        )
    blocks: list[tuple[int, int]] = []
    if dates is not None and calendar:
        anchor = dates[start]
        k = 0
        while True:
            # 0 * MonthBegin would roll the anchor forward, so block 0 starts at the anchor.
            begin = anchor if k == 0 else anchor + k * step_off
            t0 = int(dates.searchsorted(begin, side="left"))
            if t0 >= n_obs:
                break
            t1 = int(dates.searchsorted(begin + size_off, side="left"))
            if t1 > t0:
                blocks.append((t0, t1))
            k += 1
    else:
        for t0 in range(start, n_obs, stride):
            blocks.append((t0, min(t0 + size, n_obs)))
    return blocks


# --------------------------------------------------------------------------- CPCV


def combinatorial_purged_splits(
    n_obs: int, n_groups: int = 6, n_test_groups: int = 2, purge: int = 0, embargo: int = 0
) -> list[CombinatorialFold]:
    """Combinatorial purged cross-validation (López de Prado 2018, ch. 12).

    Rows are cut into `n_groups` contiguous groups; each of the C(n_groups, n_test_groups)
    splits tests on `n_test_groups` of them and trains on the rest, minus the `purge` rows
    before and the `embargo` rows after every test group.
    """
    n_obs = _int_arg(n_obs, "n_obs", 1)
    n_groups = _int_arg(n_groups, "n_groups", 2)
    n_test_groups = _int_arg(n_test_groups, "n_test_groups", 1)
    purge = _int_arg(purge, "purge", 0)
    embargo = _int_arg(embargo, "embargo", 0)
    if n_test_groups >= n_groups:
        raise ValueError(f"n_test_groups={n_test_groups} must be < n_groups={n_groups}")
    if n_obs < n_groups:
        raise ValueError(f"n_obs={n_obs} must be >= n_groups={n_groups}")
    edges = np.linspace(0, n_obs, n_groups + 1).round().astype(np.int64)
    folds = []
    for k, groups in enumerate(combinations(range(n_groups), n_test_groups)):
        test = np.zeros(n_obs, dtype=bool)
        banned = np.zeros(n_obs, dtype=bool)
        for g in groups:
            a, b = int(edges[g]), int(edges[g + 1])
            test[a:b] = True
            banned[max(0, a - purge) : min(n_obs, b + embargo)] = True
        train = ~banned
        if not train.any():
            raise ValueError(
                f"purge={purge} and embargo={embargo} leave split {k} no training rows"
            )
        folds.append(
            CombinatorialFold(
                split=k,
                test_groups=tuple(groups),
                train_indices=np.flatnonzero(train),
                test_indices=np.flatnonzero(test),
            )
        )
    return folds


def backtest_paths(n_groups: int, n_test_groups: int) -> np.ndarray:
    """Which CPCV split supplies each group's out-of-sample result on each backtest path.

    Returns an int array (n_paths, n_groups), n_paths = C(n_groups - 1, n_test_groups - 1):
    entry [p, g] is the split number (in :func:`combinatorial_purged_splits` order) whose
    test prediction for group g forms part of path p. Each split is used exactly
    `n_test_groups` times, once per group it tests, on different paths.
    """
    n_groups = _int_arg(n_groups, "n_groups", 2)
    n_test_groups = _int_arg(n_test_groups, "n_test_groups", 1)
    if n_test_groups >= n_groups:
        raise ValueError(f"n_test_groups={n_test_groups} must be < n_groups={n_groups}")
    n_paths = math.comb(n_groups - 1, n_test_groups - 1)
    paths = np.full((n_paths, n_groups), -1, dtype=np.int64)
    used = np.zeros(n_groups, dtype=np.int64)  # next free path per group
    for k, groups in enumerate(combinations(range(n_groups), n_test_groups)):
        for g in groups:
            paths[used[g], g] = k
            used[g] += 1
    return paths
