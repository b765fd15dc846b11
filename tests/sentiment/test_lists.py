"""The opinion lists over a city's history: items, incidents and alerts page newest first
in time windows without a duplicate or a gap, each officer sees exactly the units in
scope, a cursor the list did not issue is refused, and every list shape is one the
server answers from an index."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from services.sentiment.intake import check_place, record_opinions
from services.sentiment.queries import LIST_TIME, unit_filter
from shared import events as ev
from shared.auth import Role
from shared.kafka import PermanentError
from shared.orgtree import example_city
from shared.windows import newest_first
from tests.sentiment.support import run_sentiment
from tests.support import RunningService, auth, index_used

# a few thousand items over two years, filed through intake's own batch path
ITEM_COUNT = int(os.environ.get("CITYDESK_TEST_LIST_ITEMS", "3000"))
pytestmark = [pytest.mark.usefixtures("stack_env"), pytest.mark.timeout(600)]

NOW = datetime.now(UTC).replace(microsecond=0)
ORG = example_city()
OFFICER = Role.OPINION_OFFICER
CITY = auth("jc", OFFICER)
SOURCES = ("weibo", "forum", "12345")
COMPLAINTS = (
    "学校食堂饭菜质量差，孩子吃了肚子疼，家长非常担心，希望教育局调查处理",
    "有家长反映学校违规收费，要求退还资料费",
    "多名学生食物中毒住院，家长要求学校给个说法",
)
ORDINARY = (
    "老师课后辅导很用心，孩子成绩进步明显，感谢学校",
    "学校组织的研学活动很有意义，孩子收获很大",
)

Stored = dict[str, dict[str, dict[str, Any]]]


def _places() -> list[tuple[str, str | None]]:
    """(county, school) as county feeds send them: a school with its county (the city's
    code for a school the city runs), and a county's own items without a school."""
    places: list[tuple[str, str | None]] = [
        (unit.county or ORG.city.code, unit.code) for unit in ORG.schools()
    ]
    return places + [(county.code, None) for county in ORG.counties()]


def _item(rng: random.Random, place: tuple[str, str | None], when: datetime) -> Any:
    county, school = place
    negative = rng.random() < 0.1
    return ev.IntakeOpinionEvent.build(
        ev.IntakeOpinion(
            item_id=uuid.uuid4().hex,
            source=rng.choice(SOURCES),
            school=school,
            text=rng.choice(COMPLAINTS if negative else ORDINARY),
            published_at=when,
        ),
        producer=f"county-{county}",
        county=county,
    )


