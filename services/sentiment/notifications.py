"""Signed webhook notifications of alert changes: queued in the alert's transaction,
delivered (with retries and backoff) by a job."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import timedelta

import httpx
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from services.sentiment.metrics import WEBHOOK_DELIVERIES
from services.sentiment.runtime import Sentiment
from shared.events import OpinionFlaggedEvent, utcnow

log = logging.getLogger(__name__)


async def queue_notification(
    *, runtime: Sentiment, event: OpinionFlaggedEvent, session: AsyncClientSession
) -> None:
    """Keep the notification in the same transaction as the alert change; the delivery
    job sends it (with retries) when a webhook is configured."""
    if not runtime.settings.sentiment_webhook_url:
        return
    await runtime.db.notifications.insert_one(
        {
            "_id": str(event.event_id),
            "body": event.model_dump_json(),
            "attempts": 0,
            "next_at": utcnow(),
            "delivered_at": None,
            "failed_at": None,
            "last_error": None,
        },
        session=session,
    )


def sign(*, secret: str, timestamp: str, body: str) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``, hex, as sent in ``X-CityDesk-Signature``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


async def deliver_notifications(*, runtime: Sentiment, client: httpx.AsyncClient) -> int:
    """POST pending notifications; back off exponentially on failure, give up after the
    configured number of attempts. Returns how many were delivered."""
    settings = runtime.settings
    url = settings.sentiment_webhook_url
    if not url:
        return 0
    secret = (
        settings.sentiment_webhook_secret.get_secret_value()
        if settings.sentiment_webhook_secret
        else ""
    )
    db = runtime.db
    pending = (
        await db.notifications.find(
            {"delivered_at": None, "failed_at": None, "next_at": {"$lte": utcnow()}}
        )
        .sort("next_at", ASCENDING)
        .limit(50)
        .to_list()
    )
    delivered = 0
    for note in pending:
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-citydesk-event-id": note["_id"],
            "x-citydesk-timestamp": timestamp,
            "x-citydesk-signature": sign(secret=secret, timestamp=timestamp, body=note["body"]),
        }
        error: str | None = None
        try:
            response = await client.post(url, content=note["body"].encode(), headers=headers)
            if response.status_code >= 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        attempts = note["attempts"] + 1
        if error is None:
            await db.notifications.update_one(
                {"_id": note["_id"]}, {"$set": {"delivered_at": utcnow(), "attempts": attempts}}
            )
            WEBHOOK_DELIVERIES.labels("delivered").inc()
            delivered += 1
            continue
        gave_up = attempts >= settings.sentiment_webhook_max_attempts
        await db.notifications.update_one(
            {"_id": note["_id"]},
            {
                "$set": {
                    "attempts": attempts,
                    "last_error": error,
                    "next_at": utcnow() + timedelta(seconds=min(300, 2**attempts)),
                    "failed_at": utcnow() if gave_up else None,
                }
            },
        )
        WEBHOOK_DELIVERIES.labels("failed" if gave_up else "retry").inc()
        log.warning("webhook delivery failed: %s", error, extra={"event_id": note["_id"]})
    return delivered
