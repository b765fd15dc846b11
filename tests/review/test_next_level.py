"""Where a story waits after a non-final approval is decided where its route is known,
in the review service, and carried on ``story.reviewed`` as ``next_level``; the
submission service shows the correspondent that level instead of guessing it.

Both services run here over the real local stack with a database prefix of their own
(so consumer groups of their own), for a directly run unit no other test uses."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
import pytest_asyncio

from shared.mongo import make_client
from tests.support import RunningService, auth, eventually, read_topic, run_service, settings_for

pytestmark = pytest.mark.usefixtures("stack_env")

DIRECT_UNIT = "jc-tj"  # 江城市特殊教育学校, run by the city: route school → city
WORDS = "春风化雨桃李芬芳书声琅琅立德树人博学笃行知行合一勤学善思求真务实"


@pytest_asyncio.fixture(scope="module")
async def services() -> AsyncIterator[tuple[RunningService, RunningService]]:
    prefix = f"nextlevel{uuid.uuid4().hex[:6]}"
    async with (
        run_service("submission", mongo_database_prefix=prefix) as submission,
        run_service("review", mongo_database_prefix=prefix) as review,
    ):
        yield submission, review
    client = make_client(settings_for("review"))
    for service in ("submission", "review"):
        await client.drop_database(f"{prefix}_{service}")
    await client.close()


def text(length: int) -> str:
    rng = random.Random(uuid.uuid4().hex)
    return "".join(rng.choice(WORDS) for _ in range(length))


async def test_a_directly_run_units_story_waits_at_the_city_after_its_school_approves(
    services: tuple[RunningService, RunningService],
) -> None:
    submission, review = services
    writer = auth(DIRECT_UNIT, "correspondent", sub=f"writer-{DIRECT_UNIT}")
    draft = {
        "title": "特教学校融合教育开放日" + text(4),
        "body": text(160),
        "category": "工作动态",
        "event_date": (date.today() - timedelta(days=1)).isoformat(),
    }
    created = await submission.client.post("/stories", json=draft, headers=writer)
    assert created.status_code == 201, created.text
    story_id = created.json()["id"]
    submitted = await submission.client.post(f"/stories/{story_id}/submit", headers=writer)
    assert submitted.status_code == 200, submitted.text

    school = auth(DIRECT_UNIT, "reviewer_school", sub=f"head-{DIRECT_UNIT}")

    async def waiting_case() -> dict[str, Any] | None:
        queue = (await review.client.get("/queue", headers=school)).json()["items"]
        return next((case for case in queue if case["story_id"] == story_id), None)

    case = await eventually(waiting_case, timeout=30, what="the case at the school")
    assert case["route"] == ["school", "city"]
    decided = await review.client.post(
        f"/cases/{case['case_id']}/decisions",
        json={"version": 1, "decision": "approve"},
        headers=school,
    )
    assert decided.status_code == 200, decided.text

    def reviewed(records: list[Any]) -> list[dict[str, Any]]:
        payloads = [json.loads(record.value)["payload"] for record in records]
        return [p for p in payloads if p["story_id"] == story_id]

    records = await read_topic("story.reviewed", until=lambda rs: bool(reviewed(rs)))
    assert reviewed(records)[0]["next_level"] == "city"

    async def in_review_at_the_city() -> dict[str, Any] | None:
        found = (await submission.client.get(f"/stories/{story_id}", headers=writer)).json()
        return found if found["status"] == "in_review" else None

    story = await eventually(in_review_at_the_city, timeout=30, what="the story in review")
    assert story["review_level"] == "city"  # not "county": the unit has none
