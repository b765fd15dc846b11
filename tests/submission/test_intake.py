"""County systems publish stories on ``intake.stories``: each becomes a submitted story
once, however often it is resent; what cannot apply lands in the dead-letter topic with
its reason."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.submission.service import STORIES
from shared import events as ev
from tests.submission.conftest import (
    chinese_text,
    metric,
    publish,
    read_all,
    submitted_events,
    today,
)
from tests.support import RunningService, eventually, header, produce

pytestmark = pytest.mark.usefixtures("stack_env")


def intake(county: str, unit: str, **fields: Any) -> ev.IntakeStoryEvent:
    story = {
        "external_id": f"ext-{uuid.uuid4().hex[:10]}",
        "unit": unit,
        "title": "县区系统报送" + chinese_text(6),
        "body": chinese_text(150),
        "category": "教育教学",
        "event_date": today() - timedelta(days=2),
        "author": "县融媒体中心",
    }
    story.update(fields)
    return ev.IntakeStoryEvent.build(
        ev.IntakeStory(**story), producer=f"{county}-portal", county=county
    )


async def intake_story(service: RunningService, event: ev.IntakeStoryEvent) -> dict[str, Any]:
    key = f"{event.county}:{event.payload.external_id}"
    return await eventually(
        lambda: service.runtime.db[STORIES].find_one({"intake_key": key}),
        timeout=30, what=f"intake story {key}",
    )  # fmt: skip


async def dead_letter_of(raw: bytes) -> Any:
    records = await read_all("intake.stories.dlq", until=lambda rs: any(r.value == raw for r in rs))
    return next(r for r in records if r.value == raw)


async def test_a_county_story_becomes_a_submitted_story(submission: RunningService) -> None:
    before = metric("citydesk_submission_stories_submitted_total", county="dh", source="intake")
    event = intake("dh", "dh-dyxx", campaign="强国有我", major=True)
    await publish("intake.stories", event)

    story = await intake_story(submission, event)

    assert story["source"] == "intake" and story["status"] == "submitted"
    assert story["unit"] == "dh-dyxx" and story["version"] == 1
    [announced] = await submitted_events(story["_id"])
    payload = announced["payload"]
    assert payload["source"] == "intake"
    assert payload["external_id"] == event.payload.external_id
    assert payload["author"] == "县融媒体中心"
    assert payload["unit_path"] == {"city": "jc", "county": "dh", "unit": "dh-dyxx"}
    assert payload["campaign"] == "强国有我" and payload["major"] is True
    assert announced["correlation_id"] == event.correlation_id
    after = metric("citydesk_submission_stories_submitted_total", county="dh", source="intake")
    assert after == before + 1


async def test_a_resent_county_story_creates_no_duplicate(submission: RunningService) -> None:
    event = intake("dh", "dh-dyxx")
    await publish("intake.stories", event)
    story = await intake_story(submission, event)
    resend = ev.IntakeStoryEvent.build(event.payload, producer="dh-portal", county="dh")
    await publish("intake.stories", resend)  # a new envelope, the same story
    await publish("intake.stories", event)  # the very same message again
    marker = intake("dh", "dh-dyxx")
    await publish("intake.stories", marker)  # county feeds are read in order
    await intake_story(submission, marker)

    key = f"dh:{event.payload.external_id}"
    assert await submission.runtime.db[STORIES].count_documents({"intake_key": key}) == 1
    again = await submission.runtime.db[STORIES].find_one({"_id": story["_id"]})
    assert again["version"] == 1
    assert metric("citydesk_submission_intake_total", county="dh", outcome="duplicate") >= 2


async def test_a_changed_resend_of_a_returned_story_becomes_its_next_version(
    submission: RunningService,
) -> None:
    event = intake("dh", "dh-dyxx")
    await publish("intake.stories", event)
    story = await intake_story(submission, event)
    in_review_change = intake(
        "dh", "dh-dyxx", external_id=event.payload.external_id, title="改过的标题在审核中"
    )
    await publish("intake.stories", in_review_change)
    refused = await dead_letter_of(in_review_change.model_dump_json().encode())
    assert "is submitted" in (header(refused, "dlq-reason") or "")

    returned = ev.StoryReviewedEvent.build(
        ev.StoryReviewed(
            story_id=story["_id"], version=1, case_id="case-1",
            unit_path=ev.UnitPath(city="jc", county="dh", unit="dh-dyxx"),
            level=ev.ReviewLevel.COUNTY, decision=ev.Decision.RETURNED, final=False,
            reviewer="dh-reviewer", reviewer_unit="dh", comment="补充活动时间",
            decided_at=ev.utcnow(),
        ),
        producer="review", county="dh", unit="dh-dyxx",
    )  # fmt: skip
    await publish("story.reviewed", returned)

    async def is_returned() -> bool:
        found = await submission.runtime.db[STORIES].find_one({"_id": story["_id"]})
        return found["status"] == "returned"

    await eventually(is_returned, what="story returned")
    revised_body = chinese_text(160)
    revision = intake("dh", "dh-dyxx", external_id=event.payload.external_id, body=revised_body)
    await publish("intake.stories", revision)

    async def second_version() -> dict[str, Any] | None:
        found = await submission.runtime.db[STORIES].find_one({"_id": story["_id"]})
        return found if found["version"] == 2 else None

    revised = await eventually(second_version, timeout=30, what="version 2")
    assert revised["status"] == "submitted" and revised["draft"]["body"] == revised_body
    events = await submitted_events(story["_id"], count=2)
    assert events[1]["payload"]["body"] == revised_body


@pytest.mark.parametrize(
    ("county", "unit", "fields", "reason"),
    [
        ("dh", "xs-syxx", {}, "does not belong to the producing county 'dh'"),
        ("dh", "dh-nowhere", {}, "unknown unit 'dh-nowhere'"),
        ("dh", "dh-dyxx", {"category": "娱乐八卦"}, "unknown category '娱乐八卦'"),
        ("dh", "dh-dyxx", {"body": "太短"}, "body has 2 characters"),
    ],
    ids=["unit-of-another-county", "unknown-unit", "unknown-category", "body-too-short"],
)
async def test_a_county_story_that_cannot_apply_is_dead_lettered_with_its_reason(
    submission: RunningService, county: str, unit: str, fields: dict[str, Any], reason: str
) -> None:
    labels = {"service": "submission", "topic": "intake.stories", "reason": "rejected"}
    before = metric("citydesk_dlq_messages_total", **labels, county=county)
    event = intake(county, unit, **fields)
    raw = event.model_dump_json().encode()
    await publish("intake.stories", event)

    dead = await dead_letter_of(raw)

    assert reason in (header(dead, "dlq-reason") or "")
    assert event.payload.external_id in (header(dead, "dlq-reason") or "")
    assert header(dead, "dlq-reason-kind") == "rejected"
    await eventually(
        lambda: metric("citydesk_dlq_messages_total", **labels, county=county) == before + 1,
        what="the dead letter counted for its county",
    )
    stored = await submission.runtime.db[STORIES].find_one(
        {"intake_key": f"{county}:{event.payload.external_id}"}
    )
    assert stored is None


async def test_malformed_county_messages_are_dead_lettered(submission: RunningService) -> None:
    not_json = b"\xff not even json " + uuid.uuid4().hex.encode()
    no_payload = json.dumps(
        {"type": "intake.story", "version": 1, "producer": "xs-portal", "county": "xs",
         "marker": uuid.uuid4().hex}
    ).encode()  # fmt: skip
    labels = {"service": "submission", "topic": "intake.stories", "reason": "invalid"}
    before = metric("citydesk_dlq_messages_total", **labels, county="xs")
    await produce("intake.stories", not_json, key=b"xs")
    await produce("intake.stories", no_payload, key=b"xs")

    assert header(await dead_letter_of(not_json), "dlq-reason-kind") == "invalid"
    dead = await dead_letter_of(no_payload)
    assert "payload: Field required" in (header(dead, "dlq-reason") or "")
    await eventually(  # both were signed by xs's system: xs answers for both
        lambda: metric("citydesk_dlq_messages_total", **labels, county="xs") == before + 2,
        what="the malformed messages counted for their county",
    )
