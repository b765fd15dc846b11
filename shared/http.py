"""The edge every HTTP app shares (the five services and the console): security headers on
every answer, a request body limit per route, a bound on list page sizes and on the number
of requests worked on at once.

One pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: that one buffers
nothing but wraps every body in a task and a queue, and uploads stream through here.
Refusals have the shape of :class:`shared.refusals.ErrorBody` (a stable code, a Chinese
message), or a short Chinese page where the app serves people (the console).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from shared.refusals import Refusal
from shared.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# probes and metrics answer even when the service is saturated: a full service is busy,
# not dead, and must not be restarted for it
UNBOUNDED_PATHS = ("/healthz", "/readyz", "/metrics", "/static/")
PAGE_SIZE_PARAMETERS = ("limit", "page_size")
# an API answers JSON and is never a page: nothing may load, frame or submit from it
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's own /docs and /redoc load Swagger UI and ReDoc from jsDelivr with an inline
# starter script; they show no data of their own (the calls carry the reader's token)
DOCS_PATHS = ("/docs", "/redoc")
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https:; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


@dataclass
class EdgePolicy:
    """What the edge enforces for one app. ``body_limits`` maps ``(METHOD, path prefix)``
    to a larger limit in bytes, or None where the route enforces its own (an upload)."""

    csp: str
    hsts: bool
    max_body_bytes: int
    max_page_size: int
    max_concurrent: int
    queue_seconds: float
    retry_after_seconds: int
    html: bool = False
    body_limits: dict[tuple[str, str], int | None] = field(default_factory=dict)

    def body_limit(self, method: str, path: str) -> int | None:
        for (allowed_method, prefix), limit in self.body_limits.items():
            if method == allowed_method and path.startswith(prefix):
                return limit
        return self.max_body_bytes

    def headers(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else self.csp
        headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if self.hsts:
            headers.append((b"strict-transport-security", HSTS.encode()))
        return headers


class Edge:
    """The middleware: headers on every answer, then the page-size bound, the body limit
    and the bound on concurrent requests, each refused with its own status."""

    def __init__(self, app: ASGIApp, policy: EdgePolicy) -> None:
        self.app = app
        self.policy = policy
        self.slots = asyncio.Semaphore(policy.max_concurrent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self.policy.headers(path)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in present
                ]
            await send(message)

        refusal = self._too_big_a_page(scope) or self._declared_too_large(scope)
        if refusal is not None:
            await self._refuse(refusal, send_with_headers)
            return
        if path.startswith(UNBOUNDED_PATHS):
            await self._limited(scope, receive, send_with_headers)
            return
        try:
            if self.slots.locked():  # wait a little for a slot, then say so
                await asyncio.wait_for(self.slots.acquire(), timeout=self.policy.queue_seconds)
            else:
                await self.slots.acquire()
        except TimeoutError:
            busy = Refusal(
                503, "busy", "服务繁忙，请稍后再试",
                f"more than {self.policy.max_concurrent} requests at once",
            )  # fmt: skip
            await self._refuse(busy, send_with_headers, retry_after=True)
            return
        try:
            await self._limited(scope, receive, send_with_headers)
        finally:
            self.slots.release()

    def _too_big_a_page(self, scope: Scope) -> Refusal | None:
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query):
            if name in PAGE_SIZE_PARAMETERS and value.isdigit():
                if int(value) > self.policy.max_page_size:
                    return Refusal(
                        422, "page_too_large",
                        f"每页最多 {self.policy.max_page_size} 条，请分页查看",
                        f"{name}={value} is over the maximum of {self.policy.max_page_size}",
                    )  # fmt: skip
        return None

    def _declared_too_large(self, scope: Scope) -> Refusal | None:
        limit = self.policy.body_limit(scope["method"], scope["path"])
        if limit is None:
            return None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    return _too_large(limit)
        return None

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a body stream that stops at the limit (a chunked body states
        no length, and a stated length can be a lie). Past the limit the edge answers 413
        itself and tells the app the client left; whatever the app answers then is
        dropped. (Raising from the stream would reach FastAPI wrapped by the
        observability middleware, as a 400.)"""
        limit = self.policy.body_limit(scope["method"], scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        received = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not started:
                        await self._refuse(_too_large(limit), send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, unless_refused)

    async def _refuse(self, refusal: Refusal, send: Send, *, retry_after: bool = False) -> None:
        if self.policy.html:
            body = _page(refusal.message).encode()
            content_type = b"text/html; charset=utf-8"
        else:
            body = json.dumps(refusal.body(), ensure_ascii=False).encode()
            content_type = b"application/json"
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        if retry_after:
            headers.append((b"retry-after", str(self.policy.retry_after_seconds).encode()))
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _too_large(limit: int) -> Refusal:
    shown = f"{limit / 1024 / 1024:.0f} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return Refusal(
        413, "too_large", f"提交的内容过大（上限 {shown}）", f"request body over {limit} bytes"
    )


def _page(message: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>请求未能完成</title>'
        f'<p>{escape(message)}</p><p><a href="/">返回首页</a></p></html>'
    )


def policy_for(settings: Settings, *, csp: str = API_CSP, hsts: bool | None = None) -> EdgePolicy:
    """The edge of an app from the shared settings; HSTS in production unless told."""
    return EdgePolicy(
        csp=csp,
        hsts=settings.environment == "production" if hsts is None else hsts,
        max_body_bytes=settings.http_max_body_bytes,
        max_page_size=settings.http_max_page_size,
        max_concurrent=settings.http_max_concurrent_requests,
        queue_seconds=settings.http_queue_seconds,
        retry_after_seconds=settings.http_retry_after_seconds,
    )


def install_edge(app: FastAPI, policy: EdgePolicy) -> EdgePolicy:
    """Put the edge outermost (added last); the returned policy can still be changed, e.g.
    by :func:`allow_body`, until the first request."""
    app.add_middleware(Edge, policy=policy)
    app.state.edge = policy
    return policy


def allow_body(app: FastAPI, method: str, path_prefix: str, max_bytes: int | None) -> None:
    """A larger body (or, with None, the route's own limit) for one kind of request."""
    policy: EdgePolicy = app.state.edge
    policy.body_limits[(method.upper(), path_prefix)] = max_bytes


class JSONAnswer(JSONResponse):
    """A large JSON answer written straight by ``orjson``: a route that returns a plain
    dict has FastAPI walk every value with ``jsonable_encoder`` first, which took 200-250
    ms for a city's ranking of 3,000 rows (1.6 MB) that ``orjson`` writes in a few."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)  # dates and datetimes in ISO 8601, as FastAPI writes them
