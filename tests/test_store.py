"""PlanStore contract, run on the in-memory fake, SQLite and (when reachable) PostgreSQL.

PostgreSQL: ``SIGNALOPT_PG_DSN=postgresql+psycopg://user:pw@localhost/signalopt_test
pytest -m postgres tests/test_store.py`` (needs ``pip install 'signalopt[postgres]'``); the
tests drop and recreate the store's tables in that database.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator

import pytest
from service_fixtures import scan_plan

from signalopt.errors import StoreError
from signalopt.store import CountRow, PlanStore, SqlPlanStore
from signalopt.store_memory import MemoryPlanStore

T0 = 1000.0


def _pg_store() -> SqlPlanStore:
    dsn = os.environ.get("SIGNALOPT_PG_DSN")
    if not dsn:
        pytest.skip("PostgreSQL tests need SIGNALOPT_PG_DSN=postgresql+psycopg://user:pw@host/db")
    try:
        store = SqlPlanStore(dsn)
    except StoreError as exc:
        pytest.skip(f"PostgreSQL at SIGNALOPT_PG_DSN unreachable: {exc}")
    from signalopt import store as mod

    mod._META.drop_all(store._engine)  # fresh tables per test
    mod._META.create_all(store._engine)
    return store


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[PlanStore]:
    if request.param == "memory":
        s: PlanStore = MemoryPlanStore(clock=lambda: T0)
    elif request.param == "sqlite":
        s = SqlPlanStore(str(tmp_path / "plans.sqlite"), clock=lambda: T0)  # type: ignore[operator]
    else:
        s = _pg_store()
    yield s
    s.close()


def test_publish_makes_current_and_keeps_history(store: PlanStore) -> None:
    res = store.publish([scan_plan("A", 1), scan_plan("B", 1)], actor="scan")
    assert [p.intersection for p in res.stored] == ["A", "B"]
    store.publish([scan_plan("A", 2, ns=35, ew=25)], actor="scan")
    assert store.current("A").version == 2  # type: ignore[union-attr]
    assert store.current("A").phases[0].duration == 35  # type: ignore[union-attr]
    assert store.current_version("B") == 1
    assert [r.plan.version for r in store.history("A")] == [2, 1]
    assert [r.current for r in store.history("A")] == [True, False]
    assert store.latest_version("A") == 2
    assert store.latest_version("Z") == 0
    assert store.current("Z") is None
    assert set(store.current_all()) == {"A", "B"}


def test_versions_are_immutable_and_only_increase(store: PlanStore) -> None:
    store.publish([scan_plan("A", 3)], actor="scan")
    res = store.publish([scan_plan("A", 3, ns=40, ew=20), scan_plan("B", 1)], actor="scan")
    assert "not above v3" in res.skipped["A"]
    assert [p.intersection for p in res.stored] == ["B"]
    assert store.current("A").phases[0].duration == 30  # type: ignore[union-attr]  # unchanged
    res = store.publish([scan_plan("A", 5), scan_plan("A", 4)], actor="scan")  # same batch
    assert "v4 is not above v5" in res.skipped["A"]


def test_frozen_intersection_never_takes_scan_plans(store: PlanStore) -> None:
    store.publish([scan_plan("A", 1)], actor="scan")
    store.freeze("A", actor="eve", reason="parade")
    res = store.publish([scan_plan("A", 2, ns=40, ew=20)], actor="scan")
    assert "frozen" in res.skipped["A"]
    assert store.current_version("A") == 1
    assert store.frozen() == {"A": "parade"}
    eng = store.publish([scan_plan("A", 2, source="engineer")], actor="eve")
    assert eng.stored  # the engineer's own plan does go in
    store.unfreeze("A", actor="eve")
    assert store.publish([scan_plan("A", 3)], actor="scan").stored
    actions = [(a.action, a.actor) for a in store.audit(intersection="A")]
    assert actions == [("publish", "scan"), ("unfreeze", "eve"), ("publish", "eve"),
                       ("freeze", "eve"), ("publish", "scan")]


def test_pending_plans_wait_for_approval(store: PlanStore) -> None:
    store.publish([scan_plan("A", 1)], actor="scan")
    store.publish([scan_plan("A", 2, ns=35, ew=25)], actor="scan", pending=True)
    assert store.current_version("A") == 1
    assert store.get("A", 2).status == "pending"  # type: ignore[union-attr]
    assert store.approve("A", 2, actor="eve").version == 2
    assert store.current_version("A") == 2
    with pytest.raises(StoreError, match="not a pending plan"):
        store.approve("A", 2, actor="eve")
    with pytest.raises(StoreError, match="no plan v9"):
        store.approve("A", 9, actor="eve")
    assert store.audit(limit=1)[0].action == "approve"


def test_acks_recorded_for_existing_versions_only(store: PlanStore) -> None:
    store.publish([scan_plan("A", 1)], actor="scan")
    store.record_ack("A", 1, status="rejected", reason="bad split", actor="cab")
    store.record_ack("A", 1, status="applied", reason=None, actor="cab")
    assert [(a.status, a.reason) for a in store.acks("A")] == [("applied", None),
                                                               ("rejected", "bad split")]
    with pytest.raises(StoreError, match="'A' has no plan v2"):
        store.record_ack("A", 2, status="applied", reason=None, actor="cab")


def test_counts_are_idempotent_per_detector_and_interval(store: PlanStore) -> None:
    rows = [CountRow("d1", 0.0, 5, 10.0, 12.0), CountRow("d2", 0.0, 0, 0.0, math.nan),
            CountRow("d1", 30.0, 7, 11.0, 11.0)]
    assert store.add_counts(rows).inserted == 3
    again = store.add_counts([*rows[:2], CountRow("d1", 0.0, 99, 1.0, 1.0)])
    assert (again.inserted, again.duplicates) == (0, 3)  # first write wins
    frame = store.counts_between(0.0, 30.0)
    assert list(frame["detector_id"]) == ["d1", "d2"]
    assert list(frame["count"]) == [5, 0]
    assert math.isnan(frame["speed"].iloc[1])
    assert len(store.counts_between(0.0, 60.0)) == 3
    assert store.add_counts([]).inserted == 0


def test_sqlite_survives_reopen_and_concurrent_writers(tmp_path: object) -> None:
    path = str(tmp_path / "p.sqlite")  # type: ignore[operator]
    store = SqlPlanStore(path)
    errors: list[Exception] = []

    def writer(iid: str) -> None:
        try:
            for v in range(1, 21):
                store.publish([scan_plan(iid, v)], actor="scan")
                store.add_counts([CountRow(f"{iid}-d", float(v), v, 1.0, 1.0)])
        except Exception as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in "ABCD"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.close()
    again = SqlPlanStore(path)
    assert {i: p.version for i, p in again.current_all().items()} == dict.fromkeys("ABCD", 20)
    assert len(again.counts_between(0, 100)) == 80
    again.close()


def test_sqlite_store_errors_name_the_database(tmp_path: object) -> None:
    with pytest.raises(StoreError, match="cannot open plan store"):
        SqlPlanStore(str(tmp_path / "missing-dir" / "x.sqlite"))  # type: ignore[operator]
