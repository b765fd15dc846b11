"""The audit trail: one insert-only step per thing that happened to a story (submitted,
decided, superseded, scheduled, published, adopted, withdrawn), who did it and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.review.models import AuditAction, AuditEntry, AuditStep
from services.review.refused import forbidden
from services.review.runtime import Review
from services.review.service import AUDIT, latest_case
from shared.auth import Principal, Role, in_scope
from shared.clock import utcnow
from shared.orgtree import OrgTree
from shared.paging import PageQuery, keyset_page


@dataclass(frozen=True)
class Actor:
    """Who an audit step names."""

    who: str
    name: str
    role: str
    unit: str

    @classmethod
    def of(cls, principal: Principal, role: Role | str) -> Actor:
        return cls(principal.sub, principal.name, str(role), principal.unit)

    @classmethod
    def system(cls, org: OrgTree) -> Actor:
        """CityDesk itself: supersessions and deliveries."""
        return cls("system", "CityDesk", "system", org.city.code)


async def write_audit(
    db: AsyncDatabase[dict[str, Any]],
    *,
    session: AsyncClientSession | None,
    story_id: str,
    case_id: str | None,
    version: int,
    actor: Actor,
    level: str | None,
    action: AuditAction,
    comment: str | None = None,
    channel: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one step to the story's audit trail (the collection is only ever inserted to)."""
    step = AuditStep(
        story_id=story_id, case_id=case_id, version=version, at=at or utcnow(),
        who=actor.who, name=actor.name, role=actor.role, unit=actor.unit, level=level,
        action=action, decision=action.decision, comment=comment, channel=channel,
    )  # fmt: skip
    await db[AUDIT].insert_one(step.model_dump(), session=session)


async def audit_trail(
    *, runtime: Review, principal: Principal, story_id: str, page: PageQuery
) -> tuple[list[AuditEntry], str | None]:
    """Every step of a story, oldest first, for anyone whose scope holds the story's unit."""
    await require_story_in_scope(runtime=runtime, principal=principal, story_id=story_id)
    rows, cursor = await keyset_page(
        runtime.db[AUDIT], {"story_id": story_id}, sort=[("at", 1), ("_id", 1)], query=page
    )
    return [AuditEntry.model_validate(row) for row in rows], cursor


async def require_story_in_scope(*, runtime: Review, principal: Principal, story_id: str) -> None:
    """404 for a story never reviewed here, 403 when its unit is outside the caller's scope."""
    case = await latest_case(runtime.db, story_id)
    if not in_scope(principal, runtime.org, case["unit_path"]["unit"]):
        raise forbidden("该稿件不在您的管辖范围内", f"story {story_id!r} is outside your scope")
