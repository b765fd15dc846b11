"""Stories are found by a phrase of their title or body: character bigrams stand in for
the text index the MongoDB-wire server lacks."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.submission.search import FIELD, grams
from services.submission.service import STORIES, ensure_indexes
from shared.auth import Role
from tests.submission.conftest import chinese_text, draft, today
from tests.support import RunningService, auth

pytestmark = pytest.mark.usefixtures("stack_env")

SCHOOL = "dh-syxx"


def test_grams_are_the_character_pairs_of_chinese_and_the_whole_words_of_the_rest() -> None:
    assert grams("科技节 Robot 2026") == ["科技", "技节", "robot", "2026"]
    assert grams("机") == ["机"]
    assert grams("ＡＢＣ") == ["abc"]  # full-width letters fold to plain ones


async def test_a_phrase_from_the_body_finds_its_story_and_only_stories_holding_it(
    submission: RunningService,
) -> None:
    marker = uuid.uuid4().hex[:8]
    phrase = "航模展示和科学小实验"
    body = chinese_text(60) + phrase + chinese_text(60)
    wanted = await submission.client.post(
        "/stories", json=draft(body=body, title=f"科技节{marker}"),
        headers=auth(SCHOOL, Role.CORRESPONDENT),
    )  # fmt: skip
    assert wanted.status_code == 201, wanted.text
    # the same characters, not as one phrase: must not match
    scattered = chinese_text(60) + "航模展示，还有科学和小实验" + chinese_text(60)
    other = await submission.client.post(
        "/stories", json=draft(body=scattered), headers=auth(SCHOOL, Role.CORRESPONDENT)
    )
    assert other.status_code == 201, other.text

    reader = auth("dh", Role.REVIEWER_COUNTY)
    found = await submission.client.get("/stories", params={"q": phrase}, headers=reader)
    assert found.status_code == 200, found.text
    ids = [item["id"] for item in found.json()["items"]]
    assert wanted.json()["id"] in ids
    assert other.json()["id"] not in ids
    by_title = await submission.client.get(
        "/stories", params={"q": f"科技节{marker}"}, headers=reader
    )
    assert [i["id"] for i in by_title.json()["items"]] == [wanted.json()["id"]]

    outside = await submission.client.get(
        "/stories", params={"q": phrase}, headers=auth("xs", Role.REVIEWER_COUNTY)
    )
    assert wanted.json()["id"] not in [i["id"] for i in outside.json()["items"]]


async def test_stories_are_narrowed_to_the_flagged_ones(submission: RunningService) -> None:
    headers = auth(SCHOOL, Role.CORRESPONDENT)
    marker = f"迟报{uuid.uuid4().hex[:6]}"
    created = {}
    for name, days in (("late", 12), ("timely", 1)):
        story = draft(
            title=f"{marker}：{name}", event_date=(today() - timedelta(days=days)).isoformat()
        )
        made = await submission.client.post("/stories", json=story, headers=headers)
        assert made.status_code == 201, made.text
        sent = await submission.client.post(f"/stories/{made.json()['id']}/submit", headers=headers)
        assert sent.status_code == 200, sent.text
        created[name] = made.json()["id"]
    found = await submission.client.get(
        "/stories", params={"q": marker, "flag": "late"}, headers=headers
    )
    assert [i["id"] for i in found.json()["items"]] == [created["late"]]
    waiting = await submission.client.get(
        "/stories", params={"q": marker, "level": "city"}, headers=headers
    )
    assert waiting.status_code == 200 and waiting.json()["items"] == []
    wrong = await submission.client.get("/stories", params={"flag": "odd"}, headers=headers)
    assert wrong.status_code == 422 and wrong.json()["code"] == "invalid_request"


async def test_stories_saved_before_search_existed_are_indexed_at_start_up(
    submission: RunningService,
) -> None:
    phrase = f"旧稿{uuid.uuid4().hex[:6]}"
    made = await submission.client.post(
        "/stories",
        json=draft(title=f"{phrase} 秋季运动会"),
        headers=auth(SCHOOL, Role.CORRESPONDENT),
    )
    assert made.status_code == 201, made.text
    await submission.runtime.db[STORIES].update_one(
        {"_id": made.json()["id"]}, {"$unset": {FIELD: ""}}
    )
    reader = auth(SCHOOL, Role.CORRESPONDENT)
    before = await submission.client.get("/stories", params={"q": phrase}, headers=reader)
    assert before.json()["items"] == []
    await ensure_indexes(submission.runtime)
    after = await submission.client.get("/stories", params={"q": phrase}, headers=reader)
    assert [i["id"] for i in after.json()["items"]] == [made.json()["id"]]
