"""The bus as a front door, over the real local stack: no record stops a consumer, each bad
record is dead-lettered once with its reason, nobody writes as someone else, and a county
reads what became of its own records."""

from __future__ import annotations

import ast
import asyncio
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from prometheus_client import REGISTRY

from citydesk.producer import SignedProducer
from services.submission.service import STORIES
from shared import events as ev
from shared import topics as tp
from shared.bus_auth import local_signer
from shared.kafka import Bus, batch_consumer, consumer, ensure_topics, make_bus
from shared.mongo import make_client
from shared.settings import Settings
from tests.submission.conftest import chinese_text, read_all, today
from tests.support import auth, eventually, header, run_service, settings_for

pytestmark = pytest.mark.usefixtures("stack_env")

PARTITION = 0
EXAMPLE_PRODUCER = Path(__file__).resolve().parent.parent / "docs/examples/county_producer.py"


def story_intake(county: str, unit: str, external_id: str | None = None) -> ev.IntakeStoryEvent:
    return ev.IntakeStoryEvent.build(
        ev.IntakeStory(
            external_id=external_id or f"ext-{uuid.uuid4().hex[:10]}", unit=unit,
            title="县区系统报送" + chinese_text(6), body=chinese_text(150), category="教育教学",
            event_date=today() - timedelta(days=1), author="县融媒体中心",
        ),
        producer=f"{county}-portal", county=county,
    )  # fmt: skip


def opinion_intake(county: str, school: str) -> ev.IntakeOpinionEvent:
    return ev.IntakeOpinionEvent.build(
        ev.IntakeOpinion(
            item_id=f"item-{uuid.uuid4().hex[:10]}", source="百姓呼声", school=school,
            text="学校门口的路灯坏了很久，晚自习放学很黑", published_at=ev.utcnow(),
        ),
        producer=f"{county}-monitor", county=county, unit=school,
    )  # fmt: skip


def redeliveries(service: str, topic: str) -> float:
    labels = {"service": service, "topic": topic}
    return REGISTRY.get_sample_value("citydesk_event_redeliveries_total", labels) or 0.0


