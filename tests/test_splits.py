"""Walk-forward and combinatorial purged splits: invariants (hypothesis) and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trendgym.evaluate import (
    Fold,
    backtest_paths,
    combinatorial_purged_splits,
    walk_forward_splits,
)


@st.composite
def wf_args(draw):
    n_obs = draw(st.integers(10, 400))
    test_size = draw(st.integers(1, 60))
    step = test_size + draw(st.integers(0, 10))
    train_size = draw(st.integers(1, 120))
    purge = draw(st.integers(0, 10))
    embargo = draw(st.integers(0, 10))
    mode = draw(st.sampled_from(["expanding", "rolling"]))
    return n_obs, dict(
        test_size=test_size,
        step=step,
        train_size=train_size,
        purge=purge,
        embargo=embargo,
        mode=mode,
    )


def check_folds(folds: list[Fold], n_obs: int, kw: dict) -> None:
    """Invariants of every walk-forward split; kw: purge, embargo, mode, train_size (int)."""
    assert folds, "at least one fold"
    gap = kw.get("purge", 0) + kw.get("embargo", 0)
    mode = kw.get("mode", "expanding")
    for k, f in enumerate(folds):
        assert f.fold == k
        assert 0 <= f.train_start < f.train_stop <= f.test_start < f.test_stop <= n_obs
        # train ∩ test = ∅ and the whole purge + embargo gap separates them
        assert not set(f.train_indices) & set(f.test_indices)
        assert f.test_start - f.train_stop == gap
        if mode == "expanding":
            assert f.train_start == 0
        elif isinstance(kw.get("train_size"), int):  # rolling keeps its length
            assert f.train_size == kw["train_size"]
    for a, b in zip(folds, folds[1:], strict=False):
        # ordered, disjoint test blocks; a fold never trains on its own future
        assert a.test_stop <= b.test_start
        assert a.test_start < b.test_start
        assert b.train_stop > a.train_stop


@settings(max_examples=200, deadline=None)
@given(wf_args())
def test_walk_forward_invariants(args):
    n_obs, kw = args
    assume(kw["train_size"] + kw["purge"] + kw["embargo"] < n_obs)
    folds = walk_forward_splits(n_obs, **kw)
    check_folds(folds, n_obs, kw)
    # every test block is full length except possibly the last, which ends at the data end
    assert all(f.test_size == kw["test_size"] for f in folds[:-1])
    assert folds[-1].test_stop == min(n_obs, folds[-1].test_start + kw["test_size"])
    # nothing testable left behind after the last block
    assert folds[-1].test_start + kw["step"] >= n_obs


@settings(max_examples=100, deadline=None)
@given(
    n_obs=st.integers(20, 500),
    n_splits=st.integers(1, 8),
    train_size=st.integers(1, 60),
    purge=st.integers(0, 5),
    embargo=st.integers(0, 5),
    mode=st.sampled_from(["expanding", "rolling"]),
)
def test_n_splits_fill_the_end(n_obs, n_splits, train_size, purge, embargo, mode):
    assume(n_obs - train_size - purge - embargo >= n_splits)
    kw = dict(n_splits=n_splits, train_size=train_size, purge=purge, embargo=embargo, mode=mode)
    folds = walk_forward_splits(n_obs, **kw)
    assert len(folds) == n_splits
    check_folds(folds, n_obs, kw)
    assert folds[-1].test_stop == n_obs
    assert len({f.test_size for f in folds}) == 1


def test_n_splits_with_test_size_keeps_latest():
    folds = walk_forward_splits(100, test_size=10, train_size=20, n_splits=3)
    assert [(f.test_start, f.test_stop) for f in folds] == [(70, 80), (80, 90), (90, 100)]
    assert folds[0].fold == 0


def test_dates_are_carried_and_calendar_sizes_work():
    dates = pd.bdate_range("2018-01-01", "2020-12-31")
    folds = walk_forward_splits(dates, test_size="3MS", train_size="365D", purge=5, mode="rolling")
    check_folds(folds, len(dates), {"purge": 5, "mode": "rolling", "train_size": "365D"})
    for f in folds:
        assert f.test_start_date == dates[f.test_start]
        assert f.test_end_date == dates[f.test_stop - 1]
        assert f.train_end_date == dates[f.train_stop - 1]
        # rolling one calendar year: the window starts within a year of the purged end
        assert f.train_start_date >= dates[f.train_stop] - pd.Timedelta(days=365)
        assert f.train_start == 0 or dates[f.train_start - 1] < dates[f.train_stop] - pd.Timedelta(
            days=365
        )
    # after the first (partial) quarter, test blocks are calendar quarters
    for f in folds[1:-1]:
        assert f.test_start_date.month in (1, 4, 7, 10) and f.test_start_date.day <= 3


def test_calendar_test_blocks_cover_the_tail():
    dates = pd.date_range("2020-01-01", periods=300, freq="D")
    folds = walk_forward_splits(dates, test_size="30D", train_size=100)
    assert folds[0].test_start == 100
    assert folds[-1].test_stop == 300
    assert all(f.test_size == 30 for f in folds[:-1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(index=100, test_size=10, step=5), ValueError, "step"),
        (dict(index=100, test_size=0), ValueError, "test_size"),
        (dict(index=100, test_size=10, purge=-1), ValueError, "purge"),
        (dict(index=100, test_size=10, embargo=-2), ValueError, "embargo"),
        (dict(index=100, test_size=10, mode="sliding"), ValueError, "mode"),
        (dict(index=100, test_size=10, mode="rolling"), ValueError, "train_size"),
        (dict(index=100), ValueError, "test_size or n_splits"),
        (dict(index=100, n_splits=0), ValueError, "n_splits"),
        (dict(index=100, test_size=10, train_size=50, n_splits=9), ValueError, "n_splits"),
        (dict(index=100, test_size=10, train_size=95, purge=5), ValueError, "purge"),
        (dict(index=100, test_size="30D"), TypeError, "DatetimeIndex"),
        (dict(index=2.5, test_size=1), TypeError, "index"),
        (dict(index=100, test_size=1.5), TypeError, "test_size"),
        (
            dict(index=pd.DatetimeIndex(["2020-01-02", "2020-01-01"]), test_size=1),
            ValueError,
            "index",
        ),
    ],
)
def test_bad_arguments_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        walk_forward_splits(**kwargs)


def test_fold_is_frozen():
    fold = walk_forward_splits(50, test_size=10)[0]
    with pytest.raises(AttributeError):
        fold.test_start = 0  # type: ignore[misc]


# ----------------------------------------------------------------- CPCV


@settings(max_examples=60, deadline=None)
@given(
    n_obs=st.integers(30, 300),
    n_groups=st.integers(3, 8),
    k=st.integers(1, 3),
    purge=st.integers(0, 4),
    embargo=st.integers(0, 4),
)
def test_cpcv_invariants(n_obs, n_groups, k, purge, embargo):
    assume(k < n_groups)
    edges = np.linspace(0, n_obs, n_groups + 1).round().astype(int)
    try:
        folds = combinatorial_purged_splits(n_obs, n_groups, k, purge, embargo)
    except ValueError as exc:
        # only legitimate when some split's purged training set is really empty
        assert "no training rows" in str(exc)
        from itertools import combinations

        def left(groups):
            banned = np.zeros(n_obs, bool)
            for g in groups:
                banned[max(0, edges[g] - purge) : edges[g + 1] + embargo] = True
            return (~banned).sum()

        assert any(left(c) == 0 for c in combinations(range(n_groups), k))
        return
    assert len(folds) == math.comb(n_groups, k)
    for f in folds:
        train, test = set(f.train_indices), set(f.test_indices)
        assert not train & test
        for g in f.test_groups:
            a, b = edges[g], edges[g + 1]
            assert set(range(a, b)) <= test
            # purge before and embargo after every test group
            assert not train & set(range(max(0, a - purge), a))
            assert not train & set(range(b, min(n_obs, b + embargo)))
        assert np.all(np.diff(f.train_indices) > 0)
    # every row is tested by the same number of splits
    counts = np.zeros(n_obs, int)
    for f in folds:
        counts[f.test_indices] += 1
    assert (counts == math.comb(n_groups - 1, k - 1)).all()


@pytest.mark.parametrize(("n", "k"), [(6, 2), (5, 1), (8, 3)])
def test_backtest_paths_cover_each_group_once(n, k):
    paths = backtest_paths(n, k)
    folds = combinatorial_purged_splits(100, n, k)
    assert paths.shape == (math.comb(n - 1, k - 1), n)
    for p in paths:
        for g, split in enumerate(p):
            assert g in folds[split].test_groups
    # each split feeds exactly k (path, group) cells
    assert (np.bincount(paths.ravel(), minlength=len(folds)) == k).all()


def test_cpcv_bad_arguments():
    with pytest.raises(ValueError, match="n_test_groups"):
        combinatorial_purged_splits(100, 4, 4)
    with pytest.raises(ValueError, match="n_obs"):
        combinatorial_purged_splits(3, 6, 2)
    with pytest.raises(ValueError, match="purge"):
        combinatorial_purged_splits(10, 2, 1, purge=10)
