"""Kafka through FastStream: the service's bus (broker, signed writer, dead letters), topic
bootstrap, and the consumer wrapper that commits only after the effect is stored.

Every subscriber is registered through :func:`consumer` or :func:`batch_consumer`. For
each record, whatever its bytes and headers, the wrapper

* takes the raw record (FastStream's own header decoding and JSON decoder are replaced,
  so nothing can raise before the wrapper runs);
* checks who wrote it (:mod:`shared.bus_auth`), then parses it into the topic's
  contract; a failure of either is dead-lettered with the reason;
* retries a failing handler a bounded number of times with backoff, then dead-letters
  the record; an outage of a dependency is waited out instead;
* returns only when the effect or the dead letter is stored, so the ``NACK_ON_ERROR``
  policy commits the offset only after it. Dead letters are written once per record
  (:mod:`shared.deadletters`), and a record read again at an offset already delivered
  is counted as a redelivery, so a stall shows in metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics as tp
from shared.bus_auth import (
    BusSigner,
    Keyring,
    UnauthorisedWriter,
    county_of,
    keyring_for,
    signer_for,
)
from shared.deadletters import DeadLetters, Delivery
from shared.events import Envelope
from shared.observability import (
    EVENTS_FAILED,
    EVENTS_HANDLED,
    EVENTS_PUBLISHED,
    HANDLER_SECONDS,
    REDELIVERIES,
    TOPIC_RETENTION_FINITE,
    correlation_id,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Envelope)
CORRELATION_HEADER = "correlation-id"


class PermanentError(Exception):
    """The event can never be applied (e.g. a unit outside the producing county):
    dead-letter it at once, without retries."""


class Refused(Exception):
    """A record the consumer will not apply: dead-letter it with ``kind`` and the reason."""

    def __init__(self, kind: str, reason: str, county: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.county = county


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


def client_security(settings: Settings) -> dict[str, Any]:
    """SASL/TLS options for plain aiokafka clients (admin, writer, replay and rebuild)."""
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


def make_broker(settings: Settings) -> KafkaBroker:
    """The FastStream broker that runs a service's subscribers (and documents its
    channels). Records are written by :class:`BusWriter`, which signs them."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"citydesk-{settings.service_name}",
        security=_security(settings),
        graceful_timeout=10.0,
        logger=logging.getLogger(f"faststream.{settings.service_name}"),
    )


class BusWriter:
    """Writes records signed as this service, acknowledged by all in-sync replicas. The
    idempotent producer stays off: Tansu answers its InitProducerId with an error in s3
    mode, and consumers dedupe by ``event_id`` anyway."""

    def __init__(self, settings: Settings, signer: BusSigner | None) -> None:
        self.settings = settings
        self.signer = signer
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                client_id=f"citydesk-{self.settings.service_name}-writer",
                acks="all",
                linger_ms=2,
                **client_security(self.settings),
            )
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]
    ) -> None:
        """Write one record, signed when this process has a key; waits for the ack."""
        signed = dict(headers)
        if self.signer is not None:
            signed.update(self.signer.headers(topic, key, value))
        await self.send_as_is(topic, key, value, signed)

    async def send_as_is(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str]
    ) -> None:
        """Write one record with exactly these headers: a dead letter keeps the original
        writer's signature, so that once replayed it is checked as what it was."""
        if self._producer is None:
            await self.start()
        assert self._producer is not None
        await self._producer.send_and_wait(
            topic, value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
        )


def event_headers(event: Envelope) -> dict[str, str]:
    """The headers every event carries (one correlation header, named as documented)."""
    return {
        "content-type": "application/json",
        "event-type": event.type,
        "event-version": str(event.version),
        CORRELATION_HEADER: event.correlation_id,
    }


