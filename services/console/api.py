"""The console's pages: sign-in, correspondents, reviewers, the city office and opinion
officers. Each page calls the services with the signed-in person's own token."""

from __future__ import annotations

import asyncio
import difflib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.console import service, waiting
from services.console.charts import bar_chart
from services.console.models import (
    COOKIE,
    LABELS,
    REVIEW_ROLES,
    SEVERITY_ORDER,
    SHANGHAI,
    current_period,
    is_city_office,
    menu_for,
    period_label,
    recent_periods,
    today_in_shanghai,
)
from services.console.service import UpstreamError, Upstreams
from services.console.settings import ConsoleSettings
from services.console.wording import GENERIC_BY_STATUS, from_detail
from shared.auth import AuthError, Principal, Role, verify_token
from shared.orgtree import OrgTree

router = APIRouter(include_in_schema=False)

NOTICES = {
    "submitted": "稿件已报送，等待审核。",
    "revised": "修改稿已重新报送。",
    "decided": "审核意见已提交。",
    "scheduled": "已安排发布。",
    "adopted": "外部采用已登记。",
    "acted": "预警处置已记录。",
    "saved": "草稿已保存，可以继续修改后再报送。",
    "withdrawn": "已撤稿，各渠道将撤下该稿件。",
    "campaign": "专项任务已设立。",
}
PAGE_SIZE = 30
LEVEL_ROLE = {
    "school": Role.REVIEWER_SCHOOL,
    "county": Role.REVIEWER_COUNTY,
    "city": Role.REVIEWER_CITY,
    "leader": Role.LEADER,
}


class SignInNeeded(Exception):
    """No valid token: the person is sent to the sign-in page."""


@dataclass(frozen=True)
class Me:
    principal: Principal
    token: str


def _settings(request: Request) -> ConsoleSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _org(request: Request) -> OrgTree:
    return request.app.state.org  # type: ignore[no-any-return]


def _upstreams(request: Request) -> Upstreams:
    return request.app.state.upstreams  # type: ignore[no-any-return]


def signed_in(request: Request) -> Me:
    """The person the token cookie names, verified as every service verifies it."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded
    try:
        principal = verify_token(token, _settings(request))
    except AuthError as exc:
        raise SignInNeeded from exc
    if _org(request).get(principal.unit) is None:
        raise SignInNeeded
    return Me(principal=principal, token=token)


SignedIn = Annotated[Me, Depends(signed_in)]
Ups = Annotated[Upstreams, Depends(_upstreams)]


def render(
    request: Request, me: Me | None, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page with the header, the menu of the person's roles and any notice."""
    templates: Jinja2Templates = request.app.state.templates
    org = _org(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    base = {
        "me": me.principal if me else None,
        "my_unit": org.get(me.principal.unit) if me else None,
        "menu": menu_for(me.principal, org) if me else [],
        "org": org,
        "notice": notice,
        "labels": LABELS,
    }
    return templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def forbidden(request: Request, me: Me, detail: str) -> HTMLResponse:
    return render(request, me, "error.html", 403, status=403, detail=detail)


# ---- sign-in --------------------------------------------------------------------------
@router.get("/login")
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, None, "login.html", next=next, error=None)


@router.post("/login")
async def login(
    request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:
    """Check the token as the services will, then keep it in an HttpOnly cookie."""
    token = token.strip()
    try:
        principal = verify_token(token, _settings(request))
        if _org(request).get(principal.unit) is None:
            raise AuthError("unknown unit in token")
    except AuthError as exc:
        said = from_detail(str(exc)) or "令牌无效，请重新获取。"
        return render(request, None, "login.html", 401, next=next, error=said)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = see_other(target)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="lax", path="/",
        secure=_settings(request).console_cookie_secure,
    )  # fmt: skip
    return response


