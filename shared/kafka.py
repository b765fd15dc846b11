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
from dataclasses import dataclass
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
        **client_security(settings),
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


def client_security(settings: Settings) -> dict[str, Any]:
    """SASL/TLS options for plain aiokafka clients (admin, replay and rebuild readers)."""
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


def is_transient(exc: BaseException) -> bool:
    """An outage of a dependency (MongoDB, S3, the broker), not a fault of the event:
    retried until it passes rather than dead-lettered."""
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
    from pymongo.errors import ConnectionFailure, PyMongoError
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, ConnectionFailure | KafkaConnectionError | KafkaTimeoutError):
        return True
    if isinstance(exc, NodeNotReadyError | Urllib3Error | ConnectionError | TimeoutError):
        return True
    return isinstance(exc, PyMongoError) and (
        exc.has_error_label("TransientTransactionError")
        or exc.has_error_label("RetryableWriteError")
    )


@dataclass(frozen=True)
class Delivery:
    """One record as it came off the topic, kept for its dead letter."""

    raw: bytes
    key: bytes | None
    headers: dict[str, str]
    partition: int
    offset: int

    @classmethod
    def of(cls, record: Any) -> Delivery:
        return cls(
            raw=record.value or b"",
            key=record.key,
            headers={k: v.decode(errors="replace") for k, v in (record.headers or ())},
            partition=record.partition,
            offset=record.offset,
        )


class _Subscription:
    """What the single and batch consumers share: parsing, retries, dead letters."""

    def __init__(self, broker: KafkaBroker, topic: tp.Topic, settings: Settings, name: str):
        self.broker = broker
        self.topic = topic
        self.settings = settings
        self.service = settings.service_name
        self.name = name

    def count(self, outcome: str, n: int = 1) -> None:
        EVENTS_HANDLED.labels(self.service, self.topic.name, self.name, outcome).inc(n)

    async def dead_letter(self, delivery: Delivery, *, reason: str, kind: str, county: str) -> None:
        await dead_letter(
            self.broker, topic=self.topic.name, service=self.service, raw=delivery.raw,
            key=delivery.key, headers=delivery.headers, reason=reason, reason_kind=kind,
            county=county, partition=delivery.partition, offset=delivery.offset,
        )  # fmt: skip
        self.count("dead_lettered")

    async def parse(self, delivery: Delivery) -> Envelope | None:
        """The event, or None once an invalid message is dead-lettered."""
        try:
            return self.topic.model.model_validate_json(delivery.raw)
        except ValidationError as exc:
            reason = _validation_reason(exc)
            await self.dead_letter(
                delivery, reason=reason, kind="invalid", county=_county_hint(delivery.raw)
            )
            return None

    async def attempt(
        self, apply: Callable[[], Awaitable[None]], label: str
    ) -> BaseException | None:
        """Run ``apply`` until it succeeds, retrying outages without limit and other
        failures a bounded number of times; returns the last failure, or None."""
        failures = 0
        outage = 0
        while True:
            started = time.perf_counter()
            try:
                await apply()
            except PermanentError:
                raise
            except Exception as exc:
                EVENTS_FAILED.labels(self.service, self.topic.name, self.name).inc()
                if is_transient(exc):
                    outage += 1
                    log.warning(
                        "handler %s waits for a dependency (%s): %r", self.name, label, exc,
                        extra={"topic": self.topic.name},
                    )  # fmt: skip
                    await asyncio.sleep(min(10.0, 0.5 * 2 ** min(outage, 5)))
                    continue
                failures += 1
                log.warning(
                    "handler %s failed (%s, attempt %d/%d): %r", self.name, label, failures,
                    self.settings.kafka_handler_retries + 1, exc, extra={"topic": self.topic.name},
                )  # fmt: skip
                if failures > self.settings.kafka_handler_retries:
                    return exc
                await asyncio.sleep(self.settings.kafka_retry_backoff_seconds * 2 ** (failures - 1))
                continue
            HANDLER_SECONDS.labels(self.service, self.topic.name, self.name).observe(
                time.perf_counter() - started
            )
            return None

    async def apply_one(
        self, handler: Callable[[Any], Awaitable[None]], event: Envelope, delivery: Delivery
    ) -> None:
        token = correlation_id.set(event.correlation_id)
        try:
            failure = await self.attempt(lambda: handler(event), str(event.event_id))
        except PermanentError as exc:
            await self.dead_letter(
                delivery, reason=str(exc), kind="rejected", county=event.county or "unknown"
            )
            return
        finally:
            correlation_id.reset(token)
        if failure is None:
            self.count("applied")
            return
        await self.dead_letter(
            delivery,
            reason=f"handler {self.name} failed {self.settings.kafka_handler_retries + 1} "
            f"times: {failure!r}",
            kind="handler_error",
            county=event.county or "unknown",
        )


