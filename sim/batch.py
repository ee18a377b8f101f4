"""Optimization batches: scenarios x demand x controllers x seeds x engine parameters.

A batch is described by a TOML spec (see ``examples/batch_small.toml``), expanded into
``RunTask``s and run in the local process pool (``sim.pool.run_pool``, one SUMO per process)
or on a Dask distributed cluster. Every finished run is written at once as its own small
Parquet part file under ``OUT/runs/`` (written to a temporary name, then renamed), so a killed
batch never loses or corrupts an earlier result, and a restarted batch skips every key that
already has a successful part. A failed run is a part too, with its error; it is retried on
the next start unless ``retry_failed`` is false.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import socket
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from scenarios.registry import resolve_scenario
from signalopt.errors import InputError
from sim.pool import RunKey, RunTask, run_pool

SPEC_KEYS = frozenset({"name", "scenarios", "scenario", "controllers", "seeds", "duration",
                       "demand", "scale", "params", "backend", "workers", "keep_frames",
                       "retry_failed", "recycle_after"})
SCENARIO_KEYS = frozenset({"name", "demand", "scale", "duration"})
KEY_COLUMNS = ("key", "scenario", "demand", "scale", "controller", "seed", "duration", "params")


class BatchSpecError(InputError):
    """A batch spec is malformed: the message names the file and the offending key."""


@dataclass(frozen=True)
class ScenarioEntry:
    """One scenario line of a batch: its name and the demand levels to try on it."""

    name: str
    demand: tuple[str | None, ...] = (None,)
    scale: tuple[float, ...] = (1.0,)
    duration: float | None = None


@dataclass(frozen=True)
class BatchSpec:
    """A parsed, validated batch spec (what to run, not how far it got)."""

    name: str
    scenarios: tuple[ScenarioEntry, ...]
    controllers: tuple[str, ...]
    seeds: tuple[int, ...]
    params: dict[str, tuple[tuple[tuple[str, Any], ...], ...]] = field(default_factory=dict)
    duration: float | None = None
    backend: str = "libsumo"
    workers: int = 2
    keep_frames: bool = True
    retry_failed: bool = True
    recycle_after: int = 8


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _param_grid(path: Path, raw: dict[str, Any], controllers: list[str]) -> dict[str, Any]:
    """Per controller, the product of its parameter lists as tuples of (name, value) pairs."""
    from sim.controllers import CONTROLLERS, make_controller  # noqa: PLC0415

    unknown = sorted(set(raw) - set(CONTROLLERS))
    if unknown:
        msg = (f"{path}: [params.{unknown[0]}] names an unknown controller; "
               f"known: {sorted(CONTROLLERS)}")
        raise BatchSpecError(msg)
    grids: dict[str, Any] = {}
    for ctrl in controllers:
        table = raw.get(ctrl, {})
        names = sorted(table)
        combos = [tuple(zip(names, vals, strict=True))
                  for vals in itertools.product(*(_as_list(table[n]) for n in names))]
        for combo in combos:
            _check_params(path, ctrl, dict(combo), make_controller)
        grids[ctrl] = tuple(combos) or ((),)
    return grids


def _check_params(path: Path, ctrl: str, params: dict[str, Any], make: Callable[..., Any]) -> None:
    """Build the controller once here, so a bad parameter fails before any simulation runs."""
    try:
        made = make(ctrl, **params)
    except (TypeError, ValueError) as exc:
        msg = f"{path}: [params.{ctrl}] {params}: {exc}"
        raise BatchSpecError(msg) from exc
    config = getattr(made, "config", None)
    if config is not None:  # signalopt: optimizer fields are validated by the model
        # the simulator's own keywords (gap_sat_y, gap_permissive, ...) and optimizer fields
        own = set(inspect.signature(type(made)).parameters) - {"optimizer"}
        extra = set(params) - set(type(config.optimizer).model_fields) - own
        if extra:
            msg = f"{path}: [params.{ctrl}] unknown engine parameter(s) {sorted(extra)}"
            raise BatchSpecError(msg)
        try:
            type(config.optimizer).model_validate(config.optimizer.model_dump())
        except ValueError as exc:
            msg = f"{path}: [params.{ctrl}] {params}: {exc}"
            raise BatchSpecError(msg) from exc


def _scenario_entries(path: Path, raw: dict[str, Any]) -> tuple[ScenarioEntry, ...]:
    """``scenarios = [names]`` take the top-level demand/scale; ``[[scenario]]`` tables their own."""
    demand = tuple(_as_list(raw.get("demand", [None])))
    scale = tuple(float(s) for s in _as_list(raw.get("scale", [1.0])))
    out = [ScenarioEntry(str(n), demand, scale) for n in _as_list(raw.get("scenarios", []))]
    for k, table in enumerate(raw.get("scenario", [])):
        bad = sorted(set(table) - SCENARIO_KEYS)
        if bad or "name" not in table:
            msg = f"{path}: [[scenario]] #{k + 1}: unknown key(s) {bad} or no 'name'"
            raise BatchSpecError(msg)
        out.append(ScenarioEntry(
            str(table["name"]), tuple(_as_list(table.get("demand", demand))),
            tuple(float(s) for s in _as_list(table.get("scale", scale))), table.get("duration")))
    if not out:
        msg = f"{path}: no scenarios (give scenarios = [...] or [[scenario]] tables)"
        raise BatchSpecError(msg)
    return tuple(out)


def load_spec(path: Path) -> BatchSpec:
    """Read and validate a batch spec TOML; every problem names the file and the key."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        msg = f"batch spec not readable: {path}: {exc}"
        raise BatchSpecError(msg) from exc
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: malformed TOML: {exc}"
        raise BatchSpecError(msg) from exc
    bad = sorted(set(raw) - SPEC_KEYS)
    if bad:
        msg = f"{path}: unknown key(s) {bad}; allowed: {sorted(SPEC_KEYS)}"
        raise BatchSpecError(msg)
    from sim.controllers import CONTROLLERS  # noqa: PLC0415

    controllers = [str(c) for c in _as_list(raw.get("controllers", ["fixed"]))]
    unknown = [c for c in controllers if c not in CONTROLLERS]
    if unknown:
        msg = f"{path}: controllers: unknown {unknown}; choose from {sorted(CONTROLLERS)}"
        raise BatchSpecError(msg)
    try:
        seeds = tuple(int(s) for s in _as_list(raw.get("seeds", [42])))
    except (TypeError, ValueError) as exc:
        msg = f"{path}: seeds must be integers: {exc}"
        raise BatchSpecError(msg) from exc
    return BatchSpec(
        name=str(raw.get("name", path.stem)), scenarios=_scenario_entries(path, raw),
        controllers=tuple(controllers), seeds=seeds,
        params=_param_grid(path, raw.get("params", {}), controllers),
        duration=raw.get("duration"), backend=str(raw.get("backend", "libsumo")),
        workers=int(raw.get("workers", 2)), keep_frames=bool(raw.get("keep_frames", True)),
        retry_failed=bool(raw.get("retry_failed", True)),
        recycle_after=int(raw.get("recycle_after", 8)),
    )


