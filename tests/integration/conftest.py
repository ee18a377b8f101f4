"""Tiny SUMO scenarios built by netconvert for integration tests (hand-checkable)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios.registry import ScenarioSpec
from scenarios.sumo_tools import run_checked, sumo_binary

# One straight road A -> B -> C with a signal at B. Both links 500 m / 200 m, 1 lane, 13.89 m/s.
NODES = """<nodes>
  <node id="A" x="0" y="0"/><node id="B" x="500" y="0" type="traffic_light"/><node id="C" x="700" y="0"/>
</nodes>"""
EDGES = """<edges>
  <edge id="AB" from="A" to="B" numLanes="1" speed="13.89"/>
  <edge id="BC" from="B" to="C" numLanes="1" speed="13.89"/>
</edges>"""
# red 60 s then green 30 s (one signal index: AB -> BC), cycle 90 s
TLS = """<additional>
  <tlLogic id="B" type="static" programID="test" offset="0">
    <phase duration="60" state="r"/>
    <phase duration="30" state="G"/>
  </tlLogic>
</additional>"""
# deterministic cars: no driver imperfection, exactly the speed limit
ROUTES = """<routes>
  <vType id="exact" sigma="0" speedFactor="1" speedDev="0" accel="2.6" decel="4.5"/>
  <route id="r" edges="AB BC"/>
  <vehicle id="red" type="exact" route="r" depart="0" departSpeed="max"/>
  <vehicle id="green" type="exact" route="r" depart="30" departSpeed="max"/>
  <vehicle id="late" type="exact" route="r" depart="170" departSpeed="max"/>
</routes>"""


@pytest.fixture(scope="session")
def one_signal(tmp_path_factory: pytest.TempPathFactory) -> ScenarioSpec:
    """A single signalised intersection with three hand-placed vehicles, 180 s."""
    d: Path = tmp_path_factory.mktemp("one_signal")
    (d / "n.nod.xml").write_text(NODES)
    (d / "e.edg.xml").write_text(EDGES)
    (d / "tls.add.xml").write_text(TLS)
    (d / "r.rou.xml").write_text(ROUTES)
    run_checked([sumo_binary("netconvert"), "-n", str(d / "n.nod.xml"), "-e", str(d / "e.edg.xml"),
                 "-o", str(d / "net.net.xml"), "--no-warnings"], what="netconvert")
    return ScenarioSpec(name="one_signal", net=d / "net.net.xml", routes=(d / "r.rou.xml",),
                        additionals=(d / "tls.add.xml",), begin=0, end=180, seed=1)
