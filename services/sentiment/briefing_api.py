"""HTTP routes of the briefings: JSON, the XLSX workbook, the printable PDF and the trend
chart (PNG) of a daily, weekly or monthly briefing for the city or a county."""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.sentiment.briefing_files import briefing_xlsx, trend_png
from services.sentiment.briefing_pdf import briefing_pdf
from services.sentiment.briefings import Briefing, briefing_scope, build_briefing
from services.sentiment.periods import Period
from services.sentiment.runtime import Sentiment
from shared.auth import CurrentPrincipal, Role, require_role

router = APIRouter()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Unit = Annotated[str | None, Query(max_length=64, description="市或区县编码；默认本人单位")]


async def _briefing(
    request: Request, principal: CurrentPrincipal, kind: str, period: str, unit: str | None
) -> Briefing:
    require_role(principal, Role.OPINION_OFFICER, Role.LEADER)
    sentiment: Sentiment = request.app.state.sentiment
    scope = briefing_scope(runtime=sentiment, principal=principal, unit=unit)
    return await build_briefing(runtime=sentiment, scope=scope, period=Period.parse(kind, period))


def _attachment(briefing: Briefing, extension: str) -> dict[str, str]:
    """A download named in Chinese (北川县教育舆情周报-2026-W48.pdf), ASCII for old clients."""
    name = quote(f"{briefing.title}-{briefing.period}.{extension}")
    plain = f"briefing-{briefing.period}.{extension}"
    return {"content-disposition": f"attachment; filename={plain}; filename*=UTF-8''{name}"}


@router.get("/briefings/{kind}/{period}.xlsx", response_class=Response)
async def briefing_workbook(
    request: Request, principal: CurrentPrincipal, kind: str, period: str, unit: Unit = None
) -> Response:
    """The briefing as an Excel workbook: summary with the trend chart, trend, topics,
    incidents with their handling, the items that matter most."""
    briefing = await _briefing(request, principal, kind, period, unit)
    content = await asyncio.to_thread(briefing_xlsx, briefing)
    return Response(content, media_type=XLSX, headers=_attachment(briefing, "xlsx"))


@router.get("/briefings/{kind}/{period}.pdf", response_class=Response)
async def briefing_document(
    request: Request, principal: CurrentPrincipal, kind: str, period: str, unit: Unit = None
) -> Response:
    """The briefing as a printable A4 PDF: covering text, the trend chart, the tables of
    topics, incidents with their handling and the items that matter most."""
    briefing = await _briefing(request, principal, kind, period, unit)
    content = await asyncio.to_thread(briefing_pdf, briefing)
    return Response(content, media_type="application/pdf", headers=_attachment(briefing, "pdf"))


@router.get("/briefings/{kind}/{period}/trend.png", response_class=Response)
async def briefing_trend(
    request: Request, principal: CurrentPrincipal, kind: str, period: str, unit: Unit = None
) -> Response:
    """The briefing's trend chart: items per day (per hour for a day), all and negative."""
    briefing = await _briefing(request, principal, kind, period, unit)
    return Response(await asyncio.to_thread(trend_png, briefing), media_type="image/png")


@router.get("/briefings/{kind}/{period}", response_model=Briefing)
async def get_briefing(
    request: Request, principal: CurrentPrincipal, kind: str, period: str, unit: Unit = None
) -> Briefing:
    """A daily (``2026-11-29``), weekly (``2026-W48``) or monthly (``2026-11``) briefing
    for the city or a county (a county officer: their own county); a period not yet over
    says so and is compared with the same stretch of the period before."""
    return await _briefing(request, principal, kind, period, unit)
