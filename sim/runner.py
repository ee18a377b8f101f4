"""Run one closed-loop SUMO simulation: scenario x controller x seed -> metrics and tables."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from scenarios.registry import ScenarioSpec
from signalopt.network import compile_network
from sim.backend import open_backend
from sim.controllers import Controller, SimContext, make_controller
from sim.detectors import DetectorLayout, DetectorReader, instrumented_network, write_detector_file
from sim.faults import FaultyApi, pick_faults
from sim.ground_truth import GroundTruthRecorder
from sim.metrics import DEFINITIONS, summarize, trip_table

SCAN_S = 120.0  # ground truth snapshot period (one engine scan)


@dataclass
class RunResult:
    """Everything one run produced: headline metrics, per-vehicle trips, counts, ground truth."""

    metrics: dict[str, Any]
    trips: pd.DataFrame
    counts: pd.DataFrame
    truth: dict[str, pd.DataFrame]
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)

    def write(self, out: Path) -> None:
        """Write metrics.json, trips.parquet, counts.parquet and truth_*.parquet into ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=str))
        self.trips.to_parquet(out / "trips.parquet", index=False)
        self.counts.to_parquet(out / "counts.parquet", index=False)
        for name, frame in {**self.truth, **self.extra}.items():
            frame.to_parquet(out / f"{name}.parquet", index=False)


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "unknown"


def run_simulation(
    scenario: ScenarioSpec,
    controller: str | Controller,
    *,
    backend: str = "libsumo",
    layout: DetectorLayout | None = None,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Simulate ``scenario`` under ``controller`` and score it with the honest metrics.

    ``progress`` is called with the fraction of simulated time done (for progress bars).
    """
    layout = layout or DetectorLayout()
    ctrl = make_controller(controller) if isinstance(controller, str) else controller
    spec = instrumented_network(scenario.net, layout)
    net = compile_network(spec)
    sim = open_backend(backend)
    wall0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="signalopt-run-") as tmp:
        det_file = write_detector_file(spec.detectors, Path(tmp) / "detectors.add.xml",
                                       interval_s=layout.interval_s)
        tripinfo = Path(tmp) / "tripinfo.xml"
        args = [
            "-n", str(scenario.net), "-r", ",".join(map(str, scenario.routes)),
            "-a", ",".join(map(str, [*_additionals(scenario, layout), det_file])),
            "--begin", f"{scenario.begin:g}", "--end", f"{scenario.end:g}",
            "--seed", str(scenario.seed), "--no-step-log", "--no-warnings",
            "--duration-log.disable", "--tripinfo-output", str(tripinfo),
            "--tripinfo-output.write-unfinished", "--tripinfo-output.write-undeparted",
        ]
        sim.start(args)
        try:
            counts, truth, teleports = _loop(sim, ctrl, spec, net, scenario, layout, progress)
        finally:
            sim.close()
        trips = trip_table(tripinfo, begin=scenario.begin, end=scenario.end)
    wall = time.perf_counter() - wall0
    metrics = summarize(trips, begin=scenario.begin, end=scenario.end, teleports=teleports)
    metrics.update({
        "wall_s": round(wall, 2),
        "scenario": scenario.name, "demand": scenario.demand, "scale": scenario.scale,
        "controller": ctrl.name, "seed": scenario.seed, "begin": scenario.begin,
        "duration": scenario.duration, "backend": sim.name,
        "signalopt_version": _version("signalopt"), "sumo_version": _version("eclipse-sumo"),
        "python": platform.python_version(), "definitions": DEFINITIONS,
    })
    extra = getattr(ctrl, "frames", lambda: {})()
    return RunResult(metrics=metrics, trips=trips, counts=counts, truth=truth, extra=extra)


def _additionals(scenario: ScenarioSpec, layout: DetectorLayout) -> list[Path]:
    """The scenario's additional files, less the site's detector file where the scenario
    loads it itself: the run writes those detectors again with its own period."""
    site = layout.site_file.resolve() if layout.site_file is not None else None
    return [Path(a) for a in scenario.additionals if Path(a).resolve() != site]


def _loop(sim, ctrl, spec, net, scenario, layout, progress):
    """Step SUMO second by second; read detectors per interval and truth per scan."""
    api = sim.api
    if layout.failed > 0:  # some detectors break partway through: every reader sees it
        faults = pick_faults([d.id for d in spec.detectors], layout.failed, begin=scenario.begin,
                             duration=scenario.duration, seed=scenario.seed * 1000 + layout.fail_seed)
        api = FaultyApi(api, faults)
    on_step = api.on_step if isinstance(api, FaultyApi) else (lambda t: None)
    ctx = SimContext(api=api, spec=spec, net=net, begin=scenario.begin, interval_s=layout.interval_s)
    ctrl.setup(ctx)
    step = 1.0
    reader = DetectorReader(api, spec.detectors, interval_s=layout.interval_s, step_s=step)
    truth = GroundTruthRecorder(api, spec)
    chunks = []
    n_steps = round(scenario.duration / step)
    interval_steps = max(1, round(layout.interval_s / step))
    scan_steps = round(SCAN_S / step)
    for k in range(1, n_steps + 1):
        t = scenario.begin + k * step
        sim.step(t)
        on_step(t)
        truth.on_step()
        ctrl.on_step(ctx, t)
        if k % interval_steps == 0:
            cols = reader.read(t - layout.interval_s)
            chunks.append(pd.DataFrame(cols))
            ctrl.on_counts(ctx, cols, t)
        if k % scan_steps == 0:
            truth.record(t)
        if progress is not None and k % 60 == 0:
            progress(k / n_steps)
    counts = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    return counts, truth.frames(), truth.teleports
