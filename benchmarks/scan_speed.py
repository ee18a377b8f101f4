"""Scan speed on synthetic grids (issue #4): one estimator update after JIT warm-up.

Grids of 128, 1,300, 10,000 and 100,000 signalised intersections are built as ``NetworkSpec``
objects in code (no SUMO): two-lane links, left/through/right movements, an entry loop per
lane of every link and a stop-line loop + camera zone per approach lane. Each stage is a
function in ``STAGES`` timed side by side (add optimize/validate stages there); compile time
is reported separately, and memory per intersection counts the stage's static model + state.

    python benchmarks/scan_speed.py --out results/scan_speed
    python benchmarks/scan_speed.py --sizes 128 1300 --out results/scan_speed
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from signalopt.config import EstimatorParams, QAParams
from signalopt.estimate import estimator_model, init_state, step
from signalopt.network import (
    CompiledNetwork,
    DetectorSpec,
    IntersectionSpec,
    LinkSpec,
    MovementSpec,
    NetworkSpec,
    PhaseSpec,
    compile_network,
)

SIZES = (128, 1_300, 10_000, 100_000)
TARGET_MS = {128: 1.0, 1_300: 10.0, 100_000: 1000.0}


def _node(i: int, j: int, nx: int, ny: int) -> str:
    return f"n{i}_{j}" if 0 <= i < nx and 0 <= j < ny else f"b{i}_{j}"


def synthetic_grid(n_int: int, block_m: float = 200.0) -> NetworkSpec:
    """A near-square grid of ``n_int`` signalised intersections with boundary legs."""
    nx = math.ceil(math.sqrt(n_int))
    ny = math.ceil(n_int / nx)
    cells = [(i, j) for j in range(ny) for i in range(nx)][:n_int]
    inside = set(cells)
    links: dict[tuple[str, str], LinkSpec] = {}
    for i, j in cells:
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a = _node(i, j, nx, ny)
            b = _node(i + di, j + dj, nx, ny) if (i + di, j + dj) in inside else f"b{i}_{j}_{di}_{dj}"
            for u, v in ((a, b), (b, a)):
                links.setdefault((u, v), LinkSpec.model_construct(
                    id=f"{u}-{v}", from_node=u, to_node=v, length=block_m, lanes=2, speed=13.9))
    movs, inters, dets = [], [], []
    by_to: dict[str, list[LinkSpec]] = {}
    by_from: dict[str, list[LinkSpec]] = {}
    for link in links.values():
        by_to.setdefault(link.to_node, []).append(link)
        by_from.setdefault(link.from_node, []).append(link)
    for i, j in cells:
        n = _node(i, j, nx, ny)
        k, ns, ew = 0, [], []
        for a in by_to[n]:
            outs = [b for b in by_from[n] if b.to_node != a.from_node]
            for q, b in enumerate(outs):
                lanes = (0,) if q == 0 else (1,) if q == len(outs) - 1 else (0, 1)
                movs.append(MovementSpec.model_construct(intersection=n, from_link=a.id,
                                                         to_link=b.id, signals=(k,), lanes=lanes))
                (ns if len(ns) <= len(ew) else ew).append(k)
                k += 1
            for lane in (0, 1):
                dets.append(DetectorSpec.model_construct(id=f"{a.id}_{lane}_stop", link=a.id, lane=lane,
                                                         pos=block_m - 2.0, length=0.0, kind="stopline"))
                dets.append(DetectorSpec.model_construct(id=f"{a.id}_{lane}_zone", link=a.id, lane=lane,
                                                         pos=block_m - 100.0, length=99.9, kind="zone"))
        s1 = "".join("G" if s in ns else "r" for s in range(k))
        s2 = "".join("G" if s in ew else "r" for s in range(k))
        inters.append(IntersectionSpec.model_construct(id=n, offset=0.0, ped_min_green=0.0, phases=(
            PhaseSpec.model_construct(state=s1, duration=30.0, min_dur=10.0, max_dur=60.0),
            PhaseSpec.model_construct(state=s2, duration=30.0, min_dur=10.0, max_dur=60.0))))
    for link in links.values():
        for lane in (0, 1):
            dets.append(DetectorSpec.model_construct(id=f"{link.id}_{lane}_in", link=link.id, lane=lane,
                                                     pos=10.0, length=0.0, kind="entry"))
    return NetworkSpec.model_construct(links=tuple(links.values()), intersections=tuple(inters),
                                       movements=tuple(movs), detectors=tuple(dets))


def _nbytes(obj: object) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, tuple):
        return sum(_nbytes(x) for x in obj)
    return 0


def stage_estimate(net: CompiledNetwork, rng: np.random.Generator) -> tuple[Callable[[], object], int]:
    """One estimator interval update (QA + Kalman + links + queues); returns (call, bytes)."""
    params, qa = EstimatorParams(), QAParams()
    model = estimator_model(net)
    state = init_state(model, params)
    count = rng.integers(0, 10, net.n_detectors).astype(np.float64)
    occ = count * 1.5 + rng.random(net.n_detectors)
    speed = np.where(count > 0, 10.0, np.nan)

    def call() -> object:
        return step(model, state, count, occ, speed, t_start=0.0, params=params, qa_params=qa)
    return call, _nbytes(model) + _nbytes(state)


def stage_optimize(net: CompiledNetwork, rng: np.random.Generator) -> tuple[Callable[[], object], int]:
    """The optimizer on random movement flows after a first scan (smoothing active)."""
    from signalopt.config import OptimizerParams
    from signalopt.optimize import initial_state, optimize

    params = OptimizerParams()
    flow = rng.uniform(50, 600, net.n_movements)
    queue = rng.uniform(0, 8, net.n_movements)
    _, state = optimize(net, flow, queue, initial_state(net), params)

    def call() -> object:
        return optimize(net, flow * 1.1, queue, state, params)
    return call, _nbytes(state.corridors) + _nbytes(state.lane_index)


def stage_validate(net: CompiledNetwork, rng: np.random.Generator) -> tuple[Callable[[], object], int]:
    """The plan invariants over every intersection at once (vectorised validator)."""
    from signalopt.config import OptimizerParams
    from signalopt.optimize import initial_state, optimize
    from signalopt.plan import PlanLimits, array_problems

    flow = rng.uniform(50, 600, net.n_movements)
    plan, _ = optimize(net, flow, np.zeros(net.n_movements), initial_state(net), OptimizerParams())
    limits = PlanLimits()

    def call() -> object:
        return array_problems(net, plan.cycle, plan.offset, plan.duration, plan.min_dur,
                              plan.max_dur, limits=limits, prev_duration=plan.duration)
    return call, 0


def stage_scan(net: CompiledNetwork, rng: np.random.Generator) -> tuple[Callable[[], object], int]:
    """A whole scan from a counts table (4 intervals): QA + estimate + optimize + validate."""
    from signalopt.scan import ScanConfig, initial_scan_state, run_scan

    counts = pd.DataFrame({
        "detector_id": np.tile(np.array(net.det_ids, dtype=object), 4),
        "interval_start": np.repeat([0.0, 30.0, 60.0, 90.0], net.n_detectors),
        "count": rng.integers(0, 10, 4 * net.n_detectors),
    })
    counts["occupancy"] = counts["count"] * 1.5
    counts["speed"] = np.where(counts["count"] > 0, 10.0, np.nan)
    config = ScanConfig()
    state = initial_scan_state(net)

    def call() -> object:
        return run_scan(net, counts, state, config, t=120.0)
    return call, 0


def stage_scan_arrays(net: CompiledNetwork, rng: np.random.Generator) -> tuple[Callable[[], object], int]:
    """A whole scan from dense arrays (a live feed): estimate (4 intervals) + optimize + validate."""
    from signalopt.detectors import DetectorFrame
    from signalopt.scan import ScanConfig, initial_scan_state, run_scan

    count = rng.integers(0, 10, (4, net.n_detectors)).astype(np.float64)
    frame = DetectorFrame(np.array([0.0, 30.0, 60.0, 90.0]), count, count * 1.5,
                          np.where(count > 0, 10.0, np.nan))
    config = ScanConfig()
    state = initial_scan_state(net)

    def call() -> object:
        return run_scan(net, frame, state, config, t=120.0)
    return call, 0


STAGES: dict[str, Callable[[CompiledNetwork, np.random.Generator], tuple[Callable[[], object], int]]] = {
    "estimate_update": stage_estimate,
    "optimize": stage_optimize,
    "validate": stage_validate,
    "scan_total": stage_scan,
    "scan_arrays": stage_scan_arrays,
}


def measure(n_int: int, repeats: int = 5) -> dict[str, float]:
    """Build one grid, then time every stage: first call (compile) and best of ``repeats``."""
    t0 = time.perf_counter()
    net = compile_network(synthetic_grid(n_int))
    row: dict[str, float] = {"intersections": n_int, "links": net.n_links,
                             "detectors": net.n_detectors,
                             "build_s": round(time.perf_counter() - t0, 2)}
    rng = np.random.default_rng(0)
    for name, make in STAGES.items():
        call, nbytes = make(net, rng)
        t0 = time.perf_counter()
        call()
        row[f"{name}_first_s"] = round(time.perf_counter() - t0, 3)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        row[f"{name}_ms"] = round(1000 * min(times), 3)
        row[f"{name}_kb_per_int"] = round(nbytes / n_int / 1024, 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="scan speed on synthetic grids")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="folder for scan_speed.json/.csv")
    args = ap.parse_args(argv)
    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.repeats))
        print(pd.DataFrame([rows[-1]]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False))
    print("targets (ms per estimator update):", TARGET_MS, "; first_s includes JIT compile/cache load")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "scan_speed.csv", index=False)
        (args.out / "scan_speed.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