async def send_raw(
    settings: Settings,
    topic: str,
    records: list[tuple[bytes | None, list[tuple[str, bytes]]]],
    *,
    key: bytes,
) -> list[int]:
    """Write records exactly as given (value, raw headers) to one partition; returns their
    offsets. Large enough requests for a 3 MB record, as another client might send."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        offsets = []
        for value, headers in records:
            meta = await producer.send_and_wait(
                topic, value, key=key, partition=PARTITION, headers=headers
            )
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


def signed(settings: Settings, principal: str, topic: str, key: bytes, value: bytes) -> list[Any]:
    assert settings.bus_keys_dir
    headers = local_signer(settings.bus_keys_dir, principal).headers(topic, key, value)
    return [(k, v.encode()) for k, v in headers.items()]


def poison_records(
    settings: Settings, topic: str, county: str, valid_other_county: bytes, valid: bytes
) -> dict[str, tuple[bytes | None, list[tuple[str, bytes]], str]]:
    """Every kind of record an outside client can put on a topic, with the dead-letter
    reason kind each must get."""
    key = county.encode()
    me = f"county-{county}"

    def sign(value: bytes, principal: str = me) -> list[Any]:
        return signed(settings, principal, topic, key, value)

    not_json = b"\xff{ this is not json"
    huge = b'{"type": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    wrong_envelope = b'{"type": "intake.story", "version": 1, "payload": {}}'
    return {
        "not JSON, says JSON": (
            not_json, [("content-type", b"application/json"), *sign(not_json)], "invalid",
        ),
        "invalid UTF-8 header": (
            wrong_envelope, [("content-type", b"\xff\xfe\xfd"), *sign(wrong_envelope)], "invalid",
        ),
        "null value": (None, [("content-type", b"application/json"), *sign(b"")], "invalid"),
        "empty value": (b"", sign(b""), "invalid"),
        "3 MB": (huge, sign(huge), "invalid"),
        "wrong envelope, no content-type": (wrong_envelope, sign(wrong_envelope), "invalid"),
        "unsigned": (valid, [("content-type", b"application/json")], "unauthorised"),
        "signed by a service": (valid, sign(valid, "review"), "unauthorised"),
        "another county's event": (valid_other_county, sign(valid_other_county), "unauthorised"),
    }  # fmt: skip


async def dead_letters_of(service: str, topic: str, offsets: set[int]) -> list[Any]:
    def ours(records: list[Any]) -> list[Any]:
        return [
            r for r in records
            if header(r, "dlq-service") == service
            and header(r, "dlq-source-partition") == str(PARTITION)
            and int(header(r, "dlq-source-offset") or -1) in offsets
        ]  # fmt: skip

    records = await read_all(f"{topic}.dlq", until=lambda rs: set(_offsets(ours(rs))) == offsets)
    return ours(records)


def _offsets(records: list[Any]) -> list[int]:
    return [int(header(r, "dlq-source-offset") or -1) for r in records]


async def rewind_group(settings: Settings, group_id: str, topic: str, offset: int) -> None:
    """What a consumer killed before its commit leaves behind: the group's committed
    offset before records it had already dead-lettered. (The rewinder joins the group as
    a member: the broker refuses commits from outside it.)"""
    rewinder = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, group_id=group_id,
        enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=2000,
    )  # fmt: skip
    await rewinder.start()
    try:
        partition = TopicPartition(topic, PARTITION)
        await eventually(lambda: partition in rewinder.assignment(), timeout=30, what="joined")
        await rewinder.commit({partition: offset})
    finally:
        await rewinder.stop()


async def run_poison_case(*, batch: bool) -> None:
    service = f"poison{'batch' if batch else 'single'}"
    topic = tp.INTAKE_OPINIONS if batch else tp.INTAKE_STORIES
    settings = settings_for(service, mongo_database=f"{service}_{uuid.uuid4().hex[:6]}")
    await ensure_topics(settings)
    group = f"{service}-{uuid.uuid4().hex[:6]}"
    applied: list[str] = []

    def build() -> Bus:
        bus = make_bus(settings, make_client(settings)[settings.database_name])
        register = (
            batch_consumer(bus, topic, group=group) if batch else consumer(bus, topic, group=group)
        )

        async def apply(event_or_events: Any) -> None:
            events = event_or_events if batch else [event_or_events]
            applied.extend(str(e.event_id) for e in events)

        register(apply)
        return bus

    if batch:
        good, other = opinion_intake("xs", "xs-dyxx"), opinion_intake("dh", "dh-dyxx")
    else:
        good, other = story_intake("xs", "xs-dyxx"), story_intake("dh", "dh-dyxx")
    good_bytes = good.model_dump_json().encode()
    poisons = poison_records(
        settings, topic.name, "xs", other.model_dump_json().encode(), good_bytes
    )
    records = [(value, headers) for value, headers, _ in poisons.values()]
    records.append((good_bytes, signed(settings, "county-xs", topic.name, b"xs", good_bytes)))
    offsets = await send_raw(settings, topic.name, records, key=b"xs")
    poison_offsets = dict(zip(poisons, offsets, strict=False))

    before = redeliveries(service, topic.name)
    bus = build()
    await bus.start()
    try:
        await eventually(
            lambda: str(good.event_id) in applied, timeout=30, what="the valid record behind"
        )
    finally:
        await bus.stop()
    assert redeliveries(service, topic.name) == before  # nothing was read twice: no stall

    dead = await dead_letters_of(service, topic.name, set(poison_offsets.values()))
    assert Counter(_offsets(dead)) == Counter(poison_offsets.values())  # each exactly once
    by_offset = {int(header(r, "dlq-source-offset") or -1): r for r in dead}
    for name, (_, _, kind) in poisons.items():
        record = by_offset[poison_offsets[name]]
        assert header(record, "dlq-reason-kind") == kind, name
        assert header(record, "dlq-reason"), name
    huge = by_offset[poison_offsets["3 MB"]]
    assert header(huge, "dlq-bounded") == "true" and len(huge.value) < 4096
    assert b'"size": 3145740' in huge.value and b'"sha256"' in huge.value
    other_reason = header(by_offset[poison_offsets["another county's event"]], "dlq-reason")
    assert "may only write events of county 'xs'" in (other_reason or "")

    # killed before committing: the group reads everything again, and dead-letters nothing twice
    group_id = f"{settings.mongo_database_prefix}.{group}.{topic.name}"
    await rewind_group(settings, group_id, topic.name, offsets[0])
    applied.clear()
    bus = build()
    await bus.start()
    try:
        await eventually(lambda: str(good.event_id) in applied, timeout=30, what="re-read")
    finally:
        await bus.stop()
    again = await dead_letters_of(service, topic.name, set(poison_offsets.values()))
    assert Counter(_offsets(again)) == Counter(poison_offsets.values())


async def test_no_record_stops_a_consumer_and_each_is_dead_lettered_once() -> None:
    await run_poison_case(batch=False)


async def test_no_record_stops_a_batch_consumer_and_each_is_dead_lettered_once() -> None:
    await run_poison_case(batch=True)


async def test_a_forged_review_decision_changes_nothing_anywhere() -> None:
    from services.scoring.service import LEDGER

    async with (
        run_service("submission") as submission,
        run_service("scoring") as scoring,
    ):
        event = story_intake("xs", "xs-dyxx")
        producer = SignedProducer(settings_for("tests"))
        await producer.start()
        try:
            await producer.send_and_wait(
                tp.INTAKE_STORIES.name, event.model_dump_json().encode(), key=b"xs"
            )
            key = f"xs:{event.payload.external_id}"
            story = await eventually(
                lambda: submission.runtime.db[STORIES].find_one({"intake_key": key}),
                timeout=30, what="the county story",
            )  # fmt: skip
            forged = ev.StoryReviewedEvent.build(
                ev.StoryReviewed(
                    story_id=story["_id"], version=1, case_id="forged",
                    unit_path=ev.UnitPath(city="jc", county="xs", unit="xs-dyxx"),
                    level=ev.ReviewLevel.CITY, decision=ev.Decision.APPROVED, final=True,
                    reviewer="someone", reviewer_unit="jc", decided_at=ev.utcnow(),
                ),
                producer="review", county="xs", unit="xs-dyxx",
            )  # fmt: skip
            value = forged.model_dump_json().encode()
            for principal in ("submission", "county-xs", None):
                writer = SignedProducer(settings_for("tests"), principal)
                await writer.start()
                try:
                    await writer.send_and_wait(
                        tp.STORY_REVIEWED.name, value, key=story["_id"].encode()
                    )
                finally:
                    await writer.stop()
        finally:
            await producer.stop()

        def refused_by(service: str) -> Any:
            async def check() -> bool:
                rows = await service.runtime.db.dead_letters.count_documents(
                    {"topic": "story.reviewed", "event_id": str(forged.event_id)}
                )
                return rows == 3

            return check

        await eventually(refused_by(submission), timeout=30, what="submission refuses all three")
        await eventually(refused_by(scoring), timeout=30, what="scoring refuses all three")
        after = await submission.runtime.db[STORIES].find_one({"_id": story["_id"]})
        assert after["status"] == "submitted" and not after.get("review_level") == "city"
        approvals = await scoring.runtime.db[LEDGER].count_documents(
            {"story_id": story["_id"], "kind": {"$ne": "submitted"}}
        )
        assert approvals == 0


async def test_a_county_reads_its_own_rejections_and_no_one_elses() -> None:
    async with run_service("submission") as submission:
        accepted = story_intake("xs", "xs-dyxx")
        posing = story_intake("dh", "dh-dyxx", external_id=f"pose-{uuid.uuid4().hex[:8]}")
        producer = SignedProducer(settings_for("tests"), "county-xs")
        await producer.start()
        try:
            for event in (accepted, posing):  # xs's credentials, the second as county dh
                await producer.send_and_wait(
                    tp.INTAKE_STORIES.name, event.model_dump_json().encode(), key=b"xs"
                )
        finally:
            await producer.stop()
        client = submission.client
        xs = auth("xs", "reviewer_county")

        async def status_of(event: ev.IntakeStoryEvent, county: str) -> Any:
            response = await client.get(
                f"/intake/{county}/stories/{event.payload.external_id}", headers=xs
            )
            return response.json() if response.status_code == 200 else None

        answer = await eventually(lambda: status_of(accepted, "xs"), timeout=30, what="accepted")
        assert answer["status"] == "accepted" and answer["story_id"]
        # the story was not filed for dh, and the refusal is xs's own to read
        refused = await eventually(lambda: status_of(posing, "xs"), timeout=30, what="refused")
        assert refused["status"] == "refused"
        assert refused["rejection"]["kind"] == "unauthorised"
        assert "county 'xs'" in refused["rejection"]["reason"]
        assert refused["message"]  # Chinese, for the integrator's staff
        assert (
            await submission.runtime.db[STORIES].find_one(
                {"intake_key": f"dh:{posing.payload.external_id}"}
            )
            is None
        )

        dh = auth("dh", "reviewer_county")
        response = await client.get(f"/intake/dh/stories/{posing.payload.external_id}", headers=dh)
        assert response.status_code == 404 and response.json()["code"] == "intake_unknown"
        response = await client.get("/intake/xs/rejections", headers=dh)
        assert response.status_code == 403
        assert response.json()["code"] == "outside_scope" and response.json()["message"]
        school = auth("xs-dyxx", "correspondent")
        response = await client.get("/intake/xs/rejections", headers=school)
        assert response.status_code == 403
        page = (await client.get("/intake/xs/rejections", headers=xs)).json()
        assert any(item["external_ref"] == posing.payload.external_id for item in page["items"])


async def test_the_integrators_example_producer_files_a_story_without_our_code() -> None:
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(EXAMPLE_PRODUCER.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not imported & {"shared", "services", "citydesk", "tests"}
    settings = settings_for("tests")
    external_id = f"example-{uuid.uuid4().hex[:8]}"
    async with run_service("submission") as submission:
        example = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLE_PRODUCER), "--bootstrap", settings.kafka_bootstrap,
            "--county", "xs", "--key-file", f"{settings.bus_keys_dir}/county-xs.key",
            "--unit", "xs-dyxx", "--external-id", external_id, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(example.communicate(), timeout=60)
        assert example.returncode == 0 and b'"offset"' in output

        async def accepted() -> Any:
            response = await submission.client.get(
                f"/intake/xs/stories/{external_id}", headers=auth("xs", "reviewer_county")
            )
            return response.status_code == 200 and response.json()["status"] == "accepted"

        await eventually(accepted, timeout=30, what="the example's story accepted")
