"""The city office's actions: scheduling (embargo), outside adoption (采用), withdrawal
(撤稿) and the publish queue as it sees it. Published content is archived, never deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from datetime import time as day_time
from typing import Any

from prometheus_client import Counter
from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.review.access import CITY_LEVELS, require_city_office
from services.review.audit import Actor, write_audit
from services.review.decisions import commit_change, guarded_update
from services.review.delivery import enqueue_publications
from services.review.feeds import published_event
from services.review.models import (
    AdoptionRequest,
    AdoptionView,
    AuditAction,
    CaseState,
    PublicationAction,
    PublicationState,
)
from services.review.publications import state_filter, waiting
from services.review.refused import conflict
from services.review.runtime import Review
from services.review.service import (
    ADOPTIONS,
    CASES,
    FEED,
    PUBLICATIONS,
    latest_case,
)
from shared import events as ev
from shared import topics as tp
from shared.auth import Principal
from shared.clock import BUREAU_ZONE, utcnow
from shared.paging import PageQuery, keyset_page
from shared.windows import windowed_page

ADOPTIONS_TOTAL = Counter(
    "citydesk_review_adoptions_total", "Adoptions by outside outlets, by outlet level.", ["level"]
)


async def schedule_story(
    *, runtime: Review, principal: Principal, story_id: str, publish_at: datetime
) -> dict[str, Any]:
    """Set when a story goes out: before its final approval, or while still waiting."""
    role = require_city_office(principal, runtime.org)
    db = runtime.db
    case = await latest_case(db, story_id)
    now = utcnow()
    moved = 0

    async def write(session: AsyncClientSession) -> None:
        nonlocal moved
        if case["state"] == CaseState.OPEN and case["level"] in CITY_LEVELS:
            await guarded_update(runtime, case, {"publish_at": publish_at}, session)
        elif case["state"] == CaseState.APPROVED and not case.get("withdrawn"):
            result = await db[PUBLICATIONS].update_many(
                {
                    "story_id": story_id,
                    "version": case["version"],
                    "action": PublicationAction.PUBLISH,
                    **state_filter(PublicationState.PENDING, now),
                },
                {"$set": {"publish_at": publish_at, "next_at": publish_at}},
                session=session,
            )
            moved = result.modified_count
            if moved == 0:
                raise conflict(
                    "该稿件没有等待发布的渠道", "nothing of this story waits to be published"
                )
        else:
            raise conflict(
                "只能在市局终审环节或终审通过后设定发布时间",
                f"the story's case is {case['state']} at the {case['level']} level; "
                "it can be scheduled at the city level or after final approval",
            )
        await write_audit(
            db, session=session, story_id=story_id, case_id=case["_id"],
            version=case["version"], actor=Actor.of(principal, role), level=None,
            action=AuditAction.SCHEDULED, comment=publish_at.isoformat(), at=now,
        )  # fmt: skip

    await commit_change(runtime, write)
    return {"story_id": story_id, "version": case["version"], "publish_at": publish_at,
            "publications": moved}  # fmt: skip


async def approved_case(db: AsyncDatabase[dict[str, Any]], story_id: str) -> dict[str, Any]:
    """The newest approved version's case: 404 for an unknown story, 409 before approval."""
    await latest_case(db, story_id)
    case = await db[CASES].find_one(
        {"story_id": story_id, "state": CaseState.APPROVED}, sort=[("version", DESCENDING)]
    )
    if case is None:
        raise conflict("该稿件尚未通过终审", f"story {story_id!r} has not passed its final review")
    return case


