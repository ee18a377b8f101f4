"""Estimator: hand-checked conservation, measurement fusion, turning ratios, state carry-over."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signalopt.config import EstimatorParams, QAParams
from signalopt.detectors import SRC_UPSTREAM, STUCK, DetectorFrame, init_qa_state, qa_interval
from signalopt.estimate import (
    Estimate,
    _calibrated_var,
    _expected_entry,
    _junction_dwell,
    _kalman,
    _lane_queues,
    _length_prior,
    _link_inputs,
    _link_vehicles,
    _loss_base,
    _with_length,
    estimate,
    estimator_model,
    init_state,
    link_tails,
    measure,
    run_estimator,
    split_weights,
    step,
    vehicle_length,
)
from signalopt.network import (
    CompiledNetwork,
    DetectorSpec,
    IntersectionSpec,
    LinkSpec,
    MovementSpec,
    NetworkSpec,
    PhaseSpec,
    compile_network,
)
from tests.conftest import approach_detectors, entry
from tests.naive import naive_conservation

T = 30.0
# pure conservation: no loss fraction, a measurement so weak it never moves the state
CONSERVE = EstimatorParams(sink_prior=0.0, sink_prior_var=0.0, sink_var=0.0, loop_abs_std=1e9,
                           process_var=0.0, count_var=0.0, node_s=0.0, scan_s=90.0)


def _frame(count: np.ndarray, occ: np.ndarray | None = None,
           speed: np.ndarray | None = None) -> DetectorFrame:
    count = np.asarray(count, dtype=float)
    nan = np.full_like(count, np.nan)
    return DetectorFrame(np.arange(count.shape[0]) * T, count,
                         nan.copy() if occ is None else occ, nan.copy() if speed is None else speed)


CHAIN_COUNTS = np.array([[8, 0, 0], [8, 6, 0], [0, 8, 5]], dtype=float)  # rows: intervals


def test_chain_conservation_hand_checked(chain_net) -> None:
    """Chain L0 -> L1 -> L2 (100 m, entry loops at 10 m, no junctions), counts per interval

        L0 in: 8, 8, 0     L1 in: 0, 6, 8     L2 in: 0, 0, 5

    L0's cell runs from its loop to L1's loop, so after 90 s it holds (8+8+0) - (0+6+8) = 2
    (at most 10 at any time, below its jam storage 100/7.5 = 13.3); L1 holds 14 - 5 = 9.
    L2 exits freely: at 10 m/s a vehicle crosses its 90 m cell in 9 s, so of the 5 that
    entered uniformly over the last 30 s only those of the last 9 s are still on it:
    5 x 9/30 = 1.5. Loops report no occupancy, so the 10 m heads before each loop are empty.
    Network = 2 + 9 + 1.5 = 12.5 = the 16 that entered L0 minus the 3.5 that left L2.
    """
    ests, _ = run_estimator(_frame(CHAIN_COUNTS), chain_net, CONSERVE)
    assert len(ests) == 1 and ests[0].t == 90.0
    np.testing.assert_allclose(ests[0].link_vehicles, [2.0, 9.0, 1.5], atol=1e-6)
    assert ests[0].network_vehicles == pytest.approx(12.5, abs=1e-6)
    oracle = naive_conservation(CHAIN_COUNTS[:, 0], CHAIN_COUNTS[:, 1])
    assert ests[0].link_vehicles[0] == pytest.approx(oracle[-1], abs=1e-6)


def test_a_head_holds_the_road_before_its_entry_loops_plus_a_car() -> None:
    """One 100 m link, entry loop at 10 m reading 0.02 veh/m, empty cell: a vehicle is on
    the link from when its front enters and in the cell once its back passes the loop, so
    the head reaches a 5 m car further than the loop: 15 m x 0.02 = 0.3 vehicles. Little's
    law inside the junction at its end: 6 crossings in 30 s x a 2.5 s dwell = 0.5."""
    f64 = lambda *x: np.array(x, dtype=np.float64)  # noqa: E731
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    veh, _, internal = _link_vehicles(
        f64(0.0), f64(0.0), f64(6.0), f64(6.0), f64(0.02), f64(0.0), f64(0.0), f64(0.0),
        f64(2.5), i64(2), f64(10.0), f64(100.0), f64(100.0), f64(13.3), i64(0, 0), i64(),
        f64(), f64(), i64(0, 0), i64(), f64(), 30.0, f64(0.0), 0.5, 5.0)
    assert veh[0] == pytest.approx(0.3)
    assert internal == pytest.approx(0.5)


def test_the_junction_dwell_grows_with_exit_and_stop_line_occupancy() -> None:
    """T-junction: WJ turns into JE and JS, whose entry loops read 10 % and 30 % (mean 20 %);
    SJ only into JE (10 %). WJ's stop-line loops read 40 % and 60 % (mean 50 %), SJ's 0 %.
    Dwell = 2 s + 30 s x exit occupancy + 4 s x stop-line occupancy: WJ 2 + 6 + 2 = 10 s,
    SJ 2 + 3 = 5 s."""
    from tests.conftest import build_t_junction

    net = compile_network(build_t_junction())
    model = estimator_model(net)
    occ = np.zeros(net.n_detectors)
    for det, o in (("JE_0_in", 10.0), ("JS_0_in", 30.0), ("WJ_0_stop", 40.0), ("WJ_1_stop", 60.0)):
        occ[net.det_index[det]] = o
    params = EstimatorParams(junction_s=2.0, junction_block_s=30.0, junction_start_s=4.0)
    k_in = measure(model, _with_length(params, _length_prior(params)), np.zeros(net.n_detectors), occ)[4]
    dwell = _junction_dwell(model, params, k_in, occ)
    assert dwell[net.link_index["WJ"]] == pytest.approx(10.0)
    assert dwell[net.link_index["SJ"]] == pytest.approx(5.0)


def test_the_junction_count_is_linear_in_the_dwell_constants() -> None:
    """``benchmarks/junction_dwell.py`` fits the dwell from four runs of the estimator with
    unit constants; that holds only if nothing else depends on them. Random counts and
    occupancies on the T-junction over six intervals: the vehicles inside junctions with
    (1.89, 29.8, 3.0) equal the unit runs' combination."""
    from tests.conftest import build_t_junction

    net = compile_network(build_t_junction())
    model = estimator_model(net)
    rng = np.random.default_rng(3)
    count = rng.integers(0, 12, size=(6, net.n_detectors)).astype(float)
    occ = rng.uniform(0.0, 40.0, size=(6, net.n_detectors))
    speed = np.full_like(occ, 8.0)

    def inside(js: float, jb: float, jt: float) -> np.ndarray:
        params = EstimatorParams(junction_s=js, junction_block_s=jb, junction_start_s=jt)
        state, out = init_state(model, params), []
        for k in range(6):
            state = step(model, state, count[k], occ[k], speed[k], t_start=30.0 * k,
                         params=params, qa_params=QAParams())
            out.append(state.internal)
        return np.array(out)

    base = inside(0.0, 0.0, 0.0)
    units = [inside(1.0, 0.0, 0.0), inside(0.0, 1.0, 0.0), inside(0.0, 0.0, 1.0)]
    combined = base + sum(c * (u - base) for c, u in zip((1.89, 29.8, 3.0), units, strict=True))
    assert units[0].max() > 0 and units[1].max() > units[1].min() > 0
    np.testing.assert_allclose(inside(1.89, 29.8, 3.0), combined, rtol=1e-9)


