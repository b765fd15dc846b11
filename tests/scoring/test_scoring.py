"""The scoring service over the real stack: points per rule, rule versions, quotas,
flags, periods in Shanghai time, rankings, bulletins, campaigns, idempotency and the
rebuild, the go-live calendar, refusals and who sees what. Each test works in its own
months of 2023-2026 (or its own units), which no other test uses."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import pytest
from openpyxl import load_workbook
from prometheus_client import REGISTRY

from citydesk.producer import SignedProducer
from services.scoring import rankings, unitviews
from services.scoring.ledger import apply_events
from services.scoring.periods import Calendar, parse_period
from services.scoring.rebuild import rebuild
from services.scoring.service import (
    CAMPAIGN_ITEMS,
    LEDGER,
    SUMMARIES,
    UNIT_MONTHS,
    load_default_rules,
)
from shared import events as ev
from shared import topics as tp
from shared.orgtree import OrgTree, example_city
from tests.support import (
    RunningService,
    auth,
    eventually,
    header,
    read_topic,
    run_service,
    settings_for,
)

pytestmark = pytest.mark.usefixtures("stack_env")

ORG = example_city()
ADMIN = auth("jc", "admin")
READER = auth("jc", "reviewer_city")
CITY_OFFICER = auth("jc", "opinion_officer")
DATABASE = f"scoring_test_{uuid.uuid4().hex[:8]}"
# the desk of these tests went live before the months they use
GO_LIVE = date(2023, 1, 1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def story_id() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def _envelope(model: type[ev.Envelope], payload: Any, unit: str, when: datetime) -> Any:
    event = model.build(payload, producer="tests", county=ORG.unit(unit).county, unit=unit)
    return event.model_copy(update={"occurred_at": when})


def submitted(unit: str, when: str, story: str | None = None, campaign: str | None = None) -> Any:
    moment = at(when)
    payload = ev.StorySubmitted(
        story_id=story or story_id(), version=1, unit_path=ORG.path(unit), title="校园新闻",
        body="正文", category="工作动态", campaign=campaign, event_date=moment.date(),
        submitted_at=moment, author="correspondent",
    )  # fmt: skip
    return _envelope(ev.StorySubmittedEvent, payload, unit, moment)


def reviewed(unit: str, story: str, when: str, decision: ev.Decision, final: bool = True) -> Any:
    moment = at(when)
    payload = ev.StoryReviewed(
        story_id=story, version=1, case_id=f"case-{story}", unit_path=ORG.path(unit),
        level=ev.ReviewLevel.CITY, decision=decision, final=final, reviewer="reviewer",
        reviewer_unit="jc", decided_at=moment,
    )  # fmt: skip
    return _envelope(ev.StoryReviewedEvent, payload, unit, moment)


def published(
    unit: str,
    story: str,
    when: str,
    *,
    kind: ev.PublicationKind = ev.PublicationKind.ADOPTION,
    level: ev.OutletLevel = ev.OutletLevel.BUREAU,
    placement: ev.Placement = ev.Placement.NORMAL,
    outlet: str | None = None,
    channel: str | None = None,
    leader: bool = False,
    photos: int = 0,
    videos: int = 0,
    campaign: str | None = None,
) -> Any:
    moment = at(when)
    payload = ev.StoryPublished(
        story_id=story, version=1, unit_path=ORG.path(unit), kind=kind, channel=channel,
        outlet=outlet, outlet_level=level, placement=placement, leader_instruction=leader,
        published_at=moment, campaign=campaign, photo_count=photos, video_count=videos,
    )  # fmt: skip
    return _envelope(ev.StoryPublishedEvent, payload, unit, moment)


def channel(unit: str, story: str, when: str, name: str, **extra: Any) -> Any:
    return published(unit, story, when, kind=ev.PublicationKind.CHANNEL, channel=name, **extra)


def adoption(
    unit: str,
    story: str,
    when: str,
    level: ev.OutletLevel,
    placement: str,
    outlet: str,
    **extra: Any,
) -> Any:
    return published(
        unit, story, when, level=level, placement=ev.Placement(placement), outlet=outlet, **extra
    )


def flagged(
    school: str, when: str, incident: str, severity: ev.Severity, *, serious: bool = False,
    kind: ev.FlagKind = ev.FlagKind.ALERT, topic: str = "食品安全",
) -> Any:  # fmt: skip
    moment = at(when)
    payload = ev.OpinionFlagged(
        kind=kind, incident_id=incident, alert_id=f"alert-{incident}",
        county=ORG.unit(school).county, school=school, severity=severity, serious=serious,
        score=0.9, topic=topic, flagged_at=moment,
    )  # fmt: skip
    return _envelope(ev.OpinionFlaggedEvent, payload, school, moment)


def determined(
    school: str, when: str, incident: str, began: str, reason: str, *, lifted: bool = False
) -> Any:
    """The city office's determination (认定) of an incident, or its lifting."""
    moment = at(when)
    kind = ev.FlagKind.DETERMINATION_LIFTED if lifted else ev.FlagKind.DETERMINATION
    payload = ev.OpinionFlagged(
        kind=kind, incident_id=incident, alert_id=f"alert-{incident}",
        county=ORG.unit(school).county, school=school, severity=ev.Severity.RED, score=0.9,
        topic="校园欺凌", flagged_at=moment, decided_by="office-chief",
        decided_by_name="局办公室主任", reason=reason, incident_at=at(began),
    )  # fmt: skip
    return _envelope(ev.OpinionFlaggedEvent, payload, school, moment)


def photo(unit: str, when: str, campaign: str) -> Any:
    moment = at(when)
    payload = ev.MediaStored(
        media_id=f"m-{uuid.uuid4().hex[:10]}", unit_path=ORG.path(unit), kind=ev.MediaKind.PHOTO,
        content_type="image/jpeg", size=1000, sha256=uuid.uuid4().hex * 2, campaign=campaign,
        uploader="correspondent", stored_at=moment,
    )  # fmt: skip
    return _envelope(ev.MediaStoredEvent, payload, unit, moment)


