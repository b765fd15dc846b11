"""The points ledger: every effect of an event is an entry, and the per-unit monthly
projections are recomputed from the entries.

Idempotency has two layers. Each entry has a natural key as ``_id`` (``submitted|<story>``,
``adoption|<event id>``…) and a unique ``(source_event_id, kind)`` index, so a redelivered
or replayed event inserts nothing new. The projection of a ``(unit, month)`` is not
incremented but recomputed from its entries and replaced, so running it again, or after a
crash between the two writes, gives the same result. Both writes take whole batches, and
the live consumers and the rebuild share them: a batch is scored against the ledger
entries of events outside it, so applying the same batch again (a retry, a redelivery)
computes the same entries, which the unique keys then refuse.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError

from services.scoring.models import RuleSet
from services.scoring.periods import month_of, parse_period, year_of
from services.scoring.service import (
    CAMPAIGN_ITEMS,
    CAMPAIGNS,
    LEDGER,
    UNIT_MONTHS,
    Db,
    RuleBook,
    rule_book,
)
from services.scoring.summaries import refresh_summaries
from shared import events as ev
from shared.kafka import PermanentError
from shared.orgtree import OrgTree, Unit

LEDGER_ENTRIES = Counter(
    "citydesk_scoring_ledger_entries_total",
    "Ledger entries written (duplicates of already applied events are not counted).",
    ["kind"],
)
POINTS_AWARDED = Counter(
    "citydesk_scoring_points_awarded_total",
    "Positive points written to the ledger, per county.",
    ["county"],
)

OUTSIDE_LEVELS = (
    ev.OutletLevel.NATIONAL,
    ev.OutletLevel.PROVINCIAL,
    ev.OutletLevel.CITY,
    ev.OutletLevel.COUNTY,
)
CITY_OR_HIGHER = {ev.OutletLevel.NATIONAL, ev.OutletLevel.PROVINCIAL, ev.OutletLevel.CITY}

COUNTERS = (
    "submitted",
    "approved",
    "returned",
    "rejected",
    "published",
    "adopted",
    *(f"adopted_{level.value}" for level in OUTSIDE_LEVELS),
    "adopted_city_or_higher",
    "adopted_county_or_higher",
    "incidents",
    "serious_incidents",
    "campaign_tasks_completed",
)
# entry kinds whose history decides a story's next points
STORY_STATE_KINDS = ("publication", "media_bonus", "withdrawal", "adoption", "leader_bonus")
DUPLICATE_KEY = 11000
REFRESH_CONCURRENCY = 16


@dataclass
class Scoring:
    """What one batch needs: the rules, the org tree, and the ledger history of the
    batch's stories (extended as the batch's own entries are computed)."""

    book: RuleBook
    org: OrgTree
    story_history: dict[str, list[dict[str, Any]]]
    entries: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    def unit(self, code: str | None) -> Unit:
        found = self.org.get(code) if code else None
        if found is None:
            raise PermanentError(f"unknown unit {code!r}")
        return found

    def add(
        self,
        event: ev.Envelope,
        *,
        key: str,
        kind: str,
        unit: Unit,
        points: float,
        reason: str,
        story_id: str | None = None,
        counts: dict[str, int] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        version = self.book.at(event.occurred_at)
        entry = new_entry(
            key=key,
            kind=kind,
            unit=unit,
            at=event.occurred_at,
            points=points,
            reason=reason,
            rule_version=version.version,
            source_event_id=str(event.event_id),
            story_id=story_id,
            counts=counts,
            detail=detail,
        )
        self.entries.append(entry)
        if story_id is not None and kind in STORY_STATE_KINDS:
            self.story_history.setdefault(story_id, []).append(entry)
        return entry

    def add_item(
        self, event: ev.Envelope, *, campaign: str, what: str, item: str, unit: Unit
    ) -> None:
        self.items.append(
            {
                "_id": f"{campaign}|{what}|{item}",
                "campaign": campaign,
                "what": what,
                "unit": unit.code,
                "county": unit.county,
                "occurred_at": event.occurred_at,
                "source_event_id": str(event.event_id),
            }
        )


def new_entry(
    *,
    key: str,
    kind: str,
    unit: Unit,
    at: datetime,
    points: float,
    reason: str,
    rule_version: int,
    source_event_id: str | None,
    story_id: str | None = None,
    counts: dict[str, int] | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ledger entry, attributed to ``unit`` and the Shanghai month of ``at``."""
    return {
        "_id": key,
        "kind": kind,
        "unit": unit.code,
        "county": unit.county,
        "period": month_of(at),
        "year": year_of(at),
        "occurred_at": at,
        "points": round(points, 4),
        "reason": reason,
        "rule_version": rule_version,
        "source_event_id": source_event_id,
        "story_id": story_id,
        "counts": {k: v for k, v in (counts or {}).items() if v},
        "detail": detail or {},
    }


