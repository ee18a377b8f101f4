"""Adapter service under load, faults and bad input (loopback only, bounded in time).

    python benchmarks/service_load.py --out results/service_load [--quick]

Setup: a synthetic region of 1,300 intersections and 5,000 detectors, one adapter key per
intersection, plans seeded in a SQLite store; the server is ``python -m signalopt.serve_cmd``
(uvicorn, one process, ``--no-scan``) on 127.0.0.1; a separate publisher process republishes
every intersection's plan every ``--publish-s`` seconds (a scan's write load) during the run.

1. Load: 1,300 adapters poll every 10 s (If-None-Match; ack each new version) plus 1,250
   cabinets post their 4 detectors every 30 s (5,000 detectors), open-loop on a fixed
   schedule; then 2x (same clients, half the periods). Latency is measured from each
   request's *scheduled* time, so client lag counts against us. Target: p99 < 50 ms, 0 errors.
2. Faults: kill -9 the server while count batches / engineer publishes are in flight, and
   kill -9 the publisher process inside its 1,300-plan transaction; after restart every
   acknowledged write must be there, batches all-or-nothing, every served plan valid.
3. Bad input: malformed, oversized, wrong-typed and hypothesis-fuzzed requests must get a 4xx
   with a ``detail`` message; the server must keep serving (health + a plan GET afterwards).

Prints a table; writes ``service_load.json`` and ``service_load.csv`` into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from signalopt.network import (  # noqa: E402
    DetectorSpec,
    IntersectionSpec,
    LinkSpec,
    MovementSpec,
    NetworkSpec,
    PhaseSpec,
    compile_network,
)
from signalopt.plan import PhaseTiming, PlanLimits, TimingPlan, plan_problems  # noqa: E402
from signalopt.service_auth import new_key, write_keys  # noqa: E402
from signalopt.store import SqlPlanStore  # noqa: E402

HOST = "127.0.0.1"
N_INT, N_DET = 1300, 5000
PHASES = (PhaseSpec(state="GGrr", duration=30.0, min_dur=10.0, max_dur=60.0),
          PhaseSpec(state="yyrr", duration=3.0, min_dur=3.0, max_dur=3.0),
          PhaseSpec(state="rrGG", duration=30.0, min_dur=10.0, max_dur=60.0),
          PhaseSpec(state="rryy", duration=3.0, min_dur=3.0, max_dur=3.0))


# -- setup -------------------------------------------------------------------------------
def region_spec() -> NetworkSpec:
    """1,300 isolated 4-leg intersections; the first 1,250 carry 4 entry loops (5,000)."""
    links, movs, dets, inters = [], [], [], []
    for i in range(N_INT):
        iid = f"I{i:04d}"
        for leg in "nesw":
            links.append(LinkSpec(id=f"{iid}{leg}_in", from_node=f"{iid}{leg}", to_node=iid,
                                  length=200.0, lanes=1, speed=13.9))
            links.append(LinkSpec(id=f"{iid}{leg}_out", from_node=iid, to_node=f"{iid}{leg}x",
                                  length=200.0, lanes=1, speed=13.9))
            if len(dets) < N_DET:
                dets.append(DetectorSpec(id=f"{iid}{leg}_d", link=f"{iid}{leg}_in", lane=0,
                                         pos=10.0, kind="entry"))
        movs.append(MovementSpec(intersection=iid, from_link=f"{iid}n_in", to_link=f"{iid}s_out",
                                 signals=(0, 1), lanes=(0,)))
        movs.append(MovementSpec(intersection=iid, from_link=f"{iid}w_in", to_link=f"{iid}e_out",
                                 signals=(2, 3), lanes=(0,)))
        inters.append(IntersectionSpec(id=iid, phases=PHASES))
    return NetworkSpec(links=tuple(links), intersections=tuple(inters), movements=tuple(movs),
                       detectors=tuple(dets))


def make_plan(iid: str, version: int, now: float, ns: float = 30.0) -> TimingPlan:
    """An engineer plan (valid one day) with greens ns / 60 - ns."""
    durs = (ns, 3.0, 60.0 - ns, 3.0)
    phases = tuple(PhaseTiming(state=p.state, duration=d, min_dur=10.0 if p.is_green else 3.0,
                               max_dur=60.0 if p.is_green else 3.0, is_green=p.is_green)
                   for p, d in zip(PHASES, durs, strict=True))
    return TimingPlan(intersection=iid, version=version, created_at=now, valid_until=now + 86400,
                      cycle=66.0, offset=0.0, phases=phases, rings=((0, 1, 2, 3),),
                      source="engineer")


@dataclass
class Workspace:
    """Files of one benchmark run and the raw keys the clients use."""

    root: Path
    net_json: Path
    keys_json: Path
    db: Path
    adapter_keys: dict[str, str]
    ingest_key: str
    engineer_key: str


def setup(root: Path) -> Workspace:
    """Write network, hashed keys and a seeded store (v1 plans for every intersection)."""
    spec = region_spec()
    net_json = root / "region.json"
    net_json.write_text(spec.model_dump_json())
    raw_keys, records = {}, []
    for inter in spec.intersections:
        raw, rec = new_key(f"cab-{inter.id}", "adapter", [inter.id])
        raw_keys[inter.id] = raw
        records.append(rec)
    ingest_raw, ingest = new_key("ingest", "ingest")
    eng_raw, eng = new_key("eng", "engineer")
    keys_json = root / "keys.json"
    write_keys(keys_json, [*records, ingest, eng])
    db = root / "plans.sqlite"
    store = SqlPlanStore(str(db))
    now = time.time()
    store.publish([make_plan(i.id, 1, now) for i in spec.intersections], actor="seed")
    store.close()
    return Workspace(root, net_json, keys_json, db, raw_keys, ingest_raw, eng_raw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    """``signalopt.serve_cmd`` as a child process on loopback."""

    def __init__(self, ws: Workspace) -> None:
        self.ws, self.port, self.proc = ws, free_port(), None
        self.url = f"http://{HOST}:{self.port}"

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "signalopt.serve_cmd", "--db", str(self.ws.db), "--network",
               str(self.ws.net_json), "--keys", str(self.ws.keys_json), "--host", HOST,
               "--port", str(self.port), "--no-scan", "--log-level", "error"]
        log = (self.ws.root / "server.log").open("a")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        msg = f"server did not come up; see {self.ws.root / 'server.log'}"
        raise RuntimeError(msg)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


PUBLISHER = """
import sys, time
sys.path.insert(0, {root!r})
from benchmarks.service_load import make_plan, N_INT
from signalopt.store import SqlPlanStore
store = SqlPlanStore({db!r})
ids = [f"I{{i:04d}}" for i in range(N_INT)]
time.sleep(max(0.0, {start_at} - time.time()))  # imports done before the measured window
period, until = {period}, time.time() + {duration}
while time.time() < until:
    v = max(store.latest_versions().values(), default=0) + 1
    now = time.time()
    plans = [make_plan(i, v, now, ns=20.0 + v % 20) for i in ids]
    print("begin", v, flush=True)
    store.publish(plans, actor="publisher")
    print("done", v, flush=True)
    time.sleep(period)
