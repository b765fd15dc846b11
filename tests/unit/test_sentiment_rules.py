"""The sentiment rules as tables, without a server or the model: an item's severity from
keywords and sources, an incident's severity from volume and velocity over time (the
clock injected), which incident an item joins, alert deadlines per severity, escalation
one level up, and what each alert action may follow."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast

import pytest

from services.sentiment import alerts, incidents, rules
from services.sentiment.classifier import Analysis, normalise
from services.sentiment.models import SentimentConfig, VelocityRule
from services.sentiment.runtime import Sentiment
from services.sentiment.similarity import bigrams
from shared.auth import Principal
from shared.events import Severity
from shared.orgtree import example_city
from shared.refusals import Refusal

CONFIG = rules.read_config_file()
ORG = example_city()
# 09:00 in Shanghai on a school day
START = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
S = Severity


def analysis(text: str, score: float, terms: list[str] | None = None) -> Analysis:
    """What the model hands the rules (the model itself: test_sentiment_model.py)."""
    return Analysis(text=text, score=score, topic_scores={"other": 0.1}, terms=terms or [])


class Clock:
    """The time the service reads, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    ticking = Clock(START)
    monkeypatch.setattr(incidents, "utcnow", ticking)
    return ticking


# ---- one item ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "score", "source", "negative", "severity"),
    [
        ("食堂饭菜又凉又少", 0.9, "forum", True, S.BLUE),
        ("孩子在学校骨折了没人管", 0.9, "forum", True, S.YELLOW),
        ("学生坠楼，家长要说法", 0.9, "forum", True, S.ORANGE),
        ("央视曝光这所学校乱收费", 0.9, "forum", True, S.RED),
        ("食堂饭菜又凉又少", 0.9, "hot_search", True, S.ORANGE),  # a source raises it
        ("食堂饭菜又凉又少", 0.9, "superior", True, S.RED),
        ("孩子骨折", 0.9, "media_in_depth", True, S.RED),  # the higher of word and source
        ("学生坠楼的传言不实", 0.3, "hot_search", False, S.BLUE),  # not negative: no severity
        ("刚好在阈值上", 0.5, "forum", True, S.BLUE),
    ],
)
def test_an_items_severity_comes_from_its_words_and_its_source(
    text: str, score: float, source: str, negative: bool, severity: Severity
) -> None:
    verdict = rules.apply_rules(
        config=CONFIG, analysis=analysis(normalise(text), score), source=source
    )
    assert (verdict.negative, verdict.severity) == (negative, severity)


def test_a_severity_word_explains_the_verdict_and_sensitive_words_are_listed() -> None:
    verdict = rules.apply_rules(
        config=CONFIG,
        analysis=analysis(normalise("食堂饭菜变质，学生食物中毒住院"), 0.95, terms=["变质"]),
    )
    assert verdict.severity == S.YELLOW
    assert verdict.explanation[0] == "变质" and "住院" in verdict.explanation
    assert verdict.sensitive_words == ["食物中毒"]
    assert verdict.topic == "food"  # three lexicon words outweigh the model's "other"


def test_the_threshold_and_the_lexicon_weight_are_the_bureaus_to_tune() -> None:
    strict = CONFIG.model_copy(update={"negative_threshold": 0.95, "lexicon_weight": 0.0})
    verdict = rules.apply_rules(config=strict, analysis=analysis(normalise("食堂饭菜"), 0.9))
    assert not verdict.negative and verdict.topic == "other"


# ---- an incident over time -----------------------------------------------------------------
def items(n: int, *, every: timedelta, start: datetime = START) -> Iterator[dict[str, Any]]:
    for k in range(n):
        yield {
            "_id": f"forum:{start.isoformat()}:{k}", "text": "食堂饭菜变质", "topic": "food",
            "school": "dh-dyxx", "county": "dh", "source": "forum", "severity": "blue",
            "published_at": start + k * every,
        }  # fmt: skip


