"""Where the estimator's network error comes from: an error budget by component (issue #4).

Simulates pilot128 (fixed time) once while recording every vehicle's position at the end of
each detector interval, runs the estimator on the run's counts, and splits the error of the
network total into the parts the estimator models separately:

- ``cells``: the road between a link's counting loops (conservation + camera correction);
- ``heads``: vehicles on a link before its first counting loop after a junction (no cell
  holds them);
- ``tails``: vehicles on a link after its stop-line loop. A vehicle is on a link while its
  front is, and counted out once its back passes the loop, so a setback shorter than a
  vehicle (2.1 m here) holds none: the estimator's tail (the setback at the zone's or the
  loop's density) is all error;
- ``internal``: vehicles inside junctions.

A loop counts a vehicle when its *back* leaves it (SUMO's E1, as a real loop with its
presence-drop logic), so the true cell holds the vehicles whose back lies between its loops.
Also scores each cell's camera measurement (an interval mean) against the true mean of the
interval's start and end (the chord the filter assumes), by link class. Errors are grouped by
the scan's position in the signal cycle, because pilot128's fixed-time plans all run in step.
A third table asks how well any filter could do per cell. Vehicles that start or end a trip
inside a cell change it without crossing a loop; nothing in the counts foretells them, so
conservation drifts by a random walk (variance ``Q`` per interval), and only the camera,
whose interval mean converted to the interval's end errs with variance ``R``, pulls it back.
A Kalman filter with that walk and that camera settles at a steady-state std of sqrt(P),
P = xR/(x+R) with x = (Q + sqrt(Q^2 + 4QR))/2: the floor on each cell's error with these
detectors, next to the best fixed-gain filter on the same data and the estimator's own error.
Writes ``breakdown-<demand>-<controller>.md``, the tables as CSV and ``budget-*.png``.

    python benchmarks/estimation_breakdown.py --out results/estimation_breakdown
    python benchmarks/estimation_breakdown.py --demand offpeak --duration 1800 --out ...
    python benchmarks/estimation_breakdown.py --zones --out ...   # cameras vs the truth

``--zones`` checks the virtual cameras instead: every zone's occupancy as reported (interval
means) against the vehicles inside it, averaged over every second and over the interval ends
the estimate is scored at (under fixed time the two differ: every platoon is at the same point
of its cycle at those instants).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from signalopt.config import EstimatorParams, QAParams
from signalopt.detectors import build_frame
from signalopt.estimate import (
    OUT_NEXT_ENTRY,
    OUT_STOPLINE,
    _with_length,
    init_state,
    link_tails,
    measure,
    step,
)
from signalopt.estimator_model import estimator_model
from signalopt.io.counts import load_counts
from signalopt.network import compile_network


def simulate_traced(demand: str, seed: int, duration: float, controller: str = "fixed",
                    scenario: str = "pilot128", zone_truth: bool = False,
                    interval_s: float = 30.0, site_file: Path | None = None,
                    snap_s: float | None = None):
    """Run ``scenario`` under ``controller`` with detectors reporting every ``interval_s``
    (the virtual ones, or the site's own from ``site_file``);
    return (counts rows, vehicle positions per interval end, or every ``snap_s`` seconds
    where given), and with ``zone_truth`` also
    each zone's true occupancy (%, the vehicles' length inside it over its length) as a mean
    over every second and over interval ends."""
    from estimation import _scenario

    from sim.backend import open_backend
    from sim.controllers import SimContext, make_controller
    from sim.detectors import DetectorLayout, DetectorReader, instrumented_network, write_detector_file

    sc = _scenario(scenario, demand, seed, duration)
    layout = DetectorLayout(interval_s=interval_s, site_file=site_file)
    spec = instrumented_network(sc.net, layout)
    sim, ctrl = open_backend("libsumo"), make_controller(controller)
    rows, counts = [], []
    with tempfile.TemporaryDirectory(prefix="signalopt-trace-") as tmp:
        det = write_detector_file(spec.detectors, Path(tmp) / "d.add.xml", interval_s=layout.interval_s)
        sim.start(["-n", str(sc.net), "-r", ",".join(map(str, sc.routes)),
                   "-a", ",".join(map(str, [*sc.additionals, det])), "--begin", f"{sc.begin:g}",
                   "--end", f"{sc.end:g}", "--seed", str(seed), "--no-step-log", "--no-warnings"])
        try:
            api = sim.api
            ctx = SimContext(api=api, spec=spec, net=compile_network(spec), begin=sc.begin,
                             interval_s=layout.interval_s)
            ctrl.setup(ctx)
            reader = DetectorReader(api, spec.detectors, interval_s=layout.interval_s)
            every = round(layout.interval_s)
            zones = [d for d in spec.detectors if d.kind == "zone"] if zone_truth else []
            occ_all, occ_ends, n_ends = np.zeros(len(zones)), np.zeros(len(zones)), 0
            for k in range(1, round(duration) + 1):
                t = sc.begin + k
                sim.step(t)
                ctrl.on_step(ctx, t)
                now = _zone_occupancy(api, zones)
                occ_all += now
                if snap_s is not None and k % round(snap_s) == 0:
                    rows += _positions(api, t)
                if k % every:
                    continue
                occ_ends, n_ends = occ_ends + now, n_ends + 1
                cols = reader.read(t - layout.interval_s)
                ctrl.on_counts(ctx, cols, t)
                counts.append(pd.DataFrame(cols))
                if snap_s is None:
                    rows += _positions(api, t)
        finally:
            sim.close()
    out = (pd.concat(counts, ignore_index=True),
           pd.DataFrame(rows, columns=["t", "veh", "edge", "pos", "length"]))
    if not zone_truth:
        return out
    truth = pd.DataFrame({"detector_id": [d.id for d in zones], "link": [d.link for d in zones],
                          "true_mean": occ_all / round(duration),
                          "true_at_interval_ends": occ_ends / max(n_ends, 1)})
    return (*out, truth)


def _positions(api, t: float) -> list[tuple]:
    """(t, vehicle, edge, front position, length) of every vehicle in the network now."""
    veh = api.vehicle
    return [(t, v, veh.getRoadID(v), veh.getLanePosition(v), veh.getLength(v))
            for v in veh.getIDList()]


def _zone_occupancy(api, zones: list) -> np.ndarray:
    """Each zone's occupancy (%) this second: the length of vehicles inside it / its length."""
    occ = np.zeros(len(zones))
    for i, d in enumerate(zones):
        a, b = d.pos, d.pos + d.length
        for v in api.lane.getLastStepVehicleIDs(f"{d.link}_{d.lane}"):
            front = api.vehicle.getLanePosition(v)
            occ[i] += max(0.0, min(front, b) - max(front - api.vehicle.getLength(v), a))
        occ[i] *= 100.0 / d.length
    return occ


