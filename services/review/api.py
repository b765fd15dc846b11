"""HTTP routes of the review service: the reviewer queue and decisions, the audit trail,
the city office's publication tools, the public feed and the configuration. Every list
is a page (``limit`` up to 200, ``cursor`` from the page before)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request, Response

from services.review import (
    audit,
    cases,
    decisions,
    delivery,
    feeds,
    office,
    publications,
    service,
)
from services.review.access import require_city_office
from services.review.models import (
    AdoptionRequest,
    AdoptionView,
    AuditEntry,
    CaseView,
    DecisionRequest,
    DecisionResult,
    OverrideRequest,
    PublicationState,
    PublicationView,
    ReviewConfig,
    ScheduleRequest,
    WithdrawRequest,
)
from services.review.runtime import Review
from shared.auth import CityAdmin, CurrentPrincipal, Role, require_role
from shared.paging import Page, PageQuery, page_query

router = APIRouter()


def _review(request: Request) -> Review:
    review: Review = request.app.state.review
    return review


Runtime = Annotated[Review, Depends(_review)]
R = TypeVar("R")
Paging = Annotated[PageQuery, Depends(page_query)]


async def _then_publish(runtime: Review, change: Awaitable[R]) -> R:
    """Make a change that puts deliveries due, then wake the publisher instead of
    leaving them to its next poll."""
    result = await change
    runtime.publish_due.wake()
    return result


# ---- reviewers ----------------------------------------------------------------------
@router.get("/queue", tags=["review"])
async def my_queue(principal: CurrentPrincipal, runtime: Runtime, page: Paging) -> Page[CaseView]:
    """Cases waiting at my levels inside my scope, oldest first."""
    return Page.of(await cases.review_queue(runtime=runtime, principal=principal, page=page))


@router.get("/cases/overdue", tags=["review"])
async def overdue_cases(
    principal: CurrentPrincipal, runtime: Runtime, page: Paging
) -> Page[CaseView]:
    """Open cases past their level's deadline inside my scope, oldest first."""
    return Page.of(await cases.overdue_cases(runtime=runtime, principal=principal, page=page))


@router.get("/cases/{case_id}", tags=["review"])
async def get_case(case_id: str, principal: CurrentPrincipal, runtime: Runtime) -> CaseView:
    return await cases.get_case(runtime=runtime, principal=principal, case_id=case_id)


@router.post("/cases/{case_id}/decisions", tags=["review"])
async def decide(
    case_id: str, body: DecisionRequest, principal: CurrentPrincipal, runtime: Runtime
) -> DecisionResult:
    """Approve, return (comment required) or reject (reason required) the version judged."""
    result = await decisions.decide(
        runtime=runtime, principal=principal, case_id=case_id, request=body,
        on_final=delivery.enqueue_on_final_approval(runtime),
    )  # fmt: skip
    if result.final:
        runtime.publish_due.wake()
    return result


@router.post("/cases/{case_id}/override", tags=["review"])
async def override_hold(
    case_id: str, body: OverrideRequest, principal: CurrentPrincipal, runtime: Runtime
) -> CaseView:
    """Lift a screening hold with a written reason (city reviewers)."""
    return await decisions.override_hold(
        runtime=runtime, principal=principal, case_id=case_id, request=body
    )


@router.get("/stories/{story_id}/audit", tags=["review"])
async def audit_trail(
    story_id: str, principal: CurrentPrincipal, runtime: Runtime, page: Paging
) -> Page[AuditEntry]:
    """Every step of a story, oldest first."""
    return Page.of(
        await audit.audit_trail(runtime=runtime, principal=principal, story_id=story_id, page=page)
    )


# ---- the city office --------------------------------------------------------------
@router.post("/stories/{story_id}/schedule", tags=["publication"])
async def schedule(
    story_id: str, body: ScheduleRequest, principal: CurrentPrincipal, runtime: Runtime
) -> dict[str, Any]:
    """Publish at a set time (embargo), or at once when the time has passed."""
    return await _then_publish(
        runtime,
        office.schedule_story(
            runtime=runtime, principal=principal, story_id=story_id, publish_at=body.publish_at
        ),
    )


@router.post("/stories/{story_id}/adoptions", tags=["publication"], status_code=201)
async def record_adoption(
    story_id: str, body: AdoptionRequest, principal: CurrentPrincipal, runtime: Runtime
) -> AdoptionView:
    """Record that an outside outlet ran the story; the same outlet again is a 409."""
    return await office.record_adoption(
        runtime=runtime, principal=principal, story_id=story_id, request=body
    )


@router.get("/stories/{story_id}/adoptions", tags=["publication"])
async def adoptions(
    story_id: str, principal: CurrentPrincipal, runtime: Runtime, page: Paging
) -> Page[AdoptionView]:
    """The outlets that ran the story, in the order recorded."""
    await audit.require_story_in_scope(runtime=runtime, principal=principal, story_id=story_id)
    return Page.of(await office.adoptions_of(runtime=runtime, story_id=story_id, page=page))