def test_vehicles_inside_a_plain_node_take_the_network_s_time_to_cross() -> None:
    """The same chain, with the network saying that crossing the node after L0 takes 2 s (its
    internal lanes' length over speed) and not saying it for the node after L1. In the last
    interval 8 vehicles go from L0 into L1 and 5 from L1 into L2: 8 / 30 x 2 s = 0.53 are
    inside the first node, 5 / 30 x node_s (0.6) = 0.1 inside the second."""
    from tests.conftest import build_chain

    spec = build_chain()
    links = tuple(x.model_copy(update={"cross_s": 2.0}) if x.id == "L0" else x for x in spec.links)
    net = compile_network(spec.model_copy(update={"links": links}))
    params = CONSERVE.model_copy(update={"node_s": 0.6})
    _, state = run_estimator(_frame(CHAIN_COUNTS), net, params)
    assert state.internal == pytest.approx(8 / 30 * 2.0 + 5 / 30 * 0.6)


def test_state_carries_over_between_calls(chain_net) -> None:
    """Running intervals 1-2 then 3 with the returned state equals running 1-3 at once."""
    params = CONSERVE.model_copy(update={"scan_s": 30.0})
    full, _ = run_estimator(_frame(CHAIN_COUNTS), chain_net, params)
    fr = _frame(CHAIN_COUNTS)
    first = DetectorFrame(fr.times[:2], fr.count[:2], fr.occupancy[:2], fr.speed[:2])
    second = DetectorFrame(fr.times[2:], fr.count[2:], fr.occupancy[2:], fr.speed[2:])
    _, state = run_estimator(first, chain_net, params)
    part, _ = run_estimator(second, chain_net, params, state)
    np.testing.assert_allclose(part[-1].link_vehicles, full[-1].link_vehicles)


def test_zone_measurement_corrects_drift(t_junction_net) -> None:
    """WJ's entry loops count 5+5 per interval but its stop line only 4+4: conservation alone
    drifts +2 per interval. Zones (50 m per lane) read 20 % occupancy = 50*0.2/5 = 2 vehicles
    per lane, 4 in total over the zone. The filter must stay near the zones, far from drift."""
    net = t_junction_net
    n_t = 40
    count = np.full((n_t, net.n_detectors), 4.0)
    occ = np.full((n_t, net.n_detectors), 7.0)
    speed = np.full((n_t, net.n_detectors), 9.0)
    for lane in (0, 1):
        count[:, net.det_index[f"WJ_{lane}_in"]] = 5.0 + (np.arange(n_t) % 2) * 1e-9
        occ[:, net.det_index[f"WJ_{lane}_zone"]] = 20.0 + np.arange(n_t) * 1e-6
    count += np.arange(n_t)[:, None] % 2  # vary so nothing looks stuck
    for lane in (0, 1):
        count[:, net.det_index[f"WJ_{lane}_stop"]] = 4.0 + np.arange(n_t) % 2
        count[:, net.det_index[f"WJ_{lane}_in"]] = 5.0 + np.arange(n_t) % 2
    ests, state = run_estimator(_frame(count, occ, speed), net, EstimatorParams(scan_s=120.0))
    wj = net.link_index["WJ"]
    drift = 2.0 * n_t
    assert ests[-1].link_vehicles[wj] < 0.25 * drift
    assert state.beta[wj] > 0.1  # learned that ~20 % of WJ's inflow never reaches its stop line


def test_turning_ratios_dedicated_lanes(t_junction_net) -> None:
    """WJ lane 0 only goes to JE, lane 1 only to JS: stop-line counts 30 and 10 over the scan
    give WJ->JE 0.75, WJ->JS 0.25; SJ has one movement: 1.0. Arrival flow WJ->JE =
    0.75 x 40 entering WJ in 120 s = 30 veh / 120 s = 900 veh/h."""
    net = t_junction_net
    count = np.zeros((4, net.n_detectors))
    count[:, net.det_index["WJ_0_stop"]] = [7, 8, 7, 8]
    count[:, net.det_index["WJ_1_stop"]] = [2, 3, 2, 3]
    count[:, net.det_index["WJ_0_in"]] = [7, 8, 7, 8]
    count[:, net.det_index["WJ_1_in"]] = [2, 3, 2, 3]
    count[:, net.det_index["SJ_0_stop"]] = [1, 2, 1, 2]
    count[:, net.det_index["JE_0_in"]] = [8, 10, 8, 10]
    count[:, net.det_index["JS_0_in"]] = [2, 3, 2, 3]
    ests, _ = run_estimator(_frame(count), net, EstimatorParams(flow_smoothing=1.0))
    e = ests[-1]
    ratio = {f"{net.link_ids[a]}>{net.link_ids[b]}": r
             for a, b, r in zip(net.mov_from, net.mov_to, e.turning_ratio, strict=True)}
    assert ratio == pytest.approx({"WJ>JE": 0.75, "WJ>JS": 0.25, "SJ>JE": 1.0})
    assert e.mov_flow[0] == pytest.approx(900.0)


def _shared_lanes_net() -> CompiledNetwork:
    """Approaches A and B (one shared lane each) both feed exits X and Y; A is green in the
    first half of the cycle, B in the second."""
    links = tuple(LinkSpec(id=i, from_node=a, to_node=b, length=100.0, lanes=1, speed=10.0)
                  for i, a, b in (("A", "a", "J"), ("B", "b", "J"), ("X", "J", "x"), ("Y", "J", "y")))
    inter = IntersectionSpec(id="J", phases=(
        PhaseSpec(state=st, duration=d, min_dur=min(d, 10), max_dur=max(d, 60))
        for st, d in (("GGrr", 30), ("yyrr", 3), ("rrGG", 30), ("rryy", 3))))
    movs = tuple(MovementSpec(intersection="J", from_link=a, to_link=b, signals=(k,), lanes=(0,))
                 for k, (a, b) in enumerate((("A", "X"), ("A", "Y"), ("B", "X"), ("B", "Y"))))
    dets = approach_detectors("A", 100.0, 1) + approach_detectors("B", 100.0, 1)
    dets += [entry("X"), entry("Y")]
    return compile_network(NetworkSpec(links=links, intersections=(inter,), movements=movs,
                                       detectors=tuple(dets)))


def test_turning_ratios_shared_lanes_from_interval_timing() -> None:
    """Scan totals cannot split shared lanes here: 20 vehicles from A and 20 from B give X 22
    and Y 18, which any A->X + B->X = 1.1 explains. The intervals can: while only A is green
    (intervals 1-2) X gets 8 of every 10, so A->X = 0.8; while only B is green X gets 3 of
    10, so B->X = 0.3."""
    net = _shared_lanes_net()
    count = np.zeros((4, net.n_detectors))
    for det, values in (("A_0_stop", [10, 10, 0, 0]), ("B_0_stop", [0, 0, 10, 10]),
                        ("A_0_in", [10, 10, 0, 0]), ("B_0_in", [0, 0, 10, 10]),
                        ("X_0_in", [8, 8, 3, 3]), ("Y_0_in", [2, 2, 7, 7])):
        count[:, net.det_index[det]] = values
    ests, _ = run_estimator(_frame(count), net, EstimatorParams(flow_smoothing=1.0, turn_lag_s=0))
    ratio = {f"{net.link_ids[a]}>{net.link_ids[b]}": r
             for a, b, r in zip(net.mov_from, net.mov_to, ests[-1].turning_ratio, strict=True)}
    assert ratio == pytest.approx({"A>X": 0.8, "A>Y": 0.2, "B>X": 0.3, "B>Y": 0.7}, abs=1e-6)


