"""``signalopt serve --replay SCENARIO``: the whole service loop driven by a live SUMO run.

SUMO plays the field. Every detector interval the virtual detectors are POSTed to
``/v1/counts`` (ingest key); the live driver scans on simulated time; after each scan every
intersection's adapter GETs its plan over HTTP (with If-None-Match), hands it to the plan
applier (loaded at the next cycle start, offsets reached smoothly) and acks it. The API runs
on a real port while the simulation goes, so a user can watch ``/v1/...`` and ``/metrics``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from scenarios.registry import resolve_scenario
from signalopt.live import LiveDriver, engine_scan
from signalopt.network import CompiledNetwork, compile_network
from signalopt.optimize import PlanArrays
from signalopt.plan import TimingPlan
from signalopt.scan import ScanConfig
from signalopt.service import ServiceConfig, create_app
from signalopt.service_auth import ApiKey, new_key
from signalopt.store import SqlPlanStore
from sim.apply import PlanApplier
from sim.controllers import SimContext
from sim.detectors import DetectorLayout, instrumented_network
from sim.runner import run_simulation

log = logging.getLogger(__name__)


class SimClock:
    """The plan clock shared by the API and the driver: simulated seconds."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class ServedAdapters:
    """A ``sim.controllers.Controller`` that talks to the service only over HTTP."""

    name = "signalopt-served"

    def __init__(self, base_url: str, driver: LiveDriver, clock: SimClock, *,
                 ingest_key: str, adapter_key: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0)
        self.driver, self.clock = driver, clock
        self.ingest = {"X-API-Key": ingest_key}
        self.adapter = {"X-API-Key": adapter_key}
        self.etags: dict[str, str] = {}
        self.stats = {"count_posts": 0, "rows_rejected": 0, "polls": 0, "not_modified": 0,
                      "applied": 0, "fallback": 0}

    def setup(self, ctx: SimContext) -> None:
        self.applier = PlanApplier(ctx.api, ctx.net, actuated=False, min_green=5.0)
        self.base = PlanArrays(
            np.add.reduceat(ctx.net.phase_duration, ctx.net.int_phase_indptr[:-1]),
            np.zeros(ctx.net.n_intersections), ctx.net.phase_duration.copy(),
            ctx.net.phase_min.copy(), ctx.net.phase_max.copy(),
            np.zeros_like(ctx.net.phase_duration))

    def on_step(self, ctx: SimContext, t: float) -> None:
        self.clock.t = t
        self.applier.on_step(t)

    def on_counts(self, ctx: SimContext, counts: dict[str, Any], t: float) -> None:
        rows = [{"detector_id": d, "interval_start": float(s), "count": int(c),
                 "occupancy": None if math.isnan(o) else max(0.0, float(o)),
                 "speed": None if math.isnan(v) else float(v)}
                for d, s, c, o, v in zip(counts["detector_id"], counts["interval_start"],
                                         counts["count"], counts["occupancy"], counts["speed"],
                                         strict=True)]
        out = self.http.post("/v1/counts", json={"rows": rows}, headers=self.ingest)
        out.raise_for_status()
        self.stats["count_posts"] += 1
        self.stats["rows_rejected"] += len(out.json()["rejected"])
        if self.driver.advance(t):
            self._poll_all(ctx.net, t)

    def _poll_all(self, net: CompiledNetwork, t: float) -> None:
        """Every adapter pulls its plan; changed ones are queued for the next cycle start."""
        arrays = [a.copy() for a in self.base[:5]]
        changed = np.zeros(net.n_intersections, dtype=bool)
        for i, iid in enumerate(net.int_ids):
            plan = self._poll(iid)
            if plan is None:
                continue
            changed[i] = True
            a, b = net.int_phase_indptr[i], net.int_phase_indptr[i + 1]
            arrays[0][i], arrays[1][i] = plan.cycle, plan.offset
            for col, attr in ((2, "duration"), (3, "min_dur"), (4, "max_dur")):
                arrays[col][a:b] = [getattr(p, attr) for p in plan.phases]
        if changed.any():
            self.applier.submit(PlanArrays(*arrays, self.base.phase_y), changed)
        log.info("t=%.0f: %d intersections got a new plan", t, int(changed.sum()))

    def _poll(self, iid: str) -> TimingPlan | None:
        """GET one plan; the plan to load (or the fallback), None when unchanged."""
        headers = dict(self.adapter)
        if iid in self.etags:
            headers["If-None-Match"] = self.etags[iid]
        r = self.http.get(f"/v1/intersections/{iid}/plan", headers=headers)
        self.stats["polls"] += 1
        if r.status_code == 304:
            self.stats["not_modified"] += 1
            return None
        r.raise_for_status()
        body = r.json()
        self.etags[iid] = r.headers["etag"]
        if body["mode"] == "fallback":
            self.stats["fallback"] += 1
            return TimingPlan.model_validate(body["fallback"])
        plan = TimingPlan.model_validate(body["plan"])
        self.http.post(f"/v1/intersections/{iid}/ack", headers=self.adapter,
                       json={"version": plan.version, "status": "applied"})
        self.stats["applied"] += 1
        return plan


def _network(scenario: Any, layout: DetectorLayout) -> CompiledNetwork:
    """The same network (and detector ids) ``run_simulation`` builds for this scenario."""
    return compile_network(instrumented_network(scenario.net, layout))


def _start_server(app: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn  # noqa: PLC0415

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="signalopt-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            msg = f"API server did not start on {host}:{port}"
            raise RuntimeError(msg)
        time.sleep(0.05)
    return server, thread


def run_replay(name: str, *, db: str, keys: Sequence[ApiKey], host: str = "127.0.0.1",
               port: int = 8000, duration: float | None = None,
               scan_s: float = 120.0) -> dict[str, Any]:
    """Run scenario ``name`` in SUMO with the service in the loop; return metrics + stats."""
    scenario = resolve_scenario(name, duration=duration)
    layout = DetectorLayout()
    net = _network(scenario, layout)
    clock = SimClock()
    store = SqlPlanStore(db)
    cfg = ScanConfig(scan_s=scan_s)
    raw_ingest, ingest = new_key("replay-ingest", "ingest")
    raw_adapter, adapter = new_key("replay-adapters", "adapter")
    app = create_app(store, net, keys=[*keys, ingest, adapter], clock=clock,
                     config=ServiceConfig(scan_s=scan_s, limits=cfg.limits))
    server, thread = _start_server(app, host, port)
    print(f"serving on http://{host}:{port}/docs while {name} runs in SUMO")
    try:
        driver = LiveDriver(store, net, scan=engine_scan(cfg), limits=cfg.limits)
        ctrl = ServedAdapters(f"http://{host}:{port}", driver, clock, ingest_key=raw_ingest,
                              adapter_key=raw_adapter)
        result = run_simulation(scenario, ctrl, layout=layout)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    summary = {**{k: result.metrics[k] for k in ("mean_delay_s", "mean_travel_time_s",
                                                 "arrived", "unfinished", "wall_s")},
               **ctrl.stats, "scans": len(driver.reports),
               "scans_failed": sum(r.error is not None for r in driver.reports),
               "plans_rejected": sum(len(r.rejected) for r in driver.reports),
               "db": str(Path(db))}
    for key, val in summary.items():
        print(f"{key:>20}: {val}")
    return summary
