"""Consuming Kafka through FastStream: the consumer wrapper that commits only after the
effect is stored (the bus itself is in :mod:`shared.bus`, topic bootstrap in
:mod:`shared.topic_admin`; their public names are importable from here too).

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
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared import topics as tp

# the bus and topic administration live in their own modules; these names are imported
# from here by every service
from shared.bus import CORRELATION_HEADER, Bus, client_security, event_headers, make_bus
from shared.bus_auth import (
    Keyring,
    UnauthorisedWriter,
    county_of,
)
from shared.deadletters import Delivery
from shared.events import Envelope
from shared.observability import (
    EVENTS_FAILED,
    EVENTS_HANDLED,
    HANDLER_SECONDS,
    REDELIVERIES,
    correlation_id,
)
from shared.settings import Settings
from shared.topic_admin import ensure_topics, truncating_topics

__all__ = [
    "CORRELATION_HEADER",
    "Bus",
    "PermanentError",
    "Refused",
    "admit",
    "batch_consumer",
    "client_security",
    "consumer",
    "ensure_topics",
    "event_headers",
    "make_bus",
    "truncating_topics",
]

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Envelope)


class PermanentError(Exception):
    """The event can never be applied (e.g. a unit outside the producing county):
    dead-letter it at once, without retries."""


class Refused(Exception):
    """A record the consumer will not apply: dead-letter it with ``kind`` and the reason."""

    def __init__(self, kind: str, reason: str, county: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.county = county


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
            deliveries = [
                Delivery.of(r) for r in (records if isinstance(records, tuple) else (records,))
            ]
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