def test_turning_fit_allows_for_the_travel_time_to_the_next_entry_loop() -> None:
    """As above, but vehicles need 6 s (a fifth of an interval) from the stop line to the
    next link's entry loop, so a fifth of each interval's stop-line count arrives in the next
    interval: A arrives 8, 10, 2, 0 and B 0, 0, 8, 10 (the last 2 in the next scan), hence
    X = 0.8 A + 0.3 B = 6.4, 8, 4, 3 and Y = 1.6, 2, 6, 7. With that lag the fit is exact;
    assuming none it is not."""
    net = _shared_lanes_net()
    count = np.zeros((4, net.n_detectors))
    for det, values in (("A_0_stop", [10, 10, 0, 0]), ("B_0_stop", [0, 0, 10, 10]),
                        ("A_0_in", [10, 10, 0, 0]), ("B_0_in", [0, 0, 10, 10]),
                        ("X_0_in", [6.4, 8, 4, 3]), ("Y_0_in", [1.6, 2, 6, 7])):
        count[:, net.det_index[det]] = values

    def fit(lag: float) -> dict[str, float]:
        params = EstimatorParams(flow_smoothing=1.0, turn_lag_s=lag, turn_iterations=50)
        ests, _ = run_estimator(_frame(count), net, params)
        return {f"{net.link_ids[a]}>{net.link_ids[b]}": r
                for a, b, r in zip(net.mov_from, net.mov_to, ests[-1].turning_ratio, strict=True)}

    assert fit(6.0) == pytest.approx({"A>X": 0.8, "A>Y": 0.2, "B>X": 0.3, "B>Y": 0.7}, abs=1e-3)
    assert abs(fit(0.0)["B>X"] - 0.3) > 0.02  # interval 3 mixes late A with B


def test_estimate_contract_shapes(grid2x2_net) -> None:
    net = grid2x2_net
    rng = np.random.default_rng(1)
    count = rng.integers(0, 6, size=(8, net.n_detectors)).astype(float)
    occ = count * 2.0 + rng.random(count.shape)
    df = pd.DataFrame({
        "detector_id": np.tile(net.det_ids, 8), "interval_start": np.repeat(np.arange(8) * T, net.n_detectors),
        "count": count.ravel().astype(int), "occupancy": occ.ravel(), "speed": 9.0})
    est, _state = estimate(df, net)
    assert isinstance(est, Estimate) and est.t == 240.0
    assert est.link_vehicles.shape == est.link_std.shape == (net.n_links,)
    for f in ("mov_flow", "turning_ratio", "mov_queue"):
        assert getattr(est, f).shape == (net.n_movements,)
    assert est.lane_queue.shape == est.lane_link.shape == est.lane_lane.shape
    sums = np.bincount(net.mov_from, weights=est.turning_ratio, minlength=net.n_links)
    has = np.bincount(net.mov_from, minlength=net.n_links) > 0
    np.testing.assert_allclose(sums[has], 1.0)
    assert (est.turning_ratio >= 0).all() and (est.mov_flow >= 0).all()
    assert est.network_vehicles >= est.link_vehicles.sum() - 1e-9
    assert np.isfinite(est.network_std) and est.network_std > 0
    model = estimator_model(net)
    assert model.lane_link.shape[0] == len({(a, b) for a, b in
                                            zip(net.lane_mov_link, net.lane_mov_lane, strict=True)})


def test_zone_cell_measured_piece_by_piece() -> None:
    """Link A (100 m, 1 lane): entry loop at 10 m, zone on 60-100 m; its cell runs on to the
    entry loop of bay B at 10 m (exit at 110 m). B (20 m) has a zone over 0-20 m.
    Occupancies: A's zone 50 % -> 0.5/5 = 0.1 veh/m x 40 m = 4; A's entry loop 10 % ->
    0.02 veh/m over the unseen 10-60 m = 1; the 10 m on B as B's camera shows its queue:
    its 0.04 veh/m x 20 m = 0.8 vehicles stand at jam spacing in the 6 m before B's stop
    line, clear of B's first 10 m, and B's entry loop (0 %) sees none pass there: 0.
    Measurement = 5.0 vehicles. Where B's camera shows a queue reaching back past B's entry
    loop (60 %: 2.4 vehicles over 18 m), its first 8 m hold jam density and the 2 m beyond
    the loop's: 8 / 7.5 + the fronts' share = 1.07 + 8 / 10 x (floor(20 / 7.5) + 1 - 20 /
    7.5) = 1.33; measurement 6.33."""
    # detectors: 0 A entry, 1 A zone, 2 B entry, 3 B zone
    occ = np.array([10.0, 50.0, 0.0, 20.0])
    count = np.full(4, 3.0)
    speed = np.array([10.0, 10.0])
    z = _link_inputs(*args_of(count, occ), 0.0, speed, 30.0, np.full(2, np.nan), np.full(2, 0.6), np.zeros(2),
                     np.zeros(2, dtype=np.bool_), 30.0)[7]
    assert z[0] == pytest.approx(5.0)
    queued = occ.copy()
    queued[3] = 60.0
    z = _link_inputs(*args_of(count, queued), 0.0, speed, 30.0, np.full(2, np.nan), np.full(2, 0.6),
                     np.zeros(2), np.zeros(2, dtype=np.bool_), 30.0)[7]
    assert z[0] == pytest.approx(4.0 + 1.0 + 8.0 / 7.5 + 0.8 * (3.0 - 20.0 / 7.5))
    # with half of each vehicle straddling a boundary loop counted: A's cell is bounded by its
    # entry loop (10 % occupied) and B's entry loop (0 %): 5.0 + 0.5 x (0 - 0.1) = 4.95
    boundary = _link_inputs(*args_of(count, occ), 0.5, speed, 30.0, np.full(2, np.nan), np.full(2, 0.6), np.zeros(2),
                     np.zeros(2, dtype=np.bool_), 30.0)[7]
    assert boundary[0] == pytest.approx(4.95)


def args_of(count: np.ndarray, occ: np.ndarray) -> tuple:
    """The arguments of the hand-checked two-link case above, before ``boundary``."""
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    f64 = lambda *x: np.array(x, dtype=np.float64)  # noqa: E731
    return (count, np.zeros(4), occ, i64(0, 0, 0, 0), i64(0, 1, 2), i64(0, 2), i64(0, 1, 1),
            i64(2), f64(1.0), i64(0, 1, 2), i64(1, 3), f64(10.0, 60.0, 10.0, 0.0),
            f64(10.0, 100.0, 10.0, 20.0), f64(10.0, 10.0), f64(110.0, 20.0), f64(100.0, 20.0),
            f64(1.0, 1.0), 5.0, 7.5, 0.0, 0.1, 0.5, 0.5, 1.0, f64(0.5, 0.5), i64(0, 1, 1), i64(1),
            f64(1.0))


def test_jammed_bay_head_counts_fronts() -> None:
    """A 24 m one-lane bay, entry loop at 10 m, camera zone over 0-24 m at jam occupancy
    (5 m cars, 7.5 m apart: 66.7 %). The queue stands from the stop line past the bay's start,
    so the 10 m head holds jam density: 10 / 7.5 = 1.33 vehicles by length. Counted by fronts
    (a vehicle is on the link where its front is), a queue anchored at 24 m has fronts at 24,
    16.5, 9, 1.5: floor(24 / 7.5) + 1 = 4, not 24 / 7.5 = 3.2, and the extra 0.8 belongs
    to the head (the last vehicle's body sticks out of it): head = 2.13."""
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    f64 = lambda *x: np.array(x, dtype=np.float64)  # noqa: E731
    occ = f64(0.0, 100.0 * 5.0 / 7.5)
    out = _link_inputs(
        f64(0.0, 0.0), np.zeros(2), occ, i64(0, 0), i64(0, 1), i64(0), i64(0, 0), i64(),
        f64(), i64(0, 1), i64(1), f64(10.0, 0.0), f64(10.0, 24.0), f64(10.0), f64(24.0),
        f64(24.0), f64(1.0), 5.0, 7.5, 0.0, 0.1, 0.5, 0.5, 1.0, f64(0.5), i64(0, 0), i64(), f64(),
        0.5, f64(10.0), 30.0, f64(np.nan), f64(0.6), f64(0.0), np.zeros(1, dtype=np.bool_), 30.0)
    assert out[9][0] == pytest.approx(10.0 / 7.5 + 0.8)


