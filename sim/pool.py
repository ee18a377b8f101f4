"""Run many simulations in a local process pool: one SUMO per process, progress streamed back."""

from __future__ import annotations

import multiprocessing as mp
import queue
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenarios.registry import ScenarioSpec


@dataclass(frozen=True)
class RunKey:
    """Fixes one run: (scenario, demand, scale, controller, seed, duration)."""

    scenario: str
    controller: str
    seed: int
    demand: str = "default"
    scale: float = 1.0
    duration: float = 3600.0
    params: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def variant(self) -> str:
        """Controller name with its non-default parameters, e.g. ``signalopt[local_control=fixed]``."""
        if not self.params:
            return self.controller
        return f"{self.controller}[{','.join(f'{k}={v}' for k, v in self.params)}]"

    @property
    def slug(self) -> str:
        extra = "".join(f"-{k}{v}" for k, v in self.params)
        return (f"{self.scenario}-{self.demand}-x{self.scale:g}-{self.controller}{extra}"
                f"-s{self.seed}-d{self.duration:g}")


@dataclass(frozen=True)
class RunTask:
    key: RunKey
    scenario: ScenarioSpec
    backend: str = "libsumo"
    out_dir: Path | None = None
    layout: Any = None  # a ``DetectorLayout`` (None: every detector kind)


def run_task(task: RunTask, progress_q: Any = None) -> dict[str, Any]:
    """Worker entry point: simulate one task and return its metrics (errors as a record)."""
    from sim.controllers import make_controller  # noqa: PLC0415  (in the worker process)
    from sim.runner import run_simulation  # noqa: PLC0415

    def report(frac: float) -> None:
        if progress_q is not None:
            progress_q.put((task.key.slug, frac))

    try:
        ctrl = make_controller(task.key.controller, **dict(task.key.params))
        result = run_simulation(task.scenario, ctrl, backend=task.backend, progress=report,
                                layout=task.layout)
        if task.out_dir is not None:
            result.write(task.out_dir / task.key.slug)
        metrics = {k: v for k, v in result.metrics.items() if k != "definitions"}
        return {**metrics, "key": task.key.slug, "variant": task.key.variant, "error": ""}
    except Exception as exc:
        return {"key": task.key.slug, "controller": task.key.controller, "seed": task.key.seed,
                "scenario": task.key.scenario, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:]}


def run_pool(
    tasks: Iterable[RunTask],
    *,
    workers: int = 2,
    on_progress: Callable[[str, float], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    recycle_after: int = 1,
) -> list[dict[str, Any]]:
    """Run ``tasks`` in ``workers`` processes, each replaced after ``recycle_after`` runs.

    One SUMO per process at a time (each run closes its SUMO). A fresh process per run
    costs seconds of imports; batches of short runs recycle less often.
    """
    tasks = list(tasks)
    if workers <= 1:
        results = []
        for task in tasks:
            res = run_task(task, None)
            if on_done:
                on_done(res)
            results.append(res)
        return results
    ctx = mp.get_context("spawn")
    results: list[dict[str, Any]] = []
    # Recycling by rounds of fresh executors, not max_tasks_per_child > 1: on Python 3.11
    # that deadlocks once the first workers exit (no replacement is spawned).
    per_round = len(tasks) if recycle_after <= 1 else workers * recycle_after
    with ctx.Manager() as manager:
        progress_q = manager.Queue()
        for start in range(0, len(tasks), max(per_round, 1)):
            chunk = tasks[start:start + per_round]
            kw = {"max_tasks_per_child": 1} if recycle_after <= 1 else {}
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, **kw) as ex:
                owner = {ex.submit(run_task, t, progress_q): t for t in chunk}
                _collect(owner, progress_q, on_progress, on_done, results)
    return results


def _collect(owner: dict[Future, RunTask], progress_q: Any,
             on_progress: Callable[[str, float], None] | None,
             on_done: Callable[[dict[str, Any]], None] | None,
             results: list[dict[str, Any]]) -> None:
    """Wait for the futures, streaming progress and each result as it finishes."""
    pending: set[Future] = set(owner)
    while pending:
        done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
        _drain(progress_q, on_progress)
        for fut in done:
            res = _result(fut, owner[fut])
            if on_done:
                on_done(res)
            results.append(res)
    _drain(progress_q, on_progress)


def _result(fut: Future, task: RunTask) -> dict[str, Any]:
    """The run's record; a crashed worker process (e.g. SUMO segfault) becomes a failed run."""
    try:
        return fut.result()
    except Exception as exc:
        return {"key": task.key.slug, "controller": task.key.controller, "seed": task.key.seed,
                "scenario": task.key.scenario, "error": f"{type(exc).__name__}: {exc}"}


def _drain(progress_q: Any, on_progress: Callable[[str, float], None] | None) -> None:
    while True:
        try:
            slug, frac = progress_q.get_nowait()
        except queue.Empty:
            return
        if on_progress:
            on_progress(slug, frac)
