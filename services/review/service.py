"""Review cases (三审制): routing by the unit tree, decisions guarded by a conditional
update, the insert-only audit trail, the screening hold and overdue flags."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import Counter, Gauge
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from services.review.models import (
    AuditEntry,
    CaseState,
    CaseView,
    DecisionRequest,
    DecisionResult,
    MediaLink,
    OverrideRequest,
    ReviewConfig,
    Screening,
)
from services.review.settings import ReviewSettings
from shared import events as ev
from shared import topics as tp
from shared.auth import Principal, Role, in_scope
from shared.kafka import PermanentError
from shared.mongo import apply_once, in_transaction
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime

SERVICE = "review"
CONFIG = "config"
CASES = "cases"
AUDIT = "audit"
SCREENINGS = "screenings"
CONFIG_ID = "review"
DEFAULT_CONFIG_FILE = Path(__file__).parent / "config.yaml"

CASES_OPEN = Gauge("citydesk_review_cases_open", "Review cases waiting, by level.", ["level"])
CASES_OVERDUE = Gauge(
    "citydesk_review_cases_overdue", "Review cases waiting past their deadline.", ["level"]
)
QUEUE_OLDEST = Gauge(
    "citydesk_review_queue_oldest_seconds",
    "How long the oldest case at a level has been waiting.",
    ["level"],
)
DECISIONS = Counter(
    "citydesk_review_decisions_total", "Review decisions, by level.", ["level", "decision"]
)

LEVEL_ROLE: dict[ev.ReviewLevel, Role] = {
    ev.ReviewLevel.SCHOOL: Role.REVIEWER_SCHOOL,
    ev.ReviewLevel.COUNTY: Role.REVIEWER_COUNTY,
    ev.ReviewLevel.CITY: Role.REVIEWER_CITY,
    ev.ReviewLevel.LEADER: Role.LEADER,
}
CITY_LEVELS = (ev.ReviewLevel.CITY, ev.ReviewLevel.LEADER)
DECISION_OF = {
    "approve": ev.Decision.APPROVED,
    "return": ev.Decision.RETURNED,
    "reject": ev.Decision.REJECTED,
}


# ---- refusals the API turns into 4xx answers ----------------------------------------
class Refused(Exception):
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(Refused):
    status = 404


class Forbidden(Refused):
    status = 403


class Conflict(Refused):
    status = 409


class Invalid(Refused):
    status = 422


@dataclass(frozen=True)
class Actor:
    """Who an audit entry names."""

    who: str
    name: str
    role: str
    unit: str

    @classmethod
    def of(cls, principal: Principal, role: Role | str) -> Actor:
        return cls(principal.sub, principal.name, str(role), principal.unit)


OnFinal = Callable[[dict[str, Any], datetime, AsyncClientSession], Awaitable[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---- configuration ------------------------------------------------------------------
async def ensure_indexes(runtime: ServiceRuntime) -> None:
    """Indexes for cases, the audit trail and the screening projection."""
    db = runtime.db
    await db[CASES].create_index([("story_id", ASCENDING), ("version", ASCENDING)], unique=True)
    await db[CASES].create_index([("state", ASCENDING), ("level", ASCENDING), ("waiting_since", 1)])
    await db[AUDIT].create_index([("story_id", ASCENDING), ("at", ASCENDING)])
    await db[SCREENINGS].create_index([("story_id", ASCENDING), ("flagged_at", DESCENDING)])


async def seed_config(runtime: ServiceRuntime) -> None:
    """Load the YAML configuration into MongoDB unless an administrator replaced it."""
    settings: ReviewSettings = runtime.settings  # type: ignore[assignment]
    path = Path(settings.review_config_file) if settings.review_config_file else DEFAULT_CONFIG_FILE
    config = ReviewConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    await runtime.db[CONFIG].update_one(
        {"_id": CONFIG_ID},
        {"$setOnInsert": {**config.model_dump(mode="json"), "updated_at": utcnow()}},
        upsert=True,
    )


async def load_config(*, db: AsyncDatabase[dict[str, Any]]) -> ReviewConfig:
    """The review configuration in force."""
    doc = await db[CONFIG].find_one({"_id": CONFIG_ID}, projection={"_id": 0, "updated_at": 0})
    if doc is None:
        raise RuntimeError("the review configuration is missing; it is seeded on startup")
    return ReviewConfig.model_validate(doc)


async def replace_config(
    *, db: AsyncDatabase[dict[str, Any]], config: ReviewConfig
) -> ReviewConfig:
    """Replace the configuration; a webhook given without a secret keeps its stored one."""
    current = await load_config(db=db)
    hooks = []
    for hook in config.publication.webhooks:
        if hook.secret is None:
            stored = current.webhook(hook.name)
            if stored is None or stored.secret is None:
                raise Invalid(f"webhook {hook.name!r} needs a secret")
            hook = hook.model_copy(update={"secret": stored.secret})
        hooks.append(hook)
    publication = config.publication.model_copy(update={"webhooks": hooks})
    config = config.model_copy(update={"publication": publication})
    await db[CONFIG].replace_one(
        {"_id": CONFIG_ID}, {**config.model_dump(mode="json"), "updated_at": utcnow()}, upsert=True
    )
    return config


# ---- audit trail --------------------------------------------------------------------
async def write_audit(
    db: AsyncDatabase[dict[str, Any]],
    *,
    session: AsyncClientSession | None,
    story_id: str,
    case_id: str | None,
    version: int,
    actor: Actor,
    level: str | None,
    decision: str,
    comment: str | None = None,
    channel: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one entry to the story's audit trail (the collection is only ever inserted to)."""
    await db[AUDIT].insert_one(
        {
            "story_id": story_id,
            "case_id": case_id,
            "version": version,
            "at": at or utcnow(),
            "who": actor.who,
            "name": actor.name,
            "role": actor.role,
            "unit": actor.unit,
            "level": level,
            "decision": decision,
            "comment": comment,
            "channel": channel,
        },
        session=session,
    )


