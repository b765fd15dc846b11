"""The media list: newest first, a page at a time by keyset windows (``shared.windows``),
the caller's scope and each filter an equality that leads an index ending in the time."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING

from services.media.models import MEDIA, MediaRead
from shared.auth import Principal, require_scope
from shared.events import MediaKind
from shared.orgtree import OrgTree
from shared.paging import Page, PageQuery
from shared.runtime import ServiceRuntime
from shared.windows import windowed_page

SCOPE_FIELDS = ("unit", "unit_path.county")
FILTER_FIELDS = ("campaign", "kind")


def scope_filter(org: OrgTree, scope: str) -> dict[str, Any]:
    """The scope as one equality: the whole city, a county, or one unit (a school has no
    units below it); the rare other unit lists its units by name."""
    unit = org.unit(scope)
    if unit.type == "city":
        return {}
    if unit.type == "county":
        return {"unit_path.county": scope}
    below = [u.code for u in org.below(scope)]
    return {"unit": scope} if below == [scope] else {"unit": {"$in": below}}


async def ensure_list_indexes(runtime: ServiceRuntime) -> None:
    """Every (scope, filter) pair the list can send, each followed by the time and ``_id``
    (a start-up hook)."""
    media = runtime.db[MEDIA]
    tail = [("stored_at", DESCENDING), ("_id", ASCENDING)]
    for scope in (None, *SCOPE_FIELDS):
        for narrowed in (None, *FILTER_FIELDS):
            lead = [(field, ASCENDING) for field in (scope, narrowed) if field is not None]
            await media.create_index([*lead, *tail])


async def list_media(
    *,
    runtime: ServiceRuntime,
    principal: Principal,
    unit: str | None,
    campaign: str | None,
    kind: MediaKind | None,
    page: PageQuery,
) -> Page[MediaRead]:
    """Media of a unit and the units below it (default: the caller's), newest first."""
    scope = unit or principal.unit
    require_scope(principal, runtime.org, scope)
    query = scope_filter(runtime.org, scope)
    if campaign:
        query["campaign"] = campaign
    if kind:
        query["kind"] = kind.value
    docs, next_cursor = await windowed_page(runtime.db[MEDIA], query, field="stored_at", query=page)
    return Page[MediaRead](items=[MediaRead.from_doc(d) for d in docs], next_cursor=next_cursor)
