"""Load and validate the user's market data: wide prices, per-asset costs, exogenous signals.

Everything is checked once, here, so the env's hot loop can trust its arrays. Broken data is
refused with a message that names the problem (and the asset and date where it helps):
non-positive or infinite prices, duplicate or unsorted dates, non-numeric columns, duplicate
assets, assets with no price at all, signals whose index or columns do not line up, a first
column that is not dates, long-format data (with how to pivot it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PriceSource = pd.DataFrame | str | os.PathLike


def load_frame(source: PriceSource, name: str = "prices", long: bool = False) -> pd.DataFrame:
    """A wide DataFrame from a DataFrame, or a CSV / parquet path (first column = dates).

    The first column must parse as dates (timezone offsets as pandas writes them are kept, as
    UTC when they vary); numbers there are refused rather than read as 1970 timestamps.
    Long-format data (one row per date and asset) is refused with how to pivot it, or
    pivoted when ``long=True`` (three columns: date, asset, value).
    """
    if not isinstance(long, bool):
        raise TypeError(f"long must be a bool, got {type(long).__name__}")
    if isinstance(source, pd.DataFrame):
        if not isinstance(source.index, pd.DatetimeIndex) and source.shape[1] >= 2:
            source = _dates_from_first_column(source, name, long)
        return _pivot_long(source, name, "the frame") if long else source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a DataFrame or a path to a CSV/parquet file, got {type(source).__name__}"
        )
    path = Path(source)
    where = repr(str(path))
    if not path.exists():
        raise ValueError(f"{name}: no such file {where}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        raw = pd.read_parquet(path)
        if isinstance(raw.index, pd.DatetimeIndex):
            return _pivot_long(raw, name, where) if long else raw
        raw = raw.reset_index(drop=isinstance(raw.index, pd.RangeIndex))
    elif suffix in (".csv", ".txt", ".gz"):
        raw = pd.read_csv(path)
    else:
        raise ValueError(f"{name}: unsupported file type {suffix!r} (use .csv or .parquet)")
    if raw.shape[1] < 2:
        raise ValueError(f"{name}: {where} needs a date column and at least one asset column")
    date_col = raw.columns[0]
    frame = raw.set_index(date_col)
    frame.index = _parse_dates(frame.index, name, f"the first column {str(date_col)!r} of {where}")
    if long:
        return _pivot_long(frame, name, where)
    _refuse_long(frame, name, where)
    return frame


def _dates_from_first_column(frame: pd.DataFrame, name: str, long: bool) -> pd.DataFrame:
    """Long data whose dates are a column (read without an index, or ``reset_index()``): with
    ``long=True`` that column becomes the index; without, a frame that looks long (dates, then
    asset names beside values) is refused with how to pivot it. Others are left to the checks
    of a wide frame."""
    if not (long or _looks_long(frame.iloc[:, 1:])):
        return frame
    first = frame.columns[0]
    what = f"the first column {str(first)!r}"
    try:
        dates = _parse_dates(pd.Index(frame[first]), name, what)
    except ValueError:
        if long:
            raise
        return frame
    indexed = frame.set_index(first)
    indexed.index = pd.DatetimeIndex(dates, name=first)
    if not long:
        _refuse_long(indexed, name, "the frame")
    return indexed


def _looks_long(rest: pd.DataFrame) -> bool:
    """A text column beside a numeric one: asset names beside values."""
    kinds = [pd.api.types.is_numeric_dtype(rest[c].dtype) for c in rest.columns]
    return any(kinds) and not all(kinds)


def _parse_dates(values: pd.Index, name: str, what: str) -> pd.DatetimeIndex:
    """Dates from a column of dates or text; numbers (epoch-like integers, floats) are refused."""
    example = values[0] if len(values) else None
    if isinstance(values, pd.DatetimeIndex):  # parquet keeps dates typed
        return values
    if not (pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)):
        raise ValueError(
            f"{name}: {what} must hold dates, but holds {values.dtype} values such as "
            f"{example!r} (an index saved in place of the dates?)"
        )
    try:
        try:
            dates = pd.to_datetime(values)
        except ValueError as exc:
            if "timezone" not in str(exc).lower() and "utc=true" not in str(exc).lower():
                raise
            dates = pd.to_datetime(values, utc=True)  # offsets that vary (summer time): UTC
        return pd.DatetimeIndex(dates, name=values.name)
    except (ValueError, TypeError):
        parsed = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", utc=True)
        bad = values[int(np.argmax(parsed.isna().to_numpy()))] if parsed.isna().any() else example
        raise ValueError(f"{name}: {what} must hold dates; {bad!r} is not a date") from None


def _refuse_long(frame: pd.DataFrame, name: str, where: str) -> None:
    """One row per (date, asset) shows as repeated dates beside a column of asset names."""
    if not frame.index.duplicated().any():
        return
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    numbers = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype)]
    if not (text and numbers):
        return  # plain duplicate dates: validation names the first one
    date, asset, value = frame.index.name or "date", text[0], numbers[0]
    raise ValueError(
        f"{name}: {where} looks like long format (one row per date and asset, columns "
        f"{[date, *frame.columns]}); pivot it to one column per asset, e.g. "
        f"df.pivot(index={str(date)!r}, columns={str(asset)!r}, values={str(value)!r}), "
        "or pass long=True"
    )


def _pivot_long(frame: pd.DataFrame, name: str, where: str) -> pd.DataFrame:
    """(date index, asset column, value column) -> one column per asset, in the order the
    assets first appear."""
    if frame.shape[1] != 2:
        raise ValueError(
            f"{name}: long=True needs a date, an asset and a value column; {where} has "
            f"{frame.shape[1] + 1} columns: {[frame.index.name, *frame.columns]}"
        )
    asset, value = frame.columns
    keyed = frame.set_index(asset, append=True)[value]
    dup = keyed.index[keyed.index.duplicated()]
    if len(dup):
        raise ValueError(f"{name}: {where} repeats date {dup[0][0]} for asset {dup[0][1]!r}")
    wide = keyed.unstack(asset)[pd.unique(frame[asset])]  # assets in order of appearance
    wide.columns = [str(c) for c in wide.columns]
    wide.columns.name = None
    return wide


def _check_frame(frame: Any, name: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.shape[0] < 2 or frame.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 dates and 1 asset, got shape {frame.shape}")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise TypeError(f"{name} must have a DatetimeIndex, got {type(frame.index).__name__}")
    if frame.index.hasnans:
        raise ValueError(f"{name} has a missing (NaT) date")
    _refuse_long(frame, name, "the frame")
    dup = frame.index[frame.index.duplicated()]
    if len(dup):
        raise ValueError(f"{name} has duplicate dates, first {dup[0].date()}")
    if not frame.index.is_monotonic_increasing:
        raise ValueError(f"{name} dates are not sorted increasing")
    dup_cols = frame.columns[frame.columns.duplicated()]
    if len(dup_cols):
        raise ValueError(f"{name} has duplicate asset columns: {list(dup_cols)}")
    for col in frame.columns:
        dtype = frame[col].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            raise TypeError(f"{name} column {col!r} is not numeric (dtype {dtype})")
    return frame


def validate_prices(prices: Any, name: str = "prices") -> pd.DataFrame:
    """Check a wide price frame and return a float64 copy with gaps inside each life filled.

    NaN before an asset's first price (not yet listed) and after its last (delisted) stays NaN;
    a NaN between two prices (a holiday on that market) carries the last price forward.
    """
    frame = _check_frame(prices, name)
    values = frame.to_numpy(dtype=np.float64, copy=True)
    bad = np.isinf(values)
    if bad.any():
        t, i = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: infinite price for {frame.columns[i]!r} on {frame.index[t].date()}"
        )
    bad = values <= 0.0  # NaN compares False
    if bad.any():
        t, i = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}: non-positive price {float(values[t, i])!r} for {frame.columns[i]!r} on {frame.index[t].date()}"
        )
    empty = np.isnan(values).all(axis=0)
    if empty.any():
        raise ValueError(f"{name}: asset {frame.columns[np.argmax(empty)]!r} has no prices")
    out = pd.DataFrame(values, index=frame.index.copy(), columns=[str(c) for c in frame.columns])
    return out.ffill().where(out.bfill().notna())  # fill inside each life only


def validate_signal(signal: Any, prices: pd.DataFrame, name: str) -> np.ndarray:
    """Check one exogenous per-asset signal aligned to `prices`; float64 array, NaN -> 0."""
    frame = _check_frame(load_frame(signal, name), name)
    if not frame.index.equals(prices.index):
        raise ValueError(
            f"signal {name!r} is misaligned: its index ({len(frame.index)} dates, "
            f"{frame.index[0].date()}..{frame.index[-1].date()}) differs from the prices' "
            f"({len(prices.index)} dates, {prices.index[0].date()}..{prices.index[-1].date()})"
        )
    cols = [str(c) for c in frame.columns]
    unknown = sorted(set(cols) - set(prices.columns))
    if unknown:
        raise ValueError(f"signal {name!r} has assets not in the prices: {unknown}")
    values = frame.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        t, i = np.argwhere(np.isinf(values))[0]
        raise ValueError(
            f"signal {name!r}: infinite value for {cols[i]!r} on {frame.index[t].date()}"
        )
    out = np.zeros(prices.shape)
    for j, c in enumerate(cols):
        out[:, prices.columns.get_loc(c)] = np.nan_to_num(values[:, j], nan=0.0)
    return out


def per_asset(
    value: Any, assets: pd.Index, name: str, default: float, lo: float, hi: float
) -> np.ndarray:
    """A per-asset float array from a scalar, a mapping or a Series (unnamed or NaN -> `default`)."""
    if value is None:
        out = np.full(len(assets), float(default))
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        out = np.full(len(assets), float(value))
    elif isinstance(value, (Mapping, pd.Series)):
        items = dict(value.items())
        unknown = sorted(str(k) for k in items if str(k) not in set(assets))
        if unknown:
            raise ValueError(f"{name} names assets not in the prices: {unknown}")
        out = np.full(len(assets), float(default))
        for k, v in items.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name}[{k!r}] must be a number, got {type(v).__name__}")
            out[assets.get_loc(str(k))] = float(v)
    else:
        raise TypeError(
            f"{name} must be a number or a per-asset mapping, got {type(value).__name__}"
        )
    out = np.where(np.isnan(out), float(default), out)  # NaN means "not given"
    bad = (out < lo) | (out > hi) | np.isinf(out)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} for {assets[i]!r} is {float(out[i])!r}, outside [{lo}, {hi}]")
    return out
