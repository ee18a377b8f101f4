"""Live driver: counts -> (fake) scan -> validate -> publish, on simulated and wall-clock time.

The fake scan gives intersection A greens ns = 30 + 5k, ew = 30 - 5k on its k-th call
(k = 1, 2, ...) and B the base timing; each change (5 s) is within the 15 s per-scan bound.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from service_fixtures import scan_plan, tiny_spec

from signalopt.live import LiveDriver, engine_scan
from signalopt.network import CompiledNetwork, compile_network
from signalopt.plan import PlanLimits, TimingPlan
from signalopt.store import CountRow
from signalopt.store_memory import MemoryPlanStore

NET = compile_network(tiny_spec())


class FakeScan:
    """Records what it was given; returns plans versioned by its own call count."""

    def __init__(self, *, bad_at: int | None = None, fail_at: int | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.bad_at, self.fail_at = bad_at, fail_at

    def __call__(self, net: CompiledNetwork, counts: pd.DataFrame, state: Any, *, t: float,
                 frozen: np.ndarray) -> tuple[list[TimingPlan], Any]:
        k = len(self.calls) + 1
        self.calls.append({"t": t, "n": len(counts), "state": state, "frozen": frozen.tolist()})
        if k == self.fail_at:
            msg = "estimator blew up"
            raise RuntimeError(msg)
        ns = 30.0 + 5 * k if k != self.bad_at else 60.0 + 5 * k  # +30 s jump breaks the bound
        plans = [scan_plan("A", k, created_at=t, ns=ns, ew=30.0 - 5 * k if ns < 60 else 10.0),
                 scan_plan("B", k, created_at=t)]
        return plans, k


def _driver(scan: Any, **kw: Any) -> tuple[LiveDriver, MemoryPlanStore]:
    store = MemoryPlanStore()
    return LiveDriver(store, NET, scan=scan, limits=PlanLimits(), **kw), store


def test_step_reads_its_window_publishes_and_threads_state() -> None:
    scan = FakeScan()
    driver, store = _driver(scan)
    store.add_counts([CountRow("w_A_in", t, 3, 1.0, 10.0) for t in (0.0, 90.0, 120.0, 150.0)])
    rep = driver.step(120.0)
    assert (rep.n_counts, rep.published, rep.rejected) == (2, ["A", "B"], [])
    assert scan.calls[0] == {"t": 120.0, "n": 2, "state": None, "frozen": [False, False]}
    driver.step(240.0)
    assert scan.calls[1]["state"] == 1  # state handed from one scan to the next
    assert scan.calls[1]["n"] == 2  # 120 and 150
    assert store.current("A").phases[0].duration == 40.0  # type: ignore[union-attr]
    assert store.audit(limit=1)[0].detail == "scan at t=240"


def test_frozen_intersection_is_never_changed_by_the_scan() -> None:
    scan = FakeScan()
    driver, store = _driver(scan)
    driver.step(120.0)
    store.freeze("A", actor="eve", reason="works")
    rep = driver.step(240.0)
    assert scan.calls[1]["frozen"] == [True, False]
    assert rep.published == ["B"]
    assert "frozen" in rep.skipped["A"]
    assert store.current_version("A") == 1
    store.unfreeze("A", actor="eve")
    assert driver.step(360.0).published == ["A", "B"]


def test_invalid_plan_is_never_stored() -> None:
    driver, store = _driver(FakeScan(bad_at=2))
    driver.step(120.0)
    rep = driver.step(240.0)
    assert rep.published == ["B"]
    assert any("green changed more than" in p for p in rep.rejected)
    assert store.current("A").version == 1  # type: ignore[union-attr]  # v1 stays, expires at 360


def test_versions_renumbered_above_the_store() -> None:
    """An engineer plan v1..v5 exists; a restarted scan (its own v1) must publish v6."""
    driver, store = _driver(FakeScan())
    store.publish([scan_plan("A", v, source="engineer") for v in range(1, 6)], actor="eve")
    rep = driver.step(120.0)
    assert rep.published == ["A", "B"]
    assert store.current_version("A") == 6


def test_expired_previous_plan_does_not_bound_the_change() -> None:
    """Plan v1 (ns 35) expired at 360; at 1200 a jump to ns 60+ is checked against nothing."""
    driver, _ = _driver(FakeScan(bad_at=2))
    driver.step(120.0)
    assert driver.step(1200.0).published == ["A", "B"]


def test_approval_mode_stores_pending() -> None:
    driver, store = _driver(FakeScan(), require_approval=True)
    driver.step(120.0)
    assert store.current("A") is None
    assert store.get("A", 1).status == "pending"  # type: ignore[union-attr]


def test_advance_runs_each_boundary_and_survives_a_failed_scan() -> None:
    scan = FakeScan(fail_at=2)
    driver, store = _driver(scan)
    reps = driver.advance(50.0)
    assert reps == []
    reps = driver.advance(400.0)
    assert [r.t for r in reps] == [120.0, 240.0, 360.0]
    assert reps[1].error == "RuntimeError: estimator blew up"
    assert store.current_version("A") == 3


def test_run_follows_a_clock_until_stopped() -> None:
    ticks = iter(np.arange(0.0, 10_000.0, 40.0))
    stop = threading.Event()
    scan = FakeScan()
    driver, _ = _driver(scan)

    def clock() -> float:
        if len(scan.calls) >= 3:
            stop.set()
        return float(next(ticks))

    thread = threading.Thread(target=driver.run, args=(stop,), kwargs={"clock": clock,
                                                                      "lag_s": 0.0,
                                                                      "poll_s": 0.001})
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [c["t"] for c in scan.calls] == [120.0, 240.0, 360.0]


def test_engine_scan_publishes_valid_plans() -> None:
    """The real scan on the tiny corridor: its plans pass the validator and get stored."""
    pytest.importorskip("signalopt.scan")
    driver, store = _driver(engine_scan())
    rows = [CountRow(d, float(t), 5, 8.0, 10.0) for t in range(0, 120, 30) for d in NET.det_ids]
    store.add_counts(rows)
    rep = driver.step(120.0)
    assert rep.rejected == []
    assert sorted(rep.published) == ["A", "B"]
    assert store.current("A").valid_until == 360.0  # type: ignore[union-attr]


def test_serve_command_fails_kindly(tmp_path: Any) -> None:
    """``signalopt serve`` names what is missing instead of a traceback."""
    import typer
    from typer.testing import CliRunner

    from signalopt.serve_cmd import load_network, serve

    app = typer.Typer()
    app.command("serve")(serve)
    app.command("noop")(lambda: None)  # two commands, so "serve" is addressed by name
    runner = CliRunner()
    out = runner.invoke(app, ["serve", "--db", str(tmp_path / "p.sqlite")])
    assert out.exit_code == 2
    assert "give --network FILE" in out.output
    bad = tmp_path / "keys.json"
    bad.write_text('[{"name": "x", "role": "boss", "key_sha256": "00"}]')
    out = runner.invoke(app, ["serve", "--keys", str(bad), "--network", "n.json"])
    assert out.exit_code == 2
    assert f"keys file {bad}" in out.output
    net_file = tmp_path / "net.json"
    net_file.write_text(tiny_spec().model_dump_json())
    assert load_network(net_file).int_ids == ("A", "B")
    site = tmp_path / "site.add.xml"  # the site's own detectors replace the network's
    site.write_text('<additional><inductionLoop id="wA" lane="w_A_0" pos="5"/>'
                    '<laneAreaDetector id="camA" lane="w_A_0" pos="20" endPos="-1"/></additional>')
    assert load_network(net_file, site).det_ids == ("wA", "camA")
    out = runner.invoke(app, ["serve", "--network", str(net_file), "--detector-file",
                              str(tmp_path / "none.add.xml")])
    assert out.exit_code == 2
    assert "detector file not found" in out.output
    out = runner.invoke(app, ["serve", "--replay", "pilot128", "--detector-file", str(site)])
    assert out.exit_code == 2
    assert "--detector-file goes with --network" in out.output
    out = runner.invoke(app, ["serve", "--network", str(net_file), "--interval", "50"])
    assert out.exit_code == 2
    assert "--interval 50 must divide --scan-s 120" in out.output


def test_a_detector_that_falls_silent_is_reported_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """The real scan on the tiny corridor: one detector stops sending rows in the second scan.
    Its report names it (no data) from then on, the warning is logged once, not every scan,
    and its recovery is logged when its rows come back."""
    seen: list[Any] = []
    driver, store = _driver(engine_scan(), on_report=seen.append)
    dead = NET.det_ids[0]

    def rows(t0: float, skip: bool) -> list[CountRow]:
        # varying counts (a loop repeating one non-zero value is stuck)
        return [CountRow(d, float(t), 3 + (t // 30 + k) % 4, 2.0 * (3 + (t // 30 + k) % 4), 10.0)
                for t in range(int(t0), int(t0) + 120, 30)
                for k, d in enumerate(NET.det_ids) if not (skip and d == dead)]

    store.add_counts(rows(0, skip=False) + rows(120, skip=True) + rows(240, skip=True)
                     + rows(360, skip=False))
    with caplog.at_level("INFO", logger="signalopt.live"):
        reps = [driver.step(t) for t in (120.0, 240.0, 360.0, 480.0)]
    assert [r.flagged.get(dead) for r in reps] == [None, "no_data", "no_data", None]
    warned = [m for m in caplog.messages if "flagged by QA" in m]
    assert warned == [f"detector {dead} flagged by QA: no_data (its values are imputed)"]
    assert f"detector {dead} healthy again" in caplog.messages
    assert seen == reps  # each report handed on (``signalopt serve`` exports it as metrics)


def test_flagged_detectors_exported_as_gauges() -> None:
    """One scan's verdict ``{A: no_data, B: stuck,chatter, C: stuck}`` sets the gauges: 3
    flagged, 2 stuck, 1 no_data, 1 chatter, 0 for flags nobody has."""
    pytest.importorskip("prometheus_client")
    from signalopt.detectors import FLAG_NAMES
    from signalopt.service_metrics import Metrics

    m = Metrics()
    m.record_flags({"A": "no_data", "B": "stuck,chatter", "C": "stuck"}, tuple(FLAG_NAMES.values()))
    text = m.render()[0].decode()
    for flag, n in (("any", 3), ("stuck", 2), ("no_data", 1), ("chatter", 1), ("implausible", 0)):
        assert f'signalopt_detectors_flagged{{flag="{flag}"}} {n:.1f}' in text
    m.record_flags({}, tuple(FLAG_NAMES.values()))  # all healthy again: back to 0
    assert 'signalopt_detectors_flagged{flag="stuck"} 0.0' in m.render()[0].decode()
