"""Detector QA: every flag on a synthetic fault, and imputation from healthy neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signalopt.config import QAParams
from signalopt.detectors import (
    CHATTER,
    IMPLAUSIBLE,
    INCONSISTENT,
    NO_DATA,
    SRC_HISTORY,
    SRC_MEASURED,
    SRC_PARTNER,
    SRC_SIBLINGS,
    STUCK,
    DetectorFrame,
    _group_share,
    _impute,
    build_frame,
    detector_model,
    health_table,
    run_qa,
)
from signalopt.errors import CountsError
from signalopt.io.counts import load_counts

T = 30.0


def _frame(net, count, occ=None, speed=None) -> DetectorFrame:
    count = np.asarray(count, dtype=float)
    occ = np.full_like(count, 5.0) if occ is None else np.asarray(occ, dtype=float)
    speed = np.full_like(count, 10.0) if speed is None else np.asarray(speed, dtype=float)
    speed = np.where(count > 0, speed, np.nan)
    return DetectorFrame(np.arange(count.shape[0]) * T, count, occ, speed)


def _varying(n_t: int, n_det: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    count = rng.integers(4, 9, size=(n_t, n_det)).astype(float)
    occ = count * 100 * 5 / (10 * T) + rng.random((n_t, n_det))
    return count, occ


def test_build_frame_pivots_and_fills_gaps(chain_net) -> None:
    rows = [{"detector_id": "L1_0_in", "interval_start": 60.0, "count": 3, "occupancy": 4.0,
             "speed": 9.0},
            {"detector_id": "L0_0_in", "interval_start": 0.0, "count": 2, "occupancy": 1.0,
             "speed": 9.0}]
    fr = build_frame(load_counts(rows, chain_net), chain_net, interval_s=T)
    assert list(fr.times) == [0.0, 30.0, 60.0]
    assert fr.count[0, 0] == 2 and fr.count[2, 1] == 3
    assert np.isnan(fr.count[1]).all()  # silent interval appears, all missing


def test_build_frame_off_grid_raises(chain_net) -> None:
    df = pd.DataFrame({"detector_id": ["L0_0_in", "L0_0_in"], "interval_start": [0.0, 45.0],
                       "count": [1, 1], "occupancy": [1.0, 1.0], "speed": [9.0, 9.0]})
    with pytest.raises(CountsError, match="45"):
        build_frame(df, chain_net, interval_s=T)


def test_healthy_data_not_flagged(t_junction_net) -> None:
    count, occ = _varying(20, t_junction_net.n_detectors)
    res, _ = run_qa(_frame(t_junction_net, count, occ), detector_model(t_junction_net),
                    interval_s=T)
    assert res.flags.sum() == 0
    assert (res.source == SRC_MEASURED).all()
    np.testing.assert_array_equal(res.count, count)


def test_no_data_imputed_from_partner_loop(t_junction_net) -> None:
    net = t_junction_net
    count, occ = _varying(5, net.n_detectors)
    d_in, d_stop = net.det_index["WJ_0_in"], net.det_index["WJ_0_stop"]
    count[3, d_in] = np.nan
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T)
    assert res.flags[3, d_in] == NO_DATA
    assert res.source[3, d_in] == SRC_PARTNER
    assert res.count[3, d_in] == count[3, d_stop]
    assert res.count_var[3, d_in] > 0 and res.count_var[2, d_in] == 0


def test_stuck_value_flagged_after_run(t_junction_net) -> None:
    net = t_junction_net
    count, occ = _varying(10, net.n_detectors)
    d = net.det_index["JE_0_in"]
    count[2:, d], occ[2:, d] = 7.0, 12.3
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T,
                    params=QAParams(stuck_intervals=4, stuck_min_s=0.0))
    stuck = (res.flags[:, d] & STUCK) > 0
    assert not stuck[:4].any() and stuck[5:].all()  # 4 identical values: flagged from the 4th
    assert res.source[9, d] == SRC_HISTORY  # no partner, no sibling: own history


def test_stuck_needs_the_same_time_whatever_the_interval(t_junction_net) -> None:
    """A queue standing in a camera's view through a 60 s red repeats the same reading (3
    vehicles, 22 %) twelve times in 5 s intervals: not stuck. The same reading for 180 s
    is, as it is in six 30 s intervals."""
    net = t_junction_net
    d = net.det_index["SJ_0_zone"]
    for every, n_same, expect in ((5.0, 12, False), (5.0, 36, True), (30.0, 6, True)):
        count, occ = _varying(n_same + 2, net.n_detectors)
        count[2:, d], occ[2:, d] = 3.0, 22.0
        frame = DetectorFrame(np.arange(n_same + 2) * every, count, occ, np.full_like(count, 0.5))
        res, _ = run_qa(frame, detector_model(net), interval_s=every)
        assert res.flags[-1, d] == (STUCK if expect else 0), (every, n_same)


def test_entry_loop_far_from_its_stop_line_keeps_its_own_occupancy(t_junction_net) -> None:
    """WJ's entry loop (10 m) is 88 m upstream of its stop-line loop, beyond the queue a
    stop line shares (QUEUE_REACH_M). It read 4 vehicles at 8 % (2 % per vehicle) while the
    stop line, with its standing queue, read 6 at 50 %. Silent, it takes the stop line's 6
    vehicles at its own 2 % each: 12 %, not 50 % (which filled a 160 m unseen stretch of a
    grid4x4 link at queue density: 3.6 vehicles against 0.9)."""
    net = t_junction_net
    count, occ = _varying(4, net.n_detectors)
    d_in, d_stop = net.det_index["WJ_0_in"], net.det_index["WJ_0_stop"]
    count[:, d_in], occ[:, d_in] = 4.0, 8.0
    count[:, d_stop], occ[:, d_stop] = 6.0, 50.0
    count[3, d_in] = occ[3, d_in] = np.nan
    model = detector_model(net)
    assert not model.near[d_in]
    res, _ = run_qa(_frame(net, count, occ), model, interval_s=T)
    assert res.source[3, d_in] == SRC_PARTNER
    assert (res.count[3, d_in], res.occupancy[3, d_in]) == pytest.approx((6.0, 12.0))


def test_stuck_at_zero_while_partner_counts(t_junction_net) -> None:
    """SJ's stop-line loop counts nobody while the entry loop on its lane counts 4-8 cars an
    interval. The 88 m between them hold 88 / 7.5 = 11.7 cars in a queue, so once the entry
    loop has counted ``stuck_zero_vehicles`` (10) more than that, the stop line is stuck."""
    net = t_junction_net
    count, occ = _varying(10, net.n_detectors)
    d = net.det_index["SJ_0_stop"]
    count[:, d], occ[:, d] = 0.0, 0.0
    model = detector_model(net)
    assert model.holds[d] == pytest.approx(88.0 / 7.5)
    res, _ = run_qa(_frame(net, count, occ), model, interval_s=T)
    seen = np.cumsum(count[:, net.det_index["SJ_0_in"]])
    assert ((res.flags[:, d] & STUCK) > 0).tolist() == (seen >= 10 + 88 / 7.5).tolist()
    assert (seen >= 10 + 88 / 7.5).sum() >= 5  # flagged from the fourth or fifth interval on


def test_a_queue_filling_a_long_link_is_not_a_stuck_stop_line(t_junction_net) -> None:
    """Spillback on arterial4x4: vehicles keep entering SJ (3 an interval) while none leave.
    Until more have entered than the 88 m between the loops can hold (11.7 + 10) the silent
    stop line is not called stuck (it was after 10: 3.6 % of a healthy hour flagged)."""
    net = t_junction_net
    count, occ = _varying(8, net.n_detectors)
    d, p = net.det_index["SJ_0_stop"], net.det_index["SJ_0_in"]
    count[:, p], count[:, d], occ[:, d] = 3.0, 0.0, 100.0
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T)
    assert not (res.flags[:7, d] & STUCK).any()  # 21 cars: a queue, not a fault
    assert res.flags[7, d] & STUCK  # 24 > 21.7


def test_stuck_at_zero_evidence_adds_up_in_light_traffic(t_junction_net) -> None:
    """Light traffic: the entry loop counts 1 car an interval, never 2. The evidence against
    the silent stop line adds up over quiet intervals (flagged at the 22nd car: 10 beyond the
    11.7 the 88 m between the loops hold) and starts again when it counts a car (interval 5);
    its suspect zeros stay out of its history."""
    net = t_junction_net
    count, occ = _varying(30, net.n_detectors)
    d, p = net.det_index["SJ_0_stop"], net.det_index["SJ_0_in"]
    count[:, p] = 1.0
    count[:, d] = 0.0
    count[5, d] = 1.0
    occ[:, d] = np.where(count[:, d] > 0, 3.0, 0.0)
    res, state = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T)
    flagged = ((res.flags[:, d] & STUCK) > 0).tolist()
    assert flagged == [False] * 27 + [True] * 3  # 22 cars (10 + 11.7 held) after the restart
    assert state.hist_count[d] == pytest.approx(1.0, rel=0.2)  # the one car, not decayed


def test_blind_camera_flagged_while_its_stop_loop_counts(t_junction_net) -> None:
    """SJ's camera zone covers the stop-line loop of its lane: every car that loop counts
    drove through the zone, so a zone counting nobody while the loop counts 4 or more
    (``stuck_zero_zone_vehicles``; here 4-8 in the first interval) is stuck; the zone is then
    imputed, not trusted."""
    net = t_junction_net
    count, occ = _varying(6, net.n_detectors)
    d = net.det_index["SJ_0_zone"]
    count[:, d], occ[:, d] = 0.0, 0.0
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T)
    assert ((res.flags[:, d] & STUCK) > 0).tolist() == [True] * 6


def test_blind_camera_whose_stop_loop_is_broken_flagged_by_its_entry_loop(t_junction_net) -> None:
    """SJ's camera counts nobody and the stop-line loop inside its view is silent, so that
    loop cannot show it stuck. Its lane's entry loop counts 3 cars an interval: once it has
    counted more than the 40 m between it and the view hold (5.3 cars) plus
    ``stuck_zero_vehicles`` (10), the camera is stuck. (A broken camera with a broken stop
    line went unflagged for the rest of a grid4x4 run with 30 % of detectors broken.)"""
    net = t_junction_net
    count, occ = _varying(8, net.n_detectors)
    d, s, e = (net.det_index[f"SJ_0_{k}"] for k in ("zone", "stop", "in"))
    count[:, e], count[:, d], occ[:, d] = 3.0, 0.0, 0.0
    count[:, s], occ[:, s] = np.nan, np.nan
    model = detector_model(net)
    assert model.feeds[d] == e and model.feeds_holds[d] == pytest.approx(40.0 / 7.5)
    res, _ = run_qa(_frame(net, count, occ), model, interval_s=T)
    assert ((res.flags[:, d] & STUCK) > 0).tolist() == [False] * 5 + [True] * 3  # 18 > 15.3


def test_chatter_against_partner(t_junction_net) -> None:
    """21 at the entry loop against 2 at the stop line: more than 2.5 x 2 + 3, plus the
    11.7 cars the 88 m between them could have stored."""
    net = t_junction_net
    count, occ = _varying(3, net.n_detectors)
    d = net.det_index["WJ_1_in"]
    count[1, d], count[1, net.det_index["WJ_1_stop"]] = 21.0, 2.0  # 21 vs 2 at the stop line
    occ[1, d] = 21 * 100 * 5 / (10 * T)
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T)
    assert res.flags[1, d] & CHATTER
    assert res.count[1, d] == count[1, net.det_index["WJ_1_stop"]]


def test_inconsistent_flow_occupancy(t_junction_net) -> None:
    net = t_junction_net
    count, occ = _varying(3, net.n_detectors)
    d = net.det_index["WJ_1_stop"]
    occ[1, d] = 0.0  # 4-8 vehicles crossed a loop that was never occupied
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T)
    assert res.flags[1, d] & INCONSISTENT


def test_implausible_flow(t_junction_net) -> None:
    net = t_junction_net
    count, occ = _varying(3, net.n_detectors)
    d = net.det_index["JS_0_in"]
    count[1, d], occ[1, d] = 200.0, 80.0  # 24,000 veh/h on one lane
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T)
    assert res.flags[1, d] & IMPLAUSIBLE


def _silent_sibling_zone(net, occ0: float, occ1: float, now0: float, params: QAParams) -> float:
    """Zones WJ_0 and WJ_1 run at occupancy ``occ0`` and ``occ1`` for 11 intervals; then WJ_1
    goes silent while WJ_0 reads ``now0``: WJ_1's imputed occupancy (from its sibling)."""
    count, occ = _varying(12, net.n_detectors)
    z0, z1 = net.det_index["WJ_0_zone"], net.det_index["WJ_1_zone"]
    occ[:, z0], occ[:, z1] = occ0, occ1
    occ[:, z0] += np.arange(12) * 1e-3  # not stuck
    occ[:, z1] += np.arange(12) * 1e-3
    occ[11, z0], count[11, z1] = now0, np.nan
    res, _ = run_qa(_frame(net, count, occ), detector_model(net), interval_s=T, params=params)
    assert res.source[11, z1] == SRC_SIBLINGS
    return float(res.occupancy[11, z1])


