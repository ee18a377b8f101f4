"""Tiny hand-built network and plan builders shared by the store/service/live/export tests.

Two signalised intersections ``A`` and ``B`` on an east-west corridor, each with the same
4-phase program: NS green 30 s, yellow 3 s, EW green 30 s, yellow 3 s (cycle 66 s).
Detectors: one entry loop per link (``<link>_in``).
"""

from __future__ import annotations

from signalopt.network import (
    DetectorSpec,
    IntersectionSpec,
    LinkSpec,
    MovementSpec,
    NetworkSpec,
    PhaseSpec,
)
from signalopt.plan import PhaseTiming, TimingPlan

PHASES = (
    PhaseSpec(state="GGrr", duration=30.0, min_dur=10.0, max_dur=60.0),
    PhaseSpec(state="yyrr", duration=3.0, min_dur=3.0, max_dur=3.0),
    PhaseSpec(state="rrGG", duration=30.0, min_dur=10.0, max_dur=60.0),
    PhaseSpec(state="rryy", duration=3.0, min_dur=3.0, max_dur=3.0),
)


def _links() -> tuple[LinkSpec, ...]:
    pairs = [("w", "A"), ("A", "B"), ("B", "e"), ("nA", "A"), ("A", "sA"), ("nB", "B"),
             ("B", "sB")]
    return tuple(LinkSpec(id=f"{a}_{b}", from_node=a, to_node=b, length=200.0, lanes=1,
                          speed=13.9) for a, b in pairs)


def tiny_spec(n_detectors_per_link: int = 1) -> NetworkSpec:
    """Corridor w - A - B - e with side streets; intersections A and B."""
    links = _links()
    movements = tuple(
        MovementSpec(intersection=i, from_link=a, to_link=b, signals=sig, lanes=(0,))
        for i, a, b, sig in (("A", "nA_A", "A_sA", (0, 1)), ("A", "w_A", "A_B", (2, 3)),
                             ("B", "nB_B", "B_sB", (0, 1)), ("B", "A_B", "B_e", (2, 3)))
    )
    detectors = tuple(
        DetectorSpec(id=f"{link.id}_in{'' if k == 0 else k}", link=link.id, lane=0,
                     pos=10.0 + k, kind="entry")
        for link in links for k in range(n_detectors_per_link)
    )
    inters = (IntersectionSpec(id="A", phases=PHASES),
              IntersectionSpec(id="B", phases=PHASES, offset=20.0))
    return NetworkSpec(links=links, intersections=inters, movements=movements, detectors=detectors)


def scan_plan(intersection: str, version: int, *, created_at: float = 0.0, ns: float = 30.0,
              ew: float = 30.0, offset: float = 0.0, valid_s: float = 240.0,
              source: str = "scan") -> TimingPlan:
    """A plan on the tiny program with greens ``ns``/``ew`` (clearances copied, 3 s each)."""
    durs = (ns, 3.0, ew, 3.0)
    phases = tuple(
        PhaseTiming(state=p.state, duration=d, min_dur=min(p.min_dur, d),
                    max_dur=max(p.max_dur, d), is_green=p.is_green)
        for p, d in zip(PHASES, durs, strict=True)
    )
    return TimingPlan(intersection=intersection, version=version, created_at=created_at,
                      valid_until=created_at + valid_s, cycle=sum(durs), offset=offset,
                      phases=phases, rings=((0, 1, 2, 3),), source=source)  # type: ignore[arg-type]


def make_client(app: object) -> object:
    """A FastAPI ``TestClient`` for ``app``.

    Starlette warns when its TestClient runs on ``httpx`` rather than ``httpx2``; that
    warning is about the test tool, not about our code, so it is silenced for this import only.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    return TestClient(app)

