"""The limits: raw broker produce/consume, raw MongoDB insert, raw S3 put rates."""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from shared.settings import Settings
from shared.storage import ensure_buckets_sync, make_minio


async def broker_rates(
    settings: Settings, *, messages: int = 20_000, size: int = 1024
) -> dict[str, Any]:
    """Produce (batched, acks=all) and consume 1 KB messages on a fresh 3-partition topic."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 3, 1)])
    await admin.close()
    payload = os.urandom(size)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    started = time.perf_counter()
    futures = [
        await producer.send(topic, payload, key=str(i % 64).encode()) for i in range(messages)
    ]
    await asyncio.gather(*futures)
    produce_seconds = time.perf_counter() - started
    single = 300
    started = time.perf_counter()
    for i in range(single):
        await producer.send_and_wait(topic, payload, key=str(i).encode())
    single_seconds = time.perf_counter() - started
    await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=f"{topic}-reader",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    while seen < messages + single:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        if not batch:
            break
        seen += sum(len(records) for records in batch.values())
    consume_seconds = time.perf_counter() - started
    await consumer.stop()
    return {
        "produce_batched_msgs_per_s": round(messages / produce_seconds),
        "produce_send_and_wait_msgs_per_s": round(single / single_seconds),
        "consume_msgs_per_s": round(seen / consume_seconds),
        "message_bytes": size,
    }


async def mongo_rates(settings: Settings, *, documents: int = 2000) -> dict[str, Any]:
    """Single ``insert_one`` and batched ``insert_many`` rates of the same MongoDB."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    db = client[f"bench_raw_{uuid.uuid4().hex[:8]}"]
    doc = {"unit": "dh-syxx", "points": 1.5, "reason": "x" * 200}
    started = time.perf_counter()
    for i in range(documents):
        await db.single.insert_one({**doc, "i": i})
    single = documents / (time.perf_counter() - started)
    started = time.perf_counter()
    for chunk in range(0, documents * 5, 500):
        await db.many.insert_many([{**doc, "i": i} for i in range(chunk, chunk + 500)])
    many = documents * 5 / (time.perf_counter() - started)
    await client.drop_database(db.name)
    await client.close()
    return {"insert_one_per_s": round(single), "insert_many_docs_per_s": round(many)}


def s3_rate(settings: Settings, *, files: int = 8, size: int = 5 * 1024 * 1024) -> dict[str, Any]:
    """Raw ``put_object`` MB/s of 5 MB objects on the same S3 server."""
    client = make_minio(settings)
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    ensure_buckets_sync(client, bucket)
    data = os.urandom(size)
    started = time.perf_counter()
    for i in range(files):
        client.put_object(bucket, f"raw/{i}", io.BytesIO(data), size)
    seconds = time.perf_counter() - started
    for i in range(files):
        client.remove_object(bucket, f"raw/{i}")
    client.remove_bucket(bucket)
    return {"put_object_mb_per_s": round(files * size / seconds / 1e6, 1)}