@dataclass
class Bus:
    """A service's way onto the bus: subscribers on ``broker``, signed writes through
    ``writer``, dead letters kept in ``db``, writers checked against ``keyring``."""

    settings: Settings
    broker: KafkaBroker
    writer: BusWriter
    keyring: Keyring
    dead_letters: DeadLetters
    subscriptions: list[_Subscription] = field(default_factory=list)

    @property
    def service(self) -> str:
        return self.settings.service_name

    async def publish(self, topic: tp.Topic, event: Envelope) -> None:
        """Publish one contract event with its ordering key (outside the outbox: tests,
        tools)."""
        value = event.model_dump_json().encode()
        await self.writer.send(topic.name, topic.key(event), value, event_headers(event))
        EVENTS_PUBLISHED.labels(self.service, topic.name).inc()

    async def start(self) -> None:
        """Connect, then start every subscriber concurrently (FastStream starts them one
        by one, and each group join takes seconds on Tansu)."""
        await self.dead_letters.ensure_indexes()
        await self.writer.start()
        await self.broker.connect()
        await asyncio.gather(*(sub.start() for sub in self.broker.subscribers))
        for pub in self.broker.publishers:
            await pub.start()
        self.broker.running = True

    async def stop(self) -> None:
        await self.broker.stop()
        await self.writer.stop()


def make_bus(settings: Settings, db: AsyncDatabase[dict[str, Any]]) -> Bus:
    """The bus of one service. Without a keyring nothing could be checked, so the service
    refuses to start rather than apply records from anyone."""
    keyring = keyring_for(settings)
    if keyring is None:
        raise RuntimeError(
            "no bus keyring: set CITYDESK_BUS_KEYRING_FILE (and CITYDESK_BUS_SIGNING_KEY), or "
            "CITYDESK_BUS_KEYS_DIR for the local stack (`citydesk stack env` prints it)"
        )
    writer = BusWriter(settings, signer_for(settings))
    dead_letters = DeadLetters(
        db, writer.send_as_is, service=settings.service_name,
        max_bytes=settings.kafka_dlq_max_bytes,
    )  # fmt: skip
    return Bus(settings, make_broker(settings), writer, keyring, dead_letters)


# ---- topics: created with the settings the log needs ------------------------------------
def topic_configs(settings: Settings) -> dict[str, str]:
    return {
        "retention.ms": str(settings.kafka_retention_ms),
        "min.insync.replicas": str(settings.kafka_min_insync_replicas),
    }


async def ensure_topics(settings: Settings) -> None:
    """Create every contract topic and its dead-letter topic if missing (where the
    deployment declares them instead, ``kafka_create_topics`` is off)."""
    if not settings.kafka_create_topics:
        return
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"citydesk-{settings.service_name}-admin",
        **client_security(settings),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs = topic_configs(settings)
        wanted = []
        for topic in tp.ALL:
            for name, partitions in ((topic.name, settings.kafka_partitions), (topic.dlq, 1)):
                if name not in existing:
                    wanted.append(
                        NewTopic(name, partitions, settings.kafka_replication_factor, None, configs)
                    )
        if wanted:
            await admin.create_topics(wanted)
    finally:
        await admin.close()


def _finite(configs: dict[str, str]) -> bool:
    retention = configs.get("retention.ms")
    size = configs.get("retention.bytes")
    compacted = "compact" in (configs.get("cleanup.policy") or "")
    time_bound = retention not in (None, "-1") and not compacted
    size_bound = size not in (None, "-1") and not compacted
    return time_bound or size_bound


