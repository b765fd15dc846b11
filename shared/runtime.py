"""How a service is put together: settings, org tree, MongoDB, the Kafka broker, the
outbox relay and optionally object storage, started and stopped by one FastAPI lifespan.

Each service's ``app.py`` calls :func:`build_service`, registers its routes and (when
``CITYDESK_RUN_CONSUMERS`` is true) its Kafka handlers, and hands the app to uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from minio import Minio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics as tp
from shared.contracts import IntakeRules, asyncapi_document
from shared.events import Envelope
from shared.http import install_edge, policy_for
from shared.jobs import Job
from shared.kafka import Bus, ensure_topics, make_bus, truncating_topics
from shared.mongo import OutboxRelay, add_to_outbox, ensure_base_indexes, make_client
from shared.observability import (
    CONSUMER_LAG,
    configure_logging,
    install_http_observability,
    prime_bus_metrics,
)
from shared.orgtree import OrgTree, load_org
from shared.refusals import ERROR_RESPONSES, install_refusals
from shared.settings import Settings, load_settings
from shared.storage import check_s3, make_minio

log = logging.getLogger(__name__)

Hook = Callable[["ServiceRuntime"], Awaitable[None]]


@dataclass
class ServiceRuntime:
    """Everything a service's handlers and routes need, built once per process."""

    settings: Settings
    org: OrgTree
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    bus: Bus
    relay: OutboxRelay
    minio: Minio | None = None
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    background: list[Job] = field(default_factory=list)
    # the business rules this service's contracts can state (the intake schema's categories)
    contract_rules: Callable[[], Awaitable[IntakeRules]] | None = None

    @property
    def name(self) -> str:
        return self.settings.service_name

    @property
    def broker(self) -> KafkaBroker:
        return self.bus.broker

    async def emit(self, topic: tp.Topic, event: Envelope, session: Any = None) -> None:
        """Write ``event`` to the outbox in the caller's transaction (``session``)."""
        await add_to_outbox(self.db, topic, event, session=session)

    def outbox_written(self) -> None:
        """Call after the transaction commits: the relay publishes at once."""
        self.relay.notify()


def runtime_of(request: Request) -> ServiceRuntime:
    """The runtime :func:`build_service` put on the app, for a route to reach."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


class OnRuntime:
    """What a service's own runtime (its settings, rules and workers beside the shared
    :class:`ServiceRuntime`) passes through from ``base``, written once for every service."""

    base: ServiceRuntime  # a field of the service's dataclass

    @property
    def org(self) -> OrgTree:
        return self.base.org

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.base.db

    @property
    def mongo(self) -> AsyncMongoClient[dict[str, Any]]:
        return self.base.mongo

    async def emit(
        self, topic: tp.Topic, event: Envelope, session: AsyncClientSession | None = None
    ) -> None:
        await self.base.emit(topic, event, session=session)

    def outbox_written(self) -> None:
        self.base.outbox_written()

    def unit_name(self, code: str | None) -> str:
        """A unit's name for people (its code when the tree does not know it)."""
        unit = self.org.get(code) if code else None
        return unit.name if unit is not None else (code or "")


async def _measure_lag(runtime: ServiceRuntime) -> None:
    """Consumer lag per group and topic, from each consumer's high watermark (Tansu's
    ListOffsets is unreliable, so ``end_offsets`` is not used)."""
    while True:
        await asyncio.sleep(5)
        for sub in runtime.broker.subscribers:
            consumer = getattr(sub, "consumer", None)
            group = getattr(consumer, "_group_id", None) if consumer else None
            if consumer is None or group is None:
                continue
            totals: dict[str, int] = {}
            for partition in consumer.assignment():
                high = consumer.highwater(partition)
                if high is None:
                    continue
                try:
                    position = await consumer.position(partition)
                except Exception:
                    continue
                # Tansu can report a high watermark a batch behind the committed position
                totals[partition.topic] = totals.get(partition.topic, 0) + max(0, high - position)
            for topic_name, lag in totals.items():
                CONSUMER_LAG.labels(runtime.name, group, topic_name).set(lag)


def build_service(
    name: str,
    *,
    title: str,
    description: str,
    publishes: tuple[tp.Topic, ...] = (),
    uses_s3: bool = False,
    settings: Settings | None = None,
) -> tuple[FastAPI, ServiceRuntime]:
    settings = settings or load_settings(name)
    settings.refuse_unsafe_production(kafka=True, mongo=True, s3=uses_s3)
    org = load_org(settings.org_file)
    mongo = make_client(settings)
    db = mongo[settings.database_name]
    bus = make_bus(settings, db)
    relay = OutboxRelay(
        db,
        bus.writer.send,
        service=name,
        poll_seconds=settings.outbox_poll_seconds,
    )
    runtime = ServiceRuntime(
        settings=settings,
        org=org,
        mongo=mongo,
        db=db,
        bus=bus,
        relay=relay,
        minio=make_minio(settings) if uses_s3 else None,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(name, settings.log_level)
        await ensure_topics(settings)
        await truncating_topics(settings)
        await ensure_base_indexes(db)
        for hook in runtime.on_startup:
            await hook(runtime)
        prime_bus_metrics(
            name,
            consumed=[(sub.group, sub.topic.name, sub.name) for sub in bus.subscriptions],
            published=[topic.name for topic in publishes],
            counties=[unit.code for unit in org.counties()],
        )
        await bus.start()
        relay.start()
        tasks = [asyncio.create_task(_measure_lag(runtime))]
        tasks += [asyncio.create_task(job(runtime)) for job in runtime.background]
        log.info("%s started", name)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await relay.stop()
            await bus.stop()
            for hook in runtime.on_shutdown:
                await hook(runtime)
            await mongo.close()

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.org = org
    app.state.runtime = runtime

    async def check_mongo() -> None:
        await db.command("ping")

    async def check_kafka() -> None:
        if not await bus.broker.ping(timeout=2.0):
            raise RuntimeError("broker does not answer")

    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "mongodb": check_mongo,
        "kafka": check_kafka,
    }
    if runtime.minio is not None:
        client = runtime.minio
        checks["s3"] = lambda: check_s3(client)
    install_http_observability(app, service=name, checks=checks)

    install_refusals(app)
    install_edge(app, policy_for(settings))

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi() -> JSONResponse:
        """The topics this service writes and reads, with payloads, headers and keys."""
        rules = await runtime.contract_rules() if runtime.contract_rules else None
        document = asyncapi_document(
            title=f"CityDesk {name}",
            description=description,
            writes=list(publishes),
            reads=[subscription.topic for subscription in bus.subscriptions],
            rules=rules,
        )
        return JSONResponse(document)

    return app, runtime
