"""Scenario registry: a name (or a .sumocfg path) -> ``ScenarioSpec`` with files on disk.

Built-in names are data in ``SCENARIOS``; registering a duplicate name is an error.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from scenarios import demand as demand_mod
from scenarios.grid import generate_grid
from scenarios.resco import RESCO, resco_dir
from signalopt.errors import ScenarioError

PILOT_PEAK_VEH_H = 21000.0  # pilot128 peak insertion rate, calibrated: congested, no gridlock


class ScenarioSpec(BaseModel):
    """Files and evaluation window of one simulation scenario."""

    model_config = ConfigDict(frozen=True)

    name: str
    net: Path
    routes: tuple[Path, ...]
    additionals: tuple[Path, ...] = ()
    begin: float = 0.0
    end: float = 3600.0
    demand: str = "default"
    scale: float = 1.0
    seed: int = 42

    @property
    def duration(self) -> float:
        return self.end - self.begin


ScenarioFactory = Callable[..., ScenarioSpec]
SCENARIOS: dict[str, ScenarioFactory] = {}


def register(name: str, factory: ScenarioFactory) -> None:
    """Add a named scenario; names are unique."""
    if name in SCENARIOS:
        msg = f"scenario {name!r} is already registered"
        raise ScenarioError(msg)
    SCENARIOS[name] = factory


def list_scenarios() -> list[str]:
    return sorted(SCENARIOS)


def cache_dir() -> Path:
    """Where generated scenario files live: $SIGNALOPT_CACHE or ~/.cache/signalopt."""
    root = os.environ.get("SIGNALOPT_CACHE") or Path.home() / ".cache" / "signalopt"
    return Path(root) / "scenarios"


def resolve_scenario(
    name: str,
    *,
    demand: str | None = None,
    seed: int = 42,
    duration: float | None = None,
    scale: float = 1.0,
) -> ScenarioSpec:
    """Return the ``ScenarioSpec`` for a built-in name or a path to a ``.sumocfg``."""
    if name.endswith(".sumocfg") or os.sep in name:
        spec = read_sumocfg(Path(name), seed=seed)
        if demand not in (None, "default") or scale != 1.0:
            msg = "--demand/--scale apply to generated scenarios only, not to a .sumocfg"
            raise ScenarioError(msg)
    elif name in SCENARIOS:
        spec = SCENARIOS[name](demand=demand, seed=seed, duration=duration, scale=scale)
    else:
        msg = f"unknown scenario {name!r}; built-in: {', '.join(list_scenarios())} or a .sumocfg path"
        raise ScenarioError(msg)
    if duration is not None:
        if duration <= 0:
            msg = f"duration must be > 0 s, got {duration}"
            raise ScenarioError(msg)
        spec = spec.model_copy(update={"end": spec.begin + duration})
    return spec


def read_sumocfg(path: Path, *, seed: int = 42) -> ScenarioSpec:
    """Read net, routes, additionals and begin/end from a ``.sumocfg`` (paths relative to it)."""
    if not path.is_file():
        msg = f"sumocfg not found: {path}"
        raise ScenarioError(msg)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        msg = f"malformed sumocfg {path}: {exc}"
        raise ScenarioError(msg) from exc

    def values(key: str) -> list[str]:
        node = root.find(f".//{key}")
        if node is None or not node.get("value"):
            return []
        return [v for v in node.get("value", "").replace(",", " ").split() if v]

    def files(key: str) -> tuple[Path, ...]:
        out = tuple((path.parent / v).resolve() for v in values(key))
        missing = [str(p) for p in out if not p.is_file()]
        if missing:
            msg = f"{path}: {key} names missing file(s): {', '.join(missing)}"
            raise ScenarioError(msg)
        return out

    nets = files("net-file")
    if len(nets) != 1:
        msg = f"{path}: needs exactly one <net-file value=...>, found {len(nets)}"
        raise ScenarioError(msg)
    begin = float((values("begin") or ["0"])[0])
    end = float((values("end") or [str(begin + 3600)])[0])
    return ScenarioSpec(
        name=path.stem, net=nets[0], routes=files("route-files"),
        additionals=files("additional-files"), begin=begin, end=end, seed=seed,
    )


def _atomic_build(key: str, build: Callable[[Path], None]) -> Path:
    """Build files into a temp folder, then move it into the cache under ``key``."""
    final = cache_dir() / key
    if (final / "done").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        build(tmp)
        (tmp / "done").write_text("ok")
        try:
            tmp.rename(final)
        except OSError:  # built concurrently by another process: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _grid_scenario(
    name: str, *, left_bay_m: float, peak_veh_h: float, default_demand: str = "peak",
) -> ScenarioFactory:
    def factory(
        *, demand: str | None, seed: int, duration: float | None, scale: float
    ) -> ScenarioSpec:
        demand = demand or default_demand
        horizon = float(duration or 3600.0)
        rates = demand_mod.profile_rates(demand, peak_veh_h, scale)
        tag = hashlib.sha1(f"{rates}{horizon}".encode()).hexdigest()[:8]

        net_dir = _atomic_build(
            f"{name}-net", lambda d: generate_grid(d / "net.net.xml", left_bay_m=left_bay_m)
        )
        net = net_dir / "net.net.xml"
        trips_dir = _atomic_build(
            f"{name}-{demand}-x{scale:g}-s{seed}-{tag}",
            lambda d: demand_mod.write_routes(
                net, d / "routes.rou.xml", rates_veh_h=rates, seed=seed, end_s=horizon
            ),
        )
        return ScenarioSpec(
            name=name, net=net, routes=(trips_dir / "routes.rou.xml",), begin=0.0, end=horizon,
            demand=demand, scale=scale, seed=seed,
        )

    return factory


def _resco_scenario(name: str) -> ScenarioFactory:
    route, begin, end = RESCO[name]

    def factory(
        *, demand: str | None, seed: int, duration: float | None, scale: float
    ) -> ScenarioSpec:
        if demand not in (None, "default") or scale != 1.0:
            msg = f"RESCO scenario {name!r} has fixed demand; drop --demand/--scale"
            raise ScenarioError(msg)
        folder = resco_dir(name)
        return ScenarioSpec(
            name=name, net=folder / f"{name}.net.xml", routes=(folder / route,),
            begin=begin, end=end, seed=seed,
        )

    return factory


register("pilot128", _grid_scenario("pilot128", left_bay_m=40.0, peak_veh_h=PILOT_PEAK_VEH_H))
# The exact recipe of shared/BENCHMARKS.md (no turn bays, randomTrips -p 0.15 = 24,000 veh/h),
# kept to check that this harness reproduces the published fixed-time figures.
register("pilot128_ref", _grid_scenario("pilot128_ref", left_bay_m=0.0, peak_veh_h=24000.0))
for _name in RESCO:
    register(_name, _resco_scenario(_name))
