"""Possible copies (不审阅不修改, 直接转发) and republished standard texts (转载规定文本):
where the fingerprints are kept and how a submitted body is looked up against them.

Each submitted version keeps its winnowed keys (see ``copytext``) and normalised
passages in MongoDB. The candidates of a lookup come from each replica's in-process
index (``copyindex``: other units' stories in the window, and published stories over a
longer window, sharing enough keys); only the best few are read from MongoDB and
compared exactly on their normalised passages. Registered standard texts are held in
the same index: their passages are left out of the comparison, and a story made mostly
of one is marked as republication instead of a copy.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from services.submission.copyindex import CopyIndex, Window, built, key_bytes
from services.submission.copyindex import StandardText as StandardText  # the service's name
from services.submission.copytext import Comparison, Normaliser, TextPrint, compare
from shared.orgtree import OrgTree

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

FINGERPRINTS = "fingerprints"
VERSIONS = "versions"
STANDARD_TEXTS = "standard_texts"
# 3: keys packed in ``key_bytes`` beside the passages, read by the in-process index (2 kept
# them as an indexed array; 1 kept MinHash bands and no passages)
FORMAT = 3
MIN_MATCHED_CHARS = 40  # normalised characters found in the other text before anything is a copy
_LOADED = {"story_id": 1, "unit": 1, "key_bytes": 1, "format": 1, "submitted_at": 1,
           "first_submitted_at": 1, "published_at": 1}  # fmt: skip
_WATCHED = [{"$match": {"ns.coll": {"$in": [FINGERPRINTS, STANDARD_TEXTS]}}}]

log = logging.getLogger(__name__)
_normalisers: dict[int, Normaliser] = {}


def normaliser_for(org: OrgTree) -> Normaliser:
    """One normaliser per org tree (its unit-name pattern takes a while to build)."""
    found = _normalisers.get(id(org))
    if found is None:
        found = _normalisers[id(org)] = Normaliser.for_org(org)
    return found


@dataclass
class _Held:
    """One database's index in this process, and where its change stream stands."""

    index: CopyIndex | None = None
    resume_token: Any = None
    stale: list[str] = field(default_factory=list)  # fingerprints of an earlier format
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_held: dict[tuple[int, str], _Held] = {}


def _held_for(db: AsyncDatabase[dict[str, Any]]) -> _Held:
    return _held.setdefault((id(db.client), db.name), _Held())


async def load_index(db: AsyncDatabase[dict[str, Any]]) -> CopyIndex:
    """Build this process's index from MongoDB. The change stream is opened first, so
    that whatever is written while the index loads is replayed by ``follow_changes``."""
    held = _held_for(db)
    async with await db.watch(_WATCHED, full_document="updateLookup") as stream:
        held.resume_token = stream.resume_token
    stale: list[str] = []

    async def current() -> Any:
        async for doc in db[FINGERPRINTS].find({}, projection=_LOADED, batch_size=5_000):
            if doc.get("format") == FORMAT:
                yield doc
            else:
                stale.append(doc["_id"])

    docs = [doc async for doc in current()]
    standard = await db[STANDARD_TEXTS].find({"retired": False}).to_list()
    held.index, held.stale = built(docs, standard), stale
    return held.index


async def index_of(db: AsyncDatabase[dict[str, Any]]) -> CopyIndex:
    """This process's index of ``db``, loaded on first use."""
    held = _held_for(db)
    if held.index is None:
        async with held.lock:
            if held.index is None:
                await load_index(db)
    assert held.index is not None  # set by load_index
    return held.index


def _apply(index: CopyIndex, change: dict[str, Any]) -> None:
    collection, operation = change["ns"]["coll"], change["operationType"]
    if operation == "delete":
        doc_id = change["documentKey"]["_id"]
        (index.drop if collection == FINGERPRINTS else index.drop_standard)(doc_id)
        return
    doc = change.get("fullDocument")
    if operation not in ("insert", "update", "replace") or doc is None:
        return  # gone again since: its delete follows
    if collection == STANDARD_TEXTS:
        index.put_standard(doc)
    elif doc.get("format") == FORMAT:  # an earlier format is backfilled, then comes again
        index.put(doc)


