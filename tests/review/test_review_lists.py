"""The review service's lists as the years pile up, over the real local servers: the
queue of a city reviewer who is also the leader is one equality query per level merged
in order, the office's lists and the feed are read newest first in time windows, every
shape they send is answered from an index, and thousands of items page through 50 at a
time without a duplicate or a gap, in exactly each list's order."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from services.review import access, cases, delivery, office
from services.review.models import PublicationState
from services.review.publications import shown_state
from services.review.runtime import Review
from shared import outbound
from shared.auth import Principal, Role
from shared.mongo import make_client
from shared.orgtree import example_city
from shared.paging import resume_steps
from shared.windows import newest_first
from tests.review.support import every_page, index_of, story_event
from tests.support import RunningService, auth, run_service, settings_for

pytestmark = pytest.mark.usefixtures("stack_env")

ORG = example_city()
NOW = datetime.now(UTC).replace(microsecond=0)
EVERY_ROLE = auth("jc", *Role, sub="city-all")
CITY_OFFICE = auth("jc", Role.REVIEWER_CITY, sub="office-jc")


@pytest_asyncio.fixture(scope="module")
async def review() -> AsyncIterator[RunningService]:
    database = f"review_lists_{uuid.uuid4().hex[:8]}"
    async with run_service("review", mongo_database=database) as running:
        yield running
    client = make_client(settings_for("review"))
    await client.drop_database(database)
    await client.close()


def _runtime(review: RunningService) -> Review:
    runtime: Review = review.app.state.review
    return runtime


def _newest(docs: list[dict[str, Any]], field: str) -> list[str]:
    return [d["_id"] for d in sorted(docs, key=lambda d: (-d[field].timestamp(), d["_id"]))]


def _moments(rng: random.Random, count: int) -> list[datetime]:
    """Times over three years, each shared by four items: only the id orders those."""
    spread = [NOW - timedelta(minutes=rng.randrange(3 * 365 * 24 * 60)) for _ in range(count // 4)]
    return [spread[i % len(spread)] for i in range(count)]


# ---- the queue ------------------------------------------------------------------------
async def test_a_city_reviewer_who_is_also_leader_pages_through_both_levels_in_order(
    review: RunningService,
) -> None:
    """Cases as the service opens them (``case_document``), the leader's moved on as an
    approval moves them; a school's and a county's cases are not the city's to decide."""
    runtime = _runtime(review)
    rng = random.Random(19)
    city_unit, school = ORG.unit("jc"), ORG.unit("xs-syxx")
    documents = []
    for index, at in enumerate(_moments(rng, 3000)):
        unit = school if index % 10 == 0 else city_unit
        route = cases.route_for(runtime.config, unit.type, index % 3 == 0)
        event = story_event(unit.code)
        doc = cases.case_document(event, unit=unit, route=route, case_id=uuid.uuid4().hex, now=at)
        if index % 3 == 0 and unit is city_unit:
            doc |= {"step": 1, "level": "leader"}
        documents.append(doc)
    await runtime.db.cases.insert_many(documents)
    try:
        mine = [d for d in documents if d["level"] in ("city", "leader")]
        seen = await every_page(review.client, "/queue", EVERY_ROLE, limit=50)
        oldest = sorted(mine, key=lambda d: (d["waiting_since"], d["_id"]))
        assert [c["case_id"] for c in seen] == [d["_id"] for d in oldest]
        leader = auth("jc", Role.LEADER)
        only = await every_page(review.client, "/queue", leader, limit=50)
        assert [c["level"] for c in only] == ["leader"] * len(only)
        assert len(only) == sum(d["level"] == "leader" for d in documents)
    finally:
        await runtime.db.cases.delete_many({"_id": {"$in": [d["_id"] for d in documents]}})


