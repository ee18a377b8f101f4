"""The live driver: every scan period, stored counts -> scan -> validate -> publish.

This is the only place in ``signalopt/`` with a clock. ``LiveDriver.step(t)`` runs one scan
at plan-clock time ``t`` (pure apart from the store); ``advance(t)`` runs every scan boundary
up to ``t`` (simulated time, e.g. a SUMO replay); ``run(stop)`` follows the wall clock.

Safety: every plan goes through ``signalopt.plan.plan_problems`` (failures are dropped and
reported, never stored); frozen intersections are skipped here and again inside the store's
publish transaction; if scans stop, stored plans expire at ``valid_until`` and the service
tells adapters to fall back.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from signalopt.network import CompiledNetwork
from signalopt.plan import PlanLimits, TimingPlan, plan_problems
from signalopt.store import PlanStore

log = logging.getLogger(__name__)


class ScanFn(Protocol):
    """One scan: counts since the last scan + previous state -> (plans, next state)."""

    def __call__(self, net: CompiledNetwork, counts: pd.DataFrame, state: Any, *, t: float,
                 frozen: np.ndarray) -> tuple[list[TimingPlan], Any]: ...


def engine_scan(config: Any = None) -> ScanFn:
    """The engine's ``signalopt.scan.run_scan`` as a ``ScanFn`` (plans valid two scans)."""
    from signalopt.scan import ScanConfig, initial_scan_state, run_scan  # noqa: PLC0415

    cfg = config or ScanConfig()

    def scan(net: CompiledNetwork, counts: pd.DataFrame, state: Any, *, t: float,
             frozen: np.ndarray) -> tuple[list[TimingPlan], Any]:
        state = initial_scan_state(net) if state is None else state
        res = run_scan(net, counts, state, cfg, t=t, frozen=frozen)
        return res.plans(net, valid_s=2 * cfg.scan_s), res.state

    return scan


@dataclass
class ScanReport:
    """What one scan did: plans published, skipped (frozen/version) and rejected (invariants)."""

    t: float
    n_counts: int = 0
    published: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    error: str | None = None
    wall_ms: float = 0.0
    flagged: dict[str, str] = field(default_factory=dict)  # detector id -> QA flags this scan