async def audit_trail(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str
) -> list[AuditEntry]:
    """Every step of a story, oldest first, for anyone whose scope holds the story's unit."""
    case = await runtime.db[CASES].find_one({"story_id": story_id}, sort=[("version", DESCENDING)])
    if case is None:
        raise NotFound(f"no story {story_id!r} under review")
    if not in_scope(principal, runtime.org, case["unit_path"]["unit"]):
        raise Forbidden(f"story {story_id!r} is outside your scope")
    rows = (
        await runtime.db[AUDIT].find({"story_id": story_id}).sort([("at", 1), ("_id", 1)]).to_list()
    )
    return [AuditEntry.model_validate(row) for row in rows]


# ---- opening cases from story.submitted ---------------------------------------------
def route_for(config: ReviewConfig, unit_type: str, major: bool) -> list[ev.ReviewLevel]:
    """The levels a story passes, in order, for the type of the unit that submitted it."""
    levels = list(config.routes.get(unit_type, []))  # type: ignore[call-overload]
    if not levels:
        raise PermanentError(f"no review route for units of type {unit_type!r}")
    if major:
        levels += [level for level in config.major_levels if level not in levels]
    return levels


async def open_case(*, runtime: ServiceRuntime, event: ev.StorySubmittedEvent) -> bool:
    """Open a review case for a submitted version; a newer version supersedes open or
    returned cases of the same story. False when this event was already applied."""
    story = event.payload
    unit = runtime.org.get(story.unit_path.unit)
    if unit is None:
        raise PermanentError(f"unknown unit {story.unit_path.unit!r}")
    if unit.county != story.unit_path.county:
        raise PermanentError(
            f"unit {unit.code!r} belongs to county {unit.county!r}, "
            f"the event says {story.unit_path.county!r}"
        )
    db = runtime.db
    route = route_for(await load_config(db=db), unit.type, story.major)
    now = utcnow()

    async def effect(session: AsyncClientSession) -> None:
        key = {"story_id": story.story_id, "version": story.version}
        versions = (
            await db[CASES]
            .find(
                {"story_id": story.story_id},
                projection={"version": 1, "state": 1, "level": 1, "revision": 1},
                session=session,
            )
            .to_list()
        )
        if any(old["version"] == story.version for old in versions):
            return
        newer = any(old["version"] > story.version for old in versions)
        case_id = uuid.uuid4().hex
        system = Actor("system", "CityDesk", "system", runtime.org.city.code)
        replaced = [
            old
            for old in versions
            if not newer and old["state"] in (CaseState.OPEN, CaseState.RETURNED)
        ]
        for old in replaced:
            await db[CASES].update_one(
                {"_id": old["_id"], "revision": old["revision"]},
                {
                    "$set": {
                        "state": CaseState.SUPERSEDED,
                        "superseded_by": case_id,
                        "closed_at": now,
                    },
                    "$inc": {"revision": 1},
                },
                session=session,
            )
            await write_audit(
                db, session=session, story_id=story.story_id, case_id=old["_id"],
                version=old["version"], actor=system, level=old["level"],
                decision="superseded", comment=f"version {story.version} was submitted", at=now,
            )  # fmt: skip
        await db[CASES].insert_one(
            {
                "_id": case_id,
                **key,
                "unit_path": story.unit_path.model_dump(),
                "unit_type": unit.type,
                "route": [str(level) for level in route],
                "step": 0,
                "level": str(route[0]),
                "state": CaseState.SUPERSEDED if newer else CaseState.OPEN,
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
            },
            session=session,
        )
        author = Actor(
            story.author,
            story.author,
            "correspondent" if story.source == "api" else "county_system",
            unit.code,
        )
        await write_audit(
            db, session=session, story_id=story.story_id, case_id=case_id,
            version=story.version, actor=author, level=None, decision="submitted",
            comment=story.title, at=now,
        )  # fmt: skip

    return await apply_once(
        runtime.mongo, db, consumer=f"{SERVICE}:open_case", event_id=str(event.event_id),
        effect=effect,
    )  # fmt: skip


