"""Live vehicles per link from loop passages, for the pressure rule where no camera sees queues.

A field controller with loops but no cameras can still count: the engine's last estimate of
every cell (made at the last scan) plus the vehicles its loops have passed in and out since, second by
second (input-output counting on the estimator's own cells: entry loops, or the stop lines
upstream times the turning shares, in; exit loops out). A free exit has no loop at its end:
it holds what came in during its travel time. A cell whose inflow nobody counts (stop-line
loops only, fed by unsignalised roads) gains vehicles at the rate its exit counted over the
last scan. The stop-line loops also tell whether a green is still discharging: the seconds
since a vehicle last crossed one (a field controller's gap timer); and whether a queue
stands at all: a cell whose stop-line loops have neither a vehicle standing on them nor one
crossing within the gap holds no queue, only what is driving through it, and one with a
vehicle standing on a loop holds at least that one. A loop the engine's QA flagged
(``set_flagged``) shows neither: its cell is not bounded, and a phase whose stop-line loops
are all flagged has no call known (NaN).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from signalopt.estimator_model import (
    IN_LOOPS,
    IN_RELEASED,
    IN_UNKNOWN,
    OUT_FREE,
    OUT_MERGED,
    OUT_NEXT_ENTRY,
    OUT_STOPLINE,
    EstimatorModel,
)
from signalopt.network import CompiledNetwork
from sim.loop_reader import MIN_LOOP_LINK_M, LoopReader, phase_stop_loops


class LoopQueues:
    """Input-output counting of every cell between scans (see the module docstring).

    ``step`` is called once per simulation step of ``step_s`` seconds; ``gap_s`` is how long
    after the last crossing a stop-line loop with nobody on it shows an empty stop line.
    """

    def __init__(self, net: CompiledNetwork, model: EstimatorModel, *, step_s: float = 1.0,
                 gap_s: float = 3.0) -> None:
        self._model, self.step_s = model, step_s
        n = net.n_links
        used = sorted({*model.in_det.tolist(), *model.out_det.tolist(),
                       *model.lane_stop[model.lane_stop >= 0].tolist()})
        self.reader = LoopReader(net, used, step_s=step_s)
        self.base, self.delta = np.zeros(n), np.zeros(n)
        self._link, self._det, self._w = self._rows(np.zeros(model.row_lane.shape[0]))
        # approach lanes with a loop at each end (entry and stop line): counted lane by lane
        entry_of = {(int(net.det_link[d]), int(net.det_lane[d])): int(d)
                    for d in model.in_det.tolist()}
        lanes = [(k, entry_of.get((int(a), int(b)), -1), int(s)) for k, (a, b, s) in
                 enumerate(zip(model.lane_link, model.lane_lane, model.lane_stop, strict=True))]
        both = [(k, e, s) for k, e, s in lanes if e >= 0 and s >= 0]
        self.lane_counted = np.zeros(model.lane_link.shape[0], dtype=bool)
        self.lane_counted[[k for k, _, _ in both]] = True
        self._lane_in = self.reader.positions(np.array([e for _, e, _ in both], dtype=np.int64))
        self._lane_out = self.reader.positions(np.array([s for _, _, s in both], dtype=np.int64))
        self._lane_k = np.array([k for k, _, _ in both], dtype=np.int64)
        self.lane_delta = np.zeros(model.lane_link.shape[0])
        # a free exit: the steps a vehicle counted in needs at the speed limit to reach its end
        # (a released flow is counted at the link's start)
        start = np.where(model.in_kind == IN_RELEASED, 0.0, model.entry_pos)
        road = np.maximum(np.asarray(net.link_length, dtype=np.float64) - start, 0.0)
        self._free = model.out_kind == OUT_FREE
        speed = np.maximum(model.link_speed, 1.0)
        travel = np.round(road / speed / step_s).astype(np.int64)
        self._travel = np.where(self._free, travel, 0)
        # a cell nobody counts vehicles into gains them at the rate its exit counted them
        # over the last scan (steady state; 0 until the first scan)
        self._guessed = (model.in_kind == IN_UNKNOWN) & np.isin(model.out_kind, (OUT_STOPLINE, OUT_NEXT_ENTRY))
        self._rate, self._out_since, self._steps_since = np.zeros(n), np.zeros(n), 0
        # cells ending at stop-line loops that see a queue stand (see MIN_LOOP_LINK_M): their
        # loops, and the steps a vehicle needs to drive through the cell
        length = np.asarray(net.link_length, dtype=np.float64)
        ends = [(k, int(self.reader.positions(d))) for k in np.nonzero(model.out_kind == OUT_STOPLINE)[0].tolist()
                for d in model.out_det[model.out_indptr[k]:model.out_indptr[k + 1]].tolist()
                if length[net.det_link[d]] >= MIN_LOOP_LINK_M]
        self._end_link = np.array([k for k, _ in ends], dtype=np.int64)
        self._end_loop = np.array([d for _, d in ends], dtype=np.int64)
        self._ends_seen = np.bincount(self._end_link, minlength=n) > 0
        cell = np.maximum(np.asarray(model.exit_pos, dtype=np.float64) - start, 0.0)
        self._cell_travel = np.round(cell / speed / step_s).astype(np.int64)
        self._gap_steps = gap_s / step_s
        # cumulative inflow after each of the last steps (a ring as deep as the longest travel)
        deepest = max(int(self._travel.max(initial=0)),
                      int(self._cell_travel[self._ends_seen].max(initial=0)))
        self._in_ring = np.zeros((deepest + 1, n))
        self._steps = 0

    def _rows(self, row_share: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(link, detector position, weight): each passage adds ``weight`` to the link."""
        m = self._model
        rows: list[tuple[int, int, float]] = []
        for link in range(m.link_len.shape[0]):
            if m.in_kind[link] == IN_LOOPS:
                rows += [(link, int(d), 1.0) for d in m.in_det[m.in_indptr[link]:m.in_indptr[link + 1]]]
            elif m.in_kind[link] == IN_RELEASED:
                for r in m.into_row[m.into_indptr[link]:m.into_indptr[link + 1]]:
                    rows.append((link, int(m.lane_stop[m.row_lane[r]]), float(row_share[r])))
            if m.out_kind[link] not in (OUT_FREE, OUT_MERGED):
                lo, hi = m.out_indptr[link], m.out_indptr[link + 1]
                rows += [(link, int(d), -float(w)) for d, w in zip(m.out_det[lo:hi], m.out_w[lo:hi],
                                                                  strict=True)]
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
        link, det, w = zip(*rows, strict=True)
        return (np.array(link, dtype=np.int64), self.reader.positions(np.array(det, dtype=np.int64)),
                np.array(w, dtype=np.float64))

    def reset(self, link_vehicles: np.ndarray, row_share: np.ndarray) -> None:
        """A new scan: its estimate is the base, its turning shares split released flows, and
        what each cell's exit counted since the last scan sets its uncounted inflow's rate."""
        if self._steps_since:
            self._rate = np.where(self._guessed, self._out_since / self._steps_since, 0.0)
        self._out_since, self._steps_since = np.zeros_like(self._out_since), 0
        self.base = np.asarray(link_vehicles, dtype=np.float64).copy()
        self.delta = np.zeros_like(self.base)
        self.lane_delta = np.zeros_like(self.lane_delta)
        self._link, self._det, self._w = self._rows(row_share)

    def step(self, api: object) -> None:
        """Add the vehicles that left each loop in the last simulation step."""
        self.reader.step(api)
        passed = self.reader.passed
        moved = self._w * passed[self._det]
        n = self.base.shape[0]
        self.delta += np.bincount(self._link, weights=moved, minlength=n) + self._rate
        self._out_since += np.bincount(self._link, weights=np.maximum(-moved, 0.0), minlength=n)
        self._steps_since += 1
        self.lane_delta[self._lane_k] += passed[self._lane_in] - passed[self._lane_out]
        depth, last = self._in_ring.shape[0], self._steps
        self._steps += 1
        inflow = np.bincount(self._link, weights=np.maximum(moved, 0.0), minlength=n)
        self._in_ring[self._steps % depth] = self._in_ring[last % depth] + inflow
        self._bound_by_stop_lines()

    def _bound_by_stop_lines(self) -> None:
        """What the stop-line loops show now bounds each cell they end: nobody standing on
        them and none crossing within the gap -> no queue, at most the vehicles driving
        through (counted in during its travel time, or its guessed inflow's); a vehicle
        standing on one of them -> at least one per such loop."""
        if self._end_link.size == 0:
            return
        n = self.base.shape[0]
        r = self.reader
        flagged = r.flagged[self._end_loop]
        standing = (r.standing[self._end_loop] > 0) & ~flagged
        busy = standing | (r.idle[self._end_loop] < self._gap_steps) | flagged
        queued = np.bincount(self._end_link, weights=busy.astype(np.float64), minlength=n) > 0
        driving = np.where(self._guessed, self._rate * self._cell_travel,
                           self._counted_in(self._cell_travel))
        now = self.base + self.delta
        now = np.where(self._ends_seen & ~queued, np.minimum(now, driving), now)
        now = np.maximum(now, np.bincount(self._end_link, weights=standing.astype(np.float64), minlength=n))
        self.delta = now - self.base

    def set_flagged(self, detector_flags: np.ndarray) -> None:
        """Take the engine's QA verdict (per network detector, 0 = healthy): a flagged loop
        no longer bounds its cell nor calls its phase (a silent one would never call, a stuck
        one always)."""
        self.reader.set_flagged(detector_flags)

    def _counted_in(self, lag: np.ndarray) -> np.ndarray:
        """Vehicles counted into each link during its last ``lag`` steps."""
        depth, lag = self._in_ring.shape[0], np.minimum(lag, self._steps)
        then = self._in_ring[(self._steps - lag) % depth, np.arange(lag.shape[0])]
        return self._in_ring[self._steps % depth] - then

    def link_vehicles(self) -> np.ndarray:
        """Vehicles on every link now (never below zero); on a free exit, those that came in
        during its travel time."""
        counted = np.maximum(self.base + self.delta, 0.0)
        return np.where(self._free, self._counted_in(self._travel), counted)

    def lane_vehicles(self) -> np.ndarray:
        """Vehicles on each approach lane between its entry and stop-line loops now: the
        scan's link estimate shared evenly by lanes, plus the lane's own passages since
        (NaN for lanes without both loops)."""
        m = self._model
        link = m.lane_link
        share = self.base[link] / np.maximum(m.link_lanes[link], 1.0)
        return np.where(self.lane_counted, np.maximum(share + self.lane_delta, 0.0), np.nan)

    def phase_loops(self, net: CompiledNetwork) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """A function giving, per phase of ``net``, what the stop-line loops of the lanes its
        green serves show now: the seconds since a vehicle last crossed one (inf if none has),
        and the vehicles standing on them (a call; inf for a phase without such loops, so
        that it is never passed over for want of one; NaN where QA flagged all of them)."""
        phase, det = phase_stop_loops(net, self._model)
        return self.reader.phase_view(phase, self.reader.positions(det), net.phase_duration.size)
