"""HTTP routes of the review service: the reviewer queue and decisions, the audit trail,
the city office's publication tools, the public feed and the configuration."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from services.review import feeds, publishing, service
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
from services.review.publishing import PublishQueue
from services.review.settings import ReviewSettings
from shared.auth import CityAdmin, CurrentPrincipal, Role, require_role
from shared.refusals import refusal_for_status
from shared.runtime import ServiceRuntime

router = APIRouter()


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _publish_queue(request: Request) -> PublishQueue:
    return request.app.state.publish_queue  # type: ignore[no-any-return]


Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
Queue = Annotated[PublishQueue, Depends(_publish_queue)]


# ---- reviewers ----------------------------------------------------------------------
@router.get("/queue", tags=["review"])
async def my_queue(
    principal: CurrentPrincipal, runtime: Runtime, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[CaseView]:
    """Cases waiting at my levels inside my scope, oldest first."""
    return await service.review_queue(runtime=runtime, principal=principal, limit=limit)


@router.get("/cases/overdue", tags=["review"])
async def overdue_cases(principal: CurrentPrincipal, runtime: Runtime) -> list[CaseView]:
    """Open cases past their level's deadline inside my scope."""
    return await service.overdue_cases(runtime=runtime, principal=principal)


@router.get("/cases/{case_id}", tags=["review"])
async def get_case(case_id: str, principal: CurrentPrincipal, runtime: Runtime) -> CaseView:
    return await service.get_case(runtime=runtime, principal=principal, case_id=case_id)


@router.post("/cases/{case_id}/decisions", tags=["review"])
async def decide(
    case_id: str, body: DecisionRequest, principal: CurrentPrincipal, runtime: Runtime, queue: Queue
) -> DecisionResult:
    """Approve, return (comment required) or reject (reason required) the version judged."""
    result = await service.decide(
        runtime=runtime, principal=principal, case_id=case_id, request=body,
        on_final=publishing.enqueue_on_final_approval(runtime),
    )  # fmt: skip
    if result.final:
        queue.wake()
    return result


@router.post("/cases/{case_id}/override", tags=["review"])
async def override_hold(
    case_id: str, body: OverrideRequest, principal: CurrentPrincipal, runtime: Runtime
) -> CaseView:
    """Lift a screening hold with a written reason (city reviewers)."""
    return await service.override_hold(
        runtime=runtime, principal=principal, case_id=case_id, request=body
    )


@router.get("/stories/{story_id}/audit", tags=["review"])
async def audit_trail(
    story_id: str, principal: CurrentPrincipal, runtime: Runtime
) -> list[AuditEntry]:
    """Every step of a story, oldest first."""
    return await service.audit_trail(runtime=runtime, principal=principal, story_id=story_id)


# ---- the city office --------------------------------------------------------------
@router.post("/stories/{story_id}/schedule", tags=["publication"])
async def schedule(
    story_id: str,
    body: ScheduleRequest,
    principal: CurrentPrincipal,
    runtime: Runtime,
    queue: Queue,
) -> dict[str, Any]:
    """Publish at a set time (embargo), or at once when the time has passed."""
    result = await publishing.schedule_story(
        runtime=runtime, principal=principal, story_id=story_id, publish_at=body.publish_at
    )
    queue.wake()
    return result


@router.post("/stories/{story_id}/adoptions", tags=["publication"], status_code=201)
async def record_adoption(
    story_id: str, body: AdoptionRequest, principal: CurrentPrincipal, runtime: Runtime
) -> AdoptionView:
    """Record that an outside outlet ran the story; the same outlet again is a 409."""
    return await publishing.record_adoption(
        runtime=runtime, principal=principal, story_id=story_id, request=body
    )


@router.get("/stories/{story_id}/adoptions", tags=["publication"])
async def adoptions(
    story_id: str, principal: CurrentPrincipal, runtime: Runtime
) -> list[AdoptionView]:
    await service.audit_trail(runtime=runtime, principal=principal, story_id=story_id)
    return await publishing.adoptions_of(runtime=runtime, story_id=story_id)


@router.get("/adoptions", tags=["publication"])
async def recent_adoptions(
    principal: CurrentPrincipal,
    runtime: Runtime,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AdoptionView]:
    """The latest adoptions recorded across stories, newest first (the city office)."""
    service.require_city_office(principal, runtime.org)
    rows = (
        await runtime.db[publishing.ADOPTIONS].find().sort("recorded_at", -1).limit(limit).to_list()
    )
    return [publishing.adoption_view(row) for row in rows]


