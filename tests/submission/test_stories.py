"""Correspondents write, submit and revise stories over HTTP; every submitted version is
announced on ``story.submitted`` with its quality flags."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from services.submission.service import MEDIA
from shared import events as ev
from shared.auth import Role
from tests.submission.conftest import (
    chinese_text,
    draft,
    media_stored,
    metric,
    publish,
    submitted_events,
    today,
)
from tests.support import RunningService, auth, eventually

pytestmark = pytest.mark.usefixtures("stack_env")

SCHOOL = "dh-syxx"  # 东湖区实验小学
OTHER_COUNTY_SCHOOL = "xs-syxx"  # 西山区实验小学


def correspondent(unit: str) -> dict[str, str]:
    return auth(unit, Role.CORRESPONDENT, sub=f"corr-{unit}")


async def create_and_submit(
    service: RunningService, unit: str = SCHOOL, **fields: Any
) -> dict[str, Any]:
    created = await service.client.post(
        "/stories", json=draft(**fields), headers=correspondent(unit)
    )
    assert created.status_code == 201, created.text
    submitted = await service.client.post(
        f"/stories/{created.json()['id']}/submit", headers=correspondent(unit)
    )
    assert submitted.status_code == 200, submitted.text
    return submitted.json()


async def stored_media(service: RunningService, unit: str, county: str, kind: ev.MediaKind) -> str:
    """Publish a real ``media.stored`` event and wait until the projection knows it."""
    event = media_stored(unit, county, kind)
    await publish("media.stored", event)
    media_id = event.payload.media_id
    await eventually(
        lambda: service.runtime.db[MEDIA].find_one({"_id": media_id}), what=f"media {media_id}"
    )
    return media_id


async def review(
    story: dict[str, Any], decision: ev.Decision, level: ev.ReviewLevel, *, version: int = 1,
    final: bool = False, comment: str | None = None, next_level: ev.ReviewLevel | None = None,
) -> ev.StoryReviewedEvent:  # fmt: skip
    event = ev.StoryReviewedEvent.build(
        ev.StoryReviewed(
            story_id=story["id"], version=version, case_id=f"case-{uuid.uuid4().hex[:6]}",
            unit_path=ev.UnitPath(**story["unit_path"]), level=level, decision=decision,
            final=final, next_level=next_level, reviewer="reviewer-1", reviewer_unit="dh",
            comment=comment, decided_at=ev.utcnow(),
        ),
        producer="review", county="dh", unit=story["unit"],
    )  # fmt: skip
    await publish("story.reviewed", event)
    return event


async def status_becomes(service: RunningService, story_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        found = await service.client.get(f"/stories/{story_id}", headers=correspondent(SCHOOL))
        return found.json() if found.json()["status"] == status else None

    return await eventually(check, what=f"story {story_id} {status}")


async def test_a_story_submitted_with_photos_and_a_video_is_announced_with_its_media(
    submission: RunningService,
) -> None:
    photos = [await stored_media(submission, SCHOOL, "dh", ev.MediaKind.PHOTO) for _ in range(2)]
    video = await stored_media(submission, SCHOOL, "dh", ev.MediaKind.VIDEO)
    before = metric("citydesk_submission_stories_submitted_total", county="dh", source="api")

    story = await create_and_submit(
        submission, media_ids=[*photos, video], campaign="强国有我", major=True
    )

    assert story["status"] == "submitted"
    assert story["version"] == 1
    assert story["flags"] == {
        "late": False, "late_days": 0, "possible_copy": None, "republication": None
    }  # fmt: skip
    assert story["versions"][0]["photo_count"] == 2
    assert story["versions"][0]["video_count"] == 1
    [event] = await submitted_events(story["id"])
    payload = event["payload"]
    assert event["county"] == "dh" and event["unit"] == SCHOOL
    assert payload["unit_path"] == {"city": "jc", "county": "dh", "unit": SCHOOL}
    assert payload["media_ids"] == [*photos, video]
    assert (payload["photo_count"], payload["video_count"]) == (2, 1)
    assert payload["campaign"] == "强国有我" and payload["major"] is True
    assert payload["category"] == "工作动态"
    assert payload["author"] == f"corr-{SCHOOL}" and payload["source"] == "api"
    assert payload["late"] is False and payload["possible_copy"] is None
    after = metric("citydesk_submission_stories_submitted_total", county="dh", source="api")
    assert after == before + 1


async def test_a_story_about_an_event_weeks_ago_is_flagged_late(
    submission: RunningService,
) -> None:
    before = metric("citydesk_submission_flags_total", flag="late")
    story = await create_and_submit(
        submission, event_date=(today() - timedelta(days=10)).isoformat()
    )

    assert story["flags"]["late"] is True
    assert story["flags"]["late_days"] == 10
    [event] = await submitted_events(story["id"])
    assert event["payload"]["late"] is True and event["payload"]["late_days"] == 10
    assert metric("citydesk_submission_flags_total", flag="late") == before + 1


async def test_a_story_a_week_old_is_not_late_yet(submission: RunningService) -> None:
    story = await create_and_submit(
        submission, event_date=(today() - timedelta(days=7)).isoformat()
    )
    assert story["flags"]["late"] is False


async def test_a_near_copy_of_another_units_story_is_flagged_but_the_original_is_not(
    submission: RunningService,
) -> None:
    body = chinese_text(300)
    original = await create_and_submit(submission, SCHOOL, body=body)
    again = await create_and_submit(submission, SCHOOL, body=body)  # the same unit: no copy
    copied_body = body[:140] + "，本校师生积极参与" + body[140:290]
    copy = await create_and_submit(submission, OTHER_COUNTY_SCHOOL, body=copied_body)

    flag = copy["flags"]["possible_copy"]
    assert flag["story_id"] == original["id"] and flag["unit"] == SCHOOL
    assert 0.8 <= flag["similarity"] < 1
    [event] = await submitted_events(copy["id"])
    announced = ("story_id", "unit", "similarity", "containment", "reason")
    assert event["payload"]["possible_copy"] == {key: flag[key] for key in announced}
    assert original["flags"]["possible_copy"] is None
    assert again["flags"]["possible_copy"] is None

    # the original's own revision is no copy of the later look-alike
    await review(original, ev.Decision.RETURNED, ev.ReviewLevel.SCHOOL, comment="补充图片")
    await status_becomes(submission, original["id"], "returned")
    resubmitted = await submission.client.post(
        f"/stories/{original['id']}/submit", headers=correspondent(SCHOOL)
    )
    assert resubmitted.json()["version"] == 2
    assert resubmitted.json()["flags"]["possible_copy"] is None


async def test_a_returned_story_is_revised_and_resubmitted_as_version_two(
    submission: RunningService,
) -> None:
    story = await create_and_submit(submission)
    first_body = story["draft"]["body"]
    edit_while_submitted = await submission.client.patch(
        f"/stories/{story['id']}", json={"title": "改一改标题吧"}, headers=correspondent(SCHOOL)
    )
    assert edit_while_submitted.status_code == 409

    await review(story, ev.Decision.RETURNED, ev.ReviewLevel.COUNTY, comment="请核实数据")
    returned = await status_becomes(submission, story["id"], "returned")
    assert returned["status_comment"] == "请核实数据"
    assert returned["review_level"] == "county"

    new_body = chinese_text(150)
    revised = await submission.client.patch(
        f"/stories/{story['id']}", json={"body": new_body}, headers=correspondent(SCHOOL)
    )
    assert revised.status_code == 200 and revised.json()["status"] == "returned"
    resubmitted = await submission.client.post(
        f"/stories/{story['id']}/submit", headers=correspondent(SCHOOL)
    )
    assert resubmitted.status_code == 200
    current = resubmitted.json()
    assert current["status"] == "submitted" and current["version"] == 2
    assert [v["version"] for v in current["versions"]] == [1, 2]
    assert current["versions"][1]["body"] == new_body
    first = await submission.client.get(
        f"/stories/{story['id']}/versions/1", headers=correspondent(SCHOOL)
    )
    assert first.json()["body"] == first_body
    actions = [(h["action"], h.get("decision")) for h in current["history"]]
    assert actions == [
        ("created", None),
        ("submitted", None),
        ("reviewed", "returned"),
        ("submitted", None),
    ]
    events = await submitted_events(story["id"], count=2)
    assert [e["payload"]["version"] for e in events] == [1, 2]
    assert events[1]["payload"]["body"] == new_body

    again = await submission.client.post(
        f"/stories/{story['id']}/submit", headers=correspondent(SCHOOL)
    )
    assert again.status_code == 409


async def test_the_correspondent_follows_the_story_through_review_to_publication(
    submission: RunningService,
) -> None:
    story = await create_and_submit(submission)
    first = await review(
        story, ev.Decision.APPROVED, ev.ReviewLevel.SCHOOL, next_level=ev.ReviewLevel.COUNTY
    )
    waiting = await status_becomes(submission, story["id"], "in_review")
    assert waiting["review_level"] == "county"
    await publish("story.reviewed", first)  # a redelivery changes nothing
    await review(story, ev.Decision.APPROVED, ev.ReviewLevel.CITY, final=True)
    await status_becomes(submission, story["id"], "approved")
    published = ev.StoryPublishedEvent.build(
        ev.StoryPublished(
            story_id=story["id"], version=1, unit_path=ev.UnitPath(**story["unit_path"]),
            kind=ev.PublicationKind.CHANNEL, channel="website",
            outlet_level=ev.OutletLevel.BUREAU, link="https://jc.example/news/1",
            published_at=ev.utcnow(),
        ),
        producer="review", county="dh", unit=SCHOOL,
    )  # fmt: skip
    await publish("story.published", published)
    done = await status_becomes(submission, story["id"], "published")
    assert [h["action"] for h in done["history"]] == [
        "created",
        "submitted",
        "reviewed",
        "reviewed",
        "published",
    ]
    assert done["history"][-1]["channel"] == "website"


@pytest.mark.parametrize(
    ("fields", "unit", "status", "message"),
    [
        ({"title": "短"}, SCHOOL, 422, "title has 1 characters"),
        ({"title": "长" * 101}, SCHOOL, 422, "title has 101 characters"),
        ({"body": "太短了"}, SCHOOL, 422, "body has 3 characters"),
        ({"body": "长" * 30001}, SCHOOL, 422, "body has 30001 characters"),
        ({"category": "体育新闻"}, SCHOOL, 422, "unknown category '体育新闻'"),
        ({"event_date": "2999-01-01"}, SCHOOL, 422, "is in the future"),
        ({"event_date": "not a date"}, SCHOOL, 422, "event_date"),
        ({"media_ids": ["m-does-not-exist"]}, SCHOOL, 422, "unknown media id(s): m-does-not-exist"),
        ({"unit": "xs-syxx"}, SCHOOL, 403, "outside your scope"),
        ({"unit": "no-such-school"}, SCHOOL, 404, "unknown unit"),
        ({"surprise": True}, SCHOOL, 422, "surprise"),
    ],
    ids=[
        "title-too-short", "title-too-long", "body-too-short", "body-too-long",
        "unknown-category", "future-event", "malformed-date", "unknown-media",
        "unit-out-of-scope", "unknown-unit", "unknown-field",
    ],
)  # fmt: skip
async def test_a_story_breaking_a_rule_is_refused_with_a_clear_reason(
    submission: RunningService, fields: dict[str, Any], unit: str, status: int, message: str
) -> None:
    response = await submission.client.post(
        "/stories", json=draft(**fields), headers=correspondent(unit)
    )
    assert response.status_code == status
    assert message in response.json()["detail"]


async def test_tomorrow_in_shanghai_is_the_future(submission: RunningService) -> None:
    tomorrow = (today() + timedelta(days=1)).isoformat()
    response = await submission.client.post(
        "/stories", json=draft(event_date=tomorrow), headers=correspondent(SCHOOL)
    )
    assert response.status_code == 422


async def test_media_of_another_unit_cannot_be_attached(submission: RunningService) -> None:
    foreign = await stored_media(submission, "dh-dyxx", "dh", ev.MediaKind.PHOTO)
    response = await submission.client.post(
        "/stories", json=draft(media_ids=[foreign]), headers=correspondent(SCHOOL)
    )
    assert response.status_code == 422
    assert "belong to another unit" in response.json()["detail"]


async def test_an_edit_that_breaks_a_rule_is_refused(submission: RunningService) -> None:
    created = await submission.client.post("/stories", json=draft(), headers=correspondent(SCHOOL))
    response = await submission.client.patch(
        f"/stories/{created.json()['id']}", json={"category": "八卦"}, headers=correspondent(SCHOOL)
    )
    assert response.status_code == 422
    assert "unknown category" in response.json()["detail"]


async def test_only_correspondents_write_stories(submission: RunningService) -> None:
    reviewer = await submission.client.post(
        "/stories", json=draft(), headers=auth(SCHOOL, Role.REVIEWER_SCHOOL)
    )
    assert reviewer.status_code == 403
    anonymous = await submission.client.post("/stories", json=draft())
    assert anonymous.status_code == 401
    admin = await submission.client.post(
        "/stories", json=draft(unit=SCHOOL), headers=auth("jc", Role.ADMIN)
    )
    assert admin.status_code == 201


async def test_another_countys_user_can_neither_see_nor_submit_a_story(
    submission: RunningService,
) -> None:
    created = await submission.client.post("/stories", json=draft(), headers=correspondent(SCHOOL))
    story_id = created.json()["id"]
    outsider = correspondent(OTHER_COUNTY_SCHOOL)
    assert (
        await submission.client.get(f"/stories/{story_id}", headers=outsider)
    ).status_code == 404
    submit = await submission.client.post(f"/stories/{story_id}/submit", headers=outsider)
    assert submit.status_code == 404
    county_reviewer = auth("xs", Role.REVIEWER_COUNTY)
    listed = await submission.client.get("/stories?limit=200", headers=county_reviewer)
    assert story_id not in [item["id"] for item in listed.json()["items"]]
    other_unit = await submission.client.get("/stories?unit=dh", headers=county_reviewer)
    assert other_unit.status_code == 403


async def test_a_county_user_lists_and_filters_the_stories_of_its_schools(
    submission: RunningService,
) -> None:
    campaign = f"campaign-{uuid.uuid4().hex[:6]}"
    ours = [
        await create_and_submit(submission, SCHOOL, campaign=campaign, category="典型人物"),
        await create_and_submit(submission, "dh-dyxx", campaign=campaign, category="典型人物"),
        await create_and_submit(submission, "dh-dyxx", campaign=campaign, category="校园安全"),
    ]
    draft_only = await submission.client.post(
        "/stories", json=draft(campaign=campaign), headers=correspondent(SCHOOL)
    )
    county = auth("dh", Role.REVIEWER_COUNTY)
    listed = await submission.client.get(f"/stories?campaign={campaign}", headers=county)
    assert len(listed.json()["items"]) == 4
    people = await submission.client.get(
        f"/stories?campaign={campaign}&category=典型人物&status=submitted", headers=county
    )
    assert {item["id"] for item in people.json()["items"]} == {ours[0]["id"], ours[1]["id"]}
    drafts = await submission.client.get(
        f"/stories?campaign={campaign}&status=draft", headers=county
    )
    assert [item["id"] for item in drafts.json()["items"]] == [draft_only.json()["id"]]
    day = today().isoformat()
    in_period = await submission.client.get(
        f"/stories?campaign={campaign}&submitted_from={day}&submitted_to={day}", headers=county
    )
    assert {item["id"] for item in in_period.json()["items"]} == {story["id"] for story in ours}
    first = await submission.client.get(f"/stories?campaign={campaign}&limit=3", headers=county)
    assert len(first.json()["items"]) == 3 and first.json()["next_cursor"]
    rest = await submission.client.get(
        "/stories", params={"campaign": campaign, "limit": 3,
                            "cursor": first.json()["next_cursor"]}, headers=county,
    )  # fmt: skip
    assert len(rest.json()["items"]) == 1 and rest.json()["next_cursor"] is None
    school_only = await submission.client.get(
        f"/stories?campaign={campaign}", headers=correspondent("dh-dyxx")
    )
    assert len(school_only.json()["items"]) == 2


async def test_an_admin_replaces_the_categories_and_rules(submission: RunningService) -> None:
    admin = auth("jc", Role.ADMIN)
    current = (await submission.client.get("/config/categories", headers=admin)).json()
    assert "校园安全" in [c["name"] for c in current["categories"]]
    added = {"categories": [*current["categories"], {"name": "体育艺术"}]}
    refused = await submission.client.put(
        "/config/categories", json=added, headers=correspondent(SCHOOL)
    )
    assert refused.status_code == 403
    replaced = await submission.client.put("/config/categories", json=added, headers=admin)
    assert replaced.status_code == 200
    accepted = await submission.client.post(
        "/stories", json=draft(category="体育艺术"), headers=correspondent(SCHOOL)
    )
    assert accepted.status_code == 201

    rules = (await submission.client.get("/config/rules", headers=admin)).json()
    assert rules["late_after_days"] == 7
    broken = await submission.client.put(
        "/config/rules", json={**rules, "title_min_chars": 500, "title_max_chars": 10},
        headers=admin,
    )  # fmt: skip
    assert broken.status_code == 422
    stricter = await submission.client.put(
        "/config/rules", json={**rules, "late_after_days": 0}, headers=admin
    )
    assert stricter.status_code == 200
    try:
        story = await create_and_submit(submission)
        assert story["flags"] == {
            "late": True, "late_days": 1, "possible_copy": None, "republication": None
        }  # fmt: skip
    finally:
        await submission.client.put("/config/rules", json=rules, headers=admin)


async def test_the_api_is_documented_at_docs(submission: RunningService) -> None:
    assert (await submission.client.get("/docs")).status_code == 200
    paths = (await submission.client.get("/openapi.json")).json()["paths"]
    assert {"/stories", "/stories/{story_id}/submit", "/config/categories"} <= set(paths)
