"""Metrics, health endpoints and JSON logs shared by every service.

Two rules keep the series honest for Prometheus:

- every labelled counter is created at zero for the label values known at start
  (:func:`precreate`, :func:`prime_bus_metrics`), so the first event is an *increase*
  that ``increase()`` and ``rate()`` can see; a series born at 1 hides it;
- state is exported by background loops (readiness here, alerts and cases in their
  services), never computed on a scrape or a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase
from starlette.routing import Match, Mount

# ``_created`` series double the series count and no rule or dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

# Scrape and probe routes: counted, but kept out of latency histograms, error ratios and
# request panels (they were 12-51 % of all requests and the console's startup 503s).
PROBE_ROUTES = ("/metrics", "/healthz", "/readyz")
UNMATCHED = "unmatched"
# the reasons shared/kafka.py dead-letters with (``dlq-reason-kind``)
DLQ_REASONS = ("invalid", "unauthorised", "rejected", "handler_error")
HANDLED_OUTCOMES = ("applied", "dead_lettered")
UNKNOWN_COUNTY = "unknown"

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
    # measured: most API answers take 1-5 ms, uploads and exports seconds
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
READY = Gauge(
    "citydesk_ready",
    "1 when every dependency of the service answered the last background check.",
    ["service"],
)
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


def precreate(metric: MetricWrapperBase, **label_values: Iterable[str]) -> None:
    """Create every combination of the given label values at zero.

    Each of the metric's labels must be given: a series that first appears at 1 shows
    no ``increase()``, so an alert on the first escalation or dead letter would miss it.
    """
    names: tuple[str, ...] = metric._labelnames  # prometheus_client keeps no public name
    missing = set(names) - set(label_values)
    unknown = set(label_values) - set(names)
    if missing or unknown:
        raise ValueError(f"{metric._name}: missing labels {missing}, unknown labels {unknown}")
    for combination in itertools.product(*(tuple(label_values[name]) for name in names)):
        metric.labels(*combination)


def prime_bus_metrics(
    service: str,
    *,
    consumed: Iterable[tuple[str, str, str]],
    published: Iterable[str],
    counties: Iterable[str],
) -> None:
    """The event counters of one service at zero: ``consumed`` is (group, topic, handler)
    per subscriber, ``published`` the topics it announces, ``counties`` the org tree's."""
    county_values = (*counties, UNKNOWN_COUNTY)
    for group, topic, handler in consumed:
        precreate(
            EVENTS_HANDLED,
            service=[service], topic=[topic], handler=[handler], outcome=HANDLED_OUTCOMES,
        )  # fmt: skip
        precreate(EVENTS_FAILED, service=[service], topic=[topic], handler=[handler])
        precreate(
            DLQ_MESSAGES, service=[service], topic=[topic], reason=DLQ_REASONS,
            county=county_values,
        )  # fmt: skip
        precreate(REDELIVERIES, service=[service], topic=[topic])
        CONSUMER_LAG.labels(service, group, topic).set(0)
    precreate(EVENTS_PUBLISHED, service=[service], topic=published)
    OUTBOX_PENDING.labels(service).set(0)


def route_label(request: Request, path: str, root_path: str) -> str:
    """The route template of a request: the API route, or a Starlette route (``/docs``,
    ``/openapi.json``) or mount (``/static/{path}``) that FastAPI leaves unnamed in the
    scope; ``unmatched`` only for paths no route serves."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if template:
        return str(template)
    # the mount rewrote root_path while routing: match against the request as it came in
    scope = {"type": "http", "path": path, "root_path": root_path, "method": request.method}
    for candidate in request.app.router.routes:
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            if isinstance(candidate, Mount):
                return f"{candidate.path}/{{path}}"
            return str(getattr(candidate, "path", UNMATCHED))
    return UNMATCHED


def _prime_http_metrics(app: FastAPI, service: str) -> None:
    """Every API route's success and 500 series and its latency histogram at zero, so the
    first call of a route and its first server error are visible to ``rate()``."""
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.path not in PROBE_ROUTES:
            for method in route.methods or ():
                for status in {str(route.status_code or 200), "500"}:
                    HTTP_REQUESTS.labels(service, method, route.path, status)
                HTTP_SECONDS.labels(service, method, route.path)


ReadinessCheck = Callable[[], Awaitable[None]]


CHECK_TIMEOUT_SECONDS = 10.0


async def run_checks(checks: dict[str, ReadinessCheck]) -> dict[str, str]:
    """Every check at once; each answer is ``ok`` or why it failed (a check that hangs
    fails after CHECK_TIMEOUT_SECONDS rather than freezing the gauge)."""

    async def one(check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            return "ok"
        except Exception as exc:
            return f"failed: {exc.__class__.__name__}: {exc}"[:300]

    answers = await asyncio.gather(*(one(check) for check in checks.values()))
    return dict(zip(checks, answers, strict=True))


async def watch_readiness(
    service: str, checks: dict[str, ReadinessCheck], every_seconds: float
) -> None:
    """Export ``citydesk_ready`` from a check of its own, so the gauge changes when a
    dependency does, whether or not anyone calls /readyz."""
    while True:
        results = await run_checks(checks)
        READY.labels(service).set(1 if all(v == "ok" for v in results.values()) else 0)
        await asyncio.sleep(every_seconds)


def install_http_observability(
    app: FastAPI,
    *,
    service: str,
    checks: dict[str, ReadinessCheck],
    readiness_every_seconds: float = 5.0,
) -> None:
    """Add ``/metrics``, ``/healthz``, ``/readyz``, request metrics and the background
    readiness check to an app."""
    READY.labels(service).set(0)
    app_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with app_lifespan(app) as state:
            _prime_http_metrics(app, service)
            watcher = asyncio.create_task(watch_readiness(service, checks, readiness_every_seconds))
            try:
                yield state
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app.router.lifespan_context = lifespan

    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        cid = request.headers.get("x-correlation-id")
        token = correlation_id.set(cid)
        path, root_path = request.scope["path"], request.scope.get("root_path", "")
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            if cid:
                response.headers["x-correlation-id"] = cid
            return response
        finally:
            route = route_label(request, path, root_path)
            HTTP_REQUESTS.labels(service, request.method, route, str(status)).inc()
            if route not in PROBE_ROUTES:
                HTTP_SECONDS.labels(service, request.method, route).observe(
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
        # the probe gets a fresh answer; the gauge is the background check's alone
        results = await run_checks(checks)
        ok = all(value == "ok" for value in results.values())
        return JSONResponse({"ready": ok, "checks": results}, status_code=200 if ok else 503)