def fold(config: SentimentConfig, stream: Iterator[dict[str, Any]]) -> incidents.IncidentFold:
    first = next(stream)
    incident = incidents._new_incident(item=first, signature=set())
    for item in itertools.chain([first], stream):
        incident.add(config=config, item=item)
    return incident


@pytest.mark.parametrize(
    ("count", "every", "severity"),
    [
        (29, timedelta(minutes=1), S.BLUE),  # velocity: 30 within 60 minutes
        (30, timedelta(minutes=1), S.ORANGE),
        (30, timedelta(minutes=3), S.BLUE),  # the same 30 over 87 minutes: not fast enough
        (49, timedelta(minutes=20), S.BLUE),  # volume: 50 within 24 hours
        (50, timedelta(minutes=20), S.YELLOW),
        (50, timedelta(minutes=30), S.BLUE),  # 50 over 24.5 hours: the first fell out
    ],
)
def test_an_incidents_severity_rises_with_volume_and_velocity(
    clock: Clock, count: int, every: timedelta, severity: Severity
) -> None:
    incident = fold(CONFIG, items(count, every=every))
    assert incident.doc["severity"] == severity.value
    assert incident.doc["item_count"] == count
    assert incident.doc["updated_at"] == START  # the injected clock, not the items' time


def test_a_severity_once_reached_stays_when_the_burst_is_over(clock: Clock) -> None:
    incident = fold(CONFIG, items(30, every=timedelta(minutes=1)))
    later = START + timedelta(days=2)
    clock.now = later
    incident.add(config=CONFIG, item=next(items(1, every=timedelta(0), start=later)))
    assert incident.doc["severity"] == "orange" and incident.doc["updated_at"] == later
    # only the minutes within the longest rule's horizon are kept
    assert list(incident.doc["minutes"]) == [later.strftime("%Y%m%d%H%M")]


def test_a_bureaus_own_velocity_rule_applies(clock: Clock) -> None:
    config = CONFIG.model_copy(deep=True)
    config.incident.velocity = [VelocityRule(severity=S.RED, items=5, minutes=10)]
    assert fold(config, items(5, every=timedelta(minutes=2))).doc["severity"] == "red"
    assert fold(config, items(5, every=timedelta(minutes=3))).doc["severity"] == "blue"


def test_an_item_with_a_higher_severity_raises_the_incident(clock: Clock) -> None:
    stream = items(2, every=timedelta(minutes=1))
    incident = fold(CONFIG, stream)
    worse = {**next(items(1, every=timedelta(0))), "_id": "forum:worse", "severity": "orange"}
    incident.add(config=CONFIG, item=worse)
    assert incident.doc["severity"] == "orange"
    assert incident.doc["item_ids"][-1] == "forum:worse"


def one(at: datetime, topic: str = "food", text: str = "食堂饭菜变质") -> dict[str, Any]:
    return {**next(items(1, every=timedelta(0), start=at)), "topic": topic, "text": text}


@pytest.mark.parametrize(
    ("later", "topic", "text", "joins"),
    [
        (timedelta(hours=47), "food", "另一件事", True),  # same topic within the window
        (timedelta(hours=49), "food", "食堂饭菜变质", False),  # outside the 48-hour window
        (timedelta(hours=1), "fees", "食堂饭菜变质了", True),  # another topic, similar text
        (timedelta(hours=1), "fees", "补课费太贵", False),
    ],
)
def test_an_item_joins_the_incident_of_its_school_with_its_topic_or_words(
    clock: Clock, later: timedelta, topic: str, text: str, joins: bool
) -> None:
    first = one(START)
    signature = bigrams(normalise(first["text"]))
    incident = incidents._new_incident(item=first, signature=signature)
    incident.add(config=CONFIG, item=first)
    item = one(START + later, topic, text)
    found = incidents._matching_incident(
        config=CONFIG, folds=[incident], item=item,
        signature=bigrams(normalise(item["text"])),
    )  # fmt: skip
    assert (found is incident) == joins