async def truncating_topics(settings: Settings) -> list[str]:
    """The topics the scoring rebuild reads from the start whose retention would delete
    old records; each is logged and exported as ``citydesk_topic_retention_finite``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"citydesk-{settings.service_name}-admin",
        **client_security(settings),
    )
    await admin.start()
    finite: list[str] = []
    try:
        names = [t.name for t in tp.ALL if t.rebuild_reads]
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                name = resource[3]
                configs = {entry[0]: entry[1] for entry in resource[4]}
                is_finite = _finite(configs)
                TOPIC_RETENTION_FINITE.labels(settings.service_name, name).set(int(is_finite))
                if is_finite:
                    finite.append(name)
                    log.error(
                        "topic %s deletes old records (retention.ms=%s, retention.bytes=%s): "
                        "a scoring rebuild would no longer equal the live service",
                        name, configs.get("retention.ms"), configs.get("retention.bytes"),
                    )  # fmt: skip
    finally:
        await admin.close()
    return finite


# ---- who wrote it, and what it is -------------------------------------------------------
def admit(topic: tp.Topic, delivery: Delivery, keyring: Keyring) -> Envelope:
    """The record's event, once its writer may write it; raises :class:`Refused`.

    A service may write only its own topics; a county system only intake of its own
    county. The rebuild uses the same check, so it skips exactly what live refused."""
    try:
        principal = keyring.verify(topic.name, delivery.key, delivery.raw, delivery.headers)
    except UnauthorisedWriter as exc:
        raise Refused("unauthorised", str(exc)) from exc
    county = county_of(principal)
    allowed = principal in topic.writers or (
        county is not None and tp.COUNTY_SYSTEMS in topic.writers
    )
    if not allowed:
        raise Refused("unauthorised", f"{principal!r} may not write {topic.name}", county)
    try:
        event = topic.model.model_validate_json(delivery.raw)
    except ValidationError as exc:
        raise Refused("invalid", _validation_reason(exc), county) from exc
    if county is not None and event.county != county:
        raise Refused(
            "unauthorised",
            f"{principal!r} may only write events of county {county!r}, not {event.county!r}",
            county,
        )
    return event


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


# ---- raw records: FastStream's parsing replaced ------------------------------------------
def _utf8_headers(record: Any) -> Any:
    headers = tuple(
        (str(k), (v or b"").decode("utf-8", "replace").encode()) for k, v in record.headers or ()
    )
    return dataclasses.replace(record, headers=headers)


async def _parse_record(record: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's parser, fed headers that always decode; the handler still sees the
    record exactly as it arrived."""
    message = await original(_utf8_headers(record))
    message.raw_message = record
    message.content_type = None
    return message


