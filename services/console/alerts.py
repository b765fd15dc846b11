"""Opinion officers' pages: alerts in their scope, most severe first, one alert with the
items behind it, and the steps of its procedure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from services.console import service, waiting
from services.console.models import SEVERITY_ORDER
from services.console.pages import SignedIn, Ups, render, see_other
from shared.clock import utcnow

router = APIRouter(include_in_schema=False)


def escalated(alert: dict[str, Any]) -> bool:
    return any(str(h["action"]).startswith("escalated") for h in alert.get("history", []))


@router.get("/opinion")
async def opinion(request: Request, me: SignedIn, up: Ups, state: str = "") -> HTMLResponse:
    """Alerts in my scope, most severe first, escalated ones marked; then the incidents."""
    found = await service.alerts(upstreams=up, token=me.token, state=state or None)
    found.sort(key=lambda a: (a["state"] == "closed", SEVERITY_ORDER[a["severity"]]))
    now = utcnow()
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
    found["overdue"] = waiting.overdue(found, utcnow())
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
