"""The publish queue: one delivery per story version and channel (the bureau's own feed
and signed webhooks), due at its publication time, claimed under a lease, retried with
backoff and given up after the configured attempts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.review.audit import Actor, write_audit
from services.review.cases import media_links
from services.review.decisions import OnFinal, commit_change
from services.review.feeds import feed_link, published_event
from services.review.models import (
    FEED_CHANNEL,
    AuditAction,
    PublicationAction,
    PublicationState,
    ReviewConfig,
)
from services.review.service import CASES, FEED, PUBLICATIONS, load_config, settings_of
from services.review.settings import ReviewSettings
from shared import events as ev
from shared import topics as tp
from shared.events import utcnow
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

DELIVERY_LEASE = timedelta(seconds=120)
WAITING = [PublicationState.PENDING, PublicationState.RETRYING]

PUBLICATIONS_TOTAL = Counter(
    "citydesk_review_publications_total",
    "Publication attempts by channel and outcome (success, retrying, failed).",
    ["channel", "outcome"],
)
WEBHOOK_FAILURES = Counter(
    "citydesk_review_webhook_failures_total",
    "Webhook deliveries that failed every attempt.",
    ["channel"],
)


class TakenOver(Exception):
    """Another worker took the delivery over after this one's lease ran out."""


class DeliveryFailed(Exception):
    """A channel did not take a delivery; it is retried with backoff."""


class PublishQueue:
    """Wakes the publish workers when something becomes due now."""

    def __init__(self) -> None:
        self._due = asyncio.Event()

    def wake(self) -> None:
        self._due.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._due.wait(), timeout=timeout)
        self._due.clear()


async def enqueue_publications(
    db: AsyncDatabase[dict[str, Any]],
    *,
    config: ReviewConfig,
    case: dict[str, Any],
    publish_at: datetime,
    session: AsyncClientSession,
    action: PublicationAction = PublicationAction.PUBLISH,
    channels: list[str] | None = None,
) -> None:
    """Queue one delivery per channel, due at ``publish_at``, in the caller's transaction."""
    if channels is None:
        channels = [FEED_CHANNEL] if config.publication.feed.enabled else []
        channels += [hook.name for hook in config.publication.webhooks]
    now = utcnow()
    for channel in channels:
        await db[PUBLICATIONS].insert_one(
            {
                "_id": uuid.uuid4().hex,
                "story_id": case["story_id"],
                "version": case["version"],
                "case_id": case["_id"],
                "channel": channel,
                "action": action,
                "state": PublicationState.PENDING,
                "attempts": 0,
                "publish_at": publish_at,
                "next_attempt_at": publish_at,
                "lease_until": None,
                "last_error": None,
                "created_at": now,
                "delivered_at": None,
            },
            session=session,
        )


def enqueue_on_final_approval(runtime: ServiceRuntime) -> OnFinal:
    """What a final approval does in its own transaction: queue every channel."""

    async def enqueue(
        case: dict[str, Any], publish_at: datetime, session: AsyncClientSession
    ) -> None:
        config = await load_config(db=runtime.db)
        await enqueue_publications(
            runtime.db, config=config, case=case, publish_at=publish_at, session=session
        )

    return enqueue