# ---- the office's lists and the feed ---------------------------------------------------
@pytest_asyncio.fixture
async def deliveries(
    review: RunningService, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[list[dict[str, Any]]]:
    """Two thousand deliveries queued by the service's own queue at moments over three
    years (due in 2100, so no worker takes them), then moved on as the workers would:
    delivered, failed, leased (in progress) or tried once (retrying)."""
    runtime = _runtime(review)
    queue = delivery.publication_queue(runtime)
    clock: list[datetime] = [NOW]
    monkeypatch.setattr(outbound, "utcnow", lambda: clock[0])
    rng = random.Random(7)
    stories = [uuid.uuid4().hex for _ in range(400)]
    for index, at in enumerate(_moments(rng, 2000)):
        clock[0] = at
        story = stories[index % len(stories)]
        await queue.enqueue(
            key=f"{story}:{index}", channel="feed", target="feed", payload={},
            not_before=datetime(2100, 1, 1, tzinfo=UTC),
            extra={"_id": uuid.uuid4().hex, "story_id": story, "version": 1,
                   "case_id": "c", "action": "publish", "publish_at": at},
        )  # fmt: skip
    rows = await runtime.db.publications.find({}).to_list()
    moves: list[dict[str, Any]] = [
        {"state": "delivered", "attempts": 1},
        {"state": "failed", "attempts": 6},
        {"lease_until": datetime(2100, 1, 1, tzinfo=UTC), "attempts": 1},
        {"attempts": 2},
    ]
    for index, change in enumerate(moves):
        moved = rows[index :: len(moves) + 1]  # every fifth row stays as queued
        ids = [row["_id"] for row in moved]
        await runtime.db.publications.update_many({"_id": {"$in": ids}}, {"$set": change})
        for row in moved:
            row |= change
    yield rows
    await runtime.db.publications.delete_many({})


async def test_the_publish_queue_pages_newest_first_whole_or_by_state_or_story(
    review: RunningService, deliveries: list[dict[str, Any]]
) -> None:
    now = datetime.now(UTC)
    seen = await every_page(review.client, "/publications", CITY_OFFICE, limit=50)
    assert [p["publication_id"] for p in seen] == _newest(deliveries, "created_at")
    for state in PublicationState:
        wanted = [row for row in deliveries if shown_state(_aware(row), now) == state]
        listed = await every_page(
            review.client, "/publications", CITY_OFFICE, limit=50, state=state.value
        )
        assert [p["publication_id"] for p in listed] == _newest(wanted, "created_at"), state
        assert {p["state"] for p in listed} <= {state.value}
    story = deliveries[0]["story_id"]
    ones = [row for row in deliveries if row["story_id"] == story]
    listed = await every_page(review.client, "/publications", CITY_OFFICE, limit=2, story_id=story)
    assert [p["publication_id"] for p in listed] == _newest(ones, "created_at")


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row's times as the service compares them (the test client reads naive)."""
    lease = row.get("lease_until")
    if isinstance(lease, datetime) and lease.tzinfo is None:
        return {**row, "lease_until": lease.replace(tzinfo=UTC)}
    return row


async def _insert_shaped(
    review: RunningService, collection: str, count: int, build: Callable[[int, datetime], Any]
) -> list[dict[str, Any]]:
    docs = [build(index, at) for index, at in enumerate(_moments(random.Random(count), count))]
    await _runtime(review).db[collection].insert_many(docs)
    return docs


async def test_the_feed_and_the_adoptions_page_newest_first(review: RunningService) -> None:
    """Feed entries as ``delivery.publish_to_feed`` writes them (a tenth withdrawn) and
    adoptions as ``office.record_adoption`` writes them, two thousand of each."""

    def entry(index: int, at: datetime) -> dict[str, Any]:
        withdrawn = index % 10 == 0
        return {
            "_id": uuid.uuid4().hex, "version": 1, "title": f"第{index}篇", "body": "正文。",
            "category": "work_news", "campaign": None,
            "unit_path": ORG.path("dh-syxx").model_dump(),
            "media_ids": [], "state": "withdrawn" if withdrawn else "published",
            "updated_at": at, "published_at": at, "withdrawn_at": at if withdrawn else None,
        }  # fmt: skip

    def adoption(index: int, at: datetime) -> dict[str, Any]:
        return {
            "_id": uuid.uuid4().hex, "story_id": uuid.uuid4().hex, "version": 1,
            "outlet": "江城日报", "outlet_key": "江城日报", "level": "city",
            "placement": "normal", "date": at.date().isoformat(), "link": "https://example.cn/a",
            "leader_instruction": False, "recorded_by": "office-jc", "recorded_at": at,
        }  # fmt: skip

    entries = await _insert_shaped(review, "feed", 2000, entry)
    adoptions = await _insert_shaped(review, "adoptions", 2000, adoption)
    try:
        for state in ("published", "withdrawn"):
            wanted = [e for e in entries if e["state"] == state]
            seen = await every_page(review.client, "/feed", limit=50, state=state)
            assert [item["story_id"] for item in seen] == _newest(wanted, "published_at")
        rss = await review.client.get("/feed.rss")
        published = _newest([e for e in entries if e["state"] == "published"], "published_at")
        assert rss.status_code == 200 and rss.text.count("<item>") == 50
        assert f"urn:citydesk:story:{published[0]}" in rss.text
        seen = await every_page(review.client, "/adoptions", CITY_OFFICE, limit=50)
        assert [a["adoption_id"] for a in seen] == _newest(adoptions, "recorded_at")
        assert office.adoption_view(adoptions[0]).outlet == "江城日报"
    finally:
        await _runtime(review).db.feed.delete_many({})
        await _runtime(review).db.adoptions.delete_many({})


# ---- every shape from an index -----------------------------------------------------------
async def test_every_shape_the_lists_send_is_answered_from_an_index(
    review: RunningService,
) -> None:
    """The first page and the later ones (the kit's resume steps for the oldest-first
    case lists; a window and the rest of a moment for the newest-first ones)."""
    db = _runtime(review).db
    every = Principal(sub="a", name="市局", unit="jc", roles=frozenset(Role))
    county = Principal(sub="c", name="县审", unit="dh", roles=frozenset({Role.REVIEWER_COUNTY}))
    school = Principal(sub="s", name="校审", unit="dh-syxx", roles=frozenset(Role))
    oldest = [("waiting_since", 1), ("_id", 1)]
    shapes: list[tuple[str, dict[str, Any], list[tuple[str, int]]]] = []
    case_lists = [*access.queue_filters(every, ORG), *access.queue_filters(county, ORG)]
    case_lists += access.queue_filters(school, ORG)
    case_lists += [
        {"state": "open", "overdue": True, **access.scope_filter(who, ORG)}
        for who in (every, county, school)
    ]
    assert len(access.queue_filters(every, ORG)) == 3  # school (its own), city, leader
    for where in case_lists:
        shapes.append(("cases", where, oldest))
        shapes += [("cases", step, oldest) for step in resume_steps(where, oldest, [NOW, "x"])]
    window = {"$gte": NOW - timedelta(days=1), "$lt": NOW}
    newest: list[tuple[str, dict[str, Any], str]] = [
        ("publications", {}, "created_at"),
        ("publications", {"state": "failed"}, "created_at"),
        ("publications", {"story_id": "s-1"}, "created_at"),
        ("feed", {"state": "published"}, "published_at"),
        ("adoptions", {}, "recorded_at"),
    ]
    for collection, equal, field in newest:
        shapes.append((collection, {**equal, field: window}, newest_first(field)))
        shapes.append((collection, {**equal, field: NOW, "_id": {"$gt": "x"}}, [("_id", 1)]))
    shapes.append(("adoptions", {"story_id": "s-1"}, [("recorded_at", 1), ("_id", 1)]))
    for collection, where, sort in shapes:
        explained = await db.command(
            "explain", {"find": collection, "filter": where, "sort": dict(sort), "limit": 51}
        )
        plan = explained["queryPlanner"]["winningPlan"]
        assert index_of(plan) is not None, (collection, where, plan)
