"""The ``signalopt`` command line: thin typer commands that call one library function each."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from signalopt.errors import SignaloptError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Real-time traffic signal optimization, validated closed-loop in SUMO.")
console = Console()
err_console = Console(stderr=True)
# the site's detector kinds (``sim.detectors.DETECTOR_LAYOUTS``), for simulate/compare/replay
DetectorsOption = Annotated[str, typer.Option(
    help="detector kinds the site has: all | loops | stopline+camera | stopline | camera | entry")]
FailedOption = Annotated[float, typer.Option(
    min=0.0, max=1.0, help="share of the detectors that break partway through each run, stuck or"
                           " silent (seeded by the run's seed; sim/faults.py)")]

# a recorded counts file and the network it comes from (optimize, qa)
NetworkOption = Annotated[Path, typer.Option(help="SUMO .net.xml the counts come from")]
CountsOption = Annotated[Path, typer.Option(help="recorded counts (.parquet, .csv or .json)")]
DetectorFileOption = Annotated[Path | None, typer.Option(
    help="SUMO additional file with the site's own E1 loops / E2 zones (default: the virtual"
         " detectors the harness places)")]

StoplineOption = Annotated[float, typer.Option(
    help="with --detector-file: a loop within this many metres of a signal approach lane's end"
         " is that lane's stop-line loop")]

DEMO_CONTROLLERS = "signalopt,fixed,actuated,actuated-loops,maxpressure"


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}")
    return typer.Exit(code=2)


def _with_status(text: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` under a console spinner; a bad input ends the command with its message."""
    try:
        with console.status(text):
            return work()
    except (SignaloptError, ValueError, OSError) as exc:
        raise _fail(exc) from exc


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def _split(text: str, cast: Callable[[str], Any] = str) -> list[Any]:
    try:
        return [cast(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        msg = f"cannot parse list {text!r}: {exc}"
        raise typer.BadParameter(msg) from exc


def _metrics_table(metrics: dict[str, Any]) -> Table:
    table = Table(title=f"{metrics['scenario']} / {metrics['controller']} / seed {metrics['seed']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("mean_delay_s", "mean_travel_time_s", "scheduled", "arrived", "unfinished",
                "not_inserted", "teleports", "throughput_veh_h", "mean_stops", "delay_index", "wall_s"):
        val = metrics[key]
        table.add_row(key, f"{val:.2f}" if isinstance(val, float) else str(val))
    return table


@app.command()
def simulate(
    scenario: Annotated[str, typer.Argument(help="built-in name (pilot128, grid4x4, ...) or .sumocfg path")],
    controller: Annotated[
        str, typer.Option(help="fixed | actuated | actuated-loops | maxpressure | signalopt")] = "fixed",
    demand: Annotated[str | None, typer.Option(help="offpeak | peak | peak_ramp (generated scenarios)")] = None,
    seed: Annotated[int, typer.Option(help="SUMO and demand seed")] = 42,
    duration: Annotated[float | None, typer.Option(help="simulated seconds (default: scenario window)")] = None,
    scale: Annotated[float, typer.Option(help="demand multiplier (generated scenarios)")] = 1.0,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/simulate"),
    traci: Annotated[bool, typer.Option("--traci", help="use TraCI instead of libsumo")] = False,
    detectors: DetectorsOption = "all",
    detector_file: DetectorFileOption = None,
    stopline_m: StoplineOption = 10.0,
    failed: FailedOption = 0.0,
) -> None:
    """Simulate one scenario under one controller; write metrics.json and trips.parquet."""
    from scenarios.registry import resolve_scenario  # noqa: PLC0415
    from sim.controllers import make_controller  # noqa: PLC0415
    from sim.detectors import named_layout  # noqa: PLC0415
    from sim.runner import run_simulation  # noqa: PLC0415

    try:
        layout = named_layout(detectors, site_file=detector_file, site_stopline_m=stopline_m,
                              failed=failed)
        ctrl = make_controller(controller)
        spec = resolve_scenario(scenario, demand=demand, seed=seed, duration=duration, scale=scale)
        with _progress() as bar:
            task = bar.add_task(f"{spec.name} / {controller}", total=1.0)
            result = run_simulation(spec, ctrl, backend="traci" if traci else "libsumo",
                                    progress=lambda f: bar.update(task, completed=f),
                                    layout=layout)
            bar.update(task, completed=1.0)
    except (SignaloptError, ValueError) as exc:
        raise _fail(exc) from exc
    result.write(out)
    console.print(_metrics_table(result.metrics))
    console.print(f"wrote {out / 'metrics.json'} and {out / 'trips.parquet'}")


def _run_compare(scenario: str, controllers: list[str], seeds: list[int], *, demand: str | None,
                 duration: float | None, out: Path, workers: int, traci: bool,
                 detectors: str = "all", detector_file: Path | None = None,
                 failed: float = 0.0, stopline_m: float = 10.0) -> None:
    from sim.compare import markdown_table, plan_tasks, run_compare  # noqa: PLC0415
    from sim.controllers import CONTROLLERS  # noqa: PLC0415
    from sim.detectors import named_layout  # noqa: PLC0415

    unknown = [c for c in controllers if c.partition("[")[0] not in CONTROLLERS]
    if unknown:
        raise _fail(ValueError(f"unknown controller(s) {unknown}; choose from {sorted(CONTROLLERS)}"))
    try:
        tasks = plan_tasks(scenario, controllers, seeds, demand=demand, duration=duration,
                           backend="traci" if traci else "libsumo", out_dir=out / "runs",
                           layout=named_layout(detectors, site_file=detector_file,
                                               site_stopline_m=stopline_m, failed=failed))
    except (SignaloptError, ValueError) as exc:
        raise _fail(exc) from exc
    with _progress() as bar:
        total = bar.add_task(f"{len(tasks)} runs on {workers} workers", total=len(tasks))
        bars: dict[str, Any] = {}

        def on_progress(slug: str, frac: float) -> None:
            if slug not in bars:
                bars[slug] = bar.add_task(f"  {slug}", total=1.0)
            bar.update(bars[slug], completed=frac)

        def on_done(res: dict[str, Any]) -> None:
            bar.advance(total)
            if res["key"] in bars:
                bar.update(bars[res["key"]], completed=1.0, visible=False)
            if res.get("error"):
                err_console.print(f"[red]run {res['key']} failed:[/] {res['error']}")

        runs, summary = run_compare(tasks, out, workers=workers, on_progress=on_progress, on_done=on_done)
    console.print(markdown_table(summary), markup=False, soft_wrap=True)
    console.print(f"wrote {out / 'compare.csv'}, {out / 'compare.md'}, {out / 'compare.png'}")
    if (runs["error"] != "").any():
        raise typer.Exit(code=1)


@app.command()
def compare(
    scenario: Annotated[str, typer.Argument(help="built-in name or .sumocfg path")],
    controllers: Annotated[str, typer.Option(help="comma-separated controller names")] = "fixed,actuated,maxpressure",
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "42,43,44",
    demand: Annotated[str | None, typer.Option(help="offpeak | peak | peak_ramp")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/compare"),
    workers: Annotated[int, typer.Option(help="parallel SUMO processes")] = 2,
    traci: Annotated[bool, typer.Option("--traci", help="use TraCI instead of libsumo")] = False,
    detectors: DetectorsOption = "all",
    detector_file: DetectorFileOption = None,
    stopline_m: StoplineOption = 10.0,
    failed: FailedOption = 0.0,
) -> None:
    """Run controllers x seeds in a process pool; print and write the comparison table and plot."""
    _run_compare(scenario, _split(controllers), _split(seeds, int), demand=demand, duration=duration,
                 out=out, workers=workers, traci=traci, detectors=detectors,
                 detector_file=detector_file, failed=failed, stopline_m=stopline_m)


@app.command()
def batch(
    spec: Annotated[Path, typer.Argument(help="batch spec TOML (see examples/batch_small.toml)")],
    out: Annotated[Path, typer.Option(help="results folder (Parquet parts under runs/)")] = Path("out/batch"),
    workers: Annotated[int | None, typer.Option(help="parallel SUMO processes (default: the spec's)")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler tcp://HOST:PORT")] = None,
) -> None:
    """Run or resume a batch: scenarios x demand x controllers x seeds x engine parameters."""
    from sim.batch import run_batch  # noqa: PLC0415

    with _progress() as bar:
        total = bar.add_task("planning (generating scenario files)", total=None)
        running: dict[str, float] = {}
        finished = [0]

        def on_plan(todo: int, skipped: int) -> None:
            bar.update(total, total=max(todo, 1), description=f"{todo} runs ({skipped} done before)")

        def on_progress(slug: str, frac: float) -> None:
            running[slug] = frac
            bar.update(total, completed=finished[0] + sum(running.values()))

        def on_done(res: dict[str, Any]) -> None:
            running.pop(res["key"], None)
            finished[0] += 1
            bar.update(total, completed=finished[0] + sum(running.values()))
            if res.get("error"):
                err_console.print(f"[red]run {res['key']} failed:[/] {res['error']}")

        try:
            outcome = run_batch(spec, out, workers=workers, scheduler=scheduler, on_plan=on_plan,
                                on_progress=on_progress, on_done=on_done)
        except (SignaloptError, ValueError, ImportError) as exc:
            raise _fail(exc) from exc
    console.print(f"{outcome.planned} runs planned, {outcome.skipped} already done, "
                  f"{outcome.ran} ran ({outcome.failed} failed) in {outcome.wall_s:.1f} s; "
                  f"results in {out / 'runs'}")
    if outcome.failed:
        raise typer.Exit(code=1)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="batch results folder (signalopt batch --out)")],
    out: Annotated[Path | None, typer.Option(help="report folder (default: RESULTS/report)")] = None,
) -> None:
    """Markdown + HTML report of a batch: mean ± CI over seeds, vs fixed, headroom, time series."""
    from sim.report import markdown, write_report  # noqa: PLC0415

    rep = _with_status("reading runs and drawing plots", lambda: write_report(results, out))
    if len(rep.summary):
        console.print(markdown(rep.summary[["scenario", "demand", "scale", "controller", "runs",
                                            "mean_delay_s", "mean_delay_s_ci",
                                            "delay_vs_fixed_pct"]]))
    console.print("wrote " + ", ".join(str(p) for p in [*rep.files.values(), *rep.plots]))


@app.command()
def replay(
    source: Annotated[str, typer.Argument(help="scenario name / .sumocfg (live) or counts file (offline)")],
    network: Annotated[Path | None, typer.Option(help=".net.xml the counts come from (offline)")] = None,
    out: Annotated[Path, typer.Option(help="folder for the per-scan Parquet frames")] = Path("out/replay"),
    seed: Annotated[int, typer.Option(help="SUMO and demand seed (live)")] = 42,
    demand: Annotated[str | None, typer.Option(help="offpeak | peak | peak_ramp (live)")] = None,
    duration: Annotated[float | None, typer.Option(help="simulated seconds (live)")] = None,
    scale: Annotated[float, typer.Option(help="demand multiplier (live)")] = 1.0,
    detectors: DetectorsOption = "all",
    detector_file: DetectorFileOption = None,
    stopline_m: StoplineOption = 10.0,
) -> None:
    """Run the engine scan by scan over a scenario or recorded counts; keep every estimate and plan."""
    from sim.detectors import named_layout  # noqa: PLC0415
    from sim.replay import replay_file, replay_scenario  # noqa: PLC0415

    offline = Path(source).suffix.lower() in (".csv", ".parquet", ".pq", ".json")
    try:
        layout = named_layout(detectors, site_file=detector_file, site_stopline_m=stopline_m)
        with _progress() as bar:
            task = bar.add_task(f"replay {source}", total=1.0)
            if offline:
                if network is None:
                    raise typer.BadParameter("offline replay of a counts file needs --network NET")
                rep = replay_file(Path(source), network, layout=layout,
                                  on_scan=lambda k, n: bar.update(task, completed=k / n))
            else:
                rep = replay_scenario(source, seed=seed, demand=demand, duration=duration,
                                      scale=scale, layout=layout,
                                      progress=lambda f: bar.update(task, completed=f))
            bar.update(task, completed=1.0)
    except (SignaloptError, ValueError, OSError, RuntimeError) as exc:
        raise _fail(exc) from exc
    files = rep.write(out)
    console.print(rep.scans[["t", "version", "network_vehicles", "cycle_mean", "cycle_change_mean",
                             "rejected"]].to_string(index=False))
    console.print(f"wrote {len(files)} Parquet files to {out}: {', '.join(files)}")


@app.command()
def optimize(
    network: NetworkOption,
    counts: CountsOption,
    out: Annotated[Path, typer.Option(help="folder for the plans per period")] = Path("out/plans"),
    levels: Annotated[int, typer.Option(help="flow levels to cluster (3: off-peak, shoulder, peak)")] = 3,
    slot: Annotated[float, typer.Option(help="flow profile resolution, s")] = 900.0,
    min_period: Annotated[float, typer.Option(help="shortest period kept, s")] = 1800.0,
    kind: Annotated[str, typer.Option(help="tlLogic type: static | actuated")] = "static",
    detector_file: DetectorFileOption = None,
    stopline_m: StoplineOption = 10.0,
) -> None:
    """Offline time-of-day plans: periods found from the counts, one optimized plan per period."""
    from sim.detectors import named_layout  # noqa: PLC0415
    from sim.offline import optimize_offline  # noqa: PLC0415

    res = _with_status("finding periods and optimizing plans", lambda: optimize_offline(
        network, counts, out, n_levels=levels, slot_s=slot, min_period_s=min_period, kind=kind,
        layout=named_layout("all", site_file=detector_file, site_stopline_m=stopline_m)))
    table = Table(title=f"time-of-day plans ({res.compute_s:.2f} s to compute)")
    for col in ("period", "start s", "end s", "link entries/h", "mean cycle s"):
        table.add_column(col, justify="right")
    for p in res.tod.periods:
        cyc = sum(x.cycle for x in res.tod.plans[p.name]) / len(res.tod.plans[p.name])
        table.add_row(p.name, f"{p.start:g}", f"{p.end:g}", f"{p.flow_veh_h:.0f}", f"{cyc:.1f}")
    console.print(table)
    console.print(f"wrote {out}/<period>/plans.json + plans.add.xml, {res.files['schedule']}")


@app.command()
def qa(
    network: NetworkOption,
    counts: CountsOption,
    out: Annotated[Path, typer.Option(help="folder for detector_health.csv")] = Path("out/qa"),
    top: Annotated[int, typer.Option(help="flagged detectors to list")] = 20,
    detector_file: DetectorFileOption = None,
    stopline_m: StoplineOption = 10.0,
) -> None:
    """Detector health: which detectors QA flags in a recorded counts file, how often and why."""
    from signalopt.detectors import FLAG_NAMES  # noqa: PLC0415
    from sim.detectors import named_layout  # noqa: PLC0415
    from sim.replay import detector_health  # noqa: PLC0415

    table = _with_status("checking every detector, scan by scan", lambda: detector_health(
        network, counts,
        layout=named_layout("all", site_file=detector_file, site_stopline_m=stopline_m)))
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "detector_health.csv", index=False)
    flagged = table[table["flagged_%"] > 0]
    scans = int(table["scans"].iloc[0]) if len(table) else 0
    if flagged.empty:
        console.print(f"QA flagged none of the {len(table)} detectors in {scans} scans")
        console.print(f"wrote {out / 'detector_health.csv'}")
        return
    view = Table(title=f"{len(flagged)} of {len(table)} detectors flagged in some of {scans} scans")
    for col in ("detector", "kind", "flagged", "why", "first at s", "now"):
        view.add_column(col, justify="left" if col in ("detector", "kind", "why") else "right")
    for row in flagged.head(top).to_dict("records"):
        why = ", ".join(f"{n} {row[n + '_%']:.0f} %" for n in FLAG_NAMES.values() if row[n + "_%"] > 0)
        view.add_row(row["detector_id"], row["kind"], f"{row['flagged_%']:.0f} %", why,
                     f"{row['first_t']:g}", "yes" if row["flagged_now"] else "")
    console.print(view)
    console.print(f"wrote {out / 'detector_health.csv'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/demo"),
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "42",
    duration: Annotated[float, typer.Option(help="simulated seconds")] = 3600.0,
    workers: Annotated[int, typer.Option(help="parallel SUMO processes")] = 2,
) -> None:
    """The pilot-grid demo: signalopt vs fixed, actuated, loop-actuated and max-pressure control."""
    _run_compare("pilot128", _split(DEMO_CONTROLLERS), _split(seeds, int), demand="peak",
                 duration=duration, out=out, workers=workers, traci=False)


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from scenarios.registry import list_scenarios  # noqa: PLC0415

    for name in list_scenarios():
        console.print(name)


@app.command()
def metrics() -> None:
    """Print the metric definitions used in every result."""
    from sim.metrics import DEFINITIONS  # noqa: PLC0415

    console.print_json(json.dumps(DEFINITIONS))


def _register_serve() -> None:
    """``signalopt serve`` lives in serve_cmd (fastapi/uvicorn are imported only when it runs)."""
    from signalopt.serve_cmd import serve  # noqa: PLC0415

    app.command("serve")(serve)


_register_serve()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
