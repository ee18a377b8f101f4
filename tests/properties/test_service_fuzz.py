"""Hypothesis properties of the adapter API (through TestClient, in-memory store).

1. Any JSON body on any write endpoint gets 200 or a 4xx with a ``detail`` message, never 5xx.
2. Counts: received = inserted + duplicates + rejected, the store grows by ``inserted``;
   a repeat post inserts nothing.
3. Whatever engineers publish, a served plan always passes the invariants and is only
   served while ``now < valid_until``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_fixtures import PHASES, make_client, tiny_spec

from signalopt.network import compile_network
from signalopt.plan import PlanLimits, TimingPlan, plan_problems
from signalopt.service import create_app
from signalopt.service_auth import new_key
from signalopt.store_memory import MemoryPlanStore

NET = compile_network(tiny_spec())
DETECTORS = list(NET.det_ids)
RAW = {role: new_key(f"k-{role}", role, ["A"]) for role in ("adapter", "ingest", "engineer")}
KEYS = {role: {"X-API-Key": raw} for role, (raw, _) in RAW.items()}
FAST = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _app() -> tuple[Any, MemoryPlanStore, Clock]:
    store, clock = MemoryPlanStore(), Clock()
    app = create_app(store, NET, keys=[k for _, k in RAW.values()], clock=clock)
    return make_client(app), store, clock


scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3)
                           | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)
good_row = st.fixed_dictionaries({
    "detector_id": st.sampled_from(DETECTORS),
    "interval_start": st.sampled_from([0.0, 30.0, 60.0]),
    "count": st.integers(0, 50),
}, optional={"occupancy": st.floats(0, 100) | st.none(), "speed": st.floats(0, 30) | st.none()})
any_row = good_row | st.dictionaries(st.sampled_from(["detector_id", "interval_start", "count",
                                                      "occupancy", "speed", "x"]), json_values)

CLIENT, STORE, CLOCK = _app()


def _ok_or_4xx(r: Any) -> None:
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert isinstance(r.json()["detail"], str)
        assert r.json()["detail"]


@FAST
@given(path=st.sampled_from(["/v1/counts", "/v1/intersections/A/ack",
                             "/v1/intersections/A/plans", "/v1/intersections/A/rollback",
                             "/v1/intersections/A/approve", "/v1/intersections/A/freeze"]),
       body=json_values)
def test_any_json_gets_200_or_a_clear_4xx(path: str, body: Any) -> None:
    role = {"/v1/counts": "ingest", "/v1/intersections/A/ack": "adapter"}.get(path, "engineer")
    _ok_or_4xx(CLIENT.post(path, json=body, headers=KEYS[role]))


def _shifted(rows: list[Any], by: float) -> list[Any]:
    """Move numeric interval starts by ``by`` so each example writes its own intervals."""
    out = []
    for row in rows:
        t = row.get("interval_start") if isinstance(row, dict) else None
        small = isinstance(t, int | float) and not isinstance(t, bool) and abs(t) < 1e12
        out.append({**row, "interval_start": t + by} if small else row)  # type: ignore[operator]
    return out


EXAMPLE = iter(range(1, 10**9))


@FAST
@given(rows=st.lists(any_row, max_size=12))
def test_counts_accounting_and_idempotence(rows: list[Any]) -> None:
    rows = _shifted(rows, 1e5 * next(EXAMPLE))
    before = len(STORE.counts_between(-1e300, 1e300))
    first = CLIENT.post("/v1/counts", json={"rows": rows}, headers=KEYS["ingest"]).json()
    assert first["received"] == len(rows)
    assert first["inserted"] + first["duplicates"] + len(first["rejected"]) == len(rows)
    assert len({r["row"] for r in first["rejected"]}) == len(first["rejected"])
    after = len(STORE.counts_between(-1e300, 1e300))
    assert after - before == first["inserted"]
    again = CLIENT.post("/v1/counts", json={"rows": rows}, headers=KEYS["ingest"]).json()
    assert again["inserted"] == 0
    assert len(STORE.counts_between(-1e300, 1e300)) == after


durations = st.floats(0.5, 90.0, allow_nan=False)


@FAST
@given(greens=st.tuples(durations, durations), clear=st.tuples(durations, durations),
       offset=st.floats(0, 200), valid=st.floats(1, 600), later=st.floats(0, 900))
def test_served_plans_are_valid_and_unexpired(greens: tuple[float, float],
                                              clear: tuple[float, float], offset: float,
                                              valid: float, later: float) -> None:
    client, clock = CLIENT, CLOCK
    clock.t = 1000.0
    durs = (greens[0], clear[0], greens[1], clear[1])
    phases = [{"state": p.state, "duration": d, "min_dur": d, "max_dur": d,
               "is_green": p.is_green} for p, d in zip(PHASES, durs, strict=True)]
    body = {"cycle": sum(durs), "offset": offset, "phases": phases, "valid_for_s": valid}
    _ok_or_4xx(client.post("/v1/intersections/A/plans", json=body, headers=KEYS["engineer"]))
    clock.t += later
    out = client.get("/v1/intersections/A/plan", headers=KEYS["adapter"]).json()
    if out["mode"] == "plan":
        plan = TimingPlan.model_validate(out["plan"])
        assert plan_problems(plan, NET.spec.intersections[0], limits=PlanLimits()) == []
        assert clock.t < plan.valid_until
    else:
        assert out["plan"] is None
        assert TimingPlan.model_validate(out["fallback"]).source == "fallback"
