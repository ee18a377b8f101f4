"""Static network description: a validated ``NetworkSpec`` compiled once into flat arrays.

The engine never walks an object graph. ``compile_network`` turns the spec into a
``CompiledNetwork`` of frozen numpy arrays with integer indices (links, movements, phases,
detectors, CSR adjacency); string ids stay in the id<->index maps at the edge.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from signalopt.errors import NetworkError, problem_list

JAM_SPACING_M = 7.5  # metres of lane per stopped vehicle (car + gap); storage capacity
DETECTOR_KINDS = ("entry", "stopline", "zone")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LinkSpec(_Frozen):
    """A directed road link (SUMO edge) between two nodes."""

    id: str
    from_node: str
    to_node: str
    length: float = Field(gt=0)
    lanes: int = Field(ge=1)
    speed: float = Field(gt=0, description="speed limit, m/s")
    cross_s: float = Field(
        default=0.0, ge=0,
        description="free time through the node at the link's end (its connections' internal"
                    " lanes, length over speed limit, mean over the link's lanes), s; 0 = unknown")
    to_links: tuple[str, ...] | None = Field(
        default=None,
        description="links its lanes connect to at its end (SUMO connections; () = a dead end);"
                    " None: any link leaving its end node except a U-turn")


class PhaseSpec(_Frozen):
    """One phase of an intersection's signal program, as in a SUMO tlLogic."""

    state: str = Field(min_length=1, description="one char per signal index: G g y r s u o O")
    duration: float = Field(gt=0)
    min_dur: float = Field(gt=0)
    max_dur: float = Field(gt=0)

    @property
    def is_green(self) -> bool:
        """A green phase serves traffic (has G/g and no yellow); others are clearances."""
        return ("G" in self.state or "g" in self.state) and "y" not in self.state


class MovementSpec(_Frozen):
    """A turning movement from one link to another through a signalised intersection."""

    intersection: str
    from_link: str
    to_link: str
    signals: tuple[int, ...] = Field(min_length=1, description="signal indices in the state")
    lanes: tuple[int, ...] = Field(min_length=1, description="from-link lane indices used")


class IntersectionSpec(_Frozen):
    """A signalised intersection with its base (fallback) program and clearances."""

    id: str
    phases: tuple[PhaseSpec, ...] = Field(min_length=1)
    offset: float = 0.0
    ped_min_green: float = Field(default=0.0, ge=0, description="pedestrian minimum green, s")

    @property
    def cycle(self) -> float:
        return float(sum(p.duration for p in self.phases))


class DetectorSpec(_Frozen):
    """A detector: a loop (entry/stop-line) or camera zone on one lane of a link."""

    id: str
    link: str
    lane: int = Field(ge=0)
    pos: float = Field(ge=0, description="metres from the link's upstream end")
    length: float = Field(default=0.0, ge=0, description="zone length (camera), 0 for loops")
    kind: Literal["entry", "stopline", "zone"]


class NetworkSpec(_Frozen):
    """Everything the engine knows about the road network: static, validated once."""

    links: tuple[LinkSpec, ...]
    intersections: tuple[IntersectionSpec, ...] = ()
    movements: tuple[MovementSpec, ...] = ()
    detectors: tuple[DetectorSpec, ...] = ()

    @model_validator(mode="after")
    def _check_references(self) -> NetworkSpec:
        problems = _reference_problems(self)
        if problems:
            raise NetworkError(problem_list("invalid network: ", problems))
        return self

    def with_detectors(self, detectors: list[DetectorSpec] | tuple[DetectorSpec, ...]) -> NetworkSpec:
        """Return a copy of this spec with ``detectors`` replacing the current ones."""
        return NetworkSpec(
            links=self.links,
            intersections=self.intersections,
            movements=self.movements,
            detectors=tuple(detectors),
        )


def _duplicates(ids: list[str]) -> list[str]:
    return [k for k, n in Counter(ids).items() if n > 1]


