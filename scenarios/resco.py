"""RESCO benchmark scenarios as shipped inside the ``sumo-rl`` wheel, with their standard windows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from signalopt.errors import ScenarioError

# name -> (route file, evaluation window begin, end) as in the RESCO benchmark (Ault & Sharon 2021)
RESCO: dict[str, tuple[str, float, float]] = {
    "grid4x4": ("grid4x4_1.rou.xml", 0.0, 3600.0),
    "arterial4x4": ("arterial4x4_1.rou.xml", 0.0, 3600.0),
    "cologne1": ("cologne1.rou.xml", 25200.0, 28800.0),
    "cologne3": ("cologne3.rou.xml", 25200.0, 28800.0),
    "cologne8": ("cologne8.rou.xml", 25200.0, 28800.0),
    "ingolstadt1": ("ingolstadt1.rou.xml", 57600.0, 61200.0),
    "ingolstadt7": ("ingolstadt7.rou.xml", 57600.0, 61200.0),
    "ingolstadt21": ("ingolstadt21.rou.xml", 57600.0, 61200.0),
}


def resco_dir(name: str) -> Path:
    """Folder of a RESCO scenario inside the installed sumo-rl package (not imported)."""
    spec = importlib.util.find_spec("sumo_rl")
    if spec is None or not spec.submodule_search_locations:
        msg = f"RESCO scenario {name!r} needs sumo-rl: pip install 'signalopt[resco]'"
        raise ScenarioError(msg)
    folder = Path(next(iter(spec.submodule_search_locations))) / "nets" / "RESCO" / name
    if not folder.is_dir():
        msg = f"RESCO scenario {name!r} not found in the installed sumo-rl ({folder})"
        raise ScenarioError(msg)
    return folder
