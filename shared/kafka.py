"""Kafka through FastStream: the broker factory, topic bootstrap, publishing, and the
consumer wrapper that commits only after the effect is stored and dead-letters what it
cannot apply.

Every subscriber is registered through :func:`consumer`. It

* parses the raw bytes into the topic's contract; a validation failure goes straight to
  ``<topic>.dlq`` with the reason, the original bytes and headers;
* retries a failing handler a bounded number of times with exponential backoff, then
  dead-letters it: the partition is never blocked forever;
* returns normally only when the effect (or the dead letter) is stored, so the
  ``NACK_ON_ERROR`` policy commits the offset only after it; if even the dead letter
  cannot be written, it raises and the message is read again.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from shared import topics as tp
from shared.events import Envelope
from shared.observability import (
    DLQ_MESSAGES,
    EVENTS_FAILED,
    EVENTS_HANDLED,
    EVENTS_PUBLISHED,
    HANDLER_SECONDS,
    correlation_id,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Envelope)


class PermanentError(Exception):
    """The event can never be applied (e.g. a unit outside the producing county):
    dead-letter it at once, without retries."""


def _security(settings: Settings) -> BaseSecurity | None:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = (
        ssl.create_default_context(cafile=settings.kafka_ca_file) if "SSL" in protocol else None
    )
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    username = settings.kafka_sasl_username or ""
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    use_ssl = protocol == "SASL_SSL"
    mechanism = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }[settings.kafka_sasl_mechanism]
    return mechanism(username, password, use_ssl=use_ssl, ssl_context=context)


def make_broker(settings: Settings) -> KafkaBroker:
    """A broker for one service, acks from all replicas. The idempotent producer stays
    off: Tansu answers its InitProducerId with an error in s3 mode, and consumers dedupe by
    ``event_id`` anyway."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"citydesk-{settings.service_name}",
        security=_security(settings),
        acks="all",
        linger_ms=2,
        graceful_timeout=10.0,
        logger=logging.getLogger(f"faststream.{settings.service_name}"),
    )


