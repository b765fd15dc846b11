"""HTTP routes: rules, the explained ledger, rankings, bulletins and campaigns."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from services.scoring import bulletins, rankings, service
from services.scoring.ledger import record_campaign_completions
from services.scoring.models import CampaignCreate, RulesUpdate, RuleVersion
from services.scoring.periods import Period, PeriodError, parse_period
from shared.auth import CurrentPrincipal, Role, require_role, require_scope
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime

router = APIRouter()

PeriodQuery = Annotated[
    str, Query(description="month:2026-11, quarter:2026-Q4, half:2026-H2, year:2026")
]
ScopeQuery = Annotated[str, Query(description="schools or counties")]
CountyQuery = Annotated[str | None, Query(description="a county code: only its schools")]


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _period(text: str) -> Period:
    try:
        return parse_period(text)
    except PeriodError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


def _scope(org: OrgTree, scope: str, county: str | None) -> rankings.Scope:
    try:
        chosen = rankings.parse_scope(scope)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    if county is not None:
        unit = org.get(county)
        if unit is None or unit.type != "county":
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown county {county!r}")
        if chosen == "counties":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "county narrows a schools ranking only"
            )
    return chosen


@router.get("/rules", response_model=list[RuleVersion], tags=["rules"])
async def get_rules(request: Request, principal: CurrentPrincipal) -> list[RuleVersion]:
    """Every rule version, newest first."""
    return await service.list_rule_versions(db=_runtime(request).db)


@router.put("/rules", response_model=RuleVersion, status_code=201, tags=["rules"])
async def put_rules(
    request: Request, body: RulesUpdate, principal: CurrentPrincipal
) -> RuleVersion:
    """Store a new rule version (admin); it scores events from its effective time on."""
    require_role(principal, Role.ADMIN)
    if body.effective_from is not None and body.effective_from.tzinfo is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "effective_from needs a time zone"
        )
    try:
        return await service.add_rule_version(
            db=_runtime(request).db,
            rules=body.rules,
            effective_from=body.effective_from,
            created_by=principal.sub,
        )
    except service.ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.get("/units/{unit}/ledger", tags=["ledger"])
async def unit_ledger(
    request: Request, unit: str, period: PeriodQuery, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The entries and quota deductions that make up a unit's score in a period."""
    runtime = _runtime(request)
    require_scope(principal, runtime.org, unit)
    return await rankings.explain(
        db=runtime.db, unit=runtime.org.unit(unit), period=_period(period)
    )


@router.get("/units/{unit}/summary", tags=["ledger"])
async def unit_summary(
    request: Request, unit: str, period: PeriodQuery, principal: CurrentPrincipal
) -> dict[str, Any]:
    """A unit's figures for a period (a county's and the city's rolled up) with its quotas."""
    runtime = _runtime(request)
    require_scope(principal, runtime.org, unit)
    return await rankings.summary(
        db=runtime.db, unit=runtime.org.unit(unit), period=_period(period)
    )


@router.get("/rankings", tags=["rankings"])
async def get_ranking(
    request: Request,
    period: PeriodQuery,
    principal: CurrentPrincipal,
    scope: ScopeQuery = "schools",
    county: CountyQuery = None,
) -> dict[str, Any]:
    """The ranking of schools (city-wide or in one county) or of counties."""
    runtime = _runtime(request)
    chosen = _scope(runtime.org, scope, county)
    return await rankings.ranking(
        db=runtime.db, org=runtime.org, period=_period(period), scope=chosen, county=county
    )


async def _bulletin_ranking(
    runtime: ServiceRuntime, period: str, scope: str, county: str | None
) -> dict[str, Any]:
    chosen = _scope(runtime.org, scope, county)
    return await rankings.ranking(
        db=runtime.db, org=runtime.org, period=_period(period), scope=chosen, county=county
    )


@router.get("/bulletins/{period}.xlsx", tags=["bulletins"])
async def bulletin_xlsx(
    request: Request,
    period: str,
    principal: CurrentPrincipal,
    scope: ScopeQuery = "schools",
    county: CountyQuery = None,
) -> Response:
    """The bulletin workbook: 排行榜, 零报送单位, 任务缺口, 舆情事件."""
    runtime = _runtime(request)
    ranking = await _bulletin_ranking(runtime, period, scope, county)
    units = [row["unit"] for row in ranking["rows"]]
    found = await rankings.incidents(db=runtime.db, units=units, period=_period(period))
    name = f"bulletin-{_period(period).label.replace(':', '-')}-{ranking['scope']}.xlsx"
    return Response(
        bulletins.bulletin_xlsx(ranking, found),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/bulletins/{period}.csv", tags=["bulletins"])
async def bulletin_csv(
    request: Request,
    period: str,
    principal: CurrentPrincipal,
    scope: ScopeQuery = "schools",
    county: CountyQuery = None,
) -> Response:
    """The ranking of a bulletin as CSV."""
    ranking = await _bulletin_ranking(_runtime(request), period, scope, county)
    name = f"ranking-{_period(period).label.replace(':', '-')}-{ranking['scope']}.csv"
    return Response(
        bulletins.ranking_csv(ranking["rows"]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/campaigns", status_code=201, tags=["campaigns"])
async def create_campaign(
    request: Request, body: CampaignCreate, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Define a campaign (admin); tasks already complete are awarded at once."""
    require_role(principal, Role.ADMIN)
    runtime = _runtime(request)
    try:
        await service.create_campaign(db=runtime.db, campaign=body, created_by=principal.sub)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    except service.ConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    awarded = await record_campaign_completions(db=runtime.db, org=runtime.org, code=body.code)
    return {**body.model_dump(mode="json"), "completed_tasks_awarded": awarded}


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Every campaign, newest first."""
    documents = (
        await _runtime(request).db[service.CAMPAIGNS].find().sort("created_at", -1).to_list()
    )
    return [{k: v for k, v in d.items() if k != "_id"} for d in documents]


@router.get("/campaigns/{code}/progress", tags=["campaigns"])
async def campaign_progress(
    request: Request, code: str, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Progress per task and owner unit; shortfalls once a deadline has passed."""
    runtime = _runtime(request)
    campaign = await service.get_campaign(db=runtime.db, code=code)
    if campaign is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown campaign {code!r}")
    return await rankings.campaign_progress(db=runtime.db, org=runtime.org, campaign=campaign)
