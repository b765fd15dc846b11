"""What an officer may read: incidents and alerts about their unit and the units below
it, and the indexes those reads (and the jobs) use."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from services.sentiment.models import AlertState
from services.sentiment.runtime import Sentiment
from shared.auth import Principal
from shared.events import Severity
from shared.orgtree import OrgTree


async def ensure_indexes(*, runtime: Sentiment) -> None:
    db = runtime.db
    await db.incidents.create_index([("group", ASCENDING), ("last_item_at", DESCENDING)])
    await db.incidents.create_index([("county", ASCENDING), ("last_item_at", DESCENDING)])
    await db.alerts.create_index([("state", ASCENDING), ("deadline", ASCENDING)])
    await db.alerts.create_index([("county", ASCENDING), ("updated_at", DESCENDING)])
    await db.notifications.create_index([("delivered_at", ASCENDING), ("next_at", ASCENDING)])
    # the item list and the briefings read items by time, the city's across counties
    await db.items.create_index([("county", ASCENDING), ("published_at", DESCENDING)])
    await db.items.create_index([("published_at", DESCENDING)])


def scope_filter(*, org: OrgTree, principal: Principal) -> dict[str, Any]:
    """Incidents and alerts about the principal's unit and the units below it."""
    if principal.unit == org.city.code:
        return {}
    codes = [unit.code for unit in org.below(principal.unit)]
    return {"$or": [{"county": {"$in": codes}}, {"school": {"$in": codes}}]}


def in_scope_of(*, org: OrgTree, principal: Principal, doc: dict[str, Any]) -> bool:
    if principal.unit == org.city.code:
        return True
    return any(
        code and org.contains(principal.unit, code)
        for code in (doc.get("school"), doc.get("county"))
    )


async def list_incidents(
    *, runtime: Sentiment, principal: Principal, severity: Severity | None, limit: int
) -> list[dict[str, Any]]:
    query = scope_filter(org=runtime.org, principal=principal)
    if severity is not None:
        query["severity"] = severity.value
    cursor = runtime.db.incidents.find(query, projection={"item_ids": False}).sort(
        "last_item_at", DESCENDING
    )
    return await cursor.limit(limit).to_list()


async def get_incident(
    *, runtime: Sentiment, principal: Principal, incident_id: str, item_limit: int = 500
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """An incident in scope with its items, oldest first."""
    db = runtime.db
    incident = await db.incidents.find_one({"_id": incident_id})
    if incident is None or not in_scope_of(org=runtime.org, principal=principal, doc=incident):
        return None
    # incidents list the items they counted; those from before that list link each item
    query = (
        {"_id": {"$in": incident["item_ids"][:item_limit]}}
        if "item_ids" in incident
        else {"incident_id": incident_id}
    )
    items = await db.items.find(query).sort("published_at", ASCENDING).limit(item_limit).to_list()
    return incident, items


async def list_alerts(
    *,
    runtime: Sentiment,
    principal: Principal,
    state: AlertState | None,
    severity: Severity | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = scope_filter(org=runtime.org, principal=principal)
    if state is not None:
        query["state"] = state
    if severity is not None:
        query["severity"] = severity.value
    cursor = runtime.db.alerts.find(query).sort("updated_at", DESCENDING)
    return await cursor.limit(limit).to_list()


async def get_alert(
    *, runtime: Sentiment, principal: Principal, alert_id: str
) -> dict[str, Any] | None:
    alert = await runtime.db.alerts.find_one({"_id": alert_id})
    if alert is None or not in_scope_of(org=runtime.org, principal=principal, doc=alert):
        return None
    return alert
