"""Replay the engine scan by scan and keep everything it estimated and planned (Parquet).

Two sources, one code path:

* a recorded counts file (offline): the counts are cut into scan windows and ``run_scan`` is
  called once per window, exactly as ``live.py`` would;
* a SUMO scenario (live): the scenario is simulated under the ``signalopt`` controller, and
  the counts that controller received are replayed through the same ``run_scan`` calls. The
  scan is a pure function, so this reproduces the controller's scans exactly (the replay
  checks it against the controller's own per-scan log).

Frames, one row per scan and item: ``scans`` (network totals, plan change, timings),
``links`` (estimated vehicles ± std), ``movements`` (flow, queue, turning ratio),
``plans`` (cycle, offset per intersection, with the change since the previous scan) and
``phases`` (duration and actuation bounds), so a researcher can see why each plan changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from signalopt.errors import CountsError
from signalopt.io.counts import detector_interval, read_counts
from signalopt.network import CompiledNetwork
from signalopt.scan import ScanConfig, ScanResult, initial_scan_state, run_scan
from sim.detectors import DetectorLayout

FRAMES = ("scans", "links", "movements", "plans", "phases")


@dataclass
class ReplayResult:
    """Per-scan frames of one replay, plus the simulation's outputs when it was live."""

    scans: pd.DataFrame
    links: pd.DataFrame
    movements: pd.DataFrame
    plans: pd.DataFrame
    phases: pd.DataFrame
    metrics: dict[str, Any] = field(default_factory=dict)
    trips: pd.DataFrame | None = None
    counts: pd.DataFrame | None = None
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)

    def write(self, out: Path) -> dict[str, Path]:
        """Write every frame as ``<name>.parquet`` (and the run's files when live) to ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in FRAMES:
            files[name] = out / f"{name}.parquet"
            getattr(self, name).to_parquet(files[name], index=False)
        extra = {"trips": self.trips, "counts": self.counts, **{f"truth_{k}": v
                                                                  for k, v in self.truth.items()}}
        for name, frame in extra.items():
            if frame is not None:
                files[name] = out / f"{name}.parquet"
                frame.to_parquet(files[name], index=False)
        return files


def load_network(net_file: Path, layout: DetectorLayout | None = None) -> CompiledNetwork:
    """Compile a SUMO network with the detectors the counts come from: the harness's virtual
    ones, or the site's own (``layout.site_file``)."""
    from signalopt.network import compile_network  # noqa: PLC0415
    from sim.detectors import instrumented_network  # noqa: PLC0415

    if not net_file.is_file():
        msg = f"network file not found: {net_file}"
        raise FileNotFoundError(msg)
    return compile_network(instrumented_network(net_file, layout or DetectorLayout()))


def scan_windows(counts: pd.DataFrame, *, scan_s: float, interval_s: float,
                 begin: float = 0.0) -> Iterator[tuple[float, pd.DataFrame]]:
    """Yield (scan time, intervals of that scan): scan k at ``begin + k*scan_s`` takes the
    intervals ending in ``(t_k-1, t_k]``, as ``live.py`` and the SUMO harness do; empty
    windows are skipped."""
    end = counts["interval_start"].to_numpy(dtype=float) + interval_s
    k = np.ceil((end - begin) / scan_s - 1e-9).astype(np.int64)
    for kk in np.unique(k):
        yield begin + float(kk) * scan_s, counts[k == kk]