def test_sibling_imputation_uses_historical_share(t_junction_net) -> None:
    """Zones at 30 % and 10 %; the second goes silent while the first reads 60 %. Without a
    prior its imputation is 60 * 10 / 30 = 20 %; with the default 4 % added to each history,
    60 * 14 / 34 = 24.7 %."""
    no_prior = QAParams(share_prior_occupancy=0.0)
    assert _silent_sibling_zone(t_junction_net, 30.0, 10.0, 60.0, no_prior) == pytest.approx(
        20.0, rel=0.01)
    assert _silent_sibling_zone(t_junction_net, 30.0, 10.0, 60.0, QAParams()) == pytest.approx(
        60.0 * 14.0 / 34.0, rel=0.01)


def test_a_sibling_that_carried_almost_nobody_does_not_multiply_its_next_car(
        t_junction_net) -> None:
    """A sibling zone at 0.05 % (its lane nearly unused) next to one at 10 %: when the busy
    one goes silent and the quiet one reads 5 %, the pure history ratio imputes
    5 * 10 / 0.05 = 1000 % (pilot128: sibling-imputed loops counted up to 2,295 vehicles in
    30 s, 20 % high on average). With the prior it is 5 * 14 / 4.05 = 17.3 %."""
    no_prior = QAParams(share_prior_occupancy=0.0)
    assert _silent_sibling_zone(t_junction_net, 0.05, 10.0, 5.0, no_prior) == pytest.approx(100.0)
    assert _silent_sibling_zone(t_junction_net, 0.05, 10.0, 5.0, QAParams()) == pytest.approx(
        5.0 * 14.0 / 4.05, rel=0.02)


