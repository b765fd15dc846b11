"""Near-duplicate detection (不审阅不修改, 直接转发): MinHash over character 3-grams of
normalised Chinese text, with LSH bands stored in MongoDB so that a lookup reads only
the few stories that share a band, never the whole window.

MinHash rather than SimHash: with 16 bands of 4 rows a pair at Jaccard 0.8 shares a
band with probability > 0.999 and a pair at 0.3 with about 0.12, whereas 16-bit SimHash
chunks find a pair at Jaccard 0.8 (about ten differing bits) only one time in four. The
similarity recorded is the exact Jaccard of the two 3-gram sets, computed on the
candidates only.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import opencc
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

FINGERPRINTS = "fingerprints"
VERSIONS = "versions"
PERMUTATIONS = 64
ROWS_PER_BAND = 4
MIN_SHINGLES = 10  # below this a text is too short to call anything a copy of it
MAX_CANDIDATES = 200

_SEEDS = (np.arange(1, PERMUTATIONS + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))[:, None]


@lru_cache(maxsize=1)
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """Simplified characters, full-width folded, lower case, letters and digits only."""
    folded = unicodedata.normalize("NFKC", _to_simplified().convert(text)).lower()
    return "".join(ch for ch in folded if ch.isalnum())


def shingles(text: str) -> np.ndarray:
    """The set of character 3-grams of ``text``, each packed exactly into 63 bits."""
    codes = np.frombuffer(normalise(text).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if codes.size < 3:
        return np.empty(0, dtype=np.uint64)
    grams = (codes[:-2] << np.uint64(42)) | (codes[1:-1] << np.uint64(21)) | codes[2:]
    return np.unique(grams)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on 64-bit words, so ``mix(x ^ seed)`` is one
    random-looking permutation per seed."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def signature(grams: np.ndarray) -> np.ndarray:
    """The MinHash signature of a 3-gram set (one minimum per permutation)."""
    return _mix(grams[None, :] ^ _SEEDS).min(axis=1)


def bands(sig: np.ndarray) -> list[str]:
    """LSH band keys: two texts sharing any key become candidates."""
    keys = []
    for index in range(PERMUTATIONS // ROWS_PER_BAND):
        rows = sig[index * ROWS_PER_BAND : (index + 1) * ROWS_PER_BAND]
        keys.append(f"{index:02d}{hashlib.blake2b(rows.tobytes(), digest_size=8).hexdigest()}")
    return keys


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 or b.size == 0:
        return 0.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def text_of(title: str, body: str) -> str:
    return f"{title}\n{body}"


@dataclass(frozen=True)
class Fingerprint:
    grams: np.ndarray
    sig: np.ndarray

    @classmethod
    def of(cls, text: str) -> Fingerprint | None:
        grams = shingles(text)
        if grams.size < MIN_SHINGLES:
            return None
        return cls(grams, signature(grams))


@dataclass(frozen=True)
class CopyMatch:
    story_id: str
    unit: str
    similarity: float


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db[FINGERPRINTS].create_index([("bands", ASCENDING)])
    await db[FINGERPRINTS].create_index([("submitted_at", ASCENDING)])


async def find_possible_copy(
    db: AsyncDatabase[dict[str, Any]],
    *,
    fingerprint: Fingerprint,
    unit: str,
    since: datetime,
    original_before: datetime,
    threshold: float,
) -> CopyMatch | None:
    """The most similar story of another unit, submitted since ``since`` and first
    submitted before ``original_before`` (the later of two look-alikes is the copy), if at
    least ``threshold`` similar."""
    candidates = (
        await db[FINGERPRINTS]
        .find(
            {
                "bands": {"$in": bands(fingerprint.sig)},
                "unit": {"$ne": unit},
                "submitted_at": {"$gte": since},
                "first_submitted_at": {"$lt": original_before},
            },
            projection={
                "story_id": 1,
                "version": 1,
                "unit": 1,
                "signature": 1,
                "first_submitted_at": 1,
            },
        )
        .limit(MAX_CANDIDATES)
        .to_list()
    )
    # the MinHash estimate sorts out the clear misses before the exact comparison
    promising = []
    for row in candidates:
        estimate = float(
            np.mean(np.array(row["signature"], dtype=np.int64).view(np.uint64) == fingerprint.sig)
        )
        if estimate >= threshold - 0.2:
            promising.append((estimate, row))
    promising.sort(key=lambda pair: pair[0], reverse=True)
    # the most similar wins; among equals the earliest, which is the likeliest original
    best: tuple[float, float, CopyMatch] | None = None
    for _, row in promising[:5]:
        version = await db[VERSIONS].find_one(
            {"_id": f"{row['story_id']}:{row['version']}"}, projection={"title": 1, "body": 1}
        )
        if version is None:
            continue
        theirs = shingles(text_of(version["title"], version["body"]))
        similarity = round(jaccard(fingerprint.grams, theirs), 4)
        rank = (similarity, -row["first_submitted_at"].timestamp())
        if similarity >= threshold and (best is None or rank > best[:2]):
            best = (*rank, CopyMatch(row["story_id"], row["unit"], similarity))
    return best[2] if best else None


async def record_fingerprint(
    db: AsyncDatabase[dict[str, Any]],
    *,
    fingerprint: Fingerprint,
    story_id: str,
    version: int,
    unit: str,
    submitted_at: datetime,
    first_submitted_at: datetime,
    session: AsyncClientSession,
) -> None:
    """Keep a submitted version's bands and signature for later lookups."""
    await db[FINGERPRINTS].insert_one(
        {
            "_id": f"{story_id}:{version}",
            "story_id": story_id,
            "version": version,
            "unit": unit,
            "bands": bands(fingerprint.sig),
            "signature": fingerprint.sig.view(np.int64).tolist(),
            "submitted_at": submitted_at,
            "first_submitted_at": first_submitted_at,
        },
        session=session,
    )