async def record_screening(*, runtime: ServiceRuntime, event: ev.OpinionFlaggedEvent) -> None:
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


# ---- who may act where --------------------------------------------------------------
def reviewing_unit(org: OrgTree, unit_path: dict[str, Any], level: ev.ReviewLevel) -> str:
    """The unit whose reviewers decide at ``level``: the school, its county, or the city."""
    if level == ev.ReviewLevel.SCHOOL:
        return str(unit_path["unit"])
    if level == ev.ReviewLevel.COUNTY:
        return str(unit_path["county"] or unit_path["unit"])
    return org.city.code


def authorise_decision(principal: Principal, case: dict[str, Any], org: OrgTree) -> Role:
    """The role the principal decides with at the case's level; 403 outside level or scope."""
    level = ev.ReviewLevel(case["level"])
    role = LEVEL_ROLE[level]
    if role not in principal.roles:
        raise Forbidden(f"deciding at the {level} level needs the role {role}")
    unit = reviewing_unit(org, case["unit_path"], level)
    if principal.unit != unit:
        raise Forbidden(
            f"this case waits at the {level} level of {unit!r}; you act for {principal.unit!r}"
        )
    return role


def require_city_office(principal: Principal, org: OrgTree) -> Role:
    """403 unless the principal is a city reviewer (or administrator) of the city bureau."""
    if principal.unit != org.city.code or not principal.has(Role.REVIEWER_CITY, Role.ADMIN):
        raise Forbidden("this is for the city office: role reviewer_city or admin at the city")
    return Role.REVIEWER_CITY if Role.REVIEWER_CITY in principal.roles else Role.ADMIN