@pytest_asyncio.fixture(scope="module")
async def city() -> AsyncIterator[tuple[RunningService, Stored]]:
    """Items over two years (every third moment shared by several items, so pages must
    break ties by id), their incidents and alerts, as intake makes them."""
    async with run_sentiment("lists") as svc:
        rng = random.Random(19)
        places = _places()
        moments = [
            NOW - timedelta(minutes=rng.randrange(2 * 365 * 24 * 60))
            for _ in range(ITEM_COUNT // 3)
        ]
        events = [
            _item(rng, rng.choice(places), moments[i % len(moments)]) for i in range(ITEM_COUNT)
        ]
        sentiment = svc.app.state.sentiment
        # the alerts stay in this database's outbox: published, they would be flags about
        # other tests' schools on the topic the whole session shares
        await sentiment.base.relay.stop()
        for chunk in range(0, ITEM_COUNT, 500):
            await record_opinions(runtime=sentiment, events=events[chunk : chunk + 500])
        # the city's office acknowledges every fourth alert: the states differ, and those
        # alerts move to the top of the list
        async for alert in sentiment.db.alerts.find({}, projection={"_id": 1}).sort("_id"):
            if rng.random() < 0.25:
                path = f"/alerts/{alert['_id']}/acknowledge"
                assert (await svc.client.post(path, json={}, headers=CITY)).status_code == 200
        stored: Stored = {}
        for name, field in LIST_TIME.items():
            fields = {field: 1, "county": 1, "school": 1, "negative": 1, "source": 1}
            found = sentiment.db[name].find({}, projection={**fields, "severity": 1, "state": 1})
            stored[name] = {doc["_id"]: doc async for doc in found}
        assert len(stored["items"]) == ITEM_COUNT
        assert len(stored["incidents"]) > 100 and len(stored["alerts"]) > 100
        yield svc, stored


def _newest_first(docs: dict[str, dict[str, Any]], field: str, **equal: Any) -> list[str]:
    kept = [doc for doc in docs.values() if all(doc.get(k) == v for k, v in equal.items())]
    kept.sort(key=lambda doc: (-doc[field].replace(tzinfo=UTC).timestamp(), doc["_id"]))
    return [doc["_id"] for doc in kept]


def _about(scope: str) -> Callable[[dict[str, Any]], bool]:
    """What the scope filter used to send, ``$or`` of the units below: the item's school
    or county is ``scope`` or below it."""
    return lambda doc: any(
        code and ORG.contains(scope, code) for code in (doc.get("school"), doc.get("county"))
    )


def test_one_equality_selects_what_the_or_of_every_unit_below_did() -> None:
    """For every unit of the city and every place intake accepts, the scope's equality
    and the old ``$or`` agree; intake refuses the places where they could differ."""
    places = _places()
    for county, school in places:
        check_place(org=ORG, county=county, school=school)
    for unit in ORG.units.values():
        equal = unit_filter(org=ORG, code=unit.code)
        for county, school in places:
            doc = {"county": county, "school": school}
            selected = all(doc.get(key) == value for key, value in equal.items())
            assert selected == _about(unit.code)(doc), (unit.code, doc)
    with pytest.raises(PermanentError):  # a school named with another county
        check_place(org=ORG, county="dh", school="qs-dyxx")
    with pytest.raises(PermanentError):  # a school the city runs, named with a county
        check_place(org=ORG, county="dh", school="jc-yz")


async def _all_pages(
    svc: RunningService, path: str, headers: dict[str, str], limit: int = 50, **params: Any
) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(ITEM_COUNT):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await svc.client.get(path, params=query, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert isinstance(body, list) and len(body) <= limit
        seen += [entry["id"] for entry in body]
        cursor = page.headers.get("x-next-cursor")
        if cursor is None:
            return seen
        assert len(body) == limit  # only the last page is short
    raise AssertionError("the list never ended")


async def test_the_city_pages_through_every_item_newest_first_without_a_duplicate_or_a_gap(
    city: tuple[RunningService, Stored],
) -> None:
    svc, stored = city
    seen = await _all_pages(svc, "/items", CITY, merge="false")
    assert len(seen) == len(set(seen)) == ITEM_COUNT
    assert seen == _newest_first(stored["items"], "published_at")


async def test_a_county_and_a_school_see_exactly_their_own_items(
    city: tuple[RunningService, Stored],
) -> None:
    svc, stored = city
    items = stored["items"]
    newest = _newest_first(items, "published_at")
    for scope in ("qs", "qs-dyxx", "jc-yz"):
        expected = [key for key in newest if _about(scope)(items[key])]
        assert expected, scope
        seen = await _all_pages(svc, "/items", auth(scope, OFFICER), merge="false")
        assert seen == expected, scope
        # the city narrowing the list to the unit sees the same
        assert await _all_pages(svc, "/items", CITY, merge="false", unit=scope) == expected
    county = set(await _all_pages(svc, "/items", auth("qs", OFFICER), merge="false"))
    other = set(await _all_pages(svc, "/items", auth("dh", OFFICER), merge="false"))
    assert county and other and not county & other
    # the county's school, by the county officer
    school = await _all_pages(svc, "/items", auth("qs", OFFICER), merge="false", unit="qs-dyxx")
    assert set(school) < county and all(items[key]["school"] == "qs-dyxx" for key in school)


async def test_filters_and_a_period_narrow_the_pages_of_a_scope(
    city: tuple[RunningService, Stored],
) -> None:
    svc, stored = city
    items = stored["items"]
    officer = auth("qs", OFFICER)
    in_county = [key for key in _newest_first(items, "published_at") if _about("qs")(items[key])]
    negative = await _all_pages(svc, "/items", officer, merge="false", negative="true")
    assert negative == [key for key in in_county if items[key]["negative"]]
    assert negative
    forum = await _all_pages(svc, "/items", officer, limit=20, merge="false", source="forum")
    assert forum == [key for key in in_county if items[key]["source"] == "forum"]
    since, until = NOW - timedelta(days=300), NOW - timedelta(days=100)
    period = await _all_pages(
        svc, "/items", CITY, merge="false", since=since.isoformat(), until=until.isoformat()
    )
    expected = [
        key
        for key in _newest_first(items, "published_at")
        if since <= items[key]["published_at"].replace(tzinfo=UTC) < until
    ]
    assert period == expected and 0 < len(expected) < ITEM_COUNT


async def test_incidents_and_alerts_page_newest_first_in_scope(
    city: tuple[RunningService, Stored],
) -> None:
    svc, stored = city
    for path, name in (("/incidents", "incidents"), ("/alerts", "alerts")):
        field = LIST_TIME[name]
        everything = _newest_first(stored[name], field)
        assert await _all_pages(svc, path, CITY, limit=40) == everything, path
        for scope in ("qs", "qs-dyxx"):
            docs = stored[name]
            expected = [key for key in everything if _about(scope)(docs[key])]
            assert await _all_pages(svc, path, auth(scope, OFFICER), limit=7) == expected
        yellow = await _all_pages(svc, path, CITY, limit=30, severity="yellow")
        assert yellow == _newest_first(stored[name], field, severity="yellow"), path
        assert 0 < len(yellow) < len(everything)
    alerts = stored["alerts"]
    for state in ("open", "acknowledged"):
        listed = await _all_pages(svc, "/alerts", auth("dh", OFFICER), limit=10, state=state)
        expected = _newest_first(alerts, "updated_at", state=state)
        assert listed == [key for key in expected if _about("dh")(alerts[key])] and listed


async def test_a_cursor_the_list_did_not_issue_is_refused_in_chinese(
    city: tuple[RunningService, Stored],
) -> None:
    svc, _ = city
    page = await svc.client.get("/items", params={"limit": 5}, headers=CITY)
    items_cursor = page.headers["x-next-cursor"]
    for path in ("/items", "/incidents", "/alerts"):
        for cursor in ("不是游标", "bm90IGEgY3Vyc29y"):
            refused = await svc.client.get(path, params={"cursor": cursor}, headers=CITY)
            assert refused.status_code == 422, (path, refused.text)
            assert refused.json()["code"] == "bad_cursor" and "翻页" in refused.json()["message"]
        too_many = await svc.client.get(path, params={"limit": 201}, headers=CITY)
        assert too_many.status_code == 422
    # a cursor of the items list names the items' order: the alerts refuse it
    crossed = await svc.client.get("/alerts", params={"cursor": items_cursor}, headers=CITY)
    assert crossed.status_code == 422 and crossed.json()["code"] == "bad_cursor"


async def test_every_list_shape_is_answered_from_an_index(
    city: tuple[RunningService, Stored],
) -> None:
    svc, _ = city
    db = svc.app.state.sentiment.db
    window = {"$gte": NOW - timedelta(days=1), "$lt": NOW}
    for name, field in LIST_TIME.items():
        indexes = set(await db[name].index_information())
        for scope in ({}, {"county": "qs"}, {"school": "qs-dyxx"}):
            used = await index_used(db[name], {**scope, field: window}, newest_first(field))
            assert used == "_".join(f"{key}_{order}" for key, order in [
                *((key, 1) for key in scope), (field, -1), ("_id", 1),
            ]), (name, scope, used)  # fmt: skip
            # the rest of a cursor's moment: the same index, tied on the time field
            tie = {**scope, field: NOW, "_id": {"$gt": "a"}}
            assert await index_used(db[name], tie, [("_id", 1)]) == used
        # the indexes the lists replaced are gone (each entry is a write at intake)
        assert not indexes & {f"county_1_{field}_-1", f"{field}_-1"}, (name, indexes)
    items = set(await db.items.index_information())
    assert items == {
        "_id_",
        "published_at_-1__id_1",
        "county_1_published_at_-1__id_1",
        "school_1_published_at_-1__id_1",
    }
