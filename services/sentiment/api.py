"""HTTP routes: incidents, alerts and their procedure, ad-hoc analysis, screening results
and the rules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

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
from shared.auth import CityAdmin, CurrentPrincipal, Role, require_role
from shared.events import Severity
from shared.refusals import Refusal

router = APIRouter()
router.include_router(items.router)  # GET /items, POST /items/{key}/correction
router.include_router(push_api.router)  # /push/recipients, /push/deliveries
router.include_router(briefing_api.router)  # /briefings/{kind}/{period}[.xlsx|/trend.png]


def _sentiment(request: Request) -> Sentiment:
    return request.app.state.sentiment


@router.get("/incidents", response_model=list[IncidentOut])
async def list_incidents(
    request: Request,
    principal: CurrentPrincipal,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[IncidentOut]:
    """Incidents about my unit and the units below it, most recent first."""
    require_role(principal, Role.OPINION_OFFICER)
    docs = await queries.list_incidents(
        runtime=_sentiment(request), principal=principal, severity=severity, limit=limit
    )
    return [IncidentOut.of(doc) for doc in docs]


@router.get("/incidents/{incident_id}", response_model=IncidentOut)
async def get_incident(
    request: Request, principal: CurrentPrincipal, incident_id: str
) -> IncidentOut:
    """One incident with its items."""
    require_role(principal, Role.OPINION_OFFICER)
    found = await queries.get_incident(
        runtime=_sentiment(request), principal=principal, incident_id=incident_id
    )
    if found is None:
        raise Refusal(404, "unknown_incident", "您的管辖范围内没有这个舆情事件")
    incident, items = found
    return IncidentOut.of(incident, items)


async def _determine(
    request: Request,
    principal: CurrentPrincipal,
    incident_id: str,
    body: DeterminationRequest,
    determined: bool,
) -> IncidentOut:
    incident = await determination.determine_incident(
        runtime=_sentiment(request),
        incident_id=incident_id,
        principal=principal,
        reason=body.reason,
        determined=determined,
    )
    return IncidentOut.of(incident)


@router.post("/incidents/{incident_id}/determination", response_model=IncidentOut)
async def determine_incident(
    request: Request, principal: CurrentPrincipal, incident_id: str, body: DeterminationRequest
) -> IncidentOut:
    """Determine (认定) the incident a serious negative incident, with the reason: the
    unit's awards for the year are vetoed (一票否决)."""
    return await _determine(request, principal, incident_id, body, determined=True)


@router.delete("/incidents/{incident_id}/determination", response_model=IncidentOut)
async def lift_determination(
    request: Request, principal: CurrentPrincipal, incident_id: str, body: DeterminationRequest
) -> IncidentOut:
    """Lift the determination, with the reason: the veto no longer applies."""
    return await _determine(request, principal, incident_id, body, determined=False)


@router.get("/alerts", response_model=list[AlertOut])
async def list_alerts(
    request: Request,
    principal: CurrentPrincipal,
    state: AlertState | None = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertOut]:
    """Alerts about my unit and the units below it, most recently changed first."""
    require_role(principal, Role.OPINION_OFFICER)
    docs = await queries.list_alerts(
        runtime=_sentiment(request),
        principal=principal,
        state=state,
        severity=severity,
        limit=limit,
    )
    return [AlertOut.of(doc) for doc in docs]


@router.get("/alerts/{alert_id}", response_model=AlertOut)
async def get_alert(request: Request, principal: CurrentPrincipal, alert_id: str) -> AlertOut:
    require_role(principal, Role.OPINION_OFFICER)
    alert = await queries.get_alert(
        runtime=_sentiment(request), principal=principal, alert_id=alert_id
    )
    if alert is None:
        raise Refusal(404, "unknown_alert", "您的管辖范围内没有这条预警")
    return AlertOut.of(alert)


@router.post("/alerts/{alert_id}/{action}", response_model=AlertOut)
async def act_on_alert(
    request: Request,
    principal: CurrentPrincipal,
    alert_id: str,
    action: str,
    body: AlertAction | None = None,
) -> AlertOut:
    """acknowledge, respond, close (with a comment) or comment."""
    require_role(principal, Role.OPINION_OFFICER)
    alert = await alerts.act_on_alert(
        runtime=_sentiment(request),
        alert_id=alert_id,
        action=action,
        principal=principal,
        comment=(body or AlertAction()).comment,
    )
    return AlertOut.of(alert)


@router.post("/classify", response_model=Verdict)
async def classify(request: Request, principal: CurrentPrincipal, body: ClassifyRequest) -> Verdict:
    """Analyse a text: negative or not, score, severity, topic and the terms that drove it."""
    require_role(principal, Role.OPINION_OFFICER)
    return await rules.classify(runtime=_sentiment(request), text=body.text, source=body.source)


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
async def get_config(request: Request, principal: CurrentPrincipal) -> SentimentConfig:
    """The rules in force."""
    require_role(principal, Role.OPINION_OFFICER)
    return await rules.reload_config(runtime=_sentiment(request))


@router.put("/config", response_model=SentimentConfig)
async def replace_config(
    request: Request, principal: CityAdmin, body: SentimentConfig
) -> SentimentConfig:
    """Replace the rules (a city administrator); they apply at once."""
    await rules.replace_config(runtime=_sentiment(request), config=body, by=principal.sub)
    return body