@router.get("/adoptions", tags=["publication"])
async def recent_adoptions(
    principal: CurrentPrincipal, runtime: Runtime, page: Paging
) -> Page[AdoptionView]:
    """The latest adoptions recorded across stories, newest first (the city office)."""
    require_city_office(principal, runtime.org)
    return Page.of(await office.adoptions_of(runtime=runtime, story_id=None, page=page))


@router.post("/stories/{story_id}/withdraw", tags=["publication"])
async def withdraw(
    story_id: str, body: WithdrawRequest, principal: CurrentPrincipal, runtime: Runtime
) -> dict[str, Any]:
    """Withdraw (撤稿) a published story on every channel; the feed keeps it as withdrawn."""
    return await _then_publish(
        runtime,
        office.withdraw_story(
            runtime=runtime, principal=principal, story_id=story_id, reason=body.reason
        ),
    )


@router.get("/publications", tags=["publication"])
async def list_publications(
    principal: CurrentPrincipal,
    runtime: Runtime,
    page: Paging,
    state: PublicationState | None = None,
    story_id: str | None = None,
) -> Page[PublicationView]:
    """The publish queue per channel, newest first, e.g. ``?state=failed``: each
    delivery's state and the receiver's status, never its answer."""
    return Page.of(
        await publications.list_publications(
            runtime=runtime, principal=principal, state=state, story_id=story_id, page=page
        )
    )


@router.post("/publications/{publication_id}/resend", tags=["publication"])
async def resend(
    publication_id: str, principal: CurrentPrincipal, runtime: Runtime
) -> PublicationView:
    return await _then_publish(
        runtime,
        publications.resend_publication(
            runtime=runtime, principal=principal, publication_id=publication_id
        ),
    )


@router.post("/publications/{publication_id}/cancel", tags=["publication"])
async def cancel(
    publication_id: str, principal: CurrentPrincipal, runtime: Runtime
) -> PublicationView:
    return await publications.cancel_publication(
        runtime=runtime, principal=principal, publication_id=publication_id
    )


# ---- the public feed (no authentication) -------------------------------------------
FeedState = Literal["published", "withdrawn"]


@router.get("/feed", tags=["feed"])
async def feed_json(
    runtime: Runtime, page: Paging, state: FeedState = "published"
) -> dict[str, Any]:
    """Published stories, newest first; ``?state=withdrawn`` shows the withdrawn archive."""
    entries, cursor = await feeds.feed_entries(db=runtime.db, state=state, page=page)
    items = [feeds.feed_item(e, settings=runtime.settings, org=runtime.org) for e in entries]
    return {"title": runtime.config.publication.feed.title, "items": items, "next_cursor": cursor}


async def _feed_head(runtime: Review) -> list[dict[str, Any]]:
    size = runtime.config.publication.feed.size
    entries = await feeds.latest_entries(db=runtime.db, size=size)
    return [feeds.feed_item(e, settings=runtime.settings, org=runtime.org) for e in entries]


@router.get("/feed.rss", tags=["feed"])
async def feed_rss(runtime: Runtime) -> Response:
    title = runtime.config.publication.feed.title
    body = feeds.render_rss(await _feed_head(runtime), title=title, settings=runtime.settings)
    return Response(body, media_type="application/rss+xml; charset=utf-8")


@router.get("/feed.atom", tags=["feed"])
async def feed_atom(runtime: Runtime) -> Response:
    title = runtime.config.publication.feed.title
    body = feeds.render_atom(await _feed_head(runtime), title=title, settings=runtime.settings)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/feed/{story_id}", tags=["feed"])
async def feed_story(story_id: str, runtime: Runtime) -> dict[str, Any]:
    entry = await feeds.feed_entry(db=runtime.db, story_id=story_id)
    return feeds.feed_item(entry, settings=runtime.settings, org=runtime.org)


# ---- configuration ------------------------------------------------------------------
@router.get("/config", tags=["config"])
async def get_config(principal: CurrentPrincipal, runtime: Runtime) -> dict[str, Any]:
    """Routes, deadlines, screening hold and channels (webhook secrets hidden)."""
    require_role(principal, Role.REVIEWER_CITY)
    return (await runtime.store.get(runtime.db)).masked()


@router.put("/config", tags=["config"])
async def replace_config(
    body: ReviewConfig, principal: CityAdmin, runtime: Runtime
) -> dict[str, Any]:
    """Replace the configuration (a city administrator); a webhook inside the network
    is refused (422 ``unsafe_target``) unless the deployment allows its host."""
    config = await service.replace_config(runtime=runtime, config=body, by=principal.sub)
    return config.masked()
