"""Revoked tokens: one list in MongoDB that every service checks, by token id (``jti``) or
by subject and issue time (every token of a person issued before a moment, for a lost
phone or a person who left).

The list lives in its own database (``<prefix>_auth``), not in any service's, because
every service reads it. Each process keeps a snapshot and reads the list again at most
every ``jwt_revocation_refresh_seconds``: a revocation takes effect everywhere within that
time. An entry is kept until the tokens it names have expired anyway (the maximum token
lifetime bounds that), then a TTL index removes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from shared.clock import utcnow
from shared.settings import Settings

log = logging.getLogger(__name__)

REVOCATIONS = "revocations"


class Revocation(TypedDict):
    _id: str
    kind: Literal["token", "subject"]
    jti: str | None
    sub: str | None
    # tokens of ``sub`` issued before this moment are refused (epoch seconds)
    issued_before: float | None
    expires_at: datetime
    by: str
    reason: str
    at: datetime


def revocation_collection(
    client: AsyncMongoClient[dict[str, Any]], settings: Settings
) -> AsyncCollection[dict[str, Any]]:
    return client[f"{settings.mongo_database_prefix}_auth"][REVOCATIONS]


@dataclass
class Snapshot:
    token_ids: frozenset[str] = frozenset()
    subjects: dict[str, float] = field(default_factory=dict)
    read_at: float = float("-inf")


class RevocationList:
    """The revocations as this process last read them."""

    def __init__(
        self, collection: AsyncCollection[dict[str, Any]], *, refresh_seconds: float
    ) -> None:
        self.collection = collection
        self.refresh_seconds = refresh_seconds
        self.snapshot = Snapshot()
        self._reading = asyncio.Lock()

    async def is_revoked(self, *, sub: str, jti: str | None, issued_at: float | None) -> bool:
        snapshot = await self.current()
        if jti is not None and jti in snapshot.token_ids:
            return True
        cutoff = snapshot.subjects.get(sub)
        # a token without an issue time cannot show it came after the cutoff
        return cutoff is not None and (issued_at is None or issued_at < cutoff)

    async def current(self) -> Snapshot:
        if time.monotonic() - self.snapshot.read_at < self.refresh_seconds:
            return self.snapshot
        async with self._reading:  # one read for a burst of requests
            if time.monotonic() - self.snapshot.read_at >= self.refresh_seconds:
                self.snapshot = await self._read()
        return self.snapshot

    async def _read(self) -> Snapshot:
        token_ids: set[str] = set()
        subjects: dict[str, float] = {}
        found = self.collection.find({"expires_at": {"$gt": utcnow()}})
        async for entry in found:
            if entry["kind"] == "token" and entry.get("jti"):
                token_ids.add(entry["jti"])
            elif entry["kind"] == "subject" and entry.get("sub"):
                before = float(entry["issued_before"])
                subjects[entry["sub"]] = max(before, subjects.get(entry["sub"], before))
        return Snapshot(frozenset(token_ids), subjects, time.monotonic())


@dataclass(frozen=True)
class TokenId:
    """One token, by its id (``jti``)."""

    jti: str


@dataclass(frozen=True)
class Subject:
    """Every token of a person (``sub``) issued before a moment: now, when not given."""

    sub: str
    issued_before: datetime | None = None


async def revoke(
    collection: AsyncCollection[dict[str, Any]],
    settings: Settings,
    target: TokenId | Subject,
    *,
    by: str,
    reason: str,
) -> Revocation:
    """Revoke one token or a person's tokens. Revoking again is harmless: the entry is
    replaced."""
    now = utcnow()
    jti, sub, cutoff = None, None, None
    if isinstance(target, TokenId):
        jti = target.jti
    else:
        sub, cutoff = target.sub, (target.issued_before or now).timestamp()
    # the newest token this entry can name expires at most one maximum lifetime later
    newest = now.timestamp() if cutoff is None else cutoff
    entry: Revocation = {
        "_id": f"token:{jti}" if jti else f"subject:{sub}",
        "kind": "token" if jti else "subject",
        "jti": jti,
        "sub": sub,
        "issued_before": cutoff,
        "expires_at": datetime.fromtimestamp(newest + settings.jwt_max_lifetime_seconds, UTC),
        "by": by,
        "reason": reason,
        "at": now,
    }
    await collection.replace_one({"_id": entry["_id"]}, dict(entry), upsert=True)
    log.info("revoked %s by %s: %s", entry["_id"], by, reason)
    return entry


async def ensure_revocation_indexes(collection: AsyncCollection[dict[str, Any]]) -> None:
    await collection.create_index("expires_at", expireAfterSeconds=0)
