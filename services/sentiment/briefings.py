"""Opinion briefings (舆情简报): for a day, a week or a month and a scope (the city or one
county), the items counted by day (by hour for a day) and by topic beside the period
before, the incidents opened, escalated and closed with their handling, and the items
that matter most. Names, not codes; times in the bureau's zone. A period not yet over is
counted up to now and compared with the same stretch of the period before."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pymongo import DESCENDING

from services.sentiment.periods import KIND_NAMES, Period, local_text
from services.sentiment.queries import scope_filter
from services.sentiment.runtime import SERVICE, Sentiment
from services.sentiment.wording import (
    SEVERITY_NAMES,
    STATE_NAMES,
    TOPIC_NAMES,
    action_name,
    source_name,
)
from shared.auth import Principal
from shared.clock import local
from shared.events import Severity
from shared.refusals import Refusal

TOP_ITEMS = 10
MAX_INCIDENTS = 100
# alerts changed since the period began that are read to find its escalations and closures
MAX_ALERTS = 2000


class Count(BaseModel):
    label: str
    total: int = 0
    negative: int = 0


class TopicCount(Count):
    topic: str
    previous_total: int = 0
    previous_negative: int = 0


class IncidentLine(BaseModel):
    incident_id: str
    unit: str
    topic: str
    severity: str
    item_count: int
    first_item_at: datetime
    state: str
    owner: str
    handling: list[str]


class TopItem(BaseModel):
    id: str
    unit: str
    source: str
    published_at: datetime
    severity: str
    topic: str
    score: float
    text: str
    link: str | None
    reasons: list[str]


class Briefing(BaseModel):
    title: str
    kind: str
    period: str
    period_label: str
    previous_period: str
    previous_label: str
    scope: str
    scope_name: str
    start: datetime
    end: datetime
    generated_at: datetime
    ended: bool
    note: str | None
    totals: TopicCount  # the whole period (topic "all") beside the period before
    trend: list[Count]
    topics: list[TopicCount]
    new_incidents: list[IncidentLine]
    escalated_incidents: list[IncidentLine]
    closed_incidents: list[IncidentLine]
    top_items: list[TopItem]


def briefing_scope(*, runtime: Sentiment, principal: Principal, unit: str | None) -> str:
    """The city or a county; a county officer gets their own county only."""
    org = runtime.org
    code = unit or principal.unit
    found = org.get(code)
    if found is None:
        raise Refusal(404, "unknown_unit", f"没有编码为 {code} 的单位")
    if found.type not in ("city", "county"):
        raise Refusal(422, "briefing_scope", "简报按全市或区县编制，请选择市或区县")
    if principal.unit != org.city.code and not org.contains(principal.unit, code):
        raise Refusal(403, "unit_out_of_scope", "该单位不在您的管辖范围内")
    return code


def _scope_query(runtime: Sentiment, scope: str) -> dict[str, Any]:
    org = runtime.org
    as_principal = Principal(sub="briefing", name="", unit=scope, roles=frozenset())
    return scope_filter(org=org, principal=as_principal)


# what a briefing needs of each item of the period: read once, counted in this process
# (one read per period instead of one aggregation per day, each of which scanned the
# items again: a month took 33 passes)
SLIM = {"published_at": 1, "topic": 1, "negative": 1, "severity": 1, "score": 1}


async def _read(
    runtime: Sentiment, scope: dict[str, Any], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The period's items, a few fields each."""
    window = {"published_at": {"$gte": start, "$lt": end}}
    return await runtime.db.items.find({**scope, **window}, projection=SLIM).to_list()


def _counts(items: list[dict[str, Any]]) -> dict[tuple[str, bool], int]:
    """Items per (topic, negative)."""
    return dict(Counter((item["topic"], bool(item["negative"])) for item in items))


def _trend(period: Period, items: list[dict[str, Any]], end: datetime) -> list[Count]:
    """Items per step of the trend (hours of a day, days of a week or month) up to ``end``."""
    steps = [step for step in period.buckets() if step[1] < end]
    starts = [step_start for _, step_start, _ in steps]
    trend = [Count(label=label) for label, _, _ in steps]
    for item in items:
        index = bisect_right(starts, item["published_at"]) - 1
        if index >= 0:
            trend[index].total += 1
            trend[index].negative += bool(item["negative"])
    return trend


def _topic_table(
    now: dict[tuple[str, bool], int], before: dict[tuple[str, bool], int]
) -> list[TopicCount]:
    topics = sorted(
        {topic for topic, _ in [*now, *before]},
        key=lambda t: -(now.get((t, True), 0) + now.get((t, False), 0)),
    )
    return [
        TopicCount(
            topic=topic,
            label=TOPIC_NAMES.get(topic, topic),
            total=now.get((topic, True), 0) + now.get((topic, False), 0),
            negative=now.get((topic, True), 0),
            previous_total=before.get((topic, True), 0) + before.get((topic, False), 0),
            previous_negative=before.get((topic, True), 0),
        )
        for topic in topics
    ]


def _incident_line(
    runtime: Sentiment, incident: dict[str, Any], alert: dict[str, Any] | None
) -> IncidentLine:
    steps = []
    for step in (alert or {}).get("history", []):
        who = "系统" if step["by"] == SERVICE else (step.get("by_name") or "舆情管理员")
        text = f"{local_text(step['at'])} {action_name(step['action'])}（{who}）"
        if step.get("comment") and step["by"] != SERVICE:
            text += f"：{step['comment']}"
        steps.append(text)
    if (incident.get("determination") or {}).get("determined"):
        steps.append(f"已认定为严重负面舆情事件：{incident['determination']['reason']}")
    source = alert or incident
    return IncidentLine(
        incident_id=incident["_id"],
        unit=runtime.unit_name(incident.get("school") or incident["county"]),
        topic=TOPIC_NAMES.get(incident["topic"], incident["topic"]),
        severity=SEVERITY_NAMES.get(source["severity"], source["severity"]),
        item_count=source.get("item_count", incident["item_count"]),
        first_item_at=local(incident["first_item_at"]),
        state=STATE_NAMES.get(alert["state"], "") if alert else "未生成预警",
        owner=runtime.unit_name(alert["owner_unit"]) if alert else "",
        handling=steps,
    )


