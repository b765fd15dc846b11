"""Every opinion item visible: an officer's list of the items in scope (not only the
negative ones) with filters, the link to the original and the model's reasons; an
officer's mark "negative" / "not negative" on an item, stored and exported for the next
training run (``python -m services.sentiment.train --corrections-from-mongo``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from pymongo import AsyncMongoClient

from services.sentiment import dataset
from services.sentiment.classifier import TOPICS, normalise
from services.sentiment.documents import CorrectionMark, corrections_of, items_of
from services.sentiment.models import ItemOut
from services.sentiment.queries import (
    LIST_TIME,
    in_scope_of,
    keep_equal,
    scope_filter,
    unit_filter,
)
from services.sentiment.runtime import Sentiment
from services.sentiment.similarity import bigrams
from shared.auth import CurrentPrincipal, Principal, Role, require_role
from shared.clock import utcnow
from shared.paging import MAX_LIMIT, PageQuery
from shared.refusals import Refusal
from shared.windows import FLOOR, windowed_page

router = APIRouter()


class Correction(BaseModel):
    """An officer's mark on an item."""

    negative: bool
    note: str | None = Field(default=None, max_length=500)


class CorrectionOut(Correction):
    """The mark as kept on the item: the officer's and when."""

    by: str
    at: datetime


class SourceRef(BaseModel):
    """One source of a merged item."""

    id: str
    source: str
    item_id: str
    link: str | None
    published_at: datetime

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> SourceRef:
        return cls(
            id=doc["_id"],
            source=doc["source"],
            item_id=doc["item_id"],
            link=doc.get("link"),
            published_at=doc["published_at"],
        )


class ListedItem(ItemOut):
    stage: str | None = None
    received_at: datetime | None = None
    correction: CorrectionOut | None = None
    # every source that carried this text (the item itself first), when merged
    sources: list[SourceRef] = Field(default_factory=list)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ListedItem:
        fields = {k: v for k, v in doc.items() if k in cls.model_fields and k != "sources"}
        return cls(id=doc["_id"], **fields, sources=[SourceRef.of(doc)])


# texts this alike (character-bigram Jaccard of the normalised texts) are one item seen
# in several places: a post reposted, a complaint sent to two feeds
NEAR_IDENTICAL = 0.8


def merge_near_identical(docs: Sequence[Mapping[str, Any]]) -> list[ListedItem]:
    """Identical or near-identical texts as one item (the newest), its sources listed."""
    merged: list[tuple[set[str], ListedItem]] = []
    for doc in docs:
        grams = bigrams(normalise(doc["text"]))
        for seen, item in merged:
            union = len(seen | grams)
            if union and len(seen & grams) / union >= NEAR_IDENTICAL:
                item.sources.append(SourceRef.of(doc))
                break
        else:
            merged.append((grams, ListedItem.of(doc)))
    return [item for _, item in merged]


@dataclass(frozen=True)
class ItemFilter:
    """What an officer narrows the item list to (query parameters); None leaves it open."""

    source: Annotated[str | None, Query(max_length=64)] = None
    topic: Annotated[str | None, Query(max_length=32)] = None
    negative: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    unit: Annotated[str | None, Query(max_length=64)] = None

    def checked(self) -> ItemFilter:
        """The filter with its period in UTC (a time without a zone is UTC, as items are
        stored), or a refusal for an unknown topic or an empty period."""
        since, until = _utc(self.since), _utc(self.until)
        if self.topic is not None and self.topic not in TOPICS:
            topics = "、".join(TOPICS)
            raise Refusal(422, "unknown_topic", f"没有“{self.topic}”这个主题，可选：{topics}")
        if since is not None and until is not None and since >= until:
            raise Refusal(422, "empty_period", "起始时间应早于结束时间")
        return replace(self, since=since, until=until)


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def item_scope(*, runtime: Sentiment, principal: Principal, unit: str | None) -> dict[str, Any]:
    """The equality of the units listed: the principal's scope, or a unit within it."""
    org = runtime.org
    if unit is None:
        return scope_filter(org=org, principal=principal)
    if org.get(unit) is None:
        raise Refusal(404, "unknown_unit", f"没有编码为 {unit} 的单位")
    if principal.unit != org.city.code and not org.contains(principal.unit, unit):
        raise Refusal(403, "unit_out_of_scope", "该单位不在您的管辖范围内")
    return unit_filter(org=org, code=unit)  # within the scope, so narrower than it