# ---- one event -> its entries ----------------------------------------------------------
def score_submitted(scoring: Scoring, event: ev.StorySubmittedEvent) -> None:
    story = event.payload
    unit = scoring.unit(story.unit_path.unit)
    rules = scoring.book.at(event.occurred_at).rules
    scoring.add(
        event,
        key=f"submitted|{story.story_id}",
        kind="submitted",
        unit=unit,
        points=rules.stories.submitted,
        reason=f"报送稿件《{story.title}》",
        story_id=story.story_id,
        counts={"submitted": 1},
    )
    if story.campaign:
        scoring.add_item(
            event, campaign=story.campaign, what="stories", item=story.story_id, unit=unit
        )


def score_reviewed(scoring: Scoring, event: ev.StoryReviewedEvent) -> None:
    review = event.payload
    unit = scoring.unit(review.unit_path.unit)
    rules = scoring.book.at(event.occurred_at).rules
    if review.decision == ev.Decision.APPROVED and review.final:
        scoring.add(
            event,
            key=f"approved|{review.story_id}",
            kind="approved",
            unit=unit,
            points=rules.stories.approved,
            reason=f"稿件通过终审（{review.level.value}）",
            story_id=review.story_id,
            counts={"approved": 1},
        )
    elif review.decision == ev.Decision.RETURNED:
        scoring.add(
            event,
            key=f"returned|{event.event_id}",
            kind="returned",
            unit=unit,
            points=rules.stories.returned,
            reason=f"稿件被退回修改（{review.level.value}）",
            story_id=review.story_id,
            counts={"returned": 1},
        )
    elif review.decision == ev.Decision.REJECTED:
        scoring.add(
            event,
            key=f"rejected|{event.event_id}",
            kind="rejected",
            unit=unit,
            points=rules.stories.rejected,
            reason=f"稿件未通过审核（{review.level.value}）",
            story_id=review.story_id,
            counts={"rejected": 1},
        )


