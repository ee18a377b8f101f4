"""Controllers that drive SUMO's signals, and the registry that names them.

A controller sees the simulation only through ``SimContext``: the static network (with its
virtual detectors), detector readings, and the trafficlight domain to set signals. Ground
truth is never passed to a controller.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from signalopt.detectors import detector_model
from signalopt.network import CompiledNetwork, IntersectionSpec, NetworkSpec
from signalopt.optimize.splits import intersection_y
from sim.loop_queues import LoopQueues
from sim.loop_reader import MIN_LOOP_LINK_M, LoopReader, phase_stop_loops

TLS_TYPE_ACTUATED = 3


@dataclass
class SimContext:
    """What a controller may use: the SUMO API (signals, detectors), the network, the clock."""

    api: Any
    spec: NetworkSpec
    net: CompiledNetwork
    begin: float
    interval_s: float


class Controller(Protocol):
    """Signal control strategy plugged into the simulation loop."""

    name: str

    def setup(self, ctx: SimContext) -> None:
        """Called once after SUMO started."""

    def on_step(self, ctx: SimContext, t: float) -> None:
        """Called after every simulated second."""

    def on_counts(self, ctx: SimContext, counts: dict[str, Any], t: float) -> None:
        """Called when a detector interval closes, with that interval's counts columns."""


class FixedTime:
    """The network's own static programs, untouched."""

    name = "fixed"

    def setup(self, ctx: SimContext) -> None:
        pass

    def on_step(self, ctx: SimContext, t: float) -> None:
        pass

    def on_counts(self, ctx: SimContext, counts: dict[str, Any], t: float) -> None:
        pass


class Actuated(FixedTime):
    """SUMO's gap-based actuated control on the network's phase sequence.

    Green phases get netconvert's defaults (minDur 5 s, maxDur 50 s); clearances unchanged.
    SUMO places its own stop-line detectors for actuated programs.
    """

    name = "actuated"

    def __init__(self, min_green: float = 5.0, max_green: float = 50.0) -> None:
        self.min_green, self.max_green = min_green, max_green

    def setup(self, ctx: SimContext) -> None:
        tl = ctx.api.trafficlight
        for inter in ctx.spec.intersections:
            phases = [
                tl.Phase(p.duration, p.state, self.min_green, max(self.max_green, p.duration))
                if p.is_green else tl.Phase(p.duration, p.state, p.duration, p.duration)
                for p in inter.phases
            ]
            tl.setProgramLogic(inter.id, tl.Logic("actuated", TLS_TYPE_ACTUATED, 0, phases))


