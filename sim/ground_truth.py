"""True traffic state read from SUMO, for scoring only: never handed to the engine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from signalopt.network import NetworkSpec


class GroundTruthRecorder:
    """Snapshots of true vehicles per link, queues per approach lane and network totals."""

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

    def on_step(self) -> None:
        """Count teleports as they start (call every simulation step)."""
        self._teleports += self._api.simulation.getStartingTeleportNumber()  # type: ignore[attr-defined]

    @property
    def teleports(self) -> int:
        return self._teleports

    def record(self, t: float) -> None:
        """Snapshot the network at time ``t``."""
        api = self._api
        self.times.append(t)
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
        return {"totals": pd.DataFrame(self.totals), "links": links, "lanes": lanes}
