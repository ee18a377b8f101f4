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

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signalopt.errors import PlanInvariantError
from signalopt.network import CompiledNetwork, IntersectionSpec

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


def plan_problems(  # noqa: C901, PLR0912
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
    for ring in plan.rings:
        total = sum(plan.phases[k].duration for k in ring)
        if abs(total - plan.cycle) > 1e-3:
            out.append(f"{who}: ring {ring} sums to {total:.3f} s, cycle is {plan.cycle:.3f} s")
    covered = sorted(k for ring in plan.rings for k in ring)
    if covered != list(range(len(plan.phases))):
        out.append(f"{who}: rings {plan.rings} must cover each phase exactly once")
    min_green = max(limits.min_green_s, base.ped_min_green)
    for k, (p, b) in enumerate(zip(plan.phases, base.phases, strict=True)):
        if p.state != b.state:
            out.append(f"{who} phase {k}: state {p.state!r} is not the network's {b.state!r}")
        if p.is_green != b.is_green:
            out.append(f"{who} phase {k}: green/clearance role differs from the network")
        if b.is_green:
            if p.duration < min_green - TOL or p.min_dur < min_green - TOL:
                out.append(f"{who} phase {k}: green {p.duration:.1f} s (min {p.min_dur:.1f}) "
                           f"below minimum green {min_green:.1f} s")
        elif p.duration < b.duration - TOL or p.min_dur < b.duration - TOL:
            out.append(f"{who} phase {k}: clearance {p.duration:.1f} s shorter than the "
                       f"network's {b.duration:.1f} s")
        if not p.min_dur - TOL <= p.duration <= p.max_dur + TOL:
            out.append(f"{who} phase {k}: duration {p.duration:.1f} outside actuation bounds "
                       f"[{p.min_dur:.1f}, {p.max_dur:.1f}]")
    if not 0 <= plan.offset < plan.cycle:
        out.append(f"{who}: offset {plan.offset:.2f} not in [0, cycle={plan.cycle:.2f})")
    if plan.source == "scan" and not limits.min_cycle_s - TOL <= plan.cycle <= limits.max_cycle_s + TOL:
        out.append(f"{who}: cycle {plan.cycle:.1f} outside [{limits.min_cycle_s}, {limits.max_cycle_s}]")
    horizon = plan.created_at + 2 * limits.scan_s + TOL
    if plan.source == "scan" and not plan.created_at < plan.valid_until <= horizon:
        out.append(f"{who}: valid_until must be within two scans after created_at")
    if prev is not None and prev.source == "scan" and plan.source == "scan":
        out += _change_problems(plan, prev, limits, who)
    return out


def _change_problems(plan: TimingPlan, prev: TimingPlan, limits: PlanLimits, who: str) -> list[str]:
    """Bounded change per scan versus the previous plan (smooth transitions)."""
    out = []
    if abs(plan.cycle - prev.cycle) > limits.max_cycle_change_s + TOL:
        out.append(f"{who}: cycle moved {plan.cycle - prev.cycle:+.1f} s in one scan "
                   f"(limit {limits.max_cycle_change_s} s)")
    if len(prev.phases) == len(plan.phases):
        for k, (a, b) in enumerate(zip(plan.phases, prev.phases, strict=True)):
            if a.is_green and abs(a.duration - b.duration) > limits.max_green_change_s + TOL:
                out.append(f"{who} phase {k}: green moved {a.duration - b.duration:+.1f} s "
                           f"(limit {limits.max_green_change_s} s)")
    if plan.version <= prev.version:
        out.append(f"{who}: version must increase (previous v{prev.version})")
    return out


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
