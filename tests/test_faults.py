"""Broken detectors in closed loop (``sim.faults``): who breaks, when, and what readers see."""

from __future__ import annotations

import math

from sim.faults import SILENT, STUCK, Fault, FaultyApi, pick_faults


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def getTime(self) -> float:  # noqa: N802  (TraCI's name)
        return self.t


class _Loops:
    """Each getter returns the time, so a frozen value shows when it froze."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock

    def getIDList(self) -> list[str]:  # noqa: N802
        return ["s", "q", "ok", "late"]

    def getLastIntervalVehicleNumber(self, det: str) -> int:  # noqa: N802
        return int(self.clock.t)

    def getLastIntervalOccupancy(self, det: str) -> float:  # noqa: N802
        return self.clock.t / 100

    def getLastIntervalMeanSpeed(self, det: str) -> float:  # noqa: N802
        return self.clock.t / 10

    def getLastStepVehicleNumber(self, det: str) -> int:  # noqa: N802
        return int(self.clock.t) % 7

    def getVehicleData(self, det: str) -> list[tuple]:  # noqa: N802
        # one vehicle passed (leave >= 0), one stands on the loop (leave -1)
        return [("a", 5.0, self.clock.t - 2, self.clock.t - 1, "car"),
                ("b", 5.0, self.clock.t - 1, -1.0, "car")]


class _Api:
    def __init__(self) -> None:
        self.simulation = _Clock()
        self.inductionloop = _Loops(self.simulation)
        self.lanearea = _Loops(self.simulation)
        self.edge = "edges"


def test_a_broken_detector_works_until_its_onset_then_sticks_or_goes_silent() -> None:
    raw = _Api()
    api = FaultyApi(raw, {"s": Fault(10.0, STUCK), "q": Fault(10.0, SILENT)})
    e1 = api.inductionloop
    raw.simulation.t = 5.0
    assert [e1.getLastIntervalVehicleNumber(d) for d in ("s", "q", "ok")] == [5, 5, 5]
    raw.simulation.t = 12.0
    assert e1.getLastIntervalVehicleNumber("s") == 12  # what it showed when it broke...
    raw.simulation.t = 40.0
    assert e1.getLastIntervalVehicleNumber("s") == 12  # ...forever
    assert math.isnan(e1.getLastIntervalVehicleNumber("q"))  # silent: no data
    assert e1.getLastIntervalVehicleNumber("ok") == 40
    assert e1.getVehicleData("q") == ()
    # stuck, second by second: the vehicle standing on it then never leaves, none passes
    assert e1.getVehicleData("s") == (("b", 5.0, 39.0, -1.0, "car"),)
    raw.simulation.t = 50.0
    assert e1.getVehicleData("s") == (("b", 5.0, 39.0, -1.0, "car"),)
    assert api.edge == "edges"  # everything else is SUMO's own


def test_a_stuck_detector_freezes_in_the_step_it_breaks_whenever_it_is_first_read() -> None:
    raw = _Api()
    api = FaultyApi(raw, {"late": Fault(10.0, STUCK)})
    for t in (9.0, 10.0, 11.0, 12.0):  # the harness steps; nobody reads "late" yet
        raw.simulation.t = t
        api.on_step(t)
    raw.simulation.t = 90.0
    e1, e2 = api.inductionloop, api.lanearea
    assert e1.getLastIntervalVehicleNumber("late") == 10  # as it was at its onset, t = 10
    assert e1.getLastIntervalOccupancy("late") == 0.1
    assert e1.getLastIntervalMeanSpeed("late") == 1.0
    assert e1.getVehicleData("late") == (("b", 5.0, 9.0, -1.0, "car"),)
    assert e2.getLastStepVehicleNumber("late") == 3
    assert e1.getLastIntervalVehicleNumber("ok") == 90


def test_the_share_of_detectors_picked_and_the_onsets_are_seeded() -> None:
    ids = [f"d{i}" for i in range(40)]
    a = pick_faults(ids, 0.1, begin=100.0, duration=3600.0, seed=7)
    assert a == pick_faults(ids, 0.1, begin=100.0, duration=3600.0, seed=7)
    assert len(a) == 4 and a != pick_faults(ids, 0.1, begin=100.0, duration=3600.0, seed=8)
    assert all(100.0 <= f.onset <= 1900.0 and f.mode in (STUCK, SILENT) for f in a.values())
    assert pick_faults(ids, 0.0, begin=0.0, duration=60.0, seed=1) == {}
