"""What an officer may read: incidents and alerts about their unit and the units below
it, and the indexes those reads (and the jobs) use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from pymongo import ASCENDING, DESCENDING

from services.sentiment.documents import (
    AlertDoc,
    IncidentDoc,
    ItemDoc,
    alerts_of,
    incidents_of,
    items_of,
)
from services.sentiment.models import AlertState
from services.sentiment.runtime import Sentiment
from shared.auth import Principal
from shared.events import Severity
from shared.orgtree import OrgTree
from shared.paging import PageQuery
from shared.windows import windowed_page

# the lists' shapes: one scope equality (none for the city) and a range on the time field,
# newest first; each collection holds (time, _id) for the city and (county | school, time,
# _id) for a county's and a school's officers
LIST_TIME = {"items": "published_at", "incidents": "last_item_at", "alerts": "updated_at"}
# indexes the lists' shapes replaced: (county, time) without the _id a page resumes by,
# and the time alone
REPLACED = {
    "items": ["county_1_published_at_-1", "published_at_-1"],
    "incidents": ["county_1_last_item_at_-1"],
    "alerts": ["county_1_updated_at_-1"],
}


async def ensure_indexes(*, runtime: Sentiment) -> None:
    db = runtime.db
    # intake finds a group's recent incidents; the deadline job finds open alerts past due
    await db.incidents.create_index([("group", ASCENDING), ("last_item_at", DESCENDING)])
    await db.alerts.create_index([("state", ASCENDING), ("deadline", ASCENDING)])
    await db.notifications.create_index([("delivered_at", ASCENDING), ("next_at", ASCENDING)])
    for name, field in LIST_TIME.items():
        collection = db[name]
        await collection.create_index([(field, DESCENDING), ("_id", ASCENDING)])
        for scope in ("county", "school"):
            await collection.create_index(
                [(scope, ASCENDING), (field, DESCENDING), ("_id", ASCENDING)]
            )
        # every index entry costs a write at intake: the replaced ones go
        present = await collection.index_information()
        for old in REPLACED[name]:
            if old in present:
                await collection.drop_index(old)


def unit_filter(*, org: OrgTree, code: str) -> dict[str, Any]:
    """Items, incidents and alerts about the unit ``code`` and the units below it, as one
    equality an index serves. Intake refuses a school outside the county an item names,
    so a school's item (and the incident and alert it makes) carries the school's county
    in ``county`` (the city's code for a school the city runs directly) and a county's
    own item has no ``school``: the county's documents are exactly those with its code in
    ``county``, a school's those with its code in ``school``."""
    unit = org.unit(code)  # callers name known units only (tokens' and checked filters)
    if unit.type == "city":
        return {}
    if unit.type == "county":
        return {"county": code}
    return {"school": code}


def scope_filter(*, org: OrgTree, principal: Principal) -> dict[str, Any]:
    """Incidents and alerts about the principal's unit and the units below it."""
    return unit_filter(org=org, code=principal.unit)


def in_scope_of(
    *, org: OrgTree, principal: Principal, doc: ItemDoc | IncidentDoc | AlertDoc
) -> bool:
    if principal.unit == org.city.code:
        return True
    return any(
        code and org.contains(principal.unit, code)
        for code in (doc.get("school"), doc.get("county"))
    )


def keep_equal(equal: dict[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """The filters beyond the scope, tested on each document of a window: an equality
    outside the list's index would make the embedded server scan the whole collection,
    while the scope and the time range ride the index (``windowed_page``'s ``keep``)."""
    if not equal:
        return None
    return lambda doc: all(doc.get(key) == value for key, value in equal.items())


async def list_incidents(
    *, runtime: Sentiment, principal: Principal, severity: Severity | None, page: PageQuery
) -> tuple[list[IncidentDoc], str | None]:
    """Incidents in scope, most recently active first (without their item ids), and the
    cursor of the next page."""
    narrowed = {} if severity is None else {"severity": severity.value}
    docs, following = await windowed_page(
        runtime.db.incidents, scope_filter(org=runtime.org, principal=principal),
        field=LIST_TIME["incidents"], query=page, projection={"item_ids": False},
        keep=keep_equal(narrowed),
    )  # fmt: skip
    return cast("list[IncidentDoc]", docs), following


async def get_incident(
    *, runtime: Sentiment, principal: Principal, incident_id: str, item_limit: int = 500
) -> tuple[IncidentDoc, list[ItemDoc]] | None:
    """An incident in scope with its items, oldest first."""
    db = runtime.db
    incident = await incidents_of(db).find_one({"_id": incident_id})
    if incident is None or not in_scope_of(org=runtime.org, principal=principal, doc=incident):
        return None
    # incidents list the items they counted; those from before that list link each item
    query = (
        {"_id": {"$in": incident["item_ids"][:item_limit]}}
        if "item_ids" in incident
        else {"incident_id": incident_id}
    )
    items = (
        await items_of(db).find(query).sort("published_at", ASCENDING).limit(item_limit).to_list()
    )
    return incident, items


async def list_alerts(
    *,
    runtime: Sentiment,
    principal: Principal,
    state: AlertState | None,
    severity: Severity | None,
    page: PageQuery,
) -> tuple[list[AlertDoc], str | None]:
    """Alerts in scope, most recently changed first, and the cursor of the next page."""
    narrowed: dict[str, Any] = {}
    if state is not None:
        narrowed["state"] = state
    if severity is not None:
        narrowed["severity"] = severity.value
    docs, following = await windowed_page(
        runtime.db.alerts, scope_filter(org=runtime.org, principal=principal),
        field=LIST_TIME["alerts"], query=page, keep=keep_equal(narrowed),
    )  # fmt: skip
    return cast("list[AlertDoc]", docs), following


async def get_alert(*, runtime: Sentiment, principal: Principal, alert_id: str) -> AlertDoc | None:
    alert = await alerts_of(runtime.db).find_one({"_id": alert_id})
    if alert is None or not in_scope_of(org=runtime.org, principal=principal, doc=alert):
        return None
    return alert