def transition_states(prev: str, nxt: str, clearance: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Yellow then all-red states between two green states, timed from the program's clearances.

    Signals green in ``prev`` and red in ``nxt`` show yellow for the first clearance phase's
    duration, then red for the rest; signals green in both stay green. Durations are copied
    from the network, never shortened.
    """
    yellow = "".join(
        "y" if a in "Gg" and b not in "Gg" else (a if b in "Gg" and a in "Gg" else "r")
        for a, b in zip(prev, nxt, strict=True)
    )
    red = "".join(a if a in "Gg" and b in "Gg" else "r" for a, b in zip(prev, nxt, strict=True))
    y_dur = clearance[0][1] if clearance else 3.0
    rest = sum(d for _, d in clearance[1:])
    out = [(yellow, y_dur)]
    if rest > 0:
        out.append((red, rest))
    return out


def clearance_after(phases: list[Any], k: int) -> list[tuple[str, float]]:
    """The non-green phases that follow green phase ``k`` in program order."""
    out = []
    n = len(phases)
    j = (k + 1) % n
    while not phases[j].is_green and j != k:
        out.append((phases[j].state, phases[j].duration))
        j = (j + 1) % n
    return out


# how often a green held on the gap timer is looked at again (a field gap timer's resolution)
GAP_TICK_S = 1.0


class MaxPressure(FixedTime):
    """Classic max-pressure (Varaiya 2013) from camera-zone detector counts only.

    Every ``step_s`` seconds after the minimum green, each intersection switches to the green
    phase with the largest pressure: sum over its movements of (vehicles waiting in the
    movement's approach zone - vehicles in the receiving link's zone), with the program's
    yellow/all-red between greens. ``min_green``/``max_green`` (per phase) bound each green.
    Without cameras (signalopt on loop counts) a green may instead run while its stop-line
    loops see vehicles cross (``gap_s``), then go only to a phase with a call.
    """

    name = "maxpressure"

    def __init__(self, step_s: float = 10.0, min_green: float = 10.0, margin: float = 0.0,
                 downstream_free: float = 0.0, gap_s: float = 0.0) -> None:
        self.step_s, self.min_green, self.margin = step_s, min_green, margin
        # a green whose stop-line loops saw a vehicle cross within ``gap_s`` keeps running,
        # then goes to the highest-pressure phase among those with a vehicle standing on
        # their stop-line loops (``phase_loops``: both, per phase; 0 = pressure alone decides)
        self.gap_s = gap_s
        self.phase_loops: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
        # vehicles per lane the receiving road absorbs before they count against a movement
        # (0 = classic max-pressure; > 0 = count the downstream only as spillback nears)
        self.downstream_free = downstream_free
        # live vehicles per link from elsewhere (loop counting) where no camera sees queues,
        # counted within ``reach_m`` of the stop line as a camera would see them
        self.link_source: Callable[[], np.ndarray] | None = None
        self.reach_m = 100.0
        # and vehicles per approach lane (rows: lane index, movement, share of the lane)
        self.lane_source: Callable[[], np.ndarray] | None = None
        self.lane_rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # the intersections it runs (None: all); the others are left to their programs
        self.active: np.ndarray | None = None
        # per camera zone, what to read instead of it (NaN: the zone itself): a zone the
        # engine's QA flagged stands in with the last scan's estimate of its lane
        self.zone_stand_in: np.ndarray | None = None
        # signalopt's rule also reads the stop-line loop inside each camera's view: every
        # vehicle on it is in the camera's view too, so the camera never counts fewer (a
        # camera stuck at zero or silent would otherwise starve its approach until QA
        # catches it); ``zone_loop_flagged``: per zone, that loop was QA-flagged at the last
        # scan and sets no floor. Classic max-pressure reads the cameras alone. The loops are
        # read by ``stop_reader`` (stepped by the owner), which has every stop-line loop.
        self.loop_floor = False
        self.zone_loop_flagged: np.ndarray | None = None
        self.stop_reader: LoopReader | None = None
        # with ``phase_loops``, the intersections whose greens run on the gap timer (None: all)
        self.gap_at: np.ndarray | None = None
        # where the gap timer runs everywhere (no cameras), a green on it runs only the rule's
        # minimum, then as long as its loops see cars cross: the plan's longer floor is for
        # greens the pressure ends (stop-line loops alone, seeds 45-46, RESCO sum 1137.0 ->
        # 1043.6 s/veh). With cameras, at saturated junctions only, the floor stays: without
        # it Cologne3 seed 44 jammed (21.5 -> 50.5 s/veh, 11 teleports)
        self.timed_min_green = False

    def setup(self, ctx: SimContext) -> None:
        net = ctx.net
        self.zones = [d for d in ctx.spec.detectors if d.kind == "zone"]  # ``zone_stand_in``'s order
        if not self.zones and self.link_source is None:
            msg = ("max-pressure reads its queues from camera zones, and this detector layout "
                   "has none")
            raise ValueError(msg)
        self._zone_link = np.array([net.link_index[d.link] for d in self.zones], dtype=np.int64)
        # per zone, the network index of the stop-line loop in its view (-1: none), as QA
        # pairs them (``DetectorModel.covers``)
        covers = detector_model(net).covers if self.loop_floor else np.full(net.n_detectors, -1)
        self.zone_loops = covers[[net.det_index[d.id] for d in self.zones]].astype(np.int64)
        self._zone_loop_at = self._reader_positions(net, self.zone_loops)
        # rows of the (link, lane, movement) triples each zone's lane feeds
        rows_of: dict[tuple[int, int], list[int]] = {}
        for k, (a, b) in enumerate(zip(net.lane_mov_link.tolist(), net.lane_mov_lane.tolist(), strict=True)):
            rows_of.setdefault((a, b), []).append(k)
        feeds = [(z, int(net.lane_mov_mov[r]), 1.0 / len(rows))
                 for z, d in enumerate(self.zones)
                 for rows in [rows_of.get((net.link_index[d.link], d.lane), [])] for r in rows]
        self._feed_zone = np.array([f[0] for f in feeds], dtype=np.int64)
        self._feed_mov = np.array([f[1] for f in feeds], dtype=np.int64)
        self._feed_share = np.array([f[2] for f in feeds], dtype=np.float64)
        chain = [(m, k) for m in range(net.n_movements) for k in _downstream_chain(net, int(net.mov_to[m]))]
        self._chain_mov = np.array([m for m, _ in chain], dtype=np.int64)
        self._chain_link = np.array([k for _, k in chain], dtype=np.int64)
        up = [(m, k) for m in range(net.n_movements) for k in _upstream_chain(net, int(net.mov_from[m]))]
        self._up_mov = np.array([m for m, _ in up], dtype=np.int64)
        self._up_link = np.array([k for _, k in up], dtype=np.int64)
        self._up_share = (net.mov_lanes[self._up_mov] / net.link_lanes[net.mov_from[self._up_mov]]
                          if up else np.zeros(0))
        # without cameras: the share of each feeding link within a camera's reach of the stop
        # line (vehicles spread evenly), so loop-counted queues weigh as zone counts would
        length = np.asarray(net.link_length, dtype=np.float64)
        up_w: list[float] = []
        for m in range(net.n_movements):  # in the order ``up`` lists them
            a = int(net.mov_from[m])
            up_w += within_reach(length[[a, *_upstream_chain(net, a)]], self.reach_m)[1:].tolist()
        self._up_reach = np.array(up_w)
        # and of each receiving link, counted back from the next stop line
        down: list[float] = []
        for m in range(net.n_movements):  # in the order ``chain`` lists them
            links = _downstream_chain(net, int(net.mov_to[m]))
            down += within_reach(length[links[::-1]], self.reach_m)[::-1].tolist()
        self._chain_reach = np.array(down)
        self._inters = list(ctx.spec.intersections)
        self._greens = [[k for k, p in enumerate(i.phases) if p.is_green] for i in self._inters]
        self._cur = [g[0] for g in self._greens]
        self._green_since = np.full(len(self._inters), ctx.begin)
        self._next_decision = np.full(len(self._inters), ctx.begin + self.min_green)
        self._pending: list[list[tuple[str, float]]] = [[] for _ in self._inters]
        self._target = list(self._cur)
        n_phases = net.phase_duration.size
        self.min_g = np.full(n_phases, self.min_green)
        self.max_g = np.full(n_phases, np.inf)
        tl = ctx.api.trafficlight
        for i, inter in enumerate(self._inters):
            if self.active is not None and not self.active[i]:
                self._next_decision[i] = np.inf  # never due
                continue
            tl.setRedYellowGreenState(inter.id, inter.phases[self._cur[i]].state)

    def _reader_positions(self, net: CompiledNetwork, loops: np.ndarray) -> np.ndarray:
        """Where each zone's stop-line loop (network index, -1: none) sits in ``stop_reader``."""
        at = np.zeros(loops.shape[0], dtype=np.int64)
        has = loops >= 0
        if has.any():
            if self.stop_reader is None:
                raise ValueError("a camera's loop floor reads its stop-line loop through "
                                 "stop_reader, and none was given")
            at[has] = self.stop_reader.positions(loops[has])
        return at

    def _pressures(self, ctx: SimContext) -> np.ndarray:
        """Pressure of every movement from the current camera-zone counts (or, without
        cameras, from ``link_source``)."""
        net = ctx.net
        if self.link_source is not None and not self.zones:
            lanes = self.lane_source() if self.lane_source is not None else None
            return self._link_pressures(net, self.link_source(), lanes)
        e2 = ctx.api.lanearea
        zone_veh = np.array([e2.getLastStepVehicleNumber(d.id) for d in self.zones], dtype=np.float64)
        if self.zone_stand_in is not None:
            zone_veh = np.where(np.isnan(self.zone_stand_in), zone_veh, self.zone_stand_in)
        if self.loop_floor:
            zone_veh = self._floored(ctx, zone_veh)
        link_veh = np.bincount(self._zone_link, weights=zone_veh, minlength=net.n_links)
        link_zone_lanes = np.bincount(self._zone_link, minlength=net.n_links).astype(np.float64)
        # lane vehicles split evenly over the movements the lane serves
        q_in = np.bincount(self._feed_mov, weights=zone_veh[self._feed_zone] * self._feed_share,
                           minlength=net.n_movements)
        # plus the queue seen on the unsignalised links feeding the approach (the camera's view
        # beyond a short turn-bay edge), shared by lanes
        q_in += np.bincount(self._up_mov, weights=link_veh[self._up_link] * self._up_share,
                            minlength=net.n_movements)
        per_lane = np.divide(link_veh, link_zone_lanes, out=np.zeros(net.n_links),
                             where=link_zone_lanes > 0)
        # downstream queue: per-lane vehicles seen on the receiving link and the unsignalised
        # links that continue it up to the next stop line
        q_out = np.bincount(self._chain_mov, weights=per_lane[self._chain_link],
                            minlength=net.n_movements)
        q_out = np.maximum(q_out - self.downstream_free, 0.0) * net.mov_lanes
        return q_in - q_out

    def _floored(self, ctx: SimContext, zone_veh: np.ndarray) -> np.ndarray:
        """``zone_veh``, each at least the vehicles standing on the healthy stop-line loop
        inside its view (one crossing it may already be past the camera's end). A point loop
        holds one standing car, so only zones reading none are floored."""
        ok = (self.zone_loops >= 0) & (zone_veh < 1.0)
        if self.zone_loop_flagged is not None:
            ok &= ~self.zone_loop_flagged
        if self.stop_reader is None or not ok.any():
            return zone_veh
        standing = self.stop_reader.standing[self._zone_loop_at]
        return np.where(ok, np.maximum(zone_veh, standing), zone_veh)

    def _link_pressures(self, net: CompiledNetwork, link_veh: np.ndarray,
                        lane_veh: np.ndarray | None = None) -> np.ndarray:
        """Pressure from vehicles per link: an approach's vehicles (lane by lane where its
        lanes are counted, ``lane_veh`` in ``lane_rows`` order; else shared by lanes) and
        those on the links feeding it through plain nodes, less the receiving road's per lane."""
        lanes = np.maximum(net.link_lanes, 1.0)
        share = net.mov_lanes / lanes[net.mov_from]
        q_in = link_veh[net.mov_from] * share
        if lane_veh is not None:
            counted = ~np.isnan(lane_veh[self.lane_rows[0]])
            by_lane = np.bincount(self.lane_rows[1][counted],
                                  weights=(lane_veh[self.lane_rows[0]] * self.lane_rows[2])[counted],
                                  minlength=net.n_movements)
            lane_mov = np.bincount(self.lane_rows[1][counted], minlength=net.n_movements) > 0
            q_in = np.where(lane_mov, by_lane, q_in)
        q_in += np.bincount(self._up_mov,
                            weights=link_veh[self._up_link] * self._up_share * self._up_reach,
                            minlength=net.n_movements)
        q_out = np.bincount(self._chain_mov,
                            weights=(link_veh / lanes)[self._chain_link] * self._chain_reach,
                            minlength=net.n_movements)
        q_out = np.maximum(q_out - self.downstream_free, 0.0) * net.mov_lanes
        return q_in - q_out

    def on_step(self, ctx: SimContext, t: float) -> None:
        due = np.nonzero(self._next_decision <= t + 1e-9)[0]
        if due.size == 0:
            return
        tl = ctx.api.trafficlight
        w = self._pressures(ctx)
        loops = self.phase_loops() if self.phase_loops is not None and self.gap_s > 0 else None
        for i in due.tolist():
            inter = self._inters[i]
            if self._pending[i]:  # continue a yellow/all-red transition
                state, dur = self._pending[i].pop(0)
                tl.setRedYellowGreenState(inter.id, state)
                self._next_decision[i] = t + dur
                continue
            base = ctx.net.int_phase_indptr[i]
            if self._cur[i] != self._target[i]:  # transition done: start the new green
                self._cur[i] = self._target[i]
                tl.setRedYellowGreenState(inter.id, inter.phases[self._cur[i]].state)
                self._green_since[i] = t
                p = base + self._cur[i]
                timed = self.timed_min_green and self._timed(i, p, loops)
                floor = min(self.min_green, self.min_g[p]) if timed else self.min_g[p]
                self._next_decision[i] = t + floor
                continue
            self._decide(ctx, i, t, w, loops)

    def _timed(self, i: int, p: int, loops: tuple[np.ndarray, np.ndarray] | None) -> bool:
        """Whether phase ``p`` of intersection ``i`` runs on the gap timer now: the timer is on
        there and the phase has stop-line loops QA has not flagged (a finite call)."""
        return (loops is not None and (self.gap_at is None or bool(self.gap_at[i]))
                and bool(np.isfinite(loops[1][p])))

    def _phase_pressure(self, ctx: SimContext, p: int, w: np.ndarray) -> float:
        net = ctx.net
        return float(w[net.phase_mov[net.phase_mov_indptr[p]:net.phase_mov_indptr[p + 1]]].sum())

    def _decide(self, ctx: SimContext, i: int, t: float, w: np.ndarray,
                loops: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Keep the current green or start the transition to the highest-pressure phase
        (with ``loops``: keep it while it discharges, then hand it to the highest-pressure
        phase with a call)."""
        inter, base, cur = self._inters[i], ctx.net.int_phase_indptr[i], self._cur[i]
        maxed = t - self._green_since[i] >= self.max_g[base + cur] - 1e-9
        gapped = False
        # a green without working stop-line loops (an infinite or unknown call) has no gap
        # timer: pressure decides
        if not maxed and self._timed(i, base + cur, loops):
            if loops[0][base + cur] < self.gap_s:  # type: ignore[index]
                # a gap timer counts seconds: looked at every step_s, a 3 s gap ran 3-5 s
                # (RESCO seeds 45-46, stop-line loops: sum 1161.1 -> 1137.0 s/veh; every
                # detector, seeds 47-66: arterial4x4 -1.0 / -2.5 %, the rest within +-3 %)
                self._next_decision[i] = t + GAP_TICK_S
                return
            gapped = True
        p_cur = -np.inf if maxed else self._phase_pressure(ctx, base + cur, w) + self.margin
        # gapped out: any phase with a call may take over, the highest counted pressure first
        # (a vehicle standing on a stop line outweighs a count that says nobody waits there)
        best, best_p = cur, (-np.inf if gapped else p_cur)
        for k in self._greens[i]:
            if k != cur and not (gapped and loops[1][base + k] <= 0):  # type: ignore[index]
                pressure = self._phase_pressure(ctx, base + k, w)
                # loops all broken (NaN): no call known, so only a counted queue calls it
                if gapped and np.isnan(loops[1][base + k]) and pressure <= 0:  # type: ignore[index]
                    continue
                if pressure > best_p + 1e-9:
                    best, best_p = k, pressure
        if best == cur:
            self._next_decision[i] = t + self.step_s
            return
        clearance = clearance_after(list(inter.phases), cur)
        steps = transition_states(inter.phases[cur].state, inter.phases[best].state, clearance)
        self._target[i] = best
        state, dur = steps[0]
        ctx.api.trafficlight.setRedYellowGreenState(inter.id, state)
        self._pending[i] = steps[1:]
        self._next_decision[i] = t + dur


class Signalopt(FixedTime):
    """The engine in the loop: every scan, detector counts -> ``run_scan`` -> plans -> SUMO.

    Sees only the detector counts table (the same rows a field deployment would send) and,
    for local actuation inside the plan's bounds, the live detector readings a field
    controller has. ``local_control`` (an optimizer parameter) picks how plans run:
    fixed-time with offsets, SUMO gap actuation, or pressure-driven phase choice.
    """

    name = "signalopt"

    def __init__(self, config: Any = None, local_step_s: float = 2.0, downstream_free: float = 8.0,
                 gap_sat_y: float = 0.9, gap_permissive: float = 0.25, **optimizer: Any) -> None:
        from signalopt.scan import ScanConfig  # noqa: PLC0415

        config = config or ScanConfig()
        if optimizer:  # validated: an unknown or ill-typed parameter is an error here
            merged = type(config.optimizer).model_validate({**config.optimizer.model_dump(), **optimizer})
            config = config.model_copy(update={"optimizer": merged})
        self.config = config
        self.local_step_s, self.downstream_free = local_step_s, downstream_free
        # with cameras, a junction whose plan's flow ratios sum to at least this (near
        # capacity) also runs its greens on the stop-line gap timer (``loop_gap_s``), and so
        # does one where at least this share of its green signals are permissive
        # (``permissive_share``), whatever its load
        self.gap_sat_y, self.gap_permissive = gap_sat_y, gap_permissive
        self.scans: list[dict[str, float]] = []

    def setup(self, ctx: SimContext) -> None:
        from signalopt.scan import initial_scan_state  # noqa: PLC0415
        from sim.apply import PlanApplier  # noqa: PLC0415

        self.config = self.config.at_interval(ctx.interval_s)  # the feed's, not our default
        opt = self.config.optimizer
        local = opt.local_control
        self._state = initial_scan_state(ctx.net)
        self._loopq: LoopQueues | None = None
        self._stops: LoopReader | None = None  # with cameras: the stop-line loops, read each second
        kinds = {d.kind for d in ctx.spec.detectors}
        # with stop-line loops alone, a loop QA flagged is left out of the local rule; with
        # entry loops too, QA also judges each stop line by its entry loop, and under
        # spillback those false alarms cost more than the broken loops they catch
        # (arterial4x4, seeds 45-46: +8 % healthy)
        self._stop_lines_only = kinds == {"stopline"}
        # intersections the pressure rule runs (None: all of them where local is "pressure")
        self._pressure_at: np.ndarray | None = None
        if local == "pressure" and "zone" not in kinds and kinds & {"entry", "stopline"}:
            # the pressure rule reads queues from cameras; without any, it counts vehicles in
            # and out of every cell at the loops, from the engine's last estimate on (inflows
            # nobody counts guessed from each stop line's own count), and a green runs until
            # its stop-line loops gap out (``loop_gap_s``), then goes to the phase with most
            # counted waiting among those with a vehicle on their stop line: counts alone
            # switched on phantom queues (pilot128 peak 88.0 -> 79.3 s/veh, RESCO grid4x4
            # 98.3 -> 39.7, seeds 45-46). Where an approach is a stub no car stops on, its
            # stop-line loops show neither gap nor queue: that junction keeps gap actuation.
            how = ("counts queues at the loops instead, and ends a green when its stop-line "
                   "loops gap out" if "entry" in kinds else
                   "counts queues at the stop-line loops, the inflows nobody counts guessed "
                   "from their own counts")
            if "stopline" in kinds:
                self._pressure_at = _seen_by_stop_lines(ctx.net)
                n_act = int((~self._pressure_at).sum())
                how += (f"; {n_act} of {ctx.net.n_intersections} intersections (an approach "
                        f"shorter than a car, {MIN_LOOP_LINK_M:g} m) keep gap actuation")
            where = "no camera zones" + ("" if "entry" in kinds else " and no entry loops")
            warnings.warn(f"{where} in this detector layout: signalopt's pressure rule {how}",
                          stacklevel=2)
            if self._pressure_at is None or self._pressure_at.any():
                self._loopq = LoopQueues(ctx.net, self._state.model)
            else:
                local, self._pressure_at = "actuated", None
        elif local == "pressure" and "zone" not in kinds:
            warnings.warn("no camera zones and no loops in this detector layout: "
                          "signalopt's local control falls back from 'pressure' to 'actuated'",
                          stacklevel=2)
            local = "actuated"
        self.local_control = local
        self._buffer: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []
        self._order: np.ndarray | None = None  # reader's detector order -> network order
        self._next_scan = ctx.begin + self.config.scan_s
        self._local: MaxPressure | None = None
        self._applier: PlanApplier | None = None
        if local == "pressure":
            self._local = self._pressure_rule(ctx, kinds)
        if self._local is None or self._pressure_at is not None:
            self._applier = PlanApplier(ctx.api, ctx.net, actuated=local != "fixed",
                                        min_green=opt.min_green_s)

    def _pressure_rule(self, ctx: SimContext, kinds: set[str]) -> MaxPressure:
        """The local pressure rule inside the plans' bounds: on camera queues (with a reader
        of the stop-line loops for the camera floor and the gap timer), else on the queues
        ``LoopQueues`` counts at the loops, every green on the gap timer."""
        opt = self.config.optimizer
        rule = MaxPressure(step_s=self.local_step_s, min_green=opt.min_green_s,
                           downstream_free=self.downstream_free,
                           gap_s=opt.loop_gap_s if self._loopq is not None else 0.0)
        rule.loop_floor = True
        if self._loopq is not None:
            m = self._state.model
            per_lane = np.bincount(m.row_lane, minlength=m.lane_link.shape[0])
            rule.link_source = self._loopq.link_vehicles
            rule.lane_source = self._loopq.lane_vehicles
            rule.lane_rows = (m.row_lane, m.row_mov, 1.0 / per_lane[m.row_lane])
            rule.phase_loops = self._loopq.phase_loops(ctx.net)
            rule.timed_min_green = True
        rule.active = self._pressure_at
        if self._loopq is None and {"zone", "stopline"} <= kinds:
            self._stops = self._stop_line_timer(ctx, rule, opt.loop_gap_s)
        rule.setup(ctx)
        base = ctx.net.phase_duration
        rule.max_g = np.where(ctx.net.phase_is_green, opt.act_max_frac * base, base)
        return rule

    def _stop_line_timer(self, ctx: SimContext, rule: MaxPressure, gap_s: float) -> LoopReader:
        """With cameras and stop-line loops: a reader of the stop-line loops, for the cameras'
        loop floor and the gap timer. A saturated junction (flow ratios summing to
        ``gap_sat_y``, set each scan) holds a green while its stop-line loops see cars cross,
        then hands it to the highest-pressure phase with a call. Holding a discharging green
        pays near capacity (arterial4x4, seeds 45-46: 695.0 -> 629.1 s/veh) and costs where
        short, frequent switches win (everywhere: grid4x4 19.5 -> 33.2, pilot128 57.6 -> 78.1).

        So does a junction with many permissive signals (``gap_permissive``): there turners go
        in the main green too, but the pressure counts them only for the protected phase that
        follows (``phase_mov``), so it ended main greens early for it. On the timer a green
        runs while its loops, the turners' included, see cars cross (RESCO, seeds 45-46:
        Cologne8 24.0 -> 19.6 s/veh; its first junction, seed 45: 104 main greens of 11 s and
        49 protected ones an hour on the pressure, 85 of 16 s and 39 on the timer). Every
        Cologne junction has 27-50 % permissive signals, Ingolstadt's 0-29 %, pilot128's 20 %,
        grid4x4's none."""
        net = ctx.net
        stops = LoopReader(net, [net.det_index[d.id] for d in ctx.spec.detectors if d.kind == "stopline"])
        phase, det = phase_stop_loops(net, self._state.model)
        loop = stops.positions(det)
        rule.stop_reader = stops
        rule.gap_s = gap_s
        rule.phase_loops = stops.phase_view(phase, loop, net.phase_duration.size)
        rule.gap_at = np.zeros(net.n_intersections, dtype=bool)
        self._gap_always = permissive_share(ctx.spec.intersections) >= self.gap_permissive
        return stops

    def on_counts(self, ctx: SimContext, counts: dict[str, Any], t: float) -> None:
        # the same rows a field system would send, kept as arrays in the network's detector order
        # (the scan takes a DetectorFrame; string ids are matched once, not every interval)
        if self._order is None:
            self._order = np.array([ctx.net.det_index[d] for d in counts["detector_id"]], dtype=np.int64)
        n = ctx.net.n_detectors
        cols = [np.full(n, np.nan) for _ in range(3)]
        for arr, name in zip(cols, ("count", "occupancy", "speed"), strict=True):
            arr[self._order] = counts[name]
        self._buffer.append((float(counts["interval_start"][0]), *cols))
        # the scan runs once the interval ending at its boundary is in, as ``live.py`` does:
        # scanning just before it arrived closed the estimate on the previous boundary's
        # lone interval, so every plan and stand-in was built on data a whole scan old
        if t >= self._next_scan - 1e-9:
            self._scan(ctx, t)

    def on_step(self, ctx: SimContext, t: float) -> None:
        if self._loopq is not None:
            self._loopq.step(ctx.api)
        if self._stops is not None:
            self._stops.step(ctx.api)
        if self._local is not None:
            self._local.on_step(ctx, t)
        if self._applier is not None:
            self._applier.on_step(t)

    def _scan(self, ctx: SimContext, t: float) -> None:
        from signalopt.detectors import DetectorFrame  # noqa: PLC0415
        from signalopt.scan import run_scan  # noqa: PLC0415

        times, count, occ, speed = zip(*self._buffer, strict=True)
        counts = DetectorFrame(np.array(times), np.vstack(count), np.vstack(occ), np.vstack(speed))
        self._buffer = []
        prev = self._state.optimizer.plan
        result = run_scan(ctx.net, counts, self._state, self.config, t=t)
        self._state = result.state
        if self._loopq is not None and result.state.estimator is not None:
            self._loopq.reset(result.estimate.link_vehicles, result.state.estimator.row_share)
            if self._stop_lines_only:  # QA's flags there come from each loop's own readings
                self._loopq.set_flagged(result.estimate.detector_flags)
        if self._stops is not None:  # the gap timer ignores a stop-line loop QA flagged
            self._stops.set_flagged(result.estimate.detector_flags)
        if self._local is not None:  # local actuation inside the new plan's bounds
            self._local.min_g = result.plan.min_dur
            self._local.max_g = result.plan.max_dur
            if self._local.gap_at is not None:  # near capacity by the new plan's flow ratios
                y_sum = intersection_y(ctx.net, result.state.optimizer.plan.phase_y)
                self._local.gap_at = (y_sum >= self.gap_sat_y) | self._gap_always
            if self._local.zones:  # a camera QA flagged reads the scan's estimate instead
                local = self._local
                local.zone_stand_in = zone_stand_in(ctx.net, local.zones, result.estimate)
                loops = local.zone_loops
                local.zone_loop_flagged = (loops >= 0) & (
                    result.estimate.detector_flags[np.maximum(loops, 0)] != 0)
        if self._applier is not None:  # the plans themselves, where the pressure rule is not run
            which = None if self._pressure_at is None else ~self._pressure_at
            self._applier.submit(result.plan, which)
        self.scans.append(_scan_stats(result, prev))
        self._next_scan += self.config.scan_s

    def frames(self) -> dict[str, pd.DataFrame]:
        """Per-scan statistics: timings, plan changes, estimates (written as scans.parquet)."""
        return {"scans": pd.DataFrame(self.scans)}


