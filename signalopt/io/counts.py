"""Detector interval counts: the one table the engine ingests from the field (or from sim/).

Schema (one row per detector per interval):

| column         | type    | meaning                                                   |
|----------------|---------|-----------------------------------------------------------|
| detector_id    | str     | id of a detector in the network description               |
| interval_start | float   | seconds since the scenario/day reference; interval start  |
| count          | int     | vehicles that passed (loop) or were seen (zone)           |
| occupancy      | float   | percent of the interval the detector was occupied, 0-100  |
| speed          | float   | mean speed of those vehicles, m/s; NaN when count == 0    |

A zone (camera) counts every vehicle it saw during the interval, those already in view at its
start included (SUMO's lane-area interval count; a tracking camera's distinct vehicles).
For a zone, occupancy is the mean share of its length covered by vehicles.
``occupancy`` and ``speed`` may be missing (NaN); ``count`` may not. Occupancy in [-5, 0) %
(a rounding artefact of SUMO's loops) is clamped to 0; below -5 % it is rejected. Rows are validated one by
one: a bad row is rejected with its 0-based input position (``row``), the field and a reason,
and every good row is kept (DESIGN rule 6). Rejection reasons:

- ``unknown detector``: ``detector_id`` is not in the network,
- ``missing``/``not a number``/``negative``/``not an integer``/``impossible``: a bad value,
- ``duplicate``: the (detector, interval) pair was already given (in this batch or accepted
  before),
- ``out of order``: an interval earlier than one already accepted for that detector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from signalopt.errors import CountsError
from signalopt.network import CompiledNetwork

COUNT_COLUMNS = ("detector_id", "interval_start", "count", "occupancy", "speed")
REJECTED_COLUMNS = ("row", "detector_id", "interval_start", "field", "reason")
MAX_COUNT = 10_000  # no loop or zone sees this many vehicles in one interval
MAX_SPEED_MS = 70.0  # 252 km/h: faster is a sensor fault
OCC_TOLERANCE = 5.0  # SUMO E1 loops report down to about -2.5 %; [-5, 0) is clamped to 0

RowsLike = pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]


def _empty_accepted() -> pd.DataFrame:
    return pd.DataFrame({
        "detector_id": pd.Series([], dtype=object),
        "interval_start": pd.Series([], dtype=np.float64),
        "count": pd.Series([], dtype=np.int64),
        "occupancy": pd.Series([], dtype=np.float64),
        "speed": pd.Series([], dtype=np.float64),
    })


def _empty_rejected() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in REJECTED_COLUMNS})


@dataclass(frozen=True)
class CountsTable:
    """Accepted count rows (sorted by interval, detector) plus every rejected row and why.

    ``frame`` has exactly ``COUNT_COLUMNS``; ``rejected`` has ``REJECTED_COLUMNS``.
    """

    frame: pd.DataFrame = field(default_factory=_empty_accepted)
    rejected: pd.DataFrame = field(default_factory=_empty_rejected)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def interval_s(self) -> float | None:
        """Interval length inferred from the spacing of interval starts (None if < 2)."""
        starts = np.unique(self.frame["interval_start"].to_numpy())
        if starts.size < 2:
            return None
        return float(np.min(np.diff(starts)))

    def extend(self, rows: RowsLike, net: CompiledNetwork) -> CountsTable:
        """Validate ``rows`` against ``net`` and this table; return a new table with both."""
        accepted, rejected = validate_counts(rows, net, previous=self)
        frame = pd.concat([self.frame, accepted], ignore_index=True) if len(accepted) else self.frame
        frame = frame.sort_values(["interval_start", "detector_id"], kind="stable")
        rej = pd.concat([self.rejected, rejected], ignore_index=True) if len(rejected) else self.rejected
        return CountsTable(frame=frame.reset_index(drop=True), rejected=rej)


def _to_frame(rows: RowsLike) -> pd.DataFrame:
    """Turn a DataFrame / list of dicts / dict of columns into a frame with the schema columns."""
    if isinstance(rows, pd.DataFrame):
        df = rows.copy()
    elif isinstance(rows, Mapping):
        df = pd.DataFrame(dict(rows))
    else:
        rows = list(rows)
        bad = [k for k, r in enumerate(rows) if not isinstance(r, Mapping)]
        if bad:
            msg = f"counts row {bad[0]} is a {type(rows[bad[0]]).__name__}, expected a mapping"
            raise CountsError(msg)
        df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(COUNT_COLUMNS))
    missing = [c for c in ("detector_id", "interval_start", "count") if c not in df.columns]
    if missing:
        msg = f"counts lack required column(s) {missing}; schema is {list(COUNT_COLUMNS)}"
        raise CountsError(msg)
    for c in ("occupancy", "speed"):
        if c not in df.columns:
            df[c] = np.nan
    return df.reset_index(drop=True)


def _numeric(df: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)


def _value_problems(df: pd.DataFrame, net: CompiledNetwork) -> list[tuple[int, str, str]]:
    """(row, field, reason) for every unknown detector or bad value, all collected at once."""
    problems: list[tuple[int, str, str]] = []
    det = df["detector_id"].astype(str)
    for k in np.flatnonzero(det.map(net.det_index).isna().to_numpy()):
        problems.append((int(k), "detector_id", f"unknown detector {det.iloc[k]!r}"))
    t, count = _numeric(df, "interval_start"), _numeric(df, "count")
    occ, speed = _numeric(df, "occupancy"), _numeric(df, "speed")
    raw_count = df["count"].to_numpy()
    checks = (
        ("interval_start", ~np.isfinite(t), "missing or not a number"),
        ("count", ~np.isfinite(count) & pd.isna(raw_count), "missing (NaN)"),
        ("count", ~np.isfinite(count) & ~pd.isna(raw_count), "not a number"),
        ("count", count < 0, "negative"),
        ("count", np.isfinite(count) & (count != np.round(count)), "not an integer"),
        ("count", count > MAX_COUNT, f"impossible (> {MAX_COUNT})"),
        ("occupancy", (occ < -OCC_TOLERANCE) | (occ > 100) | np.isinf(occ), "outside 0-100 %"),
        ("speed", (speed < 0) | (speed > MAX_SPEED_MS), f"impossible (outside 0-{MAX_SPEED_MS} m/s)"),
    )
    for col, bad, why in checks:
        problems += [(int(k), col, f"{col} {why}") for k in np.flatnonzero(bad)]
    return problems


def _order_problems(
    df: pd.DataFrame, ok: np.ndarray, previous: CountsTable | None
) -> list[tuple[int, str, str]]:
    """Duplicates and out-of-order intervals among the value-valid rows ``ok``."""
    last: dict[str, float] = {}
    seen: set[tuple[str, float]] = set()
    if previous is not None and len(previous.frame):
        prev = previous.frame
        last = prev.groupby("detector_id")["interval_start"].max().to_dict()
        seen = set(zip(prev["detector_id"].tolist(), prev["interval_start"].tolist(), strict=True))
    problems: list[tuple[int, str, str]] = []
    det = df["detector_id"].astype(str).tolist()
    t = _numeric(df, "interval_start")
    for k in np.flatnonzero(ok).tolist():
        key = (det[k], float(t[k]))
        if key in seen:
            problems.append((k, "interval_start", f"duplicate interval {t[k]:g} of {det[k]!r}"))
        elif t[k] < last.get(det[k], -np.inf):
            problems.append((k, "interval_start",
                             f"out of order: {t[k]:g} after {last[det[k]]:g} for {det[k]!r}"))
        else:
            seen.add(key)
            last[det[k]] = float(t[k])
    return problems


def validate_counts(
    rows: RowsLike, net: CompiledNetwork, *, previous: CountsTable | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``rows`` into (accepted, rejected) against the network and earlier accepted rows.

    Parameters
    ----------
    rows
        A DataFrame, a list of dict rows (e.g. a ``POST /v1/counts`` body) or a dict of columns.
    net
        The compiled network whose ``det_ids`` are the known detectors.
    previous
        Rows accepted before; a repeat is a duplicate, an earlier interval is out of order.

    Returns
    -------
    accepted, rejected
        ``accepted`` has ``COUNT_COLUMNS`` with clean dtypes; ``rejected`` has
        ``REJECTED_COLUMNS`` with one row per rejected input row (its first problem).
    """
    df = _to_frame(rows)
    problems = _value_problems(df, net)
    ok = np.ones(len(df), dtype=bool)
    ok[[p[0] for p in problems]] = False
    problems += _order_problems(df, ok, previous)
    ok[[p[0] for p in problems]] = False
    accepted = pd.DataFrame({
        "detector_id": df["detector_id"].astype(str).to_numpy()[ok].astype(object),
        "interval_start": _numeric(df, "interval_start")[ok],
        "count": _numeric(df, "count")[ok].astype(np.int64),
        "occupancy": np.clip(_numeric(df, "occupancy")[ok], 0.0, None),
        "speed": _numeric(df, "speed")[ok],
    })
    return accepted, _rejected_frame(df, problems)


