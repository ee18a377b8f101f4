"""Request/response models of the adapter API (the OpenAPI contract) and count-row checks."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from signalopt.network import CompiledNetwork
from signalopt.plan import PhaseTiming, TimingPlan
from signalopt.store import AckRecord, CountRow

MAX_VERSION = 2**31 - 1  # versions are 32-bit integers in every store backend
_EXAMPLE_PHASES = [
    {"state": "GGrr", "duration": 32.0, "min_dur": 10.0, "max_dur": 60.0, "is_green": True},
    {"state": "yyrr", "duration": 3.0, "min_dur": 3.0, "max_dur": 3.0, "is_green": False},
    {"state": "rrGG", "duration": 28.0, "min_dur": 10.0, "max_dur": 60.0, "is_green": True},
    {"state": "rryy", "duration": 3.0, "min_dur": 3.0, "max_dur": 3.0, "is_green": False},
]
_EXAMPLE_PLAN = {"intersection": "A", "version": 7, "created_at": 1700000000.0,
                 "valid_until": 1700000240.0, "cycle": 66.0, "offset": 12.0,
                 "offset_reference": "start of phase 0 (first green) relative to t = 0 of the "
                                     "plan clock, mod cycle",
                 "phases": _EXAMPLE_PHASES, "rings": [[0, 1, 2, 3]], "source": "scan"}


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer: one message naming the culprit."""

    detail: str = Field(examples=["unknown intersection 'Z9'"])


class PlanResponse(BaseModel):
    """What the adapter must run now.

    ``mode == "plan"``: run ``plan`` until ``valid_until`` (plan clock, ``server_time``).
    ``mode == "fallback"``: no valid plan (never published, or expired because the engine
    stopped publishing): run ``fallback``, the controller's own program, and keep polling.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "intersection": "A", "mode": "plan", "reason": None, "version": 7,
        "etag": '"A-plan-7"', "server_time": 1700000010.0, "valid_until": 1700000240.0,
        "offset_reference": _EXAMPLE_PLAN["offset_reference"], "plan": _EXAMPLE_PLAN,
        "fallback": {**_EXAMPLE_PLAN, "version": 1, "source": "fallback"}}]})

    intersection: str
    mode: Literal["plan", "fallback"]
    reason: str | None = Field(description="why the adapter must fall back (mode fallback)")
    version: int | None = Field(description="version of `plan`; null in fallback mode")
    etag: str
    server_time: float = Field(description="plan clock now, seconds")
    valid_until: float | None = Field(description="plan clock time the plan stops being valid")
    offset_reference: str
    plan: TimingPlan | None
    fallback: TimingPlan = Field(description="the controller's own base program")


class AckIn(BaseModel):
    """An adapter reports a plan version applied, or rejected with a reason."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"version": 7, "status": "applied"},
        {"version": 8, "status": "rejected", "reason": "controller refused split table"}]})

    version: int = Field(ge=1, le=MAX_VERSION)
    status: Literal["applied", "rejected"]
    reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _reason_when_rejected(self) -> AckIn:
        if self.status == "rejected" and not (self.reason and self.reason.strip()):
            msg = "a rejected ack needs a reason"
            raise ValueError(msg)
        return self


class AckOut(BaseModel):
    """The recorded acknowledgement."""

    intersection: str
    version: int
    status: str
    at: float


class CountRowIn(BaseModel):
    """One detector interval, exactly ``signalopt.io.counts.COUNT_COLUMNS``."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    detector_id: str = Field(min_length=1, max_length=128)
    interval_start: float = Field(ge=0, description="seconds since the day/scenario reference")
    count: int = Field(ge=0, le=100_000)
    occupancy: float | None = Field(default=None, ge=0, le=100, description="percent")
    speed: float | None = Field(default=None, ge=0, le=100, description="m/s; null if none")


class CountsIn(BaseModel):
    """A batch of count rows; each row is checked on its own."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rows": [
        {"detector_id": "w_A_in", "interval_start": 3600.0, "count": 12, "occupancy": 8.5,
         "speed": 11.2}]}]})

    rows: list[Any] = Field(json_schema_extra={"items": CountRowIn.model_json_schema()})


