"""In-memory ``PlanStore`` fake for tests: the store rules without a database.

Shares ``publish_decisions`` with ``SqlPlanStore`` so both enforce the same version and
freeze rules; ``tests/test_store.py`` runs one contract suite on both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pandas as pd

from signalopt.errors import StoreError
from signalopt.plan import TimingPlan
from signalopt.store import (
    AckRecord,
    AckStatus,
    AuditEntry,
    CountRow,
    IngestResult,
    PublishResult,
    StoredPlan,
    UnknownVersionError,
    counts_frame,
    publish_decisions,
)


class MemoryPlanStore:
    """In-memory ``PlanStore`` fake for tests: same rules, no database, one lock."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._plans: dict[tuple[str, int], StoredPlan] = {}
        self._current: dict[str, int] = {}
        self._acks: list[AckRecord] = []
        self._audit_log: list[AuditEntry] = []
        self._frozen: dict[str, str | None] = {}
        self._counts: dict[tuple[str, float], CountRow] = {}

    def _log(self, actor: str, action: str, iid: str | None, ver: int | None,
             detail: str | None) -> None:
        self._audit_log.append(AuditEntry(self._clock(), actor, action, iid, ver, detail))

    def publish(self, plans: Sequence[TimingPlan], *, actor: str, action: str = "publish",
                pending: bool = False, detail: str | None = None) -> PublishResult:
        """See ``SqlPlanStore.publish``."""
        with self._lock:
            ok, skipped = publish_decisions(plans, self._latest, set(self._frozen))
            for plan in ok:
                key = (plan.intersection, plan.version)
                self._plans[key] = StoredPlan(plan, "pending" if pending else "published",
                                              actor, self._clock())
                if not pending:
                    self._current[plan.intersection] = plan.version
                self._log(actor, "propose" if pending else action, *key, detail)
        return PublishResult(stored=tuple(ok), skipped=skipped)

    def _latest(self, iid: str) -> int:
        return max((v for i, v in self._plans if i == iid), default=0)

    def approve(self, intersection: str, version: int, *, actor: str) -> TimingPlan:
        """See ``SqlPlanStore.approve``."""
        with self._lock:
            rec = self._plans.get((intersection, version))
            cur = self._current.get(intersection)
            if rec is None:
                msg = f"intersection {intersection!r} has no plan v{version}"
                raise UnknownVersionError(msg)
            if rec.status != "pending" or (cur is not None and cur >= version):
                msg = f"intersection {intersection!r} v{version} is not a pending plan newer " \
                      f"than the current v{cur}"
                raise StoreError(msg)
            self._plans[(intersection, version)] = StoredPlan(
                rec.plan, "published", rec.published_by, rec.published_at)
            self._current[intersection] = version
            self._log(actor, "approve", intersection, version, None)
        return rec.plan

    def current(self, intersection: str) -> TimingPlan | None:
        ver = self._current.get(intersection)
        return None if ver is None else self._plans[(intersection, ver)].plan

    def current_version(self, intersection: str) -> int | None:
        return self._current.get(intersection)

    def current_all(self) -> dict[str, TimingPlan]:
        return {i: self._plans[(i, v)].plan for i, v in self._current.items()}

    def _with_current(self, rec: StoredPlan) -> StoredPlan:
        cur = self._current.get(rec.plan.intersection) == rec.plan.version
        return StoredPlan(rec.plan, rec.status, rec.published_by, rec.published_at, cur)

    def get(self, intersection: str, version: int) -> StoredPlan | None:
        rec = self._plans.get((intersection, version))
        return None if rec is None else self._with_current(rec)

    def plan_json(self, intersection: str, version: int) -> tuple[float, str] | None:
        rec = self._plans.get((intersection, version))
        return None if rec is None else (rec.plan.valid_until, rec.plan.model_dump_json())

    def history(self, intersection: str, *, limit: int = 50) -> list[StoredPlan]:
        recs = sorted((r for (i, _), r in self._plans.items() if i == intersection),
                      key=lambda r: -r.plan.version)
        return [self._with_current(r) for r in recs[:limit]]

    def latest_version(self, intersection: str) -> int:
        return self._latest(intersection)

    def latest_versions(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, v in self._plans:
            out[i] = max(v, out.get(i, 0))
        return out

    def record_ack(self, intersection: str, version: int, *, status: AckStatus,
                   reason: str | None, actor: str) -> AckRecord:
        if (intersection, version) not in self._plans:
            msg = f"intersection {intersection!r} has no plan v{version}"
            raise UnknownVersionError(msg)
        rec = AckRecord(intersection, version, status, reason, actor, self._clock())
        with self._lock:
            self._acks.append(rec)
        return rec

    def acks(self, intersection: str, *, limit: int = 50) -> list[AckRecord]:
        return [a for a in reversed(self._acks) if a.intersection == intersection][:limit]

    def freeze(self, intersection: str, *, actor: str, reason: str | None = None) -> None:
        with self._lock:
            self._frozen[intersection] = reason
            self._log(actor, "freeze", intersection, None, reason)

    def unfreeze(self, intersection: str, *, actor: str) -> None:
        with self._lock:
            self._frozen.pop(intersection, None)
            self._log(actor, "unfreeze", intersection, None, None)

    def frozen(self) -> dict[str, str | None]:
        return dict(self._frozen)

    def audit(self, *, limit: int = 100, intersection: str | None = None) -> list[AuditEntry]:
        out = [a for a in reversed(self._audit_log)
               if intersection is None or a.intersection == intersection]
        return out[:limit]

    def add_counts(self, rows: Sequence[CountRow]) -> IngestResult:
        with self._lock:
            before = len(self._counts)
            for r in rows:
                self._counts.setdefault((r.detector_id, float(r.interval_start)), r)
            inserted = len(self._counts) - before
        return IngestResult(inserted=inserted, duplicates=len(rows) - inserted)

    def counts_between(self, t0: float, t1: float) -> pd.DataFrame:
        return counts_frame([tuple(r) for (_, t), r in self._counts.items() if t0 <= t < t1])

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
