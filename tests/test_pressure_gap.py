"""The pressure rule without cameras: a green runs while its stop-line loops still see vehicles
cross (a field controller's gap timer), then goes to the phase with most counted waiting among
those with a vehicle standing on their stop-line loops (a call)."""

from __future__ import annotations

import numpy as np
import pytest

from signalopt.network import IntersectionSpec, PhaseSpec, compile_network
from sim.controllers import MaxPressure, SimContext, permissive_share
from sim.loop_reader import LoopReader
from tests.conftest import RecordingLights, build_t_junction


class _Api:
    def __init__(self) -> None:
        self.trafficlight = RecordingLights()


def _controller(gap_s: float) -> tuple[MaxPressure, SimContext]:
    spec = build_t_junction()
    ctx = SimContext(api=_Api(), spec=spec, net=compile_network(spec), begin=0.0, interval_s=30.0)
    rule = MaxPressure(step_s=2.0, min_green=5.0, gap_s=gap_s)
    rule.setup(ctx)  # phase 0 (WJ's green) runs from t = 0
    return rule, ctx


# movement pressures: WJ->JE, WJ->JS (phase 0), SJ->JE (phase 2); a vehicle stands on each
# phase's stop-line loops (the yellows have none)
SJ_WAITS = np.array([1.0, 0.0, 4.0])
CALLS = np.array([1.0, np.inf, 1.0, np.inf])


@pytest.mark.parametrize(("idle_s", "switches"), [(1.0, False), (3.0, True)])
def test_a_green_runs_while_its_stop_line_loops_see_vehicles_cross(idle_s: float,
                                                                   switches: bool) -> None:
    """SJ has more waiting (4 vs 1), yet phase 0 keeps its green while a vehicle crossed its
    stop line 1 s ago (gap 3 s); 3 s after the last one it hands the green to SJ (yellow
    first)."""
    rule, ctx = _controller(gap_s=3.0)
    rule._decide(ctx, 0, 10.0, SJ_WAITS, (np.array([idle_s, np.inf, 0.0, np.inf]), CALLS))
    assert (rule._target[0] == 2) is switches
    assert ctx.api.trafficlight.states[-1] == ("yyr" if switches else "GGr")


def test_a_held_green_is_looked_at_again_each_second() -> None:
    """A gap timer counts seconds: a green held because a car crossed 1 s ago is looked at
    again 1 s later, not after the rule's 2 s step (which stretched a 3 s gap to 3-5 s)."""
    rule, ctx = _controller(gap_s=3.0)
    rule._decide(ctx, 0, 10.0, SJ_WAITS, (np.array([1.0, np.inf, 0.0, np.inf]), CALLS))
    assert rule._target[0] == 0
    assert rule._next_decision[0] == 11.0


@pytest.mark.parametrize(("calls", "field", "first_decision"), [
    (CALLS, True, 105.0), (np.array([1.0, np.inf, np.nan, np.inf]), True, 120.0),
    (CALLS, False, 120.0)])
def test_a_green_on_the_gap_timer_starts_with_the_minimum_green_not_the_plan_s_floor(
        calls: np.ndarray, field: bool, first_decision: float) -> None:
    """SJ's green starts at t = 100 under a plan whose floor for it is 20 s. On the gap timer
    of a site without cameras (``timed_min_green``) it runs the rule's 5 s minimum, then as
    long as its loops see cars cross; with its loop flagged (no call known: NaN) the pressure
    ends it, and the plan's floor stands, as it does with cameras."""
    rule, ctx = _controller(gap_s=3.0)
    ctx.api.lanearea = _Reading({})
    rule.timed_min_green = field
    rule.min_g[2] = 20.0
    rule.phase_loops = lambda: (np.full(4, np.inf), calls)
    rule._target[0], rule._next_decision[0] = 2, 100.0  # SJ's clearance has just ended
    rule.on_step(ctx, 100.0)
    assert rule._cur[0] == 2 and ctx.api.trafficlight.states[-1] == "rrG"
    assert rule._next_decision[0] == first_decision


def test_a_gapped_out_green_stays_when_no_other_phase_has_a_call() -> None:
    """Phase 0 has gapped out, but no vehicle stands on SJ's stop-line loop: the green stays."""
    rule, ctx = _controller(gap_s=3.0)
    rule._decide(ctx, 0, 10.0, np.array([0.0, 0.0, 0.0]),
                 (np.array([9.0, np.inf, 9.0, np.inf]), np.array([0.0, np.inf, 0.0, np.inf])))
    assert rule._target[0] == 0
    assert rule._next_decision[0] == 12.0


