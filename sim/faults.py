"""Broken detectors in closed loop: a seeded share of them stops working partway through a run.

The same faults as the offline estimation benchmark (``benchmarks/estimation.py``): each failed
detector breaks at a random time in the first half of the run and is either *stuck* (it
repeats what it showed then, forever) or *silent* (no data). The faults sit between SUMO and
everything that reads detectors (the interval reader the engine's counts come from, and the
second-by-second view of the local controller), so both see the same broken detector. A stuck
detector is read once, in the simulation step its fault begins (``FaultyApi.on_step``), so
what it shows forever does not depend on when a reader first asks it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

STUCK, SILENT = "stuck", "silent"
# what a silent detector returns, per TraCI getter (NaN: the interval's row carries no data)
_SILENT = {"getLastIntervalVehicleNumber": np.nan, "getLastIntervalOccupancy": np.nan,
           "getLastIntervalMeanSpeed": np.nan, "getVehicleData": (),
           "getLastStepVehicleNumber": 0, "getLastStepOccupancy": 0.0,
           "getLastStepMeanSpeed": -1.0, "getLastStepHaltingNumber": 0,
           "getJamLengthVehicle": 0, "getJamLengthMeters": 0.0}
# what a stuck detector is frozen at when it breaks: every getter the harness reads, per domain
_FROZEN_GETTERS = {
    "inductionloop": ("getLastIntervalVehicleNumber", "getLastIntervalOccupancy",
                      "getLastIntervalMeanSpeed", "getVehicleData"),
    "lanearea": ("getLastIntervalVehicleNumber", "getLastIntervalOccupancy",
                 "getLastIntervalMeanSpeed", "getLastStepVehicleNumber"),
}


class Fault(NamedTuple):
    """One broken detector: from ``onset`` (simulation time, s) on, ``mode`` stuck or silent."""

    onset: float
    mode: str


def pick_faults(detector_ids: list[str], fraction: float, *, begin: float, duration: float,
                seed: int) -> dict[str, Fault]:
    """A seeded ``fraction`` of the detectors, each failing at a random time in the first half
    of the run, stuck or silent with equal odds."""
    rng = np.random.default_rng(seed)
    n = round(fraction * len(detector_ids))
    chosen = rng.choice(len(detector_ids), size=n, replace=False) if n else []
    return {detector_ids[int(i)]: Fault(onset=begin + float(rng.uniform(0.0, duration / 2)),
                                        mode=STUCK if rng.random() < 0.5 else SILENT)
            for i in chosen}


class _Detectors:
    """A TraCI detector domain (``inductionloop`` or ``lanearea``) with some detectors broken."""

    def __init__(self, domain: Any, faults: dict[str, Fault], clock: Any,
                 getters: tuple[str, ...]) -> None:
        self._domain, self._faults, self._clock = domain, faults, clock
        self._frozen: dict[tuple[str, str], Any] = {}
        ids = set(domain.getIDList())
        # stuck detectors of this domain, by onset: frozen in order as the clock passes them
        self._pending = sorted((f.onset, d) for d, f in faults.items()
                               if f.mode == STUCK and d in ids)
        self._getters = getters

    def freeze_due(self, t: float) -> None:
        """Freeze every stuck detector whose fault has begun by ``t`` at what it shows now."""
        while self._pending and self._pending[0][0] <= t:
            _, det_id = self._pending.pop(0)
            for name in self._getters:
                self._frozen[(name, det_id)] = _stuck(name, getattr(self._domain, name)(det_id))

    def __getattr__(self, name: str) -> Any:
        """Only reached on a getter's first use: the wrapper is then kept as an attribute,
        since the local controller reads every loop every simulated second."""
        real = getattr(self._domain, name)
        if not name.startswith("get") or name == "getIDList":
            return real

        def read(det_id: str, *args: Any) -> Any:
            fault = self._faults.get(det_id)
            if fault is None or self._clock.getTime() < fault.onset:
                return real(det_id, *args)
            if fault.mode == SILENT:
                return _SILENT.get(name, 0)
            key = (name, det_id)
            if key not in self._frozen:  # a getter not frozen at onset: frozen at first read
                self._frozen[key] = _stuck(name, real(det_id, *args))
            return self._frozen[key]

        setattr(self, name, read)
        return read


def _stuck(name: str, value: Any) -> Any:
    """What a stuck detector shows forever: the value itself; of its vehicle data, only the
    vehicles standing on it then, which never leave it."""
    if name == "getVehicleData":
        return tuple((v[0], v[1], v[2], -1.0, v[4]) for v in value if v[3] < 0)
    return value


class FaultyApi:
    """A SUMO API (libsumo / traci module) whose detectors in ``faults`` are broken.

    Call ``on_step(t)`` after every simulation step: stuck detectors freeze in the step their
    fault begins."""

    def __init__(self, api: Any, faults: dict[str, Fault]) -> None:
        self._api = api
        self.inductionloop = _Detectors(api.inductionloop, faults, api.simulation,
                                        _FROZEN_GETTERS["inductionloop"])
        self.lanearea = _Detectors(api.lanearea, faults, api.simulation,
                                   _FROZEN_GETTERS["lanearea"])

    def on_step(self, t: float) -> None:
        """Freeze the stuck detectors whose fault began by ``t``."""
        self.inductionloop.freeze_due(t)
        self.lanearea.freeze_due(t)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)
