"""Adapter HTTP API through TestClient with an injected store and a hand-set plan clock.

Network: tests/service_fixtures.py (intersections A and B, 66 s base cycle, 7 entry loops).
Keys: an adapter for region ``A*``, an ingest key and an engineer key.
"""

from __future__ import annotations

from typing import Any

import pytest
from service_fixtures import PHASES, make_client, scan_plan, tiny_spec

from signalopt.errors import StoreError
from signalopt.network import compile_network
from signalopt.service import ServiceConfig, create_app
from signalopt.service_auth import new_key
from signalopt.store import SqlPlanStore
from signalopt.store_memory import MemoryPlanStore

T0 = 10_000.0


class Env:
    """App + store + keys + a settable plan clock."""

    def __init__(self, store: Any, config: ServiceConfig | None = None) -> None:
        self.now = T0
        self.store = store
        raws = {}
        keys = []
        for name, role, scope in (("cab-a", "adapter", ["A*"]), ("ing", "ingest", ["*"]),
                                  ("eve", "engineer", ["*"])):
            raws[role], key = new_key(name, role, scope)  # type: ignore[arg-type]
            keys.append(key)
        self.app = create_app(store, compile_network(tiny_spec()), keys=keys, config=config,
                              clock=lambda: self.now)
        self.client: Any = make_client(self.app)
        self.h = {role: {"X-API-Key": raw} for role, raw in raws.items()}


@pytest.fixture(params=["memory", "sqlite"])
def env(request: pytest.FixtureRequest, tmp_path: Any) -> Env:
    if request.param == "memory":
        return Env(MemoryPlanStore())
    return Env(SqlPlanStore(str(tmp_path / "s.sqlite")))


def _engineer_body(ns: float = 30.0, ew: float = 30.0, **kw: Any) -> dict[str, Any]:
    durs = (ns, 3.0, ew, 3.0)
    phases = [{"state": p.state, "duration": d, "min_dur": min(p.min_dur, d),
               "max_dur": max(p.max_dur, d), "is_green": p.is_green}
              for p, d in zip(PHASES, durs, strict=True)]
    return {"cycle": sum(durs), "offset": 0.0, "phases": phases, **kw}


def test_auth_401_and_403(env: Env) -> None:
    c = env.client
    r = c.get("/v1/intersections/A/plan")
    assert r.status_code == 401
    assert "X-API-Key" in r.json()["detail"]
    assert c.get("/v1/intersections/A/plan", headers={"X-API-Key": "nope"}).status_code == 401
    r = c.get("/v1/intersections/B/plan", headers=env.h["adapter"])
    assert r.status_code == 403
    assert "outside its region" in r.json()["detail"]
    r = c.get("/v1/intersections/A/plan", headers=env.h["ingest"])
    assert r.status_code == 403
    assert "role 'ingest'" in r.json()["detail"]
    assert c.get("/v1/intersections/B/plan", headers=env.h["engineer"]).status_code == 200
    assert c.post("/v1/counts", headers=env.h["adapter"], json={"rows": []}).status_code == 403
    r = c.post("/v1/intersections/A/freeze", headers=env.h["adapter"], json={})
    assert r.status_code == 403
    r = c.get("/v1/intersections/Z9/plan", headers=env.h["engineer"])
    assert (r.status_code, r.json()["detail"]) == (404, "unknown intersection 'Z9'")


def test_plan_etag_304_and_fallback_when_nothing_published(env: Env) -> None:
    c, h = env.client, env.h["adapter"]
    r = c.get("/v1/intersections/A/plan", headers=h)
    body = r.json()
    assert (body["mode"], body["plan"]) == ("fallback", None)
    assert body["reason"] == "no plan published yet"
    assert [p["duration"] for p in body["fallback"]["phases"]] == [30, 3, 30, 3]
    env.store.publish([scan_plan("A", 1, created_at=T0, ns=36, ew=24)], actor="scan")
    r = c.get("/v1/intersections/A/plan", headers=h)
    body = r.json()
    assert (body["mode"], body["version"], r.headers["etag"]) == ("plan", 1, '"A-plan-1"')
    assert body["valid_until"] == T0 + 240  # two 120 s scans
    assert body["plan"]["phases"][0]["duration"] == 36
    assert "phase 0" in body["offset_reference"]
    r = c.get("/v1/intersections/A/plan", headers={**h, "If-None-Match": '"A-plan-1"'})
    assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", '"A-plan-1"')
    env.store.publish([scan_plan("A", 2, created_at=T0)], actor="scan")
    r = c.get("/v1/intersections/A/plan", headers={**h, "If-None-Match": '"A-plan-1"'})
    assert (r.status_code, r.json()["version"]) == (200, 2)


