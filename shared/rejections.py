"""What a county system reads of its own rejected records, and nothing of anyone else's.

The rows are the consumer's dead letters (:mod:`shared.deadletters`), attributed to the
county whose signature the record carried; a record nobody could be held to (unsigned,
or signed by an unknown key) belongs to no county and is seen by the city only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from shared import topics as tp
from shared.auth import CurrentPrincipal, Principal
from shared.deadletters import DEAD_LETTERS, REASON_ZH
from shared.orgtree import OrgTree
from shared.paging import Page, PageQuery, page_query
from shared.refusals import Refusal
from shared.runtime import runtime_of
from shared.windows import windowed_page


class Rejection(BaseModel):
    """One record a consumer refused: where it was, why, and when."""

    topic: str
    partition: int
    offset: int
    external_ref: str | None = None
    event_id: str | None = None
    kind: str
    reason: str
    message: str
    at: datetime


def rejection(row: dict[str, Any]) -> Rejection:
    return Rejection(
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        external_ref=row.get("external_ref"),
        event_id=row.get("event_id"),
        kind=row["kind"],
        reason=row["reason"],
        message=REASON_ZH.get(row["kind"], "消息被拒收"),
        at=row["at"],
    )


def require_county_scope(principal: Principal, org: OrgTree, county: str) -> None:
    """A county's rejections are read by that county's bureau and systems, or the city."""
    unit = org.get(county)
    if unit is None or unit.type != "county":
        raise Refusal(404, "unknown_county", "没有这个县区", f"unknown county {county!r}")
    if not org.contains(principal.unit, county):
        raise Refusal(
            403, "outside_scope", "只能查看本县区的拒收记录",
            f"county {county!r} is outside your scope ({principal.unit!r})",
        )  # fmt: skip


async def latest_rejection(
    db: Any, *, county: str, topic: str, external_ref: str
) -> Rejection | None:
    row = await db[DEAD_LETTERS].find_one(
        {"county": county, "topic": topic, "external_ref": external_ref}, sort=[("at", -1)]
    )
    return rejection(row) if row else None


def rejections_router(topic: tp.Topic) -> APIRouter:
    """``GET /intake/{county}/rejections``: a county's refused records on ``topic``,
    newest first, a page at a time (``limit``, ``cursor``)."""
    router = APIRouter(tags=["intake"])

    @router.get("/intake/{county}/rejections", response_model=Page[Rejection])
    async def county_rejections(
        request: Request,
        principal: CurrentPrincipal,
        county: str,
        page: Annotated[PageQuery, Depends(page_query)],
    ) -> Page[Rejection]:
        """Records of this county that the consumer refused, with the reason."""
        runtime = runtime_of(request)
        require_county_scope(principal, runtime.org, county)
        rows, next_cursor = await windowed_page(
            runtime.db[DEAD_LETTERS], {"county": county, "topic": topic.name}, field="at",
            query=page,
        )  # fmt: skip
        return Page[Rejection](items=[rejection(row) for row in rows], next_cursor=next_cursor)

    return router
