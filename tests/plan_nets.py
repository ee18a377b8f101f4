"""Hand-built networks for optimizer and plan tests (numbers checkable on paper)."""

from __future__ import annotations

from signalopt.network import (
    CompiledNetwork,
    IntersectionSpec,
    LinkSpec,
    MovementSpec,
    NetworkSpec,
    PhaseSpec,
    compile_network,
)


def cross(iid: str = "c", prefix: str = "") -> tuple[list[LinkSpec], IntersectionSpec, list[MovementSpec]]:
    """One intersection, two one-lane through movements (N->S on signal 0, E->W on signal 1),
    program: green 30 / yellow 3 / green 30 / yellow 3 (cycle 66)."""
    p = prefix
    links = [
        LinkSpec(id=f"{p}n_in", from_node=f"{p}n", to_node=iid, length=200, lanes=1, speed=10),
        LinkSpec(id=f"{p}s_out", from_node=iid, to_node=f"{p}s", length=200, lanes=1, speed=10),
        LinkSpec(id=f"{p}e_in", from_node=f"{p}e", to_node=iid, length=200, lanes=1, speed=10),
        LinkSpec(id=f"{p}w_out", from_node=iid, to_node=f"{p}w", length=200, lanes=1, speed=10),
    ]
    inter = IntersectionSpec(id=iid, phases=(
        PhaseSpec(state="Gr", duration=30, min_dur=30, max_dur=30),
        PhaseSpec(state="yr", duration=3, min_dur=3, max_dur=3),
        PhaseSpec(state="rG", duration=30, min_dur=30, max_dur=30),
        PhaseSpec(state="ry", duration=3, min_dur=3, max_dur=3),
    ))
    movs = [
        MovementSpec(intersection=iid, from_link=f"{p}n_in", to_link=f"{p}s_out", signals=(0,), lanes=(0,)),
        MovementSpec(intersection=iid, from_link=f"{p}e_in", to_link=f"{p}w_out", signals=(1,), lanes=(0,)),
    ]
    return links, inter, movs


def one_cross() -> CompiledNetwork:
    links, inter, movs = cross()
    return compile_network(NetworkSpec(links=tuple(links), intersections=(inter,), movements=tuple(movs)))


def two_in_a_row(gap_m: float = 200.0, speed: float = 10.0) -> CompiledNetwork:
    """Intersections a and b; a's eastbound through movement feeds b over a ``gap_m`` link.

    a: w_in -> ab (signal 0, phase 0), n_in -> s_out (signal 1, phase 2)
    b: ab -> e_out (signal 1, phase 2!), n2_in -> s2_out (signal 0, phase 0)
    So b must start its phase 2 when a's platoon arrives: travel = gap / speed.
    """
    links = [
        LinkSpec(id="w_in", from_node="w", to_node="a", length=200, lanes=1, speed=speed),
        LinkSpec(id="ab", from_node="a", to_node="b", length=gap_m, lanes=1, speed=speed),
        LinkSpec(id="e_out", from_node="b", to_node="e", length=200, lanes=1, speed=speed),
        LinkSpec(id="n_in", from_node="n", to_node="a", length=200, lanes=1, speed=speed),
        LinkSpec(id="s_out", from_node="a", to_node="s", length=200, lanes=1, speed=speed),
        LinkSpec(id="n2_in", from_node="n2", to_node="b", length=200, lanes=1, speed=speed),
        LinkSpec(id="s2_out", from_node="b", to_node="s2", length=200, lanes=1, speed=speed),
    ]
    program = (
        PhaseSpec(state="Gr", duration=30, min_dur=30, max_dur=30),
        PhaseSpec(state="yr", duration=3, min_dur=3, max_dur=3),
        PhaseSpec(state="rG", duration=30, min_dur=30, max_dur=30),
        PhaseSpec(state="ry", duration=3, min_dur=3, max_dur=3),
    )
    inters = (IntersectionSpec(id="a", phases=program), IntersectionSpec(id="b", phases=program))
    movs = (
        MovementSpec(intersection="a", from_link="w_in", to_link="ab", signals=(0,), lanes=(0,)),
        MovementSpec(intersection="a", from_link="n_in", to_link="s_out", signals=(1,), lanes=(0,)),
        MovementSpec(intersection="b", from_link="ab", to_link="e_out", signals=(1,), lanes=(0,)),
        MovementSpec(intersection="b", from_link="n2_in", to_link="s2_out", signals=(0,), lanes=(0,)),
    )
    return compile_network(NetworkSpec(links=tuple(links), intersections=inters, movements=movs))
