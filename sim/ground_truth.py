"""True traffic state read from SUMO, for scoring only: never handed to the engine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from signalopt.network import NetworkSpec


class GroundTruthRecorder:
    """Snapshots of true vehicles per link, queues per approach lane and network totals.

    ``turns`` counts, per signalised movement, the vehicles that made it since the previous
    snapshot (from each vehicle's route index), for scoring estimated turning ratios.
    """

    def __init__(self, api: object, spec: NetworkSpec) -> None:
        self._api = api
        self._links = [link.id for link in spec.links]
        lanes = sorted({(m.from_link, ln) for m in spec.movements for ln in m.lanes})
        self._lanes = [f"{link}_{ln}" for link, ln in lanes]
        self.times: list[float] = []
        self.link_vehicles: list[np.ndarray] = []
        self.lane_queue: list[np.ndarray] = []
        self.totals: list[dict[str, float]] = []
        self._teleports = 0
        self._movements = {(m.from_link, m.to_link): k for k, m in enumerate(spec.movements)}
        self._mov_names = [(m.from_link, m.to_link) for m in spec.movements]
        self._route_pos: dict[str, tuple[tuple[str, ...], int]] = {}
        self._turns_now = np.zeros(len(self._mov_names), dtype=np.int64)
        self.turn_counts: list[np.ndarray] = []

    def on_step(self) -> None:
        """Count teleports as they start (call every simulation step)."""
        sim = self._api.simulation  # type: ignore[attr-defined]
        self._teleports += sim.getStartingTeleportNumber()
        for v in sim.getDepartedIDList():
            self._route_pos[v] = (tuple(self._api.vehicle.getRoute(v)), 0)  # type: ignore[attr-defined]
        for v in sim.getArrivedIDList():
            route, idx = self._route_pos.pop(v, ((), 0))
            self._add_turns(route, idx, len(route) - 1)

    def _add_turns(self, route: tuple[str, ...], start: int, stop: int) -> None:
        """Count the movements a vehicle made going from route index ``start`` to ``stop``."""
        for k in range(start, stop):
            mov = self._movements.get((route[k], route[k + 1]))
            if mov is not None:
                self._turns_now[mov] += 1

    def _update_turns(self) -> None:
        """Advance every running vehicle's route index, counting the movements it made."""
        veh = self._api.vehicle  # type: ignore[attr-defined]
        for v, (route, idx) in list(self._route_pos.items()):
            now = veh.getRouteIndex(v)
            if now > idx:
                self._add_turns(route, idx, now)
                self._route_pos[v] = (route, now)

    @property
    def teleports(self) -> int:
        return self._teleports

    def record(self, t: float) -> None:
        """Snapshot the network at time ``t``."""
        api = self._api
        self.times.append(t)
        self._update_turns()
        self.turn_counts.append(self._turns_now.copy())
        self._turns_now[:] = 0
        self.link_vehicles.append(
            np.array([api.edge.getLastStepVehicleNumber(e) for e in self._links], dtype=np.int64)  # type: ignore[attr-defined]
        )
        self.lane_queue.append(
            np.array([api.lane.getLastStepHaltingNumber(ln) for ln in self._lanes], dtype=np.int64)  # type: ignore[attr-defined]
        )
        self.totals.append({
            "t": t,
            "in_transit": float(api.vehicle.getIDCount()),  # type: ignore[attr-defined]
            "on_links": float(self.link_vehicles[-1].sum()),
            "waiting_to_insert": float(len(api.simulation.getPendingVehicles())),  # type: ignore[attr-defined]
            "teleports_so_far": float(self._teleports),
        })

    def frames(self) -> dict[str, pd.DataFrame]:
        """Totals (one row per snapshot), link vehicles and lane queues (long format)."""
        t = np.asarray(self.times)
        links = pd.DataFrame({
            "t": np.repeat(t, len(self._links)),
            "link": np.tile(self._links, len(t)),
            "vehicles": np.concatenate(self.link_vehicles) if self.times else [],
        })
        lanes = pd.DataFrame({
            "t": np.repeat(t, len(self._lanes)),
            "lane": np.tile(self._lanes, len(t)),
            "queue": np.concatenate(self.lane_queue) if self.times else [],
        })
        n_mov = len(self._mov_names)
        turns = pd.DataFrame({
            "t": np.repeat(t, n_mov),
            "from_link": np.tile([a for a, _ in self._mov_names], len(t)),
            "to_link": np.tile([b for _, b in self._mov_names], len(t)),
            "count": np.concatenate(self.turn_counts) if self.times else [],
        })
        return {"totals": pd.DataFrame(self.totals), "links": links, "lanes": lanes,
                "turns": turns}
