"""Counts ingestion: schema, per-row rejection with reasons, nothing accepted is lost."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from signalopt.errors import CountsError
from signalopt.io.counts import (
    COUNT_COLUMNS,
    CountsTable,
    detector_interval,
    load_counts,
    read_counts,
    validate_counts,
)


def _row(det: str = "L0_0_in", t: float = 0.0, count: object = 5, occ: float = 10.0,
         speed: float = 9.0) -> dict:
    return {"detector_id": det, "interval_start": t, "count": count, "occupancy": occ, "speed": speed}


def test_good_rows_accepted_with_clean_dtypes(chain_net) -> None:
    acc, rej = validate_counts([_row(), _row("L1_0_in"), _row(t=30.0)], chain_net)
    assert len(acc) == 3 and len(rej) == 0
    assert tuple(acc.columns) == COUNT_COLUMNS
    assert acc["count"].dtype == np.int64


@pytest.mark.parametrize(("row", "field", "reason"), [
    (_row(det="nope"), "detector_id", "unknown detector 'nope'"),
    (_row(count=-1), "count", "negative"),
    (_row(count=float("nan")), "count", "missing"),
    (_row(count="abc"), "count", "not a number"),
    (_row(count=2.5), "count", "not an integer"),
    (_row(count=10**6), "count", "impossible"),
    (_row(occ=150.0), "occupancy", "outside 0-100"),
    (_row(occ=-20.0), "occupancy", "outside 0-100"),
    (_row(speed=-3.0), "speed", "impossible"),
    (_row(t=float("nan")), "interval_start", "missing"),
])
def test_bad_row_rejected_with_reason_good_rows_kept(chain_net, row, field, reason) -> None:
    acc, rej = validate_counts([_row("L1_0_in"), row, _row("L2_0_in")], chain_net)
    assert list(acc["detector_id"]) == ["L1_0_in", "L2_0_in"]
    assert list(rej["row"]) == [1]
    assert rej["field"].iloc[0] == field
    assert reason in rej["reason"].iloc[0]


def test_duplicate_and_out_of_order_in_batch(chain_net) -> None:
    rows = [_row(t=30.0), _row(t=30.0), _row(t=0.0), _row(t=60.0)]
    acc, rej = validate_counts(rows, chain_net)
    assert list(acc["interval_start"]) == [30.0, 60.0]
    assert list(rej["row"]) == [1, 2]
    assert "duplicate" in rej["reason"].iloc[0]
    assert "out of order" in rej["reason"].iloc[1]


def test_extend_keeps_earlier_rows_and_rejects_repeats(chain_net) -> None:
    table = load_counts([_row(t=0.0), _row(t=30.0)], chain_net)
    table = table.extend([_row(t=30.0), _row(t=0.0, det="L1_0_in"), _row(t=60.0)], chain_net)
    assert len(table) == 4  # two earlier + L1 at 0 + L0 at 60
    assert list(table.rejected["reason"].str.startswith("duplicate")) == [True]
    assert table.interval_s == 30.0


def test_small_negative_occupancy_clamped(chain_net) -> None:
    acc, rej = validate_counts([_row(occ=-1.5)], chain_net)
    assert len(rej) == 0 and acc["occupancy"].iloc[0] == 0.0


def test_missing_column_raises_naming_it(chain_net) -> None:
    with pytest.raises(CountsError, match="count"):
        validate_counts([{"detector_id": "L0_0_in", "interval_start": 0.0}], chain_net)


def test_non_mapping_row_raises(chain_net) -> None:
    with pytest.raises(CountsError, match="row 1"):
        validate_counts([_row(), ["x"]], chain_net)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_read_counts_formats(chain_net, tmp_path, suffix) -> None:
    rows = [_row(), _row("L1_0_in"), _row(det="bad")]
    path = tmp_path / f"c{suffix}"
    if suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    else:
        path.write_text(json.dumps(rows))
    table = read_counts(path, chain_net)
    assert isinstance(table, CountsTable)
    assert len(table) == 2 and list(table.rejected["row"]) == [2]


def test_read_counts_unknown_format(chain_net, tmp_path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("x")
    with pytest.raises(CountsError, match=r"c\.txt"):
        read_counts(path, chain_net)


def test_detector_interval_is_the_shortest_step_of_one_detector() -> None:
    """Two detectors at 0/60/120 s and one that missed 60 s: the feed reports every 60 s (the
    gap across detectors, 0 -> 0, and the missed interval do not count); empty: the default."""
    df = pd.DataFrame({"detector_id": ["a", "a", "a", "b", "b", "b", "c", "c"],
                       "interval_start": [0.0, 60.0, 120.0, 120.0, 0.0, 60.0, 0.0, 120.0]})
    assert detector_interval(df) == 60.0
    assert detector_interval(df[df["detector_id"] == "c"]) == 120.0
    assert detector_interval(df.iloc[:0], default=30.0) == 30.0