def _rejected_frame(df: pd.DataFrame, problems: list[tuple[int, str, str]]) -> pd.DataFrame:
    """One row per rejected input row, naming its first problem."""
    if not problems:
        return _empty_rejected()
    first: dict[int, tuple[str, str]] = {}
    for row, col, why in sorted(problems, key=lambda p: p[0]):
        first.setdefault(row, (col, why))
    rows = sorted(first)
    return pd.DataFrame({
        "row": rows,
        "detector_id": [df["detector_id"].iloc[r] for r in rows],
        "interval_start": [df["interval_start"].iloc[r] for r in rows],
        "field": [first[r][0] for r in rows],
        "reason": [first[r][1] for r in rows],
    })


def load_counts(
    rows: RowsLike, net: CompiledNetwork, *, previous: CountsTable | None = None
) -> CountsTable:
    """Validate ``rows`` and return a ``CountsTable`` holding them plus ``previous`` (if any)."""
    return (previous or CountsTable()).extend(rows, net)


def read_counts(
    path: str | Path, net: CompiledNetwork, *, previous: CountsTable | None = None
) -> CountsTable:
    """Read counts from a ``.csv``, ``.parquet`` or ``.json`` file into a ``CountsTable``.

    JSON is a list of row objects or an object of columns. Bad rows are rejected, not raised;
    an unreadable file or a missing column raises ``CountsError`` naming the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows: RowsLike = pd.read_csv(path, dtype={"detector_id": str})
        elif suffix in (".parquet", ".pq"):
            rows = pd.read_parquet(path)
        elif suffix == ".json":
            rows = json.loads(path.read_text())
        else:
            msg = f"{path}: unknown counts format {suffix!r}; use .csv, .parquet or .json"
            raise CountsError(msg)
    except (OSError, ValueError) as exc:
        if isinstance(exc, CountsError):
            raise
        msg = f"{path}: cannot read counts: {exc}"
        raise CountsError(msg) from exc
    try:
        return load_counts(rows, net, previous=previous)
    except CountsError as exc:
        msg = f"{path}: {exc}"
        raise CountsError(msg) from exc


def detector_interval(frame: pd.DataFrame, default: float = 30.0) -> float:
    """The interval a recording's detectors report at: the shortest step between one
    detector's consecutive interval starts (``default`` if no detector reports twice)."""
    if frame.empty:
        return default
    df = frame[["detector_id", "interval_start"]].sort_values(["detector_id", "interval_start"])
    same = df["detector_id"].to_numpy()[1:] == df["detector_id"].to_numpy()[:-1]
    steps = np.diff(df["interval_start"].to_numpy(dtype=np.float64))[same]
    steps = steps[steps > 0]
    return float(steps.min()) if steps.size else default