def _scan_stats(result: Any, prev: Any) -> dict[str, float]:
    """How much the plans moved in this scan, and what the scan cost."""
    p = result.plan
    row = {"t": result.t, "data_until": float(result.estimate.t), "version": result.version,
           "rejected": len(result.rejected),
           "cycle_mean": float(p.cycle.mean()) if p.cycle.size else 0.0,
           "network_vehicles": float(result.estimate.network_vehicles),
           "flagged": int(np.count_nonzero(result.estimate.detector_flags)),
           "vehicle_length_m": float(result.estimate.vehicle_length_m),
           **{f"{k}_ms": v for k, v in result.timings_ms.items()}}
    if prev is not None and p.cycle.size:
        d_off = np.abs(p.offset - prev.offset)
        row.update({
            "cycle_change_mean": float(np.abs(p.cycle - prev.cycle).mean()),
            "green_change_mean": float(np.abs(p.duration - prev.duration).mean()),
            "green_change_max": float(np.abs(p.duration - prev.duration).max()),
            "offset_change_mean": float(np.minimum(d_off, p.cycle - d_off).mean()),
        })
    return row


def permissive_share(intersections: Sequence[IntersectionSpec]) -> np.ndarray:
    """Per intersection, the share of the signals its green phases give that are permissive
    (``g``: the movement yields, e.g. a left turn across oncoming traffic) rather than
    protected (``G``); 0 where its greens give none."""
    share = []
    for inter in intersections:
        state = "".join(p.state for p in inter.phases if p.is_green)
        given = state.count("g") + state.count("G")
        share.append(state.count("g") / given if given else 0.0)
    return np.array(share, dtype=np.float64)