def test_expired_plan_is_never_served(env: Env) -> None:
    """valid_until = T0 + 240: at T0 + 239 the plan is served, at T0 + 240 the fallback."""
    c, h = env.client, env.h["adapter"]
    env.store.publish([scan_plan("A", 1, created_at=T0, ns=40, ew=20)], actor="scan")
    env.now = T0 + 239
    assert c.get("/v1/intersections/A/plan", headers=h).json()["mode"] == "plan"
    env.now = T0 + 240
    r = c.get("/v1/intersections/A/plan", headers={**h, "If-None-Match": '"A-plan-1"'})
    body = r.json()
    assert (r.status_code, body["mode"], body["plan"]) == (200, "fallback", None)
    assert body["version"] is None
    assert "expired" in body["reason"]
    assert r.headers["etag"] == '"A-fallback-0"'


def test_engineer_publish_is_validated_and_audited(env: Env) -> None:
    c, h = env.client, env.h["engineer"]
    bad = _engineer_body()
    bad["phases"][1].update(duration=2.0, min_dur=2.0, max_dur=2.0)  # shortened yellow
    bad["cycle"] = 65.0
    r = c.post("/v1/intersections/A/plans", headers=h, json=bad)
    assert r.status_code == 422
    assert "clearance shorter than the network's" in r.json()["detail"]
    assert env.store.current("A") is None  # never stored, never served
    r = c.post("/v1/intersections/A/plans", headers=h,
               json=_engineer_body(40, 20, valid_for_s=600, note="stadium"))
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["source"]) == (1, "engineer")
    served = c.get("/v1/intersections/A/plan", headers=env.h["adapter"]).json()
    assert (served["mode"], served["valid_until"]) == ("plan", T0 + 600)
    entry = c.get("/v1/audit", headers=h).json()[0]
    assert (entry["actor"], entry["action"], entry["version"], entry["detail"]) == \
        ("eve", "publish", 1, "stadium")


def test_rollback_freeze_and_history(env: Env) -> None:
    c, h = env.client, env.h["engineer"]
    env.store.publish([scan_plan("A", 1, created_at=T0, ns=40, ew=20)], actor="scan")
    env.store.publish([scan_plan("A", 2, created_at=T0, ns=30, ew=30)], actor="scan")
    r = c.post("/v1/intersections/A/rollback", headers=h, json={"version": 1})
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["plan"]["phases"][0]["duration"]) == (3, 40)
    assert c.post("/v1/intersections/A/rollback", headers=h, json={"version": 9}).status_code == 404
    r = c.post("/v1/intersections/A/freeze", headers=h, json={"reason": "works"})
    assert r.json()["frozen"]
    assert env.store.frozen() == {"A": "works"}
    hist = c.get("/v1/intersections/A/history", headers=h).json()
    assert [(x["version"], x["current"]) for x in hist] == [(3, True), (2, False), (1, False)]
    assert c.post("/v1/intersections/A/unfreeze", headers=h).json() == {"intersection": "A",
                                                                        "frozen": False}
    actions = [e["action"] for e in c.get("/v1/audit?intersection=A", headers=h).json()]
    assert actions[:3] == ["unfreeze", "freeze", "rollback"]


