"""Calibration of the flow to a tape: known parameters recovered from a simulated day."""

from __future__ import annotations

import numpy as np
import pytest

from trendgym.envs.lob import EVENT, MessageTape, OrderBook, calibrate_flow, record_flow
from trendgym.envs.lob.calibrate import (
    Calibration,
    _queue_sums,
    hawkes_loglik_nb,
    market_orders,
)
from trendgym.envs.lob.flow import FlowParams, OrderFlow, flow_params
from trendgym.envs.lob.tape import empty_tape
from trendgym.envs.lob.tape_facts import compare_facts, tape_facts

# the calm preset without its activity bursts, which calibration averages into every rate
TRUE = flow_params("calm", burst_scale=1.0)


def _tape(params: FlowParams, seconds: float, seed: int) -> MessageTape:
    flow = OrderFlow(OrderBook(), params, np.random.default_rng(seed), record=4096)
    flow.seed_book()
    return record_flow(flow, seconds, resolution=0.02)


@pytest.fixture(scope="module")
def hour() -> MessageTape:
    return _tape(TRUE, 3600.0, seed=1)


@pytest.fixture(scope="module")
def fit(hour) -> Calibration:
    return calibrate_flow(hour)


def _rel(got, want) -> np.ndarray:
    return np.abs(np.asarray(got) / np.asarray(want) - 1.0)


def test_recovers_limit_and_cancel_rates(fit):
    assert fit.tick == 100 and fit.lot == 1
    assert fit.unknown_ids == 0
    lam, theta = _rel(fit.limit_rates, TRUE.limit_rates), _rel(fit.cancel_rates, TRUE.cancel_rates)
    assert lam[:5].max() < 0.10 and lam.max() < 0.15, lam
    assert theta[:5].max() < 0.10 and theta.max() < 0.15, theta
    assert _rel(fit.cancel_rate_far, TRUE.cancel_rate_far) < 0.15
    # the flow cancels whole orders whatever their size: lots go at the per-order rate
    per_lot = _rel(fit.cancel_rates_per_lot, fit.cancel_rates)
    assert per_lot.max() < 0.10, per_lot
    assert _rel(fit.limit_size, TRUE.limit_size) < 0.05


def test_recovers_market_orders_and_hawkes(fit):
    assert _rel(fit.market_rate, TRUE.market_rate) < 0.10
    truth = TRUE.market_rate / (1 - TRUE.hawkes_alpha / TRUE.hawkes_beta)
    assert _rel(fit.market_intensity, truth) < 0.05
    assert abs(fit.hawkes_alpha / fit.hawkes_beta - TRUE.hawkes_alpha / TRUE.hawkes_beta) < 0.05
    assert _rel(fit.hawkes_beta, TRUE.hawkes_beta) < 0.35
    assert abs(fit.drift) < 0.05
    assert _rel(fit.market_size, TRUE.market_size) < 0.05


def test_poisson_fit_counts_market_orders(hour, fit):
    plain = calibrate_flow(hour, hawkes=False)
    assert plain.hawkes_alpha == 0.0
    assert plain.market_rate == pytest.approx(fit.n_market_orders / (2 * fit.seconds))
    assert _rel(plain.market_rate, fit.market_intensity) < 0.05


def test_calibrated_flow_runs_and_reproduces_its_rates(fit):
    params = fit.params()
    assert isinstance(params, FlowParams) and params.to_array().shape == TRUE.to_array().shape
    again = calibrate_flow(_tape(params, 900.0, seed=2), hawkes=False)
    lam = _rel(again.limit_rates[:3], fit.limit_rates[:3])
    assert lam.max() < 0.10, lam
    assert _rel(again.market_rate, fit.market_intensity) < 0.15


