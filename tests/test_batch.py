"""Batches: spec validation, resume by key, failed runs recorded, Parquet schema, Dask = pool."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sim.batch import BatchSpecError, load_spec, plan_batch, read_results, run_batch, write_part

SUMOCFG = """<configuration><input>
  <net-file value="net.net.xml"/><route-files value="{routes}"/>
</input><time><begin value="0"/><end value="120"/></time></configuration>"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2x2 SUMO grid, 120 s of light demand, and a twin whose route file is broken."""
    from scenarios.demand import write_routes
    from scenarios.grid import generate_grid

    d = tmp_path_factory.mktemp("tiny")
    net = generate_grid(d / "net.net.xml", x=2, y=2)
    write_routes(net, d / "r.rou.xml", rates_veh_h=(600.0,), seed=1, end_s=120)
    (d / "bad.rou.xml").write_text("<routes><vehicle id='a' depart='0' route='nope'/></routes>")
    (d / "tiny.sumocfg").write_text(SUMOCFG.format(routes="r.rou.xml"))
    (d / "broken.sumocfg").write_text(SUMOCFG.format(routes="bad.rou.xml"))
    return d


def write_spec(folder: Path, body: str) -> Path:
    path = folder / "spec.toml"
    path.write_text(body)
    return path


SPEC = """
name = "t"
scenarios = ["tiny.sumocfg"]
controllers = ["fixed", "maxpressure"]
seeds = [1, 2]
keep_frames = false
"""


def test_spec_errors_name_the_culprit(tmp_path: Path) -> None:
    """Unknown keys, controllers and engine parameters fail before anything runs."""
    cases = {
        'scenarios = ["x"]\ncontrolers = ["fixed"]': "controlers",
        'scenarios = ["x"]\ncontrollers = ["nope"]': "nope",
        'scenarios = ["x"]\ncontrollers = ["signalopt"]\n[params.signalopt]\nbogus = [1]': "bogus",
        'scenarios = ["x"]\n[params.warp]\na = 1': "warp",
        'scenarios = ["x"]\ncontrollers = ["signalopt"]\n[params.signalopt]\nlocal_control = ["x"]':
            "local_control",
        "controllers = [": "malformed TOML",
    }
    for body, culprit in cases.items():
        with pytest.raises(BatchSpecError, match=culprit):
            load_spec(write_spec(tmp_path, body))
    with pytest.raises(BatchSpecError, match="not readable"):
        load_spec(tmp_path / "missing.toml")


def test_product_of_parameters(tiny: Path) -> None:
    """fixed x 2 seeds + signalopt x 2 local_control values x 2 seeds: 2 + 4 = 6 keys."""
    spec = load_spec(write_spec(tiny, SPEC.replace('"maxpressure"', '"signalopt"') +
                                '[params.signalopt]\nlocal_control = ["fixed", "pressure"]\n'))
    tasks = plan_batch(spec, tiny / "out", base=tiny)
    slugs = [t.key.slug for t in tasks]
    assert len(slugs) == len(set(slugs)) == 6
    assert sum("local_controlpressure" in s for s in slugs) == 2


def test_the_simulator_s_own_signalopt_keywords_are_accepted(tiny: Path) -> None:
    """Keywords of the SUMO-side controller (not the engine's optimizer) are parameters too:
    two values of ``gap_permissive`` x 2 seeds, next to fixed x 2 seeds."""
    spec = load_spec(write_spec(tiny, SPEC.replace('"maxpressure"', '"signalopt"') +
                                '[params.signalopt]\ngap_permissive = [0.25, 2.0]\ngap_sat_y = 0.9\n'))
    assert len(plan_batch(spec, tiny / "out", base=tiny)) == 6


@pytest.mark.sumo
def test_resume_skips_finished_and_records_failures(tiny: Path) -> None:
    """4 keys (2 scenarios x 2 seeds, fixed). A part already written for one key is kept and
    not rerun; the broken scenario's 2 runs are recorded as failed (the batch goes on, in
    the 2-process pool) and only they are retried on resume."""
    out = tiny / "resume"
    spec = write_spec(tiny, SPEC.replace('["tiny.sumocfg"]', '["tiny.sumocfg", "broken.sumocfg"]')
                      .replace('"fixed", "maxpressure"', '"fixed"'))
    tasks = plan_batch(load_spec(spec), out, base=tiny)
    assert len(tasks) == 4
    fake = {"key": tasks[0].key.slug, "status": "ok", "error": "", "mean_delay_s": -1.0}
    write_part(out / "runs", fake)
    first = run_batch(spec, out, workers=2)
    assert (first.planned, first.skipped, first.ran, first.failed) == (4, 1, 3, 2)
    df = read_results(out)
    assert len(df) == 4 and df["key"].is_unique
    assert df.loc[df["key"] == tasks[0].key.slug, "mean_delay_s"].item() == -1.0  # not rerun
    failed = df[df["status"] == "failed"]
    assert set(failed["scenario"]) == {"broken"}
    assert failed["error"].str.contains("route 'nope'").all()
    again = run_batch(spec, out, workers=1)
    assert (again.skipped, again.ran, again.failed) == (2, 2, 2)  # only the failed ones again
    assert len(read_results(out)) == 4


@pytest.mark.sumo
def test_parquet_schema_and_dask_matches_pool(tiny: Path) -> None:
    """One row per run with every key field, parameter and metric; the same batch on a
    Dask LocalCluster (1 thread per worker process) gives identical metrics."""
    distributed = pytest.importorskip("distributed")
    spec = write_spec(tiny, SPEC)
    pool = run_batch(spec, tiny / "pool", workers=1)
    assert pool.failed == 0
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        dask = run_batch(spec, tiny / "dask", scheduler=cluster)
    assert dask.ran == 4 and dask.failed == 0
    a, b = read_results(tiny / "pool"), read_results(tiny / "dask")
    for col in ("key", "scenario", "demand", "scale", "controller", "seed", "duration", "params",
                "mean_delay_s", "scheduled", "arrived", "status", "error", "wall_s"):
        assert col in a.columns, col
    metrics = ["key", "mean_delay_s", "mean_travel_time_s", "scheduled", "arrived", "teleports"]
    pd.testing.assert_frame_equal(a[metrics], b[metrics])


def test_cli_bad_spec_exits_2(tmp_path: Path) -> None:
    """``signalopt batch`` on a spec with an unknown key: exit code 2, the key named."""
    from typer.testing import CliRunner

    from signalopt.cli import app

    spec = write_spec(tmp_path, 'scenarios = ["pilot128"]\nseed = [1]\n')
    res = CliRunner().invoke(app, ["batch", str(spec), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert "seed" in res.output