def _resolve(name: str, base: Path, **kw: Any) -> Any:
    """Resolve a scenario name, or a .sumocfg path relative to the spec file."""
    if name.endswith(".sumocfg") and not Path(name).is_absolute():
        name = str((base / name).resolve())
    return resolve_scenario(name, **kw)


def plan_batch(spec: BatchSpec, out: Path, *, base: Path = Path()) -> list[RunTask]:
    """Expand the spec into tasks (generating scenario files once, in this process)."""
    tasks: list[RunTask] = []
    frames = out / "frames" if spec.keep_frames else None
    for entry in spec.scenarios:
        duration = entry.duration or spec.duration
        for demand, scale, seed in itertools.product(entry.demand, entry.scale, spec.seeds):
            sc = _resolve(entry.name, base, demand=demand, seed=seed, duration=duration,
                          scale=scale)
            for ctrl in spec.controllers:
                for params in spec.params.get(ctrl, ((),)):
                    key = RunKey(scenario=sc.name, controller=ctrl, seed=seed, demand=sc.demand,
                                 scale=scale, duration=sc.duration, params=params)
                    tasks.append(RunTask(key=key, scenario=sc, backend=spec.backend,
                                         out_dir=frames))
    dup = len(tasks) - len({t.key.slug for t in tasks})
    if dup:
        msg = f"batch {spec.name!r} expands to {dup} duplicate run key(s); remove repeated entries"
        raise BatchSpecError(msg)
    return tasks


# ---------------------------------------------------------------- results: one part per run

def _part_name(slug: str) -> str:
    """A file name for a run key: readable, safe, and unique (hash of the full key)."""
    import hashlib  # noqa: PLC0415

    safe = "".join(c if c.isalnum() or c in "._=-" else "_" for c in slug)[:120]
    return f"{safe}-{hashlib.sha1(slug.encode()).hexdigest()[:8]}.parquet"


def run_row(task: RunTask, record: dict[str, Any], *, batch: str) -> dict[str, Any]:
    """One result row: every key field and parameter, every metric, status and error."""
    key = task.key
    metrics = {k: v for k, v in record.items()
               if k not in KEY_COLUMNS and not isinstance(v, dict | list)}
    row: dict[str, Any] = {
        "key": key.slug, "batch": batch, "scenario": key.scenario, "demand": key.demand,
        "scale": float(key.scale), "controller": key.controller, "seed": int(key.seed),
        "duration": float(key.duration), "params": json.dumps(dict(key.params), sort_keys=True),
        **{f"p_{k}": v for k, v in key.params},
        **metrics,
        "status": "failed" if record.get("error") else "ok",
        "error": str(record.get("error", "")), "traceback": str(record.get("traceback", "")),
        "host": socket.gethostname(), "finished_at": time.time(),
    }
    return row


