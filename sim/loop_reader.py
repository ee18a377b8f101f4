"""What the site's loops show second by second: vehicles leaving each loop, vehicles standing
on it, and the seconds since one last crossed it (a field controller's gap timer).

One reader per controller reads each loop once per simulation step (TraCI's vehicle data of
the step), and everything that acts on the second (input-output counting, the gap timer, a
camera's floor, loop actuation) takes it from there: reading a loop costs about as much as
the rest of a step's Python, and pilot128 has 4,192 loops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from signalopt.estimator_model import EstimatorModel
from signalopt.network import CompiledNetwork

# a stop-line loop on an approach shorter than a car: no vehicle stops on it (SUMO queues
# them before such a stub), so it cannot tell whether a queue stands
MIN_LOOP_LINK_M = 5.0


class LoopReader:
    """Per loop of ``det`` (network detector indices), after each ``step``: ``passed``
    (vehicles that left it in the step), ``standing`` (vehicles on it at the step's end) and
    ``idle`` (steps since a vehicle last left it; inf before any has). ``flagged`` holds the
    engine's QA verdict per loop (``set_flagged``), which readers of the gap timer honour
    (``phase_view``)."""

    def __init__(self, net: CompiledNetwork, det: Sequence[int], *, step_s: float = 1.0) -> None:
        self.det = np.asarray(det, dtype=np.int64)
        self.ids, self.step_s = [net.det_ids[d] for d in self.det.tolist()], step_s
        n = self.det.shape[0]
        self._pos = np.full(net.n_detectors, -1, dtype=np.int64)
        self._pos[self.det] = np.arange(n)
        self.passed, self.standing = np.zeros(n), np.zeros(n)
        self.idle = np.full(n, np.inf)
        self.flagged = np.zeros(n, dtype=bool)

    def positions(self, det: np.ndarray) -> np.ndarray:
        """Where each network detector of ``det`` sits in this reader's arrays (-1: not read)."""
        return self._pos[np.asarray(det, dtype=np.int64)]

    def set_flagged(self, detector_flags: np.ndarray) -> None:
        """Take the engine's QA verdict (per network detector, 0 = healthy)."""
        self.flagged = np.asarray(detector_flags)[self.det] != 0

    def step(self, api: Any) -> None:
        """Read every loop once (TraCI ``getVehicleData``: id, length, entry, leave, type;
        leave < 0 while the vehicle is still on it)."""
        get = api.inductionloop.getVehicleData
        passed, standing = np.zeros(len(self.ids)), np.zeros(len(self.ids))
        for k, loop in enumerate(self.ids):
            for v in get(loop):  # nearly always empty: a point loop holds one car at most
                if v[3] >= 0:
                    passed[k] += 1.0
                else:
                    standing[k] += 1.0
        self.passed, self.standing = passed, standing
        self.idle = np.where(passed > 0, 0.0, self.idle + 1.0)

    def phase_view(self, phase: np.ndarray, loop: np.ndarray,
                   n_phases: int) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """A function giving, per phase, what its stop-line loops (``phase``/``loop`` pairs,
        ``loop`` a position in ``ids``) show now: the seconds since a vehicle last crossed one
        (inf if none has), and the vehicles standing on them (a call; inf for a phase without
        such loops, so that it is never passed over for want of one; NaN where QA flagged all
        of them)."""
        looped = np.bincount(phase, minlength=n_phases) > 0

        def view() -> tuple[np.ndarray, np.ndarray]:
            idle = np.full(n_phases, np.inf)
            ok = ~self.flagged[loop]
            np.minimum.at(idle, phase[ok], self.idle[loop[ok]] * self.step_s)
            standing = np.bincount(phase[ok], weights=self.standing[loop[ok]], minlength=n_phases)
            working = np.bincount(phase[ok], minlength=n_phases) > 0
            return idle, np.where(looped, np.where(working, standing, np.nan), np.inf)

        return view


def phase_stop_loops(net: CompiledNetwork, model: EstimatorModel) -> tuple[np.ndarray, np.ndarray]:
    """(phase, detector) pairs, sorted: the stop-line loops on the lanes each phase's green
    serves (network indices)."""
    pairs = sorted({(p, int(model.lane_stop[model.row_lane[r]]))
                    for p in range(net.phase_duration.size)
                    for r in np.nonzero(np.isin(model.row_mov, net.phase_mov[
                        net.phase_mov_indptr[p]:net.phase_mov_indptr[p + 1]]))[0]
                    if model.lane_stop[model.row_lane[r]] >= 0})
    return (np.array([p for p, _ in pairs], dtype=np.int64),
            np.array([d for _, d in pairs], dtype=np.int64))