def test_trips_ending_on_a_link_leave_with_its_queue() -> None:
    """The loss fraction applies to the inflow on a link with a free exit cross-section and
    to the outflow where a queue stands on its exit loops (FIFO): 8 in, 2 out, exit loop at
    jam density -> 2; exit loop empty -> 8; half jam -> 5."""
    net = _shared_lanes_net()
    model = estimator_model(net)
    a = net.link_index["A"]
    u, w = np.full(net.n_links, 8.0), np.full(net.n_links, 2.0)
    for jam_share, expected in ((1.0, 2.0), (0.0, 8.0), (0.5, 5.0)):
        k_out = np.full(net.n_links, jam_share / 7.5)
        assert _loss_base(model, u, w, k_out, 7.5)[a] == pytest.approx(expected)


def test_calibrated_uncertainty_hand_checked(t_junction_net) -> None:
    """With the filter's own variances zeroed, the network std is exactly the correlated
    terms: model_rel_std x N plus failed_rel_std x (share of each link's detectors flagged x
    its vehicles). 4 vehicles on WJ, none elsewhere; all of WJ's detectors flagged:
    sqrt((0.05 x 4)^2 + (0.5 x 1 x 4)^2) = sqrt(0.04 + 4) = 2.01."""
    net = t_junction_net
    params = EstimatorParams(model_rel_std=0.05, failed_rel_std=0.5, junction_rel_std=0.0,
                             pinned_var_per_vehicle=0.0)
    model = estimator_model(net)
    state = init_state(model, params)
    wj = net.link_index["WJ"]
    veh = np.zeros(net.n_links)
    veh[wj] = 4.0
    flags = np.zeros(net.n_detectors, dtype=np.uint8)
    flags[model.meas_det[model.meas_link == wj]] = 1
    state = state._replace(link_vehicles=veh, links_total=4.0, link_var=np.zeros(net.n_links),
                           acc_flags=flags)
    link_var, net_var = _calibrated_var(model, state, params)
    assert np.sqrt(net_var) == pytest.approx(np.sqrt(0.04 + 4.0))
    assert link_var[wj] == pytest.approx(0.04 + 4.0)
    healthy = state._replace(acc_flags=np.zeros_like(flags))
    assert np.sqrt(_calibrated_var(model, healthy, params)[1]) == pytest.approx(0.2)


def test_a_pinned_link_reports_a_share_of_the_filter_variance(t_junction_net) -> None:
    """WJ (entry loops close its cell, a camera sees it) holds 4 vehicles with a filter
    variance of 9: it reports 0.16 x 9 + 0.5 x 4 + (model_rel_std x 4)^2 = 3.48, not 9.04
    (the filter's variance, sized for tracking, was about 6x the squared errors of such
    links). A link no camera sees keeps its filter variance; the network total is unchanged."""
    net = t_junction_net
    params = EstimatorParams(model_rel_std=0.05, junction_rel_std=0.0, link_var_share=0.25)
    model = estimator_model(net)
    wj = net.link_index["WJ"]
    assert np.diff(model.in_indptr)[wj] > 0 and np.diff(model.zone_indptr)[wj] > 0
    veh, lv = np.zeros(net.n_links), np.zeros(net.n_links)
    veh[wj], lv[wj] = 4.0, 9.0
    state = init_state(model, params)._replace(link_vehicles=veh, links_total=4.0, link_var=lv)
    link_var, net_var = _calibrated_var(model, state, params)
    assert link_var[wj] == pytest.approx(0.16 * 9.0 + 0.5 * 4.0 + 0.04)
    assert net_var == pytest.approx(0.25 * 9.0 + 0.04)
    je = net.link_index["JE"]  # entry loops, no camera
    assert np.diff(model.zone_indptr)[je] == 0
    lv2 = np.zeros(net.n_links)
    lv2[je] = 9.0
    state2 = state._replace(link_vehicles=np.zeros(net.n_links), links_total=0.0, link_var=lv2)
    assert _calibrated_var(model, state2, params)[0][je] == pytest.approx(9.0)


def test_failed_links_add_their_uncertainty_independently(t_junction_net) -> None:
    """Two links with all their detectors flagged, 4 and 6 vehicles: each adds
    failed_rel_std x its vehicles, independently (random failures, imputations erring both
    ways): sqrt((0.05 x 10)^2 + (0.5 x 4)^2 + (0.5 x 6)^2) = sqrt(13.25), not the shared
    sqrt(0.25 + (2 + 3)^2) = sqrt(25.25)."""
    net = t_junction_net
    rel = 0.05
    params = EstimatorParams(model_rel_std=rel, uncounted_rel_std=rel, loops_only_rel_std=rel,
                             weak_rel_std=rel, stopline_only_rel_std=rel, entry_only_rel_std=rel,
                             failed_rel_std=0.5, junction_rel_std=0.0)
    model = estimator_model(net)
    a, b = net.link_index["WJ"], net.link_index["SJ"]
    veh = np.zeros(net.n_links)
    veh[a], veh[b] = 4.0, 6.0
    flags = np.zeros(net.n_detectors, dtype=np.uint8)
    flags[model.meas_det[np.isin(model.meas_link, [a, b])]] = 1
    state = init_state(model, params)._replace(
        link_vehicles=veh, links_total=10.0, link_var=np.zeros(net.n_links), acc_flags=flags)
    _, net_var = _calibrated_var(model, state, params)
    assert net_var == pytest.approx(0.25 + 4.0 + 9.0)


def test_exit_loop_checked_and_imputed_by_upstream_conservation(t_junction_net) -> None:
    """JS is fed only by W's left lane (WJ lane 1) and has no partner loop. Its entry loop
    counts nobody from interval 2 on while W's left lane releases 4-8 cars an interval: once
    10 have gone its way it is stuck, and its count is imputed as the cars released."""
    net = t_junction_net
    model = estimator_model(net)
    rng = np.random.default_rng(3)
    count = rng.integers(4, 9, size=(8, net.n_detectors)).astype(float)
    left, js = net.det_index["WJ_1_stop"], net.det_index["JS_0_in"]
    count[:, js] = count[:, left]  # healthy: every left-turner reaches JS's entry loop
    count[2:, js] = 0.0
    occ = count * 100 * 5 / (10 * T)
    speed = np.where(count > 0, 10.0, np.nan)
    qa_state, share = init_qa_state(net.n_detectors), init_state(model).row_share
    flags, src, imputed = [], [], []
    for k in range(8):
        expected = _expected_entry(model, count[k], qa_state.hist_count, share)
        assert expected[js] == count[k, left]
        qa, qa_state = qa_interval(model.det, qa_state, count[k], occ[k], speed[k],
                                   interval_s=T, params=QAParams(), expected=expected)
        flags.append(bool(qa.flags[js] & STUCK))
        src.append(int(qa.source[js]))
        imputed.append(qa.count[js])
    seen = np.cumsum(np.where(np.arange(8) >= 2, count[:, left], 0.0))
    assert flags == (seen >= 10).tolist() and any(flags)
    for k in np.flatnonzero(flags):
        assert src[k] == SRC_UPSTREAM and imputed[k] == count[k, left]


