"""Loop-counted vehicles per link between scans (the pressure rule without cameras)."""

from __future__ import annotations

import numpy as np

from signalopt.estimate import estimator_model
from signalopt.network import CompiledNetwork
from sim.controllers import within_reach
from sim.loop_queues import LoopQueues


class _Loops:
    """A stand-in for TraCI's inductionloop: the vehicles that left each loop in the last step
    (leave time >= 0) and those standing on it (leave time -1)."""

    def __init__(self, passed: dict[str, int], standing: dict[str, int] | None = None) -> None:
        self.passed, self.standing = passed, standing or {}

    def getVehicleData(self, loop: str) -> list[tuple]:  # noqa: N802  (TraCI's name)
        return ([("v", 5.0, 0.0, 1.0, "car")] * self.passed.get(loop, 0)
                + [("w", 5.0, 0.0, -1.0, "car")] * self.standing.get(loop, 1))


class _Api:
    def __init__(self, passed: dict[str, int], standing: dict[str, int] | None = None) -> None:
        self.inductionloop = _Loops(passed, standing)


def test_counts_in_and_out_of_each_cell_since_the_scan(t_junction_net: CompiledNetwork) -> None:
    """WJ holds 4 at the scan; then its two entry loops pass 3 + 2 and its stop lines 1 + 0
    (a vehicle still standing on a loop does not count): 4 + 5 - 1 = 8."""
    net = t_junction_net
    q = LoopQueues(net, estimator_model(net))
    base = np.zeros(net.n_links)
    base[net.link_index["WJ"]] = 4.0
    q.reset(base, np.ones(3))
    q.step(_Api({"WJ_0_in": 3, "WJ_1_in": 2, "WJ_0_stop": 1}))
    assert q.link_vehicles()[net.link_index["WJ"]] == 8.0
    q.step(_Api({"WJ_0_stop": 20}))
    assert q.link_vehicles()[net.link_index["WJ"]] == 0.0  # never below zero


def test_a_free_exit_holds_what_came_in_during_its_travel_time(t_junction_net: CompiledNetwork) -> None:
    """JE has no loop at its end: 90 m from its entry loop at 10 m/s, a vehicle counted in
    is on it for 9 steps, then gone. The scan's estimate (2) does not pile up with the
    inflow, which read exits at 6-11x their true mean load on RESCO's Ingolstadt1, where the
    pressure rule counts a receiving road's load against the movements into it."""
    net = t_junction_net
    q = LoopQueues(net, estimator_model(net))
    je = net.link_index["JE"]
    base = np.zeros(net.n_links)
    base[je] = 2.0
    q.reset(base, np.ones(3))
    q.step(_Api({"JE_0_in": 1}))
    assert q.link_vehicles()[je] == 1.0
    for _ in range(8):
        q.step(_Api({}))
    assert q.link_vehicles()[je] == 1.0
    q.step(_Api({}))
    assert q.link_vehicles()[je] == 0.0


def test_what_each_green_s_stop_line_loops_show(t_junction_net: CompiledNetwork) -> None:
    """Phase 0's green serves WJ's two lanes, phase 2's SJ. A vehicle crossing WJ's stop line
    resets phase 0's gap timer only; a phase without green (yellow) has no loops: no timer,
    and its call is never wanting. Vehicles standing on a phase's loops are its call."""
    net = t_junction_net
    q = LoopQueues(net, estimator_model(net))
    view = q.phase_loops(net)
    q.step(_Api({"WJ_1_stop": 1}, {"SJ_0_stop": 0}))
    q.step(_Api({}, {"WJ_0_stop": 0, "SJ_0_stop": 0}))
    idle, calls = view()
    np.testing.assert_array_equal(idle, [1.0, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(calls, [1.0, np.inf, 0.0, np.inf])
    q.step(_Api({"SJ_0_stop": 1}, {"WJ_0_stop": 0, "WJ_1_stop": 0, "SJ_0_stop": 2}))
    idle, calls = view()
    np.testing.assert_array_equal(idle, [2.0, np.inf, 0.0, np.inf])
    np.testing.assert_array_equal(calls, [0.0, np.inf, 2.0, np.inf])


def test_share_of_each_link_a_camera_would_see() -> None:
    """From the stop line: a 24 m bay lies wholly within 100 m, then 76 of the next 144 m,
    then nothing."""
    np.testing.assert_allclose(within_reach(np.array([24.0, 144.0, 50.0]), 100.0),
                               [1.0, 76.0 / 144.0, 0.0])
