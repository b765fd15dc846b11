"""HTTP routes for correspondents (drafts, submission, their unit's stories) and for
admins (categories and rules)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status

from services.submission import copies
from services.submission.models import (
    CategoryList,
    DraftCreate,
    DraftUpdate,
    IntakeStatus,
    Rules,
    StandardTextCreate,
    StandardTextRead,
    StoryContent,
    StoryPage,
    StoryRead,
    StoryStatus,
    StorySummary,
    StoryTotals,
    VersionRead,
)
from services.submission.service import counts, listing, rules, stories, submitting
from services.submission.service.listing import StoryFilter
from shared import topics as tp
from shared.auth import CityAdmin, CurrentPrincipal, Role, require_role, require_scope
from shared.clock import utcnow
from shared.events import ReviewLevel
from shared.observability import correlation_id
from shared.paging import PageQuery, page_query
from shared.refusals import Refusal
from shared.rejections import latest_rejection, require_county_scope
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter()


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    draft = doc["draft"]
    return {
        "id": doc["_id"],
        **{key: doc.get(key) for key in StorySummary.model_fields if key in doc and key != "id"},
        "title": draft["title"],
        "category": draft["category"],
        "campaign": draft.get("campaign"),
        "major": draft.get("major", False),
        "event_date": draft["event_date"],
    }


def _story(doc: dict[str, Any], versions: list[dict[str, Any]]) -> StoryRead:
    return StoryRead(
        **_summary(doc),
        draft=StoryContent(**doc["draft"]),
        versions=[VersionRead(**v) for v in versions],
        history=doc.get("history", []),
    )


async def _full_story(runtime: ServiceRuntime, doc: dict[str, Any]) -> StoryRead:
    return _story(doc, await stories.get_versions(runtime=runtime, story_id=doc["_id"]))


@router.post("/stories", status_code=status.HTTP_201_CREATED, response_model=StoryRead,
             tags=["stories"])  # fmt: skip
async def create_draft(
    request: Request, principal: CurrentPrincipal, body: DraftCreate
) -> StoryRead:
    """Save a draft for the caller's unit (or a unit below it)."""
    require_role(principal, Role.CORRESPONDENT)
    runtime = runtime_of(request)
    require_scope(principal, runtime.org, body.unit or principal.unit)
    doc = await stories.create_draft(runtime=runtime, principal=principal, request=body)
    return _story(doc, [])


@router.get("/stories", response_model=StoryPage, tags=["stories"])
async def list_stories(
    request: Request,
    principal: CurrentPrincipal,
    page: Annotated[PageQuery, Depends(page_query)],
    unit: Annotated[str | None, Query(description="this unit and those below it")] = None,
    status_: Annotated[StoryStatus | None, Query(alias="status")] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    campaign: Annotated[str | None, Query(max_length=64)] = None,
    submitted_from: Annotated[date | None, Query(description="Asia/Shanghai day")] = None,
    submitted_to: Annotated[date | None, Query(description="Asia/Shanghai day, inclusive")] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="a phrase in the title or body")
    ] = None,
    level: Annotated[ReviewLevel | None, Query(description="waiting at this level")] = None,
    flag: Annotated[
        Literal["late", "possible_copy"] | None, Query(description="flagged stories only")
    ] = None,
) -> StoryPage:
    """The stories of the caller's unit and the units below it, newest change first (with
    a submission period: newest submission first); ``q`` keeps those whose title or body
    holds every character pair of the phrase. A page at a time: ``limit`` (1–200) and the
    previous page's ``next_cursor``."""
    runtime = runtime_of(request)
    if unit is not None:
        require_scope(principal, runtime.org, unit)
    story_filter = StoryFilter(
        unit=unit or principal.unit, status=status_, category=category, campaign=campaign,
        level=level.value if level else None, flag=flag, submitted_from=submitted_from,
        submitted_to=submitted_to, text=q,
    )  # fmt: skip
    docs, next_cursor, total = await listing.list_stories(
        runtime=runtime, principal=principal, story_filter=story_filter, page=page
    )
    items = [StorySummary(**_summary(doc)) for doc in docs]
    return StoryPage(items=items, next_cursor=next_cursor, total=total, limit=page.limit)


