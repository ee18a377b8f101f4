"""SUMO side of signalopt: backends, virtual detectors, controllers, ground truth and metrics.

Only this package talks to SUMO. It imports ``signalopt``; ``signalopt`` never imports it.

``sim.run(...)`` is the researcher's entry point: one reproducible run, pandas frames back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.replay import ReplayResult
    from sim.runner import RunResult

__all__ = ["run"]


def run(
    scenario: str,
    controller: str = "signalopt",
    *,
    seed: int = 42,
    demand: str | None = None,
    duration: float | None = None,
    scale: float = 1.0,
    params: dict[str, Any] | None = None,
    backend: str = "libsumo",
) -> RunResult | ReplayResult:
    """Simulate ``scenario`` (built-in name or .sumocfg) under ``controller``; frames back.

    For ``controller="signalopt"`` the result is a ``ReplayResult``: every scan's estimates
    and plans (``.scans``, ``.links``, ``.movements``, ``.plans``, ``.phases``) plus the run's
    ``.metrics``, ``.trips``, ``.counts`` and ``.truth``. Other controllers give a
    ``RunResult`` (metrics, trips, counts, truth). ``params`` are controller parameters.
    """
    if controller == "signalopt":
        from sim.replay import replay_scenario  # noqa: PLC0415

        return replay_scenario(scenario, seed=seed, demand=demand, duration=duration,
                               scale=scale, params=params, backend=backend)
    from scenarios.registry import resolve_scenario  # noqa: PLC0415
    from sim.controllers import make_controller  # noqa: PLC0415
    from sim.runner import run_simulation  # noqa: PLC0415

    spec = resolve_scenario(scenario, demand=demand, seed=seed, duration=duration, scale=scale)
    return run_simulation(spec, make_controller(controller, **(params or {})), backend=backend)
