"""Plan exports: JSON round trip, SUMO tlLogic, NTCIP-style pattern/split tables.

Plan used: tiny program NS green 36 s, yellow 3 s, EW green 24 s, yellow 3 s (cycle 66 s),
offset 12 s. NTCIP splits are green + following clearance: phase 1 = 36 + 3 = 39 s,
phase 2 = 24 + 3 = 27 s; 39 + 27 = 66 = cycle.
"""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from service_fixtures import scan_plan

from signalopt.errors import InputError
from signalopt.io.plan_export import (
    plans_from_json,
    plans_to_json,
    plans_to_ntcip,
    plans_to_tllogic,
    write_plans,
)
from signalopt.plan import PhaseTiming, TimingPlan


def _plan(**kw: object) -> TimingPlan:
    return scan_plan("A", 3, created_at=100.0, ns=36.0, ew=24.0, offset=12.0, **kw)  # type: ignore[arg-type]


def _static(plan: TimingPlan) -> TimingPlan:
    phases = tuple(PhaseTiming(state=p.state, duration=p.duration, min_dur=p.duration,
                               max_dur=p.duration, is_green=p.is_green) for p in plan.phases)
    return plan.model_copy(update={"phases": phases})


def test_json_round_trip() -> None:
    plans = [_plan(), scan_plan("B", 1)]
    text = plans_to_json(plans)
    assert plans_from_json(text) == plans
    assert '"offset_reference"' in text
    with pytest.raises(InputError, match=r"not a signalopt\.plans/1 document"):
        plans_from_json('{"plans": []}')


def test_tllogic_actuated_and_static() -> None:
    root = ET.fromstring(plans_to_tllogic([_plan(), _static(scan_plan("B", 1))]))
    a, b = root.findall("tlLogic")
    assert (a.get("id"), a.get("type"), a.get("offset"), a.get("programID")) == \
        ("A", "actuated", "12.00", "signalopt")
    assert [(p.get("duration"), p.get("state"), p.get("minDur"), p.get("maxDur"))
            for p in a.findall("phase")] == [
        ("36.00", "GGrr", "10.00", "60.00"), ("3.00", "yyrr", "3.00", "3.00"),
        ("24.00", "rrGG", "10.00", "60.00"), ("3.00", "rryy", "3.00", "3.00")]
    assert b.get("type") == "static"
    assert b.find("phase").get("minDur") is None  # type: ignore[union-attr]
    forced = ET.fromstring(plans_to_tllogic([_plan()], kind="static")).find("tlLogic")
    assert forced.get("type") == "static"  # type: ignore[union-attr]
    with pytest.raises(InputError, match="kind must be"):
        plans_to_tllogic([_plan()], kind="fancy")


def test_ntcip_tables_split_sums_equal_cycle() -> None:
    patterns, splits = plans_to_ntcip([_plan()], pattern_number=3)
    prow = next(csv.DictReader(io.StringIO(patterns)))
    assert (prow["cycleTime"], prow["offsetTime"], prow["patternNumber"], prow["splitNumber"]) == \
        ("66.0", "12.0", "3", "3")
    rows = list(csv.DictReader(io.StringIO(splits)))
    assert [(r["splitPhase"], float(r["splitTime"]), float(r["yellowChange"]),
             r["splitCoordPhase"], r["splitMode"]) for r in rows] == [
        ("1", 39.0, 3.0, "1", "2"), ("2", 27.0, 3.0, "0", "2")]
    assert sum(float(r["splitTime"]) for r in rows) == pytest.approx(66.0)
    _, static = plans_to_ntcip([_static(_plan())])
    assert {r["splitMode"] for r in csv.DictReader(io.StringIO(static))} == {"4"}


def test_ntcip_rotates_to_first_green_and_counts_all_red() -> None:
    """Program [all-red 2 s, G 30, y 3, G 30, y 3]: the leading all-red belongs to phase 2."""
    phases = (
        PhaseTiming(state="rrrr", duration=2.0, min_dur=2.0, max_dur=2.0, is_green=False),
        PhaseTiming(state="GGrr", duration=30.0, min_dur=10.0, max_dur=60.0, is_green=True),
        PhaseTiming(state="yyrr", duration=3.0, min_dur=3.0, max_dur=3.0, is_green=False),
        PhaseTiming(state="rrGG", duration=30.0, min_dur=10.0, max_dur=60.0, is_green=True),
        PhaseTiming(state="rryy", duration=3.0, min_dur=3.0, max_dur=3.0, is_green=False),
    )
    plan = TimingPlan(intersection="X", version=1, created_at=0, valid_until=100, cycle=68.0,
                      offset=0.0, phases=phases, rings=((0, 1, 2, 3, 4),))
    rows = list(csv.DictReader(io.StringIO(plans_to_ntcip([plan])[1])))
    assert [(float(r["splitTime"]), float(r["yellowChange"]), float(r["redClear"]))
            for r in rows] == [(33.0, 3.0, 0.0), (35.0, 3.0, 2.0)]


def test_multi_ring_plans_are_refused_by_sequence_formats() -> None:
    plan = _plan().model_copy(update={"rings": ((0, 1), (2, 3))})
    with pytest.raises(InputError, match="'A' v3: 2 rings"):
        plans_to_tllogic([plan])


def test_write_plans(tmp_path: Path) -> None:
    files = write_plans([_plan()], tmp_path / "out")
    assert sorted(p.name for p in files.values()) == ["patterns.csv", "plans.add.xml",
                                                       "plans.json", "splits.csv"]
    assert plans_from_json(files["json"].read_text())[0].version == 3