def zone_stand_in(net: CompiledNetwork, zones: list[Any], estimate: Any) -> np.ndarray:
    """Per camera zone: NaN where the engine's QA found it healthy in the last scan, else
    what it would see by the scan's estimate (its approach lane's queue, or its link's
    vehicles per lane), so that a broken camera neither freezes nor empties its approach."""
    lane_of = {(int(a), int(b)): k for k, (a, b) in
               enumerate(zip(estimate.lane_link, estimate.lane_lane, strict=True))}
    out = np.full(len(zones), np.nan)
    for z, d in enumerate(zones):
        if estimate.detector_flags[net.det_index[d.id]] == 0:
            continue
        link = net.link_index[d.link]
        k = lane_of.get((link, d.lane))
        out[z] = (estimate.lane_queue[k] if k is not None
                  else estimate.link_vehicles[link] / max(float(net.link_lanes[link]), 1.0))
    return out


def _seen_by_stop_lines(net: CompiledNetwork) -> np.ndarray:
    """Per intersection: whether every approach is long enough for a car to stop on its
    stop-line loops (``MIN_LOOP_LINK_M``), so that they show whether a queue stands."""
    short = np.asarray(net.link_length, dtype=np.float64)[net.mov_from] < MIN_LOOP_LINK_M
    stub = np.bincount(net.mov_int, weights=short.astype(np.float64), minlength=net.n_intersections)
    return stub == 0


