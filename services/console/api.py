"""The console's pages: sign-in, correspondents, reviewers, the city office and opinion
officers. Each page calls the services with the signed-in person's own token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.console import service
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
    today_in_shanghai,
)
from services.console.service import UpstreamError, Upstreams
from services.console.settings import ConsoleSettings
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
            raise AuthError(f"令牌中的单位 {principal.unit!r} 不存在")
    except AuthError as exc:
        return render(request, None, "login.html", 401, next=next, error=str(exc))
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
async def home(request: Request, me: SignedIn) -> HTMLResponse:
    return render(request, me, "home.html")


# ---- correspondents -------------------------------------------------------------------
@router.get("/stories")
async def my_stories(
    request: Request, me: SignedIn, up: Ups, status: str | None = None, page: int = 1
) -> HTMLResponse:
    """My unit's stories and where each stands."""
    found = await service.unit_stories(
        upstreams=up, token=me.token, status=status or None, page=max(1, page)
    )
    return render(request, me, "stories.html", page=found, status=status or "")


@router.get("/stories/new")
async def new_story(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    if not me.principal.has(Role.CORRESPONDENT):
        return forbidden(request, me, "写稿报送需要通讯员角色")
    found = await service.categories(upstreams=up, token=me.token)
    return render(
        request, me, "story_form.html", categories=found, story=None, today=today_in_shanghai()
    )


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


@router.post("/stories/new")
async def submit_new_story(
    me: SignedIn,
    up: Ups,
    title: Annotated[str, Form()],
    body: Annotated[str, Form()],
    category: Annotated[str, Form()],
    event_date: Annotated[str, Form()],
    campaign: Annotated[str, Form()] = "",
    major: Annotated[str | None, Form()] = None,
    media_ids: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Save the story and submit it as version 1."""
    content = _content(title, body, category, event_date, campaign, major, media_ids)
    story = await service.submit_new_story(upstreams=up, token=me.token, content=content)
    return see_other(f"/stories/{story['id']}?notice=submitted")


@router.get("/stories/{story_id}")
async def story_page(request: Request, me: SignedIn, up: Ups, story_id: str) -> HTMLResponse:
    """A story, its versions and what each reviewer said; a returned one can be revised."""
    found = await service.story(upstreams=up, token=me.token, story_id=story_id)
    categories: list[dict[str, Any]] = []
    if found["status"] == "returned" and me.principal.has(Role.CORRESPONDENT):
        categories = await service.categories(upstreams=up, token=me.token)
    comments = [h for h in found["history"] if h["action"] == "reviewed" and h.get("comment")]
    return render(request, me, "story.html", story=found, categories=categories, comments=comments)


@router.post("/stories/{story_id}/revise")
async def revise_story(
    me: SignedIn,
    up: Ups,
    story_id: str,
    title: Annotated[str, Form()],
    body: Annotated[str, Form()],
    category: Annotated[str, Form()],
    event_date: Annotated[str, Form()],
    campaign: Annotated[str, Form()] = "",
    major: Annotated[str | None, Form()] = None,
    media_ids: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Submit the revised text as the next version."""
    changes = _content(title, body, category, event_date, campaign, major, media_ids)
    await service.revise_story(upstreams=up, token=me.token, story_id=story_id, changes=changes)
    return see_other(f"/stories/{story_id}?notice=revised")


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
        return JSONResponse({"detail": exc.detail}, exc.status)
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
        return forbidden(request, me, "审核队列需要审核员或分管领导角色")
    cases = await service.review_queue(upstreams=up, token=me.token)
    return render(request, me, "queue.html", cases=cases)


@router.get("/review/cases/{case_id}")
async def review_case(request: Request, me: SignedIn, up: Ups, case_id: str) -> HTMLResponse:
    """One case: the story, its photos, its flags and the decision form."""
    case = await service.review_case(upstreams=up, token=me.token, case_id=case_id)
    copy = None
    if case.get("possible_copy"):
        copy = await service.copy_source(
            upstreams=up, token=me.token, story_id=case["possible_copy"]["story_id"]
        )
    return render(request, me, "case.html", case=case, copy=copy)


@router.post("/review/cases/{case_id}/decide")
async def decide(
    me: SignedIn,
    up: Ups,
    case_id: str,
    version: Annotated[int, Form()],
    decision: Annotated[str, Form()],
    comment: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Approve, return (with a comment) or reject (with a reason)."""
    text = comment.strip() or None
    body: dict[str, Any] = {"version": version, "decision": decision, "comment": text}
    if decision == "reject":
        body["reason"] = text
    await service.decide(upstreams=up, token=me.token, case_id=case_id, decision=body)
    return see_other("/review?notice=decided")


@router.get("/stories/{story_id}/history")
async def story_history(request: Request, me: SignedIn, up: Ups, story_id: str) -> HTMLResponse:
    """Every step of a story as the review service recorded it."""
    trail = await service.audit_trail(upstreams=up, token=me.token, story_id=story_id)
    return render(request, me, "history.html", story_id=story_id, trail=trail)


# ---- the city office ------------------------------------------------------------------
@router.get("/office")
async def office(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    """Approved stories to publish or schedule, published ones to record adoptions on."""
    if not is_city_office(me.principal, _org(request)):
        return forbidden(request, me, "发布与采用登记由市局审核员办理")
    approved = await service.unit_stories(upstreams=up, token=me.token, status="approved", page=1)
    published = await service.unit_stories(upstreams=up, token=me.token, status="published", page=1)
    queue = await service.publications(upstreams=up, token=me.token)
    return render(
        request, me, "office.html", approved=approved["items"], published=published["items"],
        publications=queue, today=today_in_shanghai(),
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
        title=f"{period} 积分前 15 名",
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
    """Campaigns and, for the chosen one, progress per task and unit."""
    found = await service.campaigns(upstreams=up, token=me.token)
    chosen = code or (found[0]["code"] if found else "")
    progress = (
        await service.campaign_progress(upstreams=up, token=me.token, code=chosen)
        if chosen
        else None
    )
    return render(request, me, "campaigns.html", campaigns=found, progress=progress)


# ---- opinion officers -----------------------------------------------------------------
def escalated(alert: dict[str, Any]) -> bool:
    return any(str(h["action"]).startswith("escalated") for h in alert.get("history", []))


@router.get("/opinion")
async def opinion(request: Request, me: SignedIn, up: Ups, state: str = "") -> HTMLResponse:
    """Alerts in my scope, most severe first, escalated ones marked; then the incidents."""
    found = await service.alerts(upstreams=up, token=me.token, state=state or None)
    found.sort(key=lambda a: (a["state"] == "closed", SEVERITY_ORDER[a["severity"]]))
    for item in found:
        item["escalated"] = escalated(item)
    incidents = await service.incidents(upstreams=up, token=me.token)
    incidents.sort(key=lambda i: SEVERITY_ORDER[i["severity"]])
    return render(request, me, "opinion.html", alerts=found, incidents=incidents, state=state)


@router.get("/opinion/alerts/{alert_id}")
async def alert_page(request: Request, me: SignedIn, up: Ups, alert_id: str) -> HTMLResponse:
    """One alert, the items behind it and its procedure."""
    found = await service.alert(upstreams=up, token=me.token, alert_id=alert_id)
    found["escalated"] = escalated(found)
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
