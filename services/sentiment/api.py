"""HTTP routes: incidents, alerts and their procedure, ad-hoc analysis, screening results
and the rules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from services.sentiment import (
    alerts,
    briefing_api,
    determination,
    items,
    push_api,
    queries,
    rules,
    screening,
)
from services.sentiment.models import (
    AlertAction,
    AlertOut,
    AlertState,
    ClassifyRequest,
    DeterminationRequest,
    IncidentOut,
    SentimentConfig,
    Verdict,
)
from services.sentiment.runtime import Sentiment
from shared.auth import CityAdmin, CurrentPrincipal, Principal, Role, require_role
from shared.events import Severity
from shared.paging import PageQuery, page_query
from shared.refusals import Refusal

router = APIRouter()
router.include_router(items.router)  # GET /items, POST /items/{key}/correction
router.include_router(push_api.router)  # /push/recipients, /push/deliveries
router.include_router(briefing_api.router)  # /briefings/{kind}/{period}[.xlsx|.pdf|/trend.png]


def _sentiment(request: Request) -> Sentiment:
    return request.app.state.sentiment


def _opinion_officer(principal: CurrentPrincipal) -> Principal:
    require_role(principal, Role.OPINION_OFFICER)
    return principal


Runtime = Annotated[Sentiment, Depends(_sentiment)]
Officer = Annotated[Principal, Depends(_opinion_officer)]


# limit 1..200 (default 50) and cursor, the kit's paging parameters
ListPage = Annotated[PageQuery, Depends(page_query)]


def _next_page(response: Response, cursor: str | None) -> None:
    """The list stays a list: the next page is asked for with this header's cursor."""
    if cursor:
        response.headers["x-next-cursor"] = cursor


@router.get("/incidents", response_model=list[IncidentOut])
async def list_incidents(
    principal: Officer,
    runtime: Runtime,
    response: Response,
    page: ListPage,
    severity: Severity | None = None,
) -> list[IncidentOut]:
    """Incidents about my unit and the units below it, most recently active first. More
    than ``limit``: the ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    docs, following = await queries.list_incidents(
        runtime=runtime, principal=principal, severity=severity, page=page
    )
    _next_page(response, following)
    return [IncidentOut.of(doc) for doc in docs]


@router.get("/incidents/{incident_id}", response_model=IncidentOut)
async def get_incident(principal: Officer, runtime: Runtime, incident_id: str) -> IncidentOut:
    """One incident with its items."""
    found = await queries.get_incident(
        runtime=runtime, principal=principal, incident_id=incident_id
    )
    if found is None:
        raise Refusal(404, "unknown_incident", "您的管辖范围内没有这个舆情事件")
    incident, items = found
    return IncidentOut.of(incident, items)


async def _determine(
    principal: Principal,
    runtime: Sentiment,
    incident_id: str,
    body: DeterminationRequest,
    determined: bool,
) -> IncidentOut:
    incident = await determination.determine_incident(
        runtime=runtime,
        incident_id=incident_id,
        principal=principal,
        reason=body.reason,
        determined=determined,
    )
    return IncidentOut.of(incident)


@router.post("/incidents/{incident_id}/determination", response_model=IncidentOut)
async def determine_incident(
    principal: CurrentPrincipal, runtime: Runtime, incident_id: str, body: DeterminationRequest
) -> IncidentOut:
    """Determine (认定) the incident a serious negative incident, with the reason: the
    unit's awards for the year are vetoed (一票否决)."""
    return await _determine(principal, runtime, incident_id, body, determined=True)


@router.delete("/incidents/{incident_id}/determination", response_model=IncidentOut)
async def lift_determination(
    principal: CurrentPrincipal, runtime: Runtime, incident_id: str, body: DeterminationRequest
) -> IncidentOut:
    """Lift the determination, with the reason: the veto no longer applies."""
    return await _determine(principal, runtime, incident_id, body, determined=False)


@router.get("/alerts", response_model=list[AlertOut])
async def list_alerts(
    principal: Officer,
    runtime: Runtime,
    response: Response,
    page: ListPage,
    state: AlertState | None = None,
    severity: Severity | None = None,
) -> list[AlertOut]:
    """Alerts about my unit and the units below it, most recently changed first. More
    than ``limit``: the ``X-Next-Cursor`` header holds the ``cursor`` of the next page."""
    docs, following = await queries.list_alerts(
        runtime=runtime, principal=principal, state=state, severity=severity, page=page
    )
    _next_page(response, following)
    return [AlertOut.of(doc) for doc in docs]


@router.get("/alerts/{alert_id}", response_model=AlertOut)
async def get_alert(principal: Officer, runtime: Runtime, alert_id: str) -> AlertOut:
    alert = await queries.get_alert(runtime=runtime, principal=principal, alert_id=alert_id)
    if alert is None:
        raise Refusal(404, "unknown_alert", "您的管辖范围内没有这条预警")
    return AlertOut.of(alert)


@router.post("/alerts/{alert_id}/{action}", response_model=AlertOut)
async def act_on_alert(
    principal: Officer,
    runtime: Runtime,
    alert_id: str,
    action: str,
    body: AlertAction | None = None,
) -> AlertOut:
    """acknowledge, respond, close (with a comment) or comment."""
    alert = await alerts.act_on_alert(
        runtime=runtime,
        alert_id=alert_id,
        action=action,
        principal=principal,
        comment=(body or AlertAction()).comment,
    )
    return AlertOut.of(alert)


@router.post("/classify", response_model=Verdict)
async def classify(principal: Officer, runtime: Runtime, body: ClassifyRequest) -> Verdict:
    """Analyse a text: negative or not, score, severity, topic and the terms that drove it."""
    return await rules.classify(runtime=runtime, text=body.text, source=body.source)


@router.get("/screenings/{story_id}")
async def get_screening(
    request: Request, principal: CurrentPrincipal, story_id: str
) -> list[dict[str, Any]]:
    """The screening result of each submitted version of a story."""
    require_role(
        principal,
        Role.OPINION_OFFICER,
        Role.REVIEWER_SCHOOL,
        Role.REVIEWER_COUNTY,
        Role.REVIEWER_CITY,
        Role.LEADER,
    )
    sentiment = _sentiment(request)
    docs = await screening.get_screening(runtime=sentiment, story_id=story_id)
    visible = [doc for doc in docs if sentiment.org.contains(principal.unit, doc["unit"])]
    if not visible:
        raise Refusal(404, "unknown_screening", "您的管辖范围内没有这篇稿件的舆情筛查结果")
    return [{("id" if k == "_id" else k): v for k, v in doc.items()} for doc in visible]


@router.get("/config", response_model=SentimentConfig)
async def get_config(principal: Officer, runtime: Runtime) -> SentimentConfig:
    """The rules in force."""
    return await rules.reload_config(runtime=runtime)


@router.put("/config", response_model=SentimentConfig)
async def replace_config(
    request: Request, principal: CityAdmin, body: SentimentConfig
) -> SentimentConfig:
    """Replace the rules (a city administrator); they apply at once."""
    await rules.replace_config(runtime=_sentiment(request), config=body, by=principal.sub)
    return body
