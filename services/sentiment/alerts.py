"""Alerts: raised and raised in severity with their incident, announced on
``opinion.flagged``; moved along by people (签收, 处置, 办结, 批注); handed one level up
when nobody acknowledges them before the deadline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from services.sentiment.metrics import ALERTS_ESCALATED, ALERTS_OPEN
from services.sentiment.models import AlertState, OwnerLevel, SentimentConfig
from services.sentiment.notifications import queue_notification
from services.sentiment.queries import in_scope_of
from services.sentiment.runtime import SERVICE, Sentiment
from services.sentiment.wording import ACTION_NAMES, STATE_NAMES
from shared import topics as tp
from shared.auth import Principal
from shared.clock import utcnow
from shared.events import FlagKind, OpinionFlagged, OpinionFlaggedEvent, Severity
from shared.mongo import in_transaction
from shared.orgtree import OrgTree
from shared.refusals import Refusal

NEXT_LEVEL: dict[OwnerLevel, OwnerLevel] = {"school": "county", "county": "city"}


def deadline(config: SentimentConfig, severity: Severity, start: datetime) -> datetime:
    return start + timedelta(seconds=config.alerts.deadline_seconds[severity])


async def raise_alert(
    *,
    runtime: Sentiment,
    incident: dict[str, Any],
    kind: FlagKind,
    session: AsyncClientSession,
) -> dict[str, Any]:
    """Open the incident's alert, or raise its severity."""
    db = runtime.db
    config = runtime.config
    now = utcnow()
    severity = Severity(incident["severity"])
    serious = severity.rank >= config.alerts.serious_from.rank
    common = {
        "severity": severity.value,
        "serious": serious,
        "item_count": incident["item_count"],
        "topic": incident["topic"],
        "updated_at": now,
    }
    if kind == FlagKind.ALERT:
        level: OwnerLevel = "school" if incident["school"] else "county"
        alert = {
            "_id": incident["alert_id"],
            "incident_id": incident["_id"],
            "county": incident["county"],
            "school": incident["school"],
            "owner_level": level,
            "owner_unit": incident["school"] or incident["county"],
            "state": "open",
            "deadline": deadline(config, severity, now),
            "created_at": now,
            "history": [
                {"at": now, "action": "raised", "by": SERVICE, "comment": "", "owner_level": level}
            ],
            **common,
        }
        await db.alerts.insert_one(alert, session=session)
        return alert
    current = await db.alerts.find_one({"_id": incident["alert_id"]}, session=session)
    if current is None:
        raise LookupError(f"incident {incident['_id']} names alert {incident['alert_id']}")
    update: dict[str, Any] = dict(common)
    if current["state"] == "open":
        update["deadline"] = min(current["deadline"], deadline(config, severity, now))
    entry = {
        "at": now,
        "action": f"severity raised to {severity.value}",
        "by": SERVICE,
        "comment": "",
        "owner_level": current["owner_level"],
    }
    await db.alerts.update_one(
        {"_id": current["_id"]}, {"$set": update, "$push": {"history": entry}}, session=session
    )
    return {**current, **update}


async def announce(
    *,
    runtime: Sentiment,
    alert: dict[str, Any],
    kind: FlagKind,
    score: float,
    explanation: list[str],
    correlation_id: str | None,
    session: AsyncClientSession,
) -> None:
    """``opinion.flagged`` through the outbox, and the pushes to people, in the caller's
    transaction."""
    flagged = OpinionFlagged(
        kind=kind,
        incident_id=alert["incident_id"],
        alert_id=alert["_id"],
        county=alert["county"],
        school=alert["school"],
        owner_level=alert["owner_level"],
        severity=Severity(alert["severity"]),
        serious=alert["serious"],
        negative=True,
        score=score,
        topic=alert["topic"],
        explanation=explanation,
        item_count=alert["item_count"],
        flagged_at=utcnow(),
    )
    event = OpinionFlaggedEvent.build(
        flagged,
        producer=SERVICE,
        county=alert["county"],
        unit=alert["owner_unit"],
        correlation_id=correlation_id,
    )
    await runtime.emit(tp.OPINION_FLAGGED, event, session=session)
    await queue_notification(runtime=runtime, event=event, session=session)


# ---- people's actions ------------------------------------------------------------------
ACTIONS: dict[str, tuple[frozenset[str], AlertState | None]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged"),
    "respond": (frozenset({"acknowledged", "responding"}), "responding"),
    "close": (frozenset({"open", "acknowledged", "responding"}), "closed"),
    "comment": (frozenset({"open", "acknowledged", "responding", "closed"}), None),
}


def can_act_on(*, org: OrgTree, principal: Principal, alert: dict[str, Any]) -> bool:
    """The alert's current owner unit, or any unit above it, may act on it."""
    return org.contains(principal.unit, alert["owner_unit"])


