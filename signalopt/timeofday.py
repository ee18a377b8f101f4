"""Offline time-of-day plans: periods found from the counts, one optimized plan per period.

Field practice (and SUMO's ``tlsCycleAdaptation.py``) is a handful of fixed-time plans
switched by the clock, e.g. AM peak, PM peak and off-peak. Here the periods come from the
data: the network activity profile (vehicle-link entries per hour, summed over every link's
entry loop: a vehicle counts once per link it enters) is clustered
into levels with a 1-D k-means, contiguous runs of a level form a period, runs shorter than
``min_period_s`` are merged into a neighbour. Each period's plan is the optimizer run on the
estimator's mean movement demand over that period, from a clean state (no smoothing against
a previous plan: it is a fresh plan, not a transition).

Pure: arrays and frames in, plans out; no I/O, no SUMO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from signalopt import estimate
from signalopt.errors import CountsError
from signalopt.io.counts import detector_interval
from signalopt.network import DETECTOR_KINDS, CompiledNetwork
from signalopt.optimize import initial_state, optimize
from signalopt.plan import TimingPlan, array_problems, build_plans, describe
from signalopt.scan import ScanConfig

NOON_S = 43200.0
CLOCK_SPAN_S = 4 * 3600.0  # counts covering this much are read as times of day (AM/PM)


@dataclass(frozen=True)
class Period:
    """One time-of-day period: [start, end) in counts time, its flow level and name."""

    name: str
    start: float
    end: float
    level: int  # 0 = lowest flow cluster
    flow_veh_h: float  # mean link entries per hour over the period (network activity)


@dataclass(frozen=True)
class TimeOfDayPlans:
    """The periods and, per period name, one validated plan per intersection."""

    periods: tuple[Period, ...]
    plans: dict[str, list[TimingPlan]]
    profile: pd.DataFrame  # slot start, entry flow veh/h, cluster level


def flow_profile(net: CompiledNetwork, counts: pd.DataFrame, *, slot_s: float) -> pd.DataFrame:
    """Vehicle-link entries per hour (all entry loops summed) per ``slot_s`` slot."""
    entry = DETECTOR_KINDS.index("entry")
    entry_ids = {d for d, k in zip(net.det_ids, net.det_kind.tolist(), strict=True) if k == entry}
    rows = counts[counts["detector_id"].isin(entry_ids)]
    if rows.empty:
        msg = "counts hold no entry-loop rows: cannot build the network flow profile"
        raise CountsError(msg)
    slot = np.floor(rows["interval_start"].to_numpy(float) / slot_s) * slot_s
    prof = rows.groupby(slot)["count"].sum().rename("vehicles").reset_index()
    prof.columns = ["start", "vehicles"]
    prof["flow_veh_h"] = prof["vehicles"] * 3600.0 / slot_s
    return prof


def kmeans_1d(x: np.ndarray, k: int, *, iters: int = 100) -> np.ndarray:
    """Deterministic 1-D k-means (quantile start); labels ordered by centre (0 = lowest)."""
    k = max(1, min(k, np.unique(x).size))
    centres = np.quantile(x, (np.arange(k) + 0.5) / k)
    labels = np.zeros(x.size, dtype=np.int64)
    for _ in range(iters):
        labels = np.argmin(np.abs(x[:, None] - centres[None, :]), axis=1)
        new = np.array([x[labels == j].mean() if (labels == j).any() else centres[j]
                        for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    order = np.argsort(np.argsort(centres))
    return order[labels]


def _runs(labels: np.ndarray, starts: np.ndarray, slot_s: float,
          min_slots: int) -> list[list[int]]:
    """Contiguous runs of one label as [start_slot, end_slot, label]; short runs take the
    label of their longer neighbour until every run lasts ``min_slots`` (or one is left)."""
    runs = [[j, j + 1, int(labels[j])] for j in range(labels.size)]
    gaps = {j for j in range(1, labels.size) if starts[j] - starts[j - 1] > slot_s + 1e-9}
    runs = _coalesce(runs, gaps)
    while len(runs) > 1 and min(r[1] - r[0] for r in runs) < min_slots:
        j = min(range(len(runs)), key=lambda r: runs[r][1] - runs[r][0])
        nbs = [n for n in (j - 1, j + 1) if 0 <= n < len(runs)]
        nb = max(nbs, key=lambda n: runs[n][1] - runs[n][0])
        runs[j][2] = runs[nb][2]
        runs = _coalesce(runs, set())
    return runs


def _coalesce(runs: list[list[int]], gaps: set[int]) -> list[list[int]]:
    """Join neighbouring runs of the same label (not across a gap in the data)."""
    out: list[list[int]] = []
    for r in runs:
        if out and out[-1][2] == r[2] and r[0] not in gaps:
            out[-1][1] = r[1]
        else:
            out.append(list(r))
    return out


def _name(level: int, top: int, span: tuple[float, float], *, clock: bool,
          used: dict[str, int]) -> str:
    """AM/PM peak for the top level (by clock, when counts cover a day), else by level."""
    start, end = span
    if level == top and top > 0:
        base = ("am_peak" if (start + end) / 2 < NOON_S else "pm_peak") if clock else "peak"
    elif level == 0:
        base = "offpeak"
    else:
        base = f"shoulder{level}" if top > 2 else "shoulder"
    used[base] = used.get(base, 0) + 1
    return base if used[base] == 1 else f"{base}_{used[base]}"


def find_periods(profile: pd.DataFrame, *, slot_s: float, n_levels: int = 3,
                 min_period_s: float = 1800.0) -> tuple[list[Period], np.ndarray]:
    """Cluster the flow profile into levels and cut it into named contiguous periods."""
    flow = profile["flow_veh_h"].to_numpy(float)
    starts = profile["start"].to_numpy(float)
    labels = kmeans_1d(flow, n_levels)
    runs = _runs(labels, starts, slot_s, max(1, round(min_period_s / slot_s)))
    top, used = int(labels.max()), {}
    clock = starts[-1] + slot_s - starts[0] >= CLOCK_SPAN_S  # times of day, not a short run
    periods = []
    for a, b, lev in runs:
        start, end = float(starts[a]), float(starts[b - 1] + slot_s)
        name = "all_day" if len(runs) == 1 else _name(lev, top, (start, end), clock=clock,
                                                      used=used)
        periods.append(Period(name, start, end, lev, float(flow[a:b].mean())))
    return periods, labels


def time_of_day_plans(
    net: CompiledNetwork,
    counts: pd.DataFrame,
    *,
    config: ScanConfig | None = None,
    n_levels: int = 3,
    slot_s: float = 900.0,
    min_period_s: float = 1800.0,
) -> TimeOfDayPlans:
    """Periods from the counts' flow profile, then one optimized plan per period.

    Parameters
    ----------
    net, counts
        The compiled network and its accepted counts rows (``io.counts`` schema).
    n_levels
        Flow levels to cluster into (3: off-peak, shoulder, peak).
    slot_s, min_period_s
        Profile resolution, and the shortest period kept (field plans do not switch often).
    """
    config = (config or ScanConfig()).at_interval(detector_interval(counts))
    profile = flow_profile(net, counts, slot_s=slot_s)
    periods, labels = find_periods(profile, slot_s=slot_s, n_levels=n_levels,
                                   min_period_s=min_period_s)
    profile = profile.assign(level=labels)
    ests, _ = estimate.run_estimator(counts, net, config.estimator, qa_params=config.qa)
    if not ests:
        msg = "counts span less than one scan: no estimate to optimize from"
        raise CountsError(msg)
    t = np.array([e.t for e in ests])
    plans = {}
    for p in periods:
        sel = [e for e, te in zip(ests, t, strict=True) if p.start < te <= p.end + 1e-9] \
            or [ests[int(np.argmin(np.abs(t - p.end)))]]
        flow = np.mean([e.mov_flow for e in sel], axis=0)
        queue = np.mean([e.mov_queue for e in sel], axis=0)
        plans[p.name] = period_plan(net, flow, queue, config=config, at=p.start,
                                    valid_s=p.end - p.start)
    return TimeOfDayPlans(tuple(periods), plans, profile)


def period_plan(net: CompiledNetwork, mov_flow: np.ndarray, mov_queue: np.ndarray, *,
                config: ScanConfig, at: float, valid_s: float) -> list[TimingPlan]:
    """One fresh, validated plan per intersection for a period's mean demand."""
    plan, _ = optimize(net, mov_flow, mov_queue, initial_state(net), config.optimizer)
    bad = array_problems(net, plan.cycle, plan.offset, plan.duration, plan.min_dur,
                         plan.max_dur, limits=config.limits, prev_duration=None)
    problems = describe(net, bad)
    if problems:  # a fresh plan from the optimizer must pass; say which one did not
        msg = f"offline plan at t={at:g} fails invariants: {problems[:3]}"
        raise CountsError(msg)
    arrays = (plan.cycle, plan.offset, plan.duration, plan.min_dur, plan.max_dur)
    return [p.model_copy(update={"source": "offline"})
            for p in build_plans(net, arrays, version=1, created_at=at, valid_s=valid_s)]
