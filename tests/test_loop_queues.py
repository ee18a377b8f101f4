"""Loop-counted vehicles per link between scans (the pressure rule without cameras)."""

from __future__ import annotations

import numpy as np

from signalopt.estimate import estimator_model
from signalopt.network import CompiledNetwork, LinkSpec, compile_network
from sim.controllers import _seen_by_stop_lines, within_reach
from sim.loop_queues import LoopQueues
from sim.loop_reader import LoopReader
from tests.conftest import build_t_junction


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


def test_the_loop_reader_counts_leaving_and_standing_and_times_the_gap(
        t_junction_net: CompiledNetwork) -> None:
    """Each step: vehicles that left a loop, those standing on it, and the steps since one
    last left it (inf before any has; 0 in the step one leaves). Loops are addressed by
    network index; QA's flags are taken per network detector."""
    net = t_junction_net
    a, b, c = (net.det_index[i] for i in ("WJ_0_stop", "WJ_1_stop", "SJ_0_stop"))
    r = LoopReader(net, [a, b, c], step_s=1.0)
    r.step(_Api({"WJ_0_stop": 2}, {"WJ_0_stop": 0, "WJ_1_stop": 1, "SJ_0_stop": 0}))
    np.testing.assert_array_equal(r.passed, [2.0, 0.0, 0.0])
    np.testing.assert_array_equal(r.standing, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(r.idle, [0.0, np.inf, np.inf])
    r.step(_Api({"WJ_1_stop": 1}, {"WJ_0_stop": 0, "WJ_1_stop": 0, "SJ_0_stop": 0}))
    np.testing.assert_array_equal(r.idle, [1.0, 0.0, np.inf])
    np.testing.assert_array_equal(r.positions(np.array([c, a, net.det_index["SJ_0_in"]])), [2, 0, -1])
    flags = np.zeros(net.n_detectors, dtype=np.int64)
    flags[c] = 1
    r.set_flagged(flags)
    np.testing.assert_array_equal(r.flagged, [False, False, True])


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
    q.step(_Api({"WJ_0_stop": 20}, {"WJ_0_stop": 0, "WJ_1_stop": 0}))
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


def _stop_lines_only() -> CompiledNetwork:
    """The T junction with its stop-line loops alone (a SCATS-style site)."""
    spec = build_t_junction()
    return compile_network(spec.model_copy(update={"detectors": tuple(
        d for d in spec.detectors if d.kind == "stopline")}))


def test_an_uncounted_inflow_comes_at_the_rate_the_stop_line_counted() -> None:
    """Stop-line loops only: nobody counts vehicles into SJ. Over the first scan (10 s) its
    stop line passed 5, so over the next one vehicles arrive at 0.5 per second: from the
    scan's 3, with nobody crossing, 3.5 then 4.0 (a vehicle stands on the loop throughout,
    so no bound applies)."""
    net = _stop_lines_only()
    sj = net.link_index["SJ"]
    q = LoopQueues(net, estimator_model(net))
    base = np.zeros(net.n_links)
    base[sj] = 10.0
    q.reset(base, np.ones(3))
    for k in range(10):
        q.step(_Api({"SJ_0_stop": k % 2}))
    assert q.link_vehicles()[sj] == 5.0  # 10 - 5, nothing guessed before a scan has counted
    base[sj] = 3.0
    q.reset(base, np.ones(3))
    q.step(_Api({}))
    assert q.link_vehicles()[sj] == 3.5
    q.step(_Api({}))
    assert q.link_vehicles()[sj] == 4.0


def test_an_empty_stop_line_bounds_the_cell_to_what_drives_through(t_junction_net: CompiledNetwork) -> None:
    """WJ's cell runs from its entry loops to its stop-line loops at 10 m/s. The scan said 6,
    but nobody stands on the stop lines and none crossed within the gap (3 s): no queue, so
    at most the vehicle counted in within the cell's travel time (1). A vehicle standing on
    each stop-line loop then means at least 2, whatever was counted."""
    net = t_junction_net
    wj = net.link_index["WJ"]
    q = LoopQueues(net, estimator_model(net))
    base = np.zeros(net.n_links)
    base[wj] = 6.0
    q.reset(base, np.ones(3))
    empty = {"WJ_0_stop": 0, "WJ_1_stop": 0}
    q.step(_Api({"WJ_0_in": 1}, empty))
    assert q.link_vehicles()[wj] == 1.0
    q.step(_Api({"WJ_0_stop": 1}, empty))  # a crossing: the stop line is busy for 3 s
    assert q.link_vehicles()[wj] == 0.0
    q.step(_Api({}, {"WJ_0_stop": 1, "WJ_1_stop": 1}))
    assert q.link_vehicles()[wj] == 2.0


def test_a_loop_qa_flagged_neither_bounds_its_cell_nor_calls(t_junction_net: CompiledNetwork) -> None:
    """As above, but QA flagged WJ's stop-line loops at the scan. Their empty stop line no
    longer bounds WJ (the scan's 6 stand), and phase 0, all of whose loops are flagged, has
    no call known (NaN). With one of the two flagged, the other alone gives phase 0's call:
    a vehicle "standing" on the flagged one (stuck) is none."""
    net = t_junction_net
    wj = net.link_index["WJ"]
    q = LoopQueues(net, estimator_model(net))
    view = q.phase_loops(net)
    base = np.zeros(net.n_links)
    base[wj] = 6.0
    q.reset(base, np.ones(3))
    flags = np.zeros(net.n_detectors, dtype=np.uint8)
    flags[[net.det_index["WJ_0_stop"], net.det_index["WJ_1_stop"]]] = 2
    q.set_flagged(flags)
    q.step(_Api({}, {"WJ_0_stop": 0, "WJ_1_stop": 0, "SJ_0_stop": 0}))
    assert q.link_vehicles()[wj] == 6.0
    assert np.isnan(view()[1][0])
    flags[net.det_index["WJ_1_stop"]] = 0
    q.set_flagged(flags)
    q.step(_Api({}, {"WJ_0_stop": 1, "WJ_1_stop": 1, "SJ_0_stop": 0}))
    assert view()[1][0] == 1.0


def test_an_approach_shorter_than_a_car_cannot_show_a_queue() -> None:
    """No car stops on a stop-line loop on a 3 m stub, so that junction is left to actuation,
    and the stub's loops bound nothing."""
    spec = build_t_junction()
    assert _seen_by_stop_lines(compile_network(spec)).tolist() == [True]
    stub = tuple(LinkSpec(**{**k.model_dump(), "length": 3.0}) if k.id == "SJ" else k
                 for k in spec.links)
    dets = tuple(d.model_copy(update={"pos": 1.0}) if d.link == "SJ" and d.kind == "stopline" else d
                 for d in spec.detectors if d.link != "SJ" or d.kind == "stopline")
    net = compile_network(spec.model_copy(update={"links": stub, "detectors": dets}))
    assert _seen_by_stop_lines(net).tolist() == [False]
    sj = net.link_index["SJ"]
    q = LoopQueues(net, estimator_model(net))
    base = np.zeros(net.n_links)
    base[sj] = 4.0
    q.reset(base, np.ones(3))
    q.step(_Api({}, {"SJ_0_stop": 0}))
    assert q.link_vehicles()[sj] == 4.0
