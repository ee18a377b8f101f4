"""Controller adapter HTTP API: plan pull/ack, count ingestion, engineer actions, health, metrics.

``create_app(store, net, keys=...)`` builds a FastAPI app (no global app, no global store).
Its OpenAPI document is the adapter contract. Safety rules enforced here: a plan failing
``signalopt.plan.plan_problems`` is never stored or served; an expired plan is never served
(adapters get ``mode: "fallback"`` and the controller's own program instead).

Auth: ``X-API-Key`` header; keys are stored as sha256 hashes (``ApiKey.key_sha256``) with a
role (adapter, ingest, engineer) and, for adapters, the intersections (fnmatch patterns) of
their region. Missing/unknown key -> 401; wrong role or another region's intersection -> 403.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from signalopt.errors import StoreError
from signalopt.network import CompiledNetwork
from signalopt.plan import OFFSET_REFERENCE, PlanLimits, TimingPlan, fallback_plan, plan_problems
from signalopt.service_auth import ApiKey, Authenticator
from signalopt.service_metrics import Metrics, RequestGuard
from signalopt.service_models import (
    AckIn,
    AckOut,
    ApproveIn,
    AuditOut,
    CountsIn,
    CountsOut,
    EngineerPlanIn,
    ErrorOut,
    FreezeIn,
    HealthOut,
    PlanResponse,
    RollbackIn,
    StoredPlanOut,
    validate_count_rows,
)
from signalopt.store import PlanStore, UnknownVersionError

__all__ = ["ServiceConfig", "create_app"]


class ServiceConfig(BaseModel):
    """Limits and timing of the service; built once at the edge and passed in."""

    model_config = ConfigDict(frozen=True)

    scan_s: float = Field(default=120.0, gt=0, description="scan period; plans live <= 2 scans")
    max_body_bytes: int = Field(default=2_000_000, gt=0)
    max_count_rows: int = Field(default=20_000, gt=0)
    plan_cache_size: int = Field(default=8192, gt=0)
    worker_threads: int = Field(default=8, gt=0, le=256, description=(
        "threads for blocking store writes; few threads = less GIL contention, and SQLite "
        "writes are serialized anyway"))
    limits: PlanLimits = PlanLimits()


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or unknown API key"},
    403: {"model": ErrorOut, "description": "wrong role, or another region's intersection"},
    404: {"model": ErrorOut, "description": "unknown intersection or plan version"},
    409: {"model": ErrorOut, "description": "conflicts with the store's state"},
    413: {"model": ErrorOut, "description": "request body too large"},
    422: {"model": ErrorOut, "description": "malformed request, or plan breaks an invariant"},
}


class _Ctx:
    """Everything the routes share; lives on ``app.state.ctx`` (one per app)."""

    def __init__(self, store: PlanStore, net: CompiledNetwork, *, config: ServiceConfig,
                 clock: Callable[[], float], auth: Authenticator, metrics: Metrics) -> None:
        self.store, self.net, self.config, self.clock = store, net, config, clock
        self.auth, self.metrics = auth, metrics
        self.bases = {i.id: i for i in net.spec.intersections}
        self.fallback_json = {i.id: fallback_plan(i).model_dump_json()
                              for i in net.spec.intersections}
        self._cache: dict[tuple[str, int], tuple[float, str]] = {}

    def plan(self, iid: str, version: int) -> tuple[float, str] | None:
        """``(valid_until, JSON)`` of a stored plan; plans are immutable, so caching by
        (intersection, version) is always valid."""
        key = (iid, version)
        hit = self._cache.get(key)
        if hit is None:
            hit = self.store.plan_json(iid, version)
            if hit is None:
                return None
            if len(self._cache) >= self.config.plan_cache_size:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def base(self, iid: str) -> Any:
        base = self.bases.get(iid)
        if base is None:
            raise HTTPException(404, f"unknown intersection {iid!r}")
        return base

    def check(self, plan: TimingPlan) -> None:
        """The one validator; 422 naming every broken invariant."""
        base = self.base(plan.intersection)
        problems = plan_problems(plan, base, limits=self.config.limits,
                                 prev=self.store.current(plan.intersection))
        if problems:
            raise HTTPException(422, "plan rejected: " + "; ".join(problems))


async def _ctx(request: Request) -> _Ctx:
    # async: no I/O here, and a sync dependency would cost a thread hop per request
    return request.app.state.ctx


Ctx = Annotated[_Ctx, Depends(_ctx)]
_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                           description="API key; roles adapter, ingest, engineer")


def _require(*roles: str) -> Callable[..., ApiKey]:
    async def dep(request: Request, raw: Annotated[str | None, Depends(_KEY_HEADER)]) -> ApiKey:
        ctx: _Ctx = request.app.state.ctx
        key = ctx.auth.authenticate(raw)
        ctx.auth.authorize(key, roles, request.path_params.get("iid"))
        return key
    return dep


Adapter = Annotated[ApiKey, Depends(_require("adapter", "engineer"))]
AdapterOnly = Annotated[ApiKey, Depends(_require("adapter"))]
Ingest = Annotated[ApiKey, Depends(_require("ingest"))]
Engineer = Annotated[ApiKey, Depends(_require("engineer"))]


def create_app(
    store: PlanStore,
    net: CompiledNetwork,
    *,
    keys: list[ApiKey],
    config: ServiceConfig | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the adapter API over ``store`` for the intersections and detectors of ``net``.

    Parameters
    ----------
    store
        Where plans, acks, audit and counts live (``SqlPlanStore`` or a fake).
    net
        The compiled network: intersections (fallback programs) and detectors (ingestion).
    keys
        Hashed API keys with roles; see ``signalopt.service_auth.new_key``.
    config
        Limits; defaults suit a 1,300-intersection region.
    clock
        Plan clock (unix seconds live, simulated seconds in replay); decides expiry.
    """
    config = config or ServiceConfig()
    metrics = Metrics()
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.worker_threads
        gc.freeze()  # startup objects (network, keys, models) leave the GC's work: no long
        yield        # full collections in the middle of a burst of requests

    app = FastAPI(
        title="signalopt controller adapter API", version="1",
        description=__doc__, lifespan=lifespan,
        responses={401: _ERRORS[401], 413: _ERRORS[413], 422: _ERRORS[422]},
    )
    app.state.ctx = _Ctx(store, net, config=config, clock=clock,
                         auth=Authenticator(keys, net.int_ids), metrics=metrics)
    app.add_middleware(RequestGuard, metrics=metrics, max_body_bytes=config.max_body_bytes)
    _install_errors(app)
    _plan_routes(app)
    _engineer_routes(app)
    _misc_routes(app)
    return app


