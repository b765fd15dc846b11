"""Move dead-lettered messages back to their topic once the cause is fixed."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from shared import topics as tp
from shared.kafka import client_security
from shared.settings import Settings


async def replay_dlq(settings: Settings, topic: str, *, limit: int | None = None) -> int:
    """Republish the original bytes of ``<topic>.dlq`` to ``topic``; returns how many.

    The replay group commits after each republish, so a second run moves nothing twice.
    Only what was dead-lettered before the replay started is moved: a record that fails
    again is dead-lettered again and waits for the next replay, rather than going round
    in a loop. The original writer's signature travels with the bytes, so a replayed
    record is checked as what it was.
    """
    if topic not in tp.BY_NAME:
        raise ValueError(f"unknown topic {topic!r}; known: {', '.join(tp.BY_NAME)}")
    consumer = AIOKafkaConsumer(
        f"{topic}.dlq",
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.mongo_database_prefix}.dlq-replay.{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_security(settings),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", **client_security(settings)
    )
    await consumer.start()
    await producer.start()
    started_ms = int(time.time() * 1000)
    moved = 0
    try:
        while limit is None or moved < limit:
            batch = await consumer.getmany(timeout_ms=2000, max_records=100)
            if not batch:
                break
            done: dict[TopicPartition, OffsetAndMetadata] = {}
            caught_up = False
            for partition, records in batch.items():
                for record in records:
                    if record.timestamp >= started_ms or (limit is not None and moved >= limit):
                        caught_up = True  # left for the next replay, and not committed
                        break
                    headers = [
                        (k, v) for k, v in (record.headers or ()) if not k.startswith("dlq-")
                    ]
                    headers.append(("dlq-replayed", b"true"))
                    await producer.send_and_wait(
                        topic, record.value, key=record.key, headers=headers
                    )
                    moved += 1
                    done[partition] = OffsetAndMetadata(record.offset + 1, "")
            if done:
                await consumer.commit(done)
            if caught_up:
                break
    finally:
        await producer.stop()
        await consumer.stop()
    return moved
