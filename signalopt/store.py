"""Plan store: immutable versioned timing plans, acks, audit log, freezes and detector counts.

``PlanStore`` is the small protocol the service and the live driver use. ``SqlPlanStore``
implements it with SQLAlchemy Core on SQLite (default: WAL, ``BEGIN IMMEDIATE`` for writes,
``synchronous=NORMAL``, or ``FULL`` with ``durable=True``) or on PostgreSQL given a DSN;
``signalopt.store_memory.MemoryPlanStore`` is the in-memory fake for tests. The store never
validates timing: callers run ``signalopt.plan.plan_problems`` before ``publish`` (a plan
failing it must never be stored). The store enforces what needs
its own transaction: versions only increase, a frozen intersection never takes a scan plan,
and one ``publish`` call is all-or-nothing.

PostgreSQL tests run with ``SIGNALOPT_PG_DSN=postgresql+psycopg://user:pw@host/db pytest -m
postgres`` (needs ``pip install 'signalopt[postgres]'``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from signalopt.errors import StoreError
from signalopt.io.counts import COUNT_COLUMNS
from signalopt.plan import TimingPlan

AckStatus = Literal["applied", "rejected"]


class UnknownVersionError(StoreError, LookupError):
    """The intersection has no stored plan of that version."""

_META = MetaData()
_PLANS = Table(
    "plans", _META,
    Column("intersection", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("status", String(16), nullable=False),  # published | pending
    Column("source", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("valid_until", Float, nullable=False),
    Column("body", Text, nullable=False),
    Column("published_by", String(128), nullable=False),
    Column("published_at", Float, nullable=False),
)
_CURRENT = Table(
    "current_plan", _META,
    Column("intersection", String(128), primary_key=True),
    Column("version", Integer, nullable=False),
)
_ACKS = Table(
    "acks", _META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("intersection", String(128), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("actor", String(128), nullable=False),
    Column("at", Float, nullable=False),
)
_AUDIT = Table(
    "audit", _META,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("intersection", String(128)),
    Column("version", Integer),
    Column("detail", Text),
)
_FROZEN = Table(
    "frozen", _META,
    Column("intersection", String(128), primary_key=True),
    Column("actor", String(128), nullable=False),
    Column("reason", Text),
    Column("at", Float, nullable=False),
)
_COUNTS = Table(
    "counts", _META,
    Column("detector_id", String(128), primary_key=True),
    Column("interval_start", Float, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("occupancy", Float),
    Column("speed", Float),
    Column("received_at", Float, nullable=False),
    Index("ix_counts_interval", "interval_start"),
)


class CountRow(NamedTuple):
    """One detector interval as stored; ``speed``/``occupancy`` may be NaN (no vehicle)."""

    detector_id: str
    interval_start: float
    count: int
    occupancy: float
    speed: float


@dataclass(frozen=True)
class StoredPlan:
    """A plan plus its store metadata: ``status`` published or pending approval."""

    plan: TimingPlan
    status: Literal["published", "pending"]
    published_by: str
    published_at: float
    current: bool = False


@dataclass(frozen=True)
class AckRecord:
    """An adapter's answer to one plan version: applied, or rejected with a reason."""

    intersection: str
    version: int
    status: AckStatus
    reason: str | None
    actor: str
    at: float


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to which plan, when (wall-clock unix seconds)."""

    at: float
    actor: str
    action: str
    intersection: str | None
    version: int | None
    detail: str | None


@dataclass(frozen=True)
class PublishResult:
    """Plans stored by one ``publish`` call and, per intersection, why others were skipped."""

    stored: tuple[TimingPlan, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestResult:
    """Rows newly stored and rows already present (same detector and interval)."""

    inserted: int
    duplicates: int


class PlanStore(Protocol):
    """What the service and the live driver need from a plan store."""

    def publish(self, plans: Sequence[TimingPlan], *, actor: str, action: str = "publish",
                pending: bool = False, detail: str | None = None) -> PublishResult: ...
    def approve(self, intersection: str, version: int, *, actor: str) -> TimingPlan: ...
    def current(self, intersection: str) -> TimingPlan | None: ...
    def current_version(self, intersection: str) -> int | None: ...
    def current_all(self) -> dict[str, TimingPlan]: ...
    def get(self, intersection: str, version: int) -> StoredPlan | None: ...
    def plan_json(self, intersection: str, version: int) -> tuple[float, str] | None: ...
    def history(self, intersection: str, *, limit: int = 50) -> list[StoredPlan]: ...
    def latest_version(self, intersection: str) -> int: ...
    def latest_versions(self) -> dict[str, int]: ...
    def record_ack(self, intersection: str, version: int, *, status: AckStatus,
                   reason: str | None, actor: str) -> AckRecord: ...
    def acks(self, intersection: str, *, limit: int = 50) -> list[AckRecord]: ...
    def freeze(self, intersection: str, *, actor: str, reason: str | None = None) -> None: ...
    def unfreeze(self, intersection: str, *, actor: str) -> None: ...
    def frozen(self) -> dict[str, str | None]: ...
    def audit(self, *, limit: int = 100, intersection: str | None = None) -> list[AuditEntry]: ...
    def add_counts(self, rows: Sequence[CountRow]) -> IngestResult: ...
    def counts_between(self, t0: float, t1: float) -> pd.DataFrame: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def publish_decisions(
    plans: Sequence[TimingPlan], latest: Callable[[str], int], frozen: set[str],
) -> tuple[list[TimingPlan], dict[str, str]]:
    """Split ``plans`` into storable ones and skipped ones with a reason (shared by stores).

    Versions must increase per intersection (immutability) and a frozen intersection never
    takes a plan computed by the scan (manual override wins).
    """
    ok: list[TimingPlan] = []
    skipped: dict[str, str] = {}
    seen: dict[str, int] = {}
    for plan in plans:
        iid = plan.intersection
        if plan.source == "scan" and iid in frozen:
            skipped[iid] = f"intersection {iid!r} is frozen; scan plans are not applied"
            continue
        last = seen.get(iid, latest(iid))
        if plan.version <= last:
            skipped[iid] = f"intersection {iid!r}: version v{plan.version} is not above v{last}"
            continue
        seen[iid] = plan.version
        ok.append(plan)
    return ok, skipped


def counts_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Rows in ``COUNT_COLUMNS`` order as a typed frame sorted by interval then detector."""
    frame = pd.DataFrame(list(rows), columns=list(COUNT_COLUMNS))
    frame["interval_start"] = frame["interval_start"].astype("float64")
    frame["count"] = frame["count"].astype("int64")
    for col in ("occupancy", "speed"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame.sort_values(["interval_start", "detector_id"], ignore_index=True)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def sqlite_url(db: str) -> str:
    """A SQLAlchemy URL for ``db``: used as-is when it has a scheme, else a SQLite file path."""
    return db if "://" in db else f"sqlite:///{db}"


class SqlPlanStore:
    """``PlanStore`` on SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL via a DSN.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///plans.sqlite``, ``postgresql+psycopg://...``) or a path.
    durable
        SQLite only: ``synchronous=FULL`` (fsync every commit: survives power loss, ~7 ms per
        write) instead of the default ``NORMAL`` (WAL: every commit survives a crash or
        ``kill -9`` of the process; a power cut may lose the last commits).
    clock
        Wall clock for audit/ack timestamps (injectable for tests).
    """

    def __init__(self, url: str, *, durable: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = sqlite_url(url)
        self._clock = clock
        self._sqlite = self.url.startswith("sqlite")
        self._write_lock = threading.Lock()
        self._mark = "?" if self._sqlite else "%s"  # DBAPI paramstyle: qmark / format
        self._q_current = f"SELECT version FROM current_plan WHERE intersection = {self._mark}"
        try:
            self._engine = self._make_engine(self.url, durable=durable)
            _META.create_all(self._engine)
        except SQLAlchemyError as exc:
            msg = f"cannot open plan store {self._safe_url()}: {exc}"
            raise StoreError(msg) from exc

    def _safe_url(self) -> str:
        return self.url.split("@")[-1] if "@" in self.url else self.url

    @staticmethod
    def _make_engine(url: str, *, durable: bool) -> Engine:
        if not url.startswith("sqlite"):
            return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        args = {"check_same_thread": False, "timeout": 30}
        if url in ("sqlite://", "sqlite:///:memory:"):  # one shared in-memory database
            engine = create_engine(url, connect_args=args, poolclass=StaticPool)
        else:
            engine = create_engine(url, connect_args=args, pool_size=20, max_overflow=20)
        sync = "FULL" if durable else "NORMAL"

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", f"synchronous={sync}", "busy_timeout=30000",
                           "foreign_keys=ON"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # writers take the lock up front so two writers never deadlock on upgrade
            immediate = conn.get_execution_options().get("immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        # SQLite has one writer at a time; queueing writers of this process on a lock wakes
        # them at once, where SQLite's busy handler would sleep with backoff (p99 spikes)
        lock = self._write_lock if write and self._sqlite else nullcontext()
        try:
            with lock, self._engine.connect() as conn:
                if write:
                    conn.execution_options(immediate=True)
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            msg = f"plan store {self._safe_url()} failed: {exc.__class__.__name__}: {exc}"
            raise StoreError(msg) from exc

    def _audit(self, conn: Connection, actor: str, action: str, intersection: str | None, *,
               version: int | None, detail: str | None) -> None:
        conn.execute(_AUDIT.insert().values(at=self._clock(), actor=actor, action=action,
                                            intersection=intersection, version=version,
                                            detail=detail))

    # -- plans -------------------------------------------------------------------------
    def publish(self, plans: Sequence[TimingPlan], *, actor: str, action: str = "publish",
                pending: bool = False, detail: str | None = None) -> PublishResult:
        """Store ``plans`` (already validated) in one transaction; make them current unless
        ``pending`` (they then wait for ``approve``). Bulk statements keep the write lock
        short (1,300 plans in well under 0.1 s)."""
        bodies = {(p.intersection, p.version): p.model_dump_json() for p in plans}
        ids = sorted({p.intersection for p in plans})
        with self._tx(write=True) as conn:
            frozen = {r[0] for r in conn.execute(select(_FROZEN.c.intersection))}
            latest = self._latest_of(conn, ids)
            ok, skipped = publish_decisions(plans, lambda i: latest.get(i, 0), frozen)
            if ok:
                self._insert_plans(conn, ok, bodies, actor=actor, pending=pending)
                if not pending:
                    self._set_current_many(conn, {p.intersection: p.version for p in ok})
                now = self._clock()
                conn.execute(_AUDIT.insert(), [
                    {"at": now, "actor": actor, "action": "propose" if pending else action,
                     "intersection": p.intersection, "version": p.version, "detail": detail}
                    for p in ok])
        return PublishResult(stored=tuple(ok), skipped=skipped)

    def _insert_plans(self, conn: Connection, plans: list[TimingPlan],
                      bodies: dict[tuple[str, int], str], *, actor: str, pending: bool) -> None:
        now = self._clock()
        conn.execute(_PLANS.insert(), [
            {"intersection": p.intersection, "version": p.version,
             "status": "pending" if pending else "published", "source": p.source,
             "created_at": p.created_at, "valid_until": p.valid_until,
             "body": bodies[(p.intersection, p.version)], "published_by": actor,
             "published_at": now} for p in plans])

    def _set_current_many(self, conn: Connection, versions: dict[str, int]) -> None:
        ins = self._dialect_insert(_CURRENT)
        conn.execute(ins.on_conflict_do_update(index_elements=[_CURRENT.c.intersection],
                                               set_={"version": ins.excluded.version}),
                     [{"intersection": i, "version": v} for i, v in versions.items()])

    @staticmethod
    def _latest_of(conn: Connection, ids: list[str]) -> dict[str, int]:
        q = select(_PLANS.c.intersection, func.max(_PLANS.c.version)).group_by(
            _PLANS.c.intersection)
        if len(ids) <= 500:  # else scanning every intersection is cheaper than a huge IN
            q = q.where(_PLANS.c.intersection.in_(ids))
        return {r[0]: int(r[1]) for r in conn.execute(q)}

    def _set_current(self, conn: Connection, intersection: str, version: int) -> None:
        res = conn.execute(_CURRENT.update().where(_CURRENT.c.intersection == intersection)
                           .values(version=version))
        if res.rowcount == 0:
            conn.execute(_CURRENT.insert().values(intersection=intersection, version=version))

    @staticmethod
    def _latest(conn: Connection, intersection: str) -> int:
        q = select(func.max(_PLANS.c.version)).where(_PLANS.c.intersection == intersection)
        return int(conn.execute(q).scalar() or 0)

    def approve(self, intersection: str, version: int, *, actor: str) -> TimingPlan:
        """Make pending plan ``version`` current; it must be newer than the current one."""
        with self._tx(write=True) as conn:
            row = conn.execute(select(_PLANS).where(_PLANS.c.intersection == intersection,
                                                    _PLANS.c.version == version)).first()
            if row is None:
                msg = f"intersection {intersection!r} has no plan v{version}"
                raise UnknownVersionError(msg)
            cur = conn.execute(select(_CURRENT.c.version)
                               .where(_CURRENT.c.intersection == intersection)).scalar()
            if row.status != "pending" or (cur is not None and cur >= version):
                msg = f"intersection {intersection!r} v{version} is not a pending plan newer " \
                      f"than the current v{cur}"
                raise StoreError(msg)
            conn.execute(_PLANS.update().where(_PLANS.c.intersection == intersection,
                                               _PLANS.c.version == version)
                         .values(status="published"))
            self._set_current(conn, intersection, version)
            self._audit(conn, actor, "approve", intersection, version=version, detail=None)
        return TimingPlan.model_validate_json(row.body)

    def _stored(self, row: Any, cur: int | None) -> StoredPlan:
        return StoredPlan(plan=TimingPlan.model_validate_json(row.body), status=row.status,
                          published_by=row.published_by, published_at=row.published_at,
                          current=cur == row.version)

    def current(self, intersection: str) -> TimingPlan | None:
        """The plan adapters are served for ``intersection`` (expired or not), or None."""
        q = (select(_PLANS.c.body).join(_CURRENT, (_CURRENT.c.intersection == _PLANS.c.intersection)
                                        & (_CURRENT.c.version == _PLANS.c.version))
             .where(_CURRENT.c.intersection == intersection))
        with self._tx() as conn:
            body = conn.execute(q).scalar()
        return None if body is None else TimingPlan.model_validate_json(body)

    def current_version(self, intersection: str) -> int | None:
        """Version number of the current plan: the service's hottest query.

        Straight on the DBAPI connection (5 us instead of ~250 us through the SQLAlchemy
        statement machinery); a single indexed SELECT, so no explicit transaction is needed.
        """
        try:
            conn = self._engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute(self._q_current, (intersection,))
                row = cur.fetchone()
                cur.close()
                conn.commit()  # PostgreSQL opened a transaction for the SELECT
            finally:
                conn.close()  # back to the pool
        except Exception as exc:  # DBAPI errors differ per driver; all mean "store failed"
            msg = f"plan store {self._safe_url()} failed: {exc.__class__.__name__}: {exc}"
            raise StoreError(msg) from exc
        return None if row is None else int(row[0])

    def plan_json(self, intersection: str, version: int) -> tuple[float, str] | None:
        """``(valid_until, plan JSON)`` of one version, unparsed (for serving as-is)."""
        sql = (f"SELECT valid_until, body FROM plans WHERE intersection = {self._mark} "
               f"AND version = {self._mark}")
        with self._raw(write=False) as cur:
            cur.execute(sql, (intersection, version))
            row = cur.fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def current_all(self) -> dict[str, TimingPlan]:
        """Every intersection's current plan."""
        q = select(_PLANS.c.intersection, _PLANS.c.body).join(
            _CURRENT, (_CURRENT.c.intersection == _PLANS.c.intersection)
            & (_CURRENT.c.version == _PLANS.c.version))
        with self._tx() as conn:
            return {r[0]: TimingPlan.model_validate_json(r[1]) for r in conn.execute(q)}

    def get(self, intersection: str, version: int) -> StoredPlan | None:
        """One stored version (published or pending)."""
        with self._tx() as conn:
            row = conn.execute(select(_PLANS).where(_PLANS.c.intersection == intersection,
                                                    _PLANS.c.version == version)).first()
            cur = conn.execute(select(_CURRENT.c.version)
                               .where(_CURRENT.c.intersection == intersection)).scalar()
        return None if row is None else self._stored(row, cur)

    def history(self, intersection: str, *, limit: int = 50) -> list[StoredPlan]:
        """Newest first: every stored version of ``intersection``."""
        with self._tx() as conn:
            rows = conn.execute(select(_PLANS).where(_PLANS.c.intersection == intersection)
                                .order_by(_PLANS.c.version.desc()).limit(limit)).all()
            cur = conn.execute(select(_CURRENT.c.version)
                               .where(_CURRENT.c.intersection == intersection)).scalar()
        return [self._stored(r, cur) for r in rows]

    def latest_version(self, intersection: str) -> int:
        """Highest version stored for ``intersection`` (0 when none)."""
        with self._tx() as conn:
            return self._latest(conn, intersection)

    def latest_versions(self) -> dict[str, int]:
        """Highest stored version of every intersection that has one."""
        q = select(_PLANS.c.intersection, func.max(_PLANS.c.version)).group_by(
            _PLANS.c.intersection)
        with self._tx() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(q)}

    # -- acks, freezes, audit -------------------------------------------------------------
    def record_ack(self, intersection: str, version: int, *, status: AckStatus,
                   reason: str | None, actor: str) -> AckRecord:
        """Record an adapter's ack; the version must exist (one INSERT ... WHERE EXISTS)."""
        rec = AckRecord(intersection, version, status, reason, actor, self._clock())
        m = self._mark
        sql = (f"INSERT INTO acks (intersection, version, status, reason, actor, at) "
               f"SELECT {m}, {m}, {m}, {m}, {m}, {m} WHERE EXISTS (SELECT 1 FROM plans "
               f"WHERE intersection = {m} AND version = {m})")
        with self._raw(write=True) as cur:
            cur.execute(sql, (intersection, version, status, reason, actor, rec.at,
                              intersection, version))
            if cur.rowcount == 0:
                msg = f"intersection {intersection!r} has no plan v{version}"
                raise UnknownVersionError(msg)
        return rec

    def acks(self, intersection: str, *, limit: int = 50) -> list[AckRecord]:
        """Newest first."""
        with self._tx() as conn:
            rows = conn.execute(select(_ACKS).where(_ACKS.c.intersection == intersection)
                                .order_by(_ACKS.c.id.desc()).limit(limit)).all()
        return [AckRecord(r.intersection, r.version, r.status, r.reason, r.actor, r.at)
                for r in rows]

    def freeze(self, intersection: str, *, actor: str, reason: str | None = None) -> None:
        """Manual override: the scan stops changing ``intersection`` until unfrozen."""
        with self._tx(write=True) as conn:
            conn.execute(_FROZEN.delete().where(_FROZEN.c.intersection == intersection))
            conn.execute(_FROZEN.insert().values(intersection=intersection, actor=actor,
                                                 reason=reason, at=self._clock()))
            self._audit(conn, actor, "freeze", intersection, version=None, detail=reason)

    def unfreeze(self, intersection: str, *, actor: str) -> None:
        """Hand ``intersection`` back to the scan."""
        with self._tx(write=True) as conn:
            conn.execute(_FROZEN.delete().where(_FROZEN.c.intersection == intersection))
            self._audit(conn, actor, "unfreeze", intersection, version=None, detail=None)

    def frozen(self) -> dict[str, str | None]:
        """Frozen intersections and the reason given."""
        with self._tx() as conn:
            return {r[0]: r[1] for r in conn.execute(select(_FROZEN.c.intersection,
                                                            _FROZEN.c.reason))}

    def audit(self, *, limit: int = 100, intersection: str | None = None) -> list[AuditEntry]:
        """Newest first, optionally for one intersection."""
        q = select(_AUDIT).order_by(_AUDIT.c.id.desc()).limit(limit)
        if intersection is not None:
            q = q.where(_AUDIT.c.intersection == intersection)
        with self._tx() as conn:
            return [AuditEntry(r.at, r.actor, r.action, r.intersection, r.version, r.detail)
                    for r in conn.execute(q)]

    # -- counts ---------------------------------------------------------------------------
    def add_counts(self, rows: Sequence[CountRow]) -> IngestResult:
        """Store rows idempotently per (detector, interval): a repeat is a no-op duplicate."""
        if not rows:
            return IngestResult(0, 0)
        now = self._clock()
        unique = {(r.detector_id, float(r.interval_start)): r for r in rows}
        m = self._mark
        sql = (f"INSERT INTO counts (detector_id, interval_start, count, occupancy, speed, "
               f"received_at) VALUES ({m}, {m}, {m}, {m}, {m}, {m}) "
               f"ON CONFLICT (detector_id, interval_start) DO NOTHING")
        values = [(r.detector_id, float(r.interval_start), int(r.count),
                   _nan_to_none(r.occupancy), _nan_to_none(r.speed), now)
                  for r in unique.values()]
        with self._raw(write=True) as cur:
            inserted = 0
            for row in values:  # per-row rowcount: exact on every driver
                cur.execute(sql, row)
                inserted += max(cur.rowcount, 0)
        return IngestResult(inserted=inserted, duplicates=len(rows) - inserted)

    @contextmanager
    def _raw(self, *, write: bool) -> Iterator[Any]:
        """A DBAPI cursor in one transaction, for the hot writes (SQLAlchemy's statement
        machinery costs ~0.25 ms per statement, the database itself ~0.01 ms)."""
        lock = self._write_lock if write and self._sqlite else nullcontext()
        try:
            with lock:
                conn = self._engine.raw_connection()
                try:
                    cur = conn.cursor()
                    if self._sqlite:
                        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    yield cur
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
                finally:
                    conn.close()
        except StoreError:
            raise
        except Exception as exc:  # DBAPI errors differ per driver; all mean "store failed"
            msg = f"plan store {self._safe_url()} failed: {exc.__class__.__name__}: {exc}"
            raise StoreError(msg) from exc

    def _dialect_insert(self, table: Table) -> Any:
        """INSERT with ON CONFLICT support (SQLite and PostgreSQL spell it the same)."""
        if self._engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415
            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert  # noqa: PLC0415
        return sqlite_insert(table)

    def counts_between(self, t0: float, t1: float) -> pd.DataFrame:
        """Counts with ``t0 <= interval_start < t1`` as a frame of ``COUNT_COLUMNS``."""
        q = select(_COUNTS.c.detector_id, _COUNTS.c.interval_start, _COUNTS.c.count,
                   _COUNTS.c.occupancy, _COUNTS.c.speed).where(
            _COUNTS.c.interval_start >= t0, _COUNTS.c.interval_start < t1)
        with self._tx() as conn:
            return counts_frame(conn.execute(q).all())

    def ping(self) -> None:
        """Raise ``StoreError`` if the database cannot be reached."""
        with self._tx() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()