def _group_id(group: str, topic: tp.Topic, settings: Settings) -> str:
    # One group per (deployment, service, topic). The deployment's database prefix keeps two
    # deployments sharing a broker from taking each other's offsets; one group per topic
    # lets groups join side by side (Tansu holds every JoinGroup for ~5 s) instead of
    # rebalancing in turn.
    return f"{settings.mongo_database_prefix}.{group}.{topic.name}"


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
    never be applied; an outage of MongoDB, S3 or the broker is retried until it passes;
    any other exception is retried a bounded number of times, then dead-lettered.
    """

    def register(handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        subscription = _Subscription(broker, topic, settings, handler_name or handler.__name__)

        async def on_message(msg: KafkaMessage) -> None:
            delivery = Delivery.of(msg.raw_message)
            event = await subscription.parse(delivery)
            if event is not None:
                await subscription.apply_one(handler, event, delivery)

        on_message.__name__ = subscription.name
        on_message.__doc__ = handler.__doc__
        broker.subscriber(
            topic.name,
            group_id=_group_id(group, topic, settings),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            title=f"{group}:{topic.name}:{subscription.name}",
            description=handler.__doc__ or topic.description,
        )(on_message)
        return handler

    return register


def batch_consumer(
    broker: KafkaBroker,
    topic: tp.Topic,
    *,
    group: str,
    settings: Settings,
    max_records: int = 500,
    handler_name: str | None = None,
) -> Callable[[Callable[[list[Any]], Awaitable[None]]], Callable[[list[Any]], Awaitable[None]]]:
    """Register ``handler(events)`` for high-volume topics: up to ``max_records`` valid
    events at a time, so the handler can classify and write in bulk.

    The same promises as :func:`consumer`: invalid messages are dead-lettered one by one,
    outages are retried until they pass, and the offsets of the whole batch are committed
    only after the handler returns. When a batch keeps failing, its events are applied one
    at a time so that only the event at fault is dead-lettered.
    """

    def register(
        handler: Callable[[list[Any]], Awaitable[None]],
    ) -> Callable[[list[Any]], Awaitable[None]]:
        subscription = _Subscription(broker, topic, settings, handler_name or handler.__name__)

        async def single(event: Any) -> None:
            await handler([event])

        async def on_batch(msg: KafkaMessage) -> None:
            records = msg.raw_message
            deliveries = [
                Delivery.of(r) for r in (records if isinstance(records, tuple) else (records,))
            ]
            parsed: list[tuple[Envelope, Delivery]] = []
            for delivery in deliveries:
                event = await subscription.parse(delivery)
                if event is not None:
                    parsed.append((event, delivery))
            if not parsed:
                return
            events = [event for event, _ in parsed]
            try:
                failure = await subscription.attempt(
                    lambda: handler(events), f"{len(events)} events"
                )
            except PermanentError:
                failure = RuntimeError("an event of the batch was refused")
            if failure is None:
                subscription.count("applied", len(events))
                return
            log.warning("batch of %d failed; applying one at a time", len(events))
            for event, delivery in parsed:
                await subscription.apply_one(single, event, delivery)

        on_batch.__name__ = subscription.name
        on_batch.__doc__ = handler.__doc__
        broker.subscriber(
            topic.name,
            group_id=_group_id(group, topic, settings),
            batch=True,
            max_records=max_records,
            batch_timeout_ms=50,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            title=f"{group}:{topic.name}:{subscription.name}",
            description=handler.__doc__ or topic.description,
        )(on_batch)
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
