"""Offline time-of-day plans: clustering, periods, one valid plan per period, SUMO exports."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signalopt.network import CompiledNetwork
from signalopt.plan import check_plans
from signalopt.scan import ScanConfig
from signalopt.timeofday import find_periods, kmeans_1d, time_of_day_plans
from sim.offline import schedule_xml


def day_counts(net: CompiledNetwork, levels: list[tuple[float, float, int]]) -> pd.DataFrame:
    """30 s intervals; every detector counts ``c`` vehicles per interval in [start, end)."""
    rows = []
    for start, end, c in levels:
        for t in np.arange(start, end, 30.0):
            rows += [(d, t, c, 100 * c * 0.36 / 30, 10.0 if c else np.nan) for d in net.det_ids]
    return pd.DataFrame(rows, columns=["detector_id", "interval_start", "count", "occupancy",
                                       "speed"])


def test_kmeans_1d_orders_levels() -> None:
    """Three obvious groups {1}, {5}, {10}: labels are the group ranks, whatever the order."""
    x = np.array([10.0, 1.0, 5.0, 1.0, 10.0, 5.0, 1.2, 9.8])
    np.testing.assert_array_equal(kmeans_1d(x, 3), [2, 0, 1, 0, 2, 1, 0, 2])
    np.testing.assert_array_equal(kmeans_1d(np.ones(4), 3), [0, 0, 0, 0])  # one distinct value


def test_find_periods_names_a_day() -> None:
    """Hourly slots over 24 h: night 100, AM peak 7-9 h 1000, day 500, PM peak 16-19 h 1000,
    evening 100. A lone 1-hour dip at 12 h (100) is shorter than the 2 h minimum and is
    merged into the day period around it."""
    flow = [100] * 7 + [1000] * 2 + [500] * 3 + [100] + [500] * 3 + [1000] * 3 + [100] * 5
    prof = pd.DataFrame({"start": np.arange(24) * 3600.0, "flow_veh_h": np.array(flow, float)})
    periods, _ = find_periods(prof, slot_s=3600.0, n_levels=3, min_period_s=7200.0)
    got = [(p.name, p.start / 3600, p.end / 3600) for p in periods]
    assert got == [("offpeak", 0, 7), ("am_peak", 7, 9), ("shoulder", 9, 16),
                   ("pm_peak", 16, 19), ("offpeak_2", 19, 24)]


def test_plan_per_period_follows_demand(grid2x2_net: CompiledNetwork, tmp_path: Path) -> None:
    """Light (1 veh / 30 s per detector = 120 veh/h/lane) then heavy (10 = 1200 veh/h/lane)
    demand, 20 min each: two periods; light demand sits at the minimum cycle (40 s), the
    heavy period's plans have longer cycles (Webster: cycle grows with the flow ratio),
    every plan passes the invariants and the schedule switches at the heavy period's start."""
    counts = day_counts(grid2x2_net, [(0, 1200, 1), (1200, 2400, 10)])
    tod = time_of_day_plans(grid2x2_net, counts, n_levels=2, slot_s=300, min_period_s=600)
    names = [p.name for p in tod.periods]
    assert names == ["offpeak", "peak"]
    assert tod.periods[1].start == 1200.0
    light, heavy = (np.mean([p.cycle for p in tod.plans[n]]) for n in names)
    assert light == pytest.approx(40.0)
    assert heavy > light + 10
    for plans in tod.plans.values():
        assert len(plans) == grid2x2_net.n_intersections
        assert all(p.source == "offline" for p in plans)
        check_plans(plans, grid2x2_net, limits=ScanConfig().limits)
    root = ET.fromstring(schedule_xml(tod))
    switches = root.findall("WAUT/wautSwitch")
    assert {s.get("time") for s in switches} == {"1200"}
    assert {s.get("to") for s in switches} == {"signalopt_peak"}


@pytest.mark.sumo
def test_optimize_cli_writes_period_exports(tmp_path: Path) -> None:
    """End to end on a 2x2 SUMO grid with counts recorded by the harness: the CLI writes
    JSON + tlLogic per period and a schedule SUMO accepts (a short run with them loaded)."""
    from typer.testing import CliRunner

    from scenarios.demand import write_routes
    from scenarios.grid import generate_grid
    from scenarios.registry import ScenarioSpec
    from signalopt.cli import app
    from sim.runner import run_simulation

    net = generate_grid(tmp_path / "net.net.xml", x=2, y=2)
    routes = write_routes(net, tmp_path / "r.rou.xml", rates_veh_h=(300.0, 1500.0), seed=2,
                          end_s=480)
    spec = ScenarioSpec(name="g", net=net, routes=(routes,), end=480)
    run_simulation(spec, "fixed").counts.to_parquet(tmp_path / "c.parquet")
    res = CliRunner().invoke(app, ["optimize", "--network", str(net), "--counts",
                                   str(tmp_path / "c.parquet"), "--out", str(tmp_path / "plans"),
                                   "--slot", "120", "--min-period", "120", "--levels", "2"])
    assert res.exit_code == 0, res.output
    periods = pd.read_csv(tmp_path / "plans" / "periods.csv")
    for name in periods["name"]:
        assert (tmp_path / "plans" / name / "plans.json").is_file()
    adds = (*(tmp_path / "plans" / n / "plans.add.xml" for n in periods["name"]),
            tmp_path / "plans" / "schedule.add.xml")
    out = run_simulation(spec.model_copy(update={"additionals": adds}), "fixed")
    assert out.metrics["scheduled"] > 0
