"""Correspondents' pages: their units' stories searched and narrowed, a new story with
photos (uploads stream through to the media service), a story with its versions and what
each reviewer said, and its revision."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.console import service
from services.console.models import LABELS, is_city_office, today_in_shanghai
from services.console.pages import (
    Me,
    SignedIn,
    Ups,
    campaigns_or_none,
    forbidden,
    org_of,
    render,
    see_other,
)
from services.console.upstreams import UpstreamError, Upstreams
from services.console.wording import GENERIC_BY_STATUS
from shared.auth import Role

router = APIRouter(include_in_schema=False)


@router.get("/stories")
async def my_stories(
    request: Request,
    me: SignedIn,
    up: Ups,
    status: str = "",
    cursor: str = "",
    q: str = "",
    unit: str = "",
    category: str = "",
    campaign: str = "",
    submitted_from: str = "",
    submitted_to: str = "",
    level: str = "",
    flag: str = "",
) -> HTMLResponse:
    """My units' stories and where each stands, searched by a phrase of the title or
    body and narrowed by unit, category, campaign, status, review level, flags and
    submission dates."""
    org = org_of(request)
    filters = {
        "q": q.strip()[:100], "unit": unit if unit and org.get(unit) else "",
        "category": category, "campaign": campaign,
        "submitted_from": submitted_from, "submitted_to": submitted_to,
        "level": level if level in LABELS["level"] else "",
        "flag": flag if flag in ("late", "possible_copy") else "",
    }  # fmt: skip
    found, categories, campaigns = await asyncio.gather(
        service.unit_stories(
            upstreams=up, token=me.token, status=status or None, cursor=cursor or None,
            filters={k: v for k, v in filters.items() if v},
        ),
        service.categories(upstreams=up, token=me.token),
        campaigns_or_none(up, me.token),
    )  # fmt: skip
    units = [u for u in org.below(me.principal.unit) if u.code != me.principal.unit]
    query = urlencode({k: v for k, v in {**filters, "status": status}.items() if v})
    return render(
        request, me, "stories.html", page=found, status=status, first_page=not cursor,
        filters=filters, categories=categories, campaigns=campaigns, units=units[:400],
        query=query,
    )  # fmt: skip


async def _form_context(up: Upstreams, me: Me) -> dict[str, Any]:
    """Categories, live campaigns and the length rules a story form needs."""
    found, rules, campaigns = await asyncio.gather(
        service.categories(upstreams=up, token=me.token),
        service.rules(upstreams=up, token=me.token),
        campaigns_or_none(up, me.token),
    )
    return {"categories": found, "rules": rules, "campaigns": campaigns}


@router.get("/stories/new")
async def new_story(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    if not me.principal.has(Role.CORRESPONDENT):
        return forbidden(request, me, "写稿报送需要通讯员角色。")
    context = await _form_context(up, me)
    return render(request, me, "story_form.html", draft=None, error=None,
                  today=today_in_shanghai(), **context)  # fmt: skip


StoryForm = Annotated[str, Form()]


def _content(
    title: StoryForm,
    body: StoryForm,
    category: StoryForm,
    event_date: StoryForm,
    campaign: StoryForm = "",
    major: Annotated[str | None, Form()] = None,
    media_ids: StoryForm = "",
) -> dict[str, Any]:
    """The story's fields as the form sent them, tidied for the submission service."""
    return {
        "title": title.strip(),
        "body": body.strip(),
        "category": category,
        "event_date": event_date,
        "campaign": campaign.strip() or None,
        "major": major is not None,
        "media_ids": [m for m in (part.strip() for part in media_ids.split(",")) if m],
    }


# the new-story form and the revision form send the same fields
StoryContent = Annotated[dict[str, Any], Depends(_content)]