def queue_filter(principal: Principal, org: OrgTree) -> dict[str, Any]:
    """The open cases a principal's roles let them decide."""
    clauses: list[dict[str, Any]] = []
    unit = org.get(principal.unit)
    if Role.REVIEWER_SCHOOL in principal.roles:
        clauses.append({"level": "school", "unit_path.unit": principal.unit})
    if Role.REVIEWER_COUNTY in principal.roles and unit is not None and unit.type == "county":
        clauses.append({"level": "county", "unit_path.county": principal.unit})
    if principal.unit == org.city.code:
        if Role.REVIEWER_CITY in principal.roles:
            clauses.append({"level": "city"})
        if Role.LEADER in principal.roles:
            clauses.append({"level": "leader"})
    if not clauses:
        raise Forbidden("the review queue needs a reviewer or leader role")
    return {"state": CaseState.OPEN, "$or": clauses}


def scope_filter(principal: Principal, org: OrgTree) -> dict[str, Any]:
    """Cases of units inside the principal's scope."""
    if principal.unit == org.city.code:
        return {}
    unit = org.unit(principal.unit)
    if unit.type == "county":
        return {"unit_path.county": unit.code}
    return {"unit_path.unit": unit.code}


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


async def review_queue(
    *, runtime: ServiceRuntime, principal: Principal, limit: int
) -> list[CaseView]:
    """Cases waiting at the caller's levels inside their scope, oldest first."""
    cases = await (
        runtime.db[CASES]
        .find(queue_filter(principal, runtime.org))
        .sort([("waiting_since", ASCENDING), ("_id", ASCENDING)])
        .limit(limit)
        .to_list()
    )
    return await _views(runtime, cases)


async def _views(runtime: ServiceRuntime, cases: list[dict[str, Any]]) -> list[CaseView]:
    config = await load_config(db=runtime.db)
    screenings = await screenings_of(runtime.db, cases)
    settings: ReviewSettings = runtime.settings  # type: ignore[assignment]
    return [
        case_view(case, screening=screenings.get(case["_id"]), config=config, settings=settings)
        for case in cases
    ]


async def find_case(*, db: AsyncDatabase[dict[str, Any]], case_id: str) -> dict[str, Any]:
    case = await db[CASES].find_one({"_id": case_id})
    if case is None:
        raise NotFound(f"no review case {case_id!r}")
    return case


async def get_case(*, runtime: ServiceRuntime, principal: Principal, case_id: str) -> CaseView:
    """One case, for anyone whose scope holds the story's unit."""
    case = await find_case(db=runtime.db, case_id=case_id)
    if not in_scope(principal, runtime.org, case["unit_path"]["unit"]):
        raise Forbidden(f"case {case_id!r} is outside your scope")
    return (await _views(runtime, [case]))[0]


async def overdue_cases(*, runtime: ServiceRuntime, principal: Principal) -> list[CaseView]:
    """Open cases flagged overdue inside the caller's scope, oldest first."""
    if not principal.has(*LEVEL_ROLE.values(), Role.ADMIN):
        raise Forbidden("the overdue list needs a reviewer, leader or admin role")
    query = {"state": CaseState.OPEN, "overdue": True, **scope_filter(principal, runtime.org)}
    cases = await runtime.db[CASES].find(query).sort("waiting_since", ASCENDING).to_list(500)
    return await _views(runtime, cases)


# ---- deciding -----------------------------------------------------------------------
def reviewed_event(
    case: dict[str, Any],
    *,
    level: ev.ReviewLevel,
    decision: ev.Decision,
    final: bool,
    actor: Actor,
    comment: str | None,
    at: datetime,
) -> ev.StoryReviewedEvent:
    path = ev.UnitPath(**case["unit_path"])
    return ev.StoryReviewedEvent.build(
        ev.StoryReviewed(
            story_id=case["story_id"], version=case["version"], case_id=case["_id"],
            unit_path=path, level=level, decision=decision, final=final,
            reviewer=actor.who, reviewer_unit=actor.unit, comment=comment, decided_at=at,
            category=case["story"].get("category"), campaign=case["story"].get("campaign"),
        ),
        producer=SERVICE, county=path.county, unit=path.unit,
        correlation_id=case.get("correlation_id"),
    )  # fmt: skip


