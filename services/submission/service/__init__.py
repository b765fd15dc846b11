"""The submission service's logic and storage, one module per concern:

* :mod:`.stories`: the story document, the rules a text is checked against, drafts, reads;
* :mod:`.submitting`: a submitted version, its quality flags and its event;
* :mod:`.intake`: county systems' stories from ``intake.stories``;
* :mod:`.projections`: media, review decisions and publications from the other services;
* :mod:`.listing` and :mod:`.counts`: the story list and its maintained totals;
* :mod:`.rules`: categories and submission rules (seeded from ``config.yaml``);
* :mod:`.bulk`: the same documents written many at a time, for a rebuilt or benchmark city.
"""

from __future__ import annotations

from pymongo import ASCENDING

from services.submission import copies, search
from services.submission.service.counts import ensure_counts
from services.submission.service.listing import ensure_list_indexes
from services.submission.service.stories import MEDIA, STORIES
from shared.runtime import ServiceRuntime

__all__ = ["MEDIA", "STORIES", "ensure_indexes"]


async def ensure_indexes(runtime: ServiceRuntime) -> None:
    """Indexes for the lists, intake dedupe and fingerprint lookups, and what stories saved
    by an earlier release lack (a start-up hook: called with the runtime alone)."""
    db = runtime.db
    await db[STORIES].create_index("intake_key", unique=True, sparse=True)
    await db[copies.VERSIONS].create_index([("story_id", ASCENDING), ("version", ASCENDING)])
    await db[STORIES].create_index(search.FIELD)  # multikey: one entry per bigram
    await ensure_list_indexes(runtime=runtime)
    await copies.ensure_indexes(db, org=runtime.org)
    await _complete_older_stories(runtime)
    await ensure_counts(db, stories=STORIES)


async def _complete_older_stories(runtime: ServiceRuntime) -> None:
    """Stories saved before search and the copy-flag field existed get them once."""
    stories = runtime.db[STORIES]
    missing = stories.find({search.FIELD: {"$exists": False}}, projection={"draft": 1})
    async for doc in missing:
        draft = doc.get("draft") or {}
        grams = search.story_grams(draft.get("title", ""), draft.get("body", ""))
        await stories.update_one({"_id": doc["_id"]}, {"$set": {search.FIELD: grams}})
    await stories.update_many(
        {"copy_flagged": {"$exists": False}, "flags.possible_copy": {"$type": "object"}},
        {"$set": {"copy_flagged": True}},
    )
    await stories.update_many(
        {"copy_flagged": {"$exists": False}}, {"$set": {"copy_flagged": False}}
    )