def within_reach(lengths_from_stop: np.ndarray, reach_m: float) -> np.ndarray:
    """Share of each link (listed moving away from a stop line) within ``reach_m`` of it."""
    lengths = np.maximum(np.asarray(lengths_from_stop, dtype=np.float64), 1.0)
    before = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    return np.clip((reach_m - before) / lengths, 0.0, 1.0)


def _upstream_chain(net: CompiledNetwork, link: int, max_hops: int = 4) -> list[int]:
    """Links feeding approach ``link`` through pass-through nodes (not ``link`` itself)."""
    out: list[int] = []
    prev = int(net.link_prev[link])
    while prev >= 0 and net.link_mov_indptr[prev] == net.link_mov_indptr[prev + 1] and len(out) < max_hops:
        out.append(prev)
        prev = int(net.link_prev[prev])
    return out


def _downstream_chain(net: CompiledNetwork, link: int, max_hops: int = 4) -> list[int]:
    """``link`` and the links continuing it through pass-through nodes to the next stop line."""
    out = [link]
    while net.link_mov_indptr[link] == net.link_mov_indptr[link + 1] and len(out) <= max_hops:
        link = int(net.link_next[link])
        if link < 0:
            break
        out.append(link)
    return out


ControllerFactory = Callable[..., Controller]
CONTROLLERS: dict[str, ControllerFactory] = {}


def register_controller(name: str, factory: ControllerFactory) -> None:
    """Add a controller factory under ``name``; names are unique."""
    if name in CONTROLLERS:
        msg = f"controller {name!r} is already registered"
        raise ValueError(msg)
    CONTROLLERS[name] = factory


def make_controller(name: str, **params: Any) -> Controller:
    """Instantiate a registered controller by name."""
    if name not in CONTROLLERS:
        msg = f"unknown controller {name!r}; choose one of {', '.join(sorted(CONTROLLERS))}"
        raise ValueError(msg)
    return CONTROLLERS[name](**params)


register_controller("fixed", FixedTime)
register_controller("actuated", Actuated)
register_controller("maxpressure", MaxPressure)
register_controller("signalopt", Signalopt)


def _loop_actuated(**params: Any) -> Controller:
    from sim.loop_actuated import LoopActuated  # noqa: PLC0415  (it imports this module)

    return LoopActuated(**params)


register_controller("actuated-loops", _loop_actuated)
