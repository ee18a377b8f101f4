"""CLI errors: unknown names and broken files give a clear message and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from signalopt.cli import app

runner = CliRunner()


def test_unknown_scenario() -> None:
    res = runner.invoke(app, ["simulate", "atlantis", "--controller", "fixed"])
    assert res.exit_code == 2
    assert "unknown scenario 'atlantis'" in res.output
    assert "pilot128" in res.output  # lists what exists


def test_unknown_controller() -> None:
    res = runner.invoke(app, ["simulate", "pilot128", "--controller", "magic"])
    assert res.exit_code == 2
    assert "unknown controller 'magic'" in res.output
    res = runner.invoke(app, ["compare", "pilot128", "--controllers", "fixed,magic"])
    assert res.exit_code == 2
    assert "magic" in res.output


def test_missing_sumocfg(tmp_path: Path) -> None:
    res = runner.invoke(app, ["simulate", str(tmp_path / "nope.sumocfg")])
    assert res.exit_code == 2
    assert "sumocfg not found" in res.output


def test_malformed_sumocfg(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sumocfg"
    bad.write_text("<configuration><input><net-file value='x.net.xml'/>")
    res = runner.invoke(app, ["simulate", str(bad)])
    assert res.exit_code == 2
    assert "malformed sumocfg" in res.output


def test_sumocfg_naming_missing_net(tmp_path: Path) -> None:
    cfg = tmp_path / "a.sumocfg"
    cfg.write_text('<configuration><input><net-file value="missing.net.xml"/></input></configuration>')
    res = runner.invoke(app, ["simulate", str(cfg)])
    assert res.exit_code == 2
    assert "missing.net.xml" in res.output


def test_bad_demand_profile() -> None:
    res = runner.invoke(app, ["simulate", "pilot128", "--demand", "rush"])
    assert res.exit_code == 2
    assert "unknown demand profile 'rush'" in res.output


def test_broken_network_file(tmp_path: Path) -> None:
    net = tmp_path / "broken.net.xml"
    net.write_text("<net><edge id='a'")
    cfg = tmp_path / "b.sumocfg"
    cfg.write_text(f'<configuration><input><net-file value="{net.name}"/></input></configuration>')
    res = runner.invoke(app, ["simulate", str(cfg)])
    assert res.exit_code == 2
    assert "cannot read SUMO network" in res.output


def test_unknown_detector_layout() -> None:
    res = runner.invoke(app, ["simulate", "pilot128", "--detectors", "radar"])
    assert res.exit_code == 2
    assert "unknown detector layout 'radar'" in res.output
    assert "stopline+camera" in res.output  # lists what exists
    res = runner.invoke(app, ["compare", "pilot128", "--controllers", "fixed", "--detectors", "radar"])
    assert res.exit_code == 2
    assert "unknown detector layout 'radar'" in res.output


def test_a_share_of_broken_detectors_outside_0_to_1_is_refused() -> None:
    res = runner.invoke(app, ["simulate", "pilot128", "--failed", "1.5"])
    assert res.exit_code == 2
    assert "--failed" in res.output and "less than or equal to 1" in res.output


def test_qa_names_a_missing_file(tmp_path: Path) -> None:
    res = runner.invoke(app, ["qa", "--network", str(tmp_path / "none.net.xml"),
                              "--counts", str(tmp_path / "c.csv")])
    assert res.exit_code == 2
    assert "network file not found" in res.output


def test_a_bad_site_detector_file_is_named_before_any_run(tmp_path: Path) -> None:
    """``simulate --detector-file`` reads the site's file first: a detector on a lane the
    network lacks ends the command with the detector and the lane named."""
    from scenarios.demand import write_routes
    from scenarios.grid import generate_grid

    net = generate_grid(tmp_path / "net.net.xml", x=2, y=2)
    write_routes(net, tmp_path / "r.rou.xml", rates_veh_h=(300.0,), seed=1, end_s=60)
    cfg = tmp_path / "g.sumocfg"
    cfg.write_text('<configuration><input><net-file value="net.net.xml"/>'
                   '<route-files value="r.rou.xml"/></input></configuration>')
    site = tmp_path / "site.add.xml"
    site.write_text('<additional><inductionLoop id="x" lane="nope_0" pos="5"/></additional>')
    res = runner.invoke(app, ["simulate", str(cfg), "--detector-file", str(site)])
    assert res.exit_code == 2
    assert "inductionLoop 'x': lane 'nope_0' is not a lane" in " ".join(res.output.split())
