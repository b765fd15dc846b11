"""Review cases (三审制): opened from ``story.submitted`` along the route of the unit's
type, the screening results behind the hold, and the cases as reviewers read them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.review.access import queue_filters, require_overdue_reader, scope_filter
from services.review.audit import Actor, write_audit
from services.review.models import (
    AuditAction,
    CaseState,
    CaseView,
    MediaLink,
    ReviewConfig,
    Screening,
)
from services.review.refused import forbidden
from services.review.runtime import Review
from services.review.service import (
    CASES,
    SCREENINGS,
    SERVICE,
    find_case,
)
from services.review.settings import ReviewSettings
from shared import events as ev
from shared.auth import Principal, in_scope
from shared.clock import utcnow
from shared.kafka import PermanentError
from shared.mongo import apply_once
from shared.orgtree import Unit
from shared.paging import PageQuery, encode_cursor, keyset_page


# ---- opening cases from story.submitted ---------------------------------------------
def route_for(config: ReviewConfig, unit_type: str, major: bool) -> list[ev.ReviewLevel]:
    """The levels a story passes, in order, for the type of the unit that submitted it."""
    levels = list(config.routes.get(unit_type, []))  # type: ignore[call-overload]
    if not levels:
        raise PermanentError(f"no review route for units of type {unit_type!r}")
    if major:
        levels += [level for level in config.major_levels if level not in levels]
    return levels


def submitting_unit(runtime: Review, story: ev.StorySubmitted) -> Unit:
    """The unit of the story, checked against the tree: an unknown one is a poison event."""
    unit = runtime.org.get(story.unit_path.unit)
    if unit is None:
        raise PermanentError(f"unknown unit {story.unit_path.unit!r}")
    if unit.county != story.unit_path.county:
        raise PermanentError(
            f"unit {unit.code!r} belongs to county {unit.county!r}, "
            f"the event says {story.unit_path.county!r}"
        )
    return unit


async def open_case(*, runtime: Review, event: ev.StorySubmittedEvent) -> bool:
    """Open a review case for a submitted version; a newer version supersedes open or
    returned cases of the same story. False when this event was already applied."""
    story = event.payload
    unit = submitting_unit(runtime, story)
    route = route_for(runtime.config, unit.type, story.major)
    now = utcnow()

    async def effect(session: AsyncClientSession) -> None:
        versions = (
            await runtime.db[CASES]
            .find(
                {"story_id": story.story_id},
                projection={"version": 1, "state": 1, "level": 1, "revision": 1},
                session=session,
            )
            .to_list()
        )
        if any(old["version"] == story.version for old in versions):
            return
        # a version older than one already here (read out of order) is filed as superseded
        newer = any(old["version"] > story.version for old in versions)
        case_id = uuid.uuid4().hex
        if not newer:
            await _supersede(runtime, versions, story=story, by=case_id, now=now, session=session)
        case = case_document(event, unit=unit, route=route, case_id=case_id, now=now)
        if newer:
            case["state"] = CaseState.SUPERSEDED
        await runtime.db[CASES].insert_one(case, session=session)
        source_role = "correspondent" if story.source == "api" else "county_system"
        await write_audit(
            runtime.db, session=session, story_id=story.story_id, case_id=case_id,
            version=story.version, actor=Actor(story.author, story.author, source_role, unit.code),
            level=None, action=AuditAction.SUBMITTED, comment=story.title, at=now,
        )  # fmt: skip

    return await apply_once(
        runtime.mongo, runtime.db, consumer=f"{SERVICE}:open_case",
        event_id=str(event.event_id), effect=effect,
    )  # fmt: skip


async def _supersede(
    runtime: Review,
    versions: list[dict[str, Any]],
    *,
    story: ev.StorySubmitted,
    by: str,
    now: datetime,
    session: AsyncClientSession,
) -> None:
    """Close the open or returned cases of older versions: the new version replaces them."""
    system = Actor.system(runtime.org)
    for old in versions:
        if old["state"] not in (CaseState.OPEN, CaseState.RETURNED):
            continue
        await runtime.db[CASES].update_one(
            {"_id": old["_id"], "revision": old["revision"]},
            {
                "$set": {"state": CaseState.SUPERSEDED, "superseded_by": by, "closed_at": now},
                "$inc": {"revision": 1},
            },
            session=session,
        )
        await write_audit(
            runtime.db, session=session, story_id=story.story_id, case_id=old["_id"],
            version=old["version"], actor=system, level=old["level"],
            action=AuditAction.SUPERSEDED, comment=f"version {story.version} was submitted",
            at=now,
        )  # fmt: skip


def case_document(
    event: ev.StorySubmittedEvent,
    *,
    unit: Unit,
    route: list[ev.ReviewLevel],
    case_id: str,
    now: datetime,
) -> dict[str, Any]:
    """A new case waiting at the first level of its route, with the story as submitted."""
    story = event.payload
    return {
        "_id": case_id,
        "story_id": story.story_id,
        "version": story.version,
        "unit_path": story.unit_path.model_dump(),
        "unit_type": unit.type,
        "route": [str(level) for level in route],
        "step": 0,
        "level": str(route[0]),
        "state": CaseState.OPEN,
        "revision": 0,
        "opened_at": now,
        "waiting_since": now,
        "overdue": False,
        "override": None,
        "publish_at": None,
        "withdrawn": False,
        "correlation_id": event.correlation_id,
        "story": {
            **story.model_dump(mode="json", exclude={"unit_path", "story_id", "version"}),
            "submitted_at": story.submitted_at,
        },
    }


async def record_screening(*, runtime: Review, event: ev.OpinionFlaggedEvent) -> None:
    """Keep a story screening result (the projection behind the hold); other flags are
    not this service's concern. Upserted by event id, so a redelivery changes nothing."""
    flag = event.payload
    if flag.kind != ev.FlagKind.STORY_SCREENING:
        return
    if not flag.story_id:
        raise PermanentError("a story screening must name the story")
    await runtime.db[SCREENINGS].update_one(
        {"_id": str(event.event_id)},
        {
            "$setOnInsert": {
                "story_id": flag.story_id,
                "story_version": flag.story_version,
                "severity": str(flag.severity),
                "severity_rank": flag.severity.rank,
                "negative": flag.negative,
                "score": flag.score,
                "topic": flag.topic,
                "explanation": flag.explanation,
                "flagged_at": flag.flagged_at,
            }
        },
        upsert=True,
    )


