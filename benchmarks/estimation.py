"""Estimator accuracy vs SUMO ground truth on pilot128 (issue #4).

Simulates (or loads cached) pilot128 runs under the fixed-time controller, runs the
estimator on their detector counts and scores every scan (120 s) against the ground truth:
network in-transit MAPE, link WMAPE, approach-lane queue MAE, turning-ratio MAE. Repeats with
10 % and 30 % of detectors failed (stuck or silent, random, seeded) and shows the naive
baseline (uncorrected conservation of raw counts) in the same table.

    python benchmarks/estimation.py --out results/estimation          # full: 2 demands x 3 seeds
    python benchmarks/estimation.py --quick --out results/estimation   # 1 seed, 30 min
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from signalopt.config import EstimatorParams, QAParams
from signalopt.detectors import DetectorFrame, build_frame
from signalopt.estimate import (
    Estimate, EstimatorModel, _kalman, _link_inputs, estimator_model, run_estimator,
)
from signalopt.network import CompiledNetwork, compile_network

CASES = (("healthy", 0.0), ("10% failed", 0.10), ("30% failed", 0.30))
TARGETS = {"network_mape_%": 3.0, "link_wmape_%": 15.0, "queue_mae_veh": 2.0, "turn_mae": 0.05}


def cache_path(demand: str, seed: int, duration: float, controller: str = "fixed") -> Path:
    """Folder holding one cached run: counts.parquet, totals/links/lanes/turns.parquet."""
    root = os.environ.get("SIGNALOPT_CACHE") or Path.home() / ".cache" / "signalopt"
    return Path(root) / "estimation" / f"pilot128-{demand}-s{seed}-{duration:g}s-{controller}"


def simulate_cached(demand: str, seed: int, duration: float, controller: str = "fixed") -> Path:
    """Run (once) a pilot128 simulation and cache its counts and ground truth; return the folder."""
    out = cache_path(demand, seed, duration, controller)
    if (out / "turns.parquet").exists():
        return out
    from scenarios.registry import resolve_scenario
    from sim.runner import run_simulation

    sc = resolve_scenario("pilot128", demand=demand, seed=seed, duration=duration)
    run_simulation(sc, controller).write(out)
    return out


def pilot_network() -> CompiledNetwork:
    """The pilot128 network with the default virtual detectors (as the simulation used)."""
    from scenarios.registry import resolve_scenario
    from signalopt.io.sumo_net import read_sumo_net
    from sim.detectors import place_detectors

    spec = read_sumo_net(resolve_scenario("pilot128", demand="offpeak", seed=42).net)
    return compile_network(spec.with_detectors(place_detectors(spec)))


def fail_detectors(frame: DetectorFrame, fraction: float, seed: int) -> DetectorFrame:
    """Fail ``fraction`` of detectors from a random time in the first half: stuck or silent."""
    rng = np.random.default_rng(seed)
    count, occ, speed = frame.count.copy(), frame.occupancy.copy(), frame.speed.copy()
    n_t, n_det = count.shape
    failed = rng.choice(n_det, size=int(round(fraction * n_det)), replace=False)
    for d in failed:
        t0 = int(rng.integers(0, max(1, n_t // 2)))
        if rng.random() < 0.5:  # stuck: the value at t0 repeats forever
            count[t0:, d], occ[t0:, d], speed[t0:, d] = count[t0, d], occ[t0, d], speed[t0, d]
        else:  # silent: no rows any more
            count[t0:, d] = occ[t0:, d] = speed[t0:, d] = np.nan
    return DetectorFrame(frame.times, count, occ, speed)


def naive_totals(frame: DetectorFrame, model: EstimatorModel, params: EstimatorParams) -> np.ndarray:
    """Uncorrected conservation of raw counts (missing = 0): vehicles per link after each interval."""
    n = model.link_len.shape[0]
    cell, zero = np.zeros(n), np.zeros(n)
    out = []
    nan = np.full(n, np.nan)
    for k in range(frame.times.shape[0]):
        c = np.nan_to_num(frame.count[k])
        o = np.nan_to_num(frame.occupancy[k])
        u, _, w, _, *_ = _link_inputs(
            c, np.zeros_like(c), o, np.zeros(c.shape[0], dtype=np.int64), model.in_indptr,
            model.in_det, model.out_indptr, model.out_det, model.out_w, model.zone_indptr,
            model.zone_det, model.zone_start, model.zone_end, model.entry_pos, model.exit_pos,
            model.link_len, model.link_lanes, 5.0, 7.5, 0.0, 0.0, 0.0, 0.0, 0.0)
        cell, *_ = _kalman(cell, zero, zero, zero, zero, u, zero, w, zero, nan, nan,
                           model.out_kind, model.entry_pos, model.exit_pos, model.link_speed,
                           np.full(n, 1e9), 1.0, params.interval_s, 0.0, 0.0)
        out.append(cell.copy())
    return np.array(out)


class Truth:
    """Ground truth of one cached run, indexed like the estimator's arrays."""

    def __init__(self, folder: Path, net: CompiledNetwork, model: EstimatorModel) -> None:
        totals = pd.read_parquet(folder / "totals.parquet")
        self.t = totals["t"].to_numpy()
        self.network = totals["in_transit"].to_numpy(dtype=np.float64)
        links = pd.read_parquet(folder / "links.parquet")
        self.links = self._pivot(links, "link", "vehicles", list(net.link_ids))
        lane_names = [f"{net.link_ids[a]}_{b}" for a, b in
                      zip(model.lane_link, model.lane_lane, strict=True)]
        self.queues = self._pivot(pd.read_parquet(folder / "lanes.parquet"), "lane", "queue",
                                  lane_names)
        turns = pd.read_parquet(folder / "turns.parquet")
        turns["mov"] = [f"{a}>{b}" for a, b in zip(turns["from_link"], turns["to_link"], strict=True)]
        names = [f"{net.link_ids[a]}>{net.link_ids[b]}" for a, b in
                 zip(net.mov_from, net.mov_to, strict=True)]
        self.turns = self._pivot(turns, "mov", "count", names)

    def _pivot(self, df: pd.DataFrame, key: str, val: str, order: list[str]) -> np.ndarray:
        wide = df.pivot_table(index="t", columns=key, values=val, aggfunc="sum")
        return wide.reindex(index=self.t, columns=order).to_numpy(dtype=np.float64)