# ---- the publish queue ------------------------------------------------------------
async def run_publish_workers(runtime: ServiceRuntime, queue: PublishQueue) -> None:
    """Deliver due publications until cancelled, a few at a time."""
    settings = settings_of(runtime)
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds) as client:
        workers = [
            asyncio.create_task(_publish_worker(runtime, queue, client))
            for _ in range(settings.publish_workers)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()


async def _publish_worker(
    runtime: ServiceRuntime, queue: PublishQueue, client: httpx.AsyncClient
) -> None:
    settings = settings_of(runtime)
    while True:
        try:
            while await deliver_next(runtime=runtime, client=client):
                pass
        except Exception:
            log.exception("publish queue pass failed; retrying")
        await queue.wait(settings.publish_poll_seconds)


async def deliver_next(*, runtime: ServiceRuntime, client: httpx.AsyncClient) -> bool:
    """Claim one due delivery and make it; False when nothing is due."""
    db = runtime.db
    now = utcnow()
    row = await db[PUBLICATIONS].find_one_and_update(
        {
            "$or": [
                {"state": {"$in": WAITING}, "next_attempt_at": {"$lte": now}},
                {"state": PublicationState.IN_PROGRESS, "lease_until": {"$lt": now}},
            ]
        },
        {
            "$set": {"state": PublicationState.IN_PROGRESS, "lease_until": now + DELIVERY_LEASE},
            "$inc": {"attempts": 1},
        },
        sort=[("next_attempt_at", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    if row is None:
        return False
    config = await load_config(db=db)
    case = await db[CASES].find_one({"_id": row["case_id"]})
    if case is None:
        raise RuntimeError(f"publication {row['_id']} names a missing case")
    try:
        if row["channel"] == FEED_CHANNEL:
            await _publish_to_feed(runtime, row, case)
        else:
            await _send_webhook(runtime, client, config, row, case)
            await _mark_delivered(runtime, row, case)
    except DeliveryFailed as exc:
        await _mark_failed_attempt(runtime, config, row, case, str(exc))
    except TakenOver:
        log.info("publication %s was taken over by another worker", row["_id"])
    return True


async def _publish_to_feed(
    runtime: ServiceRuntime, row: dict[str, Any], case: dict[str, Any]
) -> None:
    db = runtime.db
    story = case["story"]
    now = utcnow()

    async def write(session: AsyncClientSession) -> None:
        await db[FEED].update_one(
            {"_id": case["story_id"]},
            {
                "$set": {
                    "version": case["version"],
                    "title": story["title"],
                    "body": story["body"],
                    "category": story.get("category"),
                    "campaign": story.get("campaign"),
                    "unit_path": case["unit_path"],
                    "media_ids": story.get("media_ids", []),
                    "state": "published",
                    "updated_at": now,
                },
                "$setOnInsert": {"published_at": now},
            },
            upsert=True,
            session=session,
        )
        await _record_delivery(runtime, row, case, now, session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    PUBLICATIONS_TOTAL.labels(FEED_CHANNEL, "success").inc()


async def _mark_delivered(
    runtime: ServiceRuntime, row: dict[str, Any], case: dict[str, Any]
) -> None:
    now = utcnow()

    async def write(session: AsyncClientSession) -> None:
        await _record_delivery(runtime, row, case, now, session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    PUBLICATIONS_TOTAL.labels(row["channel"], "success").inc()


async def _record_delivery(
    runtime: ServiceRuntime,
    row: dict[str, Any],
    case: dict[str, Any],
    now: datetime,
    session: AsyncClientSession,
) -> None:
    """Mark the delivery done; a publication (not a withdrawal notice) is announced."""
    result = await runtime.db[PUBLICATIONS].update_one(
        {"_id": row["_id"], "state": PublicationState.IN_PROGRESS, "attempts": row["attempts"]},
        {"$set": {"state": PublicationState.SUCCESS, "delivered_at": now, "last_error": None}},
        session=session,
    )
    if result.matched_count == 0:
        raise TakenOver(f"publication {row['_id']} was taken over by another worker")
    if row["action"] != PublicationAction.PUBLISH:
        return
    await write_audit(
        runtime.db, session=session, story_id=case["story_id"], case_id=case["_id"],
        version=case["version"], actor=Actor.system(runtime.org), level=None,
        action=AuditAction.PUBLISHED,
        channel=row["channel"], at=now,
    )  # fmt: skip
    link = feed_link(settings_of(runtime), case["story_id"])
    event = published_event(
        case, kind=ev.PublicationKind.CHANNEL, channel=row["channel"], link=link, at=now
    )
    await runtime.emit(tp.STORY_PUBLISHED, event, session=session)


def webhook_body(
    settings: ReviewSettings, row: dict[str, Any], case: dict[str, Any], sent_at: datetime
) -> bytes:
    """What a channel receives: the story with media links, or a withdrawal notice."""
    story = case["story"]
    data: dict[str, Any] = {
        "delivery_id": row["_id"],
        "action": row["action"],
        "channel": row["channel"],
        "sent_at": sent_at.isoformat(),
        "story_id": case["story_id"],
        "version": case["version"],
        "unit_path": case["unit_path"],
    }
    if row["action"] == PublicationAction.WITHDRAW:
        data["reason"] = case.get("withdraw_reason")
    else:
        data |= {
            "title": story["title"],
            "body": story["body"],
            "category": story.get("category"),
            "campaign": story.get("campaign"),
            "link": feed_link(settings, case["story_id"]),
            "media": [m.model_dump() for m in media_links(settings, story.get("media_ids", []))],
        }
    return json.dumps(data, ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """The ``X-CityDesk-Signature`` value: HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def _send_webhook(
    runtime: ServiceRuntime,
    client: httpx.AsyncClient,
    config: ReviewConfig,
    row: dict[str, Any],
    case: dict[str, Any],
) -> None:
    hook = config.webhook(row["channel"])
    if hook is None or hook.secret is None:
        raise DeliveryFailed(f"channel {row['channel']!r} is no longer configured")
    body = webhook_body(settings_of(runtime), row, case, utcnow())
    headers = {
        "Content-Type": "application/json",
        "X-CityDesk-Signature": signature(hook.secret, body),
        "X-CityDesk-Timestamp": str(int(time.time())),
        "X-CityDesk-Delivery": row["_id"],
        "X-CityDesk-Event": f"story.{row['action']}",
    }
    try:
        response = await client.post(str(hook.url), content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")


async def _mark_failed_attempt(
    runtime: ServiceRuntime,
    config: ReviewConfig,
    row: dict[str, Any],
    case: dict[str, Any],
    error: str,
) -> None:
    """Retry with exponential backoff, or give up after the configured attempts."""
    settings = config.publication
    now = utcnow()
    guard = {"_id": row["_id"], "state": PublicationState.IN_PROGRESS, "attempts": row["attempts"]}
    if row["attempts"] >= settings.max_attempts:
        await runtime.db[PUBLICATIONS].update_one(
            guard,
            {
                "$set": {
                    "state": PublicationState.FAILED,
                    "last_error": error,
                    "next_attempt_at": None,
                }
            },
        )
        await write_audit(
            runtime.db, session=None, story_id=case["story_id"], case_id=case["_id"],
            version=case["version"], actor=Actor.system(runtime.org), level=None,
            action=AuditAction.PUBLICATION_FAILED,
            comment=error, channel=row["channel"], at=now,
        )  # fmt: skip
        PUBLICATIONS_TOTAL.labels(row["channel"], "failed").inc()
        WEBHOOK_FAILURES.labels(row["channel"]).inc()
        log.warning("publication %s to %s failed: %s", row["_id"], row["channel"], error)
        return
    delay = min(settings.backoff_seconds * 2 ** (row["attempts"] - 1), settings.backoff_max_seconds)
    await runtime.db[PUBLICATIONS].update_one(
        guard,
        {
            "$set": {
                "state": PublicationState.RETRYING,
                "last_error": error,
                "next_attempt_at": now + timedelta(seconds=delay),
            }
        },
    )
    PUBLICATIONS_TOTAL.labels(row["channel"], "retrying").inc()
