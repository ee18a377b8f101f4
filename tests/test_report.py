"""Reports from hand-made batch results (no SUMO): CI, paired change vs fixed, headroom, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.batch import write_part
from sim.report import headroom, mean_ci, summarize, write_report

# delay per (controller, scale, seed): signalopt is 10 % below fixed for every seed
DELAY = {("fixed", 1.0): [10.0, 20.0, 40.0], ("signalopt", 1.0): [9.0, 18.0, 36.0],
         ("fixed", 1.2): [30.0, 40.0, 50.0], ("signalopt", 1.2): [15.0, 20.0, 25.0]}


def make_results(out: Path) -> None:
    for (ctrl, scale), delays in DELAY.items():
        for seed, d in zip((1, 2, 3), delays, strict=True):
            key = f"g-peak-x{scale:g}-{ctrl}-s{seed}"
            write_part(out / "runs", {
                "key": key, "scenario": "g", "demand": "peak", "scale": scale,
                "controller": ctrl, "seed": seed, "duration": 600.0, "params": "{}",
                "mean_delay_s": d, "mean_travel_time_s": d + 60, "throughput_veh_h": 1000.0,
                "delay_index": 1 + d / 60, "status": "ok", "error": ""})
            frames = out / "frames" / key
            frames.mkdir(parents=True)
            pd.DataFrame({"t": [120.0, 240.0], "in_transit": [seed * 10.0, seed * 20.0]}
                         ).to_parquet(frames / "totals.parquet")
            pd.DataFrame({"scheduled_depart": [10.0, 400.0], "delay": [d, d]}
                         ).to_parquet(frames / "trips.parquet")
    write_part(out / "runs", {"key": "g-broken", "scenario": "g", "demand": "peak", "scale": 1.0,
                              "controller": "fixed", "seed": 9, "duration": 600.0, "params": "{}",
                              "status": "failed", "error": "TraCIException: boom"})


def test_mean_ci_hand_checked() -> None:
    """[10, 12, 14]: mean 12, s = 2, sem = 2/sqrt(3) = 1.1547, t(0.975, 2) = 4.3027 ->
    half-width 4.968. One value: no interval."""
    m, h = mean_ci(np.array([10.0, 12.0, 14.0]))
    assert m == pytest.approx(12.0)
    assert h == pytest.approx(4.3027 * 2 / np.sqrt(3), rel=1e-4)
    assert np.isnan(mean_ci(np.array([5.0]))[1])


def test_summary_paired_change_and_headroom(tmp_path: Path) -> None:
    """signalopt/fixed = 0.9 for every seed at x1: change -10 % with a zero-width interval
    (pairing by seed removes the seed-to-seed spread). Fixed at x1 has mean delay 23.3 s;
    signalopt stays below it up to x1.2 (mean 20 s), fixed only at x1."""
    make_results(tmp_path)
    from sim.batch import read_results

    s = summarize(read_results(tmp_path))
    row = s[(s["controller"] == "signalopt") & (s["scale"] == 1.0)].iloc[0]
    assert row["runs"] == 3
    assert row["delay_vs_fixed_pct"] == pytest.approx(-10.0)
    assert row["delay_vs_fixed_ci"] == pytest.approx(0.0, abs=1e-9)
    assert row["mean_delay_s"] == pytest.approx(21.0)
    h = headroom(s).set_index("controller")["max_scale_at_that_delay"]
    assert h["signalopt"] == pytest.approx(1.2)
    assert h["fixed"] == pytest.approx(1.0)


def test_write_report_files(tmp_path: Path) -> None:
    """Markdown and HTML name every controller and the failed run; both plots exist."""
    make_results(tmp_path)
    rep = write_report(tmp_path, tmp_path / "rep")
    md = rep.files["md"].read_text()
    assert "signalopt" in md and "-10.0 ± 0" in md and "TraCIException: boom" in md
    assert "<table" in rep.files["html"].read_text()
    assert {p.name for p in rep.plots} == {"headroom.png", "time_series.png"}
    assert all(p.stat().st_size > 0 for p in rep.plots)
