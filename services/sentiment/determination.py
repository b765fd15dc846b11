"""The city bureau's determination (认定) that an incident is a serious negative incident,
or its lifting: who may, with a reason, announced on ``opinion.flagged`` in the same
transaction (scoring vetoes the unit's year on this, never on an alert's severity alone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from services.sentiment.runtime import SERVICE, Sentiment
from shared import topics as tp
from shared.auth import Principal, Role
from shared.clock import utcnow
from shared.events import FlagKind, OpinionFlagged, OpinionFlaggedEvent, Severity
from shared.mongo import in_transaction
from shared.refusals import Refusal

# who may determine an incident serious: the city bureau's opinion officer, its leader in
# charge, or an administrator, never a county or a school
DETERMINING_ROLES = (Role.OPINION_OFFICER, Role.LEADER, Role.ADMIN)


def check_may_determine(*, runtime: Sentiment, principal: Principal, reason: str) -> None:
    if principal.unit != runtime.org.city.code or not principal.has(*DETERMINING_ROLES):
        raise Refusal(
            403,
            "not_city_office",
            "只有市教育局办公室或市级舆情管理员可以认定或撤销严重负面舆情事件",
        )
    if not reason.strip():
        raise Refusal(422, "reason_required", "请写明认定或撤销的理由")


def _announcement(
    *, incident: dict[str, Any], record: dict[str, Any], principal: Principal, now: datetime
) -> OpinionFlaggedEvent:
    determined = record["determined"]
    flagged = OpinionFlagged(
        kind=FlagKind.DETERMINATION if determined else FlagKind.DETERMINATION_LIFTED,
        incident_id=incident["_id"],
        alert_id=incident.get("alert_id"),
        county=incident["county"],
        school=incident["school"],
        owner_level="city",
        severity=Severity(incident["severity"]),
        negative=True,
        score=1.0,
        topic=incident["topic"],
        item_count=incident["item_count"],
        flagged_at=now,
        decided_by=principal.sub,
        decided_by_name=principal.name,
        reason=record["reason"],
        incident_at=incident["first_item_at"],
    )
    return OpinionFlaggedEvent.build(
        flagged,
        producer=SERVICE,
        county=incident["county"],
        unit=incident["school"] or incident["county"],
    )


async def determine_incident(
    *,
    runtime: Sentiment,
    incident_id: str,
    principal: Principal,
    reason: str,
    determined: bool,
) -> dict[str, Any]:
    """Record the determination (or its lifting) and announce it, both or neither."""
    check_may_determine(runtime=runtime, principal=principal, reason=reason)
    db = runtime.db
    incident = await db.incidents.find_one({"_id": incident_id}, projection={"item_ids": False})
    if incident is None:
        raise Refusal(404, "unknown_incident", "没有这个舆情事件", f"no incident {incident_id!r}")
    current = (incident.get("determination") or {}).get("determined", False)
    if current == determined:
        raise Refusal(
            409,
            "determination_unchanged",
            "该事件已被认定为严重负面舆情事件" if determined else "该事件尚未被认定，无需撤销",
        )
    now = utcnow()
    record = {
        "determined": determined,
        "by": principal.sub,
        "by_name": principal.name,
        "at": now,
        "reason": reason.strip(),
    }
    event = _announcement(incident=incident, record=record, principal=principal, now=now)
    # the state read above must still hold: two officers deciding at once do not both win
    unchanged = (
        {"determination.determined": True}
        if current
        else {"$or": [{"determination": {"$exists": False}}, {"determination.determined": False}]}
    )

    async def effect(session: AsyncClientSession) -> None:
        done = await db.incidents.update_one(
            {"_id": incident_id, **unchanged},
            {"$set": {"determination": record}, "$push": {"determination_history": record}},
            session=session,
        )
        if done.modified_count != 1:
            message = "该事件的认定状态刚刚被他人更改，请刷新后重试"
            raise Refusal(409, "determination_changed", message)
        await runtime.emit(tp.OPINION_FLAGGED, event, session=session)

    await in_transaction(runtime.mongo, effect)
    runtime.outbox_written()
    return {**incident, "determination": record}
