"""Tiny hand-built networks shared by the tests: a chain of links, a T-junction, a 2x2 grid.

Each fixture returns a ``CompiledNetwork`` built from a ``NetworkSpec`` in code (no SUMO), so
tests can assert hand-derived numbers. Builders are plain functions so other fixtures (and
hypothesis tests, which cannot take function-scoped fixtures) can reuse them.
"""

from __future__ import annotations

import pytest

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


def entry(link: str, lane: int = 0, pos: float = 10.0) -> DetectorSpec:
    return DetectorSpec(id=f"{link}_{lane}_in", link=link, lane=lane, pos=pos, kind="entry")


def approach_detectors(link: str, length: float, lanes: int, zone_m: float = 50.0) -> list[DetectorSpec]:
    """Entry loop, stop-line loop and camera zone on every lane of an approach link."""
    out = []
    for lane in range(lanes):
        out.append(entry(link, lane))
        out.append(DetectorSpec(id=f"{link}_{lane}_stop", link=link, lane=lane, pos=length - 2.0,
                                kind="stopline"))
        out.append(DetectorSpec(id=f"{link}_{lane}_zone", link=link, lane=lane,
                                pos=length - zone_m, length=zone_m - 0.1, kind="zone"))
    return out


class RecordingLights:
    """A stand-in for TraCI's trafficlight domain that records every state set."""

    def __init__(self) -> None:
        self.states: list[str] = []

    def setRedYellowGreenState(self, tls: str, state: str) -> None:  # noqa: N802  (TraCI's name)
        self.states.append(state)


def build_chain(n_links: int = 3, length: float = 100.0) -> NetworkSpec:
    """``n_links`` one-lane links n0 -> n1 -> ... (10 m/s), an entry loop 10 m into each."""
    links = tuple(LinkSpec(id=f"L{k}", from_node=f"n{k}", to_node=f"n{k + 1}", length=length,
                           lanes=1, speed=10.0) for k in range(n_links))
    return NetworkSpec(links=links, detectors=tuple(entry(f"L{k}") for k in range(n_links)))


def build_t_junction() -> NetworkSpec:
    """Junction J fed from W (lane 0: through to E, lane 1: left to S) and from S (right to E).

    Approaches ``WJ`` (2 lanes) and ``SJ`` (1 lane) are 100 m with entry/stop-line/zone
    detectors; exits ``JE`` and ``JS`` are 100 m with entry loops. Two green phases.
    """
    links = (
        LinkSpec(id="WJ", from_node="W", to_node="J", length=100.0, lanes=2, speed=10.0),
        LinkSpec(id="SJ", from_node="S", to_node="J", length=100.0, lanes=1, speed=10.0),
        LinkSpec(id="JE", from_node="J", to_node="E", length=100.0, lanes=1, speed=10.0),
        LinkSpec(id="JS", from_node="J", to_node="S2", length=100.0, lanes=1, speed=10.0),
    )
    inter = IntersectionSpec(id="J", phases=(
        PhaseSpec(state="GGr", duration=30, min_dur=10, max_dur=60),
        PhaseSpec(state="yyr", duration=3, min_dur=3, max_dur=3),
        PhaseSpec(state="rrG", duration=20, min_dur=10, max_dur=60),
        PhaseSpec(state="rry", duration=3, min_dur=3, max_dur=3),
    ))
    movs = (
        MovementSpec(intersection="J", from_link="WJ", to_link="JE", signals=(0,), lanes=(0,)),
        MovementSpec(intersection="J", from_link="WJ", to_link="JS", signals=(1,), lanes=(1,)),
        MovementSpec(intersection="J", from_link="SJ", to_link="JE", signals=(2,), lanes=(0,)),
    )
    dets = approach_detectors("WJ", 100.0, 2) + approach_detectors("SJ", 100.0, 1)
    dets += [entry("JE"), entry("JS")]
    return NetworkSpec(links=links, intersections=(inter,), movements=movs, detectors=tuple(dets))


def build_grid2x2(length: float = 150.0) -> NetworkSpec:
    """2x2 signalised grid (nodes g00..g11) with one-lane two-way links and boundary legs.

    Every intersection has a 2-phase program (north-south, east-west); a shared lane serves
    all movements of an approach. Approaches carry entry/stop-line/zone detectors, every
    link an entry loop.
    """
    pos = {f"g{i}{j}": (i, j) for i in range(2) for j in range(2)}
    links, seen = [], set()
    def add(a: str, b: str) -> None:
        if (a, b) not in seen:
            seen.add((a, b))
            links.append(LinkSpec(id=f"{a}_{b}", from_node=a, to_node=b, length=length, lanes=1,
                                  speed=12.0))
    for n, (i, j) in pos.items():
        for di, dj, tag in ((1, 0, "E"), (-1, 0, "W"), (0, 1, "N"), (0, -1, "S")):
            m = f"g{i + di}{j + dj}" if (i + di, j + dj) in {(a, b) for a, b in pos.values()} \
                else f"b{tag}{i}{j}"
            add(n, m)
            add(m, n)
    movements, inters, dets = [], [], []
    for n in pos:
        ins = [lk for lk in links if lk.to_node == n]
        outs = [lk for lk in links if lk.from_node == n]
        k = 0
        sig_ns, sig_ew = [], []
        for a in ins:
            vertical = a.from_node.startswith("bN") or a.from_node.startswith("bS") or \
                (a.from_node.startswith("g") and a.from_node[1] == n[1])
            for b in outs:
                if b.to_node == a.from_node:
                    continue  # no U-turns
                movements.append(MovementSpec(intersection=n, from_link=a.id, to_link=b.id,
                                              signals=(k,), lanes=(0,)))
                (sig_ns if vertical else sig_ew).append(k)
                k += 1
        ns = "".join("G" if s in sig_ns else "r" for s in range(k))
        ew = "".join("G" if s in sig_ew else "r" for s in range(k))
        inters.append(IntersectionSpec(id=n, phases=(
            PhaseSpec(state=ns, duration=30, min_dur=10, max_dur=60),
            PhaseSpec(state=ns.replace("G", "y"), duration=3, min_dur=3, max_dur=3),
            PhaseSpec(state=ew, duration=30, min_dur=10, max_dur=60),
            PhaseSpec(state=ew.replace("G", "y"), duration=3, min_dur=3, max_dur=3),
        )))
        dets += [d for a in ins for d in approach_detectors(a.id, length, 1)[1:]]
    dets += [entry(lk.id) for lk in links]
    return NetworkSpec(links=tuple(links), intersections=tuple(inters),
                       movements=tuple(movements), detectors=tuple(dets))


@pytest.fixture
def chain_net() -> CompiledNetwork:
    return compile_network(build_chain())


@pytest.fixture
def one_link_net() -> CompiledNetwork:
    return compile_network(build_chain(1))


@pytest.fixture
def t_junction_net() -> CompiledNetwork:
    return compile_network(build_t_junction())


@pytest.fixture
def grid2x2_net() -> CompiledNetwork:
    return compile_network(build_grid2x2())
