"""Reads whose cost does not grow with history: the story list pages through ten thousand
stories without a duplicate or a gap, the totals come from maintained counters, and every
list query is one the server answers from an index."""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from services.submission.models import StoryContent, StoryStatus
from services.submission.service.bulk import PastStory, import_stories
from services.submission.service.listing import FILTER_FIELDS, StoryFilter, sort_field
from services.submission.service.rules import read_seed
from services.submission.service.stories import STORIES
from shared import events as ev
from shared.auth import Role
from shared.orgtree import example_city
from shared.paging import PageQuery, keyset_page
from shared.windows import newest_first, windowed_page
from tests.support import RunningService, auth, index_used, run_service

# ten thousand stories: loaded through the bulk path in about 40 s on this machine, once
# the local server's oplog prune and small cache stopped bounding bulk loads (see README)
STORY_COUNT = int(os.environ.get("CITYDESK_TEST_READS_STORIES", "10000"))

# the loading is counted in the first test's time: a larger city gets longer
pytestmark = [
    pytest.mark.usefixtures("stack_env"),
    pytest.mark.timeout(max(300, STORY_COUNT // 20)),
]
NOW = datetime.now(UTC).replace(microsecond=0)


def _past(rng: random.Random, units: list[str], when: datetime, index: int) -> PastStory:
    unit = rng.choice(units)
    content = StoryContent(
        title=f"第{index}篇稿件的标题", body="本校开展了丰富多彩的活动，师生积极参与。" * 4,
        category=rng.choice(["工作动态", "德育活动", "校园安全"]),
        event_date=(when - timedelta(days=1)).date(),
    )  # fmt: skip
    path = example_city().path(unit)
    published = []
    if rng.random() < 0.6:
        published.append(
            ev.StoryPublished(
                story_id=f"s{index:05d}",
                version=1,
                unit_path=path,
                kind=ev.PublicationKind.CHANNEL,
                channel="website",
                outlet_level=ev.OutletLevel.BUREAU,
                published_at=when,
            )
        )
    return PastStory(f"s{index:05d}", unit, "tester", content, when, publications=published)


@pytest_asyncio.fixture(scope="module")
async def city() -> AsyncIterator[tuple[RunningService, dict[str, dict[str, Any]]]]:
    """Ten thousand stories over three years, filed through the bulk path; every fifth
    moment is shared by several stories, so pages must break ties by id."""
    async with run_service("submission", mongo_database=f"reads_{uuid.uuid4().hex[:8]}") as svc:
        rng = random.Random(13)
        units = [unit.code for unit in example_city().schools()]
        moments = [
            NOW - timedelta(minutes=rng.randrange(3 * 365 * 24 * 60))
            for _ in range(STORY_COUNT // 4)
        ]
        stories = [_past(rng, units, moments[i % len(moments)], i) for i in range(STORY_COUNT)]
        written = await import_stories(runtime=svc.runtime, stories=stories, rules=read_seed()[1])
        assert written == STORY_COUNT
        stored = {
            doc["_id"]: doc
            async for doc in svc.runtime.db[STORIES].find(
                {}, projection={"updated_at": 1, "status": 1, "unit": 1}
            )
        }
        yield svc, stored


async def _all_pages(svc: RunningService, headers: dict[str, str], **params: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(STORY_COUNT):
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await svc.client.get("/stories", params=query, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the list never ended")


async def test_the_city_pages_through_ten_thousand_stories_without_a_duplicate_or_a_gap(
    city: tuple[RunningService, dict[str, dict[str, Any]]],
) -> None:
    svc, stored = city
    headers = auth("jc", Role.REVIEWER_CITY)
    seen = await _all_pages(svc, headers)
    assert len(seen) == len(set(seen)) == STORY_COUNT
    assert set(seen) == set(stored)
    expected = sorted(stored.values(), key=lambda doc: (-doc["updated_at"].timestamp(), doc["_id"]))
    assert seen == [doc["_id"] for doc in expected]
    first = (await svc.client.get("/stories", headers=headers)).json()
    assert first["total"] == STORY_COUNT and len(first["items"]) == 50


async def test_a_status_and_a_county_narrow_the_pages_and_keep_their_totals(
    city: tuple[RunningService, dict[str, dict[str, Any]]],
) -> None:
    svc, stored = city
    county = auth("dh", Role.REVIEWER_COUNTY)
    org = example_city()
    published = {
        doc["_id"]
        for doc in stored.values()
        if doc["status"] == "published" and org.contains("dh", doc["unit"])
    }
    seen = await _all_pages(svc, county, status="published")
    assert len(seen) == len(set(seen)) and set(seen) == published
    first = (await svc.client.get("/stories?status=published", headers=county)).json()
    assert first["total"] == len(published)
    narrowed = (await svc.client.get("/stories?category=德育活动", headers=county)).json()
    assert narrowed["total"] is None  # only the scope and status are counted


async def test_the_totals_by_status_are_the_counts_of_the_scope(
    city: tuple[RunningService, dict[str, dict[str, Any]]],
) -> None:
    svc, stored = city
    org = example_city()
    in_county = [doc for doc in stored.values() if org.contains("dh", doc["unit"])]
    expected = Counter(doc["status"] for doc in in_county)
    answer = await svc.client.get("/stories/totals", headers=auth("dh", Role.REVIEWER_COUNTY))
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["unit"] == "dh" and found["total"] == len(in_county)
    assert {s: n for s, n in found["by_status"].items() if n} == dict(expected)
    school = next(doc["unit"] for doc in stored.values() if not org.contains("dh", doc["unit"]))
    outside = await svc.client.get(
        "/stories/totals", params={"unit": school}, headers=auth("dh", Role.REVIEWER_COUNTY)
    )
    assert outside.status_code == 403 and outside.json()["code"]


async def test_a_cursor_of_another_list_or_garbage_is_refused_in_chinese(
    city: tuple[RunningService, dict[str, dict[str, Any]]],
) -> None:
    svc, _ = city
    headers = auth("jc", Role.REVIEWER_CITY)
    refused = await svc.client.get("/stories", params={"cursor": "不是游标"}, headers=headers)
    assert refused.status_code == 422 and refused.json()["code"] == "bad_cursor"
    too_many = await svc.client.get("/stories", params={"limit": 201}, headers=headers)
    assert too_many.status_code == 422


async def test_every_list_filter_is_answered_from_an_index(
    city: tuple[RunningService, dict[str, dict[str, Any]]],
) -> None:
    svc, _ = city
    stories = svc.runtime.db[STORIES]
    window = {"$gte": NOW - timedelta(days=1), "$lt": NOW}
    filters = [StoryFilter(unit="dh")]
    filters += [
        StoryFilter(unit="dh", **{name: value})  # type: ignore[arg-type]  # one filter each
        for name, value in (
            ("status", StoryStatus.SUBMITTED), ("category", "德育活动"), ("campaign", "c"),
            ("level", "county"), ("flag", "late"), ("flag", "possible_copy"),
        )
    ]  # fmt: skip
    filters.append(StoryFilter(unit="dh", submitted_from=NOW.date()))
    for story_filter in filters:
        field = sort_field(story_filter)
        used = await index_used(
            stories, {**story_filter.equalities(), field: window}, newest_first(field)
        )
        assert field in used, (story_filter, used)
    assert len(FILTER_FIELDS) == 6
    # the tie-break inside one moment is an index range too
    tie = {"ancestors": "dh", "updated_at": NOW, "_id": {"$gt": "s0"}}
    assert "updated_at" in await index_used(stories, tie, [("_id", 1)])
    # one story by key, as it is read (no sort)
    assert await index_used(stories, {"_id": "s00001"}, None)


async def test_windows_give_the_same_pages_as_the_plain_keyset(
    city: tuple[RunningService, dict[str, dict[str, Any]]],
) -> None:
    """The windowed reads are an optimisation of the kit's keyset pages, not another
    order: over stories spread across three years with shared moments, both agree."""
    svc, _ = city
    stories = svc.runtime.db[STORIES]
    sort = newest_first("updated_at")
    # the plain keyset query is a collection scan on the embedded server: a small scope
    for scope, limit in (("xs-syxx", 3), ("xs", 50)):
        windowed: list[str] = []
        plain: list[str] = []
        for pages, fetch in ((windowed, windowed_page), (plain, None)):
            query = PageQuery(limit=limit)
            while True:
                if fetch is None:
                    docs, cursor = await keyset_page(
                        stories, {"ancestors": scope}, sort=sort, query=query, projection={"_id": 1}
                    )
                else:
                    docs, cursor = await fetch(
                        stories, {"ancestors": scope}, field="updated_at", query=query,
                        projection={"_id": 1},
                    )  # fmt: skip
                pages += [doc["_id"] for doc in docs]
                if cursor is None:
                    break
                query = PageQuery(limit=limit, cursor=cursor)
        assert windowed == plain and len(windowed) > limit
