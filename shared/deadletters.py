"""Records as they come off a topic, and the dead letters of those that cannot be applied.

A :class:`Delivery` is built from whatever bytes and headers arrived, so nothing about a
record (a wrong content type, invalid UTF-8 in a header, a null value) can fail before
the consumer wrapper decides what to do with it.

:class:`DeadLetters` writes a record to ``<topic>.dlq`` at most once per (consumer group,
topic, partition, offset): a row in the service's own ``dead_letters`` collection is
inserted before the copy is published and marked when it is, so a batch retried, a
consumer restarted or a rebalance finds the row and publishes nothing again (only a crash
in the moment between publishing and marking can leave a second copy). The rows are also
what a county reads of its own rejections. A record too large to copy whole is
dead-lettered bounded: its coordinates, size, sha256 and first KB.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.observability import DLQ_MESSAGES

log = logging.getLogger(__name__)

DEAD_LETTERS = "dead_letters"
HEAD_BYTES = 1024

# what a county's integrator reads next to the technical reason
REASON_ZH = {
    "unauthorised": "写入者未获授权：签名缺失、无效，或不能代表该县区写入",
    "invalid": "消息不符合事件契约（不是合法的 JSON 或字段不合规）",
    "rejected": "消息内容被业务规则拒绝",
    "handler_error": "多次处理失败，已转入死信",
}

Send = Callable[[str, bytes | None, bytes, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    """One record as it came off the topic, kept whole for its dead letter."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    headers: dict[str, str]

    @classmethod
    def of(cls, record: Any) -> Delivery:
        headers: dict[str, str] = {}
        for name, value in record.headers or ():
            headers[str(name)] = (value or b"").decode("utf-8", errors="replace")
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            raw=record.value or b"",
            headers=headers,
        )

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def payload_hint(raw: bytes) -> dict[str, str]:
    """What a county may look its record up by (``external_id`` of a story, ``item_id``
    of an opinion, the envelope's ``event_id``), read from bytes that may not be JSON."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    hint: dict[str, str] = {}
    payload = data.get("payload")
    if isinstance(payload, dict):
        for field in ("external_id", "item_id"):
            if isinstance(payload.get(field), str):
                hint["external_ref"] = payload[field][:200]
                break
    if isinstance(data.get("event_id"), str):
        hint["event_id"] = data["event_id"][:64]
    if isinstance(data.get("county"), str):
        hint["claimed_county"] = data["county"][:64]
    return hint


def bounded_copy(delivery: Delivery, reason: str) -> bytes:
    """The dead letter of a record too large to copy: where it was, how big, its hash and
    its first KB, as JSON."""
    return json.dumps(
        {
            "bounded": True,
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "key": delivery.key.decode("utf-8", "replace") if delivery.key else None,
            "size": len(delivery.raw),
            "sha256": hashlib.sha256(delivery.raw).hexdigest(),
            "head_base64": base64.b64encode(delivery.raw[:HEAD_BYTES]).decode(),
            "reason": reason[:2000],
        },
        ensure_ascii=False,
    ).encode()


class DeadLetters:
    """A service's dead letters: written once each, counted, and kept for lookup."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], send: Send, *, service: str, max_bytes: int
    ) -> None:
        self.db = db
        self.send = send
        self.service = service
        self.max_bytes = max_bytes

    async def ensure_indexes(self) -> None:
        rows = self.db[DEAD_LETTERS]
        # the sort ends in _id: a page resumes inside one moment through the same index
        await rows.create_index(
            [("county", ASCENDING), ("topic", ASCENDING), ("at", DESCENDING), ("_id", ASCENDING)]
        )
        await rows.create_index([("county", ASCENDING), ("external_ref", ASCENDING)])

    async def write(
        self, delivery: Delivery, *, group: str, reason: str, kind: str, county: str | None
    ) -> bool:
        """Dead-letter ``delivery`` unless this group already did; True when written now."""
        row_id = f"{group}|{delivery.coordinates}"
        rows = self.db[DEAD_LETTERS]
        row = {
            "_id": row_id,
            "service": self.service,
            "group": group,
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "key": delivery.key.decode("utf-8", "replace")[:200] if delivery.key else None,
            "county": county,
            "kind": kind,
            "reason": reason[:2000],
            "size": len(delivery.raw),
            "sha256": hashlib.sha256(delivery.raw).hexdigest(),
            "at": datetime.now(UTC),
            "published": False,
            **payload_hint(delivery.raw),
        }
        try:
            await rows.insert_one(row)
        except DuplicateKeyError:
            existing = await rows.find_one({"_id": row_id}, projection={"published": 1})
            if existing and existing.get("published"):
                return False
        bounded = await self._publish(delivery, reason=reason, kind=kind)
        await rows.update_one({"_id": row_id}, {"$set": {"published": True, "bounded": bounded}})
        DLQ_MESSAGES.labels(self.service, delivery.topic, kind, county or "unknown").inc()
        log.warning(
            "dead-lettered %s", delivery.coordinates,
            extra={"topic": delivery.topic, "reason": reason[:500]},
        )  # fmt: skip
        return True

    async def _publish(self, delivery: Delivery, *, reason: str, kind: str) -> bool:
        """Send the copy (whole, or bounded when too large); True when bounded."""
        headers = {
            **{k: v[:1000] for k, v in delivery.headers.items() if not k.startswith("dlq-")},
            "dlq-reason": reason[:2000],
            "dlq-reason-kind": kind,
            "dlq-source-topic": delivery.topic,
            "dlq-source-partition": str(delivery.partition),
            "dlq-source-offset": str(delivery.offset),
            "dlq-service": self.service,
            "dlq-at": datetime.now(UTC).isoformat(),
        }
        target = f"{delivery.topic}.dlq"
        overhead = sum(len(k) + len(v) for k, v in headers.items())
        if len(delivery.raw) + overhead <= self.max_bytes:
            try:
                await self.send(target, delivery.key, delivery.raw, headers)
                return False
            except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
                log.warning("dead letter too large to copy whole (%r); copying it bounded", exc)
        bounded_headers = {
            **{k: v for k, v in headers.items() if k.startswith("dlq-")},
            "content-type": "application/json",
            "dlq-bounded": "true",
        }
        await self.send(target, delivery.key, bounded_copy(delivery, reason), bounded_headers)
        return True