# ---- alerts: deadlines, escalation and actions ----------------------------------------------
@pytest.mark.parametrize(
    ("severity", "hours"), [(S.BLUE, 24), (S.YELLOW, 12), (S.ORANGE, 4), (S.RED, 1)]
)
def test_an_alert_must_be_acknowledged_sooner_the_more_severe_it_is(
    severity: Severity, hours: int
) -> None:
    assert alerts.deadline(CONFIG, severity, START) == START + timedelta(hours=hours)


def test_an_unacknowledged_alert_climbs_one_level_at_a_time_to_the_city() -> None:
    assert alerts.NEXT_LEVEL == {"school": "county", "county": "city"}
    assert "city" not in alerts.NEXT_LEVEL  # the city is the last owner


@pytest.mark.parametrize(
    ("action", "allowed", "becomes"),
    [
        ("acknowledge", {"open"}, "acknowledged"),
        ("respond", {"acknowledged", "responding"}, "responding"),
        ("close", {"open", "acknowledged", "responding"}, "closed"),
        ("comment", {"open", "acknowledged", "responding", "closed"}, None),
    ],
)
def test_each_alert_action_follows_from_its_states(
    action: str, allowed: set[str], becomes: str | None
) -> None:
    assert alerts.ACTIONS[action] == (frozenset(allowed), becomes)


@pytest.mark.parametrize(
    ("unit", "owner", "may"),
    [
        ("dh-dyxx", "dh-dyxx", True),
        ("dh", "dh-dyxx", True),  # the county above the school
        ("jc", "dh-dyxx", True),
        ("dh-dezx", "dh-dyxx", False),  # a neighbouring school
        ("dh-dyxx", "dh", False),  # escalated past the school: no longer its to act on
        ("xs", "dh", False),
    ],
)
def test_the_owner_unit_or_a_unit_above_it_acts_on_an_alert(
    unit: str, owner: str, may: bool
) -> None:
    person = Principal(sub="p", name="某人", unit=unit, roles=frozenset())
    assert alerts.can_act_on(org=ORG, principal=person, alert={"owner_unit": owner}) is may


class Officers:
    """What deciding on an action reads of the service: the tree and units' names."""

    org = ORG

    def unit_name(self, code: str | None) -> str:
        unit = ORG.get(code) if code else None
        return unit.name if unit is not None else (code or "")


@pytest.mark.parametrize(
    ("unit", "state", "action", "comment", "refusal"),
    [
        ("dh-dyxx", "open", "acknowledge", "", None),
        ("dh", "acknowledged", "respond", "", None),
        ("jc", "responding", "close", "已妥善处理", None),
        ("dh-dyxx", "open", "escalate", "", (404, "unknown_action", "没有这个操作")),
        ("dh-dezx", "open", "acknowledge", "", (403, "alert_not_yours", "东湖区第一小学负责")),
        ("dh-dyxx", "closed", "acknowledge", "", (409, "alert_wrong_state", "已办结")),
        ("dh-dyxx", "open", "close", " ", (409, "comment_required", "请写明情况")),
    ],
)
def test_an_alert_action_is_refused_with_a_code_and_chinese_words_when_it_may_not_be_taken(
    unit: str, state: str, action: str, comment: str, refusal: tuple[int, str, str] | None
) -> None:
    alert = {"_id": "alert-1", "owner_unit": "dh-dyxx", "state": state}
    person = Principal(sub="p", name="某人", unit=unit, roles=frozenset())
    check = partial(
        # the decision reads only the tree and names: the rest of the service stays out
        alerts.check_action, runtime=cast(Sentiment, Officers()), principal=person, alert=alert,
        action=action,
        comment=comment,
    )  # fmt: skip
    if refusal is None:
        check()
        return
    with pytest.raises(Refusal) as refused:
        check()
    status, code, words = refusal
    assert (refused.value.status, refused.value.code) == (status, code)
    assert words in refused.value.message