def _install_errors(app: FastAPI) -> None:
    """Every error answers ``{"detail": "<message naming the culprit>"}``."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:20]:
            loc = ".".join(str(x) for x in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store(_req: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"plan store unavailable: {exc}"}, status_code=503)


def _plan_answer(ctx: _Ctx, iid: str) -> tuple[str, str, bytes]:
    """(mode, etag, JSON body) of what the adapter must run now: the current plan, or the
    fallback when none is valid. The body is a ``PlanResponse``, assembled from cached
    immutable plan JSON (the hot path of the service)."""
    now = ctx.clock()
    version = ctx.store.current_version(iid)
    cached = ctx.plan(iid, version) if version is not None else None
    reason = None
    if cached is None:
        reason = "no plan published yet"
    elif now >= cached[0]:
        reason = f"plan v{version} expired at {cached[0]:.0f} (now {now:.0f})"
    served = cached if reason is None else None
    mode = "plan" if served else "fallback"
    etag = f'"{iid}-{mode}-{version if served else 0}"'
    head = json.dumps({
        "intersection": iid, "mode": mode, "reason": reason, "etag": etag, "server_time": now,
        "version": version if served else None,
        "valid_until": served[0] if served else None,
        "offset_reference": OFFSET_REFERENCE})
    body = (f'{head[:-1]}, "plan": {served[1] if served else "null"}, '
            f'"fallback": {ctx.fallback_json[iid]}}}')
    return mode, etag, body.encode()


def _plan_routes(app: FastAPI) -> None:
    @app.get("/v1/intersections/{iid}/plan", response_model=PlanResponse, tags=["adapter"],
             responses={304: {"description": "unchanged since If-None-Match"},
                        403: _ERRORS[403], 404: _ERRORS[404]},
             openapi_extra={"security": [{"APIKeyHeader": []}]})
    async def get_plan(iid: str, request: Request) -> Response:
        """The plan to run now (``mode: plan``) or the signal to fall back (``mode: fallback``).

        Poll it; send the last ``ETag`` as ``If-None-Match`` to get 304 when nothing changed.
        A plan is never served past its ``valid_until`` (at most two scans ahead).
        """
        # The service's hottest path, kept lean: async (one indexed read, and WAL readers
        # never wait on writers, is cheaper than a thread hop) and auth inline (FastAPI's
        # dependency solving cost more than the rest of the request; same checks as _require)
        ctx: _Ctx = request.app.state.ctx
        key = ctx.auth.authenticate(request.headers.get("x-api-key"))
        ctx.auth.authorize(key, ("adapter", "engineer"), iid)
        ctx.base(iid)
        mode, etag, body = _plan_answer(ctx, iid)
        ctx.metrics.plans_served.labels(mode).inc()
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(content=body, media_type="application/json", headers=headers)

    @app.post("/v1/intersections/{iid}/ack", response_model=AckOut, tags=["adapter"],
              responses={403: _ERRORS[403], 404: _ERRORS[404]},
              openapi_extra={"security": [{"APIKeyHeader": []}]})
    async def ack(iid: str, body: AckIn, request: Request) -> AckOut:
        """Report that plan ``version`` was applied, or rejected with a reason."""
        # lean like get_plan (every adapter acks each new plan: a burst after each scan)
        ctx: _Ctx = request.app.state.ctx
        key = ctx.auth.authenticate(request.headers.get("x-api-key"))
        ctx.auth.authorize(key, ("adapter",), iid)
        ctx.base(iid)
        try:  # a write may wait for the database lock: off the event loop
            rec = await run_in_threadpool(ctx.store.record_ack, iid, body.version,
                                          status=body.status, reason=body.reason,
                                          actor=key.name)
        except UnknownVersionError as exc:
            raise HTTPException(404, str(exc)) from exc
        ctx.metrics.acks.labels(body.status).inc()
        return AckOut(intersection=iid, version=rec.version, status=rec.status, at=rec.at)

    @app.post("/v1/counts", response_model=CountsOut, tags=["ingest"])
    def post_counts(body: CountsIn, ctx: Ctx, _key: Ingest) -> CountsOut:
        """Store detector interval counts; idempotent per (detector, interval).

        Bad rows are rejected one by one with the reason; good rows are stored.
        """
        if len(body.rows) > ctx.config.max_count_rows:
            raise HTTPException(413, f"{len(body.rows)} rows exceed the limit of "
                                     f"{ctx.config.max_count_rows} per request")
        good, rejected = validate_count_rows(body.rows, ctx.net)
        res = ctx.store.add_counts(good)
        ctx.metrics.count_rows.labels("inserted").inc(res.inserted)
        ctx.metrics.count_rows.labels("duplicate").inc(res.duplicates)
        ctx.metrics.count_rows.labels("rejected").inc(len(rejected))
        return CountsOut(received=len(body.rows), inserted=res.inserted,
                         duplicates=res.duplicates, rejected=rejected)


def _new_plan(ctx: _Ctx, iid: str, template: TimingPlan | EngineerPlanIn,
              valid_for_s: float) -> TimingPlan:
    """An engineer plan on the next version, valid ``valid_for_s`` from now."""
    now = ctx.clock()
    return TimingPlan(
        intersection=iid, version=ctx.store.latest_version(iid) + 1, created_at=now,
        valid_until=now + valid_for_s, cycle=template.cycle, offset=template.offset,
        phases=tuple(template.phases),
        rings=tuple(tuple(r) for r in template.rings) if template.rings
        else (tuple(range(len(template.phases))),),
        source="engineer",
    )


def _stored(ctx: _Ctx, iid: str, version: int) -> Any:
    """A stored version of a known intersection's plan, or 404 naming both."""
    ctx.base(iid)
    rec = ctx.store.get(iid, version)
    if rec is None:
        raise HTTPException(404, f"intersection {iid!r} has no plan v{version}")
    return rec