def handled(topic: str) -> float:
    labels = {
        "service": "scoring", "topic": topic, "handler": "score_" + topic.replace(".", "_"),
        "outcome": "applied",
    }  # fmt: skip
    return REGISTRY.get_sample_value("citydesk_events_handled_total", labels) or 0.0


class Bus:
    def __init__(self, producer: SignedProducer, svc: RunningService) -> None:
        self.producer = producer
        self.svc = svc

    async def send(self, *events: Any, wait: bool = True) -> None:
        """Publish real contract events in order and wait until the ledger has them and
        the consumers have finished their batches (projections included)."""
        topics = Counter(e.type for e in events)
        before = {topic: handled(topic) for topic in topics}
        for event in events:
            topic = tp.BY_NAME[event.type]
            await self.producer.send_and_wait(
                topic.name, event.model_dump_json().encode(), key=topic.key(event)
            )
        if wait:
            await self.applied(*events)
            await self.handled(before, topics)

    async def redeliver(self, *events: Any) -> None:
        """Publish events again and wait until the consumers have read every copy."""
        topics = Counter(e.type for e in events)
        before = {topic: handled(topic) for topic in topics}
        await self.send(*events, wait=False)
        await self.handled(before, topics)

    async def handled(self, before: dict[str, float], topics: Counter[str]) -> None:
        for topic, count in topics.items():
            await eventually(
                lambda topic=topic, count=count: handled(topic) >= before[topic] + count,
                what=f"{topic} handled",
            )

    async def applied(self, *events: Any) -> None:
        db = self.svc.runtime.db
        ids = [str(e.event_id) for e in events]

        async def all_there() -> bool:
            found = set(
                await db[LEDGER].distinct("source_event_id", {"source_event_id": {"$in": ids}})
            )
            found |= set(
                await db[CAMPAIGN_ITEMS].distinct(
                    "source_event_id", {"source_event_id": {"$in": ids}}
                )
            )
            return found >= set(ids)

        await eventually(all_there, timeout=30, what="events applied")

    async def get(self, path: str, headers: dict[str, str] = READER, **params: Any) -> Any:
        response = await self.svc.client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
async def bus() -> AsyncIterator[Bus]:
    async with run_service("scoring", mongo_database=DATABASE, scoring_go_live=GO_LIVE) as svc:
        settings = svc.runtime.settings
        producer = SignedProducer(settings)
        await producer.start()
        try:
            yield Bus(producer, svc)
        finally:
            await producer.stop()
            await svc.runtime.mongo.drop_database(f"{DATABASE}_rebuilt")
            await svc.runtime.mongo.drop_database(DATABASE)


def row_of(ranking: dict[str, Any], unit: str) -> dict[str, Any]:
    return next(r for r in ranking["rows"] if r["unit"] == unit)


async def test_each_rule_awards_its_points_and_the_ledger_explains_them(bus: Bus) -> None:
    unit, story, other = "dh-syxx", story_id(), story_id()
    N, P, C = ev.OutletLevel.NATIONAL, ev.OutletLevel.PROVINCIAL, ev.OutletLevel.CITY
    await bus.send(
        submitted(unit, "2025-01-05T09:00:00+08:00", story),
        submitted(unit, "2025-01-06T09:00:00+08:00", other),
        reviewed(unit, other, "2025-01-07T09:00:00+08:00", ev.Decision.RETURNED, final=False),
        reviewed(unit, story, "2025-01-08T09:00:00+08:00", ev.Decision.APPROVED),
        channel(unit, story, "2025-01-09T09:00:00+08:00", "website", photos=2, videos=1),
        channel(unit, story, "2025-01-09T10:00:00+08:00", "wechat"),
        adoption(unit, story, "2025-01-10T09:00:00+08:00", P, "headline", "省教育报"),
        adoption(unit, story, "2025-01-11T09:00:00+08:00", N, "normal", "中国教育报"),
        adoption(unit, story, "2025-01-12T09:00:00+08:00", C, "in_depth", "江城日报"),
        adoption(unit, story, "2025-01-13T09:00:00+08:00", N, "headline", "人民日报", leader=True),
        adoption(unit, story, "2025-01-14T09:00:00+08:00", N, "headline", "人民日报"),
    )
    # the same channel a second time counts nothing: a later event on the story's key
    # shows it was read
    repeat = channel(unit, story, "2025-01-15T09:00:00+08:00", "wechat")
    withdrawal = published(
        unit, story, "2025-01-20T09:00:00+08:00", kind=ev.PublicationKind.WITHDRAWAL
    )
    await bus.send(repeat, wait=False)
    await bus.send(withdrawal)

    explained = await bus.get(f"/units/{unit}/ledger", period="month:2025-01")
    points = {e["kind"]: [] for e in explained["entries"]}
    for entry in explained["entries"]:
        points[entry["kind"]].append(entry["points"])
    assert points["submitted"] == [1, 1]
    assert points["approved"] == [2]
    assert points["returned"] == [0]
    assert points["publication"] == [2, 3]  # website 2, wechat 3; the repeat is not there
    assert points["media_bonus"] == [1.5]  # photo 0.5 + video 1
    # highest level only: provincial headline 40, then national normal 30 and city
    # in-depth 15 add nothing, national headline 60 adds 20, the same outlet again 0
    assert points["adoption"] == [40, 0, 0, 20, 0]
    assert points["leader_bonus"] == [40]
    assert points["withdrawal"] == [-6.5]  # reverses 2 + 3 + 1.5
    assert all(e["rule_version"] == 1 for e in explained["entries"])
    assert all(e["source_event_id"] for e in explained["entries"])
    assert explained["ledger_points"] == 1 + 1 + 2 + 5 + 1.5 + 60 + 40 - 6.5
    assert "同一媒体" in explained["entries"][-2]["reason"]

    summary = await bus.get(f"/units/{unit}/summary", period="2025-01")
    assert summary["submitted"] == 2
    assert summary["approved"] == 1
    assert summary["returned"] == 1
    assert summary["published"] == 0  # published, then withdrawn
    assert summary["adopted"] == 1
    assert (summary["adopted_national"], summary["adopted_provincial"]) == (1, 1)
    assert summary["adopted_city"] == 1
    assert summary["adoption_rate"] == 0.5