def check_action(
    *, runtime: Sentiment, principal: Principal, alert: dict[str, Any], action: str, comment: str
) -> None:
    """Refuse an action the principal may not take, or that the alert's state forbids."""
    if action not in ACTIONS:
        names = "、".join(ACTION_NAMES.values())
        raise Refusal(404, "unknown_action", f"没有这个操作，可选：{names}", f"unknown {action!r}")
    if not can_act_on(org=runtime.org, principal=principal, alert=alert):
        raise Refusal(
            403,
            "alert_not_yours",
            f"这条预警现由{runtime.unit_name(alert['owner_unit'])}负责，您所在单位无权操作",
            f"alert {alert['_id']} is now owned by {alert['owner_unit']!r}",
        )
    allowed, _ = ACTIONS[action]
    if alert["state"] not in allowed:
        raise Refusal(
            409,
            "alert_wrong_state",
            f"预警当前为“{STATE_NAMES[alert['state']]}”，不能{ACTION_NAMES[action]}",
            f"cannot {action} an alert that is {alert['state']}",
        )
    if action in ("close", "comment") and not comment.strip():
        message = f"{ACTION_NAMES[action]}时请写明情况"
        raise Refusal(409, "comment_required", message, f"{action} needs a comment")


async def act_on_alert(
    *, runtime: Sentiment, alert_id: str, action: str, principal: Principal, comment: str
) -> dict[str, Any]:
    """Move an alert along open → acknowledged → responding → closed, or comment on it."""
    db = runtime.db
    alert = await db.alerts.find_one({"_id": alert_id})
    if alert is None or not in_scope_of(org=runtime.org, principal=principal, doc=alert):
        raise Refusal(404, "unknown_alert", "您的管辖范围内没有这条预警", f"no alert {alert_id!r}")
    check_action(runtime=runtime, principal=principal, alert=alert, action=action, comment=comment)
    now = utcnow()
    entry = {
        "at": now,
        "action": action,
        "by": principal.sub,
        "by_name": principal.name,
        "comment": comment,
        "owner_level": alert["owner_level"],
    }
    changes: dict[str, Any] = {"updated_at": now}
    target = ACTIONS[action][1]
    if target is not None:
        changes["state"] = target
    done = await db.alerts.find_one_and_update(
        {"_id": alert_id, "state": alert["state"]},
        {"$set": changes, "$push": {"history": entry}},
        return_document=True,
    )
    if done is None:
        raise Refusal(409, "alert_changed", "预警刚刚被他人更改，请刷新后重试")
    return done


# ---- the deadline job -------------------------------------------------------------------
async def escalate_overdue(*, runtime: Sentiment) -> int:
    """Hand each open alert past its deadline one level up, with a new deadline, and
    announce it again."""
    now = utcnow()
    due = (
        await runtime.db.alerts.find(
            {"state": "open", "deadline": {"$lte": now}, "owner_level": {"$ne": "city"}}
        )
        .limit(200)
        .to_list()
    )
    escalated = 0
    for alert in due:
        level = await _escalate_one(runtime=runtime, alert=alert, now=now)
        if level is not None:
            escalated += 1
            ALERTS_ESCALATED.labels(level).inc()
    if escalated:
        runtime.outbox_written()
    return escalated


async def _escalate_one(
    *, runtime: Sentiment, alert: dict[str, Any], now: datetime
) -> OwnerLevel | None:
    """Move one alert up and announce it in one transaction; None when someone acted on
    it (or another replica moved it) meanwhile."""
    level: OwnerLevel = NEXT_LEVEL[alert["owner_level"]]
    if level == "county" and not alert["county"]:
        level = "city"
    unit = alert["county"] if level == "county" else runtime.org.city.code
    changes: dict[str, Any] = {
        "owner_level": level,
        "owner_unit": unit,
        "deadline": deadline(runtime.config, Severity(alert["severity"]), now),
        "updated_at": now,
    }
    comment = f"not acknowledged by {alert['owner_unit']} before the deadline"
    entry = {
        "at": now,
        "action": f"escalated to {level}",
        "by": SERVICE,
        "comment": comment,
        "owner_level": level,
    }
    moved = False

    async def effect(session: AsyncClientSession) -> None:
        nonlocal moved
        done = await runtime.db.alerts.update_one(
            {"_id": alert["_id"], "state": "open", "owner_level": alert["owner_level"]},
            {"$set": changes, "$push": {"history": entry}},
            session=session,
        )
        moved = done.modified_count == 1
        if moved:
            await announce(
                runtime=runtime,
                alert={**alert, **changes},
                kind=FlagKind.ESCALATION,
                score=1.0,
                explanation=[comment],
                correlation_id=None,
                session=session,
            )

    await in_transaction(runtime.mongo, effect)
    return level if moved else None


async def refresh_gauges(*, runtime: Sentiment) -> None:
    """Open alerts per severity, counted from the database."""
    counts = {s.value: 0 for s in Severity}
    async for row in await runtime.db.alerts.aggregate(
        [
            {"$match": {"state": {"$ne": "closed"}}},
            {"$group": {"_id": "$severity", "n": {"$sum": 1}}},
        ]
    ):
        counts[row["_id"]] = row["n"]
    for severity, count in counts.items():
        ALERTS_OPEN.labels(severity).set(count)