"""


def start_publisher(ws: Workspace, *, period: float, duration: float,
                    start_at: float = 0.0) -> subprocess.Popen:
    """A process that republishes all 1,300 plans in one transaction every ``period`` s,
    from wall-clock ``start_at`` on."""
    code = PUBLISHER.format(root=str(ROOT), db=str(ws.db), period=period, duration=duration,
                            start_at=start_at)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


# -- 1. load -----------------------------------------------------------------------------
@dataclass
class LoadStats:
    """Samples of one load level."""

    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    lag_ms: list[float] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unanswered: int = 0

    def add(self, kind: str, status: int, latency_ms: float) -> None:
        self.latency_ms.setdefault(kind, []).append(latency_ms)
        self.status[f"{kind}:{status}"] = self.status.get(f"{kind}:{status}", 0) + 1


class RawPool:
    """Minimal HTTP/1.1 keep-alive client for load generation.

    httpx's async pool costs ~2 ms of client CPU per request on a 2-core box and saturated
    before the server did; this pool (one request per connection at a time, like wrk) keeps
    the load generator from being what is measured.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.free: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self.opened = 0

    async def _conn(self) -> tuple[Any, Any]:
        if self.free.empty() and self.opened < self.size:
            self.opened += 1
            try:
                return await asyncio.open_connection(self.host, self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.free.get()

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        reader, writer = await self._conn()
        try:
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n" \
                   f"Content-Length: {len(body)}\r\n" + \
                   "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(head.encode() + b"\r\n" + body)
            status = int((await reader.readline()).split()[1])
            hdrs = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                key, _, val = line.decode("latin-1").partition(":")
                hdrs[key.strip().lower()] = val.strip()
            n = int(hdrs.get("content-length", 0))
            data = await reader.readexactly(n) if n else b""
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            self.opened -= 1
            writer.close()
            raise
        if hdrs.get("connection") == "close":
            self.opened -= 1
            writer.close()
        else:
            self.free.put_nowait((reader, writer))
        return status, hdrs, data


class LoadRun:
    """Open-loop adapters and cabinets against one server for ``duration`` seconds."""

    def __init__(self, ws: Workspace, server: Server, *, mult: float, duration: float,
                 level: int, warmup: float = 5.0) -> None:
        self.ws, self.server, self.mult, self.duration = ws, server, mult, duration
        self.level, self.warmup = level, warmup
        self.ids = sorted(ws.adapter_keys)
        self.etag: dict[str, str] = {}
        self.stats = self._warm = LoadStats()

    def schedule(self) -> list[tuple[float, str, int]]:
        poll_p, count_p = 10.0 / self.mult, 30.0 / self.mult
        out = []
        for n, period, kind in ((len(self.ids), poll_p, "poll"), (N_DET // 4, count_p, "counts")):
            for i in range(n):
                t = (i / n) * period
                while t < self.warmup + self.duration:
                    out.append((t, kind, i))
                    t += period
        out.sort()
        return out

    async def run(self) -> LoadStats:
        self.pool = RawPool(HOST, self.server.port, 256)
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.5
        tasks = []
        for t, kind, i in self.schedule():
            delay = t0 + t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if t >= self.warmup and self.stats is self._warm:
                self.stats = LoadStats()  # warm-up over (connections open, ETags known)
                self.on_measure()
            job = self._poll(i, t0 + t, self.stats) if kind == "poll" else \
                self._counts(i, t0 + t, t, self.stats)
            tasks.append(asyncio.create_task(job))
        await asyncio.gather(*tasks)
        return self.stats

    def on_measure(self) -> None:
        """Called once when measurement starts (after the warm-up)."""

    async def _send(self, stats: LoadStats, kind: str, due: float, method: str, path: str,
                    headers: dict[str, str], body: bytes = b"") -> tuple[int, dict, bytes] | None:
        """Send one request; its figures go to ``stats`` (the window it was scheduled in)."""
        loop = asyncio.get_running_loop()
        stats.lag_ms.append(1e3 * (loop.time() - due))
        try:
            status, hdrs, data = await self.pool.request(method, path, headers, body)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
            stats.errors.append(f"{kind}: {exc.__class__.__name__}: {exc}")
            stats.unanswered += 1
            return None
        stats.add(kind, status, 1e3 * (loop.time() - due))
        if status not in (200, 304):
            stats.errors.append(f"{kind}: HTTP {status} {data[:200]!r}")
        return status, hdrs, data

    async def _poll(self, i: int, due: float, stats: LoadStats) -> None:
        iid = self.ids[i]
        headers = {"X-API-Key": self.ws.adapter_keys[iid]}
        if iid in self.etag:
            headers["If-None-Match"] = self.etag[iid]
        out = await self._send(stats, "poll", due, "GET", f"/v1/intersections/{iid}/plan",
                               headers)
        if out is None or out[0] != 200:
            return
        self.etag[iid] = out[1]["etag"]
        body = json.loads(out[2])
        if body["mode"] == "plan":  # a new version: apply and acknowledge it
            ack = json.dumps({"version": body["version"], "status": "applied"}).encode()
            await self._send(stats, "ack", asyncio.get_running_loop().time(), "POST",
                             f"/v1/intersections/{iid}/ack",
                             {"X-API-Key": self.ws.adapter_keys[iid],
                              "Content-Type": "application/json"}, ack)

    async def _counts(self, cab: int, due: float, t: float, stats: LoadStats) -> None:
        period = 30.0 / self.mult
        start = 1e6 * self.level + period * int(t // period)
        rows = [{"detector_id": f"{self.ids[cab]}{leg}_d", "interval_start": start,
                 "count": int(3 + (cab + k) % 7), "occupancy": 5.0 + k, "speed": 11.0}
                for k, leg in enumerate("nesw")]
        await self._send(stats, "counts", due, "POST", "/v1/counts",
                         {"X-API-Key": self.ws.ingest_key, "Content-Type": "application/json"},
                         json.dumps({"rows": rows}).encode())


def cpu_probe() -> float:
    """Seconds for 10 M Python additions: ~0.5 s on a quiet core of this class of machine;
    more means other processes are taking the CPU (the figures are then pessimistic)."""
    t, x = time.perf_counter(), 0
    for i in range(10_000_000):
        x += i
    return round(time.perf_counter() - t, 2)


def server_histogram(url: str) -> dict[float, float]:
    """Cumulative request-latency histogram (all routes) from the server's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("signalopt_http_request_seconds_bucket{") and 'route="/metrics"' not in line:
            le = line.split('le="')[1].split('"')[0]
            bound = float("inf") if le == "+Inf" else float(le)
            out[bound] = out.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def server_p99_bound(before: dict[float, float], after: dict[float, float]) -> float:
    """Smallest histogram bucket bound (s) holding 99 % of the requests in between."""
    delta = {b: after.get(b, 0.0) - before.get(b, 0.0) for b in after}
    total = delta.get(float("inf"), 0.0)
    for bound in sorted(delta):
        if total and delta[bound] >= 0.99 * total:
            return bound
    return float("nan")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_level(ws: Workspace, server: Server, *, mult: float, duration: float,
               level: int, publish_s: float) -> dict[str, Any]:
    """One load level (after a 5 s warm-up) with the publisher writing alongside."""
    run = LoadRun(ws, server, mult=mult, duration=duration, level=level)
    pubs: list[subprocess.Popen] = []
    if publish_s > 0:  # first full republish 1 s into the measured window
        pubs.append(start_publisher(ws, period=publish_s, duration=duration - 1.0,
                                    start_at=time.time() + run.warmup + 1.5))
    probe = cpu_probe()
    hist0 = server_histogram(server.url)
    w0 = time.perf_counter()
    gc.disable()  # a full collection in the load generator stalls its event loop ~100 ms,
    try:          # which would be charged to the server as latency
        stats = asyncio.run(run.run())
    finally:
        gc.enable()
    wall = time.perf_counter() - w0
    server_p99 = server_p99_bound(hist0, server_histogram(server.url))
    published = 0
    for pub in pubs:
        pub.terminate()
        published = (pub.communicate(timeout=30)[0] or "").count("done")
    every = [x for v in stats.latency_ms.values() for x in v]
    n = len(every) + stats.unanswered
    p99 = _pct(every, 99)
    return {
        "test": f"load {mult:g}x", "requests": n, "wall_s": round(wall, 1),
        "req_per_s": round(n / duration, 1),
        "p50_ms": round(_pct(every, 50), 2), "p99_ms": round(p99, 2),
        "max_ms": round(max(every, default=float("nan")), 1),
        "poll_p99_ms": round(_pct(stats.latency_ms.get("poll", []), 99), 2),
        "counts_p99_ms": round(_pct(stats.latency_ms.get("counts", []), 99), 2),
        "ack_p99_ms": round(_pct(stats.latency_ms.get("ack", []), 99), 2),
        "client_lag_p99_ms": round(_pct(stats.lag_ms, 99), 2),
        "server_side_p99_le_ms": 1e3 * server_p99, "cpu_probe_s": probe,
        "errors": len(stats.errors), "error_samples": stats.errors[:5],
        "status": stats.status, "full_republishes": published,
        "target": "p99 < 50 ms, errors = 0" if mult > 1 else "errors = 0",
        "met": not stats.errors and (mult == 1 or p99 < 50),
    }


# -- 2. faults ---------------------------------------------------------------------------
async def _writers(url: str, make: Any, *, workers: int, kill_after: float,
                   server: Server) -> tuple[list[Any], int]:
    """``workers`` loops sending ``make(k)`` requests; kill -9 the server after ``kill_after``.

    Returns the tags of writes answered 2xx (acknowledged) and the number left unanswered.
    """
    acked: list[Any] = []
    unanswered = 0
    counter = iter(range(10**9))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal unanswered
        while True:
            tag, method, path, kw = make(next(counter))
            try:
                r = await client.request(method, path, **kw)
            except httpx.HTTPError:
                unanswered += 1
                return
            if r.status_code == 200:
                acked.append((tag, r.json()))

    async def killer() -> None:
        await asyncio.sleep(kill_after)
        server.kill9()

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await asyncio.gather(killer(), *(worker(client) for _ in range(workers)))
    return acked, unanswered


def fault_ingest(ws: Workspace, *, kill_after: float) -> dict[str, Any]:
    """kill -9 during count ingestion: acknowledged batches all present, none half-written."""
    rows_per = 200
    server = Server(ws).start()

    def make(k: int) -> tuple[Any, str, str, dict[str, Any]]:
        t = 2e7 + k  # one interval per batch
        rows = [{"detector_id": f"I{(j % 1250):04d}{'nesw'[j // 1250]}_d",
                 "interval_start": t, "count": 1} for j in range(k % 25, N_DET, 25)][:rows_per]
        return k, "POST", "/v1/counts", {"json": {"rows": rows},
                                         "headers": {"X-API-Key": ws.ingest_key}}

    acked, unanswered = asyncio.run(_writers(server.url, make, workers=16,
                                             kill_after=kill_after, server=server))
    server.start()  # restart on the same database
    store = SqlPlanStore(str(ws.db))
    frame = store.counts_between(2e7, 3e7)
    store.close()
    per_batch = frame.groupby("interval_start").size()
    lost = [k for k, _ in acked if per_batch.get(2e7 + k, 0) != rows_per]
    partial = int(((per_batch != rows_per) & (per_batch != 0)).sum())
    health = httpx.get(f"{server.url}/v1/health", timeout=5).status_code
    server.stop()
    return {"test": "kill -9 during ingestion", "acknowledged": len(acked),
            "in_flight_at_kill": unanswered, "lost_acknowledged": len(lost),
            "half_written_batches": partial, "health_after_restart": health,
            "met": not lost and partial == 0 and health == 200}


def _plan_body(ns: float) -> dict[str, Any]:
    plan = make_plan("x", 1, 0.0, ns=ns)
    return {"cycle": plan.cycle, "offset": 0.0, "valid_for_s": 86400,
            "phases": [p.model_dump() for p in plan.phases]}


def _served_plans_valid(ws: Workspace, url: str) -> tuple[int, list[str]]:
    """GET every intersection's plan; each must parse and pass the invariants."""
    net = compile_network(region_spec())
    bases = {i.id: i for i in net.spec.intersections}
    problems: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for iid, raw in ws.adapter_keys.items():
            body = client.get(f"/v1/intersections/{iid}/plan", headers={"X-API-Key": raw}).json()
            plan = TimingPlan.model_validate(body["plan"] or body["fallback"])
            problems += plan_problems(plan, bases[iid], limits=PlanLimits())
    return len(ws.adapter_keys), problems


def fault_publish_api(ws: Workspace, *, kill_after: float) -> dict[str, Any]:
    """kill -9 while engineers publish over HTTP: every acknowledged version is stored."""
    server = Server(ws).start()
    ids = sorted(ws.adapter_keys)

    def make(k: int) -> tuple[Any, str, str, dict[str, Any]]:
        iid = ids[k % len(ids)]
        return (iid, k), "POST", f"/v1/intersections/{iid}/plans", {
            "json": _plan_body(20.0 + k % 20), "headers": {"X-API-Key": ws.engineer_key}}

    acked, unanswered = asyncio.run(_writers(server.url, make, workers=8,
                                             kill_after=kill_after, server=server))
    server.start()
    store = SqlPlanStore(str(ws.db))
    lost = [(iid, out["version"]) for (iid, _), out in acked
            if store.get(iid, out["version"]) is None]
    store.close()
    checked, problems = _served_plans_valid(ws, server.url)
    server.stop()
    return {"test": "kill -9 during API publish", "acknowledged": len(acked),
            "in_flight_at_kill": unanswered, "lost_acknowledged": len(lost),
            "plans_checked": checked, "invalid_served": len(problems),
            "met": not lost and not problems}


def fault_publisher_kill(ws: Workspace, *, rounds: int) -> dict[str, Any]:
    """kill -9 the publisher inside its 1,300-plan transaction: all-or-nothing per scan."""
    outcomes = []
    rng = np.random.default_rng(7)
    for _ in range(rounds):
        pub = start_publisher(ws, period=0.0, duration=120.0)
        assert pub.stdout is not None
        lines = [pub.stdout.readline(), pub.stdout.readline()]  # one full publish done
        time.sleep(float(rng.uniform(0.02, 0.4)))  # then kill somewhere in the next ones
        os.kill(pub.pid, signal.SIGKILL)
        pub.wait()
        lines += (pub.stdout.read() or "").splitlines()
        done = [int(x.split()[1]) for x in lines if x.startswith("done")]
        store = SqlPlanStore(str(ws.db))
        versions = {p.version for p in store.current_all().values()}
        store.close()
        outcomes.append({"last_committed": max(done), "current_versions": sorted(versions),
                         "killed_inside_publish": lines[-1].startswith("begin")})
    with_server = Server(ws).start()
    checked, problems = _served_plans_valid(ws, with_server.url)
    with_server.stop()
    mixed = [o for o in outcomes if len(o["current_versions"]) != 1]
    lost = [o for o in outcomes if o["current_versions"][-1] < o["last_committed"]]
    inside = sum(o["killed_inside_publish"] for o in outcomes)
    return {"test": "kill -9 publisher mid-transaction", "rounds": rounds, "outcomes": outcomes,
            "killed_inside_publish": inside,
            "mixed_version_snapshots": len(mixed), "lost_committed": len(lost),
            "plans_checked": checked, "invalid_served": len(problems),
            "met": not mixed and not lost and not problems}


# -- 3. bad input ------------------------------------------------------------------------
def bad_cases(ws: Workspace) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, method, path, httpx kwargs) of hand-written hostile requests."""
    ing = {"X-API-Key": ws.ingest_key, "content-type": "application/json"}
    ada = {"X-API-Key": ws.adapter_keys["I0000"], "content-type": "application/json"}
    eng = {"X-API-Key": ws.engineer_key, "content-type": "application/json"}
    row = {"detector_id": "I0000n_d", "interval_start": 0.0, "count": 1}
    return [
        ("malformed json", "POST", "/v1/counts", {"headers": ing, "content": b'{"rows": [1,'}),
        ("not utf-8", "POST", "/v1/counts", {"headers": ing, "content": b'{"rows": ["\xff\xfe"]}'}),
        ("json array body", "POST", "/v1/counts", {"headers": ing, "content": b"[1, 2]"}),
        ("oversized body 3 MB", "POST", "/v1/counts",
         {"headers": ing, "content": b'{"rows": [' + b"0," * 1_500_000 + b"0]}"}),
        ("too many rows", "POST", "/v1/counts", {"headers": ing, "json": {"rows": [row] * 20_001}}),
        ("deep nesting", "POST", "/v1/counts",
         {"headers": ing, "content": b'{"rows": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"}),
        ("wrong-typed rows", "POST", "/v1/counts", {"headers": ing, "json": {"rows": "many"}}),
        ("extra top-level field", "POST", "/v1/counts",
         {"headers": ing, "json": {"rows": [], "x": 1}}),
        ("form body", "POST", "/v1/counts",
         {"headers": {"X-API-Key": ws.ingest_key}, "data": {"rows": "1"}}),
        ("ack version string", "POST", "/v1/intersections/I0000/ack",
         {"headers": ada, "json": {"version": "seven", "status": "applied"}}),
        ("ack huge version", "POST", "/v1/intersections/I0000/ack",
         {"headers": ada, "json": {"version": 10**30, "status": "applied"}}),
        ("ack unknown status", "POST", "/v1/intersections/I0000/ack",
         {"headers": ada, "json": {"version": 1, "status": "maybe"}}),
        ("plan NaN cycle", "POST", "/v1/intersections/I0000/plans",
         {"headers": eng, "content": b'{"cycle": NaN, "offset": 0, "phases": []}'}),
        ("plan rings out of range", "POST", "/v1/intersections/I0000/plans",
         {"headers": eng, "json": {**_plan_body(30.0), "rings": [[0, 1, 2, 99]]}}),
        ("very long intersection id", "GET", "/v1/intersections/" + "A" * 20_000 + "/plan",
         {"headers": ada}),
        ("path traversal id", "GET", "/v1/intersections/..%2F..%2Fetc/plan", {"headers": ada}),
        ("huge api key header", "GET", "/v1/intersections/I0000/plan",
         {"headers": {"X-API-Key": "k" * 60_000}}),
        ("no key", "GET", "/v1/intersections/I0000/plan", {}),
        ("other region", "GET", "/v1/intersections/I0001/plan", {"headers": ada}),
        ("unknown route", "GET", "/v1/nothing", {}),
        ("wrong method", "DELETE", "/v1/counts", {"headers": ing}),
    ]


def _bad_request_ok(r: httpx.Response) -> bool:
    """A 4xx whose JSON body carries a non-empty ``detail`` (431/414 from uvicorn excepted)."""
    if not 400 <= r.status_code < 500:
        return False
    try:
        detail = r.json().get("detail")
    except ValueError:
        return r.status_code in (414, 431)  # rejected by the HTTP parser before the app
    return bool(detail)


def bad_input(ws: Workspace, server: Server, *, fuzz_examples: int) -> dict[str, Any]:
    """Hand-written hostile requests plus hypothesis fuzzing; server must keep serving."""
    failures: list[str] = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name, method, path, kw in bad_cases(ws):
            try:
                r = client.request(method, path, **kw)
            except httpx.HTTPError as exc:
                failures.append(f"{name}: {exc.__class__.__name__}")
                continue
            if not _bad_request_ok(r):
                failures.append(f"{name}: HTTP {r.status_code} {r.text[:120]!r}")
        fuzz = _fuzz(ws, client, fuzz_examples)
        still = client.get("/v1/intersections/I0000/plan",
                           headers={"X-API-Key": ws.adapter_keys["I0000"]}).status_code
        health = client.get("/v1/health").status_code
    schema = _schemathesis(ws, server, fuzz_examples)
    return {"test": "bad input", "cases": len(bad_cases(ws)), "case_failures": failures,
            "fuzz_requests": fuzz["n"], "fuzz_5xx_or_bad": fuzz["bad"],
            "schemathesis": schema, "plan_get_after": still, "health_after": health,
            "met": not failures and not fuzz["bad"] and still == 200 and health == 200
            and schema.get("ok", True)}


def _fuzz(ws: Workspace, client: httpx.Client, examples: int) -> dict[str, Any]:
    """hypothesis-generated JSON bodies for counts, ack and engineer plans."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
    values = st.recursive(scalars, lambda c: st.lists(c, max_size=4)
                          | st.dictionaries(st.text(max_size=12), c, max_size=4), max_leaves=12)
    row = st.fixed_dictionaries({}, optional={k: values | scalars for k in (
        "detector_id", "interval_start", "count", "occupancy", "speed", "junk")})
    counts = st.fixed_dictionaries({"rows": st.lists(row | values, max_size=6)})
    ack = values | st.fixed_dictionaries(
        {}, optional={"version": values, "status": values, "reason": values})
    counts = st.fixed_dictionaries({"rows": st.lists(row | values, max_size=6)})
    ack = values | st.fixed_dictionaries(
        {}, optional={"version": values, "status": values, "reason": values})
    targets = [("/v1/counts", ws.ingest_key, counts),
               ("/v1/intersections/I0000/ack", ws.adapter_keys["I0000"], ack),
               ("/v1/intersections/I0000/plans", ws.engineer_key, values)]
    out = {"n": 0, "bad": []}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(range(len(targets))), st.data())
    def probe(k: int, data: Any) -> None:
        path, key, strategy = targets[k]
        body = data.draw(strategy)
        r = client.post(path, headers={"X-API-Key": key}, content=json.dumps(body).encode(),
                        timeout=30)
        out["n"] += 1
        if r.status_code >= 500 or (r.status_code >= 400 and not _bad_request_ok(r)):
            out["bad"].append(f"{path} {r.status_code}: {json.dumps(body)[:200]}")

    probe()
    return out


def _schemathesis(ws: Workspace, server: Server, examples: int) -> dict[str, Any]:
    """schemathesis against the OpenAPI document, if installed: no 5xx on any operation."""
    exe = Path(sys.executable).with_name("st")
    if not exe.exists():
        return {"skipped": "schemathesis not installed (pip install 'signalopt[dev]')"}
    results = {}
    for role, key in (("engineer", ws.engineer_key), ("ingest", ws.ingest_key),
                      ("adapter", ws.adapter_keys["I0000"])):
        cmd = [str(exe), "run", f"{server.url}/openapi.json", "-H", f"X-API-Key: {key}",
               "--checks", "not_a_server_error", "-n", str(max(5, examples // 20)),
               "--max-time", "60", "--seed", "1", "--no-shrink"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False,
                              cwd=ws.root)  # its .schemathesis/ cache stays in the tmp dir
        results[role] = proc.returncode
    return {"exit_codes": results, "ok": all(v == 0 for v in results.values())}


# -- report ------------------------------------------------------------------------------
def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per test with its headline figures."""
    keys = ("req_per_s", "p50_ms", "p99_ms", "errors", "acknowledged", "lost_acknowledged",
            "half_written_batches", "mixed_version_snapshots", "invalid_served",
            "fuzz_requests")
    print(f"{'test':<36} {'met':<5} figures")
    for r in rows:
        figs = ", ".join(f"{k}={r[k]}" for k in keys if k in r)
        print(f"{r['test']:<36} {'yes' if r['met'] else 'NO':<5} {figs}")


def write_results(rows: list[dict[str, Any]], out: Path, meta: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "service_load.json").write_text(json.dumps({"meta": meta, "results": rows},
                                                      indent=2, default=str))
    cols = sorted({k for r in rows for k in r if not isinstance(r[k], dict | list)})
    with (out / "service_load.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("results/service_load"))
    ap.add_argument("--quick", action="store_true", help="20 s per load level, fewer faults")
    ap.add_argument("--duration", type=float, help="seconds per load level (default 60/20)")
    ap.add_argument("--publish-s", type=float, default=30.0, help="republish period")
    ap.add_argument("--only", default="load,bad,faults", help="comma list of stages")
    args = ap.parse_args(argv)
    duration = args.duration or (20.0 if args.quick else 60.0)
    stages = set(args.only.split(","))
    rows: list[dict[str, Any]] = []
    meta = {"duration_per_level_s": duration, "quick": args.quick, "host": HOST,
            "python": sys.version.split()[0], "cpus": os.cpu_count(),
            "intersections": N_INT, "detectors": N_DET, "started": time.time()}
    with tempfile.TemporaryDirectory(prefix="signalopt-load-") as tmp:
        ws = setup(Path(tmp))
        if stages & {"load", "bad"}:
            server = Server(ws).start()
            try:
                if "load" in stages:
                    for level, mult in enumerate((1.0, 2.0), start=1):
                        rows.append(load_level(ws, server, mult=mult, duration=duration,
                                               level=level, publish_s=args.publish_s))
                        print_table(rows[-1:])
                if "bad" in stages:
                    rows.append(bad_input(ws, server, fuzz_examples=100 if args.quick else 500))
                    print_table(rows[-1:])
            finally:
                server.stop()
        if "faults" in stages:
            rows.append(fault_ingest(ws, kill_after=1.5))
            rows.append(fault_publish_api(ws, kill_after=1.5))
            rows.append(fault_publisher_kill(ws, rounds=2 if args.quick else 5))
            print_table(rows[-3:])
    meta["wall_s"] = round(time.time() - meta["started"], 1)
    print()
    print_table(rows)
    write_results(rows, args.out, meta)
    print(f"wrote {args.out / 'service_load.json'} and service_load.csv")
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