async def test_a_rule_change_applies_from_its_version_on_and_old_entries_keep_theirs(
    bus: Bus,
) -> None:
    unit = "dh-dyxx"
    before = submitted(unit, "2023-05-10T09:00:00+08:00")
    await bus.send(before)

    rules = load_default_rules().model_dump(mode="json")
    changed = {**rules, "name": "2023 年中调整", "stories": {**rules["stories"], "submitted": 5}}
    changed["adoption"] = {**rules["adoption"], "mode": "add_up", "same_tier_counts_once": True}
    body = {"rules": changed, "effective_from": "2023-06-01T00:00:00+08:00"}
    refused = await bus.svc.client.put("/rules", json=body, headers=READER)
    assert refused.status_code == 403
    response = await bus.svc.client.put("/rules", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    version = response.json()["version"]
    # and back to the defaults from August, so that later months score as before
    restored = {"rules": rules, "effective_from": "2023-08-01T00:00:00+08:00"}
    assert (await bus.svc.client.put("/rules", json=restored, headers=ADMIN)).status_code == 201
    bad = await bus.svc.client.put("/rules", json={"rules": {"name": "x"}}, headers=ADMIN)
    assert bad.status_code == 422

    story = story_id()
    N, P = ev.OutletLevel.NATIONAL, ev.OutletLevel.PROVINCIAL
    await bus.send(
        submitted(unit, "2023-07-10T09:00:00+08:00", story),
        adoption(unit, story, "2023-07-11T09:00:00+08:00", P, "normal", "省教育报"),
        adoption(unit, story, "2023-07-12T09:00:00+08:00", N, "normal", "中国教育报"),
        adoption(unit, story, "2023-07-13T09:00:00+08:00", N, "normal", "人民日报"),
        submitted(unit, "2023-08-10T09:00:00+08:00"),
    )
    may = await bus.get(f"/units/{unit}/ledger", period="month:2023-05")
    assert [(e["points"], e["rule_version"]) for e in may["entries"]] == [(1, 1)]
    july = await bus.get(f"/units/{unit}/ledger", period="month:2023-07")
    assert [(e["kind"], e["points"], e["rule_version"]) for e in july["entries"]] == [
        ("submitted", 5, version),
        ("adoption", 20, version),
        ("adoption", 30, version),  # add up: a second level adds
        ("adoption", 0, version),  # the same level counts once
    ]
    august = await bus.get(f"/units/{unit}/ledger", period="month:2023-08")
    assert [(e["points"], e["rule_version"]) for e in august["entries"]] == [(1, version + 1)]
    versions = await bus.get("/rules")
    assert [v["version"] for v in versions][:2] == [version + 1, version]


async def test_adoption_rate_is_adopted_over_submitted_and_rolls_up_to_county_and_city(
    bus: Bus,
) -> None:
    stories = [story_id() for _ in range(4)]
    await bus.send(
        *(
            submitted("xs-dyzx", f"2025-02-0{i + 1}T09:00:00+08:00", s)
            for i, s in enumerate(stories)
        ),
        adoption(
            "xs-dyzx",
            stories[0],
            "2025-02-10T09:00:00+08:00",
            ev.OutletLevel.CITY,
            "normal",
            "江城日报",
        ),
        adoption(
            "xs-dyzx",
            stories[1],
            "2025-02-11T09:00:00+08:00",
            ev.OutletLevel.COUNTY,
            "normal",
            "西山报",
        ),
        submitted("xs-dezx", "2025-02-12T09:00:00+08:00"),
    )
    school = await bus.get("/units/xs-dyzx/summary", period="month:2025-02")
    assert (school["submitted"], school["adopted"], school["adoption_rate"]) == (4, 2, 0.5)
    assert school["adopted_city_or_higher"] == 1
    county = await bus.get("/units/xs/summary", period="month:2025-02")
    assert county["submitted"] >= 5 and county["adopted"] >= 2
    city = await bus.get("/units/jc/summary", period="month:2025-02")
    assert city["submitted"] >= county["submitted"]
    ranking = await bus.get("/rankings", period="month:2025-02", scope="schools", county="xs")
    assert row_of(ranking, "xs-dyzx")["adoption_rate"] == 0.5


async def test_a_school_without_submissions_is_flagged_and_its_quota_shortfall_deducted(
    bus: Bus,
) -> None:
    await bus.send(*(submitted(s.code, "2025-03-15T09:00:00+08:00") for s in ORG.schools("nl")[:5]))
    ranking = await bus.get(
        "/rankings", period="month:2025-03", scope="schools", county="nl", shortfalls="true"
    )
    plain = await bus.get("/rankings", period="month:2025-03", scope="schools", county="nl")
    assert "quota_shortfalls" not in plain and plain["rows"] == ranking["rows"]
    silent = row_of(ranking, "nl-zyzx")
    assert silent["zero_submissions"] is True
    assert silent["eligible"] is False and silent["award_rank"] is None
    assert silent["quota_short"] == 1 and silent["points"] == -1  # 1 story a month missing
    active = row_of(ranking, "nl-syxx")
    assert active["eligible"] is True and active["quota_short"] == 0
    line = next(q for q in ranking["quota_shortfalls"] if q["unit"] == "nl-zyzx")
    assert (line["quota"], line["target"], line["actual"], line["deduction"]) == (
        "school-monthly-story", 1, 0, 1.0,
    )  # fmt: skip

    counties = await bus.get("/rankings", period="year:2025", scope="counties", shortfalls="true")
    nl = row_of(counties, "nl")
    yearly = next(
        q for q in counties["quota_shortfalls"]
        if q["unit"] == "nl" and q["quota"] == "county-yearly-city-adoption"
    )  # fmt: skip
    assert yearly["shortfall"] == 120 - yearly["actual"] > 0
    assert nl["quota_deductions"] == yearly["deduction"] == yearly["shortfall"]


async def test_an_orange_alert_alone_vetoes_nobody_a_determination_does_and_lifting_restores(
    bus: Bus,
) -> None:
    school, calm = "qh-syxx", "qh-dyzx"  # the sentiment tests write about qh-dyxx
    story, incident = story_id(), f"inc-{uuid.uuid4().hex[:8]}"
    minor = f"inc-{uuid.uuid4().hex[:8]}"
    await bus.send(
        submitted(school, "2024-03-05T09:00:00+08:00", story),
        adoption(
            school,
            story,
            "2024-03-06T09:00:00+08:00",
            ev.OutletLevel.NATIONAL,
            "headline",
            "人民日报",
        ),
        submitted(school, "2024-07-05T09:00:00+08:00"),
        submitted(calm, "2024-03-05T09:00:00+08:00"),
        flagged(calm, "2024-05-02T10:00:00+08:00", minor, ev.Severity.BLUE),
        flagged(
            school, "2024-05-20T10:00:00+08:00", incident, ev.Severity.YELLOW, topic="校园欺凌"
        ),
        flagged(
            school,
            "2024-05-21T10:00:00+08:00",
            incident,
            ev.Severity.RED,
            serious=True,
            kind=ev.FlagKind.ESCALATION,
            topic="校园欺凌",
        ),
    )
    year = await bus.get("/rankings", period="year:2024", scope="schools", county="qh")
    assert row_of(year, school)["veto"] is None  # the machine's red alone decides nothing
    assert row_of(year, school)["award_rank"] == 1
    candidates = await bus.get("/veto-candidates", period="year:2024", headers=CITY_OFFICER)
    mine = [c for c in candidates if c["incident_id"] == incident]
    assert [(c["unit"], c["severity"], c["determined"]) for c in mine] == [(school, "red", False)]
    assert not any(c["incident_id"] == minor for c in candidates)
    county_officer = auth("qh", "opinion_officer")
    refused = await bus.svc.client.get(
        "/veto-candidates", params={"period": "year:2024"}, headers=county_officer
    )
    assert refused.status_code == 403 and "市教育局" in refused.json()["message"]
    assert refused.json()["code"] == "city_office_only"

    why = "食堂事件经调查属实，多家媒体报道，严重损害教育系统形象"
    await bus.send(
        determined(school, "2024-06-03T15:00:00+08:00", incident, "2024-05-20T10:00:00+08:00", why)
    )
    year = await bus.get("/rankings", period="year:2024", scope="schools", county="qh")
    vetoed = row_of(year, school)
    assert vetoed["veto"]["incident_id"] == incident
    assert vetoed["veto"]["topic"] == "校园欺凌"
    assert vetoed["veto"]["reason"] == why
    assert vetoed["veto"]["decided_by"] == "office-chief"
    assert vetoed["veto"]["decided_by_name"] == "局办公室主任"
    assert vetoed["veto"]["decided_at"] == "2024-06-03T15:00:00+08:00"
    assert vetoed["eligible"] is False and vetoed["award_rank"] is None
    assert vetoed["rank"] == 1  # still shown in its place, with its cause
    assert vetoed["serious_incidents"] == 1
    assert row_of(year, calm)["veto"] is None  # a minor incident does not veto
    assert row_of(year, calm)["incidents"] == 1
    march = await bus.get("/rankings", period="month:2024-03", scope="schools", county="qh")
    assert row_of(march, school)["veto"] is None  # before the incident
    july = await bus.get("/rankings", period="month:2024-07", scope="schools", county="qh")
    assert row_of(july, school)["veto"]["incident_id"] == incident

    await bus.send(
        determined(
            school, "2024-06-10T09:00:00+08:00", incident, "2024-05-20T10:00:00+08:00",
            "复核后认定为个别家长投诉，已妥善处置，不构成严重负面舆情", lifted=True,
        )
    )  # fmt: skip
    year = await bus.get("/rankings", period="year:2024", scope="schools", county="qh")
    restored = row_of(year, school)
    assert restored["veto"] is None and restored["award_rank"] == 1
    assert restored["serious_incidents"] == 0
    candidates = await bus.get("/veto-candidates", period="year:2024", headers=CITY_OFFICER)
    assert [c["determined"] for c in candidates if c["incident_id"] == incident] == [False]


async def test_periods_are_cut_at_midnight_in_shanghai(bus: Bus) -> None:
    unit = "bc-syxx"
    late_september = submitted(unit, "2025-09-30T15:59:00+00:00")  # 23:59 in Shanghai
    october = submitted(unit, "2025-09-30T16:30:00+00:00")  # 00:30 on 1 October
    new_year = submitted(unit, "2025-12-31T16:00:00+00:00")  # 2026-01-01 00:00
    await bus.send(late_september, october, new_year)
    expect = {
        "month:2025-09": 1, "month:2025-10": 1, "quarter:2025-Q3": 1, "quarter:2025-Q4": 1,
        "half:2025-H2": 2, "year:2025": 2, "month:2026-01": 1,
    }  # fmt: skip
    for period, count in expect.items():
        summary = await bus.get(f"/units/{unit}/summary", period=period)
        assert summary["submitted"] == count, period
    explained = await bus.get(f"/units/{unit}/ledger", period="2025-10")
    assert [e["source_event_id"] for e in explained["entries"]] == [str(october.event_id)]
    response = await bus.svc.client.get("/rankings", params={"period": "2025-13"}, headers=READER)
    assert response.status_code == 422 and "期间" in response.json()["message"]


async def test_ranking_ties_are_broken_by_level_then_rate_and_equal_results_share_a_place(
    bus: Bus,
) -> None:
    N, P = ev.OutletLevel.NATIONAL, ev.OutletLevel.PROVINCIAL
    events = []
    # every school scores 32 points; the order comes from the tie rule
    plans = {
        "lj-syxx": [(N, "normal")],  # a national adoption wins the tie
        "lj-dyxx": [(P, "in_depth")],  # two submissions: rate 0.5, last
        "lj-dezx": [(P, "in_depth")],
        "lj-dyzx": [(P, "in_depth")],  # identical to lj-dezx: unit code decides
    }
    for unit, adoptions in plans.items():
        story = story_id()
        events.append(submitted(unit, "2025-04-03T09:00:00+08:00", story))
        for level, placement in adoptions:
            events.append(
                adoption(unit, story, "2025-04-04T09:00:00+08:00", level, placement, "报")
            )
        if unit == "lj-dyxx":
            events.append(submitted(unit, "2025-04-05T09:00:00+08:00"))
        else:
            events.append(channel(unit, story, "2025-04-06T09:00:00+08:00", "bulletin_board"))
    await bus.send(*events)
    ranking = await bus.get("/rankings", period="month:2025-04", scope="schools", county="lj")
    top = [r["unit"] for r in ranking["rows"][:4]]
    assert top == ["lj-syxx", "lj-dezx", "lj-dyzx", "lj-dyxx"]
    assert {r["points"] for r in ranking["rows"][:4]} == {32}
    # identical results share their place (并列); the next place is skipped
    assert [r["rank"] for r in ranking["rows"][:4]] == [1, 2, 2, 4]
    assert [r["award_rank"] for r in ranking["rows"][:4]] == [1, 2, 2, 4]
    assert "并列" in ranking["tie_rule"]


async def test_the_bulletin_reads_as_an_official_notice_with_names_and_number_formats(
    bus: Bus,
) -> None:
    response = await bus.svc.client.get(
        "/bulletins/month:2025-04.xlsx", params={"scope": "schools", "county": "lj"}, headers=READER
    )
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["通报", "零报送单位", "任务缺口", "舆情事件"]
    ranking = await bus.get("/rankings", period="month:2025-04", scope="schools", county="lj")
    notice = book["通报"]
    assert notice["A1"].value == "江城市教育局关于2025年4月临江市学校教育宣传工作情况的通报"
    assert notice["A2"].value.startswith("江城市教育局办公室")
    paragraph = notice["A3"].value
    submitted = sum(r["submitted"] for r in ranking["rows"])
    assert f"共报送{submitted}篇" in paragraph
    assert "临江市实验小学（32分）" in paragraph  # the first place, by name
    zero_names = [r["name"] for r in ranking["rows"] if r["zero_submissions"]]
    assert f"报送信息为零的单位有{len(zero_names)}个" in paragraph
    assert zero_names[0] in paragraph
    header_row = [c.value for c in notice[5]]
    assert header_row[:4] == ["名次", "评奖名次", "单位名称", "所属县区"]
    rows = list(notice.iter_rows(min_row=6, max_row=5 + len(ranking["rows"])))
    assert [r[2].value for r in rows] == [r["name"] for r in ranking["rows"]]
    assert {r[3].value for r in rows} == {"临江市"}
    rate = header_row.index("采用率")
    first = rows[0]
    assert isinstance(first[rate].value, (int, float)) and first[rate].number_format == "0.0%"
    assert isinstance(first[header_row.index("总得分")].value, (int, float))
    assert notice.print_area and notice.oddFooter.center.text
    assert notice.column_dimensions["C"].width >= 2 * len("临江市实验小学")
    assert "并列" in notice.cell(row=7 + len(ranking["rows"]), column=1).value

    zero = [r[0] for r in book["零报送单位"].iter_rows(min_row=3, values_only=True)]
    assert sorted(zero) == sorted(zero_names)
    gaps = list(book["任务缺口"].iter_rows(min_row=3, values_only=True))
    assert {g[0] for g in gaps} == set(zero)
    assert {g[3] for g in gaps} == {"2025年4月"}

    veto_year = await bus.svc.client.get(
        "/bulletins/year:2024.xlsx", params={"scope": "schools", "county": "qh"}, headers=READER
    )
    incidents = list(
        load_workbook(io.BytesIO(veto_year.content))["舆情事件"].iter_rows(values_only=True)
    )
    assert incidents[1][:4] == ("单位名称", "所属县区", "主题", "预警级别")
    rows_of_school = [r for r in incidents[2:] if r[0] == "清河县实验小学"]
    assert rows_of_school and all(isinstance(r[4], datetime) for r in rows_of_school)
    assert any(r[3] == "红色（特别重大）" and r[5] == "是" for r in rows_of_school)

    counties = await bus.svc.client.get(
        "/bulletins/year:2024.xlsx", params={"scope": "counties"}, headers=READER
    )
    county_book = load_workbook(io.BytesIO(counties.content))
    assert county_book["通报"]["A1"].value == "江城市教育局关于2024年度各县区教育宣传工作情况的通报"
    county_incidents = list(county_book["舆情事件"].iter_rows(min_row=3, values_only=True))
    assert any(r[0] == "清河县实验小学" for r in county_incidents)  # its schools' incidents

    page = await bus.svc.client.get(
        "/bulletins/month:2025-04.html", params={"county": "lj"}, headers=READER
    )
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "<h1>江城市教育局关于2025年4月临江市学校教育宣传工作情况的通报</h1>" in page.text
    assert "@page" in page.text and "临江市实验小学" in page.text

    csv_response = await bus.svc.client.get(
        "/bulletins/month:2025-04.csv", params={"county": "lj"}, headers=READER
    )
    lines = csv_response.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("名次,评奖名次,单位名称")
    assert lines[1].split(",")[2] == "临江市实验小学"


async def test_campaign_progress_counts_tagged_stories_and_photos_and_shows_shortfalls(
    bus: Bus,
) -> None:
    code = f"c{uuid.uuid4().hex[:6]}"
    await bus.send(*(photo("dh", f"2025-05-0{i}T09:00:00+08:00", code) for i in range(1, 4)))
    body = {
        "code": code, "name": "建设教育强市专题宣传", "period": "year:2025",
        "tasks": [
            {"code": "county-photos", "owner_type": "county", "what": "photos", "count": 3,
             "deadline": "2025-05-31T23:59:59+08:00"},
            {"code": "school-stories", "owner_type": "school", "what": "stories", "count": 2,
             "deadline": "2025-06-30T23:59:59+08:00", "points": 8},
        ],
    }  # fmt: skip
    assert (await bus.svc.client.post("/campaigns", json=body, headers=READER)).status_code == 403
    created = await bus.svc.client.post("/campaigns", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["completed_tasks_awarded"] == 1  # dh had its photos already
    again = await bus.svc.client.post("/campaigns", json=body, headers=ADMIN)
    assert again.status_code == 409

    await bus.send(
        photo("xs", "2025-05-20T09:00:00+08:00", code),
        photo("xs", "2025-06-02T09:00:00+08:00", code),  # after the deadline: late
        submitted("dh-zyzx", "2025-06-01T09:00:00+08:00", campaign=code),
        submitted("dh-zyzx", "2025-06-02T09:00:00+08:00", campaign=code),
        submitted("dh-zxyey", "2025-06-03T09:00:00+08:00", campaign=code),
    )
    progress = await bus.get(f"/campaigns/{code}/progress")
    photos = {u["unit"]: u for u in progress["tasks"][0]["units"]}
    assert (photos["dh"]["delivered"], photos["dh"]["status"]) == (3, "done")
    assert (photos["xs"]["delivered"], photos["xs"]["late"], photos["xs"]["shortfall"]) == (1, 1, 2)
    assert photos["xs"]["status"] == "short"
    stories = {u["unit"]: u for u in progress["tasks"][1]["units"]}
    assert stories["dh-zyzx"]["status"] == "done"
    assert stories["dh-zxyey"]["shortfall"] == 1
    assert {(s["task"], s["unit"]) for s in progress["shortfalls"]} >= {
        ("county-photos", "xs"),
        ("school-stories", "dh-zxyey"),
    }

    may = await bus.get("/units/dh/ledger", period="month:2025-05")
    assert [(e["kind"], e["points"]) for e in may["entries"]] == [("campaign_completed", 5)]
    june = await bus.get("/units/dh-zyzx/ledger", period="month:2025-06")
    assert ("campaign_completed", 8) in [(e["kind"], e["points"]) for e in june["entries"]]
    assert (await bus.get("/units/xs/summary", period="2025-05"))["campaign_tasks_completed"] == 0


async def test_campaigns_and_rule_versions_are_listed_a_page_at_a_time(bus: Bus) -> None:
    for n in range(5):
        body = {
            "code": f"p{uuid.uuid4().hex[:6]}", "name": f"专题{n}", "period": "year:2025",
            "tasks": [{"code": "t", "owner_type": "school", "what": "stories", "count": 1,
                       "deadline": "2025-12-31T23:59:59+08:00"}],
        }  # fmt: skip
        created = await bus.svc.client.post("/campaigns", json=body, headers=ADMIN)
        assert created.status_code == 201, created.text
    everything = await bus.svc.client.get("/campaigns", params={"limit": 200}, headers=READER)
    assert "x-next-cursor" not in everything.headers
    expected = [c["code"] for c in everything.json()]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await bus.svc.client.get("/campaigns", params=params, headers=READER)
        assert page.status_code == 200 and len(page.json()) <= 2
        seen += [c["code"] for c in page.json()]
        cursor = page.headers.get("x-next-cursor")
        if cursor is None:
            break
    assert seen == expected and len(set(seen)) == len(seen) >= 5
    created = [c["created_at"] for c in everything.json()]
    assert created == sorted(created, reverse=True)
    first = await bus.svc.client.get("/rules", params={"limit": 1}, headers=READER)
    assert first.status_code == 200 and len(first.json()) == 1
    refused = await bus.svc.client.get("/campaigns", params={"cursor": "x"}, headers=READER)
    assert refused.status_code == 422 and refused.json()["code"]


async def test_duplicate_and_replayed_events_change_nothing(bus: Bus) -> None:
    unit, story = "qs-syxx", story_id()
    events = [
        submitted(unit, "2025-07-03T09:00:00+08:00", story),
        reviewed(unit, story, "2025-07-04T09:00:00+08:00", ev.Decision.APPROVED),
        channel(unit, story, "2025-07-05T09:00:00+08:00", "website"),
        adoption(
            unit, story, "2025-07-06T09:00:00+08:00", ev.OutletLevel.CITY, "headline", "江城日报"
        ),
        flagged(unit, "2025-07-07T09:00:00+08:00", f"inc-{uuid.uuid4().hex[:6]}", ev.Severity.BLUE),
    ]
    await bus.send(*events)
    before = await bus.get(f"/units/{unit}/ledger", period="month:2025-07")
    ranking_before = await bus.get("/rankings", period="month:2025-07", county="qs")

    await bus.redeliver(*events)
    sentinel = adoption(
        unit, story, "2025-07-08T09:00:00+08:00", ev.OutletLevel.CITY, "normal", "江城晚报"
    )
    await bus.send(sentinel)
    replay = await apply_events(db=bus.svc.runtime.db, org=ORG, events=events, count_metrics=False)
    assert replay.entries == 0 and replay.duplicates > 0

    after = await bus.get(f"/units/{unit}/ledger", period="month:2025-07")
    assert after["entries"][: len(before["entries"])] == before["entries"]
    assert [e["kind"] for e in after["entries"][len(before["entries"]) :]] == ["adoption"]
    assert after["entries"][-1]["points"] == 0  # city level already scored in full
    assert after["points"] == before["points"]
    ranking_after = await bus.get("/rankings", period="month:2025-07", county="qs")
    row_after, row_before = row_of(ranking_after, unit), row_of(ranking_before, unit)
    assert row_after["points"] == row_before["points"]
    assert row_after["submitted"] == 1 and row_after["incidents"] == 1


async def test_an_event_for_an_unknown_unit_is_dead_lettered_and_its_neighbours_still_score(
    bus: Bus,
) -> None:
    good = [submitted("dh-zyzx", "2025-08-04T09:00:00+08:00") for _ in range(4)]
    stray = submitted("dh-zyzx", "2025-08-04T10:00:00+08:00")
    stray = stray.model_copy(
        update={"payload": stray.payload.model_copy(update={"unit_path": ev.UnitPath(
            city="jc", county="dh", unit="dh-nowhere")})}
    )  # fmt: skip
    await bus.send(good[0], good[1], stray, good[2], good[3], wait=False)
    await bus.applied(*good)

    def stray_letter(records: list[Any]) -> bool:
        return any(
            str(stray.event_id).encode() in (r.value or b"")
            and header(r, "dlq-service") == "scoring"
            for r in records
        )

    records = await read_topic(tp.STORY_SUBMITTED.dlq, until=stray_letter)
    letter = next(r for r in records if str(stray.event_id).encode() in (r.value or b""))
    assert header(letter, "dlq-reason-kind") == "rejected"
    assert "dh-nowhere" in (header(letter, "dlq-reason") or "")
    ids = [str(e.event_id) for e in good]
    entries = await bus.svc.runtime.db[LEDGER].find({"source_event_id": {"$in": ids}}).to_list()
    assert sorted(e["kind"] for e in entries) == ["submitted"] * 4


async def test_a_rebuild_from_the_topics_equals_the_live_rankings(bus: Bus) -> None:
    settings = settings_for("scoring", mongo_database=DATABASE)
    result = await rebuild(settings, f"{DATABASE}_rebuilt")
    assert result["events"] > 0 and result["entries"] > 0, result
    client = bus.svc.runtime.mongo
    live, rebuilt = client[DATABASE], client[f"{DATABASE}_rebuilt"]
    # every document the same, but for the rule version an entry names: the rule test adds
    # versions that start in the past, which the live entries of later months predate
    hidden = {LEDGER: {"rule_version": 0}, UNIT_MONTHS: None, SUMMARIES: {"rev": 0}}
    for collection, projection in hidden.items():
        ours = await live[collection].find({}, projection).sort("_id", 1).to_list()
        theirs = await rebuilt[collection].find({}, projection).sort("_id", 1).to_list()
        assert len(theirs) == len(ours), collection
        differing = [(a, b) for a, b in zip(theirs, ours, strict=True) if a != b]
        assert not differing, (
            collection,
            [
                {k: (a.get(k), b.get(k)) for k in a if a.get(k) != b.get(k)}
                for a, b in differing[:2]
            ],
        )
    now = datetime.now(UTC)
    checks: list[tuple[str, rankings.Scope, str | None]] = [
        ("month:2025-01", "schools", "dh"), ("month:2023-07", "schools", "dh"),
        ("year:2024", "schools", "qh"), ("quarter:2025-Q2", "schools", None),
        ("half:2025-H1", "counties", None), ("month:2025-04", "schools", "lj"),
        ("year:2025", "counties", None), ("month:2025-07", "schools", "qs"),
    ]  # fmt: skip
    for label, scope, county in checks:
        ranked = partial(
            rankings.ranking, org=ORG, period=parse_period(label), scope=scope, county=county,
            now=now,
        )  # fmt: skip
        expected = await ranked(db=live)
        assert await ranked(db=rebuilt) == expected, label
        # the summaries hold what the months hold
        assert await ranked(db=live, use_summaries=False) == expected, label


def joined_later(code: str, day: date) -> OrgTree:
    """The example city with one school that joined the desk on ``day``."""
    units = {**ORG.units, code: replace(ORG.unit(code), joined=day)}
    return OrgTree(city=ORG.city, units=units)


NOVEMBER = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


async def test_a_city_that_went_live_this_month_has_no_deductions_before_or_during_it(
    bus: Bus,
) -> None:
    await bus.send(submitted("xs-dyzx", "2026-11-05T09:00:00+08:00"))
    calendar = Calendar(go_live=date(2026, 11, 1), now=NOVEMBER)
    db = bus.svc.runtime.db

    async def ranking(label: str) -> dict[str, Any]:
        return await rankings.ranking(
            db=db, org=ORG, period=parse_period(label), scope="schools", county="xs",
            calendar=calendar,
        )  # fmt: skip

    october = await ranking("month:2026-10")
    assert october["quota_shortfalls"] == []
    assert {r["points"] for r in october["rows"]} == {0}
    assert october["ranked"] is False and "不排名次" in october["note"]
    assert {r["rank"] for r in october["rows"]} == {None}
    assert not any(r["zero_submissions"] for r in october["rows"])  # not on the desk yet
    month, quarter, year = [
        row_of(await ranking(label), "xs-dyzx")
        for label in ("month:2026-11", "quarter:2026-Q4", "year:2026")
    ]
    assert month["points"] == quarter["points"] == year["points"] == 1
    assert month["quota_deductions"] == quarter["quota_deductions"] == year["quota_deductions"] == 0
    assert (await ranking("year:2026"))["quota_shortfalls"] == []


async def test_a_city_that_went_live_in_spring_counts_whole_months_and_the_year_adds_up(
    bus: Bus,
) -> None:
    school, newcomer = "xs-dezx", "xs-dyxx"
    await bus.send(
        submitted(school, "2026-04-20T09:00:00+08:00"),  # before its first whole month
        submitted(school, "2026-05-06T09:00:00+08:00"),
        submitted(school, "2026-07-06T09:00:00+08:00"),
        submitted(newcomer, "2026-10-08T09:00:00+08:00"),
    )
    db = bus.svc.runtime.db
    org = joined_later(newcomer, date(2026, 9, 1))
    calendar = Calendar(go_live=date(2026, 4, 15), now=NOVEMBER)
    april = await rankings.ranking(
        db=db, org=org, period=parse_period("month:2026-04"), scope="schools", county="xs",
        calendar=calendar,
    )  # fmt: skip
    assert april["quota_shortfalls"] == []
    year = await rankings.ranking(
        db=db, org=org, period=parse_period("year:2026"), scope="schools", county="xs",
        calendar=calendar,
    )  # fmt: skip
    short = sorted(q["period"] for q in year["quota_shortfalls"] if q["unit"] == school)
    assert short == ["month:2026-06", "month:2026-08", "month:2026-09", "month:2026-10"]
    late = sorted(q["period"] for q in year["quota_shortfalls"] if q["unit"] == newcomer)
    assert late == ["month:2026-09"]  # joined in September, submitted in October
    assert not any(q["period"] == "year:2026" for q in year["quota_shortfalls"])  # not ended

    summary = await unitviews.summary(
        db=db, unit=ORG.unit(school), period=parse_period("year:2026"), calendar=calendar
    )
    assert [m["month"] for m in summary["months"] if m["counted"]] == [
        "2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10",
    ]  # fmt: skip
    assert summary["points"] == 3 - 4
    assert summary["points"] == round(
        sum(m["points"] for m in summary["months"]) - summary["longer_quota_deductions"], 2
    )
    for label in ("quarter:2026-Q2", "quarter:2026-Q3", "half:2026-H2"):
        part = await unitviews.summary(
            db=db, unit=ORG.unit(school), period=parse_period(label), calendar=calendar
        )
        inside = [m for m in summary["months"] if m["month"] in parse_period(label).months()]
        assert part["points"] == round(sum(m["points"] for m in inside), 2), label

    # once the year has ended its own quota counts, in proportion to the 8 whole months
    january = Calendar(go_live=date(2026, 4, 15), now=datetime(2027, 1, 10, tzinfo=UTC))
    ended = await unitviews.summary(
        db=db, unit=ORG.unit(school), period=parse_period("year:2026"), calendar=january
    )
    yearly = next(q for q in ended["quotas"] if q["quota"] == "urban-school-yearly-adoption")
    assert yearly["target"] == 20 and yearly["months"][0] == "2026-05"
    assert ended["longer_quota_deductions"] == yearly["deduction"] == 10
    assert ended["points"] == round(
        sum(m["points"] for m in ended["months"]) - ended["longer_quota_deductions"], 2
    )


BAD_PERIODS = ("year:0000", "year:9999", "month:0000-01", "quarter:9999-Q4", "2026-13", "2026-Q5",
               "month:2026-1", "year:2026x", "year:١٢٣٤", "2022", "year:2030")  # fmt: skip


@pytest.mark.parametrize("bad", BAD_PERIODS)
async def test_a_bad_period_is_a_422_with_a_chinese_message_everywhere(bus: Bus, bad: str) -> None:
    client = bus.svc.client
    answers = [
        await client.get("/rankings", params={"period": bad}, headers=READER),
        await client.get("/units/dh-syxx/ledger", params={"period": bad}, headers=READER),
        await client.get("/units/dh/summary", params={"period": bad}, headers=READER),
        await client.get("/veto-candidates", params={"period": bad}, headers=CITY_OFFICER),
        *[
            await client.get(f"/bulletins/{quote(bad, safe='')}.{kind}", headers=READER)
            for kind in ("xlsx", "csv", "html")
        ],
    ]
    for answer in answers:
        assert answer.status_code == 422, (answer.request.url, answer.text)
        assert answer.json()["code"] == "invalid_period" and "期间" in answer.json()["message"]


async def test_bad_rule_numbers_unknown_units_and_scopes_are_refused_in_chinese(bus: Bus) -> None:
    client = bus.svc.client
    rules = load_default_rules().model_dump(mode="json")
    for path, value in (("submitted", "NaN"), ("submitted", -1), ("approved", "Infinity")):
        body = {"rules": {**rules, "stories": {**rules["stories"], path: value}}}
        answer = await client.put("/rules", json=body, headers=ADMIN)
        assert answer.status_code == 422, answer.text
        refusal = answer.json()
        assert refusal["code"] == "invalid_request" and "不符合要求" in refusal["message"]
    unknown = await client.get(
        "/rankings", params={"period": "2025-01", "county": "nowhere"}, headers=READER
    )
    assert unknown.status_code == 422 and "没有县区" in unknown.json()["message"]
    scope = await client.get(
        "/rankings", params={"period": "2025-01", "scope": "planets"}, headers=READER
    )
    assert scope.status_code == 422 and "排行范围" in scope.json()["message"]
    missing = await client.get(
        "/units/nowhere/summary", params={"period": "2025-01"}, headers=READER
    )
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_unit"
    assert "没有单位" in missing.json()["message"]


async def test_veto_causes_and_incidents_show_only_in_the_callers_scope(bus: Bus) -> None:
    """Uses the determination of the veto test above (清河县实验小学, 2024)."""
    school, incident = ORG.schools("qh")[3].code, f"inc-{uuid.uuid4().hex[:8]}"
    await bus.send(
        submitted(school, "2024-09-02T09:00:00+08:00"),
        flagged(school, "2024-09-03T10:00:00+08:00", incident, ev.Severity.ORANGE),
        determined(school, "2024-09-05T10:00:00+08:00", incident, "2024-09-03T10:00:00+08:00",
                   "家长群视频传播，经核实属实"),
    )  # fmt: skip
    own = auth(school, "correspondent")
    county = auth("qh", "reviewer_county")
    stranger = auth("dh-syxx", "correspondent")
    city = READER

    async def veto_of(headers: dict[str, str]) -> dict[str, Any]:
        ranking = await bus.get("/rankings", headers=headers, period="year:2024", county="qh")
        return row_of(ranking, school)["veto"]  # type: ignore[no-any-return]

    assert (await veto_of(own))["reason"] == "家长群视频传播，经核实属实"
    assert (await veto_of(county))["incident_id"] == incident
    assert (await veto_of(city))["decided_by"] == "office-chief"
    hidden = await veto_of(stranger)
    assert hidden["hidden"] is True and hidden["topic"] is None  # published, not its cause
    assert "reason" not in hidden and "incident_id" not in hidden

    async def incident_units(headers: dict[str, str]) -> set[str]:
        answer = await bus.svc.client.get(
            "/bulletins/year:2024.xlsx", params={"county": "qh"}, headers=headers
        )
        sheet = load_workbook(io.BytesIO(answer.content))["舆情事件"]
        return {r[0] for r in sheet.iter_rows(min_row=3, values_only=True)}

    name = ORG.unit(school).name
    assert name in await incident_units(own)
    assert await incident_units(own) == {name}
    assert name in await incident_units(county)
    assert await incident_units(stranger) == set()
    zero = await bus.svc.client.get(
        "/bulletins/year:2024.xlsx", params={"county": "qh"}, headers=stranger
    )
    assert load_workbook(io.BytesIO(zero.content))["零报送单位"].max_row > 2  # published anyway

    settings = bus.svc.runtime.settings
    settings.scoring_rankings_public = False  # type: ignore[attr-defined]
    try:
        closed = await bus.svc.client.get(
            "/rankings", params={"period": "year:2024", "county": "qh"}, headers=stranger
        )
        assert closed.status_code == 403 and "本单位" in closed.json()["message"]
        assert (await veto_of(county))["incident_id"] == incident
        city_wide = await bus.svc.client.get(
            "/rankings", params={"period": "year:2024"}, headers=county
        )
        assert city_wide.status_code == 403
    finally:
        settings.scoring_rankings_public = True  # type: ignore[attr-defined]