@router.post("/stories/new")
async def submit_new_story(
    request: Request,
    me: SignedIn,
    up: Ups,
    content: StoryContent,
    action: Annotated[str, Form()] = "submit",
    story_id: Annotated[str, Form()] = "",
) -> Response:
    """Save the story as a draft, or save and submit it as version 1. A refusal shows on
    the form in Chinese with everything typed kept."""
    saved_id = story_id or None
    try:
        saved = await service.save_draft(
            upstreams=up, token=me.token, content=content,
            story_id=saved_id,
        )  # fmt: skip
        saved_id = saved["id"]
        if action == "draft":
            return see_other(f"/stories/{saved_id}?notice=saved")
        await service.submit_draft(upstreams=up, token=me.token, story_id=saved_id)
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        context = await _form_context(up, me)
        draft = {**content, "id": saved_id}
        return render(request, me, "story_form.html", exc.status, draft=draft,
                      error=exc.text, today=today_in_shanghai(), **context)  # fmt: skip
    return see_other(f"/stories/{saved_id}?notice=submitted")


@router.get("/stories/{story_id}")
async def story_page(request: Request, me: SignedIn, up: Ups, story_id: str) -> HTMLResponse:
    """A story, its versions and what each reviewer said; a draft or a returned one can be
    changed and (re)submitted."""
    found = await service.story(upstreams=up, token=me.token, story_id=story_id)
    return await _story_view(request, me, up, found, error=None, draft=None)


async def _story_view(
    request: Request,
    me: Me,
    up: Upstreams,
    found: dict[str, Any],
    *,
    error: str | None,
    draft: dict[str, Any] | None,
    status_code: int = 200,
) -> HTMLResponse:
    context: dict[str, Any] = {"categories": [], "rules": None, "campaigns": []}
    editable = found["status"] in ("draft", "returned") and me.principal.has(Role.CORRESPONDENT)
    if editable:
        context = await _form_context(up, me)
    comments = [h for h in found["history"] if h["action"] == "reviewed" and h.get("comment")]
    history = sorted(found["history"], key=lambda h: h["at"])
    return render(
        request, me, "story.html", status_code, story=found, comments=comments,
        history=history, editable=editable, error=error, draft=draft or found["draft"],
        office=is_city_office(me.principal, org_of(request)), today=today_in_shanghai(), **context,
    )  # fmt: skip


@router.post("/stories/{story_id}/revise")
async def revise_story(
    request: Request,
    me: SignedIn,
    up: Ups,
    story_id: str,
    changes: StoryContent,
    action: Annotated[str, Form()] = "submit",
) -> Response:
    """Keep the changes as a draft, or submit them as the next version."""
    try:
        await service.save_draft(upstreams=up, token=me.token, content=changes, story_id=story_id)
        if action == "draft":
            return see_other(f"/stories/{story_id}?notice=saved")
        found = await service.submit_draft(upstreams=up, token=me.token, story_id=story_id)
    except UpstreamError as exc:
        if exc.status in (401, 404):
            raise
        found = await service.story(upstreams=up, token=me.token, story_id=story_id)
        return await _story_view(request, me, up, found, error=exc.text, draft=changes,
                                 status_code=exc.status)  # fmt: skip
    notice = "revised" if found["version"] > 1 else "submitted"
    return see_other(f"/stories/{story_id}?notice={notice}")


@router.post("/upload")
async def upload(request: Request, me: SignedIn, up: Ups) -> Response:
    """Stream a photo or video through to the media service (multipart: unit, file)."""
    content_type = request.headers.get("content-type", "")
    try:
        answer = await service.upload_media(
            upstreams=up, token=me.token, content_type=content_type,
            content_length=request.headers.get("content-length"), body=request.stream(),
        )  # fmt: skip
    except UpstreamError as exc:
        return JSONResponse({"message": exc.text}, exc.status)
    if answer.status_code >= 400:
        # the media service's refusal, said in Chinese for the upload's progress line
        refused = UpstreamError.of(answer, "media")
        # the type sniffer's own words are technical; the allowed types are what helps
        text = GENERIC_BY_STATUS[415] if answer.status_code == 415 else refused.text
        return JSONResponse({"message": text}, answer.status_code)
    return Response(
        answer.content, answer.status_code, media_type=answer.headers.get("content-type")
    )


@router.get("/media/{media_id}/thumbnail")
async def thumbnail(me: SignedIn, up: Ups, media_id: str, size: str = "small") -> RedirectResponse:
    """Send the browser to the media service's short-lived thumbnail link."""
    link = await service.thumbnail_link(upstreams=up, token=me.token, media_id=media_id, size=size)
    return RedirectResponse(link, status_code=307, headers={"Cache-Control": "private, max-age=60"})
