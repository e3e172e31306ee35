"""Price files: dates must be dates, timezones round-trip, long format is recognised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trendgym.envs.market.loaders import load_frame, validate_prices

DATES = pd.date_range("2020-03-02", periods=300, freq="B", name="date")
WIDE = pd.DataFrame(
    {"A": np.linspace(100.0, 120.0, 300), "B": np.linspace(50.0, 40.0, 300)}, index=DATES
)
LONG = WIDE.stack().rename("price").rename_axis(["date", "asset"]).reset_index()


def _integer_index(path: Path) -> None:
    WIDE.reset_index(drop=True).to_csv(path)  # the dates lost, a 0..n-1 index saved instead


def _epoch_numbers(path: Path) -> None:
    WIDE.set_index(np.arange(618, 918)).to_csv(path)  # what pandas once read as 1970 nanoseconds


def _float_first_column(path: Path) -> None:
    WIDE.to_csv(path, index=False)


def _one_bad_date(path: Path) -> None:
    frame = WIDE.copy()
    frame.index = frame.index.astype(str).where(np.arange(300) != 7, "2020-13-45")
    frame.to_csv(path)


def _long_format(path: Path) -> None:
    LONG.to_csv(path, index=False)


def _long_format_other_names(path: Path) -> None:
    LONG.rename(columns={"date": "day", "asset": "ticker", "price": "close"}).to_csv(
        path, index=False
    )


def _only_dates(path: Path) -> None:
    pd.DataFrame({"date": DATES.astype(str)}).to_csv(path, index=False)


# how the CSV is written -> (error class, words the message must contain)
BAD_PRICE_FILES = {
    "integer index instead of dates": (
        _integer_index,
        ValueError,
        ["first column 'Unnamed: 0'", "must hold dates", "int64", "such as 0"],
    ),
    "epoch-like integers": (_epoch_numbers, ValueError, ["must hold dates", "such as 618"]),
    "prices in the first column": (_float_first_column, ValueError, ["'A'", "float64", "100.0"]),
    "one unparseable date": (_one_bad_date, ValueError, ["first column 'date'", "'2020-13-45'"]),
    "long format": (
        _long_format,
        ValueError,
        ["long format", "df.pivot(index='date', columns='asset', values='price')", "long=True"],
    ),
    "long format, other names": (
        _long_format_other_names,
        ValueError,
        ["df.pivot(index='day', columns='ticker', values='close')"],
    ),
    "no asset column": (_only_dates, ValueError, ["at least one asset column"]),
}


@pytest.mark.parametrize("case", list(BAD_PRICE_FILES))
def test_bad_price_file_is_refused_naming_the_column_and_a_value(case, tmp_path):
    write, error, words = BAD_PRICE_FILES[case]
    path = tmp_path / "prices.csv"
    write(path)
    with pytest.raises(error) as err:
        load_frame(path)
    assert str(path) in str(err.value)
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_long_frame_in_memory_gets_the_pivot_hint():
    with pytest.raises(ValueError, match=r"long format.*df\.pivot"):
        validate_prices(LONG.set_index("date"))


@pytest.mark.parametrize("tz", ["UTC", "Asia/Tokyo", "America/New_York"])
def test_timezone_aware_csv_round_trips(tmp_path, tz):
    frame = WIDE.tz_localize(tz)
    frame.to_csv(tmp_path / "p.csv")
    back = validate_prices(load_frame(tmp_path / "p.csv"))
    assert back.index.tz is not None
    # the same instants (summer-time offsets vary, so New York comes back as UTC)
    pd.testing.assert_index_equal(
        back.index.tz_convert("UTC"), frame.index.tz_convert("UTC"), check_exact=True
    )
    np.testing.assert_array_equal(back.to_numpy(), frame.to_numpy())


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_true_pivots_to_the_wide_frame(tmp_path, suffix):
    path = tmp_path / f"long{suffix}"
    if suffix == ".csv":
        LONG.to_csv(path, index=False)
    else:
        LONG.to_parquet(path, index=False)
    wide = load_frame(path, long=True)
    pd.testing.assert_frame_equal(wide, WIDE, check_names=False, check_freq=False)
    in_memory = load_frame(LONG.set_index("date"), long=True)
    pd.testing.assert_frame_equal(in_memory, WIDE, check_names=False, check_freq=False)


def test_long_true_refuses_what_is_not_long(tmp_path):
    WIDE.assign(C=1.0).to_csv(tmp_path / "wide.csv")
    with pytest.raises(ValueError, match="long=True needs a date, an asset and a value column"):
        load_frame(tmp_path / "wide.csv", long=True)
    doubled = pd.concat([LONG, LONG.iloc[:1]])
    doubled.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ValueError, match="repeats date 2020-03-02.* for asset 'A'"):
        load_frame(tmp_path / "dup.csv", long=True)
    with pytest.raises(TypeError, match="long must be a bool"):
        load_frame(tmp_path / "dup.csv", long="yes")