def zone_sampling(counts: pd.DataFrame, truth: pd.DataFrame, scenario: str,
                  site_file: Path | None = None) -> pd.DataFrame:
    """Zone occupancy by link class: what the cameras report (their interval means), the true
    mean over every second, and the truth at the interval ends the estimate is scored at."""
    from estimation import pilot_network

    net = pilot_network("all", scenario, site_file)
    model = estimator_model(net)
    index = {e: i for i, e in enumerate(net.link_ids)}
    reported = counts.groupby("detector_id")["occupancy"].mean()
    df = truth.assign(reported=truth["detector_id"].map(reported),
                      kind=model.out_kind[truth["link"].map(index).to_numpy()])
    df["links"] = np.where(df["kind"] == OUT_STOPLINE, "approach (stop-line exit)",
                           "before an approach")
    g = df.groupby("links")[["reported", "true_mean", "true_at_interval_ends"]].mean()
    return g.assign(zones=df.groupby("links").size()).round(3)


def breakdown(counts: pd.DataFrame, snaps: pd.DataFrame, cycle_s: float,
              params: EstimatorParams | None = None, scenario: str = "pilot128",
              site_file: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Error of the network total by component and cycle phase; camera chord error by class;
    the floor on each cell's error (``cell_floor``)."""
    from estimation import pilot_network  # the same network and detectors as the simulation

    params = params or EstimatorParams()
    net = pilot_network("all", scenario, site_file)
    model = estimator_model(net)
    frame = build_frame(load_counts(counts, net), net, interval_s=params.interval_s)
    t_end = frame.times + params.interval_s
    links, heads, tails, cells, covered, true_internal = _true_parts(snaps, net, model, t_end)

    # --- the estimator, interval by interval, keeping what it does not publish
    state, qa = init_state(model, params), QAParams()
    est_cell, est_links, est_int, zone, est_tail, net_in = [], [], [], [], [], []
    for k in range(t_end.shape[0]):
        state = step(model, state, frame.count[k], frame.occupancy[k], frame.speed[k],
                     t_start=float(frame.times[k]), params=params, qa_params=qa)
        est_cell.append(state.cell.copy())
        est_links.append(state.links_total)
        est_int.append(state.internal)
        # the camera at the vehicle length the estimator learned (Cologne's fleet is 4.3 m)
        cam, tail, dn = _camera(model, _with_length(params, state.len_hist), frame.count[k],
                                frame.occupancy[k])
        zone.append(cam)
        est_tail.append(tail.sum())
        net_in.append(dn)
    est_cell, zone, est_tail = np.array(est_cell), np.array(zone), np.array(est_tail)
    est_links, est_int = np.array(est_links), np.array(est_int)

    skip = 4  # the first two minutes start from an empty network
    phase = np.round(t_end % cycle_s).astype(int)
    rows = pd.DataFrame({
        "phase_s": phase,
        "true_total": links.sum(1) + true_internal,
        "network": np.maximum(est_links, 0) + est_int - links.sum(1) - true_internal,
        "cells": est_cell.sum(1) - cells.sum(1),
        "heads": (est_links - est_cell.sum(1) - est_tail) - heads[:, ~covered].sum(1),
        "tails": est_tail - tails.sum(1),
        "internal": est_int - true_internal,
    })[skip:]
    budget = pd.concat([rows.groupby("phase_s").mean(), rows.drop(columns="phase_s").mean()
                        .to_frame("all").T]).round(1)
    budget.index = budget.index.astype(str)

    chord = np.r_[cells[:1], 0.5 * (cells[1:] + cells[:-1])]
    classes = {
        "approach (stop-line exit)": model.out_kind == OUT_STOPLINE,
        "feeds an approach (next-entry exit)": model.out_kind == OUT_NEXT_ENTRY,
        "other (free exit)": ~np.isin(model.out_kind, (OUT_STOPLINE, OUT_NEXT_ENTRY)),
    }
    seen = ~np.isnan(zone).any(0)
    cam = []
    for name, cls in classes.items():
        m = cls & seen
        err = zone[skip:, m] - chord[skip:, m]
        cam.append({"links": name, "n": int(m.sum()), "true_cells_mean": cells[skip:, m].sum(1).mean(),
                    "camera_minus_chord": err.sum(1).mean(), "mean_abs_per_link": np.abs(err).mean(),
                    "cell_error": (est_cell[skip:, m] - cells[skip:, m]).sum(1).mean()})
    counted = {k: v for k, v in classes.items() if not k.startswith("other")}  # loops both ends
    floor = cell_floor(cells, est_cell, zone, np.array(net_in), counted, skip)
    return budget, pd.DataFrame(cam).round(3), floor


def _true_parts(snaps: pd.DataFrame, net, model, t_end: np.ndarray) -> tuple:
    """True vehicles per interval end and link: on the link, in its head, in its tail, in its
    cell (with the heads of the links it feeds), which heads lie in a cell, and in junctions.

    A loop counts a vehicle when its back passes (SUMO's E1), so a vehicle is in a cell while
    its back lies between the cell's loops.
    """
    n = net.n_links
    internal = snaps[snaps.edge.str.startswith(":")].groupby("t").size()
    on = snaps[~snaps.edge.str.startswith(":")].copy()
    index = {e: i for i, e in enumerate(net.link_ids)}
    on["li"] = on.edge.map(index)
    on = on[on.li.notna()]
    li = on.li.to_numpy(dtype=np.int64)
    back = on.pos.to_numpy() - on.length.to_numpy()
    ti = np.searchsorted(t_end, on.t.to_numpy())
    head = back < model.entry_pos[li]
    tail = (back >= model.exit_pos[li]) & (model.out_kind[li] == OUT_STOPLINE)

    def grid(mask: np.ndarray) -> np.ndarray:
        out = np.zeros((t_end.shape[0], n))
        np.add.at(out, (ti[mask], li[mask]), 1.0)
        return out

    links, heads, tails = grid(np.ones(li.shape[0], dtype=bool)), grid(head), grid(tail)
    cells = links - heads - tails  # each link's own part of its cell
    covered = np.zeros(n, dtype=bool)  # heads inside the cell of the link before them
    for l in np.flatnonzero(model.out_kind == OUT_NEXT_ENTRY):  # noqa: E741
        for j in range(model.succ_indptr[l], model.succ_indptr[l + 1]):
            s = model.succ[j]
            covered[s] = True
            cells[:, l] += model.succ_w[j] * heads[:, s]
    true_internal = internal.reindex(t_end, fill_value=0).to_numpy(dtype=np.float64)
    return links, heads, tails, cells, covered, true_internal


def _camera(model, params: EstimatorParams, count: np.ndarray,
            occ: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's camera (or loop) vehicle measurement this interval (NaN = none), the tail
    the estimator adds after each stop-line loop, and each cell's counted in - out."""
    out = measure(model, params, np.nan_to_num(count), occ)
    return out[7], link_tails(model, out[5], out[6], params.vehicle_length_m), out[0] - out[2]


def kalman_floor(q: float, r: float) -> float:
    """Steady-state std of a random walk (variance ``q`` per step) measured every step with
    noise variance ``r``: the posterior variance solves P = (P + q) r / (P + q + r)."""
    x = 0.5 * (q + np.sqrt(q * q + 4.0 * q * r))  # the prior variance P + q
    return float(np.sqrt(x * r / (x + r))) if x + r > 0 else 0.0


def cell_floor(cells: np.ndarray, est_cell: np.ndarray, zone: np.ndarray, net_in: np.ndarray,
               classes: dict[str, np.ndarray], skip: int) -> pd.DataFrame:
    """Per link class (cells a camera sees), what trip ends and the camera leave to any filter:
    the unexplained change per interval (true change - counted in + out: its mean, variance Q
    and lag-1 autocorrelation), the camera's error at the interval end (its measurement plus
    half the counted change, as the filter reads it: bias and variance R), the Kalman floor
    on the cell's error, the best fixed-gain filter's mean absolute error, and the estimator's."""
    gauss_mae = np.sqrt(2.0 / np.pi)  # mean |e| of a normal error per unit std
    rows = []
    for name, cls in classes.items():
        m = cls & ~np.isnan(zone).any(0)
        if not m.any():
            continue
        c, dn = cells[skip:, m], net_in[skip:, m]
        walk = np.diff(c, axis=0) - dn[1:]
        dev = walk - walk.mean(0)
        cam = zone[skip:, m] + 0.5 * dn - c
        q, r = float(walk.var()), float(cam.var())
        best = min((_fixed_gain_mae(c, zone[skip:, m], dn, k), k)
                   for k in np.arange(0.1, 0.95, 0.1))
        floor = gauss_mae * kalman_floor(q, r)
        est_mae = np.abs(est_cell[skip:, m] - c).mean()
        rows.append({"cells": name, "n": int(m.sum()), "true_per_cell": c.mean(),
                     "unexplained_mean": walk.mean(), "Q": q,
                     "lag1_autocorr": float((dev[1:] * dev[:-1]).mean() / dev.var()),
                     "camera_bias": cam.mean(), "R": r, "floor_mae": floor,
                     "best_gain": best[1], "best_gain_mae": best[0], "estimator_mae": est_mae,
                     "floor_wmape_%": 100 * floor / c.mean(),
                     "estimator_wmape_%": 100 * est_mae / c.mean()})
    return pd.DataFrame(rows).round(3)


def _fixed_gain_mae(cells: np.ndarray, zone: np.ndarray, net_in: np.ndarray, gain: float) -> float:
    """Mean absolute error of n = gain * camera + (1 - gain) * (n + in - out), started at the
    truth (its first 10 intervals not scored)."""
    n, err = cells[0].copy(), []
    for k in range(1, cells.shape[0]):
        pred = n + net_in[k]
        n = gain * (zone[k] + 0.5 * net_in[k]) + (1.0 - gain) * pred
        err.append(np.abs(n - cells[k]).mean())
    return float(np.mean(err[10:]))


def _plot(budget: pd.DataFrame, path: Path, title: str) -> None:
    """Bars of each component's error (vehicles) by position in the cycle and overall."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    parts = ["cells", "heads", "tails", "internal", "network"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(budget.index))
    for i, col in enumerate(parts):
        ax.bar(x + (i - 2) * 0.16, budget[col], width=0.16, label=col)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{v} s" if v != "all" else "all" for v in budget.index])
    ax.set(xlabel="scan position in the signal cycle", ylabel="estimate - truth (vehicles)",
           title=title)
    ax.legend(fontsize=8, ncol=5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _md(df: pd.DataFrame) -> str:
    """A frame as a markdown table (its index as the first column)."""
    df = df.reset_index()
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(f"{v:g}" if isinstance(v, float) else str(v)
                                           for v in row) + " |\n"
                          for row in df.itertuples(index=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="estimator error budget vs SUMO vehicle positions")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scenario", default="pilot128",
                    help="any scenario (RESCO's, a .sumocfg: use --demand default)")
    ap.add_argument("--demand", default="peak_ramp")
    ap.add_argument("--seed", type=int, default=45, help="45: the calibration seed")
    ap.add_argument("--duration", type=float, default=1800.0)
    ap.add_argument("--controller", default="fixed", help="signal control during the run")
    ap.add_argument("--cycle", type=float, default=90.0, help="signal cycle of the plans, s")
    ap.add_argument("--fresh", action="store_true", help="re-simulate even if a trace is saved")
    ap.add_argument("--interval", type=float, default=30.0,
                    help="detector aggregation interval, s (the trace is taken at its ends)")
    ap.add_argument("--zones", action="store_true",
                    help="only check the cameras: re-simulate, measuring every zone each second")
    ap.add_argument("--detector-file", type=Path, default=None,
                    help="SUMO additional file with the site's own E1/E2 detectors")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    tag = f"{args.demand}-{args.controller}"
    if args.interval != 30.0:
        tag += f"-i{args.interval:g}"
    if args.scenario != "pilot128":
        tag = f"{Path(args.scenario).stem}-{tag}"
    if args.detector_file is not None:
        from estimation import site_tag

        tag += f"-{site_tag(args.detector_file)}"
    site = args.detector_file
    if args.zones:
        counts, _, truth = simulate_traced(args.demand, args.seed, args.duration,
                                           args.controller, args.scenario, zone_truth=True,
                                           interval_s=args.interval, site_file=site)
        table = zone_sampling(counts, truth, args.scenario, site)
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / f"zones-{tag}.csv")
        md = (f"# Camera zones, {args.scenario} {args.demand} under {args.controller}, seed "
              f"{args.seed}, {args.duration:g} s: occupancy (%) reported vs true\n\n"
              f"{_md(table)}\n")
        (args.out / f"zones-{tag}.md").write_text(md)
        print(md)
        return 0
    cache = args.out / f"trace-{tag}-s{args.seed}-{args.duration:g}.parquet"
    if cache.exists() and not args.fresh:
        counts = pd.read_parquet(cache.with_suffix(".counts.parquet"))
        snaps = pd.read_parquet(cache)
    else:
        counts, snaps = simulate_traced(args.demand, args.seed, args.duration, args.controller,
                                        args.scenario, interval_s=args.interval, site_file=site)
        args.out.mkdir(parents=True, exist_ok=True)
        counts.to_parquet(cache.with_suffix(".counts.parquet"))
        snaps.to_parquet(cache)
    budget, cam, floor = breakdown(counts, snaps, args.cycle,
                                   EstimatorParams(interval_s=args.interval), scenario=args.scenario,
                                   site_file=site)
    args.out.mkdir(parents=True, exist_ok=True)
    budget.to_csv(args.out / f"budget-{tag}.csv")
    cam.to_csv(args.out / f"camera-{tag}.csv", index=False)
    floor.to_csv(args.out / f"floor-{tag}.csv", index=False)
    md = (f"# Estimator error budget, {args.scenario} {args.demand} under {args.controller}, seed {args.seed}, "
          f"{args.duration:g} s (vehicles, estimate - truth, mean per interval end)\n\n"
          f"By position in the {args.cycle:g} s cycle:\n\n{_md(budget.rename_axis('phase_s'))}\n\n"
          f"Camera measurement vs the chord the filter assumes, by link class:\n\n"
          f"{_md(cam.set_index('links'))}\n\n"
          f"What trip ends and the camera leave to any filter, per cell (vehicles; Q, R: "
          f"variances per interval):\n\n{_md(floor.set_index('cells'))}\n")
    (args.out / f"breakdown-{tag}.md").write_text(md)
    _plot(budget, args.out / f"budget-{tag}.png", f"{args.scenario} {args.demand} under {args.controller}")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
