"""Seeded, time-varying demand profiles written as SUMO trip files by randomTrips.py."""

from __future__ import annotations

from pathlib import Path

from scenarios.sumo_tools import python_tool
from signalopt.errors import ScenarioError

# Relative insertion rate over equal slices of the horizon (1.0 = the scenario's peak rate).
PROFILES: dict[str, tuple[float, ...]] = {
    "offpeak": (0.55,),
    "peak": (1.0,),
    # ramp-up, peak, ramp-down over the hour (10-minute slices)
    "peak_ramp": (0.5, 0.8, 1.1, 1.1, 0.8, 0.5),
}


def profile_rates(demand: str, peak_veh_h: float, scale: float = 1.0) -> tuple[float, ...]:
    """Vehicles per hour in each slice of ``demand`` for a network whose peak is ``peak_veh_h``."""
    if demand not in PROFILES:
        msg = f"unknown demand profile {demand!r}; choose one of {sorted(PROFILES)}"
        raise ScenarioError(msg)
    if scale <= 0:
        msg = f"demand scale must be > 0, got {scale}"
        raise ScenarioError(msg)
    return tuple(r * peak_veh_h * scale for r in PROFILES[demand])


def write_routes(
    net: Path,
    out: Path,
    *,
    rates_veh_h: tuple[float, ...],
    seed: int,
    end_s: float,
) -> Path:
    """Write random trips routed by duarouter (shortest free-flow paths) to ``out``.

    Routes, not bare trips: this is the recipe of shared/BENCHMARKS.md (``randomTrips -r``);
    bare trips routed at insertion give a different, far more congested demand.
    Same seed, same file.
    """
    python_tool(
        "randomTrips.py",
        "-n", str(net), "-o", str(out.with_suffix(".trips.xml")), "-r", str(out),
        "--seed", str(seed), "-b", "0", "-e", str(end_s),
        "--insertion-rate", *[f"{r:.3f}" for r in rates_veh_h],
        what="randomTrips.py",
    )
    return out
