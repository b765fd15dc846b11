"""Maintained totals of stories per unit and status, so a page of the story list never
counts the city's whole history: every status change adjusts the counters of the story's
unit and each unit above it, in the transaction that changes the story."""

from __future__ import annotations

from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

COUNTS = "story_counts"
ALL = "*"
# the marker row saying the counters cover every stored story (written by a rebuild)
BUILT = "built"


def _key(unit: str, status: str) -> str:
    return f"{unit}|{status}"


async def count_change(
    db: AsyncDatabase[dict[str, Any]],
    story: dict[str, Any],
    old_status: str | None,
    new_status: str | None,
    *,
    session: AsyncClientSession | None = None,
) -> None:
    """Move one story from ``old_status`` to ``new_status`` (``None``: not counted yet)
    in the counters of its unit and of every unit above it."""
    if old_status == new_status:
        return
    changes: dict[str, int] = {}
    for unit in story["ancestors"]:
        if old_status is None:
            changes[_key(unit, ALL)] = 1
        else:
            changes[_key(unit, old_status)] = -1
        if new_status is not None:
            changes[_key(unit, new_status)] = 1
        else:
            changes[_key(unit, ALL)] = -1
    await db[COUNTS].bulk_write(
        [
            UpdateOne({"_id": key}, {"$inc": {"count": by}}, upsert=True)
            for key, by in changes.items()
        ],
        ordered=False,
        session=session,
    )


async def total(db: AsyncDatabase[dict[str, Any]], *, unit: str, status: str | None) -> int | None:
    """The stories of ``unit`` and the units below it (in ``status``), from the counters;
    ``None`` when the counters have not been built yet."""
    if await db[COUNTS].find_one({"_id": BUILT}) is None:
        return None
    row = await db[COUNTS].find_one({"_id": _key(unit, status or ALL)})
    return int(row["count"]) if row else 0


async def totals(
    db: AsyncDatabase[dict[str, Any]], *, unit: str, statuses: list[str]
) -> dict[str, int] | None:
    """The stories of ``unit`` and the units below it in each of ``statuses`` and in all
    (``*``), read together from the counters; ``None`` before they are built."""
    keys = {_key(unit, status): status for status in [*statuses, ALL]}
    rows = await db[COUNTS].find({"_id": {"$in": [BUILT, *keys]}}).to_list()
    found = {row["_id"]: int(row.get("count", 0)) for row in rows}
    if BUILT not in found:
        return None
    return {status: found.get(key, 0) for key, status in keys.items()}


async def rebuild_counts(db: AsyncDatabase[dict[str, Any]], *, stories: str) -> int:
    """Count every stored story once (at start-up when the counters are missing, and after
    a bulk import); returns the number of counter rows."""
    pipeline: list[dict[str, Any]] = [
        {"$project": {"ancestors": 1, "status": 1}},
        {"$unwind": "$ancestors"},
        {"$group": {"_id": {"unit": "$ancestors", "status": "$status"}, "count": {"$sum": 1}}},
    ]
    rows: dict[str, int] = {}
    async for row in await db[stories].aggregate(pipeline):
        unit, status = row["_id"]["unit"], row["_id"]["status"]
        rows[_key(unit, status)] = rows.get(_key(unit, status), 0) + row["count"]
        rows[_key(unit, ALL)] = rows.get(_key(unit, ALL), 0) + row["count"]
    await db[COUNTS].delete_many({})
    if rows:
        await db[COUNTS].insert_many([{"_id": key, "count": n} for key, n in rows.items()])
    await db[COUNTS].insert_one({"_id": BUILT})
    return len(rows)


async def ensure_counts(db: AsyncDatabase[dict[str, Any]], *, stories: str) -> None:
    """Build the counters once, for a database written before they existed."""
    if await db[COUNTS].find_one({"_id": BUILT}) is None:
        await rebuild_counts(db, stories=stories)
