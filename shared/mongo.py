"""MongoDB through PyMongo's async API: the client factory and the two patterns every
service needs.

* **Idempotent apply**: :func:`apply_once` records ``(consumer, event_id)`` in the same
  transaction as the handler's effect, so a redelivered or replayed event changes
  nothing twice.
* **Transactional outbox**: :func:`add_to_outbox` writes an event in the same
  transaction as the change that caused it; :class:`OutboxRelay` publishes what is
  unsent, in write order, and marks it sent. A crash between the two re-publishes the
  same ``event_id``, which consumers recognise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from shared import topics as tp
from shared.events import Envelope
from shared.observability import EVENTS_PUBLISHED, OUTBOX_PENDING
from shared.settings import Settings

log = logging.getLogger(__name__)

PROCESSED = "processed_events"
OUTBOX = "outbox"
LOCKS = "locks"
# MongoDB's error code for a unique-index violation
DUPLICATE_KEY = 11000

Effect = Callable[[AsyncClientSession], Awaitable[Any]]


def make_client(settings: Settings) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        settings.mongo_uri,
        tz_aware=True,
        uuidRepresentation="standard",
        appname=f"citydesk-{settings.service_name}",
        serverSelectionTimeoutMS=5000,
    )


async def ensure_base_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db[OUTBOX].create_index([("sent_at", ASCENDING), ("_id", ASCENDING)])
    await db[OUTBOX].create_index("event_id", unique=True)


async def insert_new(
    collection: AsyncCollection[dict[str, Any]],
    documents: list[dict[str, Any]],
    *,
    session: AsyncClientSession | None = None,
) -> list[dict[str, Any]]:
    """Insert many documents, skipping those a unique index already holds; returns the
    documents actually inserted (a redelivered batch inserts nothing twice). Any other
    write error is raised."""
    if not documents:
        return []
    try:
        await collection.insert_many(documents, ordered=False, session=session)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(
            error.get("code") != DUPLICATE_KEY for error in errors
        ):
            raise
        skipped = {error["index"] for error in errors}
        return [doc for index, doc in enumerate(documents) if index not in skipped]
    return documents


async def in_transaction(client: AsyncMongoClient[Any], effect: Effect) -> Any:
    """Run ``effect(session)`` in one transaction, retried on transient errors."""
    async with client.start_session() as session:
        return await session.with_transaction(
            effect,
            read_concern=ReadConcern("snapshot"),
            write_concern=WriteConcern("majority"),
        )


async def apply_once(
    client: AsyncMongoClient[Any],
    db: AsyncDatabase[dict[str, Any]],
    *,
    consumer: str,
    event_id: str,
    effect: Effect,
) -> bool:
    """Apply ``effect`` once per ``(consumer, event_id)``; False when already applied."""
    marker_id = f"{consumer}:{event_id}"
    if await db[PROCESSED].find_one({"_id": marker_id}, projection={"_id": 1}) is not None:
        return False

    async def transaction(session: AsyncClientSession) -> None:
        # A duplicate marker aborts the whole transaction: the effect is never half-applied.
        await db[PROCESSED].insert_one(
            {"_id": marker_id, "consumer": consumer, "at": datetime.now(UTC)}, session=session
        )
        await effect(session)

    try:
        await in_transaction(client, transaction)
    except DuplicateKeyError:
        return False
    return True


async def add_to_outbox(
    db: AsyncDatabase[dict[str, Any]],
    topic: tp.Topic,
    event: Envelope,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """Write ``event`` for later publication, inside the caller's transaction."""
    await db[OUTBOX].insert_one(
        {
            "_id": ObjectId(),
            "event_id": str(event.event_id),
            "topic": topic.name,
            "key": topic.key_of(event),
            "value": event.model_dump_json(),
            "correlation_id": event.correlation_id,
            "type": event.type,
            "version": event.version,
            "created_at": datetime.now(UTC),
            "sent_at": None,
        },
        session=session,
    )


Publisher = Callable[[str, bytes, bytes, dict[str, str]], Awaitable[None]]


class OutboxRelay:
    """Publishes a service's outbox in write order. One relay per service holds a lease
    in ``locks`` so that scaled-out replicas do not publish the same rows side by side."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        publish: Publisher,
        *,
        service: str,
        poll_seconds: float = 0.2,
        batch_size: int = 500,
        lease_seconds: float = 15.0,
    ) -> None:
        self.db = db
        self.publish = publish
        self.service = service
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        """Something was just written: publish it now rather than at the next poll."""
        self._wake.set()

    async def _hold_lease(self) -> bool:
        now = datetime.now(UTC)
        lock_id = f"outbox-relay:{self.service}"
        try:
            await self.db[LOCKS].find_one_and_update(
                {"_id": lock_id, "$or": [{"owner": self.owner}, {"expires": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires": now + self.lease}},
                upsert=True,
            )
            return True
        except DuplicateKeyError:
            return False

    async def release(self) -> None:
        with contextlib.suppress(PyMongoError):
            await self.db[LOCKS].delete_one(
                {"_id": f"outbox-relay:{self.service}", "owner": self.owner}
            )

    async def publish_pending(self) -> int:
        """Publish one batch of unsent events; returns how many were sent."""
        if not await self._hold_lease():
            return 0
        rows = (
            await self.db[OUTBOX]
            .find({"sent_at": None})
            .sort("_id", ASCENDING)
            .limit(self.batch_size)
            .to_list()
        )
        sent: list[ObjectId] = []
        try:
            for row in rows:
                headers = {
                    "content-type": "application/json",
                    "event-type": row["type"],
                    "event-version": str(row["version"]),
                    "correlation-id": row["correlation_id"],
                }
                await self.publish(
                    row["topic"], row["key"].encode(), row["value"].encode(), headers
                )
                EVENTS_PUBLISHED.labels(self.service, row["topic"]).inc()
                sent.append(row["_id"])
        finally:
            if sent:
                await self.db[OUTBOX].update_many(
                    {"_id": {"$in": sent}}, {"$set": {"sent_at": datetime.now(UTC)}}
                )
        return len(sent)

    async def run(self) -> None:
        while not self._stopping:
            try:
                count = await self.publish_pending()
                if count >= self.batch_size:
                    continue
                pending = await self.db[OUTBOX].count_documents({"sent_at": None})
                OUTBOX_PENDING.labels(self.service).set(pending)
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                await asyncio.sleep(1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self.service}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=10)
            self._task = None
        await self.release()