async def guarded_update(
    runtime: ServiceRuntime,
    case: dict[str, Any],
    change: dict[str, Any],
    session: AsyncClientSession,
) -> None:
    """Apply ``change`` only if the case is still as read; otherwise someone else won."""
    result = await runtime.db[CASES].update_one(
        {
            "_id": case["_id"],
            "state": case["state"],
            "level": case["level"],
            "revision": case["revision"],
        },
        {"$set": change, "$inc": {"revision": 1}},
        session=session,
    )
    if result.matched_count == 0:
        raise Conflict("someone else changed this case at the same moment; reload it")


async def commit_change(runtime: ServiceRuntime, write: Any) -> None:
    try:
        await in_transaction(runtime.mongo, write)
    except OperationFailure as exc:
        if exc.has_error_label("TransientTransactionError") or exc.code == 112:
            raise Conflict("someone else changed this case at the same moment; reload it") from exc
        raise


async def decide(
    *,
    runtime: ServiceRuntime,
    principal: Principal,
    case_id: str,
    request: DecisionRequest,
    on_final: OnFinal,
) -> DecisionResult:
    """Approve, return or reject the version a reviewer judged, at the case's level.
    ``on_final(case, publish_at, session)`` queues publication in the same transaction."""
    db = runtime.db
    case = await find_case(db=db, case_id=case_id)
    role = authorise_decision(principal, case, runtime.org)
    level = ev.ReviewLevel(case["level"])
    if request.version != case["version"]:
        raise Conflict(
            f"stale version: you judged version {request.version}, "
            f"this case is for version {case['version']}"
        )
    if case["state"] != CaseState.OPEN:
        raise Conflict(f"this case is {case['state']}; it waits for no decision")
    if request.publish_at is not None and level not in CITY_LEVELS:
        raise Invalid("publish_at can be set only at the city level")
    config = await load_config(db=db)
    approve = request.decision == "approve"
    if approve and level in CITY_LEVELS and case.get("override") is None:
        screening = (await screenings_of(db, [case])).get(case["_id"])
        if screening is not None and holds(screening, config):
            raise Conflict(
                f"final approval is held: the story's screening is {screening['severity']} "
                f"({screening['topic']}); a city reviewer must override it with a reason first"
            )
    now = utcnow()
    step = case["step"] + 1
    final = approve and step >= len(case["route"])
    change: dict[str, Any] = {"decided_at": now}
    if approve and not final:
        change |= {"step": step, "level": case["route"][step], "waiting_since": now}
        change |= {"overdue": False}
    elif approve:
        change |= {"state": CaseState.APPROVED, "closed_at": now}
    else:
        state = CaseState.RETURNED if request.decision == "return" else CaseState.REJECTED
        change |= {"state": state, "closed_at": now}
    publish_at = request.publish_at or case.get("publish_at")
    if request.publish_at is not None:
        change["publish_at"] = request.publish_at
    decision = DECISION_OF[request.decision]
    comment = request.reason if request.decision == "reject" else request.comment
    actor = Actor.of(principal, role)

    async def write(session: AsyncClientSession) -> None:
        await guarded_update(runtime, case, change, session)
        await write_audit(
            db, session=session, story_id=case["story_id"], case_id=case["_id"],
            version=case["version"], actor=actor, level=level, decision=decision,
            comment=comment, at=now,
        )  # fmt: skip
        event = reviewed_event(
            case, level=level, decision=decision, final=final, actor=actor, comment=comment, at=now
        )
        await runtime.emit(tp.STORY_REVIEWED, event, session=session)
        if final:
            await on_final(case, publish_at or now, session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    DECISIONS.labels(level, decision).inc()
    new = {**case, **change}
    return DecisionResult(
        case_id=case["_id"], story_id=case["story_id"], version=case["version"],
        decision=decision, state=new["state"], level=new["level"], final=final,
    )  # fmt: skip


async def override_hold(
    *, runtime: ServiceRuntime, principal: Principal, case_id: str, request: OverrideRequest
) -> CaseView:
    """A city reviewer lifts the screening hold of an open case, with a written reason."""
    if principal.unit != runtime.org.city.code or Role.REVIEWER_CITY not in principal.roles:
        raise Forbidden("only a city reviewer (reviewer_city at the city) can override a hold")
    db = runtime.db
    case = await find_case(db=db, case_id=case_id)
    if case["state"] != CaseState.OPEN:
        raise Conflict(f"this case is {case['state']}; there is no hold to lift")
    if case.get("override") is not None:
        raise Conflict("the hold on this case was already overridden")
    config = await load_config(db=db)
    if not holds((await screenings_of(db, [case])).get(case["_id"]), config):
        raise Conflict("this case is not held by a screening result")
    now = utcnow()
    actor = Actor.of(principal, Role.REVIEWER_CITY)
    override = {"by": principal.sub, "name": principal.name, "reason": request.reason, "at": now}

    async def write(session: AsyncClientSession) -> None:
        await guarded_update(runtime, case, {"override": override}, session)
        await write_audit(
            db, session=session, story_id=case["story_id"], case_id=case["_id"],
            version=case["version"], actor=actor, level=ev.ReviewLevel.CITY,
            decision=ev.Decision.OVERRIDDEN, comment=request.reason, at=now,
        )  # fmt: skip
        event = reviewed_event(
            case, level=ev.ReviewLevel.CITY, decision=ev.Decision.OVERRIDDEN, final=False,
            actor=actor, comment=request.reason, at=now,
        )  # fmt: skip
        await runtime.emit(tp.STORY_REVIEWED, event, session=session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    DECISIONS.labels(ev.ReviewLevel.CITY, ev.Decision.OVERRIDDEN).inc()
    return await get_case(runtime=runtime, principal=principal, case_id=case_id)


# ---- overdue cases and gauges -------------------------------------------------------
async def flag_overdue_cases(*, runtime: ServiceRuntime) -> None:
    """Flag open cases waiting past their level's deadline (and unflag after a change)."""
    config = await load_config(db=runtime.db)
    now = utcnow()
    for level, hours in config.overdue_hours.items():
        cutoff = now - timedelta(hours=hours)
        base = {"state": CaseState.OPEN, "level": str(level)}
        await runtime.db[CASES].update_many(
            {**base, "overdue": False, "waiting_since": {"$lt": cutoff}},
            {"$set": {"overdue": True, "overdue_since": now}},
        )
        await runtime.db[CASES].update_many(
            {**base, "overdue": True, "waiting_since": {"$gte": cutoff}},
            {"$set": {"overdue": False}},
        )


async def refresh_gauges(*, runtime: ServiceRuntime) -> None:
    """Set the case gauges from the database, so a restarted pod reports the truth."""
    rows = await runtime.db[CASES].aggregate(
        [
            {"$match": {"state": CaseState.OPEN}},
            {
                "$group": {
                    "_id": "$level",
                    "open": {"$sum": 1},
                    "overdue": {"$sum": {"$cond": ["$overdue", 1, 0]}},
                    "oldest": {"$min": "$waiting_since"},
                }
            },
        ]
    )
    by_level = {row["_id"]: row async for row in rows}
    now = utcnow()
    for level in ev.ReviewLevel:
        row = by_level.get(str(level), {"open": 0, "overdue": 0, "oldest": None})
        CASES_OPEN.labels(level).set(row["open"])
        CASES_OVERDUE.labels(level).set(row["overdue"])
        oldest = row["oldest"]
        QUEUE_OLDEST.labels(level).set((now - oldest).total_seconds() if oldest else 0)
