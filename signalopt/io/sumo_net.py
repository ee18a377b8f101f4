"""Read a SUMO ``.net.xml`` into a ``NetworkSpec`` (with ``sumo_detectors``, the only sumolib
imports in signalopt/)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import sumolib

from signalopt.errors import NetworkError
from signalopt.network import IntersectionSpec, LinkSpec, MovementSpec, NetworkSpec, PhaseSpec

VEHICLE_CLASS = "passenger"


def read_sumo_net(path: str | Path) -> NetworkSpec:
    """Parse a SUMO network file into a validated ``NetworkSpec`` (no detectors yet).

    Links are the non-internal edges that allow passenger cars; intersections are the traffic
    light systems with their first program; movements group the tls connections by
    (from edge, to edge).
    """
    path = Path(path)
    if not path.is_file():
        msg = f"network file not found: {path}"
        raise NetworkError(msg)
    try:
        net = sumolib.net.readNet(str(path), withPrograms=True, withInternal=True)
    except (ET.ParseError, OSError, ValueError, KeyError, AttributeError) as exc:
        msg = f"cannot read SUMO network {path}: {exc}"
        raise NetworkError(msg) from exc

    links = [
        LinkSpec(
            id=e.getID(),
            from_node=e.getFromNode().getID(),
            to_node=e.getToNode().getID(),
            length=max(e.getLength(), 0.1),
            lanes=len(e.getLanes()),
            speed=e.getSpeed(),
            cross_s=_cross_time(net, e),
        )
        for e in net.getEdges(withInternal=False)
        if e.allows(VEHICLE_CLASS)
    ]
    link_ids = {link.id for link in links}
    links = [link.model_copy(update={"to_links": _connected(net.getEdge(link.id), link_ids)})
             for link in links]
    intersections, movements = [], []
    for tls in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        programs = tls.getPrograms()
        if not programs:
            continue
        program = programs[sorted(programs)[0]]
        phases = tuple(
            PhaseSpec(
                state=p.state,
                duration=float(p.duration),
                min_dur=float(p.minDur if p.minDur not in (None, -1) else p.duration),
                max_dur=float(p.maxDur if p.maxDur not in (None, -1) else p.duration),
            )
            for p in program.getPhases()
        )
        phases = tuple(_fix_bounds(p) for p in phases)
        groups: dict[tuple[str, str], tuple[set[int], set[int]]] = defaultdict(
            lambda: (set(), set())
        )
        for in_lane, out_lane, index in tls.getConnections():
            fe, te = in_lane.getEdge().getID(), out_lane.getEdge().getID()
            if fe in link_ids and te in link_ids and index >= 0:
                signals, lanes = groups[(fe, te)]
                signals.add(int(index))
                lanes.add(in_lane.getIndex())
        if not groups or not any(p.is_green for p in phases):
            continue
        intersections.append(
            IntersectionSpec(id=tls.getID(), phases=phases, offset=float(program._offset or 0))
        )
        movements += [
            MovementSpec(
                intersection=tls.getID(),
                from_link=fe,
                to_link=te,
                signals=tuple(sorted(sig)),
                lanes=tuple(sorted(ln)),
            )
            for (fe, te), (sig, ln) in sorted(groups.items())
        ]
    return NetworkSpec(links=tuple(links), intersections=tuple(intersections), movements=tuple(movements))


def _fix_bounds(p: PhaseSpec) -> PhaseSpec:
    """Static programs often omit minDur/maxDur; widen them to contain the duration."""
    lo, hi = min(p.min_dur, p.duration), max(p.max_dur, p.duration)
    if (lo, hi) == (p.min_dur, p.max_dur):
        return p
    return PhaseSpec(state=p.state, duration=p.duration, min_dur=lo, max_dur=hi)


def _connected(edge: sumolib.net.edge.Edge, link_ids: set[str]) -> tuple[str, ...]:
    """The links ``edge``'s lanes connect to (its SUMO connections), sorted; () at a dead end."""
    return tuple(sorted({c.getTo().getID() for lane in edge.getLanes()
                         for c in lane.getOutgoing()} & link_ids))


def _cross_time(net: sumolib.net.Net, edge: sumolib.net.edge.Edge) -> float:
    """Mean free time through the node at ``edge``'s end over its lanes' connections: each
    connection's internal lanes, length over speed limit (0 without internal lanes)."""
    times = []
    for lane in edge.getLanes():
        for conn in lane.getOutgoing():
            t, via, seen = 0.0, conn.getViaLaneID(), 0
            while via and seen < 8:  # a connection crosses at most a few internal lanes
                internal = net.getLane(via)
                t += internal.getLength() / max(internal.getSpeed(), 1.0)
                nxt = internal.getOutgoing()
                via, seen = (nxt[0].getViaLaneID() if nxt else ""), seen + 1
            times.append(t)
    return float(sum(times) / len(times)) if times else 0.0
