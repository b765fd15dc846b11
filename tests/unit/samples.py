"""One sample event of every topic, for the tests of the contracts and of the handler
wiring: each optional part of a payload filled in once, so a round trip covers it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

from pydantic import BaseModel

from shared import events as ev
from shared import topics as tp

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
SCHOOL = ev.UnitPath(city="jc", county="dh", unit="dh-syxx")


def _fresh(prefix: str) -> str:
    """A new id, where a test sends several events of one topic."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


PAYLOADS: dict[str, Callable[[], BaseModel]] = {
    tp.STORY_SUBMITTED.name: lambda: ev.StorySubmitted(
        story_id=_fresh("s"), version=2, unit_path=SCHOOL, title="开学第一课",
        body="正文" * 60, category="工作动态", event_date=date(2026, 9, 1), submitted_at=NOW,
        media_ids=["m-1"], photo_count=1, author="u1", late=True, late_days=12,
        possible_copy=ev.PossibleCopy(story_id="s-0", unit="xs-syxx", similarity=0.93),
    ),
    tp.STORY_REVIEWED.name: lambda: ev.StoryReviewed(
        story_id="s-1", version=2, case_id="c-1", unit_path=SCHOOL, level=ev.ReviewLevel.COUNTY,
        decision=ev.Decision.RETURNED, final=False, reviewer="r1", reviewer_unit="dh",
        comment="请补充时间地点", decided_at=NOW,
    ),
    tp.STORY_PUBLISHED.name: lambda: ev.StoryPublished(
        story_id="s-1", version=2, unit_path=SCHOOL, kind=ev.PublicationKind.ADOPTION,
        outlet="中国教育报", outlet_level=ev.OutletLevel.NATIONAL,
        placement=ev.Placement.HEADLINE, published_at=NOW,
    ),
    tp.OPINION_FLAGGED.name: lambda: ev.OpinionFlagged(
        kind=ev.FlagKind.ALERT, incident_id="i-1", alert_id="a-1", county="dh",
        school="dh-syxx", owner_level="school", severity=ev.Severity.YELLOW, score=0.91,
        topic="food", explanation=["食物中毒"], item_count=12, flagged_at=NOW,
    ),
    tp.MEDIA_STORED.name: lambda: ev.MediaStored(
        media_id="m-1", unit_path=SCHOOL, kind=ev.MediaKind.PHOTO, content_type="image/jpeg",
        size=1024, sha256="ab" * 32, uploader="u1", stored_at=NOW, width=640, height=480,
    ),
    tp.INTAKE_STORIES.name: lambda: ev.IntakeStory(
        external_id=_fresh("dh-portal"), unit="dh-syxx", title="校园足球联赛开幕",
        body="正文" * 40, category="工作动态", event_date=date(2026, 11, 20), author="dh-sys",
    ),
    tp.INTAKE_OPINIONS.name: lambda: ev.IntakeOpinion(
        item_id=_fresh("post"), source="百姓呼声", school="dh-syxx", text="食堂饭菜有异味",
        published_at=NOW,
    ),
}  # fmt: skip


def event_of(topic: tp.Topic) -> ev.Envelope:
    """A fresh event of ``topic`` about county dh: a service's names the school, a county
    system's (intake) only the county it speaks for."""
    intake = topic.writers[0] == tp.COUNTY_SYSTEMS
    return topic.model.build(
        PAYLOADS[topic.name](),
        producer="dh-portal" if intake else topic.writers[0],
        county="dh",
        unit=None if intake else "dh-syxx",
    )
