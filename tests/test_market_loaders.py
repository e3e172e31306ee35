"""Loaders refuse each kind of broken data with a message naming the problem."""

import numpy as np
import pandas as pd
import pytest

from trendgym.envs.market.loaders import load_frame, per_asset, validate_prices, validate_signal
from trendgym.envs.portfolio import PortfolioEnv


def good(n=10):
    idx = pd.bdate_range("2022-01-03", periods=n, name="date")
    return pd.DataFrame({"A": np.linspace(10, 11, n), "B": np.linspace(20, 19, n)}, index=idx)


def with_value(col, row, value):
    frame = good().astype(object) if isinstance(value, str) else good()
    frame.iloc[row, frame.columns.get_loc(col)] = value
    return frame


@pytest.mark.parametrize(
    "frame, err, match",
    [
        (with_value("A", 3, 0.0), ValueError, r"non-positive price 0\.0 for 'A' on 2022-01-06"),
        (with_value("B", 5, -2.0), ValueError, r"non-positive price -2\.0 for 'B'"),
        (with_value("A", 2, np.inf), ValueError, r"infinite price for 'A'"),
        (good().iloc[[0, 1, 1, 2]], ValueError, r"duplicate dates, first 2022-01-04"),
        (good().iloc[::-1], ValueError, r"not sorted"),
        (good().assign(C=["x"] * 10), TypeError, r"column 'C' is not numeric"),
        (good().assign(C=[True] * 10), TypeError, r"column 'C' is not numeric"),
        (good().reset_index(drop=True), TypeError, r"DatetimeIndex"),
        (good().set_axis(["A", "A"], axis=1), ValueError, r"duplicate asset columns"),
        (good().assign(C=np.nan), ValueError, r"asset 'C' has no prices"),
        (good().iloc[:1], ValueError, r"at least 2 dates"),
        (good().to_numpy(), TypeError, r"DataFrame"),
    ],
)
def test_broken_prices_are_refused(frame, err, match):
    with pytest.raises(err, match=match):
        validate_prices(frame)
    if isinstance(frame, pd.DataFrame):  # and the env refuses them at construction
        with pytest.raises(err, match=match):
            PortfolioEnv(prices=frame, warmup=1, min_history=1)


def test_gaps_are_filled_inside_each_life_only():
    frame = good()
    frame.iloc[:2, 0] = np.nan  # listed on row 2
    frame.iloc[5, 0] = np.nan  # a holiday
    frame.iloc[8:, 1] = np.nan  # delisted after row 7
    out = validate_prices(frame)
    assert out.iloc[:2, 0].isna().all() and out.iloc[5, 0] == out.iloc[4, 0]
    assert out.iloc[8:, 1].isna().all() and out.dtypes.eq(np.float64).all()


def test_csv_and_parquet_load_like_the_frame(tmp_path):
    frame = good()
    frame.to_csv(tmp_path / "p.csv")
    frame.to_parquet(tmp_path / "p.parquet")
    for path in [tmp_path / "p.csv", str(tmp_path / "p.parquet")]:
        loaded = validate_prices(load_frame(path))
        pd.testing.assert_frame_equal(
            loaded, validate_prices(frame), check_names=False, check_freq=False
        )
    env = PortfolioEnv(prices=str(tmp_path / "p.csv"), warmup=2, min_history=1)
    assert list(env.assets) == ["A", "B"]
    with pytest.raises(ValueError, match="no such file"):
        load_frame(tmp_path / "missing.csv")
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_frame(tmp_path / "p.json")
    with pytest.raises(TypeError):
        load_frame(42)


def test_signals_are_validated_like_prices():
    prices = validate_prices(good())
    sig = good() * 0.01
    assert validate_signal(sig, prices, "flow").shape == prices.shape
    with pytest.raises(ValueError, match="misaligned"):
        validate_signal(sig.iloc[:-1], prices, "flow")
    with pytest.raises(ValueError, match="misaligned"):
        validate_signal(sig.set_axis(sig.index + pd.Timedelta(days=1)), prices, "flow")
    with pytest.raises(ValueError, match="not in the prices"):
        validate_signal(sig.rename(columns={"A": "Z"}), prices, "flow")
    with pytest.raises(TypeError, match="not numeric"):
        validate_signal(sig.assign(A="x"), prices, "flow")
    with pytest.raises(ValueError, match="infinite"):
        validate_signal(sig.replace(sig.iloc[0, 0], np.inf), prices, "flow")
    with pytest.raises(ValueError, match="duplicate dates"):
        validate_signal(sig.iloc[[0, 0, 1]], prices, "flow")
    only_b = sig[["B"]].copy()
    only_b.iloc[:3] = np.nan
    partial = validate_signal(only_b, prices, "flow")
    assert (
        np.all(partial[:, 0] == 0.0)
        and np.all(partial[:3, 1] == 0.0)
        and not np.isnan(partial).any()
    )


def test_per_asset_overrides():
    assets = pd.Index(["A", "B", "C"])
    np.testing.assert_array_equal(per_asset(None, assets, "c", 2.0, 0, 100), [2, 2, 2])
    np.testing.assert_array_equal(per_asset(3, assets, "c", 2.0, 0, 100), [3, 3, 3])
    np.testing.assert_array_equal(per_asset({"B": 5.0}, assets, "c", 2.0, 0, 100), [2, 5, 2])
    np.testing.assert_array_equal(
        per_asset(pd.Series({"C": np.nan, "A": 1}), assets, "c", 2.0, 0, 100), [1, 2, 2]
    )
    with pytest.raises(ValueError, match=r"not in the prices: \['Z'\]"):
        per_asset({"Z": 1.0}, assets, "c", 2.0, 0, 100)
    with pytest.raises(ValueError, match="for 'A' is -1.0"):
        per_asset({"A": -1.0}, assets, "c", 2.0, 0, 100)
    with pytest.raises(TypeError):
        per_asset("cheap", assets, "c", 2.0, 0, 100)
    with pytest.raises(TypeError):
        per_asset({"A": "1"}, assets, "c", 2.0, 0, 100)
