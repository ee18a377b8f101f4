"""Locate and run the SUMO binaries and tools shipped by the ``eclipse-sumo`` wheel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from signalopt.errors import ScenarioError


def sumo_home() -> Path:
    """SUMO_HOME of the eclipse-sumo wheel (never a system install)."""
    import sumo  # noqa: PLC0415  the eclipse-sumo wheel

    return Path(sumo.SUMO_HOME)


def sumo_binary(name: str = "sumo") -> str:
    """Absolute path of a SUMO binary (sumo, netgenerate, netconvert, duarouter)."""
    path = sumo_home() / "bin" / name
    if not path.exists():
        msg = f"SUMO binary {name!r} not found under {path.parent}; pip install eclipse-sumo"
        raise ScenarioError(msg)
    return str(path)


def sumo_tool(rel: str) -> str:
    """Absolute path of a script under SUMO's tools/ folder (e.g. 'randomTrips.py')."""
    return str(sumo_home() / "tools" / rel)


def run_checked(cmd: list[str], *, what: str) -> None:
    """Run a SUMO command; raise ScenarioError with its stderr if it fails."""
    env = dict(os.environ, SUMO_HOME=str(sumo_home()))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        msg = f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        raise ScenarioError(msg)


def python_tool(rel: str, *args: str, what: str) -> None:
    """Run a SUMO python tool with the current interpreter."""
    run_checked([sys.executable, sumo_tool(rel), *args], what=what)
