"""Timing plans are data: immutable, versioned, validated against safety invariants.

One validator (``plan_problems``) guards everything that is applied to SUMO or published:

1. every ring's phases sum to the cycle;
2. each green ≥ the minimum green and the pedestrian minimum, so each split ≥ min green +
   yellow + all-red;
3. clearances (yellow, all-red) are copied from the network: same states, never shorter;
4. the phase sequence is the network's own (no invented or skipped phases);
5. offset in [0, cycle), measured from ``offset_reference``;
6. actuation bounds hold: min ≤ duration ≤ max;
7. change versus the previous plan bounded (cycle, each green, offset);
8. ``valid_until`` after ``created_at`` and at most two scans ahead.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signalopt.errors import PlanInvariantError
from signalopt.network import (
    CompiledNetwork,
    IntersectionSpec,
)

OFFSET_REFERENCE = "start of phase 0 (first green) relative to t = 0 of the plan clock, mod cycle"
TOL = 1e-6


class PlanLimits(BaseModel):
    """Safety limits a plan must respect; defaults hold across scenarios."""

    model_config = ConfigDict(frozen=True)

    min_green_s: float = Field(default=5.0, gt=0)
    min_cycle_s: float = Field(default=30.0, gt=0)
    max_cycle_s: float = Field(default=180.0, gt=0)
    max_cycle_change_s: float = Field(default=20.0, gt=0, description="per scan")
    max_green_change_s: float = Field(default=15.0, gt=0, description="per phase per scan")
    scan_s: float = Field(default=120.0, gt=0)


class PhaseTiming(BaseModel):
    """One phase of a plan in program order; greens carry actuation bounds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: str
    duration: float = Field(gt=0)
    min_dur: float = Field(gt=0)
    max_dur: float = Field(gt=0)
    is_green: bool


class TimingPlan(BaseModel):
    """A versioned, immutable signal timing plan for one intersection."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    intersection: str
    version: int = Field(ge=1)
    created_at: float = Field(description="plan clock seconds when it was computed")
    valid_until: float
    cycle: float = Field(gt=0)
    offset: float = Field(ge=0)
    offset_reference: str = OFFSET_REFERENCE
    phases: tuple[PhaseTiming, ...] = Field(min_length=1)
    rings: tuple[tuple[int, ...], ...] = Field(min_length=1, description="phase indices per ring")
    source: Literal["scan", "engineer", "fallback", "offline"] = "scan"

    @property
    def greens(self) -> np.ndarray:
        return np.array([p.duration for p in self.phases if p.is_green])


def fallback_plan(inter: IntersectionSpec, *, created_at: float = 0.0, version: int = 1,
                  valid_s: float = 1e12) -> TimingPlan:
    """The intersection's own base program as a plan: what adapters fall back to."""
    phases = tuple(
        PhaseTiming(state=p.state, duration=p.duration, min_dur=p.min_dur, max_dur=p.max_dur,
                    is_green=p.is_green)
        for p in inter.phases
    )
    cycle = inter.cycle
    return TimingPlan(
        intersection=inter.id, version=version, created_at=created_at,
        valid_until=created_at + valid_s, cycle=cycle, offset=inter.offset % cycle,
        phases=phases, rings=(tuple(range(len(phases))),), source="fallback",
    )


CHECKS = (
    "ring sum != cycle",
    "green below minimum green",
    "clearance shorter than the network's",
    "duration outside actuation bounds [min_dur, max_dur]",
    "offset not in [0, cycle)",
    "cycle outside [min_cycle, max_cycle]",
    "cycle changed more than max_cycle_change_s in one scan",
    "a green changed more than max_green_change_s in one scan",
)