def score(ests: list[Estimate], truth: Truth, net: CompiledNetwork) -> dict[str, float]:
    """Per-scan errors averaged over the run (scans where the truth has a snapshot)."""
    row = {float(t): k for k, t in enumerate(truth.t)}
    net_ape, link_w, q_ae, t_ae = [], [], [], []
    for e in ests:
        k = row.get(round(e.t, 6))
        if k is None:
            continue
        true_n = truth.network[k]
        net_ape.append(abs(e.network_vehicles - true_n) / max(true_n, 1.0))
        tl = truth.links[k]
        link_w.append(np.abs(e.link_vehicles - tl).sum() / max(tl.sum(), 1.0))
        q_ae.append(np.nanmean(np.abs(e.lane_queue - truth.queues[k])))
        cnt = truth.turns[k]
        tot = np.bincount(net.mov_from, weights=np.nan_to_num(cnt), minlength=net.n_links)
        ok = tot[net.mov_from] > 0
        t_ae.append(np.mean(np.abs(e.turning_ratio[ok] - cnt[ok] / tot[net.mov_from][ok])))
    return {"network_mape_%": 100 * np.mean(net_ape), "link_wmape_%": 100 * np.mean(link_w),
            "queue_mae_veh": float(np.mean(q_ae)), "turn_mae": float(np.mean(t_ae))}


def score_naive(frame: DetectorFrame, truth: Truth, model: EstimatorModel,
                params: EstimatorParams) -> dict[str, float]:
    """Network MAPE and link WMAPE of uncorrected conservation."""
    cells = naive_totals(frame, model, params)
    t_end = frame.times + params.interval_s
    net_ape, link_w = [], []
    for k, t in enumerate(truth.t):
        j = np.flatnonzero(np.isclose(t_end, t))
        if not j.size:
            continue
        est = cells[j[0]]
        net_ape.append(abs(est.sum() - truth.network[k]) / max(truth.network[k], 1.0))
        link_w.append(np.abs(est - truth.links[k]).sum() / max(truth.links[k].sum(), 1.0))
    return {"network_mape_%": 100 * np.mean(net_ape), "link_wmape_%": 100 * np.mean(link_w),
            "queue_mae_veh": np.nan, "turn_mae": np.nan}