async def follow_changes(runtime: ServiceRuntime) -> None:
    """Keep this process's index current with every replica's writes (a background job).
    A stream that cannot resume is given up for a fresh load, which opens a new one."""
    db = runtime.db
    await index_of(db)
    held = _held_for(db)
    try:
        await _follow(db, held)
    finally:  # the service stops: its index goes with it
        _held.pop((id(db.client), db.name), None)


async def _follow(db: AsyncDatabase[dict[str, Any]], held: _Held) -> None:
    while True:
        try:
            async with await db.watch(
                _WATCHED, full_document="updateLookup", resume_after=held.resume_token
            ) as stream:
                async for change in stream:
                    if change["operationType"] in ("drop", "dropDatabase", "invalidate"):
                        raise OperationFailure("the watched collections went away")
                    assert held.index is not None
                    _apply(held.index, change)
                    held.resume_token = stream.resume_token
        except PyMongoError:
            log.warning("copy index: change stream lost, loading afresh", exc_info=True)
            await asyncio.sleep(1)
            try:
                await load_index(db)
            except PyMongoError:
                log.warning("copy index: reload failed, keeping the old one", exc_info=True)


@dataclass(frozen=True)
class CopyThresholds:
    resemblance: float
    containment: float
    min_chars: int = MIN_MATCHED_CHARS


@dataclass(frozen=True)
class CopyMatch:
    story_id: str
    version: int
    unit: str
    title: str
    body: str
    submitted_at: datetime
    published: bool
    comparison: Comparison


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]], *, org: OrgTree | None = None) -> None:
    """MongoDB's indexes, this process's copy index, and (with ``org``) a bounded backfill
    of fingerprints stored in an earlier format."""
    # imported here: the backfill writes fingerprints with this module's helpers
    from services.submission.copybackfill import AT_START, backfill

    await db[FINGERPRINTS].create_index([("story_id", ASCENDING)])
    await db[STANDARD_TEXTS].create_index([("retired", ASCENDING)])
    # format 2's multikey index on ``keys``: lookups no longer ask MongoDB for keys, and
    # every insert paid for it
    if "keys_1" in await db[FINGERPRINTS].index_information():
        await db[FINGERPRINTS].drop_index("keys_1")
    index = await load_index(db)
    stale = _held_for(db).stale
    if org is not None and stale:
        await backfill(db, normaliser=normaliser_for(org), ids=stale[:AT_START], index=index)


async def matching_standard_texts(
    db: AsyncDatabase[dict[str, Any]], *, text: TextPrint
) -> list[StandardText]:
    """The registered standard texts sharing a key with ``text``."""
    if text.keys.size == 0:
        return []
    return (await index_of(db)).standard_texts(text.keys)


def _in_window(
    row: dict[str, Any], *, since: datetime, published_since: datetime, original_before: datetime
) -> bool:
    if row["first_submitted_at"] >= original_before:
        return False  # of two look-alikes the later is the copy
    published_at = row.get("published_at")
    return row["submitted_at"] >= since or (
        published_at is not None and published_at >= published_since
    )


async def find_possible_copy(
    db: AsyncDatabase[dict[str, Any]],
    *,
    text: TextPrint,
    unit: str,
    since: datetime,
    published_since: datetime,
    original_before: datetime,
    thresholds: CopyThresholds,
    standard: list[StandardText],
) -> CopyMatch | None:
    """The story of another unit that ``text`` most likely copies or is lifted into:
    submitted since ``since`` or published since ``published_since``, and first
    submitted before ``original_before``."""
    if text.keys.size == 0:
        return None
    window = Window(unit, since, published_since, original_before)
    found = (await index_of(db)).candidates(text.keys, window)
    if not found:
        return None
    # MongoDB has the last word on each candidate: the index may run a moment behind.
    # The versions (title and body, for the reviewer) are read alongside, not after.
    asked = {"_id": {"$in": [fid for fid, _ in found]}}
    stored, versions = await asyncio.gather(
        db[FINGERPRINTS].find(asked, projection={"key_bytes": 0}).to_list(),
        db[VERSIONS].find(asked, projection={"title": 1, "body": 1, "submitted_at": 1}).to_list(),
    )
    standard_prints = [s.text for s in standard]
    best: tuple[tuple[float, float], dict[str, Any], Comparison] | None = None
    for row in stored:
        if row["unit"] == unit or not _in_window(
            row, since=since, published_since=published_since, original_before=original_before
        ):
            continue
        comparison = compare(text, TextPrint.from_passages("", row["passages"]), standard_prints)
        if not comparison.is_copy(
            resemblance=thresholds.resemblance,
            containment=thresholds.containment,
            min_chars=thresholds.min_chars,
        ):
            continue
        # the strongest evidence wins; among equals the earliest, the likeliest original
        strength = max(comparison.resemblance, comparison.containment)
        rank = (strength, -row["first_submitted_at"].timestamp())
        if best is None or rank > best[0]:
            best = (rank, row, comparison)
    if best is None:
        return None
    _, row, comparison = best
    version = next((each for each in versions if each["_id"] == row["_id"]), None)
    if version is None:
        return None
    return CopyMatch(
        story_id=row["story_id"], version=row["version"], unit=row["unit"],
        title=version["title"], body=version["body"], submitted_at=version["submitted_at"],
        published=row.get("published_at") is not None, comparison=comparison,
    )  # fmt: skip


