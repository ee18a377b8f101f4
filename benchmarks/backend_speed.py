"""Wall seconds per simulated hour: libsumo (in-process) vs TraCI (socket), same run side by side.

    python benchmarks/backend_speed.py --scenario pilot128 --demand peak --duration 1800
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scenarios.registry import resolve_scenario
from sim.runner import run_simulation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenario", default="pilot128")
    ap.add_argument("--demand", default="peak")
    ap.add_argument("--controller", default="fixed")
    ap.add_argument("--duration", type=float, default=1800.0)
    ap.add_argument("--out", type=Path, default=Path("results/backend_speed"))
    args = ap.parse_args()
    spec = resolve_scenario(args.scenario, demand=args.demand, seed=42, duration=args.duration)
    rows = []
    for backend in ("libsumo", "traci"):
        m = run_simulation(spec, args.controller, backend=backend).metrics
        rows.append({"backend": backend, "wall_s": m["wall_s"],
                     "wall_s_per_sim_hour": round(m["wall_s"] * 3600 / spec.duration, 1),
                     "mean_delay_s": round(m["mean_delay_s"], 2)})
    ratio = rows[1]["wall_s"] / rows[0]["wall_s"]
    print("| backend | wall s | wall s per simulated hour | mean delay s |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['wall_s']} | {r['wall_s_per_sim_hour']} | {r['mean_delay_s']} |")
    print(f"TraCI / libsumo wall time: {ratio:.2f}x (same delay: {rows[0]['mean_delay_s'] == rows[1]['mean_delay_s']})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "backend_speed.json").write_text(json.dumps({"runs": rows, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
