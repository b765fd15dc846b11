"""Move dead-lettered messages back to their topic once the cause is fixed."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared import topics as tp
from shared.kafka import client_security
from shared.settings import Settings


async def replay_dlq(settings: Settings, topic: str, *, limit: int | None = None) -> int:
    """Republish the original bytes of ``<topic>.dlq`` to ``topic``; returns how many.

    The replay group commits after each republish, so a second run moves nothing twice.
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
    moved = 0
    try:
        while limit is None or moved < limit:
            batch = await consumer.getmany(timeout_ms=2000, max_records=100)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    headers = [
                        (k, v) for k, v in (record.headers or ()) if not k.startswith("dlq-")
                    ]
                    headers.append(("dlq-replayed", b"true"))
                    await producer.send_and_wait(
                        topic, record.value, key=record.key, headers=headers
                    )
                    moved += 1
            await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    return moved