@router.get("/stories/totals", response_model=StoryTotals, tags=["stories"])
async def story_totals(
    request: Request,
    principal: CurrentPrincipal,
    unit: Annotated[str | None, Query(description="this unit and those below it")] = None,
) -> StoryTotals:
    """How many stories the caller's unit (or ``unit`` inside it) and the units below it
    hold, in all and by status, from the maintained counters: what a home page's counts
    need without asking for a page of each status."""
    runtime = runtime_of(request)
    if unit is not None:
        require_scope(principal, runtime.org, unit)
    chosen = unit or principal.unit
    found = await counts.totals(runtime.db, unit=chosen, statuses=[s.value for s in StoryStatus])
    if found is None:
        return StoryTotals(unit=chosen, total=None)
    total = found.pop(counts.ALL)
    return StoryTotals(
        unit=chosen, total=total, by_status={StoryStatus(s): n for s, n in found.items()}
    )


@router.get("/stories/{story_id}", response_model=StoryRead, tags=["stories"])
async def get_story(request: Request, principal: CurrentPrincipal, story_id: str) -> StoryRead:
    """One story with its submitted versions and its review and publication history."""
    runtime = runtime_of(request)
    doc = await stories.get_story(runtime=runtime, principal=principal, story_id=story_id)
    return await _full_story(runtime, doc)


@router.get("/stories/{story_id}/versions/{version}", response_model=VersionRead,
            tags=["stories"])  # fmt: skip
async def get_version(
    request: Request, principal: CurrentPrincipal, story_id: str, version: int
) -> VersionRead:
    """One submitted version, as it was sent."""
    found = await stories.get_version(
        runtime=runtime_of(request), principal=principal, story_id=story_id, version=version
    )
    return VersionRead(**found)


@router.patch("/stories/{story_id}", response_model=StoryRead, tags=["stories"])
async def update_draft(
    request: Request, principal: CurrentPrincipal, story_id: str, body: DraftUpdate
) -> StoryRead:
    """Change a draft, or revise a story returned for revision."""
    require_role(principal, Role.CORRESPONDENT)
    runtime = runtime_of(request)
    doc = await stories.update_draft(
        runtime=runtime, principal=principal, story_id=story_id, changes=body
    )
    return await _full_story(runtime, doc)


@router.post("/stories/{story_id}/submit", response_model=StoryRead, tags=["stories"])
async def submit_story(request: Request, principal: CurrentPrincipal, story_id: str) -> StoryRead:
    """Submit the working copy as the next version (the first, or a revision)."""
    require_role(principal, Role.CORRESPONDENT)
    runtime = runtime_of(request)
    doc = await submitting.submit_story(
        runtime=runtime, principal=principal, story_id=story_id, correlation_id=correlation_id.get()
    )
    return await _full_story(runtime, doc)


@router.get("/config/categories", response_model=CategoryList, tags=["config"])
async def get_categories(request: Request, principal: CurrentPrincipal) -> CategoryList:
    """The categories a story may be filed under."""
    return await rules.get_categories(db=runtime_of(request).db)


@router.put("/config/categories", response_model=CategoryList, tags=["config"])
async def replace_categories(
    request: Request, principal: CityAdmin, body: CategoryList
) -> CategoryList:
    """Replace the category list (a city administrator)."""
    return await rules.replace_categories(
        db=runtime_of(request).db, categories=body, by=principal.sub
    )


@router.get("/config/rules", response_model=Rules, tags=["config"])
async def get_rules(request: Request, principal: CurrentPrincipal) -> Rules:
    """Length bounds, the late threshold and the copy-detection settings."""
    return await rules.get_rules(db=runtime_of(request).db)


