"""Every numeric keyword of the two envs is type-checked and range-checked before any work,
and its error names the keyword and the value."""

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import trendgym  # noqa: F401  (registers the ids)
from trendgym.envs.checks import check_number
from trendgym.envs.execution import ExecutionEnv
from trendgym.envs.execution.env import fillable_bound
from trendgym.envs.execution.layout import CFG, MAX_COMPLETION_SECONDS

EXEC = "trendgym/Execution-v0"
PORT = "trendgym/Portfolio-v0"

_DATES = pd.date_range("2020-03-02", periods=60, freq="B", name="date")
WIDE = pd.DataFrame({"A": np.linspace(100, 120, 60), "B": np.linspace(50, 40, 60)}, index=_DATES)
LONG = (
    WIDE.stack().rename("price").rename_axis(["date", "asset"]).reset_index()
)  # date, asset, price
PIVOT = "df.pivot(index='date', columns='asset', values='price')"

# (env id, kwargs) -> (error class, words the message must contain)
BAD = {
    "horizon float": (EXEC, {"horizon": 2.5}, TypeError, ["horizon", "int", "2.5"]),
    "horizon bool": (EXEC, {"horizon": True}, TypeError, ["horizon", "True"]),
    "horizon str": (EXEC, {"horizon": "40"}, TypeError, ["horizon", "'40'"]),
    "horizon zero": (EXEC, {"horizon": 0}, ValueError, ["horizon", ">= 1", "0"]),
    "step_seconds nan": (EXEC, {"step_seconds": math.nan}, ValueError, ["step_seconds", "nan"]),
    "step_seconds zero": (EXEC, {"step_seconds": 0.0}, ValueError, ["step_seconds", "> 0"]),
    "step_seconds str": (EXEC, {"step_seconds": "2"}, TypeError, ["step_seconds", "'2'"]),
    "urgency above 1": (EXEC, {"urgency": 1.5}, ValueError, ["urgency", "[0, 1]", "1.5"]),
    "urgency bool": (EXEC, {"urgency": False}, TypeError, ["urgency", "False"]),
    "max_drift inf": (EXEC, {"max_drift": math.inf}, ValueError, ["max_drift", "inf"]),
    "max_drift too big": (EXEC, {"max_drift": 0.95}, ValueError, ["max_drift", "0.9", "0.95"]),
    "latency = step": (EXEC, {"latency": 2.5}, ValueError, ["latency", "[0, 2.5)", "2.5"]),
    "latency negative": (EXEC, {"latency": -0.1}, ValueError, ["latency", "-0.1"]),
    "fee_bps negative": (EXEC, {"fee_bps": -1.0}, ValueError, ["fee_bps", ">= 0", "-1.0"]),
    "fee_bps str": (EXEC, {"fee_bps": "0.3"}, TypeError, ["fee_bps", "'0.3'"]),
    "risk_aversion nan": (EXEC, {"risk_aversion": math.nan}, ValueError, ["risk_aversion"]),
    "warmup_seconds short": (
        EXEC,
        {"warmup_seconds": 1.0},
        ValueError,
        ["warmup_seconds", ">= 2.5", "1.0"],
    ),
    "tick_size zero": (EXEC, {"tick_size": 0.0}, ValueError, ["tick_size", "> 0"]),
    "start_price float": (EXEC, {"start_price": 1e4}, TypeError, ["start_price", "int"]),
    "start_price low": (EXEC, {"start_price": 100}, ValueError, ["start_price", "> 100"]),
    "quantity float": (EXEC, {"quantity": 50.0}, TypeError, ["quantity", "int", "50.0"]),
    "quantity zero": (EXEC, {"quantity": 0}, ValueError, ["quantity", ">= 1", "0"]),
    "quantity unfillable": (
        EXEC,
        {"quantity": 10**9},
        ValueError,
        ["quantity=1000000000", "more than the book can fill", "at most"],
    ),
    "quantity_range reversed": (
        EXEC,
        {"quantity_range": (10, 5)},
        ValueError,
        ["quantity_range high", ">= 10", "5"],
    ),
    "quantity_range float": (
        EXEC,
        {"quantity_range": (10.5, 20)},
        TypeError,
        ["quantity_range low", "10.5"],
    ),
    "quantity_range scalar": (EXEC, {"quantity_range": 20}, TypeError, ["quantity_range", "20"]),
    "quantity_range unfillable": (
        EXEC,
        {"quantity_range": (1, 10**9)},
        ValueError,
        ["quantity_range high=1000000000", "more than the book can fill"],
    ),
    "data_seed negative": (PORT, {"data_seed": -1}, ValueError, ["data_seed", ">= 0", "-1"]),
    "data_seed float": (PORT, {"data_seed": 1.0}, TypeError, ["data_seed", "int", "1.0"]),
    "n_years zero": (PORT, {"n_years": 0}, ValueError, ["n_years", "> 0", "0"]),
    "n_years str": (PORT, {"n_years": "5"}, TypeError, ["n_years", "'5'"]),
    "n_assets zero": (PORT, {"n_assets": 0}, ValueError, ["n_assets", ">= 1", "0"]),
    "n_assets float": (PORT, {"n_assets": 4.5}, TypeError, ["n_assets", "int", "4.5"]),
    "warmup negative": (PORT, {"warmup": -5}, ValueError, ["warmup", ">= 0", "-5"]),
    "warmup float": (PORT, {"warmup": 60.0}, TypeError, ["warmup", "int", "60.0"]),
    "min_history bool": (PORT, {"min_history": True}, TypeError, ["min_history", "True"]),
    "max_leverage zero": (PORT, {"max_leverage": 0.0}, ValueError, ["max_leverage", "> 0"]),
    "max_leverage str": (PORT, {"max_leverage": "1"}, TypeError, ["max_leverage", "'1'"]),
    "impact_coef nan": (PORT, {"impact_coef": math.nan}, ValueError, ["impact_coef", "nan"]),
    "participation negative": (
        PORT,
        {"participation": -0.01},
        ValueError,
        ["participation", ">= 0", "-0.01"],
    ),
    "dsr_eta above 1": (PORT, {"dsr_eta": 2.0}, ValueError, ["dsr_eta", "(0, 1]", "2.0"]),
    "target_vol zero": (PORT, {"target_vol": 0.0}, ValueError, ["target_vol", "> 0"]),
    "prices long format": (PORT, {"prices": LONG}, ValueError, ["long format", PIVOT, "long=True"]),
    "prices long, dates as index": (
        PORT,
        {"prices": LONG.set_index("date")},
        ValueError,
        ["long format", PIVOT, "long=True"],
    ),
    "long not a bool": (PORT, {"prices": LONG, "long": "yes"}, TypeError, ["long", "'yes'"]),
    "long without prices": (PORT, {"long": True}, ValueError, ["long=True", "prices="]),
    "long=True on wide prices": (
        PORT,
        {"prices": WIDE.assign(C=1.0).reset_index(), "long": True},
        ValueError,
        ["long=True needs a date, an asset and a value column"],
    ),
}


