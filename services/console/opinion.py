"""The opinion officer's pages beside the alerts: every item in scope with filters, the
link to the original, the model's reasons and a one-click correction; the daily, weekly
and monthly briefings as a printable page with the trend chart, and the workbook and the
PDF to download. Each page calls the sentiment service with the person's own token."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.models import SHANGHAI, today_in_shanghai
from services.console.pages import SignedIn, Ups, download, render, see_other
from shared.orgtree import OrgTree

router = APIRouter(include_in_schema=False)

KINDS = {"daily": "日报", "weekly": "周报", "monthly": "月报"}
ITEM_FILTERS = ("source", "topic", "negative", "since", "until", "unit")
PERIODS_OFFERED = 8
PAGE = 100  # items per page of the list


def _org(request: Request) -> OrgTree:
    org: OrgTree = request.app.state.org  # set by create_app
    return org


def _day_start(text: str, *, after: bool = False) -> str | None:
    """A date typed in the form as the instant its day starts in Shanghai (the next day's
    start for an inclusive "until")."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    day += timedelta(days=1) if after else timedelta(0)
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI).isoformat()


def _units_below(org: OrgTree, unit: str) -> list[Any]:
    return [u for u in org.below(unit) if u.code != unit]


@router.get("/opinion/items")
async def items_page(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    """Every item in my scope, negative or not, newest first, reposts merged."""
    query = request.query_params
    filters = {name: query.get(name, "").strip() for name in ITEM_FILTERS}
    params: dict[str, Any] = {k: v for k, v in filters.items() if k in ("source", "topic", "unit")}
    params["negative"] = filters["negative"] if filters["negative"] in ("true", "false") else None
    params["since"] = _day_start(filters["since"]) if filters["since"] else None
    params["until"] = _day_start(filters["until"], after=True) if filters["until"] else None
    params["limit"] = PAGE
    params["cursor"] = query.get("cursor") or None
    answer = await up.send("sentiment", "GET", "/items", token=me.token, params=params)
    found = answer.json()
    following = answer.headers.get("x-next-cursor")
    more = f"/opinion/items?{urlencode({**filters, 'cursor': following})}" if following else None
    org = _org(request)
    return render(
        request, me, "opinion_items.html", items=found, filters=filters,
        units=_units_below(org, me.principal.unit), back=urlencode(filters),
        corrected=query.get("notice") == "corrected", more=more,
    )  # fmt: skip


@router.post("/opinion/items/{item_key}/correction")
async def correct_item(
    me: SignedIn,
    up: Ups,
    item_key: str,
    negative: Annotated[str, Form()],
    back: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Mark an item negative or not negative with one click; back to the same list."""
    path = f"/items/{quote(item_key, safe='')}/correction"
    body = {"negative": negative == "true"}
    await up.json("sentiment", "POST", path, token=me.token, json=body)
    return see_other(f"/opinion/items?{back}&notice=corrected#item-{quote(item_key, safe='')}")


def _period_code(kind: str, day: date) -> str:
    if kind == "daily":
        return day.isoformat()
    if kind == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day:%Y-%m}"


def _fits(kind: str, period: str) -> bool:
    """Whether ``period`` is written as a period of ``kind`` (the service checks the rest)."""
    shape = {"daily": r"\d{4}-\d{2}-\d{2}", "weekly": r"\d{4}-W\d{2}", "monthly": r"\d{4}-\d{2}"}
    return re.fullmatch(shape[kind], period) is not None


def _period_name(kind: str, day: date) -> str:
    """How people name the period holding ``day``: 11月29日, 第48周（11月23日起）, 2026年11月."""
    if kind == "daily":
        return f"{day.year}年{day.month}月{day.day}日"
    if kind == "weekly":
        monday = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return f"{year}年第{week}周（{monday.month}月{monday.day}日起）"
    return f"{day.year}年{day.month}月"


def recent_periods(kind: str, today: date) -> dict[str, str]:
    """The periods of ``kind`` up to the running one, newest first: code → name."""
    step = {"daily": 1, "weekly": 7, "monthly": 28}[kind]
    found: dict[str, str] = {}
    day = today
    while len(found) < PERIODS_OFFERED:
        found.setdefault(_period_code(kind, day), _period_name(kind, day))
        day -= timedelta(days=step)
    return found


@router.get("/opinion/briefings")
async def briefing_page(
    request: Request, me: SignedIn, up: Ups, kind: str = "weekly", period: str = "", unit: str = ""
) -> HTMLResponse:
    """A briefing for the city or a county, printable, with the chart, the workbook and
    the PDF."""
    kind = kind if kind in KINDS else "weekly"
    periods = recent_periods(kind, today_in_shanghai())
    if not _fits(kind, period):  # empty, or left over from another kind of briefing
        period = next(iter(periods))
    path = f"/briefings/{kind}/{quote(period, safe='')}"
    params = {"unit": unit or None}
    briefing = await up.json("sentiment", "GET", path, token=me.token, params=params)
    files = f"/opinion/briefings/{kind}/{quote(period, safe='')}"
    suffix = f"?{urlencode({'unit': unit})}" if unit else ""
    org = _org(request)
    counties = [u for u in org.counties() if org.contains(me.principal.unit, u.code)]
    return render(
        request, me, "opinion_briefing.html", briefing=briefing, kinds=KINDS, kind=kind,
        periods=periods, period=period, unit=unit, counties=counties,
        chart=f"{files}/trend.png{suffix}", workbook=f"{files}.xlsx{suffix}",
        document=f"{files}.pdf{suffix}",
    )  # fmt: skip


async def _file(up: Ups, me: SignedIn, path: str, unit: str) -> Any:
    params = {"unit": unit or None}
    return await up.send("sentiment", "GET", path, token=me.token, params=params)


@router.get("/opinion/briefings/{kind}/{period}.{extension}")
async def briefing_download(
    me: SignedIn, up: Ups, kind: str, period: str, extension: Literal["xlsx", "pdf"], unit: str = ""
) -> Response:
    """The briefing's workbook or PDF, as the sentiment service makes it."""
    path = f"/briefings/{kind}/{quote(period, safe='')}.{extension}"
    return download(await _file(up, me, path, unit))


@router.get("/opinion/briefings/{kind}/{period}/trend.png")
async def briefing_chart(me: SignedIn, up: Ups, kind: str, period: str, unit: str = "") -> Response:
    found = await _file(up, me, f"/briefings/{kind}/{quote(period, safe='')}/trend.png", unit)
    return Response(found.content, media_type="image/png")
