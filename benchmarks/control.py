"""Closed-loop control benchmark (issue #5): signalopt vs fixed, actuated (SUMO's and on our
own loops) and max-pressure.

Runs every (scenario, demand) x controller x seed in a process pool (one SUMO per process),
prints one table per scenario and writes ``control.md``, ``control.csv`` (one row per run),
``plan_changes.csv`` (how much signalopt's plans move per scan) and one PNG per scenario.

    python benchmarks/control.py --cases pilot128:peak,pilot128:peak_ramp,pilot128:offpeak \\
        --seeds 42,43,44 --out results/control
    python benchmarks/control.py --cases grid4x4,arterial4x4,cologne8,ingolstadt21 --seeds 42

``--paired BEFORE AFTER`` compares two sets of result folders (comma-separated) run on the same
seeds, e.g. before and after an engine change, seed by seed (``paired.md``/``paired.csv``):

    python benchmarks/control.py --paired results/a1,results/a2 results/b1,results/b2 --out results/ab
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from sim.compare import (
    markdown_table,
    paired_change,
    paired_markdown,
    plan_tasks,
    run_compare,
    summarize_runs,
)
from sim.detectors import DETECTOR_LAYOUTS, named_layout

CONTROLLERS = "fixed,actuated,actuated-loops,maxpressure,signalopt"


def plan_change_stats(runs_dir: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """Mean per-scan movement of signalopt's plans and scan compute time, per run."""
    rows = []
    for r in runs[(runs["controller"] == "signalopt") & (runs["error"] == "")].itertuples():
        path = runs_dir / r.key / "scans.parquet"
        if not path.exists():
            continue
        scans = pd.read_parquet(path)
        row = {"key": r.key, "scans": len(scans)}
        for col in ("cycle_mean", "cycle_change_mean", "green_change_mean", "green_change_max",
                    "offset_change_mean", "estimate_ms", "optimize_ms", "validate_ms", "rejected"):
            if col in scans:
                row[col] = float(scans[col].mean()) if col != "green_change_max" else float(scans[col].max())
        rows.append(row)
    return pd.DataFrame(rows)


def _runs(dirs: list[Path]) -> pd.DataFrame:
    """The runs recorded in these result folders' control.csv (later folders win per key)."""
    missing = [str(d) for d in dirs if not (d / "control.csv").exists()]
    if missing:
        raise SystemExit(f"no control.csv in {', '.join(missing)}")
    runs = pd.concat([pd.read_csv(d / "control.csv", keep_default_na=False) for d in dirs],
                     ignore_index=True).drop_duplicates("key", keep="last")
    for col in ("mean_delay_s", "mean_travel_time_s", "throughput_veh_h", "teleports", "not_inserted"):
        runs[col] = pd.to_numeric(runs[col])
    return runs


def tables_from(dirs: list[Path]) -> str:
    """Re-tabulate earlier runs (their control.csv), e.g. baselines and a re-run of signalopt
    after an engine change: runs of the same case are pooled, later folders win per key."""
    runs = _runs(dirs)
    out = []
    for case, g in runs.groupby("case", sort=False):
        seeds = ",".join(str(x) for x in sorted(set(g["seed"])))
        out.append(f"## {case} — seeds {seeds}, {len(g)} runs\n\n{markdown_table(summarize_runs(g))}\n")
    return "\n".join(out)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", type=Path, nargs="+", help="only re-tabulate these result folders")
    ap.add_argument("--paired", nargs=2, metavar=("BEFORE", "AFTER"),
                    help="compare two sets of result folders (comma-separated), seed by seed")
    ap.add_argument("--cases", default="pilot128:peak", help="scenario[:demand],...")
    ap.add_argument("--controllers", default=CONTROLLERS)
    ap.add_argument("--seeds", default="42,43,44")
    ap.add_argument("--duration", type=float, default=None, help="simulated s (default: scenario)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("results/control"))
    ap.add_argument("--detectors", default="all",
                    help="detector layout of the site: " + ", ".join(DETECTOR_LAYOUTS))
    ap.add_argument("--interval", type=float, default=None,
                    help="the detectors' reporting interval, s (default: the layout's, 30)")
    ap.add_argument("--detector-file", type=Path, default=None,
                    help="SUMO additional file with the site's own E1/E2 detectors, used instead"
                         " of the virtual ones (--detectors still filters the kinds)")
    ap.add_argument("--failed", type=float, default=0.0,
                    help="share of the detectors that break partway through each run (stuck or"
                         " silent, seeded by the run's seed; default 0)")
    return ap


def main() -> None:
    ap = _parser()
    args = ap.parse_args()
    if args.detectors not in DETECTOR_LAYOUTS:
        ap.error(f"unknown detector layout {args.detectors!r}; choose from {', '.join(DETECTOR_LAYOUTS)}")
    layout = named_layout(args.detectors, site_file=args.detector_file, failed=args.failed)
    if args.interval is not None:
        layout = layout.model_copy(update={"interval_s": args.interval})
    if args.tables:
        print(tables_from(args.tables))
        return
    if args.paired:
        before, after = ([Path(p) for p in side.split(",")] for side in args.paired)
        table = paired_change(_runs(before), _runs(after))
        md = (f"# Paired change in mean delay\n\nbefore: {args.paired[0]}\nafter: {args.paired[1]}"
              f"\n\n{paired_markdown(table)}\n")
        print(md)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "paired.md").write_text(md)
        table.to_csv(args.out / "paired.csv", index=False)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    controllers = args.controllers.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    all_runs, sections = [], []
    for case in args.cases.split(","):
        scenario, _, demand = case.partition(":")
        out = args.out / case.replace(":", "-")
        tasks = plan_tasks(scenario, controllers, seeds, demand=demand or None,
                           duration=args.duration, out_dir=out / "runs", layout=layout)
        t0 = time.perf_counter()
        runs, summary = run_compare(
            tasks, out, workers=args.workers,
            on_done=lambda r: print(f"  done {r['key']}: delay {r.get('mean_delay_s', float('nan')):.1f}"
                                    f" {r.get('error', '')}", flush=True),
        )
        wall = time.perf_counter() - t0
        title = f"{case} — seeds {args.seeds}, {len(tasks)} runs, {wall:.0f} s wall"
        table = markdown_table(summary)
        print(f"\n## {title}\n\n{table}\n", flush=True)
        sections.append(f"## {title}\n\n{table}\n")
        runs["case"] = case
        all_runs.append(runs)
        changes = plan_change_stats(out / "runs", runs)
        if len(changes):
            changes.to_csv(out / "plan_changes.csv", index=False)
            print(changes.drop(columns="key").mean(numeric_only=True).round(2).to_string(), flush=True)
    pd.concat(all_runs, ignore_index=True).to_csv(args.out / "control.csv", index=False)
    (args.out / "control.md").write_text("# Control benchmark\n\n" + "\n".join(sections))
    print(f"wrote {args.out / 'control.md'} and {args.out / 'control.csv'}")


if __name__ == "__main__":
    main()