def test_approve_pending_plan(env: Env) -> None:
    c, h = env.client, env.h["engineer"]
    env.store.publish([scan_plan("A", 1, created_at=T0)], actor="scan", pending=True)
    assert c.get("/v1/intersections/A/plan", headers=h).json()["mode"] == "fallback"
    r = c.post("/v1/intersections/A/approve", headers=h, json={"version": 1})
    assert r.status_code == 200, r.text
    assert c.get("/v1/intersections/A/plan", headers=h).json()["version"] == 1
    r = c.post("/v1/intersections/A/approve", headers=h, json={"version": 1})
    assert r.status_code == 409
    env.store.publish([scan_plan("A", 2, created_at=T0)], actor="scan", pending=True)
    env.now = T0 + 500
    r = c.post("/v1/intersections/A/approve", headers=h, json={"version": 2})
    assert (r.status_code, "expired" in r.json()["detail"]) == (409, True)


def test_ack(env: Env) -> None:
    c, h = env.client, env.h["adapter"]
    env.store.publish([scan_plan("A", 1, created_at=T0)], actor="scan")
    r = c.post("/v1/intersections/A/ack", headers=h, json={"version": 1, "status": "rejected"})
    assert (r.status_code, "needs a reason" in r.json()["detail"]) == (422, True)
    r = c.post("/v1/intersections/A/ack", headers=h,
               json={"version": 1, "status": "rejected", "reason": "cabinet refused"})
    assert r.json()["status"] == "rejected"
    assert c.post("/v1/intersections/A/ack", headers=h,
                  json={"version": 1, "status": "applied"}).status_code == 200
    r = c.post("/v1/intersections/A/ack", headers=h, json={"version": 5, "status": "applied"})
    assert (r.status_code, r.json()["detail"]) == (404, "intersection 'A' has no plan v5")
    assert c.post("/v1/intersections/B/ack", headers=h,
                  json={"version": 1, "status": "applied"}).status_code == 403
    hist = c.get("/v1/intersections/A/history", headers=env.h["engineer"]).json()
    assert hist[0]["ack"] == "applied"
    assert [a.status for a in env.store.acks("A")] == ["applied", "rejected"]


def test_counts_rejects_bad_rows_keeps_good_and_is_idempotent(env: Env) -> None:
    c, h = env.client, env.h["ingest"]
    rows = [
        {"detector_id": "w_A_in", "interval_start": 0.0, "count": 4, "occupancy": 5.0,
         "speed": 12.0},
        {"detector_id": "ghost", "interval_start": 0.0, "count": 4},
        {"detector_id": "A_B_in", "interval_start": 0.0, "count": "4"},
        {"detector_id": "A_B_in", "interval_start": 0.0, "count": -1, "speed": None},
        {"detector_id": "B_e_in", "interval_start": 0.0, "count": 2, "colour": "red"},
        "not a row",
        {"detector_id": "B_e_in", "interval_start": 30.0, "count": 0, "speed": None},
    ]
    out = c.post("/v1/counts", headers=h, json={"rows": rows}).json()
    assert (out["received"], out["inserted"], out["duplicates"]) == (7, 2, 0)
    reasons = {x["row"]: x["reason"] for x in out["rejected"]}
    assert reasons[1] == "unknown detector id 'ghost'"
    assert reasons[2].startswith("count: Input should be a valid integer")
    assert "count: Input should be greater than or equal to 0" in reasons[3]
    assert "colour: Extra inputs are not permitted" in reasons[4]
    assert "valid dictionary" in reasons[5]
    assert [x["detector_id"] for x in out["rejected"]] == ["ghost", "A_B_in", "A_B_in", "B_e_in",
                                                           None]
    again = c.post("/v1/counts", headers=h, json={"rows": rows}).json()
    assert (again["inserted"], again["duplicates"]) == (0, 2)
    assert len(env.store.counts_between(0, 60)) == 2


