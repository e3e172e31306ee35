"""trendgym.evaluate.survivorship: delisting data check, survivors-only bias, cost stress."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trendgym.envs.market.generator import generate_market
from trendgym.evaluate.survivorship import cost_stress, delisting_check, survivorship_check
from trendgym.evaluate.walkforward import cost_label

sys.path.insert(0, str(Path(__file__).parent))
from test_verdict import synthetic_result  # noqa: E402

EQUITIES = {"preset": "equities", "n_years": 10, "n_assets": 30, "data_seed": 0}


def test_losers_delisting_make_survivors_only_look_better_and_are_flagged():
    market = generate_market("equities", n_years=10, n_assets=30, seed=0)
    delisted = market.delisting_returns.dropna()
    assert len(delisted) > 0 and (delisted < 0).all()  # the generator's losers leave the universe
    report = survivorship_check(EQUITIES)
    assert report.n_survivors < report.data.n_assets
    assert not report.data.flagged  # it does delist
    by_name = {r.strategy: r for r in report.rows}
    ew = by_name["EqualWeight"]
    assert ew.sharpe_survivors > ew.sharpe_point_in_time
    assert ew.cagr_survivors > ew.cagr_point_in_time
    assert report.flagged and report.max_bias > report.tolerance
    assert "overstates" in report.message
    assert report.table().loc["EqualWeight", "bias"] == pytest.approx(ew.bias)


def test_a_universe_that_never_delists_has_no_bias_but_is_flagged_when_long():
    report = survivorship_check({"preset": "futures", "n_years": 11, "n_assets": 4})
    assert report.data.flagged and report.data.n_delisted == 0
    assert not report.flagged and report.max_bias == 0.0
    assert "every asset survives" in report.message


def test_delisting_check_counts_and_span():
    idx = pd.bdate_range("2000-01-03", periods=2700)
    prices = pd.DataFrame({"A": np.linspace(1, 2, 2700), "B": np.linspace(1, 2, 2700)}, index=idx)
    assert delisting_check(prices).flagged  # > 10 years, nobody delists
    assert not delisting_check(prices.iloc[:500]).flagged  # too short to tell
    prices.loc[idx[2000] :, "B"] = np.nan
    check = delisting_check(prices)
    assert check.n_delisted == 1 and not check.flagged
    with pytest.raises(TypeError):
        delisting_check(prices.to_numpy())
    with pytest.raises(ValueError, match="min_years"):
        delisting_check(prices, min_years=0)


def test_survivorship_check_refuses_a_negative_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        survivorship_check(EQUITIES, tolerance=-1)


def test_cost_stress_table():
    res = synthetic_result(edge=0.001)
    table = cost_stress(res)
    assert list(table.index) == ["agent", "EqualWeight", "CSMOM"]
    assert (table["sharpe@2x"] < table["sharpe@1x"]).all()
    r = res.agent_returns[cost_label(1.0)].to_numpy()
    assert table.loc["agent", "sharpe@1x"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(261))


def _verdict_with(universe_check):
    from test_verdict import GOOD

    from trendgym.evaluate.verdict import verdict

    return verdict("agent", **GOOD, universe=universe_check)


def test_a_survivors_only_equity_universe_never_passes_and_the_delisted_let_it():
    from trendgym.envs.market.universe import survivors
    from trendgym.evaluate.verdict import universe_check

    market = generate_market("equities", n_years=12, n_assets=20, seed=2)
    full = market.prices
    alive = full[survivors(full)]
    assert alive.shape[1] < full.shape[1]
    only = survivorship_check({"prices": alive})
    assert only.data.flagged  # nobody delists over 12 years: survivors only?
    check = universe_check(only, None, {"prices": "survivors.parquet"})
    v = _verdict_with(check)
    assert not v.passes and v.status == "INCONCLUSIVE" and check.inconclusive
    assert "survivors only" in check.detail and "universe pit" in check.detail
    # the user may vouch for the universe; then it is judged as stated
    assert _verdict_with(universe_check(only, "futures", {"prices": "x"})).passes
    # the same universe with its delisted names (and their delisting returns) back
    with_delisted = survivorship_check(
        {"prices": full, "delisting_returns": market.delisting_returns.fillna(0.0).to_dict()}
    )
    check = universe_check(with_delisted, None, {"prices": "full.parquet"})
    assert check.passed and _verdict_with(check).passes
    # synthetic presets know their own universe: equities are point-in-time and delist
    preset = universe_check(survivorship_check(EQUITIES), None, EQUITIES)
    assert preset.passed


def test_futures_presets_are_rolled_so_no_delisting_is_fine():
    from trendgym.evaluate.verdict import universe_check

    kwargs = {"preset": "futures", "n_years": 11, "n_assets": 4}
    check = universe_check(survivorship_check(kwargs), None, kwargs)
    assert check.passed and "rolled futures" in check.detail