class RowRejection(BaseModel):
    """A rejected row: its index in ``rows``, detector id when readable, and why."""

    row: int
    detector_id: str | None
    reason: str


class CountsOut(BaseModel):
    """Outcome of a batch: good rows stored (new or already present), bad rows with reasons."""

    received: int
    inserted: int
    duplicates: int = Field(description="rows already stored for that detector and interval")
    rejected: list[RowRejection]


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in e['loc']) or 'row'}: {e['msg']}"
                     for e in exc.errors()[:5])


def validate_count_rows(rows: list[Any], net: CompiledNetwork,
                        ) -> tuple[list[CountRow], list[RowRejection]]:
    """Split ``rows`` into storable ``CountRow`` and rejections naming row, detector and field.

    Thin adapter until ``signalopt.io.counts`` offers row validation against a network.
    """
    good: list[CountRow] = []
    bad: list[RowRejection] = []
    for k, raw in enumerate(rows):
        det = raw.get("detector_id") if isinstance(raw, dict) else None
        det = det if isinstance(det, str) else None
        try:
            row = CountRowIn.model_validate(raw)
        except ValidationError as exc:
            bad.append(RowRejection(row=k, detector_id=det, reason=_reason(exc)))
            continue
        if row.detector_id not in net.det_index:
            bad.append(RowRejection(row=k, detector_id=det,
                                    reason=f"unknown detector id {row.detector_id!r}"))
            continue
        nan = math.nan
        good.append(CountRow(row.detector_id, row.interval_start, row.count,
                             nan if row.occupancy is None else row.occupancy,
                             nan if row.speed is None else row.speed))
    return good, bad


class EngineerPlanIn(BaseModel):
    """An engineer's timing for one intersection; version and times are set by the server."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "cycle": 66.0, "offset": 12.0, "phases": _EXAMPLE_PHASES, "rings": [[0, 1, 2, 3]],
        "valid_for_s": 3600.0, "note": "event traffic"}]})

    cycle: float = Field(gt=0, le=600)
    offset: float = Field(ge=0)
    phases: list[PhaseTiming] = Field(min_length=1, max_length=64)
    rings: list[list[int]] | None = Field(default=None, max_length=8)
    valid_for_s: float = Field(default=3600.0, gt=0, le=7 * 86400)
    note: str | None = Field(default=None, max_length=2000)


class ApproveIn(BaseModel):
    """Approve pending plan ``version``."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_VERSION)


class RollbackIn(BaseModel):
    """Serve the timing of ``version`` again (as a new version) for ``valid_for_s``."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_VERSION)
    valid_for_s: float = Field(default=3600.0, gt=0, le=7 * 86400)


class FreezeIn(BaseModel):
    """Why the intersection is taken out of the scan's hands."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)


class StoredPlanOut(BaseModel):
    """A stored plan version with who published it and its latest ack."""

    intersection: str
    version: int
    status: str
    current: bool
    source: str
    created_at: float
    valid_until: float
    published_by: str
    published_at: float
    ack: str | None = None
    ack_reason: str | None = None
    plan: TimingPlan

    @classmethod
    def of(cls, plan: TimingPlan, *, status: str, current: bool, by: str, at: float,
           ack: AckRecord | None = None) -> StoredPlanOut:
        return cls(intersection=plan.intersection, version=plan.version, status=status,
                   current=current, source=plan.source, created_at=plan.created_at,
                   valid_until=plan.valid_until, published_by=by, published_at=at,
                   ack=ack.status if ack else None, ack_reason=ack.reason if ack else None,
                   plan=plan)


class AuditOut(BaseModel):
    """One audit entry."""

    at: float
    actor: str
    action: str
    intersection: str | None
    version: int | None
    detail: str | None


class HealthOut(BaseModel):
    """Service and store state."""

    status: Literal["ok", "degraded"]
    store: str | None
    intersections: int
    detectors: int
    plan_clock: float
