"""Hypothesis invariants of the optimizer's plans: ring sums, minimum greens, clearances,
offset range, bounded change per scan; and the validator catches each violation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from signalopt.config import OptimizerParams
from signalopt.optimize import initial_state, optimize
from signalopt.plan import PlanLimits, array_problems, build_plans, plan_problems
from tests.plan_nets import two_in_a_row

NET = two_in_a_row()
flows = st.lists(st.floats(0, 3000), min_size=4, max_size=4).map(np.array)
queues = st.lists(st.floats(0, 40), min_size=4, max_size=4).map(np.array)
params_st = st.builds(
    OptimizerParams,
    common_cycle=st.booleans(), coordinate=st.booleans(),
    local_control=st.sampled_from(["fixed", "actuated", "pressure"]),
    y_smoothing=st.floats(0.1, 1.0), max_cycle_change_s=st.floats(5, 40),
    max_green_change_s=st.floats(5, 30),
)


def limits_of(p: OptimizerParams) -> PlanLimits:
    return PlanLimits(min_green_s=p.min_green_s, min_cycle_s=p.min_cycle_s, max_cycle_s=p.max_cycle_s,
                      max_cycle_change_s=p.max_cycle_change_s, max_green_change_s=p.max_green_change_s)


@settings(max_examples=60, deadline=None)
@given(params=params_st, scans=st.lists(st.tuples(flows, queues), min_size=1, max_size=5))
def test_every_scan_plan_satisfies_invariants(params: OptimizerParams, scans: list) -> None:
    state = initial_state(NET)
    prev = None
    for version, (f, q) in enumerate(scans, start=1):
        plan, state = optimize(NET, f, q, state, params)
        bad = array_problems(NET, plan.cycle, plan.offset, plan.duration, plan.min_dur,
                             plan.max_dur, limits=limits_of(params),
                             prev_duration=None if prev is None else prev.duration)
        assert not bad.any(), bad
        assert ((plan.offset >= 0) & (plan.offset < plan.cycle)).all()
        for tp in build_plans(NET, (plan.cycle, plan.offset, plan.duration, plan.min_dur, plan.max_dur),
                              version=version, created_at=0.0, valid_s=240.0):
            base = NET.spec.intersections[NET.int_index[tp.intersection]]
            assert plan_problems(tp, base, limits=limits_of(params)) == []
        prev = plan


@settings(max_examples=40, deadline=None)
@given(f=flows, k=st.sampled_from([1, 3]), cut=st.floats(0.1, 2.9))
def test_validator_rejects_shortened_clearance(f: np.ndarray, k: int, cut: float) -> None:
    params = OptimizerParams()
    plan, _ = optimize(NET, f, np.zeros(4), initial_state(NET), params)
    dur = plan.duration.copy()
    dur[k] -= cut  # shorten a yellow, give the time to the green before it (ring sum kept)
    dur[k - 1] += cut
    lo = np.minimum(plan.min_dur, dur)
    bad = array_problems(NET, plan.cycle, plan.offset, dur, lo, np.maximum(plan.max_dur, dur),
                         limits=limits_of(params))
    assert bad[0, 2]


@settings(max_examples=40, deadline=None)
@given(f=flows, extra=st.floats(0.01, 50))
def test_validator_rejects_ring_sum_and_offset(f: np.ndarray, extra: float) -> None:
    params = OptimizerParams()
    plan, _ = optimize(NET, f, np.zeros(4), initial_state(NET), params)
    limits = limits_of(params)
    bad = array_problems(NET, plan.cycle + extra, plan.offset, plan.duration, plan.min_dur,
                         plan.max_dur, limits=limits)
    assert bad[:, 0].all()
    bad = array_problems(NET, plan.cycle, plan.offset + plan.cycle, plan.duration, plan.min_dur,
                         plan.max_dur, limits=limits)
    assert bad[:, 4].all()
