"""The scan chain on the 2x2 grid: counts -> QA -> estimate -> optimize -> validate -> plans."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signalopt.errors import CountsError
from signalopt.network import CompiledNetwork
from signalopt.plan import check_plans
from signalopt.scan import ScanConfig, initial_scan_state, run_scan


def synthetic_counts(net: CompiledNetwork, t0: float, n: int, *, ew: int, ns: int) -> pd.DataFrame:
    """Constant counts per 30 s interval: east-west links carry ``ew`` vehicles, north-south ``ns``."""
    rows = []
    for d, did in enumerate(net.det_ids):
        link = net.spec.links[int(net.det_link[d])]
        horizontal = link.from_node[2:] == link.to_node[2:] or "bE" in link.id or "bW" in link.id
        c = ew if horizontal else ns
        for k in range(n):
            rows.append((did, t0 + 30.0 * k, c, 100 * c * 0.36 / 30, 10.0 if c else np.nan))
    return pd.DataFrame(rows, columns=["detector_id", "interval_start", "count", "occupancy", "speed"])


def test_scan_produces_valid_plans_that_follow_demand(grid2x2_net: CompiledNetwork) -> None:
    config = ScanConfig()
    state = initial_scan_state(grid2x2_net)
    res = run_scan(grid2x2_net, synthetic_counts(grid2x2_net, 0, 4, ew=8, ns=2), state, config, t=120)
    assert res.version == 1
    assert res.rejected == []
    res2 = run_scan(grid2x2_net, synthetic_counts(grid2x2_net, 120, 4, ew=8, ns=2), res.state,
                    config, t=240)
    assert res2.version == 2
    plans = res2.plans(grid2x2_net, valid_s=240)
    check_plans(plans, grid2x2_net, limits=config.limits)  # raises on any violation
    assert all(p.valid_until == 480 for p in plans)
    # heavier east-west demand gets the longer green at every intersection
    ptr = grid2x2_net.int_phase_indptr
    for i in range(grid2x2_net.n_intersections):
        ns_green, ew_green = res2.plan.duration[ptr[i]], res2.plan.duration[ptr[i] + 2]
        assert ew_green > ns_green
    assert set(res2.timings_ms) == {"estimate", "optimize", "validate"}


def test_scan_without_any_data_is_an_error(grid2x2_net: CompiledNetwork) -> None:
    empty = synthetic_counts(grid2x2_net, 0, 0, ew=0, ns=0)
    with pytest.raises(CountsError):
        run_scan(grid2x2_net, empty, initial_scan_state(grid2x2_net), ScanConfig(), t=120)


def test_frozen_intersection_is_never_changed(grid2x2_net: CompiledNetwork) -> None:
    config = ScanConfig()
    res = run_scan(grid2x2_net, synthetic_counts(grid2x2_net, 0, 4, ew=2, ns=2),
                   initial_scan_state(grid2x2_net), config, t=120)
    frozen = np.zeros(grid2x2_net.n_intersections, dtype=bool)
    frozen[0] = True
    res2 = run_scan(grid2x2_net, synthetic_counts(grid2x2_net, 120, 4, ew=9, ns=1), res.state,
                    config, t=240, frozen=frozen)
    ptr = grid2x2_net.int_phase_indptr
    np.testing.assert_array_equal(res2.plan.duration[ptr[0]:ptr[1]], res.plan.duration[ptr[0]:ptr[1]])
    assert not np.array_equal(res2.plan.duration[ptr[1]:ptr[2]], res.plan.duration[ptr[1]:ptr[2]])


def test_a_feed_whose_interval_does_not_tile_the_scan_is_refused() -> None:
    """A scan closes on an interval's end, so the feed's interval must divide the scan: 60 s
    does, 45 s and 0 s do not (a clear error naming both), and 45 s tiles a 135 s scan."""
    assert ScanConfig().at_interval(60.0).estimator.interval_s == 60.0
    with pytest.raises(CountsError, match=r"every 45 s, which does not divide the 120 s scan"):
        ScanConfig().at_interval(45.0)
    with pytest.raises(CountsError, match="every 0 s"):
        ScanConfig().at_interval(0.0)
    assert ScanConfig(scan_s=135.0).at_interval(45.0).estimator.interval_s == 45.0
