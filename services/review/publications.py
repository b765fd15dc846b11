"""The publish queue as the city office sees it: each delivery's state in the words the
office has always read (pending, in progress, retrying, success, failed, cancelled) over
the shared queue's stored ones, a page of them, and resending or cancelling one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument

from services.review.access import require_city_office
from services.review.models import PublicationState, PublicationView
from services.review.refused import conflict, not_found
from services.review.runtime import Review
from services.review.service import PUBLICATIONS
from shared.auth import Principal
from shared.clock import utcnow
from shared.paging import PageQuery
from shared.windows import FIRST_WINDOW, newest_first, windowed_page

LISTED_BY = "created_at"
NEWEST_FIRST = newest_first(LISTED_BY)
# a story's deliveries are a handful: one query, not a window per period
ONE_WINDOW = timedelta(days=365 * 50)
# the states the office names by a stored state alone (the rest are stored as pending)
STORED_STATE = {
    PublicationState.SUCCESS: "delivered",
    PublicationState.FAILED: "failed",
    PublicationState.CANCELLED: "cancelled",
}


def not_leased(now: datetime) -> dict[str, Any]:
    return {"$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}]}


def waiting(now: datetime) -> dict[str, Any]:
    """Deliveries not made yet and not being made right now."""
    return {"state": "pending", **not_leased(now)}


def state_filter(state: PublicationState, now: datetime) -> dict[str, Any]:
    """The stored deliveries the office calls ``state``."""
    if state == PublicationState.SUCCESS:
        return {"state": "delivered"}
    if state in (PublicationState.FAILED, PublicationState.CANCELLED):
        return {"state": str(state)}
    if state == PublicationState.IN_PROGRESS:
        return {"state": "pending", "lease_until": {"$gt": now}}
    tried = {"$gt": 0} if state == PublicationState.RETRYING else 0
    return {**waiting(now), "attempts": tried}


def shown_state(row: dict[str, Any], now: datetime) -> PublicationState:
    if row["state"] == "delivered":
        return PublicationState.SUCCESS
    if row["state"] != "pending":
        return PublicationState(row["state"])
    lease = row.get("lease_until")
    if lease is not None and lease > now:
        return PublicationState.IN_PROGRESS
    return PublicationState.RETRYING if row.get("attempts", 0) else PublicationState.PENDING


def publication_view(row: dict[str, Any], now: datetime) -> PublicationView:
    """A delivery as the office reads it: the receiver's status, never its answer."""
    state = shown_state(row, now)
    return PublicationView(
        publication_id=row["_id"], story_id=row["story_id"], version=row["version"],
        channel=row["channel"], action=row["action"], state=state, attempts=row["attempts"],
        publish_at=row["publish_at"],
        next_attempt_at=row.get("next_at") if row["state"] == "pending" else None,
        last_status=row.get("last_status"), last_error=row.get("last_error"),
        delivered_at=row.get("delivered_at"),
    )  # fmt: skip


async def list_publications(
    *,
    runtime: Review,
    principal: Principal,
    state: PublicationState | None,
    story_id: str | None,
    page: PageQuery,
) -> tuple[list[PublicationView], str | None]:
    """Queued and finished deliveries, newest first, filtered by state or story. The
    queue grows with every story ever published, so the office's list is read in time
    windows (``shared.windows``) by equalities only; the states told apart by the lease
    and the attempts (pending, in progress, retrying) are all stored ``pending``, a set
    bounded by what waits now, and are told apart as they are read."""
    require_city_office(principal, runtime.org)
    now = utcnow()
    equal: dict[str, Any] = {}
    if story_id is not None:
        equal["story_id"] = story_id
    elif state is not None:
        equal["state"] = STORED_STATE.get(state, "pending")
    told_by_stored = story_id is None and state in STORED_STATE
    keep = None if state is None or told_by_stored else lambda row: shown_state(row, now) == state
    rows, cursor = await windowed_page(
        runtime.db[PUBLICATIONS], equal, field=LISTED_BY, query=page, keep=keep,
        first_window=ONE_WINDOW if story_id is not None else FIRST_WINDOW,
    )  # fmt: skip
    return [publication_view(row, now) for row in rows], cursor


async def resend_publication(
    *, runtime: Review, principal: Principal, publication_id: str
) -> PublicationView:
    """Queue a failed or cancelled delivery again, with a fresh count of attempts."""
    require_city_office(principal, runtime.org)
    now = utcnow()
    again = {
        "state": "pending", "attempts": 0, "next_at": now, "lease_until": None,
        "last_error": None, "last_status": None, "failed_at": None,
    }  # fmt: skip
    allowed = {"state": {"$in": ["failed", "cancelled"]}}
    return await _move(
        runtime, publication_id, allowed=allowed, change=again, wanted="failed, cancelled"
    )


async def cancel_publication(
    *, runtime: Review, principal: Principal, publication_id: str
) -> PublicationView:
    """Stop a delivery that has not been made yet (and is not being made right now)."""
    require_city_office(principal, runtime.org)
    return await _move(
        runtime, publication_id, allowed=waiting(utcnow()), change={"state": "cancelled"},
        wanted="pending, retrying",
    )  # fmt: skip


async def _move(
    runtime: Review,
    publication_id: str,
    *,
    allowed: dict[str, Any],
    change: dict[str, Any],
    wanted: str,
) -> PublicationView:
    """Apply ``change`` to the publication if it is in an ``allowed`` state; otherwise a
    409 that says the state it is in and the ones (``wanted``) this needs."""
    row = await runtime.db[PUBLICATIONS].find_one_and_update(
        {"_id": publication_id, **allowed},
        {"$set": change},
        return_document=ReturnDocument.AFTER,
    )
    now = utcnow()
    if row is None:
        current = await runtime.db[PUBLICATIONS].find_one({"_id": publication_id})
        if current is None:
            raise not_found("未找到该发布任务", f"no publication {publication_id!r}")
        raise conflict(
            "该发布任务当前状态不允许此操作",
            f"publication is {shown_state(current, now)}; this needs one of: {wanted}",
        )
    return publication_view(row, now)