def replay_counts(
    net: CompiledNetwork,
    counts: pd.DataFrame,
    *,
    config: ScanConfig | None = None,
    begin: float = 0.0,
    end: float = np.inf,
    on_scan: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Run ``run_scan`` window by window over validated counts; collect every scan's output.

    Scans after ``end`` are dropped.
    """
    if counts.empty:
        msg = "no accepted counts to replay"
        raise CountsError(msg)
    config = config or ScanConfig()
    interval_s = detector_interval(counts, default=config.scan_s)
    config = config.at_interval(interval_s)
    windows = [(t, w) for t, w in scan_windows(counts, scan_s=config.scan_s, interval_s=interval_s,
                                begin=begin) if t <= end + 1e-9]
    state = initial_scan_state(net)
    frames: dict[str, list[pd.DataFrame]] = {n: [] for n in FRAMES}
    prev: ScanResult | None = None
    for n, (t, window) in enumerate(windows):
        res = run_scan(net, window, state, config, t=t)
        for name, frame in scan_frames(net, res, prev).items():
            frames[name].append(frame)
        state, prev = res.state, res
        if on_scan:
            on_scan(n + 1, len(windows))
    return ReplayResult(**{n: pd.concat(f, ignore_index=True) for n, f in frames.items()})


def scan_frames(net: CompiledNetwork, res: ScanResult,
                prev: ScanResult | None) -> dict[str, pd.DataFrame]:
    """The five frames of one scan (estimates, plans, and what changed since ``prev``)."""
    est, p = res.estimate, res.plan
    ids = np.asarray(net.int_ids, dtype=object)
    links = np.asarray(net.link_ids, dtype=object)
    p_cycle = prev.plan.cycle if prev is not None else np.full_like(p.cycle, np.nan)
    p_dur = prev.plan.duration if prev is not None else np.full_like(p.duration, np.nan)
    owner = np.repeat(np.arange(net.n_intersections), np.diff(net.int_phase_indptr))
    rejected = {r.split(":")[0].strip() for r in res.rejected}
    plans = pd.DataFrame({
        "t": res.t, "version": res.version, "intersection": ids, "cycle": p.cycle,
        "offset": p.offset, "cycle_change": p.cycle - p_cycle,
        "rejected": [i in rejected for i in ids]})
    phases = pd.DataFrame({
        "t": res.t, "intersection": ids[owner],
        "phase": np.arange(owner.size) - net.int_phase_indptr[owner],
        "is_green": net.phase_is_green, "duration": p.duration, "min_dur": p.min_dur,
        "max_dur": p.max_dur, "duration_change": p.duration - p_dur, "critical_y": p.phase_y})
    movements = pd.DataFrame({
        "t": res.t, "intersection": ids[net.mov_int], "from_link": links[net.mov_from],
        "to_link": links[net.mov_to], "flow_veh_h": est.mov_flow, "queue_veh": est.mov_queue,
        "turning_ratio": est.turning_ratio})
    link_frame = pd.DataFrame({"t": res.t, "link": links, "vehicles": est.link_vehicles,
                               "std": est.link_std})
    scans = pd.DataFrame([{
        "t": res.t, "version": res.version, "network_vehicles": float(est.network_vehicles),
        "network_std": float(est.network_std), "cycle_mean": float(p.cycle.mean()),
        "cycle_change_mean": float(np.abs(plans["cycle_change"]).mean()),
        "green_change_max": float(np.nanmax(np.abs(p.duration - p_dur)))
        if prev is not None else np.nan,
        "rejected": len(res.rejected), "flagged_detectors": int((est.detector_flags != 0).sum()),
        **{f"{k}_ms": v for k, v in res.timings_ms.items()}}])
    return {"scans": scans, "links": link_frame, "movements": movements, "plans": plans,
            "phases": phases}


def replay_file(
    counts_file: Path,
    net_file: Path,
    *,
    config: ScanConfig | None = None,
    on_scan: Callable[[int, int], None] | None = None,
    layout: DetectorLayout | None = None,
) -> ReplayResult:
    """Offline replay of a recorded counts file (.csv/.parquet/.json) over a SUMO network
    (``layout``: the detectors the site has, virtual or its own; every row must belong to one
    of them)."""
    net, frame = load_recorded(net_file, counts_file, layout)
    begin = float(frame["interval_start"].min())
    return replay_counts(net, frame, config=config, begin=begin, on_scan=on_scan)


def load_recorded(net_file: Path, counts_file: Path,
                  layout: DetectorLayout | None = None) -> tuple[CompiledNetwork, pd.DataFrame]:
    """A network with its detectors (``load_network``) and a recorded counts file that must
    fit it whole (a rejected row is an error here: offline work on partial data would
    mislead)."""
    for path, what in ((net_file, "network"), (counts_file, "counts")):
        if not path.is_file():
            msg = f"{what} file not found: {path}"
            raise FileNotFoundError(msg)
    net = load_network(net_file, layout)
    table = read_counts(counts_file, net)
    if len(table.rejected):
        first = table.rejected.iloc[0].to_dict()
        msg = f"{counts_file}: {len(table.rejected)} row(s) rejected, first: {first}"
        raise CountsError(msg)
    return net, table.frame


def detector_health(net_file: Path, counts_file: Path, *, config: ScanConfig | None = None,
                    layout: DetectorLayout | None = None) -> pd.DataFrame:
    """QA's verdict on every detector of a recorded counts file: how often it was flagged, and
    why, scan by scan (``signalopt.detectors.health_table``), as the engine would have seen it
    live (the estimator's upstream expectations included)."""
    from signalopt.detectors import health_table  # noqa: PLC0415
    from signalopt.estimate import run_estimator  # noqa: PLC0415

    net, frame = load_recorded(net_file, counts_file, layout)
    config = (config or ScanConfig()).at_interval(detector_interval(frame))
    ests, _ = run_estimator(frame, net, config.estimator, qa_params=config.qa)
    return health_table(np.array([e.detector_flags for e in ests], dtype=np.uint8),
                        np.array([e.t for e in ests]), net)


def replay_scenario(
    scenario: str,
    *,
    seed: int = 42,
    demand: str | None = None,
    duration: float | None = None,
    scale: float = 1.0,
    params: dict[str, Any] | None = None,
    backend: str = "libsumo",
    progress: Callable[[float], None] | None = None,
    layout: DetectorLayout | None = None,
) -> ReplayResult:
    """Simulate ``scenario`` under the engine, then replay the counts it saw, scan by scan
    (``layout``: the detector kinds the site has; None = every kind).

    Raises if the replayed scans differ from the controller's own log (they must not).
    """
    from scenarios.registry import resolve_scenario  # noqa: PLC0415
    from sim.controllers import make_controller  # noqa: PLC0415
    from sim.runner import run_simulation  # noqa: PLC0415

    spec = resolve_scenario(scenario, demand=demand, seed=seed, duration=duration, scale=scale)
    ctrl = make_controller("signalopt", **(params or {}))
    layout = layout or DetectorLayout()
    run = run_simulation(spec, ctrl, backend=backend, layout=layout, progress=progress)
    net = load_network(spec.net, layout)
    rep = replay_counts(net, run.counts, config=ctrl.config,  # type: ignore[attr-defined]
                        begin=spec.begin, end=spec.end)
    _check_same(rep.scans, run.extra.get("scans"))
    rep.metrics, rep.trips, rep.counts, rep.truth = run.metrics, run.trips, run.counts, run.truth
    return rep


def _check_same(replayed: pd.DataFrame, live: pd.DataFrame | None) -> None:
    """The replay is the controller's scans again: same times, versions, estimates, cycles."""
    if live is None or live.empty:
        return
    cols = ["t", "version", "network_vehicles", "cycle_mean"]
    a = replayed[cols].reset_index(drop=True)
    b = live[cols].reset_index(drop=True)
    if a.shape != b.shape or not np.allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9):
        msg = f"replay diverged from the live controller:\n{a.head()}\nvs\n{b.head()}"
        raise RuntimeError(msg)