def _reference_problems(spec: NetworkSpec) -> list[str]:
    """Collect every broken reference in ``spec`` so one error names them all."""
    problems: list[str] = []
    for what, ids in (
        ("link", [link.id for link in spec.links]),
        ("intersection", [i.id for i in spec.intersections]),
        ("detector", [d.id for d in spec.detectors]),
    ):
        problems += [f"duplicate {what} id {dup!r}" for dup in _duplicates(ids)]
    links = {link.id: link for link in spec.links}
    ints = {i.id: i for i in spec.intersections}
    for i in spec.intersections:
        widths = {len(p.state) for p in i.phases}
        if len(widths) != 1:
            problems.append(f"intersection {i.id!r}: phase states differ in length {sorted(widths)}")
        if not any(p.is_green for p in i.phases):
            problems.append(f"intersection {i.id!r}: program has no green phase")
        for k, p in enumerate(i.phases):
            if not p.min_dur <= p.duration <= p.max_dur:
                problems.append(f"intersection {i.id!r} phase {k}: need min_dur <= duration <= max_dur")
    for m in spec.movements:
        name = f"movement {m.from_link}->{m.to_link}"
        if m.intersection not in ints:
            problems.append(f"{name}: unknown intersection {m.intersection!r}")
        elif max(m.signals) >= len(ints[m.intersection].phases[0].state):
            problems.append(f"{name}: signal index {max(m.signals)} beyond phase state")
        for end in (m.from_link, m.to_link):
            if end not in links:
                problems.append(f"{name}: unknown link {end!r}")
        if m.from_link in links and max(m.lanes) >= links[m.from_link].lanes:
            problems.append(f"{name}: lane {max(m.lanes)} beyond {links[m.from_link].lanes} lanes")
    for link in spec.links:
        for nxt in link.to_links or ():
            if nxt not in links:
                problems.append(f"link {link.id!r}: to_links names unknown link {nxt!r}")
            elif links[nxt].from_node != link.to_node:
                problems.append(f"link {link.id!r}: to_links {nxt!r} does not start at its end "
                                f"node {link.to_node!r}")
    for d in spec.detectors:
        if d.link not in links:
            problems.append(f"detector {d.id!r}: unknown link {d.link!r}")
            continue
        link = links[d.link]
        if d.lane >= link.lanes:
            problems.append(f"detector {d.id!r}: lane {d.lane} but link {d.link!r} has {link.lanes}")
        if d.pos > link.length + 1e-6:
            problems.append(f"detector {d.id!r}: pos {d.pos} beyond link length {link.length}")
    return problems


@dataclass(frozen=True)
class CompiledNetwork:
    """Flat, frozen arrays of a network; every index is an int into these arrays.

    Links ``l``, movements ``m`` (from_link -> to_link at intersection), intersections ``i``,
    phases ``p`` (CSR per intersection, in program order), detectors ``d``.
    """

    spec: NetworkSpec = field(repr=False)
    link_ids: tuple[str, ...]
    link_index: dict[str, int] = field(repr=False)
    link_length: np.ndarray
    link_lanes: np.ndarray
    link_speed: np.ndarray
    link_cross_s: np.ndarray  # free time through the node at the link's end, s (0 = unknown)
    link_storage: np.ndarray  # vehicles the link holds at jam density
    link_from_node: np.ndarray  # node indices
    link_to_node: np.ndarray
    link_to_indptr: np.ndarray  # CSR link -> the links it connects to (where to_links is given)
    link_to: np.ndarray
    link_to_known: np.ndarray  # (n_links,) bool: to_links given (else any onward link but a U-turn)
    link_next: np.ndarray  # the only onward link (U-turns aside) at the link's end, else -1
    link_prev: np.ndarray  # the only link feeding it (U-turns aside), else -1
    node_ids: tuple[str, ...]
    # movements
    mov_from: np.ndarray
    mov_to: np.ndarray
    mov_int: np.ndarray
    mov_lanes: np.ndarray  # number of from-lanes serving the movement
    link_mov_indptr: np.ndarray  # CSR: movements leaving link l = link_mov[indptr[l]:indptr[l+1]]
    link_mov: np.ndarray
    # intersections and phases
    int_ids: tuple[str, ...]
    int_index: dict[str, int] = field(repr=False)
    int_phase_indptr: np.ndarray
    phase_int: np.ndarray  # intersection of each phase (inverse of the CSR above)
    phase_duration: np.ndarray
    phase_min: np.ndarray
    phase_max: np.ndarray
    phase_is_green: np.ndarray
    phase_mov_indptr: np.ndarray  # CSR: movements with right of way ('G') in phase p
    phase_mov: np.ndarray
    int_ped_min: np.ndarray
    # lanes -> movements (a shared lane serves several movements)
    lane_mov_link: np.ndarray  # for each (link, lane, movement) triple
    lane_mov_lane: np.ndarray
    lane_mov_mov: np.ndarray
    # detectors
    det_ids: tuple[str, ...]
    det_index: dict[str, int] = field(repr=False)
    det_link: np.ndarray
    det_lane: np.ndarray
    det_pos: np.ndarray
    det_length: np.ndarray
    det_kind: np.ndarray  # index into DETECTOR_KINDS

    @property
    def n_links(self) -> int:
        return len(self.link_ids)

    @property
    def n_intersections(self) -> int:
        return len(self.int_ids)

    @property
    def n_movements(self) -> int:
        return int(self.mov_from.shape[0])

    @property
    def n_detectors(self) -> int:
        return len(self.det_ids)