def test_sibling_count_share_starts_from_the_prior() -> None:
    """A loop with count history 3 per interval, its sibling 0.05; the sibling counts 2 now.
    Pure ratio: 2 * 3 / 0.05 = 120 vehicles in one interval; prior 2: 2 * 5 / 2.05 = 4.9."""
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    hist = np.array([3.0, 0.05])
    ok, values = np.array([False, True]), np.array([np.nan, 2.0])
    assert _group_share(0, 0, i64(0, 2), i64(0, 1), ok, values, hist, 0.0) == pytest.approx(120.0)
    assert _group_share(0, 0, i64(0, 2), i64(0, 1), ok, values, hist, 2.0) == pytest.approx(
        2.0 * 5.0 / 2.05)


def test_siblings_that_never_carry_anyone_say_nothing() -> None:
    """A two-lane link whose lane 0 nobody uses (its entry loop's history is 0) and lane 1
    carries 4 per interval. Lane 1's loop goes silent: scaling lane 0's count (0) by the
    lanes' history ratio is undefined, and "equal shares" imputed 0, draining the link
    (an Ingolstadt21 road read 0 vehicles against 2.8). It falls back to its own history."""
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    f64 = lambda *x: np.array(x, dtype=np.float64)  # noqa: E731
    out = _impute(f64(0.0, np.nan), f64(0.0, np.nan), f64(np.nan, np.nan), f64(np.nan, np.nan),
                  i64(0, 0), i64(-1, -1), np.zeros(2, dtype=np.bool_), i64(0, 0), i64(0, 2),
                  i64(0, 1), np.array([0, 1], np.uint8), np.array([True, False]), i64(0, 0),
                  i64(0, 0), f64(0.0, 4.0), f64(0.0, 8.0), 0.5, 0.0, 0.0)
    assert out[5][1] == SRC_HISTORY and out[1][1] == pytest.approx(4.0)