def test_request_limits_and_malformed_bodies(tmp_path: Any) -> None:
    env = Env(MemoryPlanStore(), ServiceConfig(max_body_bytes=2000, max_count_rows=3))
    c, h = env.client, {**env.h["ingest"], "content-type": "application/json"}
    r = c.post("/v1/counts", headers=h, content=b'{"rows": [' + b" " * 3000 + b"]}")
    assert r.status_code == 413
    assert "exceeds the limit of 2000 bytes" in r.json()["detail"]
    row = {"detector_id": "w_A_in", "interval_start": 0.0, "count": 1}
    r = c.post("/v1/counts", headers=h, json={"rows": [row] * 4})
    assert (r.status_code, r.json()["detail"]) == (413, "4 rows exceed the limit of 3 per request")
    r = c.post("/v1/counts", headers=h, content=b'{"rows": [')
    assert (r.status_code, "JSON decode error" in r.json()["detail"]) == (422, True)
    r = c.post("/v1/counts", headers=h, json={"rows": 5})
    assert r.json()["detail"] == "invalid request: body.rows: Input should be a valid list"
    r = c.post("/v1/intersections/A/ack", headers=env.h["adapter"], json={"version": "x"})
    assert r.status_code == 422
    assert "body.version" in r.json()["detail"]
    assert c.get("/v1/health").status_code == 200  # still serving


class _BrokenStore(MemoryPlanStore):
    def ping(self) -> None:
        msg = "database is locked"
        raise StoreError(msg)

    def current_version(self, intersection: str) -> int | None:
        return self.ping()  # type: ignore[func-returns-value]


def test_health_metrics_and_store_failure() -> None:
    env = Env(MemoryPlanStore())
    c = env.client
    health = c.get("/v1/health").json()
    assert (health["status"], health["intersections"], health["detectors"]) == ("ok", 2, 7)
    c.get("/v1/intersections/A/plan", headers=env.h["adapter"])
    text = c.get("/metrics").text
    assert 'signalopt_plans_served_total{mode="fallback"} 1.0' in text
    assert 'route="/v1/intersections/{iid}/plan",status="200"' in text
    broken = Env(_BrokenStore())
    r = broken.client.get("/v1/health")
    assert (r.status_code, r.json()["status"]) == (503, "degraded")
    r = broken.client.get("/v1/intersections/A/plan", headers=broken.h["adapter"])
    assert r.status_code == 503
    assert r.json()["detail"] == "plan store unavailable: database is locked"


def test_openapi_is_the_adapter_contract() -> None:
    doc = Env(MemoryPlanStore()).client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in ("/v1/intersections/{iid}/plan", "/v1/intersections/{iid}/ack", "/v1/counts",
                 "/v1/intersections/{iid}/rollback", "/v1/intersections/{iid}/freeze",
                 "/v1/health", "/metrics"):
        assert path in paths
    get_plan = paths["/v1/intersections/{iid}/plan"]["get"]
    assert {"200", "304", "401", "403", "404"} <= set(get_plan["responses"])
    assert doc["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert doc["components"]["schemas"]["PlanResponse"]["examples"][0]["mode"] == "plan"
    rows = doc["components"]["schemas"]["CountsIn"]["properties"]["rows"]
    assert set(rows["items"]["properties"]) == {"detector_id", "interval_start", "count",
                                                "occupancy", "speed"}


def test_out_of_range_versions_are_4xx_not_500() -> None:
    """Found by benchmarks/service_load.py: version 10**30 overflowed SQLite (HTTP 500)."""
    env = Env(SqlPlanStore("sqlite://"))
    r = env.client.post("/v1/intersections/A/ack", headers=env.h["adapter"],
                        json={"version": 10**30, "status": "applied"})
    assert r.status_code == 422
    assert "body.version: Input should be less than or equal to 2147483647" in r.json()["detail"]
    r = env.client.post("/v1/intersections/A/rollback", headers=env.h["engineer"],
                        json={"version": 2**40})
    assert r.status_code == 422


def test_chunked_body_over_the_limit_is_413() -> None:
    """A body without Content-Length is counted while it streams in."""
    env = Env(MemoryPlanStore(), ServiceConfig(max_body_bytes=1000))

    def chunks() -> Any:
        yield b'{"rows": ['
        for _ in range(100):
            yield b"0," * 10
        yield b"0]}"

    r = env.client.post("/v1/counts", headers={**env.h["ingest"],
                                               "content-type": "application/json"},
                        content=chunks())
    assert r.status_code == 413
    assert "exceeds the limit of 1000 bytes" in r.json()["detail"]