def _csr(groups: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    indptr = np.zeros(len(groups) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(g) for g in groups])
    flat = np.array([x for g in groups for x in g], dtype=np.int64)
    return indptr, flat


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def compile_network(spec: NetworkSpec) -> CompiledNetwork:
    """Compile a validated ``spec`` into flat arrays (done once per network)."""
    link_ids = tuple(link.id for link in spec.links)
    link_index = {lid: k for k, lid in enumerate(link_ids)}
    node_ids = tuple(sorted({n for link in spec.links for n in (link.from_node, link.to_node)}))
    node_index = {n: k for k, n in enumerate(node_ids)}
    int_ids = tuple(i.id for i in spec.intersections)
    int_index = {iid: k for k, iid in enumerate(int_ids)}

    mov_from = np.array([link_index[m.from_link] for m in spec.movements], dtype=np.int64)
    mov_to = np.array([link_index[m.to_link] for m in spec.movements], dtype=np.int64)
    mov_int = np.array([int_index[m.intersection] for m in spec.movements], dtype=np.int64)
    mov_lanes = np.array([len(set(m.lanes)) for m in spec.movements], dtype=np.int64)
    link_mov_indptr, link_mov = _csr(_group(mov_from, len(link_ids)))

    phase_groups: list[list[int]] = []
    durations, mins, maxs, greens, counts = [], [], [], [], []
    movs_of_int = _group(mov_int, len(int_ids))
    for ii, inter in enumerate(spec.intersections):
        counts.append(len(inter.phases))
        for p in inter.phases:
            durations.append(p.duration)
            mins.append(p.min_dur)
            maxs.append(p.max_dur)
            greens.append(p.is_green)
            served = [
                k for k in movs_of_int[ii]
                if any(p.state[s] == "G" for s in spec.movements[k].signals)
            ]
            if not served:  # permissive-only phase: count permissive movements
                served = [
                    k for k in movs_of_int[ii]
                    if any(p.state[s] in "Gg" for s in spec.movements[k].signals)
                ]
            phase_groups.append(served if p.is_green else [])
    int_phase_indptr = np.zeros(len(int_ids) + 1, dtype=np.int64)
    int_phase_indptr[1:] = np.cumsum(counts)
    phase_mov_indptr, phase_mov = _csr(phase_groups)

    lm_link, lm_lane, lm_mov = [], [], []
    for k, m in enumerate(spec.movements):
        for lane in sorted(set(m.lanes)):
            lm_link.append(link_index[m.from_link])
            lm_lane.append(lane)
            lm_mov.append(k)

    from_node = np.array([node_index[x.from_node] for x in spec.links], dtype=np.int64)
    to_node = np.array([node_index[x.to_node] for x in spec.links], dtype=np.int64)
    link_next, link_prev = _single_neighbours(from_node, to_node)
    link_to_indptr, link_to = _csr([[link_index[t] for t in x.to_links or ()] for x in spec.links])
    det_ids = tuple(d.id for d in spec.detectors)
    return CompiledNetwork(
        spec=spec,
        link_ids=link_ids,
        link_index=link_index,
        link_length=_frozen(np.array([x.length for x in spec.links], dtype=np.float64)),
        link_lanes=_frozen(np.array([x.lanes for x in spec.links], dtype=np.int64)),
        link_speed=_frozen(np.array([x.speed for x in spec.links], dtype=np.float64)),
        link_cross_s=_frozen(np.array([x.cross_s for x in spec.links], dtype=np.float64)),
        link_storage=_frozen(
            np.array([x.length * x.lanes / JAM_SPACING_M for x in spec.links], dtype=np.float64)
        ),
        link_from_node=_frozen(from_node),
        link_to_node=_frozen(to_node),
        link_to_indptr=_frozen(link_to_indptr),
        link_to=_frozen(link_to),
        link_to_known=_frozen(np.array([x.to_links is not None for x in spec.links], dtype=np.bool_)),
        link_next=_frozen(link_next),
        link_prev=_frozen(link_prev),
        node_ids=node_ids,
        mov_from=_frozen(mov_from),
        mov_to=_frozen(mov_to),
        mov_int=_frozen(mov_int),
        mov_lanes=_frozen(mov_lanes),
        link_mov_indptr=_frozen(link_mov_indptr),
        link_mov=_frozen(link_mov),
        int_ids=int_ids,
        int_index=int_index,
        int_phase_indptr=_frozen(int_phase_indptr),
        phase_int=_frozen(np.repeat(np.arange(len(int_ids), dtype=np.int64), counts)),
        phase_duration=_frozen(np.array(durations, dtype=np.float64)),
        phase_min=_frozen(np.array(mins, dtype=np.float64)),
        phase_max=_frozen(np.array(maxs, dtype=np.float64)),
        phase_is_green=_frozen(np.array(greens, dtype=np.bool_)),
        phase_mov_indptr=_frozen(phase_mov_indptr),
        phase_mov=_frozen(phase_mov),
        int_ped_min=_frozen(np.array([i.ped_min_green for i in spec.intersections], dtype=np.float64)),
        lane_mov_link=_frozen(np.array(lm_link, dtype=np.int64)),
        lane_mov_lane=_frozen(np.array(lm_lane, dtype=np.int64)),
        lane_mov_mov=_frozen(np.array(lm_mov, dtype=np.int64)),
        det_ids=det_ids,
        det_index={d: k for k, d in enumerate(det_ids)},
        det_link=_frozen(np.array([link_index[d.link] for d in spec.detectors], dtype=np.int64)),
        det_lane=_frozen(np.array([d.lane for d in spec.detectors], dtype=np.int64)),
        det_pos=_frozen(np.array([d.pos for d in spec.detectors], dtype=np.float64)),
        det_length=_frozen(np.array([d.length for d in spec.detectors], dtype=np.float64)),
        det_kind=_frozen(
            np.array([DETECTOR_KINDS.index(d.kind) for d in spec.detectors], dtype=np.int64)
        ),
    )


def _single_neighbours(from_node: np.ndarray, to_node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per link, its only successor and only predecessor ignoring U-turns (-1 if none or many):
    how a road continues through a pass-through node such as the start of a turn bay."""
    n_nodes = int(max(from_node.max(), to_node.max())) + 1 if from_node.size else 0
    leaving, entering = _group(from_node, n_nodes), _group(to_node, n_nodes)
    nxt = np.full(from_node.size, -1, dtype=np.int64)
    prv = np.full(from_node.size, -1, dtype=np.int64)
    for k in range(from_node.size):
        onward = [j for j in leaving[to_node[k]] if to_node[j] != from_node[k]]
        feeding = [j for j in entering[from_node[k]] if from_node[j] != to_node[k]]
        nxt[k] = onward[0] if len(onward) == 1 else -1
        prv[k] = feeding[0] if len(feeding) == 1 else -1
    return nxt, prv


def _group(keys: np.ndarray, n: int) -> list[list[int]]:
    groups: list[list[int]] = [[] for _ in range(n)]
    for k, key in enumerate(keys.tolist()):
        groups[key].append(k)
    return groups