def test_a_lane_nobody_uses_is_not_stuck(t_junction_net) -> None:
    """JE gets a second lane that nobody drives in: its entry loop counts 0 while J releases
    8-16 cars an interval into JE. Before the loops have a history, which lane the cars take
    is unknown, so the silent one is never called stuck (an equal split called it stuck for
    good, its zeros kept out of its history: 3.7 % of Ingolstadt1's healthy detector-intervals
    were flagged). Once it has one (0), the busy lane stops counting at interval 12 and is
    flagged as soon as 10 of the cars released have gone its way."""
    from tests.conftest import build_t_junction

    spec = build_t_junction()
    links = tuple(lk.model_copy(update={"lanes": 2}) if lk.id == "JE" else lk for lk in spec.links)
    net = compile_network(spec.model_copy(update={"links": links,
                                                  "detectors": (*spec.detectors, entry("JE", 1))}))
    model = estimator_model(net)
    rng = np.random.default_rng(5)
    count = rng.integers(4, 9, size=(20, net.n_detectors)).astype(float)
    busy, idle = net.det_index["JE_0_in"], net.det_index["JE_1_in"]
    released = count[:, net.det_index["WJ_0_stop"]] + count[:, net.det_index["SJ_0_stop"]]
    count[:, busy], count[:, idle] = released, 0.0
    count[12:, busy] = 0.0
    occ = count * 100 * 5 / (10 * T)
    speed = np.where(count > 0, 10.0, np.nan)
    qa_state, share = init_qa_state(net.n_detectors), init_state(model).row_share
    flags = []
    for k in range(20):
        expected = _expected_entry(model, count[k], qa_state.hist_count, share)
        qa, qa_state = qa_interval(model.det, qa_state, count[k], occ[k], speed[k],
                                   interval_s=T, params=QAParams(), expected=expected)
        flags.append((bool(qa.flags[idle] & STUCK), bool(qa.flags[busy] & STUCK)))
    assert not any(f[0] for f in flags)
    assert qa_state.hist_count[idle] == 0.0
    seen = np.cumsum(np.where(np.arange(20) >= 12, released, 0.0))
    assert [f[1] for f in flags] == (seen >= 10).tolist() and flags[-1][1]


def _without(spec: NetworkSpec, *ids: str) -> CompiledNetwork:
    """``spec`` with the named detectors removed (a site that never installed them)."""
    return compile_network(spec.model_copy(update={
        "detectors": tuple(d for d in spec.detectors if d.id not in ids)}))


def test_exit_without_entry_loops_takes_what_the_stop_lines_released() -> None:
    """The T-junction without JE's and JS's entry loops. Lanes are dedicated (WJ lane 0 -> JE,
    lane 1 -> JS, SJ -> JE), so per 30 s JE receives WJ_0 + SJ = 6 + 4 = 10 and JS
    receives WJ_1 = 3. Both exit freely at 10 m/s over 100 m: a vehicle stays 10 s, a third
    of the interval, so JE holds 10 / 3 and JS 1 (released_rel_std 0: shares are exact)."""
    from tests.conftest import build_t_junction

    net = _without(build_t_junction(), "JE_0_in", "JS_0_in")
    model = estimator_model(net)
    je, js = net.link_index["JE"], net.link_index["JS"]
    assert model.in_kind[je] == model.in_kind[js] == 1  # IN_RELEASED
    count = np.zeros((3, net.n_detectors))
    for det, c in (("WJ_0_stop", 6), ("WJ_1_stop", 3), ("SJ_0_stop", 4), ("WJ_0_in", 6),
                   ("WJ_1_in", 3), ("SJ_0_in", 4)):
        count[:, net.det_index[det]] = c + np.arange(3) * 1e-9  # vary: not stuck
    ests, _ = run_estimator(_frame(count), net, CONSERVE.model_copy(
        update={"released_rel_std": 0.0}))
    assert ests[-1].link_vehicles[je] == pytest.approx(10.0 / 3.0, abs=1e-6)
    assert ests[-1].link_vehicles[js] == pytest.approx(1.0, abs=1e-6)


def _split_road_net(with_entry: bool) -> CompiledNetwork:
    """Approach X (1 lane) -> signal J1 -> road A (100 m) -> plain node M -> bay B (20 m,
    stop-line loop at 18 m) -> signal J2 -> exit C. Stop-line loops on X and B; entry loops
    (at 10 m) on A and B only ``with_entry``."""
    def lk(i: str, a: str, b: str, length: float) -> LinkSpec:
        return LinkSpec(id=i, from_node=a, to_node=b, length=length, lanes=1, speed=10.0)

    links = (lk("X", "W", "J1", 100.0), lk("A", "J1", "M", 100.0), lk("B", "M", "J2", 20.0),
             lk("C", "J2", "E", 100.0))
    phases = (PhaseSpec(state="G", duration=30, min_dur=10, max_dur=60),
              PhaseSpec(state="y", duration=3, min_dur=3, max_dur=3))
    inters = (IntersectionSpec(id="J1", phases=phases), IntersectionSpec(id="J2", phases=phases))
    movs = (MovementSpec(intersection="J1", from_link="X", to_link="A", signals=(0,), lanes=(0,)),
            MovementSpec(intersection="J2", from_link="B", to_link="C", signals=(0,), lanes=(0,)))
    stop = [DetectorSpec(id=f"{k}_0_stop", link=k, lane=0, pos=p, kind="stopline")
            for k, p in (("X", 98.0), ("B", 18.0))]
    dets = stop + ([entry("A"), entry("B")] if with_entry else [])
    return compile_network(NetworkSpec(links=links, intersections=inters, movements=movs,
                                       detectors=tuple(dets)))


def test_road_split_at_a_plain_node_is_one_cell_between_stop_lines() -> None:
    """Without entry loops, A and the bay B form one cell from J1 to B's stop line: X's stop
    line releases 5 per interval into A, B's stop line lets 3 out, so after three intervals
    the road holds 3 x (5 - 3) = 6 vehicles, shared between A and B."""
    net = _split_road_net(with_entry=False)
    model = estimator_model(net)
    a, b = net.link_index["A"], net.link_index["B"]
    assert model.out_kind[a] == 0 and model.out_kind[b] == 3  # OUT_STOPLINE via B, OUT_MERGED
    assert model.exit_pos[a] == pytest.approx(118.0)
    count = np.zeros((3, net.n_detectors))
    count[:, net.det_index["X_0_stop"]] = 5.0 + np.arange(3) * 1e-9
    count[:, net.det_index["B_0_stop"]] = 3.0 + np.arange(3) * 1e-9
    ests, _ = run_estimator(_frame(count), net, CONSERVE.model_copy(
        update={"released_rel_std": 0.0}))
    veh = ests[-1].link_vehicles
    assert veh[a] + veh[b] == pytest.approx(6.0, abs=1e-6)
    assert veh[a] >= 0 and veh[b] >= 0
    # with entry loops the same counts give each link its own cell (A fed by its loop)
    full = _split_road_net(with_entry=True)
    assert estimator_model(full).out_kind[full.link_index["B"]] == 0


