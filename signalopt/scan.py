"""One scan: detector counts -> QA -> estimate -> optimize -> validate -> plans. Pure, no clock.

``run_scan`` is called every 120 s (of simulated or wall-clock time) by ``live.py`` or by the
SUMO controller; everything it needs from the previous scan travels in ``ScanState``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import Field

from signalopt import estimate
from signalopt.config import EstimatorParams, OptimizerParams, QAParams, _Params, divides_scan
from signalopt.detectors import DetectorFrame
from signalopt.errors import CountsError
from signalopt.network import CompiledNetwork
from signalopt.optimize import OptimizerState, PlanArrays, initial_state, optimize
from signalopt.plan import PlanLimits, TimingPlan, array_problems, build_plans, describe

log = logging.getLogger(__name__)


class ScanConfig(_Params):
    """Everything a scan needs besides data: stage parameters and the scan period."""

    scan_s: float = Field(default=120.0, gt=0)
    qa: QAParams = QAParams()
    estimator: EstimatorParams = EstimatorParams()
    optimizer: OptimizerParams = OptimizerParams()

    def at_interval(self, interval_s: float) -> ScanConfig:
        """This config for detectors reporting every ``interval_s`` (a property of the feed,
        not a choice: the estimator reads each interval's counts as that long). It must tile
        the scan: a scan closes on an interval's end."""
        if not divides_scan(interval_s, self.scan_s):
            msg = (f"the detectors report every {interval_s:g} s, which does not divide the "
                   f"{self.scan_s:g} s scan: aggregate the counts to an interval that does "
                   f"(e.g. 30 s) or choose a scan that is a multiple of {interval_s:g} s")
            raise CountsError(msg)
        if self.estimator.interval_s == interval_s:
            return self
        est = EstimatorParams.model_validate({**self.estimator.model_dump(),
                                              "interval_s": interval_s})
        return self.model_copy(update={"estimator": est})

    @property
    def limits(self) -> PlanLimits:
        """Plan invariants derived from the optimizer's own bounds (one source of truth)."""
        o = self.optimizer
        return PlanLimits(min_green_s=o.min_green_s, min_cycle_s=o.min_cycle_s,
                          max_cycle_s=o.max_cycle_s, max_cycle_change_s=o.max_cycle_change_s,
                          max_green_change_s=o.max_green_change_s, scan_s=self.scan_s)


class ScanState(NamedTuple):
    """What one scan hands to the next."""

    estimator: estimate.EstimatorState | None
    optimizer: OptimizerState
    version: int
    model: estimate.EstimatorModel  # network-static estimator arrays, compiled once
    last: estimate.Estimate | None = None


class ScanResult(NamedTuple):
    """Outputs of one scan: the estimate, validated plan arrays, rejected rows and timings."""

    t: float
    estimate: Any
    plan: PlanArrays
    version: int
    rejected: list[str]
    state: ScanState
    timings_ms: dict[str, float]

    def plans(self, net: CompiledNetwork, *, valid_s: float) -> list[TimingPlan]:
        """The plans as ``TimingPlan`` objects (built at the edge, for publish/export)."""
        p = self.plan
        return build_plans(net, (p.cycle, p.offset, p.duration, p.min_dur, p.max_dur),
                           version=self.version, created_at=self.t, valid_s=valid_s)


def initial_scan_state(net: CompiledNetwork) -> ScanState:
    """State before the first scan: no history, network-static parts precomputed."""
    return ScanState(estimator=None, optimizer=initial_state(net), version=0,
                     model=estimate.estimator_model(net))


def run_scan(
    net: CompiledNetwork,
    counts: pd.DataFrame | DetectorFrame,
    state: ScanState,
    config: ScanConfig,
    *,
    t: float,
    frozen: np.ndarray | None = None,
) -> ScanResult:
    """Run one scan over the detector intervals received since the previous one.

    ``counts`` is an accepted counts table, or the same data already as dense arrays
    (``DetectorFrame``, what a live feed keeps) so the scan does no string matching.
    """
    t0 = time.perf_counter()
    # 1. QA, imputation and in-transit estimate from the new intervals (detector data only)
    ests, est_state = estimate.run_estimator(counts, net, config.estimator, state.estimator,
                                             qa_params=config.qa, model=state.model)
    if ests:
        est = ests[-1]
    elif est_state.acc_intervals > 0:  # scan boundary not aligned with the data: close it now
        est, est_state = estimate.summarize(state.model, est_state, params=config.estimator)
    elif state.last is not None:
        est = state.last
    else:
        msg = "run_scan needs at least one detector interval before the first scan"
        raise CountsError(msg)
    t1 = time.perf_counter()
    # 2. cycle, splits, offsets, actuation bounds from the estimated movement demand
    plan, opt_state = optimize(net, est.mov_flow, est.mov_queue, state.optimizer,
                               config.optimizer, frozen=frozen)
    t2 = time.perf_counter()
    # 3. the invariants: an intersection whose plan fails keeps its previous one
    prev = state.optimizer.plan
    bad = array_problems(net, plan.cycle, plan.offset, plan.duration, plan.min_dur, plan.max_dur,
                         limits=config.limits, prev_duration=None if prev is None else prev.duration)
    rejected = describe(net, bad)
    if rejected:
        plan = _revert(net, plan, prev, bad.any(axis=1))
        opt_state = opt_state._replace(plan=plan)
    t3 = time.perf_counter()
    version = state.version + 1
    timings = {"estimate": 1e3 * (t1 - t0), "optimize": 1e3 * (t2 - t1), "validate": 1e3 * (t3 - t2)}
    log.info("scan v%d t=%.0f: %d plans, %d rejected, %.1f ms", version, t, net.n_intersections,
             len(rejected), 1e3 * (t3 - t0))
    return ScanResult(t, est, plan, version, rejected,
                      ScanState(est_state, opt_state, version, state.model, est), timings)


def _revert(net: CompiledNetwork, plan: PlanArrays, prev: PlanArrays | None,
            rows: np.ndarray) -> PlanArrays:
    """Replace rejected intersections by their previous plan, or the network's base program."""
    owner = net.phase_int
    base_cycle = np.add.reduceat(net.phase_duration, net.int_phase_indptr[:-1])
    if prev is None:
        prev = PlanArrays(base_cycle, np.zeros_like(base_cycle), net.phase_duration.copy(),
                          net.phase_duration.copy(), net.phase_duration.copy(), plan.phase_y)
    rp = rows[owner]
    return PlanArrays(
        np.where(rows, prev.cycle, plan.cycle), np.where(rows, prev.offset, plan.offset),
        np.where(rp, prev.duration, plan.duration), np.where(rp, prev.min_dur, plan.min_dur),
        np.where(rp, prev.max_dur, plan.max_dur), plan.phase_y,
    )