class LiveDriver:
    """Runs the scan against a ``PlanStore`` on a scan-period clock.

    Parameters
    ----------
    store
        Source of counts and frozen flags, destination of plans.
    net
        The compiled network the scan and the validator use.
    scan
        The scan function (``engine_scan()`` in production; a fake in tests).
    limits
        Invariant limits for ``plan_problems``; ``limits.scan_s`` is the scan period.
    require_approval
        Store plans as pending; an engineer approves them through the API.
    on_report
        Called with each scan's report (e.g. to export its QA verdict as metrics).
    """

    def __init__(self, store: PlanStore, net: CompiledNetwork, *, scan: ScanFn,
                 limits: PlanLimits | None = None, require_approval: bool = False,
                 actor: str = "scan",
                 on_report: Callable[[ScanReport], None] | None = None) -> None:
        self.store, self.net, self.scan = store, net, scan
        self.on_report = on_report
        self.limits = limits or PlanLimits()
        self.require_approval, self.actor = require_approval, actor
        self.bases = {i.id: i for i in net.spec.intersections}
        self.state: Any = None
        self.next_t: float | None = None
        self.reports: list[ScanReport] = []

    @property
    def scan_s(self) -> float:
        return self.limits.scan_s

    def step(self, t: float) -> ScanReport:
        """One scan at plan-clock ``t`` over counts with ``t - scan_s <= interval_start < t``."""
        w0 = time.perf_counter()
        report = ScanReport(t=t)
        counts = self.store.counts_between(t - self.scan_s, t)
        report.n_counts = len(counts)
        frozen = self.store.frozen()
        mask = np.array([i in frozen for i in self.net.int_ids], dtype=bool)
        plans, self.state = self.scan(self.net, counts, self.state, t=t, frozen=mask)
        report.flagged = self._flagged()
        good = self._validated(plans, frozen, t, report)
        res = self.store.publish(good, actor=self.actor, pending=self.require_approval,
                                 detail=f"scan at t={t:.0f}")
        report.published = [p.intersection for p in res.stored]
        report.skipped.update(res.skipped)
        report.wall_ms = 1e3 * (time.perf_counter() - w0)
        log.info("scan t=%.0f: %d counts, %d published, %d skipped, %d rejected, %.0f ms", t,
                 report.n_counts, len(report.published), len(report.skipped),
                 len(report.rejected), report.wall_ms)
        self.reports.append(report)
        if self.on_report is not None:
            self.on_report(report)
        return report

    def _flagged(self) -> dict[str, str]:
        """The detectors QA flagged in this scan's estimate; each one that starts or stops
        being flagged is logged once (an alarm for the operators, not a line every scan)."""
        from signalopt.detectors import flag_names  # noqa: PLC0415

        last = getattr(self.state, "last", None)
        if last is None:
            return {}
        flags = np.asarray(last.detector_flags)
        now = {self.net.det_ids[d]: flag_names(flags[d]) for d in np.flatnonzero(flags)}
        before = self.reports[-1].flagged if self.reports else {}
        for det in sorted(now.keys() - before.keys()):
            log.warning("detector %s flagged by QA: %s (its values are imputed)", det, now[det])
        for det in sorted(before.keys() - now.keys()):
            log.info("detector %s healthy again", det)
        return now

    def _validated(self, plans: list[TimingPlan], frozen: dict[str, Any], t: float,
                   report: ScanReport) -> list[TimingPlan]:
        """Drop frozen intersections and invariant failures; renumber above stored versions.

        The bounded-change check compares with the current plan only while it is still valid:
        once it has expired the controllers run their fallback, not that plan.
        """
        latest = self.store.latest_versions()
        current = self.store.current_all()
        good = []
        for proposed in plans:
            iid = proposed.intersection
            if iid in frozen:
                report.skipped[iid] = f"intersection {iid!r} is frozen"
                continue
            base = self.bases.get(iid)
            if base is None:
                report.rejected.append(f"plan for unknown intersection {iid!r}")
                continue
            version = max(proposed.version, latest.get(iid, 0) + 1)
            plan = proposed if version == proposed.version else proposed.model_copy(
                update={"version": version})
            prev = current.get(iid)
            prev = prev if prev is not None and prev.valid_until > t else None
            problems = plan_problems(plan, base, limits=self.limits, prev=prev)
            if problems:
                report.rejected += problems
                continue
            good.append(plan)
        return good

    def advance(self, t: float) -> list[ScanReport]:
        """Run every scan boundary (multiples of ``scan_s``) up to and including ``t``."""
        if self.next_t is None:
            self.next_t = math.floor(t / self.scan_s) * self.scan_s
            if self.next_t <= 0:
                self.next_t += self.scan_s
        done = []
        while self.next_t <= t + 1e-9:
            done.append(self.safe_step(self.next_t))
            self.next_t += self.scan_s
        return done

    def safe_step(self, t: float) -> ScanReport:
        """``step`` that logs and reports a failure instead of ending the loop.

        A long-running loop must survive one bad scan: plans then simply expire and adapters
        fall back, which is the safe outcome; the error is kept in the report and the log.
        """
        try:
            return self.step(t)
        except Exception as exc:
            log.exception("scan at t=%.0f failed", t)
            report = ScanReport(t=t, error=f"{exc.__class__.__name__}: {exc}")
            self.reports.append(report)
            return report

    def run(self, stop: threading.Event, *, clock: Callable[[], float] = time.time,
            lag_s: float = 2.0, poll_s: float = 1.0) -> None:
        """Follow the wall clock until ``stop`` is set: scan each boundary ``lag_s`` late
        (so counts for intervals ending at the boundary have arrived); wake every ``poll_s``."""
        while not stop.is_set():
            now = clock() - lag_s
            if self.next_t is None:
                self.next_t = math.floor(now / self.scan_s) * self.scan_s + self.scan_s
            if now >= self.next_t:
                # after a stall, skip to the latest boundary rather than replaying old scans
                self.next_t = math.floor(now / self.scan_s) * self.scan_s
                self.safe_step(self.next_t)
                self.next_t += self.scan_s
            stop.wait(min(poll_s, max(0.001, self.next_t - now)))
