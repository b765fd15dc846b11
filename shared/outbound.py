"""Calls CityDesk makes to the outside (webhooks, push alerts), made safe and reliable
in one place.

* **Where**: :func:`check_target` resolves the host and refuses loopback, private,
  link-local (cloud metadata at 169.254.169.254), reserved and multicast addresses unless
  the configured allow-list names the host or its network. It runs when a URL is
  configured and again before every send (a name may resolve elsewhere later).
* **How it is signed**: the Standard Webhooks scheme (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature`` = ``v1,`` HMAC-SHA256 of
  ``id.timestamp.body``), made by the ``standardwebhooks`` package that receivers use to
  verify. A secret given as ``whsec_<base64>`` is used as those bytes, any other as its
  UTF-8 bytes.
* **Once per attempt**: :class:`DeliveryQueue` keeps each delivery in MongoDB; a worker
  claims one with a lease (an atomic update), so however many replicas run, an attempt is
  made by one of them; a failure is retried with exponential backoff up to a limit.
  Only the receiver's status code is kept, never its body (it may hold another system's
  secrets, and showing it back would make the desk a probe of the internal network).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from standardwebhooks import Webhook

from shared.clock import utcnow
from shared.refusals import Refusal

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTarget(Refusal):
    """A URL that points where the desk must not send."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            422,
            "unsafe_target",
            "推送地址指向本机、内网或云平台元数据地址，已拒绝；如确需使用，请由管理员加入允许清单",
            f"{url}: {reason}",
        )
        self.reason = reason


def _unsafe(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def _allowed(host: str, port: int, addresses: list[IpAddress], allow: Sequence[str]) -> bool:
    for entry in allow:
        entry = entry.strip().lower()
        if entry in (host, f"{host}:{port}"):
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if addresses and all(address in network for address in addresses):
            return True
    return False


async def check_target(url: str, allow: Sequence[str] = ()) -> None:
    """Refuse ``url`` unless it is http(s) to a public address or allow-listed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(url, "only http and https URLs with a host are allowed")
    host = parts.hostname.lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeTarget(url, f"the host does not resolve ({exc.strerror})") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if _allowed(host, port, addresses, allow):
        return
    bad = [str(address) for address in addresses if _unsafe(address)]
    if bad:
        raise UnsafeTarget(url, f"resolves to a non-public address ({', '.join(sorted(set(bad)))})")


def _key(secret: str) -> str | bytes:
    return secret if secret.startswith("whsec_") else secret.encode()


def standard_headers(
    secret: str, msg_id: str, body: bytes, *, at: datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` (the exact bytes sent)."""
    if not secret:
        raise ValueError("a webhook secret must not be empty")
    moment = at or utcnow()
    signature = Webhook(_key(secret)).sign(msg_id, moment, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def verify_standard(secret: str, body: bytes, headers: dict[str, str]) -> Any:
    """What a receiver does (tests and the demo's receivers): the parsed body, or raises."""
    return Webhook(_key(secret)).verify(body, headers)


class DeliveryQueue:
    """Deliveries waiting, leased, delivered or given up, in one collection."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        collection: str = "deliveries",
        *,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        backoff_seconds: float = 5.0,
        max_backoff_seconds: float = 3600.0,
    ) -> None:
        self.collection: AsyncCollection[dict[str, Any]] = db[collection]
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("state", ASCENDING), ("next_at", ASCENDING)])
        await self.collection.create_index("key", unique=True)

    async def enqueue(
        self,
        *,
        key: str,
        channel: str,
        target: str,
        payload: dict[str, Any],
        not_before: datetime | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Queue one delivery; False when ``key`` is queued already (a redelivered event)."""
        now = utcnow()
        doc = {
            "key": key,
            "channel": channel,
            "target": target,
            "payload": payload,
            "state": "pending",
            "attempts": 0,
            "next_at": not_before or now,
            "lease_until": None,
            "created_at": now,
            **(extra or {}),
        }
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def claim(self, worker: str, *, now: datetime | None = None) -> dict[str, Any] | None:
        """Take the next due delivery for one attempt; no other worker gets it until the
        attempt ends or its lease runs out (a worker that died mid-send)."""
        now = now or utcnow()
        return await self.collection.find_one_and_update(
            {
                "state": "pending",
                "next_at": {"$lte": now},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {
                "$set": {"lease_until": now + self.lease, "leased_by": worker},
                "$inc": {"attempts": 1},
            },
            sort=[("next_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def delivered(self, delivery: dict[str, Any], *, status: int | None = None) -> None:
        now = utcnow()
        await self.collection.update_one(
            {"_id": delivery["_id"], "leased_by": delivery.get("leased_by")},
            {
                "$set": {
                    "state": "delivered",
                    "delivered_at": now,
                    "last_status": status,
                    "last_error": None,
                    "lease_until": None,
                }
            },
        )

    def backoff(self, attempts: int) -> timedelta:
        seconds = self.backoff_seconds * 2 ** max(0, attempts - 1)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))

    async def failed(
        self, delivery: dict[str, Any], *, reason: str, status: int | None = None
    ) -> bool:
        """Record a failed attempt (``reason`` is a short kind, never the receiver's
        body); retried later unless attempts are used up. True when given up."""
        attempts = int(delivery.get("attempts", 1))
        give_up = attempts >= self.max_attempts
        now = utcnow()
        await self.collection.update_one(
            {"_id": delivery["_id"], "leased_by": delivery.get("leased_by")},
            {
                "$set": {
                    "state": "failed" if give_up else "pending",
                    "next_at": now + self.backoff(attempts),
                    "last_status": status,
                    "last_error": reason[:200],
                    "lease_until": None,
                    "failed_at": now if give_up else None,
                }
            },
        )
        return give_up