def test_next_entry_count_is_shared_only_by_links_that_can_feed_it() -> None:
    """Two-way road A - B - C with entry loops only (no stop lines at B). BC can only be fed
    by AB (BA would be a U-turn), so AB's cell ends at BC's entry loop with weight 1: 8 in and
    8 out per interval leave it empty (sharing BC's count with CB would let 4 pile up each
    interval)."""
    def lk(a: str, b: str) -> LinkSpec:
        return LinkSpec(id=f"{a}{b}", from_node=a, to_node=b, length=100.0, lanes=1, speed=10.0)

    links = (lk("A", "B"), lk("B", "C"), lk("C", "B"), lk("B", "A"))
    net = compile_network(NetworkSpec(links=links, detectors=tuple(entry(x.id) for x in links)))
    count = np.zeros((3, net.n_detectors))
    count[:, net.det_index["AB_0_in"]] = 8.0 + np.arange(3) * 1e-9
    count[:, net.det_index["BC_0_in"]] = 8.0 + np.arange(3) * 1e-9
    ests, _ = run_estimator(_frame(count), net, CONSERVE)
    assert ests[-1].link_vehicles[net.link_index["AB"]] == pytest.approx(0.0, abs=1e-6)


def test_merge_shares_the_next_entry_count_by_what_each_feeder_brought() -> None:
    """Unsignalised merge: A and B (entry loops only) feed C, whose entry loop counts the 8
    vehicles per interval that A (6) and B (2) brought. Each feeder's cell ends at C's loop
    and takes the share of its count that its own inflow makes up: 6/8 and 2/8, so both stay
    empty. An equal split (4 and 4) would pile 2 per interval onto A and drain B below 0."""
    def lk(a: str, b: str) -> LinkSpec:
        return LinkSpec(id=f"{a}{b}", from_node=a, to_node=b, length=100.0, lanes=1, speed=10.0)

    links = (lk("A", "M"), lk("B", "M"), lk("M", "C"))
    net = compile_network(NetworkSpec(links=links, detectors=tuple(entry(x.id) for x in links)))
    count = np.zeros((3, net.n_detectors))
    for det, n in (("AM_0_in", 6.0), ("BM_0_in", 2.0), ("MC_0_in", 8.0)):
        count[:, net.det_index[det]] = n
    model = estimator_model(net)
    ests, state = run_estimator(_frame(count), net, CONSERVE, model=model)
    assert split_weights(model, state.flow_avg) == pytest.approx([0.75, 0.25])
    assert ests[-1].link_vehicles[net.link_index["AM"]] == pytest.approx(0.0, abs=1e-9)
    assert ests[-1].link_vehicles[net.link_index["BM"]] == pytest.approx(0.0, abs=1e-9)
    static = CONSERVE.model_copy(update={"split_smoothing_s": 1e12})  # flows never seen
    ests, _ = run_estimator(_frame(count), net, static, model=model)
    assert ests[-1].link_vehicles[net.link_index["AM"]] > 5.0


def test_vehicle_length_learned_from_free_flowing_entry_loops(t_junction_net) -> None:
    """4.3 m vehicles cross the T-junction's 5 entry loops at 12 m/s, 3 per interval, so each
    loop reads occupancy 3 x 4.3 / 12 / 30 s = 3.58 %: one length sample of 4.3 m per loop
    and interval. Stop-line loops, where vehicles stand (1 m/s), give none. The prior (20
    samples at 5 m, aged exp(-30/3600) per interval) holds the median against 15 samples
    (3 intervals) but not against 20 (4 intervals, 19.3 prior left) or 25; the scan reports
    the length it used."""
    net = t_junction_net
    entry_det = net.det_kind == 0
    count = np.where(entry_det, 3.0, 2.0)[None].repeat(5, axis=0)
    occ = np.where(entry_det, 300.0 * 4.3 / 12.0 / 30.0, 80.0)[None].repeat(5, axis=0)
    speed = np.where(entry_det, 12.0, 1.0)[None].repeat(5, axis=0)
    _, three = run_estimator(_frame(count[:3], occ[:3], speed[:3]), net, EstimatorParams())
    ests, five = run_estimator(_frame(count, occ, speed), net, EstimatorParams())
    assert vehicle_length(three.len_hist) == pytest.approx(5.0)
    assert vehicle_length(five.len_hist) == pytest.approx(4.3)
    assert ests[0].vehicle_length_m == pytest.approx(4.3)  # the scan after 4 intervals: 20 > 19.3
    # densities then use 4.3 m, and queues keep the prior's 2.5 m gap: 6.8 m per vehicle
    learned = _with_length(EstimatorParams(), five.len_hist)
    assert (learned.vehicle_length_m, learned.jam_spacing_m) == pytest.approx((4.3, 6.8))
    fixed = _with_length(EstimatorParams(learn_vehicle_length=False), five.len_hist)
    assert (fixed.vehicle_length_m, fixed.jam_spacing_m) == (5.0, 7.5)


def test_free_exit_measured_at_its_entry_loop_density(chain_net) -> None:
    """The chain's last link L2 has no loop at its end (a free exit): its cell (10-100 m) is
    measured at its entry loop's density alone, 10 % / 5 m = 0.02 veh/m x 90 m = 1.8, less
    half the vehicles straddling that loop (0.5 x 0.1): 1.75. Mixing in an exit density it
    does not have (0) halved that. L1, closed by L2's entry loop (0 %), keeps the mean of its
    two loops: 0.5 x (0.02 + 0) x 100 m - 0.5 x 0.1 = 0.95."""
    model = estimator_model(chain_net)
    count = np.array([3.0, 3.0, 3.0])
    occ = np.array([10.0, 10.0, 10.0])
    z = measure(model, EstimatorParams(), count, occ)[7]
    assert z[chain_net.link_index["L2"]] == pytest.approx(1.75)
    occ[chain_net.det_index["L2_0_in"]] = 0.0
    z = measure(model, EstimatorParams(), count, occ)[7]
    assert z[chain_net.link_index["L1"]] == pytest.approx(0.95)


def _road_into_bay(bay_m: float) -> CompiledNetwork:
    """A 100 m two-lane road RW (entry loops 10 m in) feeding a signal approach WJ of
    ``bay_m`` (entry loops 10 m in, stop-line loops 2 m before its end), then JE."""
    links = (LinkSpec(id="RW", from_node="R", to_node="W", length=100.0, lanes=2, speed=10.0),
             LinkSpec(id="WJ", from_node="W", to_node="J", length=bay_m, lanes=2, speed=10.0),
             LinkSpec(id="JE", from_node="J", to_node="E", length=100.0, lanes=1, speed=10.0))
    inter = IntersectionSpec(id="J", phases=(
        PhaseSpec(state="G", duration=30, min_dur=10, max_dur=60),
        PhaseSpec(state="y", duration=3, min_dur=3, max_dur=3),
        PhaseSpec(state="r", duration=30, min_dur=10, max_dur=60)))
    mov = MovementSpec(intersection="J", from_link="WJ", to_link="JE", signals=(0,), lanes=(0, 1))
    dets = [entry("RW", 0), entry("RW", 1), entry("JE")]
    dets += [DetectorSpec(id=f"WJ_{k}_{kind}", link="WJ", lane=k, pos=pos, kind=kind)
             for k in (0, 1) for kind, pos in (("entry", 10.0), ("stopline", bay_m - 2.0))]
    return compile_network(NetworkSpec(links=links, intersections=(inter,), movements=(mov,),
                                       detectors=tuple(dets)))


