"""The city office's pages: publishing and scheduling approved stories, adoptions and
withdrawals, the rankings with their bulletin, and campaigns."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import service
from services.console.charts import bar_chart
from services.console.models import (
    SHANGHAI,
    AdoptionForm,
    CampaignForm,
    RankingQuery,
    is_city_office,
    period_label,
    recent_periods,
    today_in_shanghai,
)
from services.console.pages import (
    PAGE_SIZE,
    Me,
    SignedIn,
    Ups,
    download,
    forbidden,
    org_of,
    render,
    see_other,
)
from services.console.upstreams import UpstreamError
from shared.auth import Role

router = APIRouter(include_in_schema=False)


@router.get("/office")
async def office(
    request: Request, me: SignedIn, up: Ups, ap: str = "", pp: str = "", qp: int = 1
) -> HTMLResponse:
    """Approved stories to publish or schedule, published ones to record adoptions on or
    withdraw, and the publish queue by title; each list pages on its own."""
    if not is_city_office(me.principal, org_of(request)):
        return forbidden(request, me, "发布与采用登记由市局审核员办理。")
    approved, published, queue, adoptions = await asyncio.gather(
        service.unit_stories(upstreams=up, token=me.token, status="approved", cursor=ap or None),
        service.unit_stories(upstreams=up, token=me.token, status="published", cursor=pp or None),
        service.publications(upstreams=up, token=me.token),
        service.recent_adoptions(upstreams=up, token=me.token, limit=200),
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
        pages={"ap": ap, "pp": pp, "qp": qp},
        queue_pages=max(1, -(-len(queue) // PAGE_SIZE)), queue_total=len(queue),
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
    form: Annotated[AdoptionForm, Form()],
) -> RedirectResponse:
    """Record that an outside outlet ran the story."""
    adoption = {
        "outlet": form.outlet.strip(), "level": form.level, "placement": form.placement,
        "date": form.date, "link": form.link.strip(),
        "leader_instruction": form.leader_instruction is not None,
    }  # fmt: skip
    await service.record_adoption(
        upstreams=up, token=me.token, story_id=story_id, adoption=adoption
    )
    return see_other("/office?notice=adopted")


# a city's ranking lists thousands of schools: a page of them at a time keeps the page
# light on a phone (the full list is in the downloaded bulletin)
RANKING_PAGE_ROWS = 100


@router.get("/rankings")
async def rankings(
    request: Request, me: SignedIn, up: Ups, asked: Annotated[RankingQuery, Query()]
) -> HTMLResponse:
    """The ranking with its bar chart, the zero-submission and veto lists."""
    shown = asked.understood(today_in_shanghai())
    kind, period, scope = shown.kind, shown.period, shown.scope
    chosen_county = shown.county or None
    found = await service.ranking(
        upstreams=up, token=me.token, period=period, scope=scope, county=chosen_county
    )
    rows = found["rows"]
    pages = max(1, -(-len(rows) // RANKING_PAGE_ROWS))
    page = min(shown.page, pages)
    first = (page - 1) * RANKING_PAGE_ROWS
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
        rows=rows[first : first + RANKING_PAGE_ROWS], first=first + 1, page=page, pages=pages,
        ranking_query=urlencode({"kind": kind, "period": period, "scope": scope,
                         "county": chosen_county or ""}),
        zero=[row for row in rows if row["zero_submissions"]],
        vetoed=[row for row in rows if row["veto"]],
        counties=org_of(request).counties(),
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
    return download(answer, 'attachment; filename="bulletin.xlsx"')


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
    asked: Annotated[CampaignForm, Form()],
) -> Response:
    """Define a campaign with one task (administrators)."""
    form = asked.model_dump() | {"code": asked.code.strip(), "name": asked.name.strip()}
    task_deadline = datetime.fromisoformat(asked.deadline).replace(tzinfo=SHANGHAI)
    campaign = {
        "code": form["code"], "name": form["name"], "period": asked.period,
        "tasks": [{"code": f"{form['code']}-1", "owner_type": asked.owner_type,
                   "what": asked.what, "count": asked.count,
                   "deadline": task_deadline.isoformat()}],
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
