"""Metrics, health endpoints and JSON logs shared by every service."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

EVENTS_HANDLED = Counter(
    "citydesk_events_handled_total",
    "Events a handler applied (or recognised as already applied).",
    ["service", "topic", "handler", "outcome"],
)
EVENTS_FAILED = Counter(
    "citydesk_events_failed_total",
    "Handler attempts that raised (each retry counts).",
    ["service", "topic", "handler"],
)
DLQ_MESSAGES = Counter(
    "citydesk_dlq_messages_total",
    "Messages sent to a dead-letter topic, by reason.",
    ["service", "topic", "reason", "county"],
)
HANDLER_SECONDS = Histogram(
    "citydesk_handler_duration_seconds",
    "Time a handler took to apply one event.",
    ["service", "topic", "handler"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_PUBLISHED = Counter(
    "citydesk_events_published_total",
    "Events published to the bus, by topic.",
    ["service", "topic"],
)
OUTBOX_PENDING = Gauge(
    "citydesk_outbox_pending",
    "Outbox events written but not yet published.",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "citydesk_consumer_lag",
    "Messages behind the partition's high watermark, per consumer group and topic.",
    ["service", "group", "topic"],
)
HTTP_REQUESTS = Counter(
    "citydesk_http_requests_total",
    "HTTP requests answered, by route and status.",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "citydesk_http_request_duration_seconds",
    "HTTP request latency, by route.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
READY = Gauge("citydesk_ready", "1 when every dependency of the service answers.", ["service"])
REDELIVERIES = Counter(
    "citydesk_event_redeliveries",
    "Records read again at an offset already delivered (a stalled or looping consumer)",
    ["service", "topic"],
)
TOPIC_RETENTION_FINITE = Gauge(
    "citydesk_topic_retention_finite",
    "1 when a topic the scoring rebuild reads from the start deletes old records.",
    ["service", "topic"],
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the correlation id of the event or request."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key in ("topic", "event_id", "story_id", "reason"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "pymongo", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


ReadinessCheck = Callable[[], Awaitable[None]]


def install_http_observability(
    app: FastAPI, *, service: str, checks: dict[str, ReadinessCheck]
) -> None:
    """Add ``/metrics``, ``/healthz``, ``/readyz`` and request metrics to an app."""

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]):
        cid = request.headers.get("x-correlation-id")
        token = correlation_id.set(cid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            if cid:
                response.headers["x-correlation-id"] = cid
            return response
        finally:
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(service, request.method, path, str(status)).inc()
            HTTP_SECONDS.labels(service, request.method, path).observe(
                time.perf_counter() - started
            )
            correlation_id.reset(token)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"failed: {exc.__class__.__name__}: {exc}"[:300]
        ok = all(value == "ok" for value in results.values())
        READY.labels(service).set(1 if ok else 0)
        return JSONResponse({"ready": ok, "checks": results}, status_code=200 if ok else 503)
