"""HTTP routes: rules, the explained ledger, rankings, bulletins and campaigns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.scoring import bulletins, campaigns, rankings, service, unitviews, vetoes, visibility
from services.scoring.ledger import record_campaign_completions
from services.scoring.models import CampaignCreate, RulesUpdate, RuleVersion
from services.scoring.periods import Calendar, Period, PeriodError, parse_period
from services.scoring.settings import ScoringSettings, scoring_settings
from shared.auth import CityAdmin, CurrentPrincipal, Principal, require_scope
from shared.http import JSONAnswer
from shared.orgtree import OrgTree, Unit
from shared.paging import PageQuery, page_query
from shared.refusals import Refusal
from shared.runtime import ServiceRuntime, runtime_of

router = APIRouter()

PeriodQuery = Annotated[
    str, Query(description="month:2026-11, quarter:2026-Q4, half:2026-H2, year:2026")
]
ScopeQuery = Annotated[str, Query(description="schools or counties")]
CountyQuery = Annotated[str | None, Query(description="a county code: only its schools")]


def _settings(runtime: ServiceRuntime) -> ScoringSettings:
    return scoring_settings(runtime.settings)


async def _calendar(runtime: ServiceRuntime) -> Calendar:
    return await service.calendar_for(db=runtime.db, go_live=_settings(runtime).scoring_go_live)


def _period(text: str, calendar: Calendar) -> Period:
    try:
        return parse_period(text, years=calendar.years)
    except PeriodError as exc:
        raise Refusal(422, "invalid_period", str(exc), f"period {text!r} refused") from exc


def _unit(org: OrgTree, code: str) -> Unit:
    unit = org.get(code)
    if unit is None:
        raise Refusal(404, "unknown_unit", f"没有单位 {code!r}", f"no unit {code!r}")
    return unit


def _scope(org: OrgTree, scope: str, county: str | None) -> rankings.Scope:
    try:
        chosen = rankings.parse_scope(scope)
    except ValueError as exc:
        raise Refusal(422, "invalid_scope", str(exc), f"scope {scope!r} refused") from exc
    if county is not None:
        unit = org.get(county)
        if unit is None or unit.type != "county":
            raise Refusal(422, "unknown_county", f"没有县区 {county!r}", f"no county {county!r}")
        if chosen == "counties":
            raise Refusal(
                422,
                "county_filter_schools_only",
                "按县区筛选只适用于学校排行（scope=schools）",
                "a county filter applies to school rankings only",
            )
    return chosen


def _may_read_ranking(
    runtime: ServiceRuntime, principal: Principal, scope: rankings.Scope, county: str | None
) -> None:
    """Rankings are published to every unit unless the deployment keeps them in scope."""
    if _settings(runtime).scoring_rankings_public:
        return
    org = runtime.org
    if scope == "schools" and county is not None and org.contains(principal.unit, county):
        return
    if principal.unit == org.city.code:
        return
    raise Refusal(
        403,
        "ranking_out_of_scope",
        "本单位只能查看本单位及下级单位的排行，请按县区筛选",
        "rankings are not public here: only rankings of the caller's own scope",
    )


@router.get("/rules", response_model=list[RuleVersion], tags=["rules"])
async def get_rules(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    page: Annotated[PageQuery, Depends(page_query)],
) -> list[RuleVersion]:
    """The rule versions, newest first, a page at a time: with more than ``limit``, the
    ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    versions, cursor = await service.list_rule_versions(db=runtime_of(request).db, page=page)
    if cursor:
        response.headers["x-next-cursor"] = cursor
    return versions


@router.put("/rules", response_model=RuleVersion, status_code=201, tags=["rules"])
async def put_rules(request: Request, body: RulesUpdate, principal: CityAdmin) -> RuleVersion:
    """Store a new rule version (a city administrator); it scores events from its
    effective time on."""
    if body.effective_from is not None and body.effective_from.tzinfo is None:
        raise Refusal(
            422,
            "effective_from_without_zone",
            "生效时间（effective_from）须带时区，例如 2026-12-01T00:00:00+08:00",
            "effective_from needs a time zone",
        )
    try:
        return await service.add_rule_version(
            db=runtime_of(request).db,
            rules=body.rules,
            effective_from=body.effective_from,
            created_by=principal.sub,
        )
    except service.ConflictError as exc:
        raise Refusal(409, "rule_version_conflict", str(exc), "concurrent rule version") from exc