def item_narrowing(filters: ItemFilter) -> dict[str, Any]:
    """The filters beyond the scope and the period, as equalities."""
    named = {"source": filters.source, "topic": filters.topic, "negative": filters.negative}
    return {field: value for field, value in named.items() if value is not None}


@router.get("/items", response_model=list[ListedItem])
async def list_items(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    filters: Annotated[ItemFilter, Depends()],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    merge: bool = True,
) -> list[ListedItem]:
    """Opinion items about my unit and the units below it, negative or not, newest
    first: the text, the link to the original, the model's verdict and its reasons, and
    an officer's correction if there is one. Identical or near-identical texts from
    several sources are one entry listing its sources (``merge=false``: one per source);
    a repost that falls on the next page is listed there. More than ``limit``: the
    ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    require_role(principal, Role.OPINION_OFFICER)
    sentiment: Sentiment = request.app.state.sentiment
    checked = filters.checked()
    docs, next_cursor = await windowed_page(
        sentiment.db.items, item_scope(runtime=sentiment, principal=principal, unit=checked.unit),
        field=LIST_TIME["items"], query=PageQuery(limit=limit, cursor=cursor),
        floor=checked.since or FLOOR, before=checked.until,
        keep=keep_equal(item_narrowing(checked)),
    )  # fmt: skip
    if next_cursor:  # the list stays a list; the next page is asked for with this cursor
        response.headers["x-next-cursor"] = next_cursor
    return merge_near_identical(docs) if merge else [ListedItem.of(doc) for doc in docs]


@router.post("/items/{item_key}/correction", response_model=ListedItem)
async def correct_item(
    request: Request, principal: CurrentPrincipal, item_key: str, body: Correction
) -> ListedItem:
    """Mark an item negative or not negative. The mark is kept on the item and in the
    corrections the next training run learns from; the latest mark on a text wins."""
    require_role(principal, Role.OPINION_OFFICER)
    sentiment: Sentiment = request.app.state.sentiment
    db = sentiment.db
    doc = await items_of(db).find_one({"_id": item_key})
    if doc is None or not in_scope_of(org=sentiment.org, principal=principal, doc=doc):
        raise Refusal(404, "unknown_item", "您的管辖范围内没有这条舆情")
    mark: CorrectionMark = {
        "negative": body.negative,
        "by": principal.sub,
        "at": utcnow(),
        "note": body.note,
    }
    await corrections_of(db).insert_one(
        {
            "item": item_key,
            "text": doc["text"],
            "topic": doc.get("topic"),
            "source": doc.get("source"),
            "model_negative": doc.get("negative"),
            **mark,
        }
    )
    updated = await items_of(db).find_one_and_update(
        {"_id": item_key}, {"$set": {"correction": mark}}, return_document=True
    )
    return ListedItem.of(updated or doc | {"correction": mark})


async def export_corrections(
    mongo_uri: str, database: str, path: Path = dataset.CORRECTIONS
) -> int:
    """Write every stored correction, oldest first, as training rows; returns how many."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        rows = await corrections_of(client[database]).find().sort("at", 1).to_list()
    finally:
        await client.close()
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            line = {
                "text": row["text"],
                "negative": bool(row["negative"]),
                "topic": row.get("topic") or "other",
                "source": row.get("source"),
                "at": row["at"].isoformat(),
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(rows)


def export_corrections_sync(mongo_uri: str, database: str, path: Path) -> int:
    return asyncio.run(export_corrections(mongo_uri, database, path))
