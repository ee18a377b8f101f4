"""A site's own detectors from a SUMO additional file: E1 loops and E2 camera zones.

The engine's detector kinds follow from where each one stands:

- ``laneAreaDetector`` / ``e2Detector`` (one lane, as ``lane`` or a one-item ``lanes``): a
  camera ``zone`` from ``pos`` to ``endPos``, or ``pos + length``, or ``length`` back from
  ``endPos``;
- ``inductionLoop`` / ``e1Detector``: the ``stopline`` loop of a lane that feeds a signalised
  movement if it is the loop nearest that lane's end and within ``stopline_m`` of it, else an
  ``entry`` loop (a loop anywhere else bounds its link's cell where it stands).

SUMO's negative positions count from the lane's end; ``friendlyPos`` moves a position off the
lane onto it, as SUMO does (else it is an error). Detectors SUMO has but the engine does
not read (E3 entry/exit, instant loops) are skipped and named in a warning. Every problem
(unknown or internal lane, multi-lane zone, missing or impossible position, duplicate id) is
collected, and one ``NetworkError`` names them all.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import sumolib

from signalopt.errors import NetworkError, problem_list
from signalopt.network import DetectorSpec, LinkSpec, NetworkSpec

log = logging.getLogger(__name__)

LOOPS = ("inductionLoop", "e1Detector")
ZONES = ("laneAreaDetector", "e2Detector")
SKIPPED = ("entryExitDetector", "e3Detector", "instantInductionLoop")
STOPLINE_M = 10.0  # a loop this close to a signal approach lane's end is its stop-line loop


def read_sumo_detectors(path: str | Path, spec: NetworkSpec, *,
                        stopline_m: float = STOPLINE_M) -> list[DetectorSpec]:
    """The E1/E2 detectors of the SUMO additional file ``path`` on the network ``spec``."""
    path = Path(path)
    if not path.is_file():
        msg = f"detector file not found: {path}"
        raise NetworkError(msg)
    links = {link.id: link for link in spec.links}
    approach = {(m.from_link, lane) for m in spec.movements for lane in m.lanes}
    out: list[DetectorSpec] = []
    problems: list[str] = []
    skipped: list[str] = []
    seen: set[str] = set()
    try:
        elements = list(sumolib.xml.parse(str(path), [*LOOPS, *ZONES, *SKIPPED]))
    except (ET.ParseError, OSError, ValueError) as exc:
        msg = f"cannot read detector file {path}: {exc}"
        raise NetworkError(msg) from exc
    for el in elements:
        det_id = el.getAttributeSecure("id", None)
        if el.name in SKIPPED:
            skipped.append(f"{el.name} {det_id!r}")
            continue
        where = f"{el.name} {det_id!r}"
        if not det_id:
            problems.append(f"{el.name} without an id")
            continue
        if det_id in seen:
            problems.append(f"{where}: duplicate id")
            continue
        seen.add(det_id)
        try:
            det = _detector(el, det_id, links)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        out.append(det)
    out = _stop_lines(out, links, approach, stopline_m)
    if skipped:
        log.warning("%s: skipped %d detector(s) the engine does not read: %s", path,
                    len(skipped), ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    if problems:
        raise NetworkError(problem_list(f"detector file {path}: ", problems))
    if not out:
        msg = f"detector file {path}: no E1 or E2 detector in it"
        raise NetworkError(msg)
    return out


def _detector(el: Any, det_id: str, links: dict[str, LinkSpec]) -> DetectorSpec:
    """One E1/E2 element as a ``DetectorSpec`` (every loop an entry loop until
    ``_stop_lines`` picks the stop-line ones); a ValueError says what is wrong with it."""
    lanes = (el.getAttributeSecure("lanes", None) or "").split()
    if len(lanes) > 1:
        msg = "spans several lanes; give one zone per lane"
        raise ValueError(msg)
    lane_id = el.getAttributeSecure("lane", None) or (lanes[0] if lanes else None)
    if not lane_id:
        msg = "has no lane"
        raise ValueError(msg)
    link_id, _, lane_txt = lane_id.rpartition("_")
    if lane_id.startswith(":") or not lane_txt.isdigit() or link_id not in links:
        msg = f"lane {lane_id!r} is not a lane of a link in the network"
        raise ValueError(msg)
    link, lane = links[link_id], int(lane_txt)
    if lane >= link.lanes:
        msg = f"lane {lane_id!r}: link {link_id!r} has {link.lanes} lane(s)"
        raise ValueError(msg)
    friendly = str(el.getAttributeSecure("friendlyPos", "false")).lower() in ("true", "1", "x")
    pos = _position(el, "pos", link.length, friendly, default=0.0)
    if el.name in ZONES:
        has = {a: el.getAttributeSecure(a, None) is not None for a in ("pos", "endPos", "length")}
        if has["endPos"]:
            end = _position(el, "endPos", link.length, friendly)
            if has["length"] and not has["pos"]:  # SUMO: the zone reaches back from endPos
                pos = max(end - _number(el, "length"), 0.0)
        elif has["length"]:
            end = pos + _number(el, "length")
        else:
            msg = "needs endPos or length"
            raise ValueError(msg)
        end = min(end, link.length)
        if end <= pos:
            msg = f"zone from {pos:g} to {end:g} m has no length"
            raise ValueError(msg)
        return DetectorSpec(id=det_id, link=link_id, lane=lane, pos=pos, length=end - pos,
                            kind="zone")
    return DetectorSpec(id=det_id, link=link_id, lane=lane, pos=pos, kind="entry")


def _stop_lines(dets: list[DetectorSpec], links: dict[str, LinkSpec],
                approach: set[tuple[str, int]],
                stopline_m: float) -> list[DetectorSpec]:
    """``dets`` with the loop nearest the end of each signal approach lane, if within
    ``stopline_m`` of it, as that lane's stop-line loop (one per lane)."""
    last: dict[tuple[str, int], DetectorSpec] = {}
    for d in dets:
        key = (d.link, d.lane)
        if d.kind == "entry" and key in approach and (key not in last or d.pos > last[key].pos):
            last[key] = d
    stop = {d.id for d in last.values() if links[d.link].length - d.pos <= stopline_m}
    return [d.model_copy(update={"kind": "stopline"}) if d.id in stop else d for d in dets]


def _number(el: Any, name: str) -> float:
    """A numeric attribute (ValueError naming it if it is not one)."""
    text = el.getAttributeSecure(name, None)
    try:
        return float(text)
    except (TypeError, ValueError):
        msg = f"{name}={text!r} is not a number"
        raise ValueError(msg) from None


def _position(el: Any, name: str, length: float, friendly: bool = False,
              default: float | None = None) -> float:
    """A position on a lane of ``length`` m; negative counts from its end (SUMO's rule), and
    with ``friendlyPos`` one off the lane is moved onto it, as SUMO does."""
    if default is not None and el.getAttributeSecure(name, None) is None:
        return default
    x = _number(el, name)
    x = length + x if x < 0 else x
    if friendly:
        return min(max(x, 0.0), length)
    if not 0.0 <= x <= length + max(1.0, 0.05 * length):  # lanes of an edge differ a little
        msg = f"{name}={_number(el, name):g} is off the lane ({length:g} m)"
        raise ValueError(msg)
    return min(x, length)
