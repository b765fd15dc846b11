"""Fingerprints stored before the current format get it: a bounded, idempotent backfill.

Format 1 kept MinHash bands and no passages; format 2 kept the winnowed keys as an
indexed array (at first without passages). Both are brought to the current format
(``copies.FORMAT``: packed keys beside the passages, what the in-process index reads).
A fingerprint with passages is converted as it stands; one without is normalised again
from its version's body. At start-up at most ``AT_START`` are converted, so a large
store never holds a replica back for long; the rest, in batches, from the command line:

    python -m services.submission.copybackfill          # with the service's settings
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.submission import copies
from services.submission.copyindex import CopyIndex
from services.submission.copytext import Normaliser, TextPrint

AT_START = 2_000
BATCH = 500
_STALE = {"format": {"$ne": copies.FORMAT}}


async def _text_of(
    db: AsyncDatabase[dict[str, Any]], doc: dict[str, Any], normaliser: Normaliser
) -> TextPrint | None:
    if doc.get("passages") is not None:
        return TextPrint.from_passages("", doc["passages"])
    version = await db[copies.VERSIONS].find_one({"_id": doc["_id"]}, projection={"body": 1})
    return None if version is None else TextPrint.of(version["body"], normaliser)


async def backfill(
    db: AsyncDatabase[dict[str, Any]],
    *,
    normaliser: Normaliser,
    ids: list[str] | None = None,
    limit: int = BATCH,
    index: CopyIndex | None = None,
) -> tuple[int, int]:
    """Bring at most ``limit`` fingerprints of an earlier format (of ``ids``, or any) to
    the current one, and into ``index`` when given: ``(read, converted)``. Idempotent: a
    current fingerprint is never written, and two replicas converting one fingerprint at
    once write the same thing, once."""
    query: dict[str, Any] = dict(_STALE)
    if ids is not None:
        query["_id"] = {"$in": ids[:limit]}
    docs = await db[copies.FINGERPRINTS].find(query).limit(limit).to_list()
    converted = 0
    for doc in docs:
        # a fingerprint whose version is gone has nothing to compare: current and keyless
        text = await _text_of(db, doc, normaliser) or TextPrint.from_passages("", [])
        fresh = copies.fingerprint_doc(
            text=text, story_id=doc["story_id"], version=doc["version"], unit=doc["unit"],
            submitted_at=doc["submitted_at"],
            first_submitted_at=doc.get("first_submitted_at") or doc["submitted_at"],
        )  # fmt: skip
        published_at = doc.get("published_at")
        fresh["published_at"] = published_at
        fresh["seen_at"] = max(doc["submitted_at"], published_at or doc["submitted_at"])
        result = await db[copies.FINGERPRINTS].update_one(
            {"_id": doc["_id"], **_STALE},
            {
                "$set": {k: v for k, v in fresh.items() if k != "_id"},
                "$unset": {"keys": "", "bands": "", "signature": ""},
            },
        )
        converted += result.modified_count
        if index is not None and result.modified_count:
            index.put(fresh)
    return len(docs), converted


async def backfill_all(
    db: AsyncDatabase[dict[str, Any]], *, normaliser: Normaliser, batch: int = BATCH
) -> int:
    """Every fingerprint of an earlier format, ``batch`` at a time: how many converted."""
    total = 0
    while True:
        read, converted = await backfill(db, normaliser=normaliser, limit=batch)
        total += converted
        if read == 0:
            return total


async def _main() -> None:
    from shared.mongo import make_client
    from shared.orgtree import load_org
    from shared.settings import load_settings

    settings = load_settings("submission")
    client = make_client(settings)
    try:
        normaliser = copies.normaliser_for(load_org(settings.org_file))
        done = await backfill_all(client[settings.database_name], normaliser=normaliser)
        print(f"fingerprints brought to format {copies.FORMAT}: {done}")
    finally:
        await client.close()


if __name__ == "__main__":
    asyncio.run(_main())