def _publish_one(ctx: _Ctx, plan: TimingPlan, actor: str, action: str,
                 detail: str | None) -> StoredPlanOut:
    ctx.check(plan)
    res = ctx.store.publish([plan], actor=actor, action=action, detail=detail)
    if not res.stored:
        raise HTTPException(409, res.skipped.get(plan.intersection, "not stored"))
    ctx.metrics.publishes.labels(action).inc()
    return StoredPlanOut.of(plan, status="published", current=True, by=actor, at=time.time())


def _engineer_routes(app: FastAPI) -> None:
    both = {403: _ERRORS[403], 404: _ERRORS[404], 409: _ERRORS[409]}

    @app.post("/v1/intersections/{iid}/plans", response_model=StoredPlanOut, tags=["engineer"],
              responses=both)
    def publish(iid: str, body: EngineerPlanIn, ctx: Ctx, key: Engineer) -> StoredPlanOut:
        """Publish an engineer's plan as the current one (validated like every plan)."""
        ctx.base(iid)
        return _publish_one(ctx, _new_plan(ctx, iid, body, body.valid_for_s), key.name,
                            "publish", body.note)

    @app.post("/v1/intersections/{iid}/approve", response_model=StoredPlanOut,
              tags=["engineer"], responses=both)
    def approve(iid: str, body: ApproveIn, ctx: Ctx, key: Engineer) -> StoredPlanOut:
        """Approve a pending scan plan (when the live driver runs with approval)."""
        rec = _stored(ctx, iid, body.version)
        if ctx.clock() >= rec.plan.valid_until:
            raise HTTPException(409, f"plan v{body.version} expired; it cannot be approved")
        try:
            plan = ctx.store.approve(iid, body.version, actor=key.name)
        except StoreError as exc:
            raise HTTPException(409, str(exc)) from exc
        ctx.metrics.publishes.labels("approve").inc()
        return StoredPlanOut.of(plan, status="published", current=True, by=key.name,
                                at=time.time())

    @app.post("/v1/intersections/{iid}/rollback", response_model=StoredPlanOut,
              tags=["engineer"], responses=both)
    def rollback(iid: str, body: RollbackIn, ctx: Ctx, key: Engineer) -> StoredPlanOut:
        """Serve the timing of an earlier version again, as a new version (history stays)."""
        rec = _stored(ctx, iid, body.version)
        plan = _new_plan(ctx, iid, rec.plan, body.valid_for_s)
        return _publish_one(ctx, plan, key.name, "rollback", f"rollback to v{body.version}")

    @app.post("/v1/intersections/{iid}/freeze", tags=["engineer"], responses=both)
    def freeze(iid: str, body: FreezeIn, ctx: Ctx, key: Engineer) -> dict[str, Any]:
        """Manual override: the scan no longer changes this intersection."""
        ctx.base(iid)
        ctx.store.freeze(iid, actor=key.name, reason=body.reason)
        return {"intersection": iid, "frozen": True, "reason": body.reason}

    @app.post("/v1/intersections/{iid}/unfreeze", tags=["engineer"], responses=both)
    def unfreeze(iid: str, ctx: Ctx, key: Engineer) -> dict[str, Any]:
        """Hand the intersection back to the scan."""
        ctx.base(iid)
        ctx.store.unfreeze(iid, actor=key.name)
        return {"intersection": iid, "frozen": False}

    @app.get("/v1/intersections/{iid}/history", response_model=list[StoredPlanOut],
             tags=["engineer"], responses=both)
    def history(iid: str, ctx: Ctx, _key: Engineer,
                limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[StoredPlanOut]:
        """Stored versions, newest first, with the latest ack of each."""
        ctx.base(iid)
        acks = {}
        for a in reversed(ctx.store.acks(iid, limit=1000)):
            acks[a.version] = a
        return [StoredPlanOut.of(r.plan, status=r.status, current=r.current, by=r.published_by,
                                 at=r.published_at, ack=acks.get(r.plan.version))
                for r in ctx.store.history(iid, limit=limit)]

    @app.get("/v1/audit", response_model=list[AuditOut], tags=["engineer"])
    def audit(ctx: Ctx, _key: Engineer, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
              intersection: str | None = None) -> list[AuditOut]:
        """Who published, approved, froze or rolled back what, newest first."""
        return [AuditOut(**vars(e)) for e in ctx.store.audit(limit=limit,
                                                             intersection=intersection)]


def _misc_routes(app: FastAPI) -> None:
    @app.get("/v1/health", response_model=HealthOut, tags=["ops"],
             responses={503: {"model": HealthOut, "description": "store unreachable"}})
    def health(ctx: Ctx) -> Any:
        """Liveness and store reachability (no key needed)."""
        try:
            ctx.store.ping()
            ok, err = True, None
        except StoreError as exc:
            ok, err = False, str(exc)
        out = HealthOut(status="ok" if ok else "degraded", store="ok" if ok else err,
                        intersections=ctx.net.n_intersections, detectors=ctx.net.n_detectors,
                        plan_clock=ctx.clock())
        return out if ok else JSONResponse(out.model_dump(), status_code=503)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    def metrics(ctx: Ctx) -> Response:
        """Prometheus text exposition of this app's counters and latency histograms."""
        body, ctype = ctx.metrics.render()
        return Response(content=body, media_type=ctype)
