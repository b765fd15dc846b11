"""Deciding a case: approve, return or reject at its level, guarded by a conditional
update so that of two reviewers acting at once one wins; lifting the screening hold.
Each decision writes the case, its audit step and ``story.reviewed`` in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from prometheus_client import Counter
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import OperationFailure

from services.review.access import CITY_LEVELS, authorise_decision, require_city_reviewer
from services.review.audit import Actor, write_audit
from services.review.cases import get_case, holds, screenings_of
from services.review.models import (
    AuditAction,
    CaseState,
    CaseView,
    DecisionRequest,
    DecisionResult,
    OverrideRequest,
    ReviewConfig,
)
from services.review.refused import CHANGED_MEANWHILE, conflict, invalid
from services.review.runtime import Review
from services.review.service import CASES, SERVICE, find_case
from shared import events as ev
from shared import topics as tp
from shared.auth import Principal, Role
from shared.clock import utcnow
from shared.mongo import in_transaction

DECISIONS = Counter(
    "citydesk_review_decisions_total", "Review decisions, by level.", ["level", "decision"]
)
DECISION_OF = {
    "approve": ev.Decision.APPROVED,
    "return": ev.Decision.RETURNED,
    "reject": ev.Decision.REJECTED,
}
# WriteConflict: another transaction wrote the case first
WRITE_CONFLICT = 112

OnFinal = Callable[[dict[str, Any], datetime, AsyncClientSession], Awaitable[None]]


def next_level_after(
    case: dict[str, Any], decision: ev.Decision, final: bool
) -> ev.ReviewLevel | None:
    """Where the story waits after ``decision`` on ``case`` (as read before it): the next
    level of its own route after a non-final approval, the same level after an override,
    nowhere when the review ended or the story went back to its author."""
    if decision == ev.Decision.APPROVED and not final:
        return ev.ReviewLevel(case["route"][case["step"] + 1])
    if decision == ev.Decision.OVERRIDDEN:
        return ev.ReviewLevel(case["level"])
    return None


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
    """``story.reviewed`` for a decision on ``case`` as it was read before the decision."""
    next_level = next_level_after(case, decision, final)
    path = ev.UnitPath(**case["unit_path"])
    return ev.StoryReviewedEvent.build(
        ev.StoryReviewed(
            story_id=case["story_id"], version=case["version"], case_id=case["_id"],
            unit_path=path, level=level, decision=decision, final=final, next_level=next_level,
            reviewer=actor.who, reviewer_unit=actor.unit, comment=comment, decided_at=at,
            category=case["story"].get("category"), campaign=case["story"].get("campaign"),
        ),
        producer=SERVICE, county=path.county, unit=path.unit,
        correlation_id=case.get("correlation_id"),
    )  # fmt: skip


async def guarded_update(
    runtime: Review,
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
        raise conflict(*CHANGED_MEANWHILE)


async def commit_change(
    runtime: Review, write: Callable[[AsyncClientSession], Awaitable[None]]
) -> None:
    """Run ``write`` in one transaction; losing a race to another writer is a 409."""
    try:
        await in_transaction(runtime.mongo, write)
    except OperationFailure as exc:
        if exc.has_error_label("TransientTransactionError") or exc.code == WRITE_CONFLICT:
            raise conflict(*CHANGED_MEANWHILE) from exc
        raise


def check_decidable(case: dict[str, Any], request: DecisionRequest) -> None:
    """409 for a stale version or a closed case; 422 for a publication time below the city."""
    if request.version != case["version"]:
        raise conflict(
            "您审阅的不是该稿件的最新版本，请刷新后重新审阅",
            f"stale version: you judged version {request.version}, "
            f"this case is for version {case['version']}",
        )
    if case["state"] != CaseState.OPEN:
        raise conflict(
            "该稿件已不在待审状态，无需再作决定",
            f"this case is {case['state']}; it waits for no decision",
        )
    if request.publish_at is not None and case["level"] not in CITY_LEVELS:
        raise invalid(
            "只有市局终审时才能设定发布时间", "publish_at can be set only at the city level"
        )


async def check_not_held(runtime: Review, case: dict[str, Any], config: ReviewConfig) -> None:
    """409 while a screening result holds the final approval and no one has lifted it."""
    if case.get("override") is not None:
        return
    screening = (await screenings_of(runtime.db, [case])).get(case["_id"])
    if screening is not None and holds(screening, config):
        raise conflict(
            "该稿件舆情研判结果需暂缓终审，请市局终审人员填写理由解除后再通过",
            f"final approval is held: the story's screening is {screening['severity']} "
            f"({screening['topic']}); a city reviewer must override it with a reason first",
        )


def case_change(
    case: dict[str, Any], request: DecisionRequest, now: datetime
) -> tuple[dict[str, Any], bool]:
    """What a decision sets on the case, and whether it ends the review."""
    step = case["step"] + 1
    approve = request.decision == "approve"
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
    if request.publish_at is not None:
        change["publish_at"] = request.publish_at
    return change, final


async def decide(
    *,
    runtime: Review,
    principal: Principal,
    case_id: str,
    request: DecisionRequest,
    on_final: OnFinal,
) -> DecisionResult:
    """Approve, return or reject the version a reviewer judged, at the case's level.
    ``on_final(case, publish_at, session)`` queues publication in the same transaction."""
    case = await find_case(db=runtime.db, case_id=case_id)
    role = authorise_decision(principal, case, runtime.org)
    level = ev.ReviewLevel(case["level"])
    check_decidable(case, request)
    if request.decision == "approve" and level in CITY_LEVELS:
        await check_not_held(runtime, case, runtime.config)
    now = utcnow()
    change, final = case_change(case, request, now)
    publish_at = request.publish_at or case.get("publish_at")
    decision = DECISION_OF[request.decision]
    comment = request.reason if request.decision == "reject" else request.comment
    actor = Actor.of(principal, role)
    event = reviewed_event(
        case, level=level, decision=decision, final=final, actor=actor, comment=comment, at=now,
    )  # fmt: skip

    async def write(session: AsyncClientSession) -> None:
        await guarded_update(runtime, case, change, session)
        await write_audit(
            runtime.db, session=session, story_id=case["story_id"], case_id=case["_id"],
            version=case["version"], actor=actor, level=level, action=AuditAction(decision),
            comment=comment, at=now,
        )  # fmt: skip
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
    *, runtime: Review, principal: Principal, case_id: str, request: OverrideRequest
) -> CaseView:
    """A city reviewer lifts the screening hold of an open case, with a written reason."""
    require_city_reviewer(principal, runtime.org)
    case = await find_case(db=runtime.db, case_id=case_id)
    if case["state"] != CaseState.OPEN:
        raise conflict(
            "该稿件已不在待审状态，无需解除暂缓",
            f"this case is {case['state']}; there is no hold to lift",
        )
    if case.get("override") is not None:
        raise conflict("该稿件的暂缓已被解除", "the hold on this case was already overridden")
    config = runtime.config
    if not holds((await screenings_of(runtime.db, [case])).get(case["_id"]), config):
        raise conflict("该稿件没有因舆情研判被暂缓", "this case is not held by a screening result")
    now = utcnow()
    actor = Actor.of(principal, Role.REVIEWER_CITY)
    override = {"by": principal.sub, "name": principal.name, "reason": request.reason, "at": now}
    city = ev.ReviewLevel.CITY
    event = reviewed_event(
        case, level=city, decision=ev.Decision.OVERRIDDEN, final=False, actor=actor,
        comment=request.reason, at=now,
    )  # fmt: skip

    async def write(session: AsyncClientSession) -> None:
        await guarded_update(runtime, case, {"override": override}, session)
        await write_audit(
            runtime.db, session=session, story_id=case["story_id"], case_id=case["_id"],
            version=case["version"], actor=actor, level=city, action=AuditAction.OVERRIDDEN,
            comment=request.reason, at=now,
        )  # fmt: skip
        await runtime.emit(tp.STORY_REVIEWED, event, session=session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    DECISIONS.labels(city, ev.Decision.OVERRIDDEN).inc()
    return await get_case(runtime=runtime, principal=principal, case_id=case_id)