def array_problems(
    net: CompiledNetwork,
    cycle: np.ndarray,
    offset: np.ndarray,
    duration: np.ndarray,
    min_dur: np.ndarray,
    max_dur: np.ndarray,
    *,
    limits: PlanLimits,
    prev_duration: np.ndarray | None = None,
    scan_plans: bool = True,
) -> np.ndarray:
    """Boolean (n_intersections, len(CHECKS)) matrix: which numeric invariant each breaks.

    The one numeric validator: ``plan_problems`` (single plans) and the scan (all plans at
    once, vectorised) both call it.
    """
    ptr = net.int_phase_indptr
    n = net.n_intersections
    bad = np.zeros((n, len(CHECKS)), dtype=bool)
    if n == 0:
        return bad
    owner = net.phase_int
    green = net.phase_is_green
    min_green = np.maximum(limits.min_green_s, net.int_ped_min)[owner]
    ring = np.add.reduceat(duration, ptr[:-1])
    bad[:, 0] = np.abs(ring - cycle) > 1e-3
    low_green = green & ((duration < min_green - TOL) | (min_dur < min_green - TOL))
    short_clear = ~green & ((duration < net.phase_duration - TOL) | (min_dur < net.phase_duration - TOL))
    out_bounds = (duration < min_dur - TOL) | (duration > max_dur + TOL)
    bad[:, 1] = np.logical_or.reduceat(low_green, ptr[:-1])
    bad[:, 2] = np.logical_or.reduceat(short_clear, ptr[:-1])
    bad[:, 3] = np.logical_or.reduceat(out_bounds, ptr[:-1])
    bad[:, 4] = ~((offset >= 0) & (offset < cycle))
    if scan_plans:
        bad[:, 5] = (cycle < limits.min_cycle_s - TOL) | (cycle > limits.max_cycle_s + TOL)
    if prev_duration is not None:
        prev_cycle = np.add.reduceat(prev_duration, ptr[:-1])
        bad[:, 6] = np.abs(cycle - prev_cycle) > limits.max_cycle_change_s + TOL
        jump = green & (np.abs(duration - prev_duration) > limits.max_green_change_s + TOL)
        bad[:, 7] = np.logical_or.reduceat(jump, ptr[:-1])
    return bad


def describe(net: CompiledNetwork, bad: np.ndarray) -> list[str]:
    """Messages naming each intersection and the invariant it breaks."""
    rows, cols = np.nonzero(bad)
    return [f"intersection {net.int_ids[i]!r}: {CHECKS[c]}" for i, c in zip(rows, cols, strict=True)]


def plan_problems(
    plan: TimingPlan,
    base: IntersectionSpec,
    *,
    limits: PlanLimits,
    prev: TimingPlan | None = None,
) -> list[str]:
    """Every invariant ``plan`` breaks, as messages naming the intersection and phase."""
    who = f"intersection {plan.intersection!r} v{plan.version}"
    out: list[str] = []
    if plan.intersection != base.id:
        out.append(f"{who}: validated against base program of {base.id!r}")
    if len(plan.phases) != len(base.phases):
        return [*out, f"{who}: {len(plan.phases)} phases but the network has {len(base.phases)}"]
    for k, (p, b) in enumerate(zip(plan.phases, base.phases, strict=True)):
        if p.state != b.state:
            out.append(f"{who} phase {k}: state {p.state!r} is not the network's {b.state!r}")
        if p.is_green != b.is_green:
            out.append(f"{who} phase {k}: green/clearance role differs from the network")
    covered = sorted(k for ring in plan.rings for k in ring)
    if covered != list(range(len(plan.phases))):
        out.append(f"{who}: rings {plan.rings} must cover each phase exactly once")
    for ring in plan.rings:
        total = sum(plan.phases[k].duration for k in ring if k < len(plan.phases))
        if abs(total - plan.cycle) > 1e-3:
            out.append(f"{who}: ring {ring} sums to {total:.3f} s, cycle is {plan.cycle:.3f} s")
    one = _single_network(base)
    arr = lambda attr: np.array([getattr(p, attr) for p in plan.phases])  # noqa: E731
    use_prev = prev is not None and prev.source == "scan" and plan.source == "scan" and (
        len(prev.phases) == len(plan.phases))
    bad = array_problems(
        one, np.array([plan.cycle]), np.array([plan.offset]), arr("duration"), arr("min_dur"),
        arr("max_dur"), limits=limits, scan_plans=plan.source == "scan",
        prev_duration=np.array([p.duration for p in prev.phases]) if use_prev else None,
    )
    out += [f"{who}: {CHECKS[c]}" for c in np.nonzero(bad[0])[0] if c != 0]
    horizon = plan.created_at + 2 * limits.scan_s + TOL
    if plan.source == "scan" and not plan.created_at < plan.valid_until <= horizon:
        out.append(f"{who}: valid_until must be within two scans after created_at")
    if use_prev and plan.version <= prev.version:  # type: ignore[union-attr]
        out.append(f"{who}: version must increase (previous v{prev.version})")  # type: ignore[union-attr]
    return out


