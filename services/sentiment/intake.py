"""Intake: items from the county feeds checked (place, link), analysed in batches,
stored once per (source, item id), the negative ones folded into incidents."""

from __future__ import annotations

from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from services.sentiment.incidents import fold_negatives
from services.sentiment.metrics import ITEMS
from services.sentiment.rules import classify_many
from services.sentiment.runtime import Sentiment
from shared.clock import utcnow
from shared.events import IntakeOpinionEvent
from shared.kafka import PermanentError
from shared.mongo import insert_new
from shared.orgtree import OrgTree


def check_place(*, org: OrgTree, county: str, school: str | None) -> None:
    """The county must exist and a named school must be in it."""
    unit = org.get(county)
    if unit is None or unit.type not in ("county", "city"):
        raise PermanentError(f"unknown county {county!r}")
    if school is None:
        return
    found = org.get(school)
    if found is None or not found.is_school():
        raise PermanentError(f"unknown school {school!r}")
    expected = county if unit.type == "county" else None
    if found.county != expected:
        raise PermanentError(f"school {school!r} is not in county {county!r}")


def check_link(link: str | None) -> None:
    """A link to the original is shown to officers as a link: http or https to a host
    only (``javascript:``, ``data:`` and the like would run in the console)."""
    if link is None:
        return
    parts = urlsplit(link)
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or ord(ch) < 32 for ch in link)
    ):
        raise PermanentError(f"link {link[:80]!r} refused: only http(s) links are kept")


async def record_opinions(*, runtime: Sentiment, events: list[IntakeOpinionEvent]) -> None:
    """Analyse a batch of intake items, store each once per (source, item id), and fold
    the negative ones not yet counted into their incidents. Items that can never apply
    are refused once the others are stored."""
    refused: list[str] = []
    accepted: dict[str, IntakeOpinionEvent] = {}
    for event in events:
        try:
            check_place(org=runtime.org, county=event.county, school=event.payload.school)
            check_link(event.payload.link)
        except PermanentError as exc:
            refused.append(str(exc))
            continue
        accepted.setdefault(f"{event.payload.source}:{event.payload.item_id}", event)
    if accepted:
        negatives = await _store_items(runtime=runtime, events=accepted)
        await fold_negatives(runtime=runtime, items=negatives)
    if refused:
        raise PermanentError("; ".join(refused))


async def _store_items(
    *, runtime: Sentiment, events: dict[str, IntakeOpinionEvent]
) -> list[dict[str, Any]]:
    """Analyse the batch and insert every item by its natural key in one unordered bulk
    insert, without a transaction; an item stored before is left as it is (its duplicate
    key is expected). Returns the negative items, in batch order.

    Insert-if-absent is what an upsert with ``$setOnInsert`` does; the bulk insert is
    the same effect at several times the rate on the embedded MongoDB-wire server."""
    payloads = [event.payload for event in events.values()]
    verdicts = await classify_many(
        runtime=runtime,
        texts=[payload.text for payload in payloads],
        sources=[payload.source for payload in payloads],
        refine=runtime.settings.sentiment_intake_embeddings,
    )
    received_at = utcnow()
    docs: list[dict[str, Any]] = []
    for (key, event), verdict in zip(events.items(), verdicts, strict=True):
        payload = event.payload
        published_at = payload.published_at
        if published_at.tzinfo is None:
            published_at = published_at.replace(tzinfo=UTC)
        item = {
            "_id": key,
            "source": payload.source,
            "item_id": payload.item_id,
            "county": event.county,
            "school": payload.school,
            "text": payload.text,
            "link": payload.link,
            "published_at": published_at,
            "received_at": received_at,
            "event_id": str(event.event_id),
            "correlation_id": event.correlation_id,
            **verdict.model_dump(
                mode="json",
                include={"negative", "score", "severity", "topic", "explanation", "stage"},
            ),
        }
        docs.append(item)
    for doc in await insert_new(runtime.db.items, docs):
        ITEMS.labels(doc["county"], "true" if doc["negative"] else "false").inc()
    return [doc for doc in docs if doc["negative"]]