def _stepped(alert: dict[str, Any], start: datetime, end: datetime, *prefixes: str) -> bool:
    return any(
        start <= step["at"] < end and step["action"].startswith(prefixes)
        for step in alert.get("history", [])
    )


async def _incident_sections(
    runtime: Sentiment, scope: dict[str, Any], start: datetime, end: datetime
) -> tuple[list[IncidentLine], list[IncidentLine], list[IncidentLine]]:
    """Incidents opened in the period; those whose alert was escalated (a level up or a
    higher severity) and those closed in it."""
    db = runtime.db
    opened = await (
        db.incidents.find(
            {**scope, "first_item_at": {"$gte": start, "$lt": end}}, projection={"item_ids": 0}
        )
        .sort("first_item_at", DESCENDING)
        .limit(MAX_INCIDENTS)
        .to_list()
    )
    changed = (
        await db.alerts.find({**scope, "updated_at": {"$gte": start}})
        .sort("updated_at", DESCENDING)
        .limit(MAX_ALERTS)
        .to_list()
    )
    escalated = [a for a in changed if _stepped(a, start, end, "escalated", "severity raised")]
    closed = [a for a in changed if _stepped(a, start, end, "close")]
    wanted = {a["incident_id"] for a in escalated + closed} - {i["_id"] for i in opened}
    others = await db.incidents.find(
        {"_id": {"$in": sorted(wanted)}}, projection={"item_ids": 0}
    ).to_list()
    incidents = {i["_id"]: i for i in [*opened, *others]}
    alert_ids = [i["alert_id"] for i in opened if i.get("alert_id")]
    alerts = {a["_id"]: a for a in changed}
    alerts |= {a["_id"]: a for a in await db.alerts.find({"_id": {"$in": alert_ids}}).to_list()}

    def lines(found: list[dict[str, Any]]) -> list[IncidentLine]:
        return [
            _incident_line(runtime, incidents[a["incident_id"]], a)
            for a in found[:MAX_INCIDENTS]
            if a["incident_id"] in incidents
        ]

    new = [_incident_line(runtime, i, alerts.get(i.get("alert_id") or "")) for i in opened]
    return new, lines(escalated), lines(closed)


async def _top_items(runtime: Sentiment, items: list[dict[str, Any]]) -> list[TopItem]:
    """The most severe negative items, the strongest first within a severity."""
    negative = [item for item in items if item["negative"]]
    negative.sort(key=lambda item: (-Severity(item["severity"]).rank, -item["score"]))
    ids = [item["_id"] for item in negative[:TOP_ITEMS]]
    docs = {doc["_id"]: doc for doc in await runtime.db.items.find({"_id": {"$in": ids}}).to_list()}
    found = [docs[i] for i in ids if i in docs]
    return [
        TopItem(
            id=doc["_id"],
            unit=runtime.unit_name(doc.get("school") or doc["county"]),
            source=source_name(doc["source"]),
            published_at=local(doc["published_at"]),
            severity=SEVERITY_NAMES.get(doc["severity"], doc["severity"]),
            topic=TOPIC_NAMES.get(doc["topic"], doc["topic"]),
            score=doc["score"],
            text=doc["text"],
            link=doc.get("link"),
            reasons=list(doc.get("explanation", []))[:6],
        )
        for doc in found
    ]


async def build_briefing(*, runtime: Sentiment, scope: str, period: Period) -> Briefing:
    """Everything a briefing says, counted now."""
    now = runtime.clock()
    if period.start > now:
        raise Refusal(422, "period_not_started", f"{period.label}尚未开始，没有可编制的简报")
    ended = period.end <= now
    end = period.end if ended else now
    before = period.previous()
    # an unfinished period is compared with the same stretch of the period before
    before_end = before.end if ended else before.start + (now - period.start)
    query = _scope_query(runtime, scope)
    items = await _read(runtime, query, period.start, end)
    counts = _counts(items)
    previous = _counts(await _read(runtime, query, before.start, before_end))
    new, escalated, closed = await _incident_sections(runtime, query, period.start, end)
    scope_name = runtime.unit_name(scope)
    return Briefing(
        title=f"{scope_name.removesuffix('教育局')}教育舆情{KIND_NAMES[period.kind]}",
        kind=period.kind,
        period=period.code,
        period_label=period.label,
        previous_period=before.code,
        previous_label=before.label + ("同期" if not ended else ""),
        scope=scope,
        scope_name=scope_name,
        start=period.start,
        end=period.end,
        generated_at=local(now),
        ended=ended,
        note=None if ended else f"截至{local_text(now)}，本期尚未结束",
        totals=TopicCount(
            topic="all",
            label="全部",
            total=sum(counts.values()),
            negative=sum(n for (_, negative), n in counts.items() if negative),
            previous_total=sum(previous.values()),
            previous_negative=sum(n for (_, negative), n in previous.items() if negative),
        ),
        trend=_trend(period, items, end),
        topics=_topic_table(counts, previous),
        new_incidents=new,
        escalated_incidents=escalated,
        closed_incidents=closed,
        top_items=await _top_items(runtime, items),
    )