# ---- reading cases ------------------------------------------------------------------
def media_links(settings: ReviewSettings, media_ids: list[str]) -> list[MediaLink]:
    base = settings.media_public_url.rstrip("/")
    return [
        MediaLink(
            id=media_id,
            url=f"{base}/media/{media_id}",
            thumbnail=f"{base}/media/{media_id}/thumbnail?size=small",
        )
        for media_id in media_ids
    ]


async def screenings_of(
    db: AsyncDatabase[dict[str, Any]], cases: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The latest screening that applies to each case's version, by case id."""
    if not cases:
        return {}
    rows = await (
        db[SCREENINGS]
        .find({"story_id": {"$in": list({c["story_id"] for c in cases})}})
        .sort("flagged_at", DESCENDING)
        .to_list()
    )
    found: dict[str, dict[str, Any]] = {}
    for case in cases:
        for row in rows:
            if row["story_id"] == case["story_id"] and row["story_version"] in (
                None,
                case["version"],
            ):
                found[case["_id"]] = row
                break
    return found


def holds(screening: dict[str, Any] | None, config: ReviewConfig) -> bool:
    """Whether a screening result blocks final approval under the configuration."""
    return screening is not None and screening["severity_rank"] >= config.screening.hold_at.rank


def case_view(
    case: dict[str, Any],
    *,
    screening: dict[str, Any] | None,
    config: ReviewConfig,
    settings: ReviewSettings,
) -> CaseView:
    story = case["story"]
    return CaseView(
        case_id=case["_id"],
        story_id=case["story_id"],
        version=case["version"],
        state=case["state"],
        level=case["level"],
        route=case["route"],
        unit_path=case["unit_path"],
        waiting_since=case["waiting_since"],
        opened_at=case["opened_at"],
        overdue=case["overdue"],
        title=story["title"],
        body=story["body"],
        category=story["category"],
        campaign=story.get("campaign"),
        major=story["major"],
        event_date=story["event_date"],
        author=story["author"],
        media=media_links(settings, story.get("media_ids", [])),
        late=story.get("late", False),
        late_days=story.get("late_days", 0),
        possible_copy=story.get("possible_copy"),
        screening=Screening(**screening, holds_final_approval=holds(screening, config))
        if screening
        else None,
        hold_overridden=case.get("override") is not None,
        publish_at=case.get("publish_at"),
    )


async def case_views(runtime: Review, cases: list[dict[str, Any]]) -> list[CaseView]:
    config = runtime.config
    screenings = await screenings_of(runtime.db, cases)
    settings = runtime.settings
    return [
        case_view(case, screening=screenings.get(case["_id"]), config=config, settings=settings)
        for case in cases
    ]


OLDEST_FIRST = [("waiting_since", 1), ("_id", 1)]


async def oldest_first_page(
    collection: AsyncCollection[dict[str, Any]], filters: list[dict[str, Any]], query: PageQuery
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the documents matching any of ``filters`` (which no document matches
    two of), oldest first: each filter's own keyset page from the same cursor, merged.
    Every query stays equalities plus one range, read through an index on both servers."""
    if len(filters) == 1:
        return await keyset_page(collection, filters[0], sort=OLDEST_FIRST, query=query)
    found: list[dict[str, Any]] = []
    more = False
    for where in filters:
        docs, cursor = await keyset_page(collection, where, sort=OLDEST_FIRST, query=query)
        found += docs
        more = more or cursor is not None
    found.sort(key=lambda doc: (doc["waiting_since"], doc["_id"]))
    more = more or len(found) > query.limit
    page = found[: query.limit]
    return page, encode_cursor(OLDEST_FIRST, page[-1]) if more else None


async def review_queue(
    *, runtime: Review, principal: Principal, page: PageQuery
) -> tuple[list[CaseView], str | None]:
    """Cases waiting at the caller's levels inside their scope, oldest first."""
    filters = queue_filters(principal, runtime.org)
    cases, cursor = await oldest_first_page(runtime.db[CASES], filters, page)
    return await case_views(runtime, cases), cursor


async def get_case(*, runtime: Review, principal: Principal, case_id: str) -> CaseView:
    """One case, for anyone whose scope holds the story's unit."""
    case = await find_case(db=runtime.db, case_id=case_id)
    if not in_scope(principal, runtime.org, case["unit_path"]["unit"]):
        raise forbidden("该稿件不在您的管辖范围内", f"case {case_id!r} is outside your scope")
    return (await case_views(runtime, [case]))[0]


async def overdue_cases(
    *, runtime: Review, principal: Principal, page: PageQuery
) -> tuple[list[CaseView], str | None]:
    """Open cases flagged overdue inside the caller's scope, oldest first."""
    require_overdue_reader(principal)
    query = {"state": CaseState.OPEN, "overdue": True, **scope_filter(principal, runtime.org)}
    cases, cursor = await keyset_page(runtime.db[CASES], query, sort=OLDEST_FIRST, query=page)
    return await case_views(runtime, cases), cursor
