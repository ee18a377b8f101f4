"""Optimizer on hand-built networks: Webster's cycle and splits, offsets, smoothing, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from signalopt.config import OptimizerParams
from signalopt.optimize import initial_state, optimize
from signalopt.optimize.splits import green_splits, lane_of_triple, phase_flow_ratios, webster_cycles
from signalopt.plan import PlanLimits, array_problems
from tests.plan_nets import one_cross, two_in_a_row

ISOLATED = OptimizerParams(common_cycle=False, coordinate=False, y_smoothing=1.0,
                           local_control="fixed")


def test_webster_cycle_and_splits_by_hand() -> None:
    """q = 600 and 300 veh/h on one lane each, s = 1800: y = 1/3 and 1/6, Y = 1/2.
    Lost time L = 2 yellows x 3 s + 2 greens x 2 s start-up = 10 s.
    Webster: C = (1.5 L + 5) / (1 - Y) = 20 / 0.5 = 40 s.
    Greens share C - clearances = 34 s in proportion 2 : 1 -> 22.67 and 11.33 s,
    rounded to whole seconds keeping the cycle: 23 and 11.
    """
    net = one_cross()
    y = phase_flow_ratios(net, np.array([600.0, 300.0]), lane_index=lane_of_triple(net),
                          sat_flow_lane=1800.0)
    np.testing.assert_allclose(y, [1 / 3, 0, 1 / 6, 0])
    c = webster_cycles(net, y, startup_loss_s=2.0, min_cycle=30, max_cycle=150, max_y=0.9)
    np.testing.assert_allclose(c, [40.0])
    g = green_splits(net, y, c, min_green=np.array([5.0]), y_floor=0.0)
    np.testing.assert_allclose(g, [34 * 2 / 3, 3, 34 / 3, 3])
    plan, _ = optimize(net, np.array([600.0, 300.0]), np.zeros(2), initial_state(net), ISOLATED)
    np.testing.assert_allclose(plan.duration, [23, 3, 11, 3])
    assert plan.cycle[0] == 40


def test_min_green_water_filling() -> None:
    """A phase with almost no demand gets exactly the minimum green; the other takes the rest."""
    net = one_cross()
    plan, _ = optimize(net, np.array([1200.0, 1.0]), np.zeros(2), initial_state(net),
                       ISOLATED.model_copy(update={"y_floor": 0.0}))
    # y = 2/3: C = 20 / (1/3) = 60; greens 54 s: minor at its 5 s minimum, major 49 s
    np.testing.assert_allclose(plan.duration, [49, 3, 5, 3])


def test_saturated_demand_caps_cycle() -> None:
    net = one_cross()
    plan, _ = optimize(net, np.array([1800.0, 1800.0]), np.zeros(2), initial_state(net), ISOLATED)
    assert plan.cycle[0] == ISOLATED.max_cycle_s


def test_offset_makes_a_green_wave() -> None:
    """a's phase 0 (start 0 s) releases the platoon into link ab: 200 m at 10 m/s = 20 s.
    b serves ab in its phase 2, which starts after b's phase 0 and yellow. For the platoon to
    meet b's green: offset_b + start_b(phase 2) = offset_a + 0 + 20 (mod cycle).
    """
    net = two_in_a_row()
    flows = np.array([900.0, 300.0, 900.0, 300.0])
    params = OptimizerParams(y_smoothing=1.0, common_cycle=True, common_cycle_quantile=1.0)
    plan, _ = optimize(net, flows, np.zeros(4), initial_state(net), params)
    cycle = plan.cycle[0]
    assert plan.cycle[1] == cycle
    start_b2 = plan.duration[4] + plan.duration[5]  # b's phase 0 + yellow
    arrival = (plan.offset[0] + 20.0) % cycle
    assert (plan.offset[1] + start_b2) % cycle == pytest.approx(arrival)


def test_queue_moves_green_earlier() -> None:
    """4 queued vehicles at 2 s each on one lane: b's green starts 8 s before the platoon."""
    net = two_in_a_row()
    flows = np.array([900.0, 300.0, 900.0, 300.0])
    params = OptimizerParams(y_smoothing=1.0, common_cycle_quantile=1.0)
    p0, _ = optimize(net, flows, np.zeros(4), initial_state(net), params)
    p1, _ = optimize(net, flows, np.array([0, 0, 4.0, 0]), initial_state(net), params)
    shift = (p0.offset[1] - p1.offset[1]) % p0.cycle[0]
    assert shift == pytest.approx(8.0)


def test_change_per_scan_is_bounded() -> None:
    net = one_cross()
    params = ISOLATED.model_copy(update={"max_cycle_change_s": 10.0, "max_green_change_s": 6.0})
    p0, st = optimize(net, np.array([100.0, 100.0]), np.zeros(2), initial_state(net), params)
    p1, _ = optimize(net, np.array([1500.0, 200.0]), np.zeros(2), st, params)
    assert abs(p1.cycle[0] - p0.cycle[0]) <= 10.0
    assert np.abs(p1.duration - p0.duration).max() <= 6.0
    limits = PlanLimits(max_cycle_change_s=10.0, max_green_change_s=6.0, min_cycle_s=40)
    bad = array_problems(net, p1.cycle, p1.offset, p1.duration, p1.min_dur, p1.max_dur,
                         limits=limits, prev_duration=p0.duration)
    assert not bad.any()


def test_frozen_intersection_keeps_its_plan() -> None:
    net = one_cross()
    p0, st = optimize(net, np.array([300.0, 300.0]), np.zeros(2), initial_state(net), ISOLATED)
    p1, _ = optimize(net, np.array([1200.0, 100.0]), np.zeros(2), st, ISOLATED, frozen=np.array([True]))
    np.testing.assert_array_equal(p1.duration, p0.duration)


def test_actuation_bounds_contain_green() -> None:
    net = one_cross()
    params = ISOLATED.model_copy(update={"local_control": "actuated", "act_min_frac": 0.6,
                                         "act_max_frac": 1.5, "act_min_sat_y": 0.0})
    plan, _ = optimize(net, np.array([600.0, 300.0]), np.zeros(2), initial_state(net), params)
    assert (plan.min_dur <= plan.duration).all() and (plan.duration <= plan.max_dur).all()
    assert plan.min_dur[0] == pytest.approx(0.6 * 23) and plan.max_dur[0] == pytest.approx(1.5 * 23)
    assert plan.min_dur[1] == plan.max_dur[1] == 3  # clearances fixed


def test_min_green_floor_only_near_capacity() -> None:
    """Y = 1/3 + 1/6 = 0.5 is far from capacity: greens may gap out at the 5 s minimum.
    At 1200 + 600 veh/h, Y = 1.0 >= 0.8: the floor is half the plan green."""
    net = one_cross()
    params = ISOLATED.model_copy(update={"local_control": "pressure", "act_min_frac": 0.5})
    light, _ = optimize(net, np.array([600.0, 300.0]), np.zeros(2), initial_state(net), params)
    assert light.min_dur[0] == light.min_dur[2] == 5.0
    heavy, _ = optimize(net, np.array([1200.0, 600.0]), np.zeros(2), initial_state(net), params)
    np.testing.assert_allclose(heavy.min_dur[[0, 2]], 0.5 * heavy.duration[[0, 2]])