UnitView = Callable[..., Awaitable[dict[str, Any]]]


async def _unit_view(
    view: UnitView, request: Request, unit: str, period: str, principal: Principal
) -> dict[str, Any]:
    """One unit's view for a period, once the caller is known to see that unit."""
    runtime = runtime_of(request)
    found = _unit(runtime.org, unit)
    require_scope(principal, runtime.org, unit)
    calendar = await _calendar(runtime)
    return await view(
        db=runtime.db, unit=found, period=_period(period, calendar), calendar=calendar
    )


@router.get("/units/{unit}/ledger", tags=["ledger"])
async def unit_ledger(
    request: Request, unit: str, period: PeriodQuery, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The entries and quota deductions that make up a unit's score in a period."""
    return await _unit_view(unitviews.explain, request, unit, period, principal)


@router.get("/units/{unit}/summary", tags=["ledger"])
async def unit_summary(
    request: Request, unit: str, period: PeriodQuery, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A unit's figures for a period (a county's and the city's rolled up) with its quotas
    and each month's points and deductions."""
    return await _unit_view(unitviews.summary, request, unit, period, principal)


@dataclass(frozen=True)
class Selection:
    """Which ranking a request asks for (the scope and county) and who asks."""

    runtime: ServiceRuntime
    principal: Principal
    scope: str
    county: str | None


def _selection(
    request: Request,
    principal: CurrentPrincipal,
    scope: ScopeQuery = "schools",
    county: CountyQuery = None,
) -> Selection:
    return Selection(runtime_of(request), principal, scope, county)


# the ranking and its three bulletin files take the same scope, county and caller
Selected = Annotated[Selection, Depends(_selection)]


async def _visible_ranking(
    selected: Selection, period: str, *, shortfall_lines: bool = True
) -> tuple[dict[str, Any], Period, Calendar]:
    runtime, principal, county = selected.runtime, selected.principal, selected.county
    chosen = _scope(runtime.org, selected.scope, county)
    _may_read_ranking(runtime, principal, chosen, county)
    calendar = await _calendar(runtime)
    parsed = _period(period, calendar)
    ranking = await rankings.ranking(
        db=runtime.db, org=runtime.org, period=parsed, scope=chosen, county=county,
        calendar=calendar, shortfall_lines=shortfall_lines,
    )  # fmt: skip
    return visibility.redact_ranking(ranking, principal, runtime.org), parsed, calendar


@router.get("/rankings", tags=["rankings"], response_class=JSONAnswer)
async def get_ranking(
    period: PeriodQuery,
    selected: Selected,
    shortfalls: Annotated[
        bool,
        Query(description="also list every quota line short of its target (任务缺口)"),
    ] = False,
) -> JSONAnswer:
    """The ranking of schools (city-wide or in one county) or of counties, each row with
    its quota shortfall and deduction. A veto's cause shows only for units in the
    caller's scope."""
    ranking, _, _ = await _visible_ranking(selected, period, shortfall_lines=shortfalls)
    return JSONAnswer(ranking)


@router.get("/veto-candidates", tags=["rankings"])
async def get_veto_candidates(
    request: Request, period: PeriodQuery, principal: CurrentPrincipal
) -> list[dict[str, Any]]:
    """Incidents whose alert reached the serious severity: candidates the city bureau may
    determine (认定) in the sentiment service; a candidate alone vetoes nothing."""
    runtime = runtime_of(request)
    visibility.require_city_office(principal, runtime.org)
    calendar = await _calendar(runtime)
    units = [code for code in runtime.org.units]
    return await vetoes.veto_candidates(
        db=runtime.db, units=units, period=_period(period, calendar)
    )


async def _bulletin(selected: Selection, period: str) -> bulletins.Bulletin:
    runtime = selected.runtime
    ranking, parsed, calendar = await _visible_ranking(selected, period)
    org = runtime.org
    units = [row["unit"] for row in ranking["rows"]]
    if ranking["scope"] == "counties":
        units += [u.code for u in org.schools() if u.county in units]
    found = await vetoes.incidents(
        db=runtime.db,
        units=visibility.in_scope_units(selected.principal, org, units),
        period=parsed,
    )
    book = await service.rule_book(db=runtime.db)
    return bulletins.compose(
        ranking=ranking,
        incidents=found,
        org=org,
        period=parsed,
        issuer=_settings(runtime).scoring_issuer,
        issued_at=calendar.now,
        quotas=book.current.rules.quotas,
    )


def _download(content: bytes | str, media_type: str, name: str) -> Response:
    """A file the browser saves under ``name`` rather than shows."""
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(content, media_type=media_type, headers=disposition)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get("/bulletins/{period}.xlsx", tags=["bulletins"])
async def bulletin_xlsx(period: str, selected: Selected) -> Response:
    """The bulletin (通报) as a workbook: 通报 with the ranking, 零报送单位, 任务缺口, 舆情事件."""
    bulletin = await _bulletin(selected, period)
    return _download(bulletins.bulletin_xlsx(bulletin), XLSX, f"bulletin-{bulletin.file_stem}.xlsx")


@router.get("/bulletins/{period}.html", tags=["bulletins"])
async def bulletin_html(period: str, selected: Selected) -> Response:
    """The bulletin as a printable page."""
    bulletin = await _bulletin(selected, period)
    return Response(bulletins.bulletin_html(bulletin), media_type="text/html; charset=utf-8")


@router.get("/bulletins/{period}.csv", tags=["bulletins"])
async def bulletin_csv(period: str, selected: Selected) -> Response:
    """The ranking of a bulletin as CSV."""
    bulletin = await _bulletin(selected, period)
    csv = bulletins.ranking_csv(bulletin)
    return _download(csv, "text/csv; charset=utf-8", f"ranking-{bulletin.file_stem}.csv")


@router.post("/campaigns", status_code=201, tags=["campaigns"])
async def create_campaign(
    request: Request, body: CampaignCreate, principal: CityAdmin
) -> dict[str, Any]:
    """Define a campaign (a city administrator: its tasks fall on units across the city);
    tasks already complete are awarded at once."""
    runtime = runtime_of(request)
    try:
        await service.create_campaign(db=runtime.db, campaign=body, created_by=principal.sub)
    except ValueError as exc:
        raise Refusal(422, "invalid_campaign", str(exc), "campaign refused") from exc
    except service.ConflictError as exc:
        raise Refusal(409, "campaign_code_taken", str(exc), "campaign code in use") from exc
    awarded = await record_campaign_completions(db=runtime.db, org=runtime.org, code=body.code)
    return {**body.model_dump(mode="json"), "completed_tasks_awarded": awarded}


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    page: Annotated[PageQuery, Depends(page_query)],
) -> list[dict[str, Any]]:
    """The campaigns, newest first, a page at a time: with more than ``limit``, the
    ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    found, cursor = await service.list_campaigns(db=runtime_of(request).db, page=page)
    if cursor:
        response.headers["x-next-cursor"] = cursor
    return found


@router.get("/campaigns/{code}/progress", tags=["campaigns"])
async def campaign_progress(
    request: Request, code: str, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Progress per task and owner unit; shortfalls once a deadline has passed."""
    runtime = runtime_of(request)
    campaign = await service.get_campaign(db=runtime.db, code=code)
    if campaign is None:
        raise Refusal(404, "unknown_campaign", f"没有专题活动 {code!r}", f"no campaign {code!r}")
    return await campaigns.campaign_progress(db=runtime.db, org=runtime.org, campaign=campaign)
