"""Possible copies (不审阅不修改, 直接转发) and republished standard texts (转载规定文本):
where the fingerprints are kept and how a submitted body is looked up against them.

Each submitted version keeps its winnowed keys (see ``copytext``) in MongoDB under a
multikey index; a lookup reads the stories sharing a key (other units' stories in the
window, and published stories over a longer window), ranks them by keys shared, and
compares the best few exactly on their normalised passages. Registered standard texts
are found the same way: their passages are left out of the comparison, and a story
made mostly of one is marked as republication instead of a copy.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.submission.copytext import Comparison, Normaliser, TextPrint, compare, query_keys
from shared.orgtree import OrgTree

FINGERPRINTS = "fingerprints"
VERSIONS = "versions"
STANDARD_TEXTS = "standard_texts"
MAX_CANDIDATES = 300
COMPARED = 5  # candidates compared exactly, the most keys shared first
MIN_MATCHED_CHARS = 40  # normalised characters found in the other text before anything is a copy

_normalisers: dict[int, Normaliser] = {}


def normaliser_for(org: OrgTree) -> Normaliser:
    """One normaliser per org tree (its unit-name pattern takes a while to build)."""
    found = _normalisers.get(id(org))
    if found is None:
        found = _normalisers[id(org)] = Normaliser.for_org(org)
    return found


def _stored(keys: np.ndarray) -> list[int]:
    return keys.view(np.int64).tolist()  # MongoDB integers are signed 64-bit


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


@dataclass(frozen=True)
class StandardText:
    text_id: str
    title: str
    text: TextPrint


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db[FINGERPRINTS].create_index([("keys", ASCENDING)])
    await db[FINGERPRINTS].create_index([("story_id", ASCENDING)])
    await db[STANDARD_TEXTS].create_index([("keys", ASCENDING)])


async def matching_standard_texts(
    db: AsyncDatabase[dict[str, Any]], *, text: TextPrint
) -> list[StandardText]:
    """The registered standard texts sharing a key with ``text``."""
    if text.keys.size == 0:
        return []
    docs = await (
        db[STANDARD_TEXTS]
        .find(
            {"keys": {"$in": _stored(query_keys(text.keys))}, "retired": False},
            projection={"title": 1, "body": 1, "passages": 1},
        )
        .limit(20)
        .to_list()
    )
    return [
        StandardText(
            doc["_id"], doc["title"], TextPrint.from_passages(doc["body"], doc["passages"])
        )
        for doc in docs
    ]


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
    asked = _stored(query_keys(text.keys))
    # one indexed condition: the local MongoDB-wire server evaluates ``$or`` beside a
    # multikey ``$in`` by scanning, so the two windows are told apart here
    candidates = await (
        db[FINGERPRINTS]
        .find(
            {
                "keys": {"$in": asked},
                "unit": {"$ne": unit},
                "seen_at": {"$gte": min(since, published_since)},
            },
            projection={
                "story_id": 1,
                "version": 1,
                "unit": 1,
                "keys": 1,
                "submitted_at": 1,
                "first_submitted_at": 1,
                "published_at": 1,
            },
        )
        .limit(MAX_CANDIDATES)
        .to_list()
    )
    ours = set(asked)
    best_version: dict[str, tuple[int, dict[str, Any]]] = {}
    for row in candidates:
        if not _in_window(
            row, since=since, published_since=published_since, original_before=original_before
        ):
            continue
        shared = len(ours.intersection(row["keys"]))
        if shared > best_version.get(row["story_id"], (0, {}))[0]:
            best_version[row["story_id"]] = (shared, row)
    ranked = sorted(best_version.values(), key=lambda pair: pair[0], reverse=True)[:COMPARED]
    if not ranked:
        return None
    rows = {row["_id"]: row for _, row in ranked}
    stored = await (
        db[FINGERPRINTS].find({"_id": {"$in": list(rows)}}, projection={"passages": 1}).to_list()
    )
    standard_prints = [s.text for s in standard]
    best: tuple[tuple[float, float], dict[str, Any], Comparison] | None = None
    for doc in stored:
        row = rows[doc["_id"]]
        comparison = compare(text, TextPrint.from_passages("", doc["passages"]), standard_prints)
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
    version = await db[VERSIONS].find_one(
        {"_id": row["_id"]}, projection={"title": 1, "body": 1, "submitted_at": 1}
    )
    if version is None:
        return None
    return CopyMatch(
        story_id=row["story_id"], version=row["version"], unit=row["unit"],
        title=version["title"], body=version["body"], submitted_at=version["submitted_at"],
        published=row.get("published_at") is not None, comparison=comparison,
    )  # fmt: skip


async def record_fingerprint(
    db: AsyncDatabase[dict[str, Any]],
    *,
    text: TextPrint,
    story_id: str,
    version: int,
    unit: str,
    submitted_at: datetime,
    first_submitted_at: datetime,
    session: AsyncClientSession,
) -> None:
    """Keep a submitted version's keys and normalised passages for later lookups."""
    await db[FINGERPRINTS].insert_one(
        fingerprint_doc(
            text=text, story_id=story_id, version=version, unit=unit,
            submitted_at=submitted_at, first_submitted_at=first_submitted_at,
        ),
        session=session,
    )  # fmt: skip


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
        "story_id": story_id,
        "version": version,
        "unit": unit,
        "keys": _stored(text.keys),
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
        "keys": _stored(text.keys),
    }
    await db[STANDARD_TEXTS].insert_one(doc)
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
    return result.matched_count == 1