def test_failed_detector_history_follows_its_kind() -> None:
    """Two entry loops with histories 4 and 6; loop 1 goes silent while loop 0 reads 14.
    With EWMA weight 0.5 loop 0's history moves 4 -> 9 (x 2.25), the only healthy one of its
    kind, so loop 1's frozen history follows: 6 x 2.25 = 13.5 (not 6, its value at failure)."""
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    f64 = lambda *x: np.array(x, dtype=np.float64)  # noqa: E731
    ok = np.array([True, False])
    out = _impute(f64(14.0, np.nan), f64(10.0, np.nan), f64(10.0, np.nan), f64(np.nan, np.nan),
                  i64(0, 0),
                  i64(-1, -1), np.zeros(2, dtype=np.bool_), i64(0, 1), i64(0, 1, 2), i64(0, 1),
                  np.array([0, 1], np.uint8),
                  ok, i64(0, 0), i64(0, 0), f64(4.0, 6.0), f64(5.0, 5.0), 0.5, 0.0, 0.0)
    assert out[5][1] == SRC_HISTORY and out[1][1] == pytest.approx(6.0)  # imputed from history
    assert out[10][0] == pytest.approx(9.0)
    assert out[10][1] == pytest.approx(13.5)
    assert out[11][1] == pytest.approx(5.0 * 7.5 / 5.0)  # occupancy history: 5 -> 7.5


