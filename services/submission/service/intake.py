"""County intake: a story a county system published on ``intake.stories`` becomes a
submitted version, once per (county, external id) and text."""

from __future__ import annotations

from typing import Literal

from prometheus_client import Counter

from services.submission.models import StoryContent
from services.submission.service.stories import (
    STORIES,
    InvalidStory,
    check_content,
    content_hash,
    new_story,
    require_editable,
)
from services.submission.service.submitting import submit_version
from shared import events as ev
from shared.clock import utcnow
from shared.runtime import ServiceRuntime

IntakeOutcome = Literal["created", "new_version", "duplicate"]

INTAKE = Counter(
    "citydesk_submission_intake_total",
    "County intake events applied, by county and outcome (created, new_version, duplicate).",
    ["county", "outcome"],
)


async def take_in_county_story(
    *, runtime: ServiceRuntime, event: ev.IntakeStoryEvent
) -> IntakeOutcome:
    """Apply a story a county system published. A resend with the text of any earlier
    version changes nothing; a changed resend becomes a new version while the story is a
    draft or returned for revision, and is refused once it is in review or beyond."""
    intake = event.payload
    unit = runtime.org.get(intake.unit)
    if unit is None:
        raise InvalidStory(f"没有编码为{intake.unit}的单位", f"unknown unit {intake.unit!r}")
    if unit.county != event.county:
        raise InvalidStory(
            f"{unit.name}不属于报送的县区",
            f"unit {intake.unit!r} does not belong to the producing county {event.county!r}",
        )
    content = StoryContent(
        title=intake.title, body=intake.body, category=intake.category,
        event_date=intake.event_date, campaign=intake.campaign, major=intake.major,
    )  # fmt: skip
    checked = await check_content(runtime=runtime, content=content, unit=intake.unit)
    existing = await runtime.db[STORIES].find_one(
        {"intake_key": f"{event.county}:{intake.external_id}"}
    )
    if existing is not None:
        if content_hash(checked.content) in existing["content_hashes"]:
            outcome: IntakeOutcome = "duplicate"
            INTAKE.labels(event.county, outcome).inc()
            return outcome
        require_editable(existing)
        story, outcome, is_new = existing, "new_version", False
    else:
        story = new_story(
            runtime=runtime, unit=intake.unit, author=intake.author, author_name=intake.author,
            content=checked.content, now=utcnow(), source="intake",
            county=event.county, external_id=intake.external_id,
        )  # fmt: skip
        outcome, is_new = "created", True
    await submit_version(
        runtime=runtime, story=story, checked=checked, actor=intake.author, source="intake",
        correlation_id=event.correlation_id, is_new=is_new,
    )  # fmt: skip
    INTAKE.labels(event.county, outcome).inc()
    return outcome
