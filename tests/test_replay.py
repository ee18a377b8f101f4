"""Replay: live (SUMO) scans are reproduced exactly; offline replay of a counts file; errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signalopt.errors import CountsError
from signalopt.io.counts import detector_interval
from sim.replay import FRAMES, detector_health, replay_file, scan_windows

SUMOCFG = """<configuration><input>
  <net-file value="net.net.xml"/><route-files value="r.rou.xml"/>
</input><time><begin value="0"/><end value="360"/></time></configuration>"""


def test_scan_windows_hand_checked() -> None:
    """30 s intervals starting 0..330, scans every 120 s: scan 120 takes the intervals ending
    at 30..120 (starts 0..90), as the live driver and the SUMO harness do."""
    counts = pd.DataFrame({"interval_start": np.arange(0.0, 360.0, 30.0)})
    plain = {t: list(w["interval_start"]) for t, w in scan_windows(counts, scan_s=120,
                                                                   interval_s=30)}
    assert plain == {120.0: [0, 30, 60, 90], 240.0: [120, 150, 180, 210],
                     360.0: [240, 270, 300, 330]}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A 2x2 grid under the engine for 360 s (3 scans), through the ``sim.run`` API."""
    import sim
    from scenarios.demand import write_routes
    from scenarios.grid import generate_grid

    d = tmp_path_factory.mktemp("replay")
    net = generate_grid(d / "net.net.xml", x=2, y=2)
    write_routes(net, d / "r.rou.xml", rates_veh_h=(900.0,), seed=3, end_s=360)
    (d / "g.sumocfg").write_text(SUMOCFG)
    return d, sim.run(str(d / "g.sumocfg"), "signalopt", seed=3)


@pytest.mark.sumo
def test_live_replay_matches_controller_and_is_consistent(live: tuple[Path, object]) -> None:
    """replay_scenario already checked the scans against the controller's log (it raises
    otherwise). 4 intersections x 3 scans plan rows; greens+clearances of each plan sum to
    its cycle; cycle_change is the difference of consecutive cycles."""
    _, rep = live
    assert list(rep.scans["t"]) == [120.0, 240.0, 360.0]
    assert len(rep.plans) == 4 * 3
    sums = rep.phases.groupby(["t", "intersection"])["duration"].sum()
    cyc = rep.plans.set_index(["t", "intersection"])["cycle"]
    np.testing.assert_allclose(sums.loc[cyc.index].to_numpy(), cyc.to_numpy())
    wide = cyc.unstack("intersection")
    np.testing.assert_allclose(rep.plans.set_index(["t", "intersection"])["cycle_change"]
                               .unstack("intersection").to_numpy()[1:], np.diff(wide.to_numpy(),
                                                                                axis=0))
    assert rep.metrics["controller"] == "signalopt" and len(rep.trips) > 0


@pytest.mark.sumo
def test_offline_replay_of_recorded_counts(live: tuple[Path, object], tmp_path: Path) -> None:
    """The counts the live run recorded, replayed offline from Parquet: one scan per 120 s
    window, every frame written; a bad row is rejected with a message naming it."""
    d, rep = live
    rep.counts.to_parquet(tmp_path / "c.parquet")
    off = replay_file(tmp_path / "c.parquet", d / "net.net.xml")
    assert list(off.scans["t"]) == [120.0, 240.0, 360.0]
    files = off.write(tmp_path / "out")
    assert set(files) == set(FRAMES)
    per_scan = pd.read_parquet(files["movements"]).groupby("t").size()
    assert per_scan.nunique() == 1 and per_scan.iloc[0] == len(off.movements) // 3
    bad = rep.counts.copy()
    bad.loc[bad.index[5], "detector_id"] = "no_such_detector"
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(CountsError, match="no_such_detector"):
        replay_file(tmp_path / "bad.parquet", d / "net.net.xml")
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
        replay_file(tmp_path / "missing.parquet", d / "net.net.xml")