def test_a_call_takes_a_gapped_out_green_even_when_the_count_says_nobody_waits() -> None:
    """Phase 0 has gapped out; the loop count of SJ reads none waiting (pressure 0), but a
    vehicle stands on its stop-line loop: the call wins, the green goes to SJ."""
    rule, ctx = _controller(gap_s=3.0)
    rule._decide(ctx, 0, 10.0, np.array([1.0, 0.0, 0.0]),
                 (np.array([9.0, np.inf, 9.0, np.inf]), CALLS))
    assert rule._target[0] == 2


def test_a_gapped_out_green_goes_only_to_a_phase_with_a_call() -> None:
    """SJ is counted 4 waiting, but no vehicle stands on its stop-line loop (the count is off,
    or they turned away): the gapped-out green stays; at its maximum it goes all the same."""
    rule, ctx = _controller(gap_s=3.0)
    no_call = (np.array([9.0, np.inf, 9.0, np.inf]), np.array([1.0, np.inf, 0.0, np.inf]))
    rule._decide(ctx, 0, 10.0, SJ_WAITS, no_call)
    assert rule._target[0] == 0
    rule.max_g[0] = 10.0
    rule._decide(ctx, 0, 12.0, SJ_WAITS, no_call)
    assert rule._target[0] == 2


@pytest.mark.parametrize(("sj_pressure", "switches"), [(0.0, False), (4.0, True)])
def test_a_phase_whose_loops_qa_flagged_is_called_only_by_a_counted_queue(
        sj_pressure: float, switches: bool) -> None:
    """Phase 0 has gapped out; SJ's stop-line loop is flagged (no call known: NaN). Counted
    nobody waiting there, the green stays; counted 4, the green goes to SJ."""
    rule, ctx = _controller(gap_s=3.0)
    unknown = (np.array([9.0, np.inf, np.inf, np.inf]), np.array([0.0, np.inf, np.nan, np.inf]))
    rule._decide(ctx, 0, 10.0, np.array([0.0, 0.0, sj_pressure]), unknown)
    assert (rule._target[0] == 2) is switches


def test_without_a_gap_timer_the_counted_pressure_alone_decides() -> None:
    """gap_s = 0 (cameras): SJ's larger pressure takes the green at once."""
    rule, ctx = _controller(gap_s=0.0)
    rule._decide(ctx, 0, 10.0, SJ_WAITS, None)
    assert rule._target[0] == 2


def test_a_green_without_stop_line_loops_is_left_to_the_pressure() -> None:
    """Entry loops only: no phase has a stop-line loop, so no gap timer and no call. The
    green is not handed over for want of a gap; the larger pressure decides as before."""
    rule, ctx = _controller(gap_s=3.0)
    blind = (np.full(4, np.inf), np.full(4, np.inf))
    rule._decide(ctx, 0, 10.0, np.array([3.0, 0.0, 1.0]), blind)
    assert rule._target[0] == 0
    rule._decide(ctx, 0, 10.0, SJ_WAITS, blind)
    assert rule._target[0] == 2


def test_an_intersection_left_out_of_the_rule_is_never_switched_by_it() -> None:
    """With ``active`` False at J (a stub approach under stop-line loops only), the rule
    neither sets J's lights nor ever decides there: the plan applier runs J instead."""
    spec = build_t_junction()
    ctx = SimContext(api=_Api(), spec=spec, net=compile_network(spec), begin=0.0, interval_s=30.0)
    rule = MaxPressure(step_s=2.0, min_green=5.0, gap_s=3.0)
    rule.active = np.array([False])
    rule.setup(ctx)
    for t in range(0, 200, 2):
        rule.on_step(ctx, float(t))
    assert ctx.api.trafficlight.states == []


def test_a_camera_qa_flagged_reads_the_scan_s_estimate_instead() -> None:
    """WJ's lane-0 zone and SJ's zone were flagged in the last scan: they stand in with the
    estimate's queue on their lanes (3 and 5 vehicles); the healthy zone reads itself (NaN)."""
    from types import SimpleNamespace

    from sim.controllers import zone_stand_in

    spec = build_t_junction()
    net = compile_network(spec)
    zones = [d for d in spec.detectors if d.kind == "zone"]
    flags = np.zeros(net.n_detectors, dtype=np.int64)
    flags[[net.det_index["WJ_0_zone"], net.det_index["SJ_0_zone"]]] = 1
    wj, sj = net.link_index["WJ"], net.link_index["SJ"]
    estimate = SimpleNamespace(detector_flags=flags, lane_link=np.array([wj, wj, sj]),
                               lane_lane=np.array([0, 1, 0]), lane_queue=np.array([3.0, 4.0, 5.0]),
                               link_vehicles=np.zeros(net.n_links))
    got = zone_stand_in(net, zones, estimate)
    by_id = dict(zip([z.id for z in zones], got.tolist(), strict=True))
    assert by_id["WJ_0_zone"] == 3.0 and by_id["SJ_0_zone"] == 5.0
    assert np.isnan(by_id["WJ_1_zone"])