async def ensure_topics(settings: Settings) -> None:
    """Create every contract topic and its dead-letter topic if missing."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"citydesk-{settings.service_name}-admin",
        **_admin_security(settings),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for topic in tp.ALL:
            if topic.name not in existing:
                wanted.append(NewTopic(topic.name, settings.kafka_partitions, 1))
            if topic.dlq not in existing:
                wanted.append(NewTopic(topic.dlq, 1, 1))
        if wanted:
            await admin.create_topics(wanted)
    finally:
        await admin.close()


def _admin_security(settings: Settings) -> dict[str, Any]:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if "SSL" in protocol:
        options["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ca_file)
    if protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None
        )
    return options


async def publish(broker: KafkaBroker, topic: tp.Topic, event: Envelope, *, service: str) -> None:
    """Publish one contract event with its ordering key and correlation header."""
    await broker.publish(
        event.model_dump_json().encode(),
        topic.name,
        key=topic.key(event),
        headers={
            "content-type": "application/json",
            "event-type": event.type,
            "event-version": str(event.version),
            "correlation-id": event.correlation_id,
        },
        correlation_id=event.correlation_id,
    )
    EVENTS_PUBLISHED.labels(service, topic.name).inc()


async def dead_letter(
    broker: KafkaBroker,
    *,
    topic: str,
    service: str,
    raw: bytes,
    key: bytes | None,
    headers: dict[str, str],
    reason: str,
    reason_kind: str,
    county: str,
    partition: int | None = None,
    offset: int | None = None,
) -> None:
    """Send the original bytes to ``<topic>.dlq`` with why, where from and when."""
    await broker.publish(
        raw,
        f"{topic}.dlq",
        key=key,
        headers={
            **headers,
            "dlq-reason": reason[:2000],
            "dlq-reason-kind": reason_kind,
            "dlq-source-topic": topic,
            "dlq-source-partition": str(partition if partition is not None else ""),
            "dlq-source-offset": str(offset if offset is not None else ""),
            "dlq-service": service,
            "dlq-at": datetime.now(UTC).isoformat(),
        },
    )
    DLQ_MESSAGES.labels(service, topic, reason_kind, county or "unknown").inc()
    log.warning("dead-lettered a message", extra={"topic": topic, "reason": reason[:500]})


def _county_hint(raw: bytes) -> str:
    """Best-effort county code of a message that may not even be JSON, for the metric."""
    import json

    try:
        data = json.loads(raw)
        county = data.get("county") if isinstance(data, dict) else None
        return str(county)[:32] if county else "unknown"
    except (ValueError, UnicodeDecodeError):
        return "unknown"


def _validation_reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    return "invalid event: " + "; ".join(parts)


def consumer(
    broker: KafkaBroker,
    topic: tp.Topic,
    *,
    group: str,
    settings: Settings,
    handler_name: str | None = None,
) -> Callable[[Callable[[Any], Awaitable[None]]], Callable[[Any], Awaitable[None]]]:
    """Register ``handler(event)`` for ``topic`` in consumer group ``group``.

    The handler must be idempotent: it records the event id in the same write as its
    effect (see :mod:`shared.mongo`). Raise :class:`PermanentError` for an event that can
    never be applied; any other exception is retried, then dead-lettered.
    """
    service = settings.service_name

    def register(handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        name = handler_name or handler.__name__

        async def on_message(msg: KafkaMessage) -> None:
            record = msg.raw_message
            raw: bytes = record.value or b""  # type: ignore[union-attr]
            key: bytes | None = record.key  # type: ignore[union-attr]
            headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}  # type: ignore[union-attr]
            where = {"partition": record.partition, "offset": record.offset}  # type: ignore[union-attr]
            try:
                event = topic.model.model_validate_json(raw)
            except ValidationError as exc:
                await dead_letter(
                    broker, topic=topic.name, service=service, raw=raw, key=key,
                    headers=headers, reason=_validation_reason(exc), reason_kind="invalid",
                    county=_county_hint(raw), **where,
                )  # fmt: skip
                EVENTS_HANDLED.labels(service, topic.name, name, "dead_lettered").inc()
                return
            token = correlation_id.set(event.correlation_id)
            try:
                await _apply_with_retries(handler, event, raw, key, headers, where, name)
            finally:
                correlation_id.reset(token)

        async def _apply_with_retries(
            handler: Callable[[Any], Awaitable[None]],
            event: Envelope,
            raw: bytes,
            key: bytes | None,
            headers: dict[str, str],
            where: dict[str, int],
            name: str,
        ) -> None:
            attempts = settings.kafka_handler_retries + 1
            last: BaseException | None = None
            for attempt in range(attempts):
                started = time.perf_counter()
                try:
                    await handler(event)
                except PermanentError as exc:
                    await dead_letter(
                        broker, topic=topic.name, service=service, raw=raw, key=key,
                        headers=headers, reason=str(exc), reason_kind="rejected",
                        county=event.county or "unknown", **where,
                    )  # fmt: skip
                    EVENTS_HANDLED.labels(service, topic.name, name, "dead_lettered").inc()
                    return
                except Exception as exc:
                    last = exc
                    EVENTS_FAILED.labels(service, topic.name, name).inc()
                    log.warning(
                        "handler %s failed (attempt %d/%d): %r",
                        name, attempt + 1, attempts, exc,
                        extra={"topic": topic.name, "event_id": str(event.event_id)},
                    )  # fmt: skip
                    await asyncio.sleep(settings.kafka_retry_backoff_seconds * (2**attempt))
                    continue
                HANDLER_SECONDS.labels(service, topic.name, name).observe(
                    time.perf_counter() - started
                )
                EVENTS_HANDLED.labels(service, topic.name, name, "applied").inc()
                return
            await dead_letter(
                broker, topic=topic.name, service=service, raw=raw, key=key, headers=headers,
                reason=f"handler {name} failed {attempts} times: {last!r}",
                reason_kind="handler_error", county=event.county or "unknown", **where,
            )  # fmt: skip
            EVENTS_HANDLED.labels(service, topic.name, name, "dead_lettered").inc()

        on_message.__name__ = name
        on_message.__doc__ = handler.__doc__
        broker.subscriber(
            topic.name,
            # one group per (service, topic): Tansu holds every JoinGroup for ~5 s, so
            # groups with one member each join side by side instead of rebalancing in turn
            group_id=f"{group}.{topic.name}",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            title=f"{group}:{topic.name}:{name}",
            description=handler.__doc__ or topic.description,
        )(on_message)
        return handler

    return register


async def start_broker(broker: KafkaBroker) -> None:
    """Connect, then start every subscriber concurrently (FastStream starts them one by
    one, and each group join takes seconds on Tansu)."""
    await broker.connect()
    await asyncio.gather(*(sub.start() for sub in broker.subscribers))
    for pub in broker.publishers:
        await pub.start()
    broker.running = True


def declare_publisher(broker: KafkaBroker, topic: tp.Topic) -> None:
    """Document in the AsyncAPI schema that this service publishes ``topic``."""
    broker.publisher(
        topic.name, schema=topic.model, title=f"{topic.name}:publish", description=topic.description
    )
