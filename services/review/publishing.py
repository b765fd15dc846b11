"""Publication after final approval: a publish queue with one row per story version and
channel (the bureau's own feed and HMAC-signed webhooks), scheduling, outside adoption
(采用) and withdrawal (撤稿). Published content is archived, never deleted."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from prometheus_client import Counter
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.review.models import (
    FEED_CHANNEL,
    AdoptionRequest,
    AdoptionView,
    CaseState,
    PublicationAction,
    PublicationState,
    PublicationView,
    ReviewConfig,
)
from services.review.service import (
    CASES,
    CITY_LEVELS,
    SERVICE,
    Actor,
    Conflict,
    NotFound,
    OnFinal,
    commit_change,
    guarded_update,
    load_config,
    media_links,
    require_city_office,
    utcnow,
    write_audit,
)
from services.review.settings import ReviewSettings
from shared import events as ev
from shared import topics as tp
from shared.auth import Principal
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

PUBLICATIONS = "publications"
FEED = "feed"
ADOPTIONS = "adoptions"
LOCAL_ZONE = ZoneInfo("Asia/Shanghai")
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
ADOPTIONS_TOTAL = Counter(
    "citydesk_review_adoptions_total", "Adoptions by outside outlets, by outlet level.", ["level"]
)


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


async def ensure_indexes(runtime: ServiceRuntime) -> None:
    """Indexes for the publish queue, the feed and adoptions (one outlet per story)."""
    db = runtime.db
    await db[PUBLICATIONS].create_index(
        [("story_id", 1), ("version", 1), ("channel", 1), ("action", 1)], unique=True
    )
    await db[PUBLICATIONS].create_index([("state", ASCENDING), ("next_attempt_at", ASCENDING)])
    await db[FEED].create_index([("state", ASCENDING), ("published_at", DESCENDING)])
    await db[ADOPTIONS].create_index(
        [("story_id", ASCENDING), ("outlet_key", ASCENDING)], unique=True
    )


def settings_of(runtime: ServiceRuntime) -> ReviewSettings:
    return runtime.settings  # type: ignore[return-value]


def feed_link(settings: ReviewSettings, story_id: str) -> str:
    return f"{settings.review_public_url.rstrip('/')}/feed/{story_id}"


def published_event(
    case: dict[str, Any],
    *,
    kind: ev.PublicationKind,
    at: datetime,
    channel: str | None = None,
    outlet: str | None = None,
    outlet_level: ev.OutletLevel = ev.OutletLevel.BUREAU,
    placement: ev.Placement = ev.Placement.NORMAL,
    leader_instruction: bool = False,
    link: str | None = None,
    reason: str | None = None,
) -> ev.StoryPublishedEvent:
    story = case["story"]
    path = ev.UnitPath(**case["unit_path"])
    return ev.StoryPublishedEvent.build(
        ev.StoryPublished(
            story_id=case["story_id"], version=case["version"], unit_path=path, kind=kind,
            channel=channel, outlet=outlet, outlet_level=outlet_level, placement=placement,
            leader_instruction=leader_instruction, link=link, published_at=at,
            title=story["title"], category=story.get("category"), campaign=story.get("campaign"),
            photo_count=story.get("photo_count", 0), video_count=story.get("video_count", 0),
            reason=reason,
        ),
        producer=SERVICE, county=path.county, unit=path.unit,
        correlation_id=case.get("correlation_id"),
    )  # fmt: skip


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
    except Conflict:
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
        raise Conflict(f"publication {row['_id']} was taken over by another worker")
    if row["action"] != PublicationAction.PUBLISH:
        return
    system = Actor("system", "CityDesk", "system", runtime.org.city.code)
    await write_audit(
        runtime.db, session=session, story_id=case["story_id"], case_id=case["_id"],
        version=case["version"], actor=system, level=None, decision="published",
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
        system = Actor("system", "CityDesk", "system", runtime.org.city.code)
        await write_audit(
            runtime.db, session=None, story_id=case["story_id"], case_id=case["_id"],
            version=case["version"], actor=system, level=None, decision="publication_failed",
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


# ---- the city office's actions ------------------------------------------------------
async def latest_case(db: AsyncDatabase[dict[str, Any]], story_id: str) -> dict[str, Any]:
    case = await db[CASES].find_one({"story_id": story_id}, sort=[("version", DESCENDING)])
    if case is None:
        raise NotFound(f"no story {story_id!r} under review")
    return case


async def schedule_story(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str, publish_at: datetime
) -> dict[str, Any]:
    """Set when a story goes out: before its final approval, or while still waiting."""
    role = require_city_office(principal, runtime.org)
    db = runtime.db
    case = await latest_case(db, story_id)
    now = utcnow()
    moved = 0

    async def write(session: AsyncClientSession) -> None:
        nonlocal moved
        if case["state"] == CaseState.OPEN and case["level"] in CITY_LEVELS:
            await guarded_update(runtime, case, {"publish_at": publish_at}, session)
        elif case["state"] == CaseState.APPROVED and not case.get("withdrawn"):
            result = await db[PUBLICATIONS].update_many(
                {
                    "story_id": story_id,
                    "version": case["version"],
                    "action": PublicationAction.PUBLISH,
                    "state": PublicationState.PENDING,
                },
                {"$set": {"publish_at": publish_at, "next_attempt_at": publish_at}},
                session=session,
            )
            moved = result.modified_count
            if moved == 0:
                raise Conflict("nothing of this story waits to be published")
        else:
            raise Conflict(
                f"the story's case is {case['state']} at the {case['level']} level; "
                "it can be scheduled at the city level or after final approval"
            )
        await write_audit(
            db, session=session, story_id=story_id, case_id=case["_id"],
            version=case["version"], actor=Actor.of(principal, role), level=None,
            decision="scheduled", comment=publish_at.isoformat(), at=now,
        )  # fmt: skip

    await commit_change(runtime, write)
    return {"story_id": story_id, "version": case["version"], "publish_at": publish_at,
            "publications": moved}  # fmt: skip


async def record_adoption(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str, request: AdoptionRequest
) -> AdoptionView:
    """Record that an outside outlet ran the story; one outlet counts once per story."""
    role = require_city_office(principal, runtime.org)
    db = runtime.db
    await latest_case(db, story_id)
    case = await db[CASES].find_one(
        {"story_id": story_id, "state": CaseState.APPROVED}, sort=[("version", DESCENDING)]
    )
    if case is None:
        raise Conflict(f"story {story_id!r} has not passed its final review")
    now = utcnow()
    outlet = " ".join(request.outlet.split())
    adoption = {
        "_id": uuid.uuid4().hex,
        "story_id": story_id,
        "version": case["version"],
        "outlet": outlet,
        "outlet_key": outlet.casefold(),
        "level": request.level,
        "placement": str(request.placement),
        "date": request.date.isoformat(),
        "link": str(request.link),
        "leader_instruction": request.leader_instruction,
        "recorded_by": principal.sub,
        "recorded_at": now,
    }
    ran_at = datetime.combine(request.date, day_time(12), LOCAL_ZONE).astimezone(UTC)

    async def write(session: AsyncClientSession) -> None:
        await db[ADOPTIONS].insert_one(adoption, session=session)
        await write_audit(
            db, session=session, story_id=story_id, case_id=case["_id"],
            version=case["version"], actor=Actor.of(principal, role), level=None,
            decision="adopted", comment=f"{outlet} ({request.level}, {request.placement})",
            channel=outlet, at=now,
        )  # fmt: skip
        event = published_event(
            case, kind=ev.PublicationKind.ADOPTION, outlet=outlet,
            outlet_level=ev.OutletLevel(request.level), placement=request.placement,
            leader_instruction=request.leader_instruction, link=str(request.link), at=ran_at,
        )  # fmt: skip
        await runtime.emit(tp.STORY_PUBLISHED, event, session=session)

    try:
        await commit_change(runtime, write)
    except DuplicateKeyError as exc:
        raise Conflict(f"the adoption of this story by {outlet!r} is already recorded") from exc
    runtime.outbox_written()
    ADOPTIONS_TOTAL.labels(request.level).inc()
    return adoption_view(adoption)


def adoption_view(doc: dict[str, Any]) -> AdoptionView:
    return AdoptionView(adoption_id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


async def adoptions_of(*, runtime: ServiceRuntime, story_id: str) -> list[AdoptionView]:
    rows = await runtime.db[ADOPTIONS].find({"story_id": story_id}).sort("recorded_at", 1).to_list()
    return [adoption_view(row) for row in rows]


async def withdraw_story(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str, reason: str
) -> dict[str, Any]:
    """Withdraw a published story everywhere it went: the feed entry is archived as
    withdrawn, pending deliveries are cancelled and webhook channels are told."""
    role = require_city_office(principal, runtime.org)
    db = runtime.db
    await latest_case(db, story_id)
    case = await db[CASES].find_one(
        {"story_id": story_id, "state": CaseState.APPROVED}, sort=[("version", DESCENDING)]
    )
    if case is None:
        raise Conflict(f"story {story_id!r} has not passed its final review")
    if case.get("withdrawn"):
        raise Conflict(f"story {story_id!r} is already withdrawn")
    served = await db[PUBLICATIONS].distinct(
        "channel",
        {
            "story_id": story_id,
            "action": PublicationAction.PUBLISH,
            "state": PublicationState.SUCCESS,
        },
    )
    if not served:
        raise Conflict("the story is not published anywhere yet; cancel its publications instead")
    config = await load_config(db=db)
    now = utcnow()
    actor = Actor.of(principal, role)

    async def write(session: AsyncClientSession) -> None:
        await guarded_update(
            runtime, case, {"withdrawn": True, "withdrawn_at": now, "withdraw_reason": reason},
            session,
        )  # fmt: skip
        await db[FEED].update_one(
            {"_id": story_id, "state": "published"},
            {"$set": {"state": "withdrawn", "withdrawn_at": now, "withdraw_reason": reason}},
            session=session,
        )
        await db[PUBLICATIONS].update_many(
            {"story_id": story_id, "state": {"$in": WAITING}},
            {"$set": {"state": PublicationState.CANCELLED, "last_error": "story withdrawn"}},
            session=session,
        )
        hooks = [name for name in served if config.webhook(name) is not None]
        await enqueue_publications(
            db, config=config, case=case, publish_at=now, session=session,
            action=PublicationAction.WITHDRAW, channels=hooks,
        )  # fmt: skip
        await write_audit(
            db, session=session, story_id=story_id, case_id=case["_id"],
            version=case["version"], actor=actor, level=None, decision="withdrawn",
            comment=reason, at=now,
        )  # fmt: skip
        event = published_event(case, kind=ev.PublicationKind.WITHDRAWAL, reason=reason, at=now)
        await runtime.emit(tp.STORY_PUBLISHED, event, session=session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    return {"story_id": story_id, "version": case["version"], "withdrawn_at": now,
            "channels": served}  # fmt: skip


# ---- the publish queue, seen by the city office -------------------------------------
def publication_view(row: dict[str, Any]) -> PublicationView:
    return PublicationView(
        publication_id=row["_id"], **{k: v for k, v in row.items() if k != "_id"}
    )


async def list_publications(
    *,
    runtime: ServiceRuntime,
    principal: Principal,
    state: PublicationState | None,
    story_id: str | None,
    limit: int,
) -> list[PublicationView]:
    """Queued and finished deliveries, newest first, filtered by state or story."""
    require_city_office(principal, runtime.org)
    query: dict[str, Any] = {}
    if state is not None:
        query["state"] = state
    if story_id is not None:
        query["story_id"] = story_id
    rows = await runtime.db[PUBLICATIONS].find(query).sort("created_at", -1).limit(limit).to_list()
    return [publication_view(row) for row in rows]


async def resend_publication(
    *, runtime: ServiceRuntime, principal: Principal, publication_id: str
) -> PublicationView:
    """Queue a failed or cancelled delivery again, with a fresh count of attempts."""
    require_city_office(principal, runtime.org)
    return await _move(
        runtime, publication_id, [PublicationState.FAILED, PublicationState.CANCELLED],
        {"state": PublicationState.PENDING, "attempts": 0, "next_attempt_at": utcnow()},
    )  # fmt: skip


async def cancel_publication(
    *, runtime: ServiceRuntime, principal: Principal, publication_id: str
) -> PublicationView:
    """Stop a delivery that has not been made yet."""
    require_city_office(principal, runtime.org)
    return await _move(
        runtime, publication_id, WAITING,
        {"state": PublicationState.CANCELLED, "next_attempt_at": None},
    )  # fmt: skip


async def _move(
    runtime: ServiceRuntime,
    publication_id: str,
    allowed: list[PublicationState],
    change: dict[str, Any],
) -> PublicationView:
    row = await runtime.db[PUBLICATIONS].find_one_and_update(
        {"_id": publication_id, "state": {"$in": allowed}},
        {"$set": change},
        return_document=ReturnDocument.AFTER,
    )
    if row is None:
        current = await runtime.db[PUBLICATIONS].find_one({"_id": publication_id})
        if current is None:
            raise NotFound(f"no publication {publication_id!r}")
        wanted = ", ".join(allowed)
        raise Conflict(f"publication is {current['state']}; this needs one of: {wanted}")
    return publication_view(row)


async def feed_entries(
    *, db: AsyncDatabase[dict[str, Any]], state: str, limit: int
) -> list[dict[str, Any]]:
    """Feed entries in a state (published, or the withdrawn archive), newest first."""
    return await db[FEED].find({"state": state}).sort("published_at", -1).limit(limit).to_list()


async def feed_entry(*, db: AsyncDatabase[dict[str, Any]], story_id: str) -> dict[str, Any]:
    entry = await db[FEED].find_one({"_id": story_id})
    if entry is None:
        raise NotFound(f"no published story {story_id!r}")
    return entry