async def record_fingerprint(
    db: AsyncDatabase[dict[str, Any]], doc: dict[str, Any], *, session: AsyncClientSession
) -> None:
    """Keep a submitted version's keys and normalised passages (its :func:`fingerprint_doc`)
    for later lookups."""
    await db[FINGERPRINTS].insert_one(doc, session=session)
    # applied before the transaction commits: should it abort, the entry names a
    # fingerprint MongoDB does not have, which a lookup reads, does not find and skips
    (await index_of(db)).put(doc)


def fingerprint_doc(
    *,
    text: TextPrint,
    story_id: str,
    version: int,
    unit: str,
    submitted_at: datetime,
    first_submitted_at: datetime,
) -> dict[str, Any]:
    return {
        "_id": f"{story_id}:{version}",
        "format": FORMAT,
        "story_id": story_id,
        "version": version,
        "unit": unit,
        "key_bytes": key_bytes(text.keys),
        "passages": text.stored_passages(),
        "submitted_at": submitted_at,
        "first_submitted_at": first_submitted_at,
        "published_at": None,
        "seen_at": submitted_at,  # the later of submission and publication
    }


async def mark_published(
    db: AsyncDatabase[dict[str, Any]],
    *,
    story_id: str,
    version: int,
    published_at: datetime,
    session: AsyncClientSession,
) -> None:
    """A published version stays a source for the longer published window."""
    await db[FINGERPRINTS].update_one(
        {"_id": f"{story_id}:{version}", "published_at": None},
        {"$set": {"published_at": published_at}, "$max": {"seen_at": published_at}},
        session=session,
    )
    (await index_of(db)).mark_published(f"{story_id}:{version}", published_at)


async def register_standard_text(
    db: AsyncDatabase[dict[str, Any]],
    *,
    title: str,
    body: str,
    campaign: str | None,
    registered_by: str,
    registered_at: datetime,
    normaliser: Normaliser,
) -> dict[str, Any]:
    """Register a text everyone is asked to republish (a bureau notice, a campaign's text)."""
    text = TextPrint.of(body, normaliser)
    doc = {
        "passages": text.stored_passages(),
        "_id": uuid.uuid4().hex,
        "title": title,
        "body": body,
        "campaign": campaign,
        "registered_by": registered_by,
        "registered_at": registered_at,
        "retired": False,
    }
    await db[STANDARD_TEXTS].insert_one(doc)
    (await index_of(db)).put_standard(doc)
    return doc


async def list_standard_texts(db: AsyncDatabase[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every registered standard text still in force, newest first."""
    return (
        await db[STANDARD_TEXTS]
        .find({"retired": False}, projection={"keys": 0, "passages": 0})
        .sort("registered_at", -1)
        .to_list()
    )


async def retire_standard_text(db: AsyncDatabase[dict[str, Any]], *, text_id: str) -> bool:
    """Stop treating a standard text as one to republish; false when there is none."""
    result = await db[STANDARD_TEXTS].update_one(
        {"_id": text_id, "retired": False}, {"$set": {"retired": True}}
    )
    (await index_of(db)).drop_standard(text_id)
    return result.matched_count == 1
