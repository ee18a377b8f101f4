"""Apply plan arrays to SUMO at cycle boundaries, moving offsets smoothly; fall back on rejection.

A new plan never cuts into a running phase: it is loaded when the intersection's phase 0
(first green) starts. The offset is then reached by lengthening or shortening that first
green only (never below the minimum green, never touching a clearance), like the 'dwell' and
'shortway' transition methods of field controllers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from signalopt.network import CompiledNetwork
from signalopt.optimize import PlanArrays

TLS_STATIC, TLS_ACTUATED = 0, 3


class PlanApplier:
    """Holds the pending plan of every intersection and loads it at its next cycle start."""

    def __init__(self, api: Any, net: CompiledNetwork, *, actuated: bool, min_green: float,
                 max_extend_frac: float = 0.5) -> None:
        self._api, self._net, self._actuated = api, net, actuated
        self._min_green, self._max_extend = min_green, max_extend_frac
        self._pending = np.zeros(net.n_intersections, dtype=bool)
        self._plan: PlanArrays | None = None
        tl = api.trafficlight
        self._last_phase = [tl.getPhase(i) for i in net.int_ids]
        self.applied = 0
        self.rejected: list[str] = []

    def submit(self, plan: PlanArrays, which: np.ndarray | None = None) -> None:
        """Make ``plan`` pending for every intersection (or those in ``which``)."""
        self._plan = plan
        self._pending[:] = True if which is None else which

    def on_step(self, t: float) -> None:
        """Load pending plans at cycle starts (call every simulated second)."""
        if self._plan is None or not self._pending.any():
            return
        tl = self._api.trafficlight
        for i in np.nonzero(self._pending)[0].tolist():
            tls = self._net.int_ids[i]
            phase = tl.getPhase(tls)
            if phase == 0 and self._last_phase[i] != 0:
                self._load(i, t)
                self._pending[i] = False
            self._last_phase[i] = phase

    def _load(self, i: int, t: float) -> None:
        net, plan, tl = self._net, self._plan, self._api.trafficlight
        a, b = net.int_phase_indptr[i], net.int_phase_indptr[i + 1]
        inter = net.spec.intersections[i]
        phases = [tl.Phase(float(plan.duration[k]), p.state, float(plan.min_dur[k]), float(plan.max_dur[k]))
                  for k, p in zip(range(a, b), inter.phases, strict=True)]
        kind = TLS_ACTUATED if self._actuated else TLS_STATIC
        try:
            tl.setProgramLogic(inter.id, tl.Logic("signalopt", kind, 0, phases))
            tl.setPhase(inter.id, 0)
            if not self._actuated:
                tl.setPhaseDuration(inter.id, self._first_green(i, a, t))
            self.applied += 1
        except Exception as exc:
            self.rejected.append(f"{inter.id} at {t:.0f}: {exc}")

    def _first_green(self, i: int, a: int, t: float) -> float:
        """First green adjusted so phase 0 starts at offset + k * cycle from the next cycle on."""
        plan = self._plan
        cycle, g0 = float(plan.cycle[i]), float(plan.duration[a])
        delta = (float(plan.offset[i]) - t) % cycle  # how late the ideal start is
        if delta <= cycle / 2:
            return g0 + min(delta, self._max_extend * cycle)
        return max(g0 - (cycle - delta), self._min_green)
