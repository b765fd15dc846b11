"""The publish queue: one delivery per story version and channel (the bureau's own feed
and webhooks signed the Standard Webhooks way), due at its publication time, kept in the
shared :class:`DeliveryQueue`: claimed under a lease so that however many replicas run,
each attempt is made once; retried with backoff; given up after the configured attempts.
Only a receiver's status is kept, never its answer."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from prometheus_client import Counter
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.review.audit import Actor, write_audit
from services.review.cases import media_links
from services.review.decisions import OnFinal, commit_change
from services.review.feeds import feed_link, published_event
from services.review.models import FEED_CHANNEL, AuditAction, PublicationAction
from services.review.runtime import Review
from services.review.service import CASES, FEED, PUBLICATIONS
from services.review.settings import ReviewSettings
from shared import events as ev
from shared import topics as tp
from shared.clock import utcnow
from shared.outbound import DeliveryQueue, UnsafeTarget, check_target, standard_headers

log = logging.getLogger(__name__)

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


class DeliveryFailed(Exception):
    """A channel did not take a delivery: ``reason`` is a short kind (never the
    receiver's answer), ``status`` its HTTP status when it gave one."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TakenOver(Exception):
    """Another worker took the delivery over after this one's lease ran out."""


def publication_queue(runtime: Review) -> DeliveryQueue:
    """The queue under the configuration in force (attempts and backoff are the admin's)."""
    policy = runtime.config.publication
    return DeliveryQueue(
        runtime.db, PUBLICATIONS, lease_seconds=runtime.settings.publish_lease_seconds,
        max_attempts=policy.max_attempts, backoff_seconds=policy.backoff_seconds,
        max_backoff_seconds=policy.backoff_max_seconds,
    )  # fmt: skip


# deliveries stored before the shared queue kept them named their states and due time
# differently; they are renamed once at startup
OLD_STATES = {"success": "delivered", "retrying": "pending", "in_progress": "pending"}


async def migrate_publications(db: AsyncDatabase[dict[str, Any]]) -> int:
    """Bring deliveries of the earlier layout into the shared queue's; how many moved."""
    moved = 0
    async for row in db[PUBLICATIONS].find({"key": {"$exists": False}}):
        change = {
            "key": delivery_key(row["story_id"], row["version"], row["channel"], row["action"]),
            "state": OLD_STATES.get(row["state"], row["state"]),
            "next_at": row.get("next_attempt_at") or row["publish_at"],
            "target": row["channel"],
            "payload": {},
            "lease_until": None,
        }
        await db[PUBLICATIONS].update_one(
            {"_id": row["_id"]}, {"$set": change, "$unset": {"next_attempt_at": ""}}
        )
        moved += 1
    return moved


async def ensure_queue(*, runtime: Review) -> None:
    await migrate_publications(runtime.db)
    await publication_queue(runtime).ensure_indexes()


def delivery_key(story_id: str, version: int, channel: str, action: str) -> str:
    return f"{story_id}:{version}:{channel}:{action}"


async def enqueue_publications(
    runtime: Review,
    *,
    case: dict[str, Any],
    publish_at: datetime,
    session: AsyncClientSession,
    action: PublicationAction = PublicationAction.PUBLISH,
    channels: list[str] | None = None,
) -> None:
    """Queue one delivery per channel, due at ``publish_at``, in the caller's transaction."""
    config = runtime.config
    if channels is None:
        channels = [FEED_CHANNEL] if config.publication.feed.enabled else []
        channels += [hook.name for hook in config.publication.webhooks]
    queue = publication_queue(runtime)
    for channel in channels:
        hook = config.webhook(channel)
        await queue.enqueue(
            key=delivery_key(case["story_id"], case["version"], channel, action),
            channel=channel, target=str(hook.url) if hook else channel, payload={},
            not_before=publish_at, session=session,
            extra={
                "_id": uuid.uuid4().hex, "story_id": case["story_id"],
                "version": case["version"], "case_id": case["_id"], "action": str(action),
                "publish_at": publish_at,
            },
        )  # fmt: skip


def enqueue_on_final_approval(runtime: Review) -> OnFinal:
    """What a final approval does in its own transaction: queue every channel."""

    async def enqueue(
        case: dict[str, Any], publish_at: datetime, session: AsyncClientSession
    ) -> None:
        await enqueue_publications(runtime, case=case, publish_at=publish_at, session=session)

    return enqueue


# ---- the workers --------------------------------------------------------------------
async def deliver_due(*, runtime: Review, worker: str) -> int:
    """Wait until woken or the poll interval passes, then make every due delivery; how
    many were made (run again and again by a background job, one per worker)."""
    await runtime.publish_due.wait(runtime.settings.publish_poll_seconds)
    made = 0
    while await deliver_next(runtime=runtime, worker=worker):
        made += 1
    return made


async def deliver_next(*, runtime: Review, worker: str) -> bool:
    """Claim one due delivery and make it; False when nothing is due."""
    queue = publication_queue(runtime)
    row = await queue.claim(worker)
    if row is None:
        return False
    case = await runtime.db[CASES].find_one({"_id": row["case_id"]})
    try:
        if case is None:
            raise DeliveryFailed("the story's review case is missing")
        if row["channel"] == FEED_CHANNEL:
            await publish_to_feed(runtime, queue, row, case)
        else:
            status = await send_webhook(runtime, row, case)
            await record_delivery(runtime, queue, row, case, status=status)
    except DeliveryFailed as exc:
        await record_failure(runtime, queue, row, case, exc)
    except TakenOver:
        log.info("publication %s was taken over by another worker", row["_id"])
    return True


async def publish_to_feed(
    runtime: Review, queue: DeliveryQueue, row: dict[str, Any], case: dict[str, Any]
) -> None:
    """Put the story in the bureau's feed (an upsert: a retry or a new version replaces)."""
    story = case["story"]
    now = utcnow()
    entry = {
        "version": case["version"], "title": story["title"], "body": story["body"],
        "category": story.get("category"), "campaign": story.get("campaign"),
        "unit_path": case["unit_path"], "media_ids": story.get("media_ids", []),
        "state": "published", "updated_at": now,
    }  # fmt: skip

    async def put_in_feed(session: AsyncClientSession) -> None:
        await runtime.db[FEED].update_one(
            {"_id": case["story_id"]},
            {"$set": entry, "$setOnInsert": {"published_at": now}},
            upsert=True,
            session=session,
        )

    await record_delivery(runtime, queue, row, case, status=None, with_it=put_in_feed)


async def record_delivery(
    runtime: Review,
    queue: DeliveryQueue,
    row: dict[str, Any],
    case: dict[str, Any],
    *,
    status: int | None,
    with_it: Callable[[AsyncClientSession], Awaitable[None]] | None = None,
) -> None:
    """The delivery made (``status``: the receiver's answer, none for the feed), in one
    transaction with ``with_it``, the delivery's own write where it has one: marked done
    under this worker's lease, and a publication (not a withdrawal notice) written to the
    audit trail and announced."""

    async def write(session: AsyncClientSession) -> None:
        if with_it is not None:
            await with_it(session)
        if not await queue.delivered(row, status=status, session=session):
            raise TakenOver(f"publication {row['_id']} was taken over by another worker")
        if row["action"] == PublicationAction.PUBLISH:
            await _announce_publication(runtime, row, case, session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    PUBLICATIONS_TOTAL.labels(row["channel"], "success").inc()


async def _announce_publication(
    runtime: Review, row: dict[str, Any], case: dict[str, Any], session: AsyncClientSession
) -> None:
    now = utcnow()
    await write_audit(
        runtime.db, session=session, story_id=case["story_id"], case_id=case["_id"],
        version=case["version"], actor=Actor.system(runtime.org), level=None,
        action=AuditAction.PUBLISHED, channel=row["channel"], at=now,
    )  # fmt: skip
    link = feed_link(runtime.settings, case["story_id"])
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


async def send_webhook(runtime: Review, row: dict[str, Any], case: dict[str, Any]) -> int:
    """POST the delivery, signed; the receiver's status when it took it."""
    hook = runtime.config.webhook(row["channel"])
    if hook is None or hook.secret is None:
        raise DeliveryFailed("the channel is no longer configured")
    url = str(hook.url)
    try:
        # again at every send: a name may resolve somewhere else than when it was set
        await check_target(url, runtime.settings.review_webhook_allow)
    except UnsafeTarget as exc:
        raise DeliveryFailed(f"refused target: {exc.reason}") from exc
    body = webhook_body(runtime.settings, row, case, utcnow())
    headers = standard_headers(hook.secret, row["_id"], body)
    headers["x-citydesk-event"] = f"story.{row['action']}"
    try:
        # redirects are not followed: one could lead inside the network
        response = await runtime.http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"no answer ({type(exc).__name__})") from exc
    if not response.is_success:
        raise DeliveryFailed(f"HTTP {response.status_code}", status=response.status_code)
    return response.status_code


async def record_failure(
    runtime: Review,
    queue: DeliveryQueue,
    row: dict[str, Any],
    case: dict[str, Any] | None,
    failure: DeliveryFailed,
) -> None:
    """Retry later with backoff, or give up after the configured attempts."""
    gave_up = await queue.failed(row, reason=failure.reason, status=failure.status)
    channel = row["channel"]
    if not gave_up:
        PUBLICATIONS_TOTAL.labels(channel, "retrying").inc()
        return
    if case is not None:
        await write_audit(
            runtime.db, session=None, story_id=case["story_id"], case_id=case["_id"],
            version=case["version"], actor=Actor.system(runtime.org), level=None,
            action=AuditAction.PUBLICATION_FAILED, comment=failure.reason, channel=channel,
        )  # fmt: skip
    PUBLICATIONS_TOTAL.labels(channel, "failed").inc()
    WEBHOOK_FAILURES.labels(channel).inc()
    log.warning("publication %s to %s failed: %s", row["_id"], channel, failure.reason)