def test_scan_quotes_match_the_rebuilt_book():
    tape = _tape(TRUE, 60.0, seed=3)
    _, _, quotes = _queue_sums(tape)
    snap = tape.snapshots(1)
    ask = np.where(snap[:, 1] > 0, snap[:, 0] // tape.tick, 0)
    bid = np.where(snap[:, 3] > 0, snap[:, 2] // tape.tick, 0)
    np.testing.assert_array_equal(quotes[:, 0], bid)
    np.testing.assert_array_equal(quotes[:, 1], ask)


def test_market_orders_group_executions_of_one_order():
    tape = empty_tape(5)
    tape["time"] = [1.0, 1.0, 1.0, 2.0, 2.0]
    tape["event"] = [EVENT.new, EVENT.execute, EVENT.execute, EVENT.execute, EVENT.execute]
    tape["direction"] = [1, -1, -1, -1, 1]
    tape["size"] = [3, 2, 4, 1, 5]
    tape["price"] = 100
    tape["order_id"] = [9, 1, 2, 3, 4]
    times, sides, sizes = market_orders(MessageTape(tape))
    np.testing.assert_array_equal(times, [1.0, 2.0, 2.0])
    np.testing.assert_array_equal(sides, [1, 1, -1])
    np.testing.assert_array_equal(sizes, [6, 1, 5])


def test_hawkes_loglik_matches_direct_sum():
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0.0, 50.0, 40))
    mu, alpha, beta = 0.7, 0.4, 1.3
    lam = [mu + alpha * np.exp(-beta * (t - times[times < t])).sum() for t in times]
    compensator = mu * 50.0 + alpha / beta * (1 - np.exp(-beta * (50.0 - times))).sum()
    want = np.log(lam).sum() - compensator
    assert hawkes_loglik_nb(times, 0.0, 50.0, mu, alpha, beta) == pytest.approx(want, rel=1e-12)


def test_bad_tapes_are_refused():
    with pytest.raises(TypeError, match="MessageTape"):
        calibrate_flow(np.zeros(3))
    with pytest.raises(ValueError, match="no messages"):
        calibrate_flow(MessageTape(empty_tape(0)))
    tape = empty_tape(4)
    tape["time"] = [1.0, 2.0, 3.0, 4.0]
    tape["event"] = EVENT.new
    tape["direction"] = [1, -1, 1, -1]
    tape["price"] = [99, 101, 98, 102]
    tape["size"] = 1
    tape["order_id"] = [1, 2, 3, 4]
    with pytest.raises(ValueError, match="no trades"):
        calibrate_flow(MessageTape(tape))
    tape["time"] = 1.0
    with pytest.raises(ValueError, match="spans no time"):
        calibrate_flow(MessageTape(tape))


def test_tape_facts_of_a_hand_built_book():
    tape = empty_tape(4)
    tape["time"] = [0.0, 0.0, 1.5, 3.0]
    tape["event"] = [EVENT.new, EVENT.new, EVENT.new, EVENT.new]
    tape["direction"] = [1, -1, 1, -1]
    tape["price"] = [9900, 10200, 9800, 10100]
    tape["size"] = [4, 6, 1, 1]
    tape["order_id"] = [1, 2, 3, 4]
    facts = tape_facts(MessageTape(tape, tick=100))
    # samples at 1, 2, 3 s: spreads 3, 3, 2 ticks; level 1 lots (4+6)/2, (4+6)/2, (4+1)/2;
    # level 2 (0+0)/2, (1+0)/2, (1+6)/2
    assert facts["spread_mean_ticks"] == pytest.approx(8 / 3)
    assert facts["spread_median_ticks"] == 3
    assert facts["depth_level_1"] == pytest.approx((5 + 5 + 2.5) / 3)
    assert facts["depth_level_2"] == pytest.approx((0 + 0.5 + 3.5) / 3)
    assert facts["messages_per_second"] == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="sample"):
        tape_facts(MessageTape(tape, tick=100), sample=0.0)


def test_calibrated_simulation_matches_the_tapes_facts(hour):
    facts = compare_facts(hour, seed=4, seconds=1800.0)
    for name in ("spread_mean_ticks", "depth_level_1", "depth_level_3", "messages_per_second"):
        real, sim = facts[name]
        assert abs(sim / real - 1) < 0.15, (name, real, sim)
    assert np.isfinite(facts["kurtosis_1min"]).all()


def test_messages_on_orders_from_before_the_tape_are_counted(hour):
    m = hour.messages
    cut = MessageTape(m[m["time"] > m["time"][0]].copy(), tick=hour.tick)  # no resting orders
    fit = calibrate_flow(cut, hawkes=False)
    assert fit.unknown_ids > 0
    assert _rel(fit.limit_rates[0], TRUE.limit_rates[0]) < 0.10