async def _parse_batch(records: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    message = await original(tuple(_utf8_headers(r) for r in records))
    message.raw_message = records
    message.content_type = None
    return message


def _raw_body(message: Any) -> Any:
    """No decoding in the framework: the wrapper parses the bytes itself."""
    return message.body


class _Subscription:
    """What the single and batch consumers share: admission, retries, dead letters."""

    def __init__(self, bus: Bus, topic: tp.Topic, group: str, name: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.settings = bus.settings
        self.service = bus.service
        self.name = name
        self.delivered: dict[int, int] = {}  # partition -> highest offset handed to us

    def count(self, outcome: str, n: int = 1) -> None:
        EVENTS_HANDLED.labels(self.service, self.topic.name, self.name, outcome).inc(n)

    def note_delivery(self, delivery: Delivery) -> None:
        seen = self.delivered.get(delivery.partition)
        if seen is not None and delivery.offset <= seen:
            REDELIVERIES.labels(self.service, self.topic.name).inc()
        else:
            self.delivered[delivery.partition] = delivery.offset

    async def dead_letter(self, delivery: Delivery, refusal: Refused) -> None:
        async def write() -> None:
            await self.bus.dead_letters.write(
                delivery, group=self.group, reason=str(refusal), kind=refusal.kind,
                county=refusal.county,
            )  # fmt: skip

        failure = await self.attempt(write, f"dead letter of {delivery.coordinates}")
        if failure is not None:
            raise failure  # the record is read again: never lost, counted as a redelivery
        self.count("dead_lettered")

    async def admit(self, delivery: Delivery) -> Envelope | None:
        """The event, or None once the record is dead-lettered."""
        self.note_delivery(delivery)
        try:
            return admit(self.topic, delivery, self.bus.keyring)
        except Refused as refusal:
            await self.dead_letter(delivery, refusal)
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
            await self.dead_letter(delivery, Refused("rejected", str(exc), event.county))
            return
        finally:
            correlation_id.reset(token)
        if failure is None:
            self.count("applied")
            return
        reason = (
            f"handler {self.name} failed {self.settings.kafka_handler_retries + 1} times: "
            f"{failure!r}"
        )
        await self.dead_letter(delivery, Refused("handler_error", reason, event.county))

    def subscribe(
        self, on_message: Callable[[KafkaMessage], Awaitable[None]], **options: Any
    ) -> None:
        self.bus.broker.subscriber(
            self.topic.name,
            group_id=self.group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
            decoder=_raw_body,
            title=f"{self.group}:{self.topic.name}:{self.name}",
            description=on_message.__doc__ or self.topic.description,
            **options,
        )(on_message)
        self.bus.subscriptions.append(self)


def _group_id(group: str, topic: tp.Topic, settings: Settings) -> str:
    # One group per (deployment, service, topic). The deployment's database prefix keeps two
    # deployments sharing a broker from taking each other's offsets; one group per topic
    # lets groups join side by side (Tansu holds every JoinGroup for ~5 s) instead of
    # rebalancing in turn.
    return f"{settings.mongo_database_prefix}.{group}.{topic.name}"


def consumer(
    bus: Bus, topic: tp.Topic, *, group: str, handler_name: str | None = None
) -> Callable[[Callable[[Any], Awaitable[None]]], Callable[[Any], Awaitable[None]]]:
    """Register ``handler(event)`` for ``topic`` in consumer group ``group``.

    The handler must be idempotent: it records the event id in the same write as its
    effect (see :mod:`shared.mongo`). Raise :class:`PermanentError` for an event that can
    never be applied; an outage of MongoDB, S3 or the broker is retried until it passes;
    any other exception is retried a bounded number of times, then dead-lettered.
    """

    def register(handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        name = handler_name or handler.__name__
        subscription = _Subscription(bus, topic, _group_id(group, topic, bus.settings), name)

        async def on_message(msg: KafkaMessage) -> None:
            delivery = Delivery.of(msg.raw_message)
            event = await subscription.admit(delivery)
            if event is not None:
                await subscription.apply_one(handler, event, delivery)

        on_message.__name__ = name
        on_message.__doc__ = handler.__doc__
        subscription.subscribe(on_message, parser=_parse_record)
        return handler

    return register


def batch_consumer(
    bus: Bus,
    topic: tp.Topic,
    *,
    group: str,
    max_records: int = 500,
    handler_name: str | None = None,
) -> Callable[[Callable[[list[Any]], Awaitable[None]]], Callable[[list[Any]], Awaitable[None]]]:
    """Register ``handler(events)`` for high-volume topics: up to ``max_records`` valid
    events at a time, so the handler can classify and write in bulk.

    The same promises as :func:`consumer`: refused records are dead-lettered one by one
    and the rest of the batch is applied, outages are retried until they pass, and the
    offsets of the whole batch are committed only after the handler returns. When a batch
    keeps failing, its events are applied one at a time so that only the event at fault
    is dead-lettered.
    """

    def register(
        handler: Callable[[list[Any]], Awaitable[None]],
    ) -> Callable[[list[Any]], Awaitable[None]]:
        name = handler_name or handler.__name__
        subscription = _Subscription(bus, topic, _group_id(group, topic, bus.settings), name)

        async def single(event: Any) -> None:
            await handler([event])

        async def on_batch(msg: KafkaMessage) -> None:
            records = msg.raw_message
            # aiokafka hands a tuple; FastStream's in-memory test broker a list
            many = isinstance(records, tuple | list)
            deliveries = [Delivery.of(r) for r in (records if many else (records,))]
            parsed: list[tuple[Envelope, Delivery]] = []
            for delivery in deliveries:
                event = await subscription.admit(delivery)
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

        on_batch.__name__ = name
        on_batch.__doc__ = handler.__doc__
        subscription.subscribe(
            on_batch, parser=_parse_batch, batch=True, max_records=max_records,
            batch_timeout_ms=50,
        )  # fmt: skip
        return handler

    return register