@pytest.mark.sumo
def test_a_recording_at_60_s_is_read_at_60_s(live: tuple[Path, object], tmp_path: Path) -> None:
    """The live run's 30 s counts summed into 60 s intervals (occupancy and speed averaged):
    QA and the replay read them at 60 s. At the engine's default 30 s every other interval
    would be missing, and every detector flagged as silent in every scan."""
    d, rep = live
    c = rep.counts.assign(interval_start=rep.counts["interval_start"] // 60 * 60)
    c60 = c.groupby(["detector_id", "interval_start"], as_index=False).agg(
        count=("count", "sum"), occupancy=("occupancy", "mean"), speed=("speed", "mean"))
    c60.to_parquet(tmp_path / "c60.parquet")
    assert detector_interval(c60) == 60.0 and detector_interval(rep.counts) == 30.0
    health = detector_health(d / "net.net.xml", tmp_path / "c60.parquet")
    assert (health["no_data_%"] == 0).all()
    off = replay_file(tmp_path / "c60.parquet", d / "net.net.xml")
    assert list(off.scans["t"]) == [120.0, 240.0, 360.0]
    assert off.scans["network_vehicles"].notna().all()


@pytest.mark.sumo
def test_a_recording_whose_interval_does_not_tile_the_scan_is_refused(
        live: tuple[Path, object], tmp_path: Path) -> None:
    """Summed into 45 s intervals the recording cannot close a 120 s scan on an interval's
    end: replay and QA refuse it, naming the interval, instead of scanning every 135 s."""
    from typer.testing import CliRunner

    from signalopt.cli import app

    d, rep = live
    c = rep.counts.assign(interval_start=rep.counts["interval_start"] // 45 * 45)
    c45 = c.groupby(["detector_id", "interval_start"], as_index=False).agg(
        count=("count", "sum"), occupancy=("occupancy", "mean"), speed=("speed", "mean"))
    c45.to_parquet(tmp_path / "c45.parquet")
    with pytest.raises(CountsError, match="every 45 s"):
        replay_file(tmp_path / "c45.parquet", d / "net.net.xml")
    net, counts = ["--network", str(d / "net.net.xml")], str(tmp_path / "c45.parquet")
    for args in (["replay", counts, *net], ["qa", *net, "--counts", counts]):
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / args[0])])
        assert res.exit_code != 0 and "every 45 s" in " ".join(res.output.split()), res.output


@pytest.mark.sumo
def test_a_site_described_by_its_own_detector_file(live: tuple[Path, object],
                                                   tmp_path: Path) -> None:
    """The harness's detectors written as a SUMO additional file read back as the same
    detectors (ids, lanes, kinds; positions to the file's 0.01 m). With that file, QA on the
    live recording flags exactly what it flags with the virtual layout, and ``signalopt qa``
    and ``signalopt replay --detector-file`` run; a file that lacks a recorded detector makes
    its rows an error naming one."""
    from typer.testing import CliRunner

    from signalopt.cli import app
    from signalopt.io.sumo_detectors import read_sumo_detectors
    from sim.detectors import (
        DetectorLayout,
        instrumented_network,
        write_detector_file,
    )

    d, rep = live
    spec = instrumented_network(d / "net.net.xml")
    add = write_detector_file(spec.detectors, tmp_path / "site.add.xml", interval_s=30.0)
    back = {x.id: x for x in read_sumo_detectors(add, spec)}
    assert set(back) == {x.id for x in spec.detectors}
    for x in spec.detectors:
        y = back[x.id]
        assert (y.link, y.lane, y.kind) == (x.link, x.lane, x.kind), x.id
        assert abs(y.pos - x.pos) <= 0.01 and abs(y.length - x.length) <= 0.02, x.id
    rep.counts.to_parquet(tmp_path / "c.parquet")
    own = detector_health(d / "net.net.xml", tmp_path / "c.parquet",
                          layout=DetectorLayout(site_file=add))
    virtual = detector_health(d / "net.net.xml", tmp_path / "c.parquet")
    cols = [c for c in virtual.columns if c.endswith("_%") or c in ("detector_id", "scans")]
    pd.testing.assert_frame_equal(own[cols], virtual[cols])
    net = ["--network", str(d / "net.net.xml"), "--detector-file", str(add)]
    for args in (["qa", "--counts", str(tmp_path / "c.parquet"), *net],
                 ["replay", str(tmp_path / "c.parquet"), *net]):
        res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / args[0])])
        assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(tmp_path / "replay" / "scans.parquet")) == 3
    lacking = write_detector_file(spec.detectors[1:], tmp_path / "less.add.xml", interval_s=30.0)
    with pytest.raises(CountsError, match="unknown detector"):
        replay_file(tmp_path / "c.parquet", d / "net.net.xml",
                    layout=DetectorLayout(site_file=lacking))


