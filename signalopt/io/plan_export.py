"""Timing plans out to the field: JSON, SUMO ``tlLogic`` additional files, NTCIP-style tables.

Offsets: a ``TimingPlan`` offset is the start of phase 0 (its first green) relative to t = 0 of
the plan clock, mod cycle. SUMO's ``tlLogic offset`` means the same (phase 0 starts at
simulation time ``offset``), so it is copied unchanged. NTCIP 1202 patterns reference the
offset to the coordinated phase (``splitCoordPhase`` = 1 here, phase 0's green); the tables
carry an ``offset_reference`` column saying so.

NTCIP 1202 ``split`` times cover a phase's green plus the yellow and all-red after it, so
each green phase of the plan becomes one NTCIP phase (1, 2, ... in program order) whose
split is its green plus the clearance phases that follow it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from signalopt.errors import InputError
from signalopt.plan import OFFSET_REFERENCE, TimingPlan

JSON_FORMAT = "signalopt.plans/1"
PATTERN_COLUMNS = ("intersection", "version", "patternNumber", "cycleTime", "offsetTime",
                   "splitNumber", "sequenceNumber", "offset_reference", "valid_until")
SPLIT_COLUMNS = ("intersection", "version", "splitNumber", "splitPhase", "ring", "splitTime",
                 "minGreen", "maxGreen", "yellowChange", "redClear", "splitMode",
                 "splitCoordPhase", "state")
SPLIT_MODE_NONE = 2  # NTCIP splitMode none: the controller's actuation decides within bounds
SPLIT_MODE_MAX_RECALL = 4  # maximumVehicleRecall: runs the full split (fixed time)


def plans_to_json(plans: Sequence[TimingPlan]) -> str:
    """A JSON document listing the plans, with the format tag and the offset reference."""
    return json.dumps({
        "format": JSON_FORMAT,
        "offset_reference": OFFSET_REFERENCE,
        "plans": [p.model_dump(mode="json") for p in plans],
    }, indent=2)


def plans_from_json(text: str) -> list[TimingPlan]:
    """Read plans written by ``plans_to_json`` (each re-validated as a ``TimingPlan``)."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        msg = f"not a {JSON_FORMAT} document (format={found!r})"
        raise InputError(msg)
    return [TimingPlan.model_validate(p) for p in doc["plans"]]


def _is_actuated(plan: TimingPlan) -> bool:
    return any(p.is_green and p.max_dur > p.min_dur + 1e-9 for p in plan.phases)


def _single_sequence(plan: TimingPlan, what: str) -> None:
    if len(plan.rings) != 1:
        msg = (f"intersection {plan.intersection!r} v{plan.version}: {len(plan.rings)} rings; "
               f"{what} needs a single phase sequence")
        raise InputError(msg)


def plans_to_tllogic(plans: Sequence[TimingPlan], *, program_id: str = "signalopt",
                     kind: str = "auto") -> str:
    """A SUMO additional file with one ``tlLogic`` per plan.

    Parameters
    ----------
    plans
        Validated plans; phases in program order (one ring).
    program_id
        ``programID`` to load them under (activate with ``traci.trafficlight.setProgram``).
    kind
        ``"static"``, ``"actuated"`` (greens get ``minDur``/``maxDur``) or ``"auto"``:
        actuated when any green has ``max_dur > min_dur``.
    """
    if kind not in ("auto", "static", "actuated"):
        msg = f"kind must be auto, static or actuated, not {kind!r}"
        raise InputError(msg)
    lines = ["<additional>"]
    for plan in plans:
        _single_sequence(plan, "a SUMO tlLogic")
        tl_type = kind if kind != "auto" else ("actuated" if _is_actuated(plan) else "static")
        lines.append(
            f"    <tlLogic id={quoteattr(plan.intersection)} type=\"{tl_type}\" "
            f"programID={quoteattr(program_id)} offset=\"{plan.offset:.2f}\">")
        lines.append(f"        <!-- signalopt v{plan.version}, cycle {plan.cycle:.2f} s, "
                     f"valid until {plan.valid_until:.0f} -->")
        for ph in (plan.phases[k] for k in plan.rings[0]):
            bounds = (f' minDur="{ph.min_dur:.2f}" maxDur="{ph.max_dur:.2f}"'
                      if tl_type == "actuated" else "")
            lines.append(f'        <phase duration="{ph.duration:.2f}" '
                         f'state={quoteattr(ph.state)}{bounds}/>')
        lines.append("    </tlLogic>")
    lines.append("</additional>")
    return "\n".join(lines) + "\n"