def write_part(runs_dir: Path, row: dict[str, Any]) -> Path:
    """Write one row as its own Parquet file: temp name, fsync, atomic rename."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    final = runs_dir / _part_name(row["key"])
    tmp = final.with_suffix(".parquet.tmp")
    pq.write_table(pa.Table.from_pylist([row]), tmp)
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(final)
    return final


def read_results(out: Path | str) -> pd.DataFrame:
    """All runs of a batch folder (or a runs/ folder) as one frame, one row per run key."""
    out = Path(out)
    runs_dir = out / "runs" if (out / "runs").is_dir() else out
    if not runs_dir.is_dir():
        msg = f"no batch results at {out} (expected {out / 'runs'}/*.parquet)"
        raise InputError(msg)
    parts = sorted(runs_dir.glob("*.parquet"))
    if not parts:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "status", "error"])
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="permissive")
    return table.to_pandas().sort_values("key", kind="stable").reset_index(drop=True)


def finished_keys(out: Path, *, include_failed: bool = False) -> set[str]:
    """Keys that already have a part file (successful ones only, unless ``include_failed``)."""
    if not (out / "runs").is_dir():
        return set()
    df = read_results(out)
    if not include_failed:
        df = df[df["status"] == "ok"]
    return set(df["key"])


# ---------------------------------------------------------------- execution

@dataclass
class BatchOutcome:
    """What one invocation did: planned, skipped (already done), ran, failed, wall time."""

    planned: int
    skipped: int
    ran: int = 0
    failed: int = 0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def run_batch(
    spec_path: Path,
    out: Path,
    *,
    workers: int | None = None,
    scheduler: Any = None,
    on_plan: Callable[[int, int], None] | None = None,
    on_progress: Callable[[str, float], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> BatchOutcome:
    """Run (or resume) the batch of ``spec_path`` into ``out``; one Parquet part per run.

    ``scheduler`` is a Dask scheduler address (``tcp://host:port``) or a ``Cluster`` object;
    None uses the local process pool with ``workers`` processes (default: the spec's).
    ``on_plan(todo, skipped)`` is called once before the first run starts.
    """
    spec = load_spec(spec_path)
    tasks = plan_batch(spec, out, base=spec_path.parent)
    out.mkdir(parents=True, exist_ok=True)
    (out / "batch.toml").write_text(spec_path.read_text())
    for stale in (out / "runs").glob("*.tmp"):  # a write cut off by a kill: never a result
        stale.unlink()
    done = finished_keys(out, include_failed=not spec.retry_failed)
    todo = [t for t in tasks if t.key.slug not in done]
    outcome = BatchOutcome(planned=len(tasks), skipped=len(tasks) - len(todo))
    if on_plan:
        on_plan(len(todo), outcome.skipped)
    by_slug = {t.key.slug: t for t in todo}

    def record(res: dict[str, Any]) -> None:
        row = run_row(by_slug[res["key"]], res, batch=spec.name)
        write_part(out / "runs", row)
        outcome.ran += 1
        if row["status"] != "ok":
            outcome.failed += 1
            outcome.failures.append(f"{row['key']}: {row['error']}")
        if on_done:
            on_done(res)

    t0 = time.perf_counter()
    if scheduler is None:
        run_pool(todo, workers=workers or spec.workers, on_progress=on_progress, on_done=record,
                 recycle_after=spec.recycle_after)
    else:
        run_dask(todo, scheduler, on_done=record)
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def run_dask(tasks: Iterable[RunTask], scheduler: Any, *,
             on_done: Callable[[dict[str, Any]], None]) -> None:
    """Run tasks on a Dask cluster, one ``run_task`` per Dask task; results as they finish.

    Workers must see the scenario files at the same paths (shared filesystem or one host),
    and should run one thread each (one SUMO per worker process).
    """
    try:
        from distributed import Client, as_completed  # noqa: PLC0415
    except ImportError as exc:
        msg = "Dask batches need the dask extra: pip install 'signalopt[dask]'"
        raise ImportError(msg) from exc
    from sim.pool import run_task  # noqa: PLC0415

    tasks = list(tasks)
    with Client(scheduler) as client:
        futures = {client.submit(run_task, t, None, pure=False): t for t in tasks}
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except Exception as exc:
                key = futures[fut].key
                res = {"key": key.slug, "error": f"{type(exc).__name__}: {exc}"}
            on_done(res)
