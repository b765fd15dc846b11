"""The shared mechanics over the real local stack: consumer groups with
commit-after-effect, dead letters, the transactional outbox, object storage, and the
durability of the broker across a restart."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import urllib.request
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from citydesk.producer import SignedProducer
from citydesk.stack import Stack
from shared import events as ev
from shared import topics as tp
from shared.kafka import Bus, consumer, ensure_topics, event_headers, make_bus
from shared.mongo import OutboxRelay, add_to_outbox, apply_once, in_transaction, make_client
from shared.settings import Settings
from shared.storage import ensure_buckets, make_minio
from tests.support import (
    eventually,
    header,
    one_key_per_partition,
    produce,
    read_topic,
    settings_for,
)

pytestmark = pytest.mark.usefixtures("stack_env")


def media_event(media_id: str) -> ev.MediaStoredEvent:
    return ev.MediaStoredEvent.build(
        ev.MediaStored(
            media_id=media_id, unit_path=ev.UnitPath(city="jc", county="dh", unit="dh-syxx"),
            kind=ev.MediaKind.PHOTO, content_type="image/jpeg", size=10, sha256="0" * 64,
            uploader="tester", stored_at=ev.utcnow(),
        ),
        producer="tests", county="dh", unit="dh-syxx",
    )  # fmt: skip


def bus_for(settings: Settings) -> Bus:
    """A bus with its own dead-letter store, writing as ``settings.bus_principal``."""
    return make_bus(settings, make_client(settings)[settings.database_name])


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_consumer_group_applies_each_event_once_and_commits_after_the_effect() -> None:
    settings = settings_for(
        "bustest", mongo_database=f"bus_{uuid.uuid4().hex[:8]}", bus_principal="media"
    )
    await ensure_topics(settings)
    group = f"bus-{uuid.uuid4().hex[:6]}"
    client = make_client(settings)
    db = client[settings.database_name]
    prefix = uuid.uuid4().hex[:6]
    failures = {f"{prefix}-3": 1}  # the fourth event fails once, then succeeds on retry
    sentinels_seen: set[str] = set()

    def build() -> Bus:
        bus = bus_for(settings)

        @consumer(bus, tp.MEDIA_STORED, group=group)
        async def record_media(event: ev.MediaStoredEvent) -> None:
            media_id = event.payload.media_id
            if media_id.startswith(f"sentinel-{prefix}"):
                sentinels_seen.add(media_id)
                return
            if not media_id.startswith(prefix):
                return
            if failures.get(media_id, 0) > 0:
                failures[media_id] -= 1
                raise RuntimeError("a passing fault")

            async def effect(session: Any) -> None:
                await db.media.update_one(
                    {"_id": media_id}, {"$inc": {"applied": 1}}, upsert=True, session=session
                )

            await apply_once(
                client, db, consumer=group, event_id=str(event.event_id), effect=effect
            )

        return bus

    events = [media_event(f"{prefix}-{i}") for i in range(10)]
    bus = build()
    await bus.start()
    for event in events:
        await bus.publish(tp.MEDIA_STORED, event)
    await bus.publish(tp.MEDIA_STORED, events[0])  # a redelivery
    await eventually(
        lambda: db.media.count_documents({"_id": {"$regex": f"^{prefix}"}}),
        what="ten effects",
    )
    await eventually(lambda: _count_is(db, prefix, 10), what="all ten applied")
    await bus.stop()

    # a second consumer in the same group starts from the committed offsets: nothing twice.
    # Once it has handled a sentinel written after the ten on every partition, it has read
    # all it would ever read again
    sentinels = await one_key_per_partition("media.stored", f"sentinel-{prefix}", settings)
    bus = build()
    await bus.start()
    for sentinel in sentinels:
        await bus.publish(tp.MEDIA_STORED, media_event(sentinel))
    await eventually(lambda: sentinels_seen == set(sentinels), what="a sentinel per partition")
    await bus.stop()
    docs = await db.media.find({"_id": {"$regex": f"^{prefix}"}}).to_list()
    assert sorted(d["_id"] for d in docs) == sorted(e.payload.media_id for e in events)
    assert all(d["applied"] == 1 for d in docs)
    await client.drop_database(settings.database_name)
    await client.close()


async def _count_is(db: Any, prefix: str, n: int) -> bool:
    return await db.media.count_documents({"_id": {"$regex": f"^{prefix}"}}) == n


async def test_an_invalid_event_lands_in_the_dlq_with_its_reason_and_is_counted() -> None:
    settings = settings_for("bustest", bus_principal="media")
    await ensure_topics(settings)
    bus = bus_for(settings)
    seen: list[str] = []

    @consumer(bus, tp.MEDIA_STORED, group=f"dlq-{uuid.uuid4().hex[:6]}")
    async def record_media(event: ev.MediaStoredEvent) -> None:
        seen.append(event.payload.media_id)

    invalid = {
        "service": "bustest",
        "topic": "media.stored",
        "reason": "invalid",
        "county": "unknown",  # a service wrote it: only a county system's signature names a county
    }
    before = metric("citydesk_dlq_messages_total", **invalid)
    marker = uuid.uuid4().hex
    bad = json.dumps({"type": "media.stored", "county": "xs", "marker": marker}).encode()
    await bus.start()
    await produce("media.stored", bad, key=b"bad")
    await produce("media.stored", b"\xff\xfe not json", key=b"worse")
    good = media_event(f"after-{marker}")
    await bus.publish(tp.MEDIA_STORED, good)
    # a fresh group reads the topic from its start, past every record earlier tests wrote
    await eventually(lambda: good.payload.media_id in seen, what="the next good event", timeout=90)
    await bus.stop()

    records = await read_topic(
        "media.stored.dlq", until=lambda rs: any(r.value == bad for r in rs), timeout=60
    )
    dead = next(r for r in records if r.value == bad)
    assert "payload: Field required" in (header(dead, "dlq-reason") or "")
    assert header(dead, "dlq-source-topic") == "media.stored"
    assert header(dead, "dlq-reason-kind") == "invalid"
    after = metric("citydesk_dlq_messages_total", **invalid)
    assert after >= before + 1


async def test_the_outbox_publishes_each_event_exactly_once_across_a_relay_crash() -> None:
    settings = settings_for("outboxtest", mongo_database=f"outbox_{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings)
    client = make_client(settings)
    db = client[settings.database_name]
    prefix = uuid.uuid4().hex[:6]
    events = [media_event(f"{prefix}-{i}") for i in range(30)]
    for event in events:

        async def change(session: Any, event: ev.MediaStoredEvent = event) -> None:
            await db.media.insert_one({"_id": event.payload.media_id}, session=session)
            await add_to_outbox(db, tp.MEDIA_STORED, event, session=session)

        await in_transaction(client, change)

    producer = SignedProducer(settings)
    await producer.start()
    published = 0

    class Crash(Exception):
        pass

    async def crashing_publish(
        topic: str, key: bytes, value: bytes, headers: dict[str, str]
    ) -> None:
        nonlocal published
        await producer.send_and_wait(topic, value, key=key)
        published += 1
        if published == 12:  # published but never marked sent: the crash window
            raise Crash

    first = OutboxRelay(db, crashing_publish, service="outboxtest")
    with pytest.raises(Crash):
        await first.publish_pending()
    assert await db.outbox.count_documents({"sent_at": None}) == 19

    async def plain_publish(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> None:
        await producer.send_and_wait(topic, value, key=key)

    second = OutboxRelay(db, plain_publish, service="outboxtest", lease_seconds=0.01)
    # the crashed relay's lease (0.01 s) runs out: the second relay then takes the rest
    await eventually(second.publish_pending, what="the rest published")
    assert await db.outbox.count_documents({"sent_at": None}) == 0
    await producer.stop()

    wanted = {str(e.event_id) for e in events}

    def ours(records: list[Any]) -> list[str]:
        ids = []
        for record in records:
            try:
                ids.append(json.loads(record.value).get("event_id"))
            except ValueError:
                continue  # the dead-letter test's garbage shares this topic
        return [i for i in ids if i in wanted]

    records = await read_topic("media.stored", until=lambda rs: set(ours(rs)) == wanted)
    ids = ours(records)
    assert len(ids) == 31  # one event went out twice, in the crash window
    assert set(ids) == wanted

    # consumers apply by event id: the duplicate changes nothing
    applied = 0
    for record in records:
        try:
            event = ev.MediaStoredEvent.model_validate_json(record.value)
        except ValueError:
            continue
        if str(event.event_id) not in wanted:
            continue

        async def effect(session: Any, event: ev.MediaStoredEvent = event) -> None:
            await db.applied.insert_one({"media": event.payload.media_id}, session=session)

        applied += await apply_once(
            client, db, consumer="outbox-reader", event_id=str(event.event_id), effect=effect
        )
    assert applied == 30
    assert await db.applied.count_documents({}) == 30
    await client.drop_database(settings.database_name)
    await client.close()


async def test_objects_round_trip_and_presigned_links_work_and_expire() -> None:
    from datetime import timedelta

    settings = settings_for("s3test")
    minio = make_minio(settings)
    bucket = f"test-{uuid.uuid4().hex[:8]}"
    await ensure_buckets(minio, bucket)
    data = uuid.uuid4().bytes * 4096
    await asyncio.to_thread(minio.put_object, bucket, "a/b.bin", io.BytesIO(data), len(data))
    response = await asyncio.to_thread(minio.get_object, bucket, "a/b.bin")
    try:
        assert response.read() == data
    finally:
        response.close()
        response.release_conn()
    url = minio.presigned_get_object(bucket, "a/b.bin", expires=timedelta(seconds=60))
    with urllib.request.urlopen(url) as fetched:
        assert fetched.read() == data
    tampered = url.replace("a/b.bin", "a/c.bin")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered)
    assert refused.value.code == 403


@pytest.mark.slow
async def test_messages_and_committed_offsets_survive_a_broker_restart(
    durable_stack: Stack,
) -> None:
    bootstrap = durable_stack.config.kafka_bootstrap
    # a topic of its own: the fault test's county feeds share the durable broker
    topic = f"durability.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    partition = TopicPartition(topic, 0)

    async def send(numbers: range) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        for i in numbers:
            await producer.send_and_wait(topic, f"m{i}".encode(), partition=0)
        await producer.stop()

    async def read(group: str, limit: int) -> list[tuple[int, bytes]]:
        reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=False,
        )  # fmt: skip
        await reader.start()
        reader.subscribe([topic])
        records: list[tuple[int, bytes]] = []
        try:
            for _ in range(40):
                batch = await reader.getmany(
                    partition, timeout_ms=500, max_records=limit - len(records)
                )
                records += [(r.offset, r.value) for r in batch.get(partition, [])]
                if len(records) >= limit:
                    break
            if records:
                await reader.commit({partition: await reader.position(partition)})
        finally:
            await reader.stop()
        return records

    def values(records: list[tuple[int, bytes]]) -> list[bytes]:
        return [value for _, value in records]

    await send(range(10))
    first = await read("durable", 4)
    assert values(first) == [f"m{i}".encode() for i in range(4)]
    durable_stack.restart("kafka", sig=signal.SIGKILL)
    await send(range(10, 15))  # written after the restart: appended, never over old records
    rest = await read("durable", 11)
    assert values(rest) == [f"m{i}".encode() for i in range(4, 15)]
    assert rest[0][0] == first[-1][0] + 1  # the group goes on exactly where it committed
    everything = await read("fresh-reader", 15)
    assert values(everything) == [f"m{i}".encode() for i in range(15)]
    offsets = [offset for offset, _ in everything]
    assert offsets == sorted(set(offsets))
    assert offsets == list(range(offsets[0], offsets[0] + 15))


async def test_a_dead_lettered_event_is_applied_after_replay_once_the_cause_is_fixed() -> None:
    from citydesk.dlq import replay_dlq

    settings = settings_for(
        "replaytest", kafka_handler_retries=1, kafka_retry_backoff_seconds=0, bus_principal="review"
    )
    await ensure_topics(settings)
    bus = bus_for(settings)
    marker = uuid.uuid4().hex
    applied: list[str] = []
    cause = {"fixed": False}

    after: list[str] = []

    @consumer(bus, tp.STORY_REVIEWED, group=f"replay-{marker[:6]}")
    async def record_review(event: ev.StoryReviewedEvent) -> None:
        if event.payload.story_id == f"{marker}-after":
            after.append(event.payload.story_id)
            return
        if event.payload.story_id != marker:
            return
        if not cause["fixed"]:
            raise RuntimeError("the review projection is unavailable")
        applied.append(event.payload.story_id)

    event = ev.StoryReviewedEvent.build(
        ev.StoryReviewed(
            story_id=marker, version=1, case_id="c", unit_path=ev.UnitPath(city="jc", unit="jc"),
            level=ev.ReviewLevel.CITY, decision=ev.Decision.APPROVED, final=True,
            reviewer="r", reviewer_unit="jc", decided_at=ev.utcnow(),
        ),
        producer="tests",
    )  # fmt: skip
    await bus.start()
    await bus.publish(tp.STORY_REVIEWED, event)
    records = await read_topic(
        "story.reviewed.dlq", until=lambda rs: any(marker.encode() in r.value for r in rs)
    )
    dead = next(r for r in records if marker.encode() in r.value)
    assert "failed 2 times" in (header(dead, "dlq-reason") or "")
    assert applied == []

    cause["fixed"] = True
    moved = await replay_dlq(settings, "story.reviewed")
    assert moved >= 1
    await eventually(lambda: applied == [marker], what="the replayed event applied")
    # a second replay moves only what was dead-lettered since (other tests' refusals), never
    # the marker again
    await replay_dlq(settings, "story.reviewed")
    # a record with the marker's key lands after anything replayed on its partition
    later = event.model_copy(
        update={"event_id": uuid.uuid4(), "payload": event.payload.model_copy(
            update={"story_id": f"{marker}-after"})},
    )  # fmt: skip
    value = later.model_dump_json().encode()
    await bus.writer.send(
        tp.STORY_REVIEWED.name, tp.STORY_REVIEWED.key(event), value, event_headers(later)
    )
    await eventually(lambda: after, what="the record after the second replay")
    assert applied == [marker]
    await bus.stop()


async def test_a_batch_consumer_applies_in_bulk_and_dead_letters_only_the_event_at_fault() -> None:
    from shared.kafka import batch_consumer

    settings = settings_for("batchtest", kafka_handler_retries=1, kafka_retry_backoff_seconds=0)
    await ensure_topics(settings)
    bus = bus_for(settings)
    marker = uuid.uuid4().hex[:8]
    batches: list[int] = []
    applied: list[str] = []
    poison = f"{marker}-13"

    @batch_consumer(bus, tp.MEDIA_STORED, group=f"batch-{marker}")
    async def record_media(events: list[ev.MediaStoredEvent]) -> None:
        ours = [e for e in events if e.payload.media_id.startswith(marker)]
        if any(e.payload.media_id == poison for e in ours):
            raise ValueError("this photo's metadata cannot be stored")
        batches.append(len(ours))
        applied.extend(e.payload.media_id for e in ours)

    async def send(numbers: range) -> None:
        producer = SignedProducer(settings, linger_ms=20)
        await producer.start()
        for i in numbers:
            event = media_event(f"{marker}-{i}")
            await producer.send(
                "media.stored", event.model_dump_json().encode(), key=tp.MEDIA_STORED.key(event)
            )
        await producer.send_and_wait("media.stored", b'{"broken": true}', key=marker.encode())
        await producer.stop()

    await send(range(0, 10))
    await bus.start()
    await eventually(lambda: len(set(applied)) == 10, what="the first ten applied")
    assert max(batches) > 1  # bulk, not one by one
    await send(range(10, 60))
    await eventually(lambda: len(set(applied)) == 59, what="59 of 60 applied")
    await bus.stop()
    assert poison not in applied
    records = await read_topic(
        "media.stored.dlq", until=lambda rs: any(poison.encode() in r.value for r in rs)
    )
    dead = next(r for r in records if poison.encode() in r.value)
    assert "cannot be stored" in (header(dead, "dlq-reason") or "")


@pytest.mark.slow
async def test_an_outage_of_mongodb_is_waited_out_not_dead_lettered(durable_stack: Stack) -> None:
    config = durable_stack.config
    settings = Settings(
        service_name="outagetest", kafka_bootstrap=config.kafka_bootstrap,
        mongo_uri=config.mongo_uri, kafka_retry_backoff_seconds=0, kafka_handler_retries=1,
        bus_keys_dir=str(config.bus_keys_dir.resolve()), bus_principal="media",
    )  # fmt: skip
    await ensure_topics(settings)
    client = make_client(settings)
    db = client["outage"]
    bus = make_bus(settings, db)

    @consumer(bus, tp.MEDIA_STORED, group="outage")
    async def record_media(event: ev.MediaStoredEvent) -> None:
        async def effect(session: Any) -> None:
            await db.media.insert_one({"_id": event.payload.media_id}, session=session)

        await apply_once(client, db, consumer="outage", event_id=str(event.event_id), effect=effect)

    await bus.start()
    failed = {"service": "outagetest", "topic": "media.stored", "handler": "record_media"}
    before = metric("citydesk_events_failed_total", **failed)
    durable_stack.stop("mongo")
    for i in range(5):
        await bus.publish(tp.MEDIA_STORED, media_event(f"outage-{i}"))
    # failing more often than kafka_handler_retries allows, yet waited out, not dead-lettered
    await eventually(
        lambda: metric("citydesk_events_failed_total", **failed) >= before + 2,
        what="the handler failing while MongoDB is down", timeout=60,
    )  # fmt: skip
    durable_stack.start_mongo()
    await eventually(
        lambda: db.media.count_documents({}), what="effects after the outage", timeout=60
    )
    await eventually(lambda: _count_all(db, 5), what="all five applied", timeout=60)
    await bus.stop()
    dlq = await read_topic("media.stored.dlq", until=lambda rs: True, timeout=3, settings=settings)
    assert not any(b"outage-" in r.value for r in dlq)
    await client.close()


async def _count_all(db: Any, n: int) -> bool:
    return await db.media.count_documents({}) == n