@router.put("/config/rules", response_model=Rules, tags=["config"])
async def replace_rules(request: Request, principal: CityAdmin, body: Rules) -> Rules:
    """Replace the submission rules (a city administrator)."""
    return await rules.replace_rules(db=runtime_of(request).db, rules=body, by=principal.sub)


@router.get("/intake/{county}/stories/{external_id}", response_model=IntakeStatus,
            tags=["intake"])  # fmt: skip
async def county_story_status(
    request: Request, principal: CurrentPrincipal, county: str, external_id: str
) -> IntakeStatus:
    """What became of a story a county system sent: accepted (with the story and its
    latest version) or refused (with the reason). Only that county and the city may ask."""
    runtime = runtime_of(request)
    require_county_scope(principal, runtime.org, county)
    story = await runtime.db[stories.STORIES].find_one(
        {"intake_key": f"{county}:{external_id}"},
        projection={"status": 1, "version": 1},
    )
    if story is not None:
        return IntakeStatus(
            status="accepted", message="已受理", story_id=story["_id"],
            story_status=story.get("status"), version=story.get("version"),
        )  # fmt: skip
    refused = await latest_rejection(
        runtime.db, county=county, topic=tp.INTAKE_STORIES.name, external_ref=external_id
    )
    if refused is not None:
        return IntakeStatus(status="refused", message=refused.message, rejection=refused)
    raise Refusal(
        404, "intake_unknown", "尚未收到这篇稿件（或仍在处理中）",
        f"no story {external_id!r} from county {county!r} has been received yet",
    )  # fmt: skip


# ---- standard texts (转载规定文本) ------------------------------------------------------
def _require_city_office(principal: CurrentPrincipal, runtime: ServiceRuntime) -> None:
    """Standard texts are the city bureau's to register: its final reviewers or an admin."""
    require_role(principal, Role.REVIEWER_CITY)
    if principal.unit != runtime.org.city.code and not principal.has(Role.ADMIN):
        raise Refusal(403, "city_office_only", "规定文本只能由市教育局登记")


def _standard_text(doc: dict[str, Any]) -> StandardTextRead:
    return StandardTextRead(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


@router.post("/standard-texts", status_code=status.HTTP_201_CREATED,
             response_model=StandardTextRead, tags=["copies"])  # fmt: skip
async def register_standard_text(
    request: Request, principal: CurrentPrincipal, body: StandardTextCreate
) -> StandardTextRead:
    """Register a text every school is asked to republish (a bureau notice, a campaign's
    standard text): a story made mostly of it is marked 转载规定文本, not a copy."""
    runtime = runtime_of(request)
    _require_city_office(principal, runtime)
    doc = await copies.register_standard_text(
        runtime.db, title=body.title.strip(), body=body.body.strip(), campaign=body.campaign,
        registered_by=principal.sub, registered_at=utcnow(),
        normaliser=copies.normaliser_for(runtime.org),
    )  # fmt: skip
    return _standard_text(doc)


@router.get("/standard-texts", response_model=list[StandardTextRead], tags=["copies"])
async def list_standard_texts(
    request: Request, principal: CurrentPrincipal
) -> list[StandardTextRead]:
    """The standard texts in force, newest first."""
    return [_standard_text(doc) for doc in await copies.list_standard_texts(runtime_of(request).db)]


@router.delete("/standard-texts/{text_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["copies"])  # fmt: skip
async def retire_standard_text(request: Request, principal: CurrentPrincipal, text_id: str) -> None:
    """Stop treating a standard text as one to republish (later submissions only)."""
    runtime = runtime_of(request)
    _require_city_office(principal, runtime)
    if not await copies.retire_standard_text(runtime.db, text_id=text_id):
        raise Refusal(404, "standard_text_not_found", "没有这篇规定文本，或已停用")
