"""SimBackend: one SUMO per process, through libsumo (default, in-process) or TraCI (socket)."""

from __future__ import annotations

from typing import Any, Protocol

from scenarios.sumo_tools import sumo_binary

BACKENDS = ("libsumo", "traci")


class SimBackend(Protocol):
    """The few calls the harness needs; ``api`` exposes the TraCI domains (vehicle, edge, ...)."""

    name: str
    api: Any

    def start(self, args: list[str]) -> None: ...

    def step(self, until: float) -> None: ...

    def close(self) -> None: ...


class _ModuleBackend:
    """libsumo and traci share one API; only how they start differs."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self.api = module
        self._running = False

    def start(self, args: list[str]) -> None:
        self.api.start([sumo_binary("sumo"), *args])
        self._running = True

    def step(self, until: float) -> None:
        self.api.simulationStep(until)

    def close(self) -> None:
        if self._running:
            self.api.close()
            self._running = False


def open_backend(name: str = "libsumo") -> SimBackend:
    """Return a backend by name; libsumo allows one simulation per process."""
    if name == "libsumo":
        import libsumo  # noqa: PLC0415  heavy native module, only when simulating

        return _ModuleBackend("libsumo", libsumo)
    if name == "traci":
        import traci  # noqa: PLC0415

        return _ModuleBackend("traci", traci)
    msg = f"unknown SUMO backend {name!r}; choose one of {BACKENDS}"
    raise ValueError(msg)