def _split_rows(plan: TimingPlan, split_number: int) -> list[dict[str, object]]:
    """One NTCIP phase per green: split = green + the clearances after it."""
    _single_sequence(plan, "an NTCIP split table")
    order = list(plan.rings[0])
    first = next(i for i, k in enumerate(order) if plan.phases[k].is_green)
    order = order[first:] + order[:first]  # phase 0's green leads (the coordinated phase)
    rows: list[dict[str, object]] = []
    for k in order:
        ph = plan.phases[k]
        if ph.is_green:
            rows.append({"intersection": plan.intersection, "version": plan.version,
                         "splitNumber": split_number, "splitPhase": len(rows) + 1, "ring": 1,
                         "splitTime": ph.duration, "minGreen": ph.min_dur,
                         "maxGreen": ph.max_dur, "yellowChange": 0.0, "redClear": 0.0,
                         "splitMode": SPLIT_MODE_NONE if ph.max_dur > ph.min_dur + 1e-9
                         else SPLIT_MODE_MAX_RECALL,
                         "splitCoordPhase": int(not rows), "state": ph.state})
            continue
        row = rows[-1]
        row["splitTime"] = float(row["splitTime"]) + ph.duration  # type: ignore[arg-type]
        key = "yellowChange" if "y" in ph.state.lower() else "redClear"
        row[key] = float(row[key]) + ph.duration  # type: ignore[arg-type]
    return rows


def plans_to_ntcip(plans: Sequence[TimingPlan], *, pattern_number: int = 1) -> tuple[str, str]:
    """NTCIP 1202-style pattern table and split table as two CSV texts.

    Each intersection gets pattern ``pattern_number`` using split/sequence table of the same
    number; times in seconds (controllers expecting tenths multiply by 10 on load).
    """
    patterns, splits = io.StringIO(), io.StringIO()
    pw = csv.DictWriter(patterns, fieldnames=PATTERN_COLUMNS, lineterminator="\n")
    sw = csv.DictWriter(splits, fieldnames=SPLIT_COLUMNS, lineterminator="\n")
    pw.writeheader()
    sw.writeheader()
    for plan in plans:
        sw.writerows(_split_rows(plan, pattern_number))
        pw.writerow({"intersection": plan.intersection, "version": plan.version,
                     "patternNumber": pattern_number, "cycleTime": plan.cycle,
                     "offsetTime": plan.offset, "splitNumber": pattern_number,
                     "sequenceNumber": 1,
                     "offset_reference": "start of coordinated phase 1 green",
                     "valid_until": plan.valid_until})
    return patterns.getvalue(), splits.getvalue()


def write_plans(plans: Sequence[TimingPlan], out: Path, *, program_id: str = "signalopt",
                ) -> dict[str, Path]:
    """Write ``plans.json``, ``plans.add.xml``, ``patterns.csv`` and ``splits.csv`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    patterns, splits = plans_to_ntcip(plans)
    files = {
        "json": (out / "plans.json", plans_to_json(plans)),
        "tllogic": (out / "plans.add.xml", plans_to_tllogic(plans, program_id=program_id)),
        "patterns": (out / "patterns.csv", patterns),
        "splits": (out / "splits.csv", splits),
    }
    for path, text in files.values():
        path.write_text(text)
    return {name: path for name, (path, _) in files.items()}