class _OneIntersection(NamedTuple):
    """The arrays ``array_problems`` reads, for a single intersection (no compile needed)."""

    int_phase_indptr: np.ndarray
    phase_int: np.ndarray
    phase_is_green: np.ndarray
    phase_duration: np.ndarray
    int_ped_min: np.ndarray
    int_ids: tuple[str, ...]
    n_intersections: int = 1


def _single_network(base: IntersectionSpec) -> CompiledNetwork:
    """``base``'s program as the arrays of a one-intersection network, for the validator."""
    n = len(base.phases)
    one = _OneIntersection(
        np.array([0, n]), np.zeros(n, dtype=np.int64), np.array([p.is_green for p in base.phases]),
        np.array([p.duration for p in base.phases]), np.array([base.ped_min_green]), (base.id,),
    )
    return one  # type: ignore[return-value]  # duck-typed: the fields array_problems reads


def check_plans(
    plans: list[TimingPlan],
    net: CompiledNetwork,
    *,
    limits: PlanLimits,
    prev: dict[str, TimingPlan] | None = None,
) -> None:
    """Raise ``PlanInvariantError`` listing every problem in ``plans``; return if all hold."""
    bases = {i.id: i for i in net.spec.intersections}
    prev = prev or {}
    problems: list[str] = []
    for plan in plans:
        base = bases.get(plan.intersection)
        if base is None:
            problems.append(f"plan for unknown intersection {plan.intersection!r}")
            continue
        problems += plan_problems(plan, base, limits=limits, prev=prev.get(plan.intersection))
    if problems:
        raise PlanInvariantError(problems)


def build_plans(
    net: CompiledNetwork,
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    *,
    version: int,
    created_at: float,
    valid_s: float,
    which: np.ndarray | None = None,
) -> list[TimingPlan]:
    """Turn plan arrays (cycle, offset, duration, min_dur, max_dur) into ``TimingPlan`` objects.

    Built at the edge (publish, export, API); the scan itself stays on arrays.
    """
    cycle, offset, duration, min_dur, max_dur = arrays
    ptr = net.int_phase_indptr
    idx = range(net.n_intersections) if which is None else np.nonzero(which)[0].tolist()
    plans = []
    for i in idx:
        inter = net.spec.intersections[i]
        phases = tuple(
            PhaseTiming(state=p.state, duration=float(duration[k]), min_dur=float(min_dur[k]),
                        max_dur=float(max_dur[k]), is_green=p.is_green)
            for k, p in zip(range(ptr[i], ptr[i + 1]), inter.phases, strict=True)
        )
        plans.append(TimingPlan(
            intersection=inter.id, version=version, created_at=created_at,
            valid_until=created_at + valid_s, cycle=float(cycle[i]), offset=float(offset[i]),
            phases=phases, rings=(tuple(range(len(phases))),), source="scan",
        ))
    return plans