async def record_adoption(
    *, runtime: Review, principal: Principal, story_id: str, request: AdoptionRequest
) -> AdoptionView:
    """Record that an outside outlet ran the story; one outlet counts once per story."""
    role = require_city_office(principal, runtime.org)
    db = runtime.db
    case = await approved_case(db, story_id)
    now = utcnow()
    outlet = " ".join(request.outlet.split())
    adoption = {
        "_id": uuid.uuid4().hex,
        "story_id": story_id,
        "version": case["version"],
        "outlet": outlet,
        "outlet_key": outlet.casefold(),
        "level": request.level,
        "placement": str(request.placement),
        "date": request.date.isoformat(),
        "link": str(request.link),
        "leader_instruction": request.leader_instruction,
        "recorded_by": principal.sub,
        "recorded_at": now,
    }
    ran_at = datetime.combine(request.date, day_time(12), BUREAU_ZONE).astimezone(UTC)

    async def write(session: AsyncClientSession) -> None:
        await db[ADOPTIONS].insert_one(adoption, session=session)
        await write_audit(
            db, session=session, story_id=story_id, case_id=case["_id"],
            version=case["version"], actor=Actor.of(principal, role), level=None,
            action=AuditAction.ADOPTED, comment=f"{outlet} ({request.level}, {request.placement})",
            channel=outlet, at=now,
        )  # fmt: skip
        event = published_event(
            case, kind=ev.PublicationKind.ADOPTION, outlet=outlet,
            outlet_level=ev.OutletLevel(request.level), placement=request.placement,
            leader_instruction=request.leader_instruction, link=str(request.link), at=ran_at,
        )  # fmt: skip
        await runtime.emit(tp.STORY_PUBLISHED, event, session=session)

    try:
        await commit_change(runtime, write)
    except DuplicateKeyError as exc:
        raise conflict(
            f"“{outlet}”采用该稿件的记录已经登记过",
            f"the adoption of this story by {outlet!r} is already recorded",
        ) from exc
    runtime.outbox_written()
    ADOPTIONS_TOTAL.labels(request.level).inc()
    return adoption_view(adoption)


def adoption_view(doc: dict[str, Any]) -> AdoptionView:
    return AdoptionView(adoption_id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


async def adoptions_of(
    *, runtime: Review, story_id: str | None, page: PageQuery
) -> tuple[list[AdoptionView], str | None]:
    """One story's adoptions in the order recorded (a handful), or (no story) the latest
    across stories first, read in time windows: that list holds every year's."""
    if story_id is None:
        rows, cursor = await windowed_page(
            runtime.db[ADOPTIONS], {}, field="recorded_at", query=page
        )
    else:
        rows, cursor = await keyset_page(
            runtime.db[ADOPTIONS], {"story_id": story_id}, query=page,
            sort=[("recorded_at", 1), ("_id", 1)],
        )  # fmt: skip
    return [adoption_view(row) for row in rows], cursor


async def withdraw_story(
    *, runtime: Review, principal: Principal, story_id: str, reason: str
) -> dict[str, Any]:
    """Withdraw a published story everywhere it went: the feed entry is archived as
    withdrawn, pending deliveries are cancelled and webhook channels are told."""
    role = require_city_office(principal, runtime.org)
    db = runtime.db
    case = await approved_case(db, story_id)
    if case.get("withdrawn"):
        raise conflict("该稿件已撤稿", f"story {story_id!r} is already withdrawn")
    now = utcnow()
    served = await db[PUBLICATIONS].distinct(
        "channel",
        {
            "story_id": story_id,
            "action": PublicationAction.PUBLISH,
            **state_filter(PublicationState.SUCCESS, now),
        },
    )
    if not served:
        raise conflict(
            "该稿件尚未在任何渠道发布，请直接取消待发布任务",
            "the story is not published anywhere yet; cancel its publications instead",
        )
    config = runtime.config
    actor = Actor.of(principal, role)

    async def write(session: AsyncClientSession) -> None:
        await guarded_update(
            runtime, case, {"withdrawn": True, "withdrawn_at": now, "withdraw_reason": reason},
            session,
        )  # fmt: skip
        await db[FEED].update_one(
            {"_id": story_id, "state": "published"},
            {"$set": {"state": "withdrawn", "withdrawn_at": now, "withdraw_reason": reason}},
            session=session,
        )
        await db[PUBLICATIONS].update_many(
            {"story_id": story_id, **waiting(now)},
            {"$set": {"state": "cancelled", "last_error": "story withdrawn"}},
            session=session,
        )
        hooks = [name for name in served if config.webhook(name) is not None]
        await enqueue_publications(
            runtime, case=case, publish_at=now, session=session,
            action=PublicationAction.WITHDRAW, channels=hooks,
        )  # fmt: skip
        await write_audit(
            db, session=session, story_id=story_id, case_id=case["_id"],
            version=case["version"], actor=actor, level=None, action=AuditAction.WITHDRAWN,
            comment=reason, at=now,
        )  # fmt: skip
        event = published_event(case, kind=ev.PublicationKind.WITHDRAWAL, reason=reason, at=now)
        await runtime.emit(tp.STORY_PUBLISHED, event, session=session)

    await commit_change(runtime, write)
    runtime.outbox_written()
    return {"story_id": story_id, "version": case["version"], "withdrawn_at": now,
            "channels": served}  # fmt: skip