@pytest.mark.parametrize("env_id, kwargs, error, words", BAD.values(), ids=BAD.keys())
def test_bad_kwarg_is_refused_naming_it(env_id, kwargs, error, words):
    with pytest.raises(error) as caught:
        gym.make(env_id, **kwargs)
    assert type(caught.value) is error
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_numpy_numbers_and_ints_for_floats_are_accepted():
    env = ExecutionEnv(horizon=np.int64(8), step_seconds=2, quantity=np.int32(30), urgency=1)
    assert env.horizon == 8 and env.step_seconds == 2.0 and env.cfg[CFG.horizon] == 8.0


def test_quantity_bound_follows_the_preset_and_the_episode_length():
    seconds = 10.0 + 8 * 2.5 + MAX_COMPLETION_SECONDS
    calm = fillable_bound(seconds, ["calm"])
    assert calm < fillable_bound(seconds, ["crypto"])
    assert fillable_bound(seconds + 3600, ["calm"]) > calm
    ExecutionEnv(preset="calm", quantity=calm, horizon=8, warmup_seconds=10.0)
    with pytest.raises(ValueError, match=f"quantity={calm + 1} .* at most {calm} lots"):
        ExecutionEnv(preset="calm", quantity=calm + 1, horizon=8, warmup_seconds=10.0)
    # no preset given: any may be drawn, so only what no preset can fill is refused
    ExecutionEnv(quantity=calm + 1, horizon=8, warmup_seconds=10.0)


def test_a_quantity_at_the_bound_already_outlasts_the_forced_completion():
    """The bound is generous: even its own size is never filled, so whatever it refuses would
    only have ended in the completion's give-up error."""
    seconds = 10.0 + 1 * 2.5 + MAX_COMPLETION_SECONDS
    most = fillable_bound(seconds, ["calm"])
    env = ExecutionEnv(preset="calm", quantity=most, horizon=1, warmup_seconds=10.0)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="stayed empty"):
        env.step(np.array([-1.0, -1.0, -1.0], dtype=np.float32))  # wait: all left to completion
    assert 0 < env.remaining < most


@pytest.mark.parametrize(
    "value, kwargs, text",
    [
        (2, {"lo": 0.0, "hi": 1.0}, "x must be in [0, 1], got 2"),
        (0, {"lo": 0.0, "open_lo": True}, "x must be > 0, got 0"),
        (1.0, {"hi": 1.0, "open_hi": True}, "x must be < 1, got 1.0"),
        (2, {"lo": 3, "integer": True}, "x must be >= 3, got 2"),
        (math.inf, {}, "x must be finite, got inf"),
    ],
)
def test_check_number_says_the_range(value, kwargs, text):
    with pytest.raises(ValueError) as caught:
        check_number("x", value, **kwargs)
    assert str(caught.value) == text


@pytest.mark.parametrize("vector", [False, True], ids=["single", "vector"])
def test_long_prices_with_long_true_are_the_wide_prices(vector, tmp_path):
    """``long=True`` pivots long data (in memory or a CSV) into the same env as the wide frame."""
    LONG.to_csv(tmp_path / "long.csv", index=False)
    if vector:
        make = lambda **kw: gym.make_vec(  # noqa: E731
            PORT, num_envs=2, vectorization_mode="vector_entry_point", **kw
        )
    else:
        make = lambda **kw: gym.make(PORT, **kw)  # noqa: E731
    wide = make(prices=WIDE, warmup=20)
    for prices in (LONG, LONG.set_index("date"), str(tmp_path / "long.csv")):
        env = make(prices=prices, long=True, warmup=20)
        pd.testing.assert_frame_equal(
            env.unwrapped.prices if not vector else env.template.prices,
            wide.unwrapped.prices if not vector else wide.template.prices,
            check_freq=False,
            check_names=False,
        )
        np.testing.assert_array_equal(env.reset(seed=3)[0], wide.reset(seed=3)[0])
