"""The points ledger: every effect of an event is an entry, and the per-unit monthly
projections are recomputed from the entries.

Idempotency has two layers. Each entry has a natural key as ``_id`` (``submitted|<story>``,
``adoption|<event id>``…) and a unique ``(source_event_id, kind)`` index, so a redelivered
or replayed event inserts nothing new. The projection of a ``(unit, month)`` is not
incremented but recomputed from its entries and replaced, so running it again, or after a
crash between the two writes, gives the same result. Both writes take whole batches, and
the live consumers and the rebuild share them: a batch is scored against the ledger
entries of events outside it, so applying the same batch again (a retry, a redelivery)
computes the same entries, which the unique keys then refuse.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from prometheus_client import Counter
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError

from services.scoring.campaigns import complete_campaign_tasks
from services.scoring.documents import EntryFigures, LedgerEntry, campaign_items_of, ledger_of
from services.scoring.scorers import SCORERS, STORY_STATE_KINDS, Scoring
from services.scoring.service import LEDGER, UNIT_MONTHS, Db, keep_first_month, rule_book
from services.scoring.summaries import refresh_summaries
from services.scoring.totals import add_to_total, empty_total, projection_document
from shared import events as ev
from shared.kafka import PermanentError
from shared.mongo import DUPLICATE_KEY, insert_new
from shared.orgtree import OrgTree

LEDGER_ENTRIES = Counter(
    "citydesk_scoring_ledger_entries_total",
    "Ledger entries written (duplicates of already applied events are not counted).",
    ["kind"],
)
POINTS_AWARDED = Counter(
    "citydesk_scoring_points_awarded_total",
    "Positive points written to the ledger, per county.",
    ["county"],
)
REFRESH_CONCURRENCY = 16


@dataclass
class Applied:
    entries: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


async def apply_events(
    *,
    db: Db,
    org: OrgTree,
    events: Sequence[ev.Envelope],
    count_metrics: bool = True,
    skip_rejected: bool = False,
) -> Applied:
    """Score ``events`` (in their topic order) into the ledger and the projections.

    An event that can never apply raises :class:`PermanentError` before anything is
    written (the live consumer then applies the batch one event at a time and dead-letters
    only that event); with ``skip_rejected`` it is skipped and reported instead.
    """
    book = await rule_book(db=db)
    story_ids = [e.payload.story_id for e in events if e.type == "story.published"]
    history: dict[str, list[LedgerEntry]] = defaultdict(list)
    if story_ids:
        # entries the batch's own events wrote on an earlier attempt are left out: they
        # are computed again below, in order, and refused by the unique keys
        cursor = ledger_of(db).find(
            {
                "story_id": {"$in": sorted(set(story_ids))},
                "source_event_id": {"$nin": [str(e.event_id) for e in events]},
            }
        )
        for entry in await cursor.to_list():
            # found by story id, so it names one
            if entry["kind"] in STORY_STATE_KINDS and entry["story_id"] is not None:
                history[entry["story_id"]].append(entry)
    scoring = Scoring(book=book, org=org, story_history=history)
    applied = Applied()
    for event in events:
        scorer = SCORERS[event.type]
        try:
            scorer(scoring, event)
        except PermanentError as exc:
            if not skip_rejected:
                raise
            applied.rejected.append((str(event.event_id), str(exc)))
    inserted = await insert_new(ledger_of(db), scoring.entries)
    applied.entries = len(inserted)
    applied.duplicates = len(scoring.entries) - len(inserted)
    await insert_new(campaign_items_of(db), scoring.items)
    completions = await complete_campaign_tasks(db=db, book=book, org=org, items=scoring.items)
    inserted += await insert_new(db[LEDGER], completions)
    await refresh_projections(
        db=db, org=org, keys={(e["unit"], e["period"]) for e in scoring.entries + completions}
    )
    if count_metrics:
        for entry in inserted:
            LEDGER_ENTRIES.labels(entry["kind"]).inc()
            if entry["points"] > 0:
                POINTS_AWARDED.labels(entry["county"] or "city").inc(entry["points"])
    return applied


async def refresh_projections(*, db: Db, org: OrgTree, keys: set[tuple[str, str]]) -> None:
    """Recompute the ``(unit, month)`` projections named by ``keys`` from the ledger."""
    if not keys:
        return
    totals: dict[tuple[str, str], dict[str, Any]] = {}

    async def recompute(key: tuple[str, str]) -> None:
        total = empty_total()
        cursor = db[LEDGER].find(
            {"unit": key[0], "period": key[1]}, projection={"points": 1, "counts": 1}
        )
        async for entry in cursor:
            # only the figures are read (the projection above)
            add_to_total(total, cast(EntryFigures, entry))
        totals[key] = total

    # one indexed lookup per (unit, month), a few at a time: far cheaper on the store
    # than one query with two $in lists
    pending = sorted(keys)
    for start in range(0, len(pending), REFRESH_CONCURRENCY):
        await asyncio.gather(*(recompute(k) for k in pending[start : start + REFRESH_CONCURRENCY]))
    operations = []
    for (unit_code, period), total in totals.items():
        document = projection_document(org, unit_code, period, total)
        # the ledger only grows: a projection counted from fewer entries than the stored
        # one was read before another consumer's entries and must not replace it
        newer_or_same = {"_id": f"{unit_code}|{period}", "entries": {"$lte": total["entries"]}}
        operations.append(ReplaceOne(newer_or_same, document, upsert=True))
    await keep_first_month(db=db, months=(period for _, period in totals))
    try:
        await db[UNIT_MONTHS].bulk_write(operations, ordered=False)
    except BulkWriteError as exc:
        # the upsert of a stale projection collides with the newer one's _id
        if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
            raise
    await refresh_summaries(db=db, org=org, keys=keys)


async def record_campaign_completions(*, db: Db, org: OrgTree, code: str) -> int:
    """Award every task of campaign ``code`` already complete (after it is created)."""
    book = await rule_book(db=db)
    entries = await complete_campaign_tasks(
        db=db, book=book, org=org, items=[], campaign_codes=[code]
    )
    inserted = await insert_new(db[LEDGER], entries)
    await refresh_projections(db=db, org=org, keys={(e["unit"], e["period"]) for e in entries})
    return len(inserted)