class _Reading:
    """Zones' vehicle counts, and loops' vehicle data: one standing (leave time -1) and one
    crossing (leave time 1.0, maybe already past the camera's end) per count."""

    def __init__(self, values: dict[str, int]) -> None:
        self.values = values

    def getLastStepVehicleNumber(self, det: str) -> int:  # noqa: N802  (TraCI's name)
        return self.values.get(det, 0)

    def getVehicleData(self, det: str) -> list[tuple]:  # noqa: N802  (TraCI's name)
        n = self.values.get(det, 0)
        return [("w", 5.0, 0.0, -1.0, "car")] * n + [("v", 5.0, 0.0, 1.0, "car")] * n


@pytest.mark.parametrize(("floor", "flagged", "sj"), [(True, False, 2.0), (True, True, 0.0),
                                                      (False, False, 0.0)])
def test_a_camera_never_counts_fewer_than_the_stop_line_loop_in_its_view(
        floor: bool, flagged: bool, sj: float) -> None:
    """Every camera reads 0 (stuck at zero, say) while two vehicles stand on SJ's stop-line
    loop, inside SJ's camera view (two more crossing it do not count: they may be past the
    camera's end): signalopt's rule counts SJ's movement at 2 at least. A loop QA flagged
    sets no floor, and classic max-pressure reads its cameras alone."""
    spec = build_t_junction()
    api = _Api()
    api.lanearea = _Reading({})
    api.inductionloop = _Reading({"SJ_0_stop": 2})
    ctx = SimContext(api=api, spec=spec, net=compile_network(spec), begin=0.0, interval_s=30.0)
    rule = MaxPressure(step_s=2.0, min_green=5.0)
    rule.loop_floor = floor
    net = ctx.net
    rule.stop_reader = LoopReader(net, [net.det_index[d.id] for d in spec.detectors if d.kind == "stopline"])
    rule.stop_reader.step(api)  # the owner (signalopt) reads the loops every step
    rule.setup(ctx)
    if flagged:
        rule.zone_loop_flagged = np.array([d.link == "SJ" for d in rule.zones])
    np.testing.assert_allclose(rule._pressures(ctx), [0.0, 0.0, sj])


def test_a_camera_loop_floor_without_a_loop_reader_is_refused() -> None:
    spec = build_t_junction()
    ctx = SimContext(api=_Api(), spec=spec, net=compile_network(spec), begin=0.0, interval_s=30.0)
    rule = MaxPressure(step_s=2.0, min_green=5.0)
    rule.loop_floor = True
    with pytest.raises(ValueError, match="stop_reader"):
        rule.setup(ctx)


def test_the_gap_timer_runs_only_where_it_is_switched_on() -> None:
    """``gap_at`` picks the junctions whose greens run on the gap timer (signalopt: those
    near capacity). Switched off, a green still discharging (a car crossed 1 s ago) goes to
    SJ's higher pressure at once; switched on, it holds."""
    for on, switches in ((False, True), (True, False)):
        rule, ctx = _controller(gap_s=3.0)
        rule.gap_at = np.array([on])
        rule._decide(ctx, 0, 10.0, SJ_WAITS, (np.array([1.0, np.inf, 0.0, np.inf]), CALLS))
        assert (rule._target[0] == 2) is switches


def test_the_permissive_share_counts_the_yielding_signals_of_green_phases() -> None:
    """Green phases only (a yellow's ``g``s are clearance), each signal they give counted: 1 of
    the 4 given is permissive. A program without a green gives none."""
    def phase(state: str) -> PhaseSpec:
        return PhaseSpec(state=state, duration=10.0, min_dur=10.0, max_dur=10.0)

    inters = [
        IntersectionSpec(id="a", phases=(phase("GGgr"), phase("yygr"), phase("rrrG"))),
        IntersectionSpec(id="b", phases=(phase("gggg"), phase("yyyy"))),
        IntersectionSpec(id="c", phases=(phase("rrrr"),)),
    ]
    np.testing.assert_allclose(permissive_share(inters), [0.25, 1.0, 0.0])
