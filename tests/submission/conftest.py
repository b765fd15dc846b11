"""The submission service running in-process over the real local stack, one per module,
and builders for the texts and events its tests send."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY

from shared import events as ev
from shared import topics as tp
from shared.settings import load_settings
from tests.support import RunningService, collect, produce, run_service

# common characters: random texts from them share almost no 3-grams, so tests never
# flag each other's stories as copies
CHARACTERS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过"
    "子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体"
    "制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内"
    "数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提"
)


@pytest_asyncio.fixture(scope="module")
async def submission(stack_env: dict[str, str]) -> AsyncIterator[RunningService]:
    async with run_service(
        "submission", mongo_database=f"submission_{uuid.uuid4().hex[:8]}"
    ) as running:
        yield running


def today() -> date:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def chinese_text(length: int, seed: str | None = None) -> str:
    rng = random.Random(seed or uuid.uuid4().hex)
    return "".join(rng.choice(CHARACTERS) for _ in range(length))


def draft(**overrides: Any) -> dict[str, Any]:
    story = {
        "title": "开学第一课" + chinese_text(6),
        "body": chinese_text(120),
        "category": "工作动态",
        "event_date": (today() - timedelta(days=1)).isoformat(),
    }
    story.update(overrides)
    return story


def media_stored(unit: str, county: str | None, kind: ev.MediaKind) -> ev.MediaStoredEvent:
    return ev.MediaStoredEvent.build(
        ev.MediaStored(
            media_id=f"m-{uuid.uuid4().hex}",
            unit_path=ev.UnitPath(city="jc", county=county, unit=unit),
            kind=kind, content_type="image/jpeg" if kind == ev.MediaKind.PHOTO else "video/mp4",
            size=1000, sha256=uuid.uuid4().hex * 2, uploader="tester", stored_at=ev.utcnow(),
        ),
        producer="media", county=county, unit=unit,
    )  # fmt: skip


async def publish(topic: str, event: ev.Envelope) -> None:
    await produce(topic, event.model_dump_json().encode(), key=tp.BY_NAME[topic].key(event))


async def submitted_events(story_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The ``story.submitted`` events of one story, once ``count`` of them are on the bus."""

    def ours(records: list[Any]) -> list[dict[str, Any]]:
        found = []
        for record in records:
            data = json.loads(record.value)
            if data["payload"]["story_id"] == story_id:
                found.append(data)
        return found

    records = await read_all("story.submitted", until=lambda rs: len(ours(rs)) >= count)
    return sorted(ours(records), key=lambda data: data["payload"]["version"])


async def read_all(
    topic: str, *, until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], timeout: float = 30
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read every partition of ``topic`` from the start until ``until(records)``; without a
    consumer group, so there is no group join to wait for."""
    settings = load_settings("tests")
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )  # fmt: skip
    await reader.start()
    try:
        await reader.topics()  # loads the cluster metadata
        partitions = reader.partitions_for_topic(topic) or set()
        reader.assign([TopicPartition(topic, partition) for partition in partitions])
        await reader.seek_to_beginning()
        return await collect(reader, topic, until=until, timeout=timeout)
    finally:
        await reader.stop()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0