def test_a_road_into_a_short_bay_is_not_measured_by_the_bays_queue() -> None:
    """RW's cell runs from its loops (10 % each: 0.02 veh/m per lane) to WJ's entry loops,
    which stand in WJ's standing queue when WJ is a 24 m bay (14 m before its stop line: 60 %,
    0.12 veh/m per lane). The cell is then measured at its own loops' density alone:
    0.04 veh/m x 100 m + half the vehicles straddling the loops, 0.5 x (1.2 - 0.2) = 4.5.
    Before, or with queue_zone_m = 0, or when WJ is 100 m long (its loops 90 m from its stop
    line), the two densities are averaged: 0.14 x 100 + 0.5 = 14.5."""
    def z(bay_m: float, params: EstimatorParams) -> float:
        net = _road_into_bay(bay_m)
        occ = np.full(net.n_detectors, 10.0)
        occ[[net.det_index["WJ_0_entry"], net.det_index["WJ_1_entry"]]] = 60.0
        out = measure(estimator_model(net), params, np.full(net.n_detectors, 3.0), occ)
        return float(out[7][net.link_index["RW"]])

    assert z(24.0, EstimatorParams()) == pytest.approx(4.5)
    assert z(24.0, EstimatorParams(queue_zone_m=0.0)) == pytest.approx(14.5)
    assert z(100.0, EstimatorParams()) == pytest.approx(14.5)


def test_a_long_approach_reads_its_stop_line_loop_as_the_queue_standing_there() -> None:
    """WJ, 100 m, two lanes, measured by loops alone from its entry loops (10 m in, 10 %:
    0.04 veh/m over both lanes; 3 vehicles each per 30 s, 0.1 per lane and s) to its stop-line
    loops (98 m, occupied 60 % of the interval). The entry loops' density covers the 58 m
    before the last 30 m: 2.32. Each stop-line lane holds its standing car 60 % of the time,
    joined by 0.1 x 0.6 x 30 = 1.8 arrivals: 0.6 x 2.8 = 1.68, 3.36 for both. With the
    boundary's half of the occupancy difference, 0.5 x (1.2 - 0.2): 6.18. A lone car waiting
    out a red (no counts, idle entry loops) is 1.2 + 0.6 = 1.8 vehicles, where the stop-line
    loops' density over 30 m read 0.24 x 30 + 0.6 = 7.8. With queue_zone_m = 0 the two
    densities' mean covers the whole 88 m cell: 0.14 x 88 + 0.5 = 12.82."""
    net = _road_into_bay(100.0)
    stop = [net.det_index["WJ_0_stopline"], net.det_index["WJ_1_stopline"]]
    occ = np.full(net.n_detectors, 10.0)
    occ[stop] = 60.0

    def z(params: EstimatorParams, count: float = 3.0, occ: np.ndarray = occ) -> float:
        out = measure(estimator_model(net), params, np.full(net.n_detectors, count), occ)
        return float(out[7][net.link_index["WJ"]])

    assert z(EstimatorParams()) == pytest.approx(6.18)
    lone = np.zeros(net.n_detectors)
    lone[stop] = 60.0
    assert z(EstimatorParams(), count=0.0, occ=lone) == pytest.approx(1.8)
    assert z(EstimatorParams(queue_zone_m=0.0)) == pytest.approx(12.82)


def test_a_long_approach_read_by_its_stop_line_loops_reports_its_own_uncertainty() -> None:
    """The queue a stop-line loop only hints at carries standing_queue_rel_std: WJ (100 m,
    loops only) reports a wider std when it grows and the same std whatever it is when WJ is
    a 24 m bay its loops close (loops_only_rel_std then)."""
    def std(bay_m: float, rel: float) -> float:
        net = _road_into_bay(bay_m)
        occ = np.full((8, net.n_detectors), 10.0)
        ests, _ = run_estimator(_frame(np.full((8, net.n_detectors), 3.0), occ), net,
                                EstimatorParams(standing_queue_rel_std=rel))
        return float(ests[-1].link_std[net.link_index["WJ"]])

    assert std(100.0, 0.5) > std(100.0, 0.1) + 0.1
    assert std(24.0, 0.5) == pytest.approx(std(24.0, 0.1))


def test_dead_end_link_feeds_no_road_that_starts_where_it_ends() -> None:
    """A ends at node M where trips end (its SUMO connections: none); road C starts at M with
    its own 6 vehicles per interval. A's 2 per interval leave it at its end after the 9 s they
    take over its 90 m cell, so it holds 2 x 9/30 = 0.6. Read by nodes alone, A would feed C
    and drain C's count: 2 - 6 per interval, nothing left."""
    def lk(a: str, b: str, to: tuple[str, ...] | None) -> LinkSpec:
        return LinkSpec(id=f"{a}{b}", from_node=a, to_node=b, length=100.0, lanes=1,
                        speed=10.0, to_links=to)

    def run(to: tuple[str, ...] | None) -> float:
        links = (lk("X", "M", to), lk("M", "C", ()))
        net = compile_network(NetworkSpec(links=links, detectors=tuple(entry(x.id) for x in links)))
        count = np.zeros((3, net.n_detectors))
        count[:, net.det_index["XM_0_in"]], count[:, net.det_index["MC_0_in"]] = 2.0, 6.0
        ests, _ = run_estimator(_frame(count), net, CONSERVE)
        return float(ests[-1].link_vehicles[net.link_index["XM"]])

    assert run(()) == pytest.approx(0.6)
    assert run(None) == pytest.approx(0.0)


def test_network_rejects_connections_to_unknown_or_distant_links() -> None:
    """to_links must name links that start where the link ends; the error names both."""
    links = (LinkSpec(id="AB", from_node="A", to_node="B", length=100.0, lanes=1, speed=10.0,
                      to_links=("CD", "nope")),
             LinkSpec(id="CD", from_node="C", to_node="D", length=100.0, lanes=1, speed=10.0))
    with pytest.raises(ValueError, match="invalid network") as err:
        NetworkSpec(links=links)
    assert "to_links names unknown link 'nope'" in str(err.value)
    assert "to_links 'CD' does not start at its end node 'B'" in str(err.value)


def test_degenerate_cell_cannot_run_away(t_junction_net) -> None:
    """A 1 m approach (SUMO has them at complex junctions) puts its entry loop at 0.38 m and
    its stop-line loop at 0 m. With the entry loop silent and imputed low, 5 vehicles per
    interval leave a cell that holds at most (1/7.5 + 1) x 4 lanes = 4.53: it may dip below
    0, but not further than that (it ran to -153 vehicles on Ingolstadt7), and its variance,
    unmeasured, stops at 4.53^2 (it reached 1302, half the network's)."""
    one = lambda x: np.array([x], dtype=np.float64)  # noqa: E731
    cell, beta = one(0.0), one(0.0)
    p00, p01, p11 = one(1.0), one(0.0), one(1e-4)
    for _ in range(40):
        cell, beta, p00, p01, p11, _ = _kalman(
            cell, beta, p00, p01, p11, one(0.0), one(1.0), one(5.0), one(0.5), one(np.nan),
            one(np.inf), one(0.0), np.array([0]), np.array([True]), one(0.38), one(0.0),
            one(13.9), one(4.0), 7.5, T, 0.3, 1e-4)
    cap = (1.0 / 7.5 + 1.0) * 4.0
    assert cell[0] == pytest.approx(-cap)
    assert p00[0] == pytest.approx(cap**2)  # nor does its variance grow past what it holds


