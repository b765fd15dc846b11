"""The scorers and the ranking order as tables, without a server: each event kind and
each rule option (adoption mode, same tier once, leader bonus, channel points, the
serious severity, rule versions by effective time) gives exactly the entries the
bureau's rules say."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import pytest

from services.scoring.models import RuleVersion
from services.scoring.periods import Calendar, parse_period
from services.scoring.quotas import QuotaTable
from services.scoring.rankings import LEVEL_ORDER, Member, assign_ranks, short_of
from services.scoring.scorers import SCORERS, Scoring
from services.scoring.service import RuleBook, load_default_rules
from services.scoring.summaries import Layout
from shared import events as ev
from shared.kafka import PermanentError
from shared.orgtree import example_city

ORG = example_city()
SCHOOL = "dh-dyxx"
PATH = ev.UnitPath(city="jc", county="dh", unit=SCHOOL)
# 2026-11-30 23:30 in Shanghai: still November there, already 30 November in UTC
LATE_NOVEMBER = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
L = ev.OutletLevel
P = ev.Placement


def book(**changes: Any) -> RuleBook:
    """The shipped rules with ``changes`` merged into their sections (one version)."""
    data = load_default_rules().model_dump(mode="json")
    for section, values in changes.items():
        data[section] = {**data[section], **values}
    return RuleBook([version(1, datetime(2000, 1, 1, tzinfo=UTC), data)])


def version(number: int, starts: datetime, rules: dict[str, Any]) -> RuleVersion:
    return RuleVersion.model_validate(
        {"version": number, "effective_from": starts, "created_at": starts, "created_by": "t",
         "rules": rules}
    )  # fmt: skip


def scoring(rules: RuleBook | None = None) -> Scoring:
    return Scoring(book=rules or book(), org=ORG, story_history={})


def at(event: ev.Envelope, moment: datetime = LATE_NOVEMBER) -> Any:
    return event.model_copy(update={"occurred_at": moment})


def apply(score: Scoring, *events: ev.Envelope) -> list[dict[str, Any]]:
    """Score ``events`` in order; the entries they added."""
    before = len(score.entries)
    for event in events:
        # each scorer takes its own event type: the table's values have no common type
        scorer = cast(Callable[[Scoring, Any], None], SCORERS[event.type])
        scorer(score, event)
    return score.entries[before:]


def submitted(story: str = "s-1", campaign: str | None = None) -> ev.StorySubmittedEvent:
    return at(ev.StorySubmittedEvent.build(
        ev.StorySubmitted(
            story_id=story, version=1, unit_path=PATH, title="科技节", body="正文" * 100,
            category="校园动态", campaign=campaign, event_date=date(2026, 11, 28),
            submitted_at=LATE_NOVEMBER, author="li",
        ),
        producer="submission", county="dh", unit=SCHOOL,
    ))  # fmt: skip


def reviewed(decision: ev.Decision, *, final: bool, level: ev.ReviewLevel = ev.ReviewLevel.CITY
             ) -> ev.StoryReviewedEvent:  # fmt: skip
    return at(ev.StoryReviewedEvent.build(
        ev.StoryReviewed(
            story_id="s-1", version=1, case_id="c-1", unit_path=PATH, level=level,
            decision=decision, final=final, reviewer="wang", reviewer_unit="jc",
            decided_at=LATE_NOVEMBER,
        ),
        producer="review", county="dh", unit=SCHOOL,
    ))  # fmt: skip


def published(kind: ev.PublicationKind = ev.PublicationKind.CHANNEL, *, channel: str | None = None,
              outlet: str | None = None, level: ev.OutletLevel = L.BUREAU,
              placement: ev.Placement = P.NORMAL, leader: bool = False, photos: int = 0,
              videos: int = 0, campaign: str | None = None) -> ev.StoryPublishedEvent:  # fmt: skip
    return at(ev.StoryPublishedEvent.build(
        ev.StoryPublished(
            story_id="s-1", version=1, unit_path=PATH, kind=kind, channel=channel, outlet=outlet,
            outlet_level=level, placement=placement, leader_instruction=leader,
            published_at=LATE_NOVEMBER, photo_count=photos, video_count=videos,
            campaign=campaign,
        ),
        producer="review", county="dh", unit=SCHOOL,
    ))  # fmt: skip


def adopted(outlet: str, level: ev.OutletLevel, placement: ev.Placement = P.NORMAL,
            leader: bool = False) -> ev.StoryPublishedEvent:  # fmt: skip
    return published(
        ev.PublicationKind.ADOPTION, outlet=outlet, level=level, placement=placement, leader=leader
    )


def flagged(kind: ev.FlagKind, severity: ev.Severity, *, negative: bool = True,
            decided_by: str | None = None, reason: str | None = None,
            incident_at: datetime | None = None) -> ev.OpinionFlaggedEvent:  # fmt: skip
    return at(ev.OpinionFlaggedEvent.build(
        ev.OpinionFlagged(
            kind=kind, incident_id="inc-1", county="dh", school=SCHOOL, severity=severity,
            negative=negative, score=0.9, topic="food", flagged_at=LATE_NOVEMBER,
            decided_by=decided_by, reason=reason, incident_at=incident_at,
        ),
        producer="sentiment", county="dh", unit=SCHOOL,
    ))  # fmt: skip


# ---- stories ---------------------------------------------------------------------------
def test_a_submitted_story_scores_once_in_the_shanghai_month_of_its_event() -> None:
    score = scoring()
    [entry] = apply(score, submitted(campaign="kejijie"))
    assert (entry["_id"], entry["kind"], entry["points"]) == ("submitted|s-1", "submitted", 1.0)
    assert (entry["unit"], entry["county"], entry["period"], entry["year"]) == (
        SCHOOL, "dh", "2026-11", 2026)  # fmt: skip
    assert entry["counts"] == {"submitted": 1}
    assert [item["_id"] for item in score.items] == ["kejijie|stories|s-1"]


@pytest.mark.parametrize(
    ("decision", "final", "expected"),
    [
        (ev.Decision.APPROVED, True, ("approved", 2.0, {"approved": 1})),
        (ev.Decision.APPROVED, False, None),  # a step on the route scores nothing
        (ev.Decision.RETURNED, False, ("returned", 0.0, {"returned": 1})),
        (ev.Decision.REJECTED, False, ("rejected", 0.0, {"rejected": 1})),
        (ev.Decision.OVERRIDDEN, False, None),
    ],
)
def test_a_review_decision_scores_by_its_outcome(
    decision: ev.Decision, final: bool, expected: tuple[str, float, dict[str, int]] | None
) -> None:
    entries = apply(scoring(), reviewed(decision, final=final))
    assert [(e["kind"], e["points"], e["counts"]) for e in entries] == (
        [expected] if expected else []
    )


def test_story_points_follow_the_rules_in_force() -> None:
    rules = book(stories={"submitted": 1.5, "approved": 4, "returned": 0.25, "rejected": 0.5})
    entries = apply(
        scoring(rules),
        submitted(),
        reviewed(ev.Decision.RETURNED, final=False),
        reviewed(ev.Decision.REJECTED, final=False),
        reviewed(ev.Decision.APPROVED, final=True),
    )
    assert [e["points"] for e in entries] == [1.5, 0.25, 0.5, 4.0]


# ---- the bureau's channels -------------------------------------------------------------
@pytest.mark.parametrize(
    ("channels", "points", "published_counts"),
    [
        (["website"], [2.0], [1]),
        (["wechat"], [3.0], [1]),
        (["a-new-channel"], [1.0], [1]),  # default_channel_points
        (["website", "website"], [2.0], [1]),  # the same channel counts once per story
        (["website", "wechat"], [2.0, 3.0], [1, 0]),  # each channel scores, published once
    ],
)
def test_each_channel_scores_its_points_once_per_story(
    channels: list[str], points: list[float], published_counts: list[int]
) -> None:
    entries = apply(scoring(), *(published(channel=c) for c in channels))
    assert [e["points"] for e in entries] == points
    assert [e["counts"].get("published", 0) for e in entries] == published_counts


@pytest.mark.parametrize(
    ("photos", "videos", "bonus"), [(0, 0, None), (3, 0, 0.5), (0, 1, 1.0), (2, 1, 1.5)]
)
def test_photos_and_videos_add_a_bonus_on_the_first_publication_only(
    photos: int, videos: int, bonus: float | None
) -> None:
    score = scoring()
    first = apply(score, published(channel="website", photos=photos, videos=videos))
    again = apply(score, published(channel="wechat", photos=photos, videos=videos))
    bonuses = [e["points"] for e in first + again if e["kind"] == "media_bonus"]
    assert bonuses == ([bonus] if bonus else [])


def test_a_withdrawal_reverses_every_publication_and_bonus_still_standing() -> None:
    score = scoring()
    apply(score, published(channel="website", photos=1), published(channel="wechat"))
    [withdrawal] = apply(score, published(ev.PublicationKind.WITHDRAWAL))
    assert withdrawal["points"] == -(2.0 + 0.5 + 3.0)
    assert withdrawal["counts"] == {"published": -1}
    assert len(withdrawal["detail"]["reverses"]) == 3
    # nothing left to reverse: a second withdrawal writes nothing
    assert apply(score, published(ev.PublicationKind.WITHDRAWAL)) == []
    # published again after the withdrawal: scores anew, with its bonus
    again = apply(score, published(channel="website", photos=1))
    assert [(e["kind"], e["points"]) for e in again] == [("publication", 2.0), ("media_bonus", 0.5)]


# ---- outside adoption (采用) -------------------------------------------------------------
HIGHEST, ADD_UP = "highest_only", "add_up"
ADOPTION_CASES = [
    # mode, same tier once, adoptions (outlet, level, placement) -> points of each
    (HIGHEST, True, [("县报", L.COUNTY, P.NORMAL)], [5.0]),
    (HIGHEST, True, [("市报", L.CITY, P.HEADLINE)], [20.0]),
    (HIGHEST, True, [("省报", L.PROVINCIAL, P.IN_DEPTH)], [30.0]),
    # a higher level later adds the difference, a lower one nothing
    (HIGHEST, True, [("县报", L.COUNTY, P.NORMAL), ("市报", L.CITY, P.NORMAL)], [5.0, 5.0]),
    (HIGHEST, True, [("市报", L.CITY, P.NORMAL), ("县报", L.COUNTY, P.NORMAL)], [10.0, 0.0]),
    # highest_only tops up to a better placement at the same level, same tier or not
    (HIGHEST, True, [("县报", L.COUNTY, P.NORMAL), ("县台", L.COUNTY, P.HEADLINE)], [5.0, 5.0]),
    (ADD_UP, True, [("县报", L.COUNTY, P.NORMAL), ("市报", L.CITY, P.NORMAL)], [5.0, 10.0]),
    (ADD_UP, True, [("县报", L.COUNTY, P.NORMAL), ("县台", L.COUNTY, P.NORMAL)], [5.0, 0.0]),
    (ADD_UP, False, [("县报", L.COUNTY, P.NORMAL), ("县台", L.COUNTY, P.NORMAL)], [5.0, 5.0]),
    # the same outlet never counts twice, whatever the mode
    (ADD_UP, False, [("县报", L.COUNTY, P.NORMAL), ("县报", L.COUNTY, P.NORMAL)], [5.0, 0.0]),
    (ADD_UP, True, [("局网站", L.BUREAU, P.HEADLINE)], [0.0]),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "same_tier_once", "adoptions", "points"), ADOPTION_CASES)
def test_adoptions_score_by_level_placement_and_mode(
    mode: str,
    same_tier_once: bool,
    adoptions: list[tuple[str, ev.OutletLevel, ev.Placement]],
    points: list[float],
) -> None:
    rules = book(adoption={"mode": mode, "same_tier_counts_once": same_tier_once})
    entries = apply(scoring(rules), *(adopted(*adoption) for adoption in adoptions))
    assert [e["points"] for e in entries] == points


def test_adoption_counts_each_story_once_per_measure() -> None:
    entries = apply(
        scoring(), adopted("县报", L.COUNTY), adopted("市报", L.CITY), adopted("省报", L.PROVINCIAL)
    )
    assert [e["counts"] for e in entries] == [
        {"adopted": 1, "adopted_county": 1, "adopted_county_or_higher": 1},
        {"adopted_city": 1, "adopted_city_or_higher": 1},
        {"adopted_provincial": 1},
    ]
    # the bureau's own platform is not an outside adoption
    [bureau] = apply(scoring(), adopted("局网站", L.BUREAU))
    assert bureau["counts"] == {}


@pytest.mark.parametrize(
    ("mode", "instructions", "bonuses"),
    [
        ("highest_only", [L.CITY], [10.0]),
        ("highest_only", [L.CITY, L.PROVINCIAL], [10.0, 10.0]),  # topped up to 20
        ("highest_only", [L.PROVINCIAL, L.CITY], [20.0, 0.0]),
        ("add_up", [L.CITY, L.PROVINCIAL], [10.0, 20.0]),
        ("add_up", [L.CITY, L.CITY], [10.0, 0.0]),  # one bonus per level
    ],
)
def test_a_leaders_instruction_adds_its_bonus_by_mode(
    mode: str, instructions: list[ev.OutletLevel], bonuses: list[float]
) -> None:
    rules = book(adoption={"mode": mode, "same_tier_counts_once": False})
    events = [adopted(f"outlet-{n}", level, leader=True) for n, level in enumerate(instructions)]
    entries = apply(scoring(rules), *events)
    assert [e["points"] for e in entries if e["kind"] == "leader_bonus"] == bonuses


def test_no_instruction_no_bonus() -> None:
    entries = apply(scoring(), adopted("市报", L.CITY, leader=False))
    assert [e["kind"] for e in entries] == ["adoption"]


# ---- public opinion and the veto ---------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "severity", "serious_from", "kinds"),
    [
        (ev.FlagKind.ALERT, ev.Severity.YELLOW, "orange", ["incident"]),
        (ev.FlagKind.ALERT, ev.Severity.ORANGE, "orange", ["incident", "veto_candidate"]),
        (ev.FlagKind.ESCALATION, ev.Severity.RED, "orange", ["incident", "veto_candidate"]),
        (ev.FlagKind.ALERT, ev.Severity.ORANGE, "red", ["incident"]),
        (ev.FlagKind.ALERT, ev.Severity.BLUE, "blue", ["incident", "veto_candidate"]),
        (ev.FlagKind.STORY_SCREENING, ev.Severity.RED, "orange", []),  # a story, no incident
    ],
)
def test_an_alert_records_the_incident_and_proposes_a_veto_at_the_serious_severity(
    kind: ev.FlagKind, severity: ev.Severity, serious_from: str, kinds: list[str]
) -> None:
    rules = book(opinion={"serious_severity": serious_from})
    entries = apply(scoring(rules), flagged(kind, severity))
    assert [e["kind"] for e in entries] == kinds
    assert all(e["points"] == 0 for e in entries)  # only the bureau's determination vetoes


def test_an_item_that_is_not_negative_records_nothing() -> None:
    assert apply(scoring(), flagged(ev.FlagKind.ALERT, ev.Severity.RED, negative=False)) == []


def test_a_determination_falls_on_the_year_of_the_incident() -> None:
    last_year = datetime(2025, 12, 31, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai, 31 December
    [entry] = apply(
        scoring(),
        flagged(ev.FlagKind.DETERMINATION, ev.Severity.ORANGE, decided_by="zhang",
                reason="经调查属实", incident_at=last_year),
    )  # fmt: skip
    assert (entry["kind"], entry["year"], entry["counts"]) == (
        "determination", 2025, {"serious_incidents": 1})  # fmt: skip
    [lifted] = apply(
        scoring(),
        flagged(ev.FlagKind.DETERMINATION_LIFTED, ev.Severity.ORANGE, decided_by="zhang",
                reason="复核不属实", incident_at=last_year),
    )  # fmt: skip
    assert (lifted["kind"], lifted["counts"]) == ("determination_lifted", {"serious_incidents": -1})


@pytest.mark.parametrize(
    ("decided_by", "reason"), [(None, "理由"), ("zhang", None), ("zhang", " ")]
)
def test_a_determination_without_who_or_why_is_refused(
    decided_by: str | None, reason: str | None
) -> None:
    event = flagged(
        ev.FlagKind.DETERMINATION, ev.Severity.ORANGE, decided_by=decided_by, reason=reason
    )
    with pytest.raises(PermanentError, match="who decided and why"):
        apply(scoring(), event)


def test_an_event_of_a_unit_outside_the_tree_is_refused() -> None:
    event = submitted()
    outside = ev.UnitPath(city="jc", county="dh", unit="nowhere")
    event = event.model_copy(
        update={"payload": event.payload.model_copy(update={"unit_path": outside})}
    )
    with pytest.raises(PermanentError, match="unknown unit"):
        apply(scoring(), event)


# ---- rule versions -------------------------------------------------------------------------
def test_each_event_scores_under_the_version_in_force_when_it_happened() -> None:
    rules = load_default_rules().model_dump(mode="json")
    second = {**rules, "stories": {**rules["stories"], "submitted": 3}}
    switch = datetime(2026, 11, 15, tzinfo=UTC)
    versions = RuleBook(
        [version(2, switch, second), version(1, datetime(2000, 1, 1, tzinfo=UTC), rules)]
    )
    before = at(submitted("s-old"), switch - timedelta(seconds=1))
    after = at(submitted("s-new"), switch)
    entries = apply(scoring(versions), before, after)
    assert [(e["points"], e["rule_version"]) for e in entries] == [(1.0, 1), (3.0, 2)]
    # an event older than every version scores under the earliest
    [ancient] = apply(scoring(versions), at(submitted("s-1999"), datetime(1999, 1, 1, tzinfo=UTC)))
    assert ancient["rule_version"] == 1


# ---- quotas and the ranking order ------------------------------------------------------------
def quota_lines(
    label: str, months: dict[str, dict[str, float]], calendar: Calendar
) -> list[dict[str, Any]]:
    """The quota lines of the example school over the period ``label`` with these
    unit-month figures, as a ranking computes them."""
    period = parse_period(label)
    layout = Layout(period)
    member = Member(unit=ORG.unit(SCHOOL), values=layout.row(months), layout=layout)
    table = QuotaTable(period=period, book=book(), calendar=calendar)
    return [dict(line) for line in table.lines(member)]


def test_a_monthly_quota_counts_only_whole_ended_months_since_the_go_live() -> None:
    calendar = Calendar(go_live=date(2026, 9, 10), now=LATE_NOVEMBER)  # September is partial
    lines = quota_lines("quarter:2026-Q4", {"2026-10": {"submitted": 1}}, calendar)
    monthly = [line for line in lines if line["quota"] == "school-monthly-story"]
    # October ended and was met; November still runs; December has not begun
    assert [(line["period"], line["met"]) for line in monthly] == [("month:2026-10", True)]
    # September was not a whole month on the desk
    assert quota_lines("quarter:2026-Q3", {}, calendar) == []


def test_a_missed_monthly_quota_deducts_its_points() -> None:
    calendar = Calendar(go_live=date(2026, 10, 1), now=LATE_NOVEMBER)
    lines = quota_lines("month:2026-10", {}, calendar)
    assert [(line["quota"], line["shortfall"], line["deduction"]) for line in lines] == [
        ("school-monthly-story", 1, 1.0)
    ]


@pytest.mark.parametrize("label", ["month:2026-10", "quarter:2026-Q3", "half:2026-H2", "year:2026"])
@pytest.mark.parametrize("go_live", [date(2026, 1, 1), date(2026, 4, 15)])
def test_the_rankings_quota_totals_are_the_sums_of_the_quota_lines(
    label: str, go_live: date
) -> None:
    """A ranking adds up each unit's shortfall and deduction on all units at once; a
    unit's own view lists its lines. Both must say the same for every kind of unit."""
    rng = random.Random(label)
    period = parse_period(label)
    layout = Layout(period)
    calendar = Calendar(go_live=go_live, now=LATE_NOVEMBER)
    table = QuotaTable(period=period, book=book(), calendar=calendar)
    units = [*ORG.schools(), *ORG.counties()]
    members = [
        Member(
            u, [rng.choice((0.0, 0.0, 1.0, 2.0, 3.5, 40.0)) for _ in range(layout.width)], layout
        )
        for u in units
    ]
    totals = table.totals(members)
    assert any(short for short, _ in totals)  # some quota was missed: the check bites
    for member, total in zip(members, totals, strict=True):
        assert total == short_of(table.lines(member)), member.unit.code


def row(unit: str, points: float, *, eligible: bool = True, **adopted: int) -> dict[str, Any]:
    levels = {f"adopted_{level}": adopted.get(level, 0) for level in LEVEL_ORDER}
    return {"unit": unit, "points": points, "adoption_rate": 0.0, "eligible": eligible, **levels}


def test_ranks_order_by_points_then_adoption_levels_and_share_a_place_when_equal() -> None:
    rows = [
        row("a", 10), row("b", 12), row("c", 10, provincial=1), row("d", 10),
        row("e", 12, eligible=False),
    ]  # fmt: skip
    assert assign_ranks(rows)
    assert [(r["unit"], r["rank"], r["award_rank"]) for r in rows] == [
        ("b", 1, 1), ("e", 1, None), ("c", 3, 2), ("a", 4, 3), ("d", 4, 3),
    ]  # fmt: skip


def test_when_every_row_is_equal_nobody_is_placed() -> None:
    rows = [row("a", 0), row("b", 0)]
    assert not assign_ranks(rows)
    assert {(r["rank"], r["award_rank"]) for r in rows} == {(None, None)}
