"""What the sentiment tests share: the service started for a test module, and opinion
items sent as a county system sends them."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

from citydesk.producer import AUTO, SignedProducer
from shared import events as ev
from shared.settings import load_settings
from tests.support import RunningService, run_service


def run_sentiment(tag: str, **settings: Any) -> AbstractAsyncContextManager[RunningService]:
    """The service on a database of its own, delivering at once to receivers on this
    machine (a test's webhook, robots and mail server listen on the loopback)."""
    return run_service(
        "sentiment",
        mongo_database=f"sentiment_{tag}_{uuid.uuid4().hex[:8]}",
        sentiment_webhook_poll_seconds=0.2,
        sentiment_push_backoff_seconds=0,
        sentiment_push_allow=["127.0.0.1"],
        **settings,
    )


def opinion(
    county: str,
    school: str | None,
    text: str,
    *,
    source: str = "weibo",
    item_id: str | None = None,
    link: str | None = None,
) -> ev.IntakeOpinionEvent:
    return ev.IntakeOpinionEvent.build(
        ev.IntakeOpinion(
            item_id=item_id or uuid.uuid4().hex,
            source=source,
            school=school,
            text=text,
            link=link,
            published_at=ev.utcnow(),
        ),
        producer=f"county-{county}",
        county=county,
    )


async def send(topic: str, *events: ev.Envelope, principal: str | None = AUTO) -> None:
    """Publish as each event's county system (or as ``principal``; None: unsigned)."""
    producer = SignedProducer(load_settings("tests"), principal)
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                topic, event.model_dump_json().encode(), key=(event.county or "x").encode()
            )
    finally:
        await producer.stop()