def _active_publications(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Publication and bonus entries not yet reversed by a withdrawal."""
    reversed_ids = {
        i for e in history if e["kind"] == "withdrawal" for i in e["detail"]["reverses"]
    }
    return [
        e
        for e in history
        if e["kind"] in ("publication", "media_bonus") and e["_id"] not in reversed_ids
    ]


def score_published(scoring: Scoring, event: ev.StoryPublishedEvent) -> None:
    published = event.payload
    unit = scoring.unit(published.unit_path.unit)
    rules = scoring.book.at(event.occurred_at).rules
    history = scoring.story_history.setdefault(published.story_id, [])
    if published.kind == ev.PublicationKind.CHANNEL:
        _score_channel(scoring, event, unit, rules, history)
    elif published.kind == ev.PublicationKind.ADOPTION:
        _score_adoption(scoring, event, unit, rules, history)
    else:
        _score_withdrawal(scoring, event, unit, history)
    if published.campaign and published.kind != ev.PublicationKind.WITHDRAWAL:
        scoring.add_item(
            event, campaign=published.campaign, what="highlight", item=published.story_id, unit=unit
        )


def _score_channel(
    scoring: Scoring,
    event: ev.StoryPublishedEvent,
    unit: Unit,
    rules: RuleSet,
    history: list[dict[str, Any]],
) -> None:
    published = event.payload
    channel = published.channel or "bureau"
    active = _active_publications(history)
    if any(e["kind"] == "publication" and e["detail"]["channel"] == channel for e in active):
        return  # the same channel counts once per story
    first = not any(e["kind"] == "publication" for e in active)
    points = rules.publication.channel_points.get(channel, rules.publication.default_channel_points)
    scoring.add(
        event,
        key=f"publication|{event.event_id}",
        kind="publication",
        unit=unit,
        points=points,
        reason=f"在局平台发布（{channel}）",
        story_id=published.story_id,
        counts={"published": 1 if first else 0},
        detail={"channel": channel, "link": published.link},
    )
    if first and not any(e["kind"] == "media_bonus" for e in active):
        bonus = (rules.publication.photo_bonus if published.photo_count else 0) + (
            rules.publication.video_bonus if published.video_count else 0
        )
        if bonus:
            scoring.add(
                event,
                key=f"media_bonus|{event.event_id}",
                kind="media_bonus",
                unit=unit,
                points=bonus,
                story_id=published.story_id,
                reason=f"图片/视频加分（图{published.photo_count}，视频{published.video_count}）",
                detail={"photos": published.photo_count, "videos": published.video_count},
            )


def _score_adoption(
    scoring: Scoring,
    event: ev.StoryPublishedEvent,
    unit: Unit,
    rules: RuleSet,
    history: list[dict[str, Any]],
) -> None:
    published = event.payload
    level, placement = published.outlet_level, published.placement
    outlet = published.outlet or published.link or level.value
    adoptions = [e for e in history if e["kind"] == "adoption"]
    earlier_levels = {e["detail"]["level"] for e in adoptions}
    value = rules.adoption.value(level, placement)
    if any(e["detail"]["outlet"] == outlet for e in adoptions):
        points, why = 0.0, "同一媒体重复采用，只计一次"
    elif rules.adoption.mode == "highest_only":
        awarded = sum(e["points"] for e in adoptions)
        points = max(0.0, value - awarded)
        why = "只计最高层级" + ("，补足差额" if awarded and points else "")
    elif rules.adoption.same_tier_counts_once and level.value in earlier_levels:
        points, why = 0.0, "同一层级只计一次"
    else:
        points, why = value, "多家媒体采用累加"
    outside = level in OUTSIDE_LEVELS
    first_at = level.value not in earlier_levels
    counts = {
        "adopted": int(outside and not any(e["detail"]["level"] != "bureau" for e in adoptions)),
        f"adopted_{level.value}": int(outside and first_at),
        "adopted_city_or_higher": int(
            level in CITY_OR_HIGHER
            and not any(e["detail"]["level"] in _values(CITY_OR_HIGHER) for e in adoptions)
        ),
        "adopted_county_or_higher": int(
            outside and not any(e["detail"]["level"] in _values(OUTSIDE_LEVELS) for e in adoptions)
        ),
    }
    scoring.add(
        event,
        key=f"adoption|{event.event_id}",
        kind="adoption",
        unit=unit,
        points=points,
        reason=f"被{published.outlet or level.value}采用（{level.value}，{placement.value}，"
        f"{rules.adoption.levels.get(level, 0)}×{rules.adoption.placement.get(placement, 1)}）"
        f"：{why}",
        story_id=published.story_id,
        counts=counts,
        detail={
            "outlet": outlet,
            "level": level.value,
            "placement": placement.value,
            "value": value,
            "link": published.link,
        },
    )
    bonus = rules.adoption.leader_instruction.get(level, 0.0)
    if published.leader_instruction and bonus:
        given = [e for e in history if e["kind"] == "leader_bonus"]
        if rules.adoption.mode == "highest_only":
            bonus = max(0.0, bonus - sum(e["points"] for e in given))
        elif any(e["detail"]["level"] == level.value for e in given):
            bonus = 0.0
        scoring.add(
            event,
            key=f"leader_bonus|{event.event_id}",
            kind="leader_bonus",
            unit=unit,
            points=bonus,
            reason=f"领导批示加分（{level.value}）",
            story_id=published.story_id,
            detail={"level": level.value},
        )


def _values(levels: Iterable[ev.OutletLevel]) -> set[str]:
    return {level.value for level in levels}


def _score_withdrawal(
    scoring: Scoring, event: ev.StoryPublishedEvent, unit: Unit, history: list[dict[str, Any]]
) -> None:
    published = event.payload
    active = _active_publications(history)
    if not active:
        return
    scoring.add(
        event,
        key=f"withdrawal|{event.event_id}",
        kind="withdrawal",
        unit=unit,
        points=-sum(e["points"] for e in active),
        reason=f"撤稿，冲销发布得分{('：' + published.reason) if published.reason else ''}",
        story_id=published.story_id,
        counts={"published": -1 if any(e["kind"] == "publication" for e in active) else 0},
        # sorted: the history comes in index order live and in event order on a rebuild
        detail={"reverses": sorted(e["_id"] for e in active)},
    )


SEVERITY_NAMES = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}


def score_flagged(scoring: Scoring, event: ev.OpinionFlaggedEvent) -> None:
    """An alert or escalation records the incident, and at the rules' serious severity
    proposes it as a veto candidate; only the bureau's determination (认定) vetoes."""
    flag = event.payload
    if flag.kind == ev.FlagKind.STORY_SCREENING or not flag.negative:
        return
    unit = scoring.unit(flag.school or flag.county or event.unit or event.county)
    incident = flag.incident_id or flag.alert_id or str(event.event_id)
    severity = SEVERITY_NAMES[flag.severity.value]
    if flag.kind in (ev.FlagKind.DETERMINATION, ev.FlagKind.DETERMINATION_LIFTED):
        _score_determination(scoring, event, unit, incident)
        return
    rules = scoring.book.at(event.occurred_at).rules
    detail = {
        "incident_id": incident,
        "alert_id": flag.alert_id,
        "topic": flag.topic,
        "severity": flag.severity.value,
        "flagged_at": flag.flagged_at,
    }
    scoring.add(
        event,
        key=f"incident|{incident}|{unit.code}",
        kind="incident",
        unit=unit,
        points=0,
        reason=f"负面舆情事件：{flag.topic}（{severity}）",
        counts={"incidents": 1},
        detail=detail,
    )
    if flag.severity.rank >= rules.opinion.serious_severity.rank:
        scoring.add(
            event,
            key=f"veto_candidate|{incident}|{unit.code}",
            kind="veto_candidate",
            unit=unit,
            points=0,
            reason=f"舆情达到{severity}预警，列为一票否决候选，待市教育局认定：{flag.topic}",
            detail=detail,
        )


def _score_determination(
    scoring: Scoring, event: ev.OpinionFlaggedEvent, unit: Unit, incident: str
) -> None:
    flag = event.payload
    determined = flag.kind == ev.FlagKind.DETERMINATION
    if not (flag.decided_by and flag.reason and flag.reason.strip()):
        raise PermanentError("a determination names who decided and why")
    incident_at = flag.incident_at or flag.flagged_at
    kind = "determination" if determined else "determination_lifted"
    entry = scoring.add(
        event,
        key=f"{kind}|{event.event_id}",
        kind=kind,
        unit=unit,
        points=0,
        reason=(
            f"经认定为严重负面舆情事件，一票否决：{flag.topic}。认定理由：{flag.reason}"
            if determined
            else f"撤销严重负面舆情认定：{flag.topic}。理由：{flag.reason}"
        ),
        counts={"serious_incidents": 1 if determined else -1},
        detail={
            "incident_id": incident,
            "topic": flag.topic,
            "severity": flag.severity.value,
            "decided_by": flag.decided_by,
            "decided_by_name": flag.decided_by_name or flag.decided_by,
            "reason": flag.reason,
            "incident_at": incident_at,
        },
    )
    # the veto falls on the year of the incident, whenever the bureau decided
    entry["year"] = year_of(incident_at)


def score_media(scoring: Scoring, event: ev.MediaStoredEvent) -> None:
    media = event.payload
    unit = scoring.unit(media.unit_path.unit)
    if media.campaign:
        what = "photos" if media.kind == ev.MediaKind.PHOTO else "videos"
        scoring.add_item(event, campaign=media.campaign, what=what, item=media.media_id, unit=unit)


SCORERS = {
    "story.submitted": score_submitted,
    "story.reviewed": score_reviewed,
    "story.published": score_published,
    "opinion.flagged": score_flagged,
    "media.stored": score_media,
}


# ---- batches --------------------------------------------------------------------------
@dataclass
class Applied:
    entries: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


async def apply_events(
    *,
    db: Db,
    org: OrgTree,
    events: Sequence[ev.Envelope],
    count_metrics: bool = True,
    skip_rejected: bool = False,
) -> Applied:
    """Score ``events`` (in their topic order) into the ledger and the projections.

    An event that can never apply raises :class:`PermanentError` before anything is
    written (the live consumer then applies the batch one event at a time and dead-letters
    only that event); with ``skip_rejected`` it is skipped and reported instead.
    """
    book = await rule_book(db=db)
    story_ids = [e.payload.story_id for e in events if e.type == "story.published"]
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if story_ids:
        # entries the batch's own events wrote on an earlier attempt are left out: they
        # are computed again below, in order, and refused by the unique keys
        cursor = db[LEDGER].find(
            {
                "story_id": {"$in": sorted(set(story_ids))},
                "source_event_id": {"$nin": [str(e.event_id) for e in events]},
            }
        )
        for entry in await cursor.to_list():
            if entry["kind"] in STORY_STATE_KINDS:
                history[entry["story_id"]].append(entry)
    scoring = Scoring(book=book, org=org, story_history=history)
    applied = Applied()
    for event in events:
        scorer = SCORERS[event.type]
        try:
            scorer(scoring, event)  # type: ignore[operator]
        except PermanentError as exc:
            if not skip_rejected:
                raise
            applied.rejected.append((str(event.event_id), str(exc)))
    inserted = await _insert_new(db, LEDGER, scoring.entries)
    applied.entries = len(inserted)
    applied.duplicates = len(scoring.entries) - len(inserted)
    await _insert_new(db, CAMPAIGN_ITEMS, scoring.items)
    completions = await complete_campaign_tasks(db=db, book=book, org=org, items=scoring.items)
    inserted += await _insert_new(db, LEDGER, completions)
    await refresh_projections(
        db=db, org=org, keys={(e["unit"], e["period"]) for e in scoring.entries + completions}
    )
    if count_metrics:
        for entry in inserted:
            LEDGER_ENTRIES.labels(entry["kind"]).inc()
            if entry["points"] > 0:
                POINTS_AWARDED.labels(entry["county"] or "city").inc(entry["points"])
    return applied


async def _insert_new(
    db: Db, collection: str, documents: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert what is not there yet; returns the documents actually inserted."""
    if not documents:
        return []
    try:
        await db[collection].insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        skipped = {error["index"] for error in errors}
        return [d for i, d in enumerate(documents) if i not in skipped]
    return documents


def empty_total() -> dict[str, Any]:
    return {"points": 0.0, "entries": 0, **dict.fromkeys(COUNTERS, 0)}


def add_to_total(total: dict[str, Any], entry: dict[str, Any]) -> None:
    """Count one ledger entry into a unit-month's figures."""
    total["points"] += entry["points"]
    total["entries"] += 1
    for name, value in entry["counts"].items():
        total[name] = total.get(name, 0) + value


def projection_document(
    org: OrgTree, unit_code: str, period: str, total: dict[str, Any]
) -> dict[str, Any]:
    """The unit-month projection of ``total`` (without its ``_id``)."""
    unit = org.unit(unit_code)
    return {
        "unit": unit_code,
        "county": unit.county,
        "type": unit.type,
        "area": unit.area,
        "period": period,
        "year": int(period[:4]),
        **total,
        "points": round(total["points"], 2),
    }


async def refresh_projections(*, db: Db, org: OrgTree, keys: set[tuple[str, str]]) -> None:
    """Recompute the ``(unit, month)`` projections named by ``keys`` from the ledger."""
    if not keys:
        return
    totals: dict[tuple[str, str], dict[str, Any]] = {}

    async def recompute(key: tuple[str, str]) -> None:
        total = empty_total()
        cursor = db[LEDGER].find(
            {"unit": key[0], "period": key[1]}, projection={"points": 1, "counts": 1}
        )
        async for entry in cursor:
            add_to_total(total, entry)
        totals[key] = total

    # one indexed lookup per (unit, month), a few at a time: far cheaper on the store
    # than one query with two $in lists
    pending = sorted(keys)
    for start in range(0, len(pending), REFRESH_CONCURRENCY):
        await asyncio.gather(*(recompute(k) for k in pending[start : start + REFRESH_CONCURRENCY]))
    operations = []
    for (unit_code, period), total in totals.items():
        document = projection_document(org, unit_code, period, total)
        # the ledger only grows: a projection counted from fewer entries than the stored
        # one was read before another consumer's entries and must not replace it
        newer_or_same = {"_id": f"{unit_code}|{period}", "entries": {"$lte": total["entries"]}}
        operations.append(ReplaceOne(newer_or_same, document, upsert=True))
    try:
        await db[UNIT_MONTHS].bulk_write(operations, ordered=False)
    except BulkWriteError as exc:
        # the upsert of a stale projection collides with the newer one's _id
        if any(error.get("code") != DUPLICATE_KEY for error in exc.details.get("writeErrors", [])):
            raise
    await refresh_summaries(db=db, org=org, keys=keys)


# ---- campaigns ------------------------------------------------------------------------
def task_owners(org: OrgTree, task: dict[str, Any], unit_code: str) -> list[Unit]:
    """The owners of ``task`` whose progress an item of ``unit_code`` counts toward."""
    unit = org.get(unit_code)
    if unit is None:
        return []
    owners = [unit] if unit.type == task["owner_type"] else []
    if task.get("include_below") and task["owner_type"] == "county" and unit.type != "county":
        county = org.get(unit.county or "")
        if county is not None:
            owners.append(county)
    return owners


def task_units(org: OrgTree, task: dict[str, Any], owner: Unit) -> list[str]:
    """The units whose items count for ``owner`` on ``task``."""
    if task.get("include_below") and owner.type == "county":
        return [owner.code, *(u.code for u in org.schools(owner.code))]
    return [owner.code]


async def delivered_on_time(
    *, db: Db, org: OrgTree, campaign: dict[str, Any], task: dict[str, Any], owner: Unit
) -> int:
    """How many items ``owner`` delivered for ``task`` within the campaign and deadline."""
    start = parse_period(campaign["period"]).start()
    return await db[CAMPAIGN_ITEMS].count_documents(
        {
            "campaign": campaign["code"],
            "what": task["what"],
            "unit": {"$in": task_units(org, task, owner)},
            "occurred_at": {"$gte": start, "$lte": task["deadline"]},
        }
    )


async def complete_campaign_tasks(
    *,
    db: Db,
    book: RuleBook,
    org: OrgTree,
    items: list[dict[str, Any]],
    campaign_codes: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Completion entries for the campaign tasks that ``items`` (or, for
    ``campaign_codes``, any unit) may have completed. Order-free: a task is complete when
    enough items arrived in time, whichever came last."""
    wanted: dict[str, set[str] | None] = defaultdict(set)
    for item in items:
        units = wanted[item["campaign"]]
        if units is not None:
            units.add(item["unit"])
    for code in campaign_codes:
        wanted[code] = None  # every unit
    if not wanted:
        return []
    campaigns = await db[CAMPAIGNS].find({"_id": {"$in": list(wanted)}}).to_list()
    entries: list[dict[str, Any]] = []
    for campaign in campaigns:
        for task in campaign["tasks"]:
            units = wanted[campaign["_id"]]
            if units is None:
                owners = [u for u in org.units.values() if u.type == task["owner_type"]]
            else:
                owners = list(
                    {o.code: o for u in units for o in task_owners(org, task, u)}.values()
                )
            for owner in owners:
                done = await delivered_on_time(
                    db=db, org=org, campaign=campaign, task=task, owner=owner
                )
                if done < task["count"]:
                    continue
                version = book.at(task["deadline"])
                points = (
                    task["points"]
                    if task.get("points") is not None
                    else (version.rules.campaign.completion_points)
                )
                entries.append(
                    new_entry(
                        key=f"campaign|{campaign['_id']}|{task['code']}|{owner.code}",
                        kind="campaign_completed",
                        unit=owner,
                        at=task["deadline"],
                        points=points,
                        reason=f"完成专题任务：{campaign['name']}"
                        f"（{task['what']} {task['count']}）",
                        rule_version=version.version,
                        source_event_id=None,
                        counts={"campaign_tasks_completed": 1},
                        detail={
                            "campaign": campaign["_id"],
                            "task": task["code"],
                            "delivered": done,
                        },
                    )
                )
    return entries


async def record_campaign_completions(*, db: Db, org: OrgTree, code: str) -> int:
    """Award every task of campaign ``code`` already complete (after it is created)."""
    book = await rule_book(db=db)
    entries = await complete_campaign_tasks(
        db=db, book=book, org=org, items=[], campaign_codes=[code]
    )
    inserted = await _insert_new(db, LEDGER, entries)
    await refresh_projections(db=db, org=org, keys={(e["unit"], e["period"]) for e in entries})
    return len(inserted)
