"""A producer that writes as a principal of the local bus: the demo's county portals, the
benchmarks and the tests write through it, signed as the topic's rightful writer (a
service for its own topic, the county named by the key for intake) unless told otherwise.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from shared import topics as tp
from shared.bus_auth import BusSigner, county_principal, local_signer
from shared.events import Envelope
from shared.kafka import client_security
from shared.settings import Settings

AUTO = "auto"


def rightful_writer(topic: str, key: bytes | None) -> str:
    """Who may write ``topic``: its service, or for county intake the key's county."""
    writers = tp.BY_NAME[topic].writers
    if tp.COUNTY_SYSTEMS in writers:
        return county_principal((key or b"").decode())
    return writers[0]


class SignedProducer:
    """``AIOKafkaProducer``'s ``send`` and ``send_and_wait``, signing every record.

    ``principal`` is a fixed principal, :data:`AUTO` for the topic's rightful writer, or
    None to send unsigned (what an outsider without a key would do)."""

    def __init__(self, settings: Settings, principal: str | None = AUTO, **options: Any) -> None:
        options.setdefault("acks", "all")
        self.settings = settings
        self.principal = principal
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, **client_security(settings), **options
        )
        self._signers: dict[str, BusSigner] = {}

    def _headers(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, str] | None
    ) -> list[tuple[str, bytes]]:
        merged = dict(headers or {})
        if self.principal is not None:
            principal = self.principal
            if principal == AUTO:
                principal = rightful_writer(topic.removesuffix(".dlq"), key)
            if principal not in self._signers:
                if not self.settings.bus_keys_dir:
                    raise RuntimeError("no local bus key folder (CITYDESK_BUS_KEYS_DIR)")
                self._signers[principal] = local_signer(self.settings.bus_keys_dir, principal)
            merged.update(self._signers[principal].headers(topic, key, value))
        return [(k, v.encode()) for k, v in merged.items()]

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: dict[str, str] | None = None,
        partition: int | None = None,
    ) -> Any:
        return await self.producer.send(
            topic, value, key=key, partition=partition,
            headers=self._headers(topic, key, value, headers),
        )  # fmt: skip

    async def send_and_wait(self, topic: str, value: bytes, **options: Any) -> Any:
        """:meth:`send`, then wait for the broker's acknowledgement."""
        return await (await self.send(topic, value, **options))

    async def publish(self, topic: tp.Topic, event: Envelope) -> Any:
        """Write one contract event with its ordering key and wait for the ack."""
        return await self.send_and_wait(
            topic.name, event.model_dump_json().encode(), key=topic.key(event)
        )

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged."""
        await self.producer.flush()
