"""Offline plans side by side: signalopt time-of-day plans vs SUMO's tlsCycleAdaptation.py
(+ tlsCoordinator.py), on the same scenario: delay in SUMO and compute time.

Per scenario: (1) simulate the network's own fixed programs and record the detector counts
(the baseline, and the only input signalopt gets); (2) ``signalopt optimize`` on those counts;
(3) tlsCycleAdaptation.py on the route file (SUMO's tools read the true demand from the
routes: more information than detector counts), then tlsCoordinator.py on its output;
(4) simulate each plan set with the same seed and score it with the honest metrics.

    python benchmarks/offline_plans.py --out results/offline_plans \\
        --scenario pilot128:peak_ramp:1200 --scenario grid4x4::1800
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios.registry import ScenarioSpec, resolve_scenario
from scenarios.sumo_tools import sumo_home, sumo_tool
from sim.offline import optimize_offline, sumo_additionals
from sim.runner import run_simulation

COLUMNS = ("scenario", "plans", "mean_delay_s", "mean_travel_time_s", "throughput_veh_h",
           "teleports", "compute_s", "periods")


def run_tool(args: list[str], what: str) -> float:
    """Run a SUMO python tool; return its wall time (s); raise with its stderr on failure."""
    t0 = time.perf_counter()
    env = {"SUMO_HOME": str(sumo_home()), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        msg = f"{what} failed: {proc.stderr[-2000:]}"
        raise RuntimeError(msg)
    return time.perf_counter() - t0


def sumo_plans(spec: ScenarioSpec, out: Path) -> dict[str, tuple[tuple[Path, ...], float]]:
    """tlsCycleAdaptation (Webster per intersection) and + tlsCoordinator (offsets)."""
    out.mkdir(parents=True, exist_ok=True)
    routes = ",".join(map(str, spec.routes))
    tca, coord = out / "tca.add.xml", out / "tca_coord.add.xml"
    t_tca = run_tool([sumo_tool("tlsCycleAdaptation.py"), "-n", str(spec.net), "-r", routes,
                      "-b", f"{spec.begin:g}", "-o", str(tca)], "tlsCycleAdaptation.py")
    t_coord = run_tool([sumo_tool("tlsCoordinator.py"), "-n", str(spec.net), "-r",
                        str(spec.routes[0]), "-a", str(tca), "-o", str(coord)],
                       "tlsCoordinator.py")
    return {"tlsCycleAdaptation": ((tca,), t_tca),
            "tlsCycleAdaptation+tlsCoordinator": ((tca, coord), t_tca + t_coord)}


def score(spec: ScenarioSpec, adds: tuple[Path, ...]) -> dict[str, Any]:
    """Simulate ``spec`` with the plan files loaded (the last program loaded runs)."""
    run = run_simulation(spec.model_copy(update={"additionals": (*spec.additionals, *adds)}),
                         "fixed")
    return {k: run.metrics[k] for k in COLUMNS[2:6]}


def bench_scenario(name: str, demand: str | None, duration: float | None, out: Path, *,
                   seed: int, slot_s: float, min_period_s: float) -> list[dict[str, Any]]:
    """All plan sets on one scenario; one row each."""
    spec = resolve_scenario(name, demand=demand, seed=seed, duration=duration)
    out.mkdir(parents=True, exist_ok=True)
    base = run_simulation(spec, "fixed")
    base.counts.to_parquet(out / "counts.parquet", index=False)
    rows = [{"plans": "network fixed programs", **{k: base.metrics[k] for k in COLUMNS[2:6]},
             "compute_s": 0.0, "periods": ""}]
    t0 = time.perf_counter()
    ours = optimize_offline(spec.net, out / "counts.parquet", out / "signalopt", slot_s=slot_s,
                            min_period_s=min_period_s)
    wall = time.perf_counter() - t0
    periods = " ".join(f"{p.name}[{p.start:g}-{p.end:g})" for p in ours.tod.periods)
    rows.append({"plans": "signalopt time-of-day", **score(spec, sumo_additionals(ours)),
                 "compute_s": round(wall, 2), "engine_s": round(ours.compute_s, 2),
                 "periods": periods})
    for label, (adds, secs) in sumo_plans(spec, out).items():
        rows.append({"plans": label, **score(spec, adds), "compute_s": round(secs, 2),
                     "periods": "one plan"})
    return [{"scenario": f"{spec.name} {spec.demand} {spec.duration:g}s seed {seed}", **r}
            for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append",
                    help="NAME:DEMAND:DURATION (empty fields = scenario default); repeatable")
    ap.add_argument("--out", type=Path, default=Path("results/offline_plans"))
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--slot", type=float, default=300.0, help="flow profile slot, s")
    ap.add_argument("--min-period", type=float, default=600.0, help="shortest period, s")
    args = ap.parse_args()
    rows = []
    for item in args.scenario or ["pilot128:peak_ramp:1200", "grid4x4::1800"]:
        name, demand, duration = ([*item.split(":"), "", ""])[:3]
        rows += bench_scenario(name, demand or None, float(duration) if duration else None,
                               args.out / name, seed=args.seed, slot_s=args.slot,
                               min_period_s=args.min_period)
        print(pd.DataFrame(rows).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "offline_plans.csv", index=False)
    (args.out / "offline_plans.json").write_text(json.dumps(rows, indent=2, default=str))
    print(f"wrote {args.out / 'offline_plans.csv'}")


if __name__ == "__main__":
    main()