@pytest.mark.sumo
def test_replay_cli_offline(live: tuple[Path, object], tmp_path: Path) -> None:
    """``signalopt replay COUNTS --network NET`` writes the frames; without --network it fails."""
    from typer.testing import CliRunner

    from signalopt.cli import app

    d, rep = live
    rep.counts.to_parquet(tmp_path / "c.parquet")
    ok = CliRunner().invoke(app, ["replay", str(tmp_path / "c.parquet"), "--network",
                                  str(d / "net.net.xml"), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "o" / "plans.parquet").is_file()
    bad = CliRunner().invoke(app, ["replay", str(tmp_path / "c.parquet")])
    assert bad.exit_code != 0


@pytest.mark.sumo
def test_offline_replay_of_a_site_with_some_detector_kinds(live: tuple[Path, object],
                                                          tmp_path: Path) -> None:
    """A site with stop-line loops and cameras but no entry loops records only those rows:
    replayed with that layout, every scan runs; the full recording does not fit it (its entry
    loop rows are rejected, naming one)."""
    from sim.detectors import named_layout

    d, rep = live
    layout = named_layout("stopline+camera")
    site = rep.counts[~rep.counts["detector_id"].str.endswith("_in")]
    site.to_parquet(tmp_path / "site.parquet")
    off = replay_file(tmp_path / "site.parquet", d / "net.net.xml", layout=layout)
    assert list(off.scans["t"]) == [120.0, 240.0, 360.0]
    assert off.scans["network_vehicles"].notna().all()
    rep.counts.to_parquet(tmp_path / "all.parquet")
    with pytest.raises(CountsError, match="_in"):
        replay_file(tmp_path / "all.parquet", d / "net.net.xml", layout=layout)


def test_qa_cli_finds_a_detector_that_fell_silent(tmp_path: Path) -> None:
    """End to end on a 2x2 SUMO grid with counts recorded by the harness, one stop-line loop's
    rows dropped from 240 s on: ``signalopt qa`` puts it first, with no data in the scans
    after that (4 of 8 here) and flagged at the end, and writes the table."""
    from typer.testing import CliRunner

    from scenarios.demand import write_routes
    from scenarios.grid import generate_grid
    from scenarios.registry import ScenarioSpec
    from signalopt.cli import app
    from sim.runner import run_simulation

    net = generate_grid(tmp_path / "net.net.xml", x=2, y=2)
    routes = write_routes(net, tmp_path / "r.rou.xml", rates_veh_h=(900.0,), seed=2, end_s=960)
    spec = ScenarioSpec(name="g", net=net, routes=(routes,), end=960)
    counts = run_simulation(spec, "fixed").counts
    dead = sorted(d for d in counts["detector_id"].unique() if d.endswith("_stop"))[0]
    counts = counts[~((counts["detector_id"] == dead) & (counts["interval_start"] >= 480.0))]
    counts.to_parquet(tmp_path / "c.parquet")
    res = CliRunner().invoke(app, ["qa", "--network", str(net), "--counts",
                                   str(tmp_path / "c.parquet"), "--out", str(tmp_path / "qa")])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(tmp_path / "qa" / "detector_health.csv")
    top = table.iloc[0]
    assert top["detector_id"] == dead and top["kind"] == "stopline"
    assert top["no_data_%"] == pytest.approx(100 * 4 / table["scans"].iloc[0])
    assert bool(top["flagged_now"]) and top["first_t"] == 600.0
    assert (table["flagged_%"].iloc[1:] < top["flagged_%"]).all()
    assert dead in res.output
