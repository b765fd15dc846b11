"""Pushes of alert changes: an intent written in the alert's own transaction, expanded
by a job into one delivery per channel (the system webhook, each matching recipient's
e-mail and group robots), each sent by one replica per attempt (the shared leased queue),
retried with backoff, and recorded with its outcome. A failing channel delays nothing
else: every delivery is its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

import httpx
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from services.sentiment import channels
from services.sentiment.documents import INTENTS, NotificationIntent, PushPlan, intents_of
from services.sentiment.metrics import WEBHOOK_DELIVERIES
from services.sentiment.models import PushConfig, Recipient
from services.sentiment.pushes import message_for, quiet_until, recipients_for
from services.sentiment.runtime import Sentiment
from services.sentiment.settings import SentimentSettings
from shared.clock import utcnow
from shared.configstore import ConfigStore, read_yaml
from shared.events import OpinionFlaggedEvent, Severity
from shared.outbound import DeliveryQueue

log = logging.getLogger(__name__)

PUSH_FILE = Path(__file__).parent / "push.yaml"
PUSH_KEY = "sentiment-push"
DELIVERIES = "pushes"
BATCH = 20  # deliveries attempted at once by one replica
WORKER = f"{socket.gethostname()}:{id(object())}"


def push_store(settings: SentimentSettings) -> ConfigStore[PushConfig]:
    path = Path(settings.sentiment_push_file) if settings.sentiment_push_file else PUSH_FILE
    return ConfigStore(PushConfig, key=PUSH_KEY, seed=lambda: read_yaml(PushConfig, path))


def delivery_queue(runtime: Sentiment) -> DeliveryQueue:
    settings = runtime.settings
    return DeliveryQueue(
        runtime.db,
        DELIVERIES,
        lease_seconds=60,
        max_attempts=settings.sentiment_webhook_max_attempts,
        backoff_seconds=settings.sentiment_push_backoff_seconds,
        max_backoff_seconds=600,
    )


async def prepare(*, runtime: Sentiment) -> None:
    """Indexes of the intents and deliveries; the recipients seeded from their file."""
    await runtime.db[INTENTS].create_index([("expanded_at", ASCENDING), ("at", ASCENDING)])
    await delivery_queue(runtime).ensure_indexes()
    await runtime.pushes.seed(runtime.db)


async def queue_notification(
    *, runtime: Sentiment, event: OpinionFlaggedEvent, session: AsyncClientSession
) -> None:
    """Keep the push intent in the same transaction as the alert change."""
    intent: NotificationIntent = {
        "_id": str(event.event_id),
        "event": event.model_dump(mode="json"),
        "at": utcnow(),
        "expanded_at": None,
    }
    await intents_of(runtime.db).insert_one(intent, session=session)


def _recipient_deliveries(
    *, runtime: Sentiment, recipient: Recipient, event_id: str, payload: dict[str, Any]
) -> list[PushPlan]:
    message = message_for(
        payload=payload, org=runtime.org, console_url=runtime.settings.sentiment_console_url
    )
    wait = quiet_until(recipient.quiet_hours, Severity(payload["severity"]), runtime.clock())
    robot = {"title": message.title, "markdown": message.markdown()}
    found: list[PushPlan] = []
    for index, channel in enumerate(recipient.channels):
        content: dict[str, Any] = {"title": message.title, "text": message.text(), "robot": robot}
        if channel.kind == "dingtalk":
            content["secret"] = channel.secret
        marks = {"recipient": recipient.name, "event_id": event_id, "quiet": wait is not None}
        found.append(
            {
                "key": f"{event_id}:{recipient.name}:{index}",
                "channel": channel.kind,
                "target": channel.to if channel.kind == "email" else channel.url,
                "payload": content,
                "not_before": wait,
                "extra": {**marks, "severity": payload["severity"]},
            }
        )
    return found


async def expand(*, runtime: Sentiment, intent: NotificationIntent) -> int:
    """One delivery per channel for an intent (idempotent by key: a replica expanding the
    same intent adds nothing); returns how many were queued."""
    queue = delivery_queue(runtime)
    event = intent["event"]
    payload = event["payload"]
    wanted: list[PushPlan] = []
    url = runtime.settings.sentiment_webhook_url
    if url:
        marks = {"recipient": "webhook", "event_id": intent["_id"], "quiet": False}
        wanted.append(
            {
                "key": intent["_id"],
                "channel": "webhook",
                "target": url,
                "payload": {"event": event},
                "not_before": None,
                "extra": {**marks, "severity": payload["severity"]},
            }
        )
    if payload.get("alert_id") and payload.get("kind") in ("alert", "escalation"):
        alert = {k: payload.get(k) for k in ("severity", "school", "county")}
        config = runtime.pushes.current
        for recipient in recipients_for(config=config, org=runtime.org, alert=alert):
            wanted += _recipient_deliveries(
                runtime=runtime, recipient=recipient, event_id=intent["_id"], payload=payload
            )
    queued = 0
    for plan in wanted:
        queued += await queue.enqueue(
            key=plan["key"],
            channel=plan["channel"],
            target=plan["target"],
            payload=plan["payload"],
            not_before=plan["not_before"] or runtime.clock(),
            extra=plan["extra"],
        )
    await intents_of(runtime.db).update_one(
        {"_id": intent["_id"]}, {"$set": {"expanded_at": utcnow()}}
    )
    return queued


async def _attempt(
    *, runtime: Sentiment, queue: DeliveryQueue, client: httpx.AsyncClient, delivery: dict[str, Any]
) -> bool:
    outcome = await channels.send(settings=runtime.settings, client=client, delivery=delivery)
    if outcome.ok:
        await queue.delivered(delivery, status=outcome.status)
        WEBHOOK_DELIVERIES.labels("delivered").inc()
        return True
    gave_up = await queue.failed(delivery, reason=outcome.reason, status=outcome.status)
    WEBHOOK_DELIVERIES.labels("failed" if gave_up else "retry").inc()
    where = {"event_id": delivery.get("event_id")}
    log.warning("push over %s failed: %s", delivery["channel"], outcome.reason, extra=where)
    return False


async def deliver_due(*, runtime: Sentiment, client: httpx.AsyncClient | None = None) -> int:
    """Expand new intents, then attempt every due delivery this replica can claim, several
    at once; returns how many were delivered."""
    # notifications queued before pushes had intents (no ``event``) were sent or given up
    # by the old job; they are left as they are
    waiting = {"expanded_at": None, "event": {"$exists": True}}
    pending = intents_of(runtime.db).find(waiting).sort("at", ASCENDING).limit(100)
    async for intent in pending:
        await expand(runtime=runtime, intent=intent)
    queue = delivery_queue(runtime)
    delivered = 0
    claimed = await _claim(runtime=runtime, queue=queue)
    if not claimed:
        return 0  # the usual case: no HTTP client (and no TLS context) is made for nothing
    opened = httpx.AsyncClient(timeout=10.0) if client is None else None
    async with opened or contextlib.nullcontext(client) as http:
        assert http is not None  # one of the two is given
        while claimed:
            results = await asyncio.gather(
                *(_attempt(runtime=runtime, queue=queue, client=http, delivery=d) for d in claimed)
            )
            delivered += sum(results)
            claimed = await _claim(runtime=runtime, queue=queue)
    return delivered


async def _claim(*, runtime: Sentiment, queue: DeliveryQueue) -> list[dict[str, Any]]:
    """Up to a batch of due deliveries, leased to this replica."""
    claimed = []
    for _ in range(BATCH):
        delivery = await queue.claim(WORKER, now=runtime.clock())
        if delivery is None:
            break
        claimed.append(delivery)
    return claimed