@router.post("/logout")
async def logout() -> RedirectResponse:
    response = see_other("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
async def home(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    """What is waiting for me, by role; the counts refresh themselves."""
    counts = await waiting.waiting(me.principal, me.token, up, _org(request))
    return render(request, me, "home.html", counts=counts)


@router.get("/waiting.json")
async def waiting_counts(request: Request, me: SignedIn, up: Ups) -> JSONResponse:
    """The home page's counts and the menu's badges, polled by every page."""
    counts = await waiting.waiting(me.principal, me.token, up, _org(request))
    return JSONResponse(counts, headers={"Cache-Control": "no-store"})


# ---- correspondents -------------------------------------------------------------------
@router.get("/stories")
async def my_stories(
    request: Request,
    me: SignedIn,
    up: Ups,
    status: str = "",
    page: int = 1,
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
    org = _org(request)
    filters = {
        "q": q.strip()[:100], "unit": unit if unit and org.get(unit) else "",
        "category": category, "campaign": campaign,
        "submitted_from": submitted_from, "submitted_to": submitted_to,
        "level": level if level in LABELS["level"] else "",
        "flag": flag if flag in ("late", "possible_copy") else "",
    }  # fmt: skip
    found, categories, campaigns = await asyncio.gather(
        service.unit_stories(
            upstreams=up, token=me.token, status=status or None, page=max(1, page),
            filters={k: v for k, v in filters.items() if v},
        ),
        service.categories(upstreams=up, token=me.token),
        _campaigns_or_none(up, me.token),
    )  # fmt: skip
    pages = max(1, -(-found["total"] // found["page_size"]))
    units = [u for u in org.below(me.principal.unit) if u.code != me.principal.unit]
    query = urlencode({k: v for k, v in {**filters, "status": status}.items() if v})
    return render(
        request, me, "stories.html", page=found, status=status, pages=pages,
        filters=filters, categories=categories, campaigns=campaigns, units=units[:400],
        query=query,
    )  # fmt: skip


async def _form_context(up: Upstreams, me: Me) -> dict[str, Any]:
    """Categories, live campaigns and the length rules a story form needs."""
    found, rules, campaigns = await asyncio.gather(
        service.categories(upstreams=up, token=me.token),
        service.rules(upstreams=up, token=me.token),
        _campaigns_or_none(up, me.token),
    )
    return {"categories": found, "rules": rules, "campaigns": campaigns}


async def _campaigns_or_none(up: Upstreams, token: str) -> list[dict[str, Any]]:
    try:
        return await service.campaigns(upstreams=up, token=token)
    except UpstreamError:
        return []


@router.get("/stories/new")
async def new_story(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    if not me.principal.has(Role.CORRESPONDENT):
        return forbidden(request, me, "写稿报送需要通讯员角色。")
    context = await _form_context(up, me)
    return render(request, me, "story_form.html", draft=None, error=None,
                  today=today_in_shanghai(), **context)  # fmt: skip


def _content(
    title: str,
    body: str,
    category: str,
    event_date: str,
    campaign: str,
    major: str | None,
    media_ids: str,
) -> dict[str, Any]:
    return {
        "title": title.strip(),
        "body": body.strip(),
        "category": category,
        "event_date": event_date,
        "campaign": campaign.strip() or None,
        "major": major is not None,
        "media_ids": [m for m in (part.strip() for part in media_ids.split(",")) if m],
    }


StoryForm = Annotated[str, Form()]


@router.post("/stories/new")
async def submit_new_story(
    request: Request,
    me: SignedIn,
    up: Ups,
    title: StoryForm,
    body: StoryForm,
    category: StoryForm,
    event_date: StoryForm,
    campaign: Annotated[str, Form()] = "",
    major: Annotated[str | None, Form()] = None,
    media_ids: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "submit",
    story_id: Annotated[str, Form()] = "",
) -> Response:
    """Save the story as a draft, or save and submit it as version 1. A refusal shows on
    the form in Chinese with everything typed kept."""
    content = _content(title, body, category, event_date, campaign, major, media_ids)
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
        office=is_city_office(me.principal, _org(request)), today=today_in_shanghai(), **context,
    )  # fmt: skip


@router.post("/stories/{story_id}/revise")
async def revise_story(
    request: Request,
    me: SignedIn,
    up: Ups,
    story_id: str,
    title: StoryForm,
    body: StoryForm,
    category: StoryForm,
    event_date: StoryForm,
    campaign: Annotated[str, Form()] = "",
    major: Annotated[str | None, Form()] = None,
    media_ids: Annotated[str, Form()] = "",
    action: Annotated[str, Form()] = "submit",
) -> Response:
    """Keep the changes as a draft, or submit them as the next version."""
    changes = _content(title, body, category, event_date, campaign, major, media_ids)
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


# ---- reviewers ------------------------------------------------------------------------
@router.get("/review")
async def review_queue(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    """My queue, oldest first."""
    if not me.principal.has(*REVIEW_ROLES, Role.ADMIN):
        return forbidden(request, me, "审核队列需要审核员或分管领导角色。")
    cases = await service.review_queue(upstreams=up, token=me.token)
    return render(request, me, "queue.html", cases=cases)


def body_diff(before: str, after: str) -> list[tuple[str, str]]:
    """The body's changes as ``(kind, text)`` runs, kind one of same/ins/del; Chinese has
    no spaces, so the comparison is character by character."""
    runs: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            runs.append(("same", before[a1:a2]))
            continue
        if a2 > a1:
            runs.append(("del", before[a1:a2]))
        if b2 > b1:
            runs.append(("ins", after[b1:b2]))
    return runs


async def _case_view(
    request: Request,
    me: Me,
    up: Upstreams,
    case_id: str,
    *,
    error: str | None = None,
    comment: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    case = await service.review_case(upstreams=up, token=me.token, case_id=case_id)
    copy_of = case["possible_copy"]["story_id"] if case.get("possible_copy") else None
    story_id = case["story_id"]
    copy, trail, story, previous = await asyncio.gather(
        service.copy_source(upstreams=up, token=me.token, story_id=copy_of)
        if copy_of
        else _nothing(),
        service.audit_trail(upstreams=up, token=me.token, story_id=story_id),
        service.copy_source(upstreams=up, token=me.token, story_id=story_id),
        service.version(upstreams=up, token=me.token, story_id=story_id, number=case["version"] - 1)
        if case["version"] > 1
        else _nothing(),
    )
    opinions = sorted(
        (t for t in trail if t["decision"] in ("approved", "returned", "rejected")),
        key=lambda t: t["at"],
    )
    role = LEVEL_ROLE.get(case["level"])
    can_decide = case["state"] == "open" and role is not None and me.principal.has(role)
    diff = None
    if previous is not None:
        diff = {
            "version": previous["version"],
            "title_before": previous["title"] if previous["title"] != case["title"] else None,
            "runs": body_diff(previous["body"], case["body"]),
        }
    return render(
        request, me, "case.html", status_code, case=case, copy=copy, opinions=opinions,
        can_decide=can_decide, author=(story or {}).get("author_name") or "本单位通讯员",
        diff=diff, error=error, comment=comment,
    )  # fmt: skip


async def _nothing() -> None:
    return None


@router.get("/review/cases/{case_id}")
async def review_case(request: Request, me: SignedIn, up: Ups, case_id: str) -> HTMLResponse:
    """One case: the story, its photos, its flags, what earlier levels said, the changes
    since the previous version and the decision form."""
    return await _case_view(request, me, up, case_id)


@router.post("/review/cases/{case_id}/decide")
async def decide(
    request: Request,
    me: SignedIn,
    up: Ups,
    case_id: str,
    version: Annotated[int, Form()],
    decision: Annotated[str, Form()],
    comment: Annotated[str, Form()] = "",
    publish_at: Annotated[str, Form()] = "",
) -> Response:
    """Approve (at the city level, optionally at a set publication time), return (with a
    comment) or reject (with a reason)."""
    text = comment.strip() or None
    body: dict[str, Any] = {"version": version, "decision": decision, "comment": text}
    if decision == "reject":
        body["reason"] = text
    if decision == "approve" and publish_at.strip():
        moment = datetime.fromisoformat(publish_at.strip()).replace(tzinfo=SHANGHAI)
        body["publish_at"] = moment.isoformat()
    try:
        await service.decide(upstreams=up, token=me.token, case_id=case_id, decision=body)
    except UpstreamError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await _case_view(request, me, up, case_id, error=exc.text, comment=comment,
                                status_code=exc.status)  # fmt: skip
    return see_other("/review?notice=decided")


@router.get("/stories/{story_id}/history")
async def story_history(request: Request, me: SignedIn, up: Ups, story_id: str) -> HTMLResponse:
    """Every step of a story as the review service recorded it, oldest first."""
    trail, story = await asyncio.gather(
        service.audit_trail(upstreams=up, token=me.token, story_id=story_id),
        service.copy_source(upstreams=up, token=me.token, story_id=story_id),
    )
    trail.sort(key=lambda t: t["at"])
    return render(request, me, "history.html", story=story, trail=trail)


# ---- the city office ------------------------------------------------------------------
@router.get("/office")
async def office(
    request: Request, me: SignedIn, up: Ups, ap: int = 1, pp: int = 1, qp: int = 1
) -> HTMLResponse:
    """Approved stories to publish or schedule, published ones to record adoptions on or
    withdraw, and the publish queue by title; each list pages on its own."""
    if not is_city_office(me.principal, _org(request)):
        return forbidden(request, me, "发布与采用登记由市局审核员办理。")
    approved, published, queue, adoptions = await asyncio.gather(
        service.unit_stories(upstreams=up, token=me.token, status="approved", page=max(1, ap)),
        service.unit_stories(upstreams=up, token=me.token, status="published", page=max(1, pp)),
        service.publications(upstreams=up, token=me.token),
        service.recent_adoptions(upstreams=up, token=me.token, limit=1000),
    )
    adopted: dict[str, list[str]] = {}
    for adoption in reversed(adoptions):
        adopted.setdefault(adoption["story_id"], []).append(adoption["outlet"])
    qp = max(1, qp)
    shown = queue[(qp - 1) * PAGE_SIZE : qp * PAGE_SIZE]
    names = await service.titles(
        upstreams=up, token=me.token, story_ids=[p["story_id"] for p in shown]
    )
    scheduled = {
        p["story_id"]: p["publish_at"] for p in queue
        if p["state"] == "pending" and p["action"] == "publish"
    }  # fmt: skip
    return render(
        request, me, "office.html", approved=approved, published=published,
        publications=shown, titles=names, scheduled=scheduled, today=today_in_shanghai(),
        adopted=adopted,
        pages={"ap": max(1, ap), "pp": max(1, pp), "qp": qp},
        queue_pages=max(1, -(-len(queue) // PAGE_SIZE)), queue_total=len(queue),
        page_count=lambda found: max(1, -(-found["total"] // found["page_size"])),
    )  # fmt: skip


@router.post("/office/stories/{story_id}/schedule")
async def schedule(
    me: SignedIn, up: Ups, story_id: str, publish_at: Annotated[str, Form()]
) -> RedirectResponse:
    """Publish at a local (Asia/Shanghai) time, or at once when it has passed."""
    moment = datetime.fromisoformat(publish_at).replace(tzinfo=SHANGHAI)
    await service.schedule(
        upstreams=up, token=me.token, story_id=story_id, publish_at=moment.isoformat()
    )
    return see_other("/office?notice=scheduled")


@router.post("/office/stories/{story_id}/withdraw")
async def withdraw(
    me: SignedIn, up: Ups, story_id: str, reason: Annotated[str, Form()]
) -> RedirectResponse:
    """撤稿: take a published story down on every channel, with the reason."""
    await service.withdraw(upstreams=up, token=me.token, story_id=story_id, reason=reason.strip())
    return see_other("/office?notice=withdrawn")


@router.post("/office/stories/{story_id}/adoptions")
async def record_adoption(
    me: SignedIn,
    up: Ups,
    story_id: str,
    outlet: Annotated[str, Form()],
    level: Annotated[str, Form()],
    placement: Annotated[str, Form()],
    date: Annotated[str, Form()],
    link: Annotated[str, Form()],
    leader_instruction: Annotated[str | None, Form()] = None,
) -> RedirectResponse:
    """Record that an outside outlet ran the story."""
    adoption = {
        "outlet": outlet.strip(), "level": level, "placement": placement, "date": date,
        "link": link.strip(), "leader_instruction": leader_instruction is not None,
    }  # fmt: skip
    await service.record_adoption(
        upstreams=up, token=me.token, story_id=story_id, adoption=adoption
    )
    return see_other("/office?notice=adopted")


def _ranking_query(kind: str, period: str, scope: str) -> tuple[str, str, str]:
    kind = kind if kind in LABELS["period_kind"] else "month"
    scope = scope if scope in ("schools", "counties") else "schools"
    return kind, period.strip() or current_period(kind, today_in_shanghai()), scope


@router.get("/rankings")
async def rankings(
    request: Request,
    me: SignedIn,
    up: Ups,
    kind: str = "month",
    period: str = "",
    scope: str = "schools",
    county: str = "",
) -> HTMLResponse:
    """The ranking with its bar chart, the zero-submission and veto lists."""
    kind, period, scope = _ranking_query(kind, period, scope)
    chosen_county = county if scope == "schools" and county else None
    found = await service.ranking(
        upstreams=up, token=me.token, period=period, scope=scope, county=chosen_county
    )
    rows = found["rows"]
    chart = bar_chart(
        [(row["name"], row["points"]) for row in rows[:15] if row["points"] or row["submitted"]],
        title=f"{period_label(period)}积分前 15 名",
    )
    download = f"/rankings/bulletin.xlsx?period={quote(period)}&scope={scope}" + (
        f"&county={quote(chosen_county)}" if chosen_county else ""
    )
    return render(
        request, me, "rankings.html", ranking=found, chart=chart, kind=kind, period=period,
        scope=scope, county=chosen_county or "", download=download,
        zero=[row for row in rows if row["zero_submissions"]],
        vetoed=[row for row in rows if row["veto"]],
        counties=_org(request).counties(),
        periods=recent_periods(kind, today_in_shanghai()),
    )  # fmt: skip


@router.get("/rankings/bulletin.xlsx")
async def bulletin(
    me: SignedIn,
    up: Ups,
    period: Annotated[str, Query()],
    scope: str = "schools",
    county: str = "",
) -> Response:
    """The scoring service's XLSX bulletin, passed through."""
    answer = await service.bulletin(
        upstreams=up, token=me.token, period=period, scope=scope, county=county or None
    )
    disposition = answer.headers.get("content-disposition", 'attachment; filename="bulletin.xlsx"')
    return Response(
        answer.content,
        media_type=answer.headers.get("content-type"),
        headers={"Content-Disposition": disposition},
    )


@router.get("/campaigns")
async def campaigns(request: Request, me: SignedIn, up: Ups, code: str = "") -> HTMLResponse:
    """Campaigns and, for the chosen one, progress per task and unit; administrators
    define new ones here."""
    found = await service.campaigns(upstreams=up, token=me.token)
    chosen = code or (found[0]["code"] if found else "")
    progress = (
        await service.campaign_progress(upstreams=up, token=me.token, code=chosen)
        if chosen
        else None
    )
    return render(request, me, "campaigns.html", campaigns=found, progress=progress,
                  error=None, form={}, **_campaign_form_context(me))  # fmt: skip


def _campaign_form_context(me: Me) -> dict[str, Any]:
    today = today_in_shanghai()
    periods = [p for kind in ("quarter", "half", "year") for p in recent_periods(kind, today, 2)]
    return {"can_create": me.principal.has(Role.ADMIN), "periods": periods}


@router.post("/campaigns")
async def create_campaign(
    request: Request,
    me: SignedIn,
    up: Ups,
    code: Annotated[str, Form()],
    name: Annotated[str, Form()],
    period: Annotated[str, Form()],
    owner_type: Annotated[str, Form()],
    what: Annotated[str, Form()],
    count: Annotated[int, Form()],
    deadline: Annotated[str, Form()],
) -> Response:
    """Define a campaign with one task (administrators)."""
    form = {
        "code": code.strip(), "name": name.strip(), "period": period,
        "owner_type": owner_type, "what": what, "count": count, "deadline": deadline,
    }  # fmt: skip
    task_deadline = datetime.fromisoformat(deadline).replace(tzinfo=SHANGHAI)
    campaign = {
        "code": form["code"], "name": form["name"], "period": period,
        "tasks": [{"code": f"{form['code']}-1", "owner_type": owner_type, "what": what,
                   "count": count, "deadline": task_deadline.isoformat()}],
    }  # fmt: skip
    try:
        await service.create_campaign(upstreams=up, token=me.token, campaign=campaign)
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        found = await service.campaigns(upstreams=up, token=me.token)
        return render(request, me, "campaigns.html", exc.status, campaigns=found,
                      progress=None, error=exc.text, form=form,
                      **_campaign_form_context(me))  # fmt: skip
    return see_other(f"/campaigns?code={quote(form['code'])}&notice=campaign")


# ---- opinion officers -----------------------------------------------------------------
def escalated(alert: dict[str, Any]) -> bool:
    return any(str(h["action"]).startswith("escalated") for h in alert.get("history", []))


@router.get("/opinion")
async def opinion(request: Request, me: SignedIn, up: Ups, state: str = "") -> HTMLResponse:
    """Alerts in my scope, most severe first, escalated ones marked; then the incidents."""
    found = await service.alerts(upstreams=up, token=me.token, state=state or None)
    found.sort(key=lambda a: (a["state"] == "closed", SEVERITY_ORDER[a["severity"]]))
    now = datetime.now(UTC)
    for item in found:
        item["escalated"] = escalated(item)
        item["overdue"] = waiting.overdue(item, now)
    incidents = await service.incidents(upstreams=up, token=me.token)
    incidents.sort(key=lambda i: SEVERITY_ORDER[i["severity"]])
    return render(request, me, "opinion.html", alerts=found, incidents=incidents, state=state)


@router.get("/opinion/alerts/{alert_id}")
async def alert_page(request: Request, me: SignedIn, up: Ups, alert_id: str) -> HTMLResponse:
    """One alert, the items behind it and its procedure."""
    found = await service.alert(upstreams=up, token=me.token, alert_id=alert_id)
    found["escalated"] = escalated(found)
    found["overdue"] = waiting.overdue(found, datetime.now(UTC))
    found["history"] = sorted(found.get("history", []), key=lambda h: h["at"])
    behind = await service.incident(upstreams=up, token=me.token, incident_id=found["incident_id"])
    return render(request, me, "alert.html", alert=found, incident=behind)


@router.post("/opinion/alerts/{alert_id}/{action}")
async def act_on_alert(
    me: SignedIn, up: Ups, alert_id: str, action: str, comment: Annotated[str, Form()] = ""
) -> RedirectResponse:
    """Acknowledge, respond, close or comment."""
    await service.act_on_alert(
        upstreams=up, token=me.token, alert_id=alert_id, action=action, comment=comment
    )
    return see_other(f"/opinion/alerts/{alert_id}?notice=acted")