def test_failed_detector_occupancy_history_stays_below_100() -> None:
    """Loop 1 (occupancy history 80 %) goes silent while loop 0's history doubles (5 -> 10 %
    with EWMA weight 0.5 and a reading of 15 %): following its kind's trend would take loop 1
    to 160 % (RESCO runs imputed stop lines at up to 1,174 %); it stops at 100 %."""
    i64 = lambda *x: np.array(x, dtype=np.int64)  # noqa: E731
    f64 = lambda *x: np.array(x, dtype=np.float64)  # noqa: E731
    out = _impute(f64(14.0, np.nan), f64(15.0, np.nan), f64(10.0, np.nan), f64(np.nan, np.nan),
                  i64(0, 0), i64(-1, -1), np.zeros(2, dtype=np.bool_), i64(0, 1), i64(0, 1, 2),
                  i64(0, 1), np.array([0, 1], np.uint8), np.array([True, False]), i64(0, 0),
                  i64(0, 0), f64(4.0, 6.0), f64(5.0, 80.0), 0.5, 0.0, 0.0)
    assert out[11][0] == pytest.approx(10.0)
    assert out[11][1] == pytest.approx(100.0)


def test_health_table_ranks_detectors_by_how_often_flagged(t_junction_net) -> None:
    """Four scans: SJ's stop line silent in the last two (50 %, flagged now), WJ's left entry
    loop stuck and chattering in the first (25 % each, not now); the rest never flagged."""
    net = t_junction_net
    flags = np.zeros((4, net.n_detectors), dtype=np.uint8)
    sj, wj = net.det_index["SJ_0_stop"], net.det_index["WJ_1_in"]
    flags[2:, sj] = NO_DATA
    flags[0, wj] = STUCK | CHATTER
    t = np.array([120.0, 240.0, 360.0, 480.0])
    table = health_table(flags, t, net)
    assert table["detector_id"].tolist()[:2] == ["SJ_0_stop", "WJ_1_in"]
    top, second = table.iloc[0], table.iloc[1]
    assert (top["kind"], top["link"], top["lane"]) == ("stopline", "SJ", 0)
    assert top["flagged_%"] == top["no_data_%"] == 50.0
    assert (top["first_t"], top["last_t"], top["flagged_now"]) == (360.0, 480.0, True)
    assert second["stuck_%"] == second["chatter_%"] == second["flagged_%"] == 25.0
    assert (second["first_t"], second["last_t"], second["flagged_now"]) == (120.0, 120.0, False)
    rest = table.iloc[2:]
    assert (rest["flagged_%"] == 0).all() and rest["first_t"].isna().all()
    with pytest.raises(ValueError, match="4 scans of flags but 3 scan times"):
        health_table(flags, t[:3], net)
