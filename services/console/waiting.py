"""What is waiting for a person: the counts of their home page and of the menu's badges,
gathered from the services with the person's own token. The page asks again every few
seconds, so a new case or an escalated alert shows without reloading."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from services.console import service
from services.console.models import (
    REVIEW_ROLES,
    SEVERITY_ORDER,
    SHANGHAI,
    is_city_office,
    label,
)
from services.console.upstreams import UpstreamError, Upstreams
from shared.auth import Principal, Role
from shared.clock import utcnow
from shared.orgtree import OrgTree


def age_text(since: datetime, now: datetime) -> str:
    """How long something has waited, as people say it."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} 分钟"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时"
    return f"{minutes // (24 * 60)} 天"


def _moment(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def overdue(alert: dict[str, Any], now: datetime) -> bool:
    """An alert past its deadline that is not yet closed."""
    deadline = alert.get("deadline")
    if not isinstance(deadline, str) or not deadline:
        return False
    return alert["state"] != "closed" and _moment(deadline) < now


async def _queue(up: Upstreams, token: str, now: datetime) -> dict[str, Any]:
    cases = await service.review_queue(upstreams=up, token=token)
    by_level: dict[str, int] = {}
    for case in cases:
        by_level[case["level"]] = by_level.get(case["level"], 0) + 1
    oldest = min((_moment(c["waiting_since"]) for c in cases), default=None)
    return {
        "queue": len(cases),
        "queue_by_level": [
            {"level": label(level, "level"), "count": count}
            for level, count in sorted(by_level.items())
        ],
        "queue_oldest": age_text(oldest, now) if oldest else "",
        "queue_overdue": sum(1 for c in cases if c.get("overdue")),
        "queue_revised": sum(1 for c in cases if c["version"] > 1),
    }


async def _alerts(up: Upstreams, token: str, now: datetime) -> dict[str, Any]:
    found = await service.alerts(upstreams=up, token=token, state=None)
    live = [a for a in found if a["state"] != "closed"]
    by_severity: dict[str, int] = {}
    for alert in live:
        by_severity[alert["severity"]] = by_severity.get(alert["severity"], 0) + 1
    return {
        "alerts": len(live),
        "alerts_unacknowledged": sum(1 for a in live if a["state"] == "open"),
        "alerts_overdue": sum(1 for a in live if overdue(a, now)),
        "alerts_by_severity": [
            {"severity": sev, "name": label(sev, "severity"), "count": by_severity[sev]}
            for sev in sorted(by_severity, key=SEVERITY_ORDER.__getitem__)
        ],
    }


async def _stories(up: Upstreams, token: str) -> dict[str, Any]:
    totals = await service.story_totals(upstreams=up, token=token)
    return {"returned": totals.get("returned", 0), "drafts": totals.get("draft", 0)}


async def _office(up: Upstreams, token: str, now: datetime) -> dict[str, Any]:
    totals, adoptions = await asyncio.gather(
        service.story_totals(upstreams=up, token=token),
        service.recent_adoptions(upstreams=up, token=token, limit=200),
    )
    approved = totals.get("approved", 0)
    today = now.astimezone(SHANGHAI).date()
    adopted_today = [
        a for a in adoptions if _moment(a["recorded_at"]).astimezone(SHANGHAI).date() == today
    ]
    return {"to_publish": approved, "adopted_today": len(adopted_today)}


async def _safely(part: Any) -> dict[str, Any]:
    """One service being down leaves its counts out rather than failing the page."""
    try:
        return await part
    except UpstreamError:
        return {}


async def waiting(principal: Principal, token: str, up: Upstreams, org: OrgTree) -> dict[str, Any]:
    """Every count the person's roles make relevant."""
    now = utcnow()
    parts = []
    if principal.has(*REVIEW_ROLES):
        parts.append(_queue(up, token, now))
    if principal.has(Role.CORRESPONDENT):
        parts.append(_stories(up, token))
    if principal.has(Role.OPINION_OFFICER):
        parts.append(_alerts(up, token, now))
    if is_city_office(principal, org):
        parts.append(_office(up, token, now))
    counts: dict[str, Any] = {}
    for found in await asyncio.gather(*(_safely(p) for p in parts)):
        counts.update(found)
    return counts
