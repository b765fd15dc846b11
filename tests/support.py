"""Helpers for tests over the real stack: running a service in-process, tokens, reading
and writing topics, waiting for an effect."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import import_module
from typing import Any, Self, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from citydesk.producer import AUTO, SignedProducer
from citydesk.stack import free_port
from shared.auth import Role, mint_token
from shared.kafka import client_security
from shared.runtime import ServiceRuntime
from shared.settings import Settings, load_settings

T = TypeVar("T")


def settings_for(service: str, **overrides: Any) -> Settings:
    """Settings for ``service`` from the environment the ``stack`` fixture set."""
    return load_settings(service).model_copy(update=overrides)


def token_for(unit: str, *roles: Role | str, sub: str | None = None) -> str:
    return mint_token(
        load_settings("tests"), sub=sub or f"user-{unit}", unit=unit, roles=list(roles)
    )


def auth(unit: str, *roles: Role | str, sub: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(unit, *roles, sub=sub)}"}


@dataclass
class RunningService:
    app: FastAPI
    runtime: ServiceRuntime
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def run_service(service: str, **overrides: Any) -> AsyncIterator[RunningService]:
    """Start ``services.<service>.app.create_app`` in this process with its lifespan
    (broker, consumers, outbox relay) and an HTTP client bound to it."""
    module = import_module(f"services.{service}.app")
    app: FastAPI = module.create_app(settings_for(service, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as client:
            yield RunningService(app=app, runtime=app.state.runtime, client=client)


def serve_locally(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """``handler`` answering on a free loopback port from a daemon thread (the test calls
    ``shutdown()`` when done)."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps each request out of the test's output."""

    def log_message(self, format: str, *args: Any) -> None:
        return


class LocalEndpoint:
    """A receiver a test's service sends to: :meth:`serve` starts it at ``url``, and it
    shuts down when its ``with`` block ends."""

    server: ThreadingHTTPServer
    url: str

    def serve(self, handler: type[BaseHTTPRequestHandler], path: str = "") -> None:
        self.server = serve_locally(handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()


async def eventually(
    check: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    *,
    timeout: float = 20.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        last = result
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def produce(
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: dict[str, str] | None = None,
    settings: Settings | None = None,
    principal: str | None = AUTO,
) -> None:
    """Write one record, signed as ``principal`` (by default the topic's rightful writer;
    None: unsigned)."""
    settings = settings or load_settings("tests")
    producer = SignedProducer(settings, principal)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_topic(
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 20.0,
    settings: Settings | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning (a fresh group) until ``until(records)``."""
    settings = settings or load_settings("tests")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        return await collect(consumer, topic, until=until, timeout=timeout)
    finally:
        await consumer.stop()


async def collect(
    consumer: AIOKafkaConsumer,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float,
) -> list[ConsumerRecord[bytes, bytes]]:
    """What ``consumer`` reads of ``topic`` until ``until(records)``, or fail after ``timeout``."""
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in (await consumer.getmany(timeout_ms=300)).values():
            records.extend(batch)
        if until(records):
            return records
    raise AssertionError(f"timed out reading {topic}: {len(records)} records seen")


async def one_key_per_partition(
    topic: str, prefix: str, settings: Settings | None = None
) -> list[str]:
    """A key (``prefix-N``) for each partition of ``topic``, as the default partitioner
    places them: records written with them come after everything already on every
    partition, so a consumer that has handled them all has read all there was."""
    settings = settings or load_settings("tests")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, **client_security(settings)
    )
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
    finally:
        await producer.stop()
    partitioner = DefaultPartitioner()
    keys: dict[int, str] = {}
    for n in itertools.count():
        if len(keys) == len(partitions):
            return [keys[partition] for partition in partitions]
        key = f"{prefix}-{n}"
        keys.setdefault(partitioner(key.encode(), partitions, partitions), key)
    raise AssertionError("unreachable")


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode()
    return None


async def every_page(
    http: httpx.AsyncClient, url: str, *, headers: dict[str, str], limit: int = 200
) -> list[dict[str, Any]]:
    """All items of a cursor-paged list (``{items, next_cursor}``), page after page."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    while True:
        response = await http.get(url, headers=headers, params=params)
        response.raise_for_status()
        page = response.json()
        items += page["items"]
        if not page.get("next_cursor"):
            return items
        params = {"limit": limit, "cursor": page["next_cursor"]}


def plan_stages(plan: dict[str, Any]) -> list[tuple[str, str | None]]:
    stages: list[tuple[str, str | None]] = []
    while plan:
        stages.append((plan.get("stage", ""), plan.get("indexName")))
        plan = plan.get("inputStage") or {}
    return stages


async def index_used(
    collection: Any, query: dict[str, Any], sort: list[tuple[str, int]] | None
) -> str:
    """The index the server's plan for ``query`` (sorted, limited to a page) scans; a
    collection scan or a plan without an index fails the test."""
    found = collection.find(query)
    explained = await (found.sort(sort) if sort else found).limit(51).explain()
    stages = plan_stages(explained["queryPlanner"]["winningPlan"])
    assert "COLLSCAN" not in [stage for stage, _ in stages], (query, stages)
    names = [name for stage, name in stages if stage == "IXSCAN"]
    assert names, (query, stages)
    return str(names[0])
