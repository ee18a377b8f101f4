"""Gap actuation on breakable stop-line loops (``sim.loop_actuated``), on the T-junction:
phase 0 (WJ, loops WJ_0_stop and WJ_1_stop, program green 30 s) and phase 2 (SJ, loop
SJ_0_stop, program green 20 s), 3 s yellows between."""

from __future__ import annotations

import numpy as np

from signalopt.network import LinkSpec, compile_network
from sim.controllers import SimContext
from sim.loop_actuated import LoopActuated
from tests.conftest import RecordingLights, build_t_junction

PASS, STAND = ("v", 5.0, 0.0, 1.0, "car"), ("w", 5.0, 0.0, -1.0, "car")


class _Loops:
    def __init__(self) -> None:
        self.now: dict[str, list[tuple]] = {}

    def getVehicleData(self, loop: str) -> list[tuple]:  # noqa: N802
        return self.now.get(loop, [])


class _Api:
    def __init__(self) -> None:
        self.trafficlight, self.inductionloop = RecordingLights(), _Loops()


def _run(ctrl: LoopActuated, ctx: SimContext, t0: int, t1: int,
         loops: dict[str, list[tuple]] | None = None) -> None:
    ctx.api.inductionloop.now = loops or {}
    for t in range(t0, t1 + 1):
        ctrl.on_step(ctx, float(t))


def _setup(stub: bool = False, **params: float) -> tuple[LoopActuated, SimContext]:
    spec = build_t_junction()
    if stub:  # SJ a 3 m stub: no car waits on its stop-line loop
        links = tuple(LinkSpec(**{**k.model_dump(), "length": 3.0}) if k.id == "SJ" else k
                      for k in spec.links)
        dets = tuple(d.model_copy(update={"pos": 1.0}) if d.link == "SJ" else d
                     for d in spec.detectors if d.link != "SJ" or d.kind == "stopline")
        spec = spec.model_copy(update={"links": links, "detectors": dets})
    ctx = SimContext(api=_Api(), spec=spec, net=compile_network(spec), begin=0.0, interval_s=30.0)
    ctrl = LoopActuated(**params)
    ctrl.setup(ctx)
    return ctrl, ctx


def test_a_green_extends_while_vehicles_cross_then_gaps_out_to_a_waiting_call() -> None:
    ctrl, ctx = _setup(min_green=5.0, max_green=50.0, gap_s=3.0)
    _run(ctrl, ctx, 1, 4, {"SJ_0_stop": [STAND]})  # a call on SJ from t = 1
    _run(ctrl, ctx, 5, 20, {"WJ_0_stop": [PASS], "SJ_0_stop": [STAND]})  # WJ keeps crossing
    assert ctx.api.trafficlight.states[-1] == "GGr" and ctrl._target[0] == 0
    _run(ctrl, ctx, 21, 24, {"SJ_0_stop": [STAND]})  # last crossing at 20: gap 3 s at t = 23
    assert ctx.api.trafficlight.states[-1] == "yyr" and ctrl._target[0] == 2
    _run(ctrl, ctx, 25, 27, {"SJ_0_stop": [STAND]})  # yellow 3 s, then SJ's green
    assert ctx.api.trafficlight.states[-1] == "rrG"


def test_without_a_call_elsewhere_the_green_rests_and_maxes_out_only_to_a_call() -> None:
    ctrl, ctx = _setup(min_green=5.0, max_green=50.0, gap_s=3.0)
    _run(ctrl, ctx, 1, 60)  # nobody anywhere: WJ's green rests
    assert ctx.api.trafficlight.states == ["GGr"]
    ctrl2, ctx2 = _setup(min_green=5.0, max_green=50.0, gap_s=3.0)
    _run(ctrl2, ctx2, 1, 49, {"WJ_0_stop": [PASS], "SJ_0_stop": [STAND]})
    assert ctx2.api.trafficlight.states[-1] == "GGr"
    _run(ctrl2, ctx2, 50, 50, {"WJ_0_stop": [PASS], "SJ_0_stop": [STAND]})  # max green 50 s
    assert ctx2.api.trafficlight.states[-1] == "yyr"