def test_turning_fitted_from_downstream_stop_lines_without_entry_loops() -> None:
    """X's one lane turns into A or B (no entry loops anywhere); A and B end at stop lines
    that count 7 and 3 per interval while X releases 10. What leaves A and B shows where X's
    vehicles went: each 120 s scan's turning ratio is 0.7 / 0.3, and the lane's share that
    carries over moves from the prior 1/2 half-way each scan: 0.6, 0.65, 0.675."""
    def lk(i: str, a: str, b: str) -> LinkSpec:
        return LinkSpec(id=i, from_node=a, to_node=b, length=100.0, lanes=1, speed=10.0)

    links = (lk("X", "W", "J"), lk("A", "J", "NA"), lk("B", "J", "NB"), lk("AO", "NA", "EA"),
             lk("BO", "NB", "EB"))
    ph = (PhaseSpec(state="GG", duration=30, min_dur=10, max_dur=60),
          PhaseSpec(state="yy", duration=3, min_dur=3, max_dur=3))
    one = (PhaseSpec(state="G", duration=30, min_dur=10, max_dur=60),
           PhaseSpec(state="y", duration=3, min_dur=3, max_dur=3))
    inters = (IntersectionSpec(id="J", phases=ph), IntersectionSpec(id="NA", phases=one),
              IntersectionSpec(id="NB", phases=one))
    movs = (MovementSpec(intersection="J", from_link="X", to_link="A", signals=(0,), lanes=(0,)),
            MovementSpec(intersection="J", from_link="X", to_link="B", signals=(1,), lanes=(0,)),
            MovementSpec(intersection="NA", from_link="A", to_link="AO", signals=(0,), lanes=(0,)),
            MovementSpec(intersection="NB", from_link="B", to_link="BO", signals=(0,), lanes=(0,)))
    dets = tuple(DetectorSpec(id=f"{k}_0_stop", link=k, lane=0, pos=98.0, kind="stopline")
                 for k in ("X", "A", "B"))
    net = compile_network(NetworkSpec(links=links, intersections=inters, movements=movs,
                                      detectors=dets))
    count = np.zeros((12, net.n_detectors))
    for det, c in (("X_0_stop", 10.0), ("A_0_stop", 7.0), ("B_0_stop", 3.0)):
        count[:, net.det_index[det]] = c + (np.arange(12) % 2) * 1e-6  # vary: not stuck
    ests, state = run_estimator(_frame(count), net, EstimatorParams(scan_s=120.0))
    to_a = next(m for m in range(net.n_movements) if net.link_ids[net.mov_to[m]] == "A")
    assert [float(e.turning_ratio[to_a]) for e in ests] == pytest.approx([0.7] * 3, abs=0.005)
    row = int(np.flatnonzero(np.asarray(net.lane_mov_mov) == to_a)[0])
    assert state.row_share[row] == pytest.approx(0.675, abs=0.005)


def test_stop_line_loops_alone_measure_a_cell_by_littles_law() -> None:
    """The T-junction with stop-line loops only. Base program: WJ's two movements are green
    30 s of the 56 s cycle, SJ's 20 s. Webster's uniform delay at half saturation,
    0.5 C (1 - g/C)^2 / (1 - g/C / 2): WJ 28 x 0.4643^2 / 0.7321 = 8.244 s, SJ 14.09 s. WJ
    lets 4 + 4 out per 30 s; its cell (98 m to the stop line at 10 m/s) then holds
    8 / 30 x (9.8 + 8.244) = 4.81 vehicles when the measurement is trusted. The 2 m after
    the stop-line loops hold no 5 m car (``_tail``)."""
    from tests.conftest import build_t_junction

    spec = build_t_junction()
    net = _without(spec, *[d.id for d in spec.detectors if d.kind != "stopline"])
    model = estimator_model(net)
    wj, sj = net.link_index["WJ"], net.link_index["SJ"]
    assert model.signal_delay[wj] == pytest.approx(8.244, abs=1e-3)
    assert model.signal_delay[sj] == pytest.approx(14.087, abs=1e-3)
    count = np.zeros((12, net.n_detectors))
    for det in ("WJ_0_stop", "WJ_1_stop", "SJ_0_stop"):
        count[:, net.det_index[det]] = 4.0 + (np.arange(12) % 2) * 1e-6
    params = EstimatorParams(process_var=0.01, stopline_rel_std=0.001, loop_abs_std=0.01,
                             count_var=0.0, sink_prior_var=0.0, sink_var=0.0, scan_s=120.0)
    ests, _ = run_estimator(_frame(count, np.full_like(count, 10.0)), net, params)
    assert ests[-1].link_vehicles[wj] == pytest.approx(8.0 / 30.0 * (9.8 + 8.244), abs=0.02)


def test_tail_after_the_stop_line_holds_what_a_setback_longer_than_a_car_leaves() -> None:
    """The T-junction's approaches have stop-line loops 2 m before their 100 m end. A loop
    counts a vehicle out once its back has passed it, and the link holds a vehicle while its
    front is on it, so a 2 m setback holds no 5 m car: no tail. With 1 m vehicles, 1 m of
    it does: WJ's and SJ's zones reach past their loops, so at the zones' density (0.1 and
    0.2 veh/m) 0.1 and 0.2; the exits JE and JS have none. Without SJ's zone its tail takes
    the loop's density (0.3 veh/m: 0.3)."""
    from tests.conftest import build_t_junction

    spec = build_t_junction()
    for net, zone_sj, expected in ((compile_network(spec), 0.2, [0.1, 0.2, 0.0, 0.0]),
                                   (_without(spec, "SJ_0_zone"), 0.0, [0.1, 0.3, 0.0, 0.0])):
        idx = [net.link_index[k] for k in ("WJ", "SJ", "JE", "JS")]
        k_out, k_zone = np.zeros(4), np.zeros(4)
        k_out[idx], k_zone[idx] = [0.5, 0.3, 1.0, 1.0], [0.1, zone_sj, 0.0, 0.0]
        model = estimator_model(net)
        assert link_tails(model, k_out, k_zone, 1.0)[idx] == pytest.approx(expected)
        assert link_tails(model, k_out, k_zone, 5.0)[idx] == pytest.approx([0.0] * 4)


def test_noise_is_stated_per_30_s_whatever_the_interval(chain_net) -> None:
    """Without measurements a cell's variance grows by process_var per 30 s: 1 + 3 x 4 = 13
    after 90 s, whether the detectors report every 30 s or every 10 s (nine intervals of
    4/3 each, not nine of 4)."""
    params = CONSERVE.model_copy(update={"process_var": 4.0})
    for every, n in ((30.0, 3), (10.0, 9)):
        p = params.model_copy(update={"interval_s": every})
        zeros = np.zeros((n, chain_net.n_detectors))
        nan = np.full_like(zeros, np.nan)
        _, state = run_estimator(DetectorFrame(np.arange(n) * every, zeros, nan, nan),
                                 chain_net, p)
        np.testing.assert_allclose(state.p00[:2], 13.0, rtol=1e-6)


def test_a_flagged_camera_leaves_its_lane_s_queue_to_the_stop_line_loop() -> None:
    """One approach lane of a 2-lane, 8-vehicle link: a camera over its last 100 m (20 %
    occupancy, 5 m vehicles: 0.04 veh/m x 100 m = 4 queued) and a stop-line loop occupied
    half the interval. Healthy, the camera gives the queue (4). QA-flagged, its imputed value
    came from other lanes, so the stop-line loop's share of the link's vehicles per lane
    gives it (8 / 2 x 0.5 = 2). With the loop flagged too, the imputed camera is all there is."""
    def queue(flags: list[int]) -> float:
        return float(_lane_queues(
            np.array([20.0, 50.0]), np.array([np.nan, np.nan]), np.array([0]), np.array([1]),
            np.array([0]), np.array([0.0, 0.0]), np.array([100.0, 0.0]), np.array([10.0]),
            np.array([2.0]), np.array([8.0]), 5.0, 7.5, 0.5, np.array(flags, dtype=np.uint8))[0])

    assert queue([0, 0]) == pytest.approx(4.0)
    assert queue([STUCK, 0]) == pytest.approx(2.0)
    assert queue([STUCK, STUCK]) == pytest.approx(4.0)
