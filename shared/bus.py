"""The service's way onto Kafka: the FastStream broker that runs its subscribers, the
writer that signs every record it publishes, and the dead letters it keeps (see
:mod:`shared.kafka` for how records are consumed)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pymongo.asynchronous.database import AsyncDatabase

from shared import topics as tp
from shared.bus_auth import BusSigner, Keyring, keyring_for, signer_for
from shared.deadletters import DeadLetters
from shared.events import Envelope
from shared.observability import EVENTS_PUBLISHED
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.kafka import _Subscription

CORRELATION_HEADER = "correlation-id"


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
