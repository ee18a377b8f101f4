"""Per-app Prometheus metrics and the ASGI guard that times requests and caps body size.

Each app gets its own ``CollectorRegistry`` (no global registry), so tests and several apps
in one process do not collide.
"""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

Scope = dict[str, Any]
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Counters and histograms of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("signalopt_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("signalopt_http_request_seconds", "request latency",
                                 ["method", "route"], buckets=_BUCKETS, registry=r)
        self.plans_served = Counter("signalopt_plans_served", "plan answers by mode",
                                    ["mode"], registry=r)
        self.acks = Counter("signalopt_acks", "adapter acks by status", ["status"], registry=r)
        self.count_rows = Counter("signalopt_count_rows", "ingested count rows by result",
                                  ["result"], registry=r)
        self.publishes = Counter("signalopt_publishes", "engineer plan actions", ["action"],
                                 registry=r)
        self.detectors_flagged = Gauge(
            "signalopt_detectors_flagged",
            "detectors QA flagged in the last live scan, by flag (any: flagged at all)", ["flag"],
            registry=r)

    def record_flags(self, flagged: dict[str, str], names: tuple[str, ...]) -> None:
        """Set the flagged-detector gauges from one scan's ``{detector: "flag,flag"}``; every
        flag in ``names`` is set, to 0 when no detector has it."""
        self.detectors_flagged.labels("any").set(len(flagged))
        for name in names:
            self.detectors_flagged.labels(name).set(
                sum(name in flags.split(",") for flags in flagged.values()))

    def render(self) -> tuple[bytes, str]:
        """Prometheus text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestGuard:
    """Pure ASGI middleware: rejects bodies over ``max_body_bytes`` with 413, records metrics.

    The body is read (up to the limit) before the app sees it, so a chunked upload without
    Content-Length cannot get past the limit either.
    """

    def __init__(self, app: Any, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if scope["method"] in ("POST", "PUT", "PATCH"):
                receive = await self._buffered(scope, receive, send_wrapper)
                if receive is None:
                    return
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status["code"])).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - t0)

    async def _buffered(self, scope: Scope, receive: Any, send: Any) -> Any:
        """Read the whole body within the limit and replay it; None if 413 was sent."""
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send, int(declared))
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._too_large(send, size)
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def _too_large(self, send: Any, size: int) -> None:
        msg = f"request body of {size}+ bytes exceeds the limit of {self.max_body} bytes"
        payload = json.dumps({"detail": msg}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})