@router.post("/stories/{story_id}/withdraw", tags=["publication"])
async def withdraw(
    story_id: str,
    body: WithdrawRequest,
    principal: CurrentPrincipal,
    runtime: Runtime,
    queue: Queue,
) -> dict[str, Any]:
    """Withdraw (撤稿) a published story on every channel; the feed keeps it as withdrawn."""
    result = await publishing.withdraw_story(
        runtime=runtime, principal=principal, story_id=story_id, reason=body.reason
    )
    queue.wake()
    return result


@router.get("/publications", tags=["publication"])
async def publications(
    principal: CurrentPrincipal,
    runtime: Runtime,
    state: PublicationState | None = None,
    story_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PublicationView]:
    """The publish queue per channel, e.g. ``?state=failed``."""
    return await publishing.list_publications(
        runtime=runtime, principal=principal, state=state, story_id=story_id, limit=limit
    )


@router.post("/publications/{publication_id}/resend", tags=["publication"])
async def resend(
    publication_id: str, principal: CurrentPrincipal, runtime: Runtime, queue: Queue
) -> PublicationView:
    result = await publishing.resend_publication(
        runtime=runtime, principal=principal, publication_id=publication_id
    )
    queue.wake()
    return result


@router.post("/publications/{publication_id}/cancel", tags=["publication"])
async def cancel(
    publication_id: str, principal: CurrentPrincipal, runtime: Runtime
) -> PublicationView:
    return await publishing.cancel_publication(
        runtime=runtime, principal=principal, publication_id=publication_id
    )


# ---- the public feed (no authentication) -------------------------------------------
FeedState = Literal["published", "withdrawn"]


async def _feed_items(
    runtime: ServiceRuntime, state: str, limit: int | None
) -> tuple[list[Any], str]:
    config = await service.load_config(db=runtime.db)
    settings: ReviewSettings = runtime.settings  # type: ignore[assignment]
    size = limit or config.publication.feed.size
    entries = await publishing.feed_entries(db=runtime.db, state=state, limit=size)
    items = [feeds.feed_item(e, settings=settings, org=runtime.org) for e in entries]
    return items, config.publication.feed.title


@router.get("/feed", tags=["feed"])
async def feed_json(
    runtime: Runtime,
    state: FeedState = "published",
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> dict[str, Any]:
    """Published stories, newest first; ``?state=withdrawn`` shows the withdrawn archive."""
    items, title = await _feed_items(runtime, state, limit)
    return {"title": title, "items": items}


@router.get("/feed.rss", tags=["feed"])
async def feed_rss(runtime: Runtime) -> Response:
    items, title = await _feed_items(runtime, "published", None)
    settings: ReviewSettings = runtime.settings  # type: ignore[assignment]
    body = feeds.render_rss(items, title=title, settings=settings)
    return Response(body, media_type="application/rss+xml; charset=utf-8")


@router.get("/feed.atom", tags=["feed"])
async def feed_atom(runtime: Runtime) -> Response:
    items, title = await _feed_items(runtime, "published", None)
    settings: ReviewSettings = runtime.settings  # type: ignore[assignment]
    body = feeds.render_atom(items, title=title, settings=settings)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/feed/{story_id}", tags=["feed"])
async def feed_story(story_id: str, runtime: Runtime) -> dict[str, Any]:
    entry = await publishing.feed_entry(db=runtime.db, story_id=story_id)
    settings: ReviewSettings = runtime.settings  # type: ignore[assignment]
    return feeds.feed_item(entry, settings=settings, org=runtime.org)


# ---- configuration ------------------------------------------------------------------
@router.get("/config", tags=["config"])
async def get_config(principal: CurrentPrincipal, runtime: Runtime) -> dict[str, Any]:
    """Routes, deadlines, screening hold and channels (webhook secrets hidden)."""
    require_role(principal, Role.REVIEWER_CITY)
    return (await service.load_config(db=runtime.db)).masked()


@router.put("/config", tags=["config"])
async def replace_config(
    body: ReviewConfig, principal: CityAdmin, runtime: Runtime
) -> dict[str, Any]:
    """Replace the configuration (a city administrator)."""
    return (await service.replace_config(db=runtime.db, config=body)).masked()


def refusal_response(_: Request, exc: Exception) -> JSONResponse:
    """A refusal from the service layer as a 4xx answer with its reason."""
    assert isinstance(exc, service.Refused)
    refusal = refusal_for_status(exc.status, exc.detail)
    return JSONResponse(refusal.body(), status_code=exc.status)