def test_a_call_is_remembered_after_the_vehicle_leaves_the_loop() -> None:
    ctrl, ctx = _setup(min_green=5.0, gap_s=3.0)
    _run(ctrl, ctx, 1, 1, {"SJ_0_stop": [PASS]})  # a right turn on red crossed SJ's loop
    _run(ctrl, ctx, 2, 10)
    assert ctrl._target[0] == 2  # locking memory: SJ still gets its green


def test_a_silent_loop_is_diagnosed_and_its_phase_recalled_for_its_program_split() -> None:
    """SJ's loop reports no data: SJ is called every cycle though its loop shows nobody,
    and its green runs the program's 20 s rather than gapping out at the 5 s minimum."""
    ctrl, ctx = _setup(min_green=5.0, gap_s=3.0)
    ids = list(ctx.net.det_ids)
    counts = {"detector_id": ids, "count": [np.nan if d == "SJ_0_stop" else 0.0 for d in ids]}
    ctrl.on_counts(ctx, counts, 30.0)
    assert ctrl.failed().tolist() == [False, False, True]  # WJ_0, WJ_1, SJ_0 (sorted ids)
    _run(ctrl, ctx, 31, 33)  # WJ gapped out long ago: yellow at 31 for 3 s
    assert ctx.api.trafficlight.states == ["GGr", "yyr"]
    _run(ctrl, ctx, 34, 53, {"WJ_0_stop": [STAND]})  # SJ's green from 34, a call on WJ
    assert ctx.api.trafficlight.states == ["GGr", "yyr", "rrG"]
    _run(ctrl, ctx, 54, 54, {"WJ_0_stop": [STAND]})  # SJ's 20 s program split is over
    assert ctx.api.trafficlight.states[-1] == "rry"
    ctrl.on_counts(ctx, {**counts, "count": [0.0] * len(ids)}, 60.0)  # it reports again
    assert not ctrl.failed().any()


def test_a_loop_stuck_on_or_off_is_diagnosed_in_time() -> None:
    ctrl, ctx = _setup(max_presence_s=100.0, no_activity_s=200.0)
    _run(ctrl, ctx, 1, 99, {"SJ_0_stop": [STAND], "WJ_0_stop": [PASS], "WJ_1_stop": [PASS]})
    assert not ctrl.failed().any()  # SJ occupied 99 s; WJ active throughout
    _run(ctrl, ctx, 100, 100, {"SJ_0_stop": [STAND], "WJ_0_stop": [PASS], "WJ_1_stop": [PASS]})
    assert ctrl.failed().tolist() == [False, False, True]  # stuck on: max presence
    _run(ctrl, ctx, 101, 300, {"WJ_0_stop": [PASS], "SJ_0_stop": [PASS]})  # WJ_1 quiet 200 s
    assert ctrl.failed().tolist() == [False, True, False]  # no activity


def test_a_loop_no_car_can_wait_on_cannot_call_so_its_phase_is_always_called() -> None:
    """SJ's loop sits on a 3 m stub: its vehicles wait before it, unseen. Once WJ gaps out,
    SJ gets its green all the same; with a 100 m approach it would not (no call)."""
    for stub, expected in ((True, 2), (False, 0)):
        ctrl, ctx = _setup(stub=stub, min_green=5.0, gap_s=3.0)
        _run(ctrl, ctx, 1, 10)
        assert ctrl._target[0] == expected


def test_a_quiet_loop_only_calls_its_phase_which_gaps_out_as_usual() -> None:
    """Nothing crosses SJ's loop for 20 s (no activity: maybe a quiet lane): SJ is called,
    but its green gaps out at the 5 s minimum, not the program's 20 s split."""
    ctrl, ctx = _setup(min_green=5.0, gap_s=3.0, no_activity_s=20.0)
    _run(ctrl, ctx, 1, 19, {"WJ_0_stop": [PASS]})
    assert ctrl._target[0] == 0 and not ctrl.failed()[2]
    _run(ctrl, ctx, 20, 20)  # WJ gapped out? not yet (crossed at 19); SJ now diagnosed
    assert ctrl.failed().tolist() == [False, True, True]
    _run(ctrl, ctx, 21, 25, {"WJ_0_stop": [STAND]})
    assert ctx.api.trafficlight.states[-2:] == ["yyr", "rrG"]  # yellow at 22, SJ green at 25
    _run(ctrl, ctx, 26, 30, {"WJ_0_stop": [STAND]})  # SJ's minimum runs to 30: then WJ
    assert ctx.api.trafficlight.states[-1] == "rry"
