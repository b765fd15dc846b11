"""Gauges of the alerts' state for Prometheus: which alerts nobody has acknowledged, and
which of them are past their deadline, by the level that owns them. Refreshed from the
database by the service's gauge loop (never on a scrape), so every pod reports the truth
and an alert at city level, which cannot escalate further, stays visible until someone
acknowledges it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from prometheus_client import Gauge

from services.sentiment.models import OwnerLevel
from shared.events import Severity
from shared.observability import precreate

OWNER_LEVELS: tuple[str, ...] = get_args(OwnerLevel)

ALERTS_UNACKNOWLEDGED = Gauge(
    "citydesk_sentiment_alerts_unacknowledged",
    "Alerts nobody has acknowledged yet, by severity and the level that owns them.",
    ["severity", "owner_level"],
)
ALERTS_OVERDUE = Gauge(
    "citydesk_sentiment_alerts_overdue",
    "Unacknowledged alerts past their deadline, by severity and the level that owns them.",
    ["severity", "owner_level"],
)
ALERTS_OVERDUE_SECONDS = Gauge(
    "citydesk_sentiment_alerts_overdue_seconds",
    "Seconds the longest-overdue unacknowledged alert of a level is past its deadline.",
    ["owner_level"],
)


def prime_alert_gauges() -> None:
    severities = [s.value for s in Severity]
    precreate(ALERTS_UNACKNOWLEDGED, severity=severities, owner_level=OWNER_LEVELS)
    precreate(ALERTS_OVERDUE, severity=severities, owner_level=OWNER_LEVELS)
    precreate(ALERTS_OVERDUE_SECONDS, owner_level=OWNER_LEVELS)


async def refresh_alert_gauges(db: Any, now: datetime | None = None) -> None:
    """Count the unacknowledged (``open``) alerts; every label set is written, zeros too."""
    now = now or datetime.now(UTC)
    rows = await db.alerts.aggregate(
        [
            {"$match": {"state": "open"}},
            {
                "$group": {
                    "_id": {"severity": "$severity", "owner_level": "$owner_level"},
                    "open": {"$sum": 1},
                    "overdue": {"$sum": {"$cond": [{"$lte": ["$deadline", now]}, 1, 0]}},
                    "earliest_deadline": {"$min": "$deadline"},
                }
            },
        ]
    )
    found = {(row["_id"]["severity"], row["_id"]["owner_level"]): row async for row in rows}
    longest: dict[str, float] = dict.fromkeys(OWNER_LEVELS, 0.0)
    for severity in Severity:
        for level in OWNER_LEVELS:
            row = found.get((severity.value, level))
            ALERTS_UNACKNOWLEDGED.labels(severity.value, level).set(row["open"] if row else 0)
            ALERTS_OVERDUE.labels(severity.value, level).set(row["overdue"] if row else 0)
            if row and row["overdue"]:
                deadline = row["earliest_deadline"]
                if deadline.tzinfo is None:
                    deadline = deadline.replace(tzinfo=UTC)
                longest[level] = max(longest[level], (now - deadline).total_seconds())
    for level, seconds in longest.items():
        ALERTS_OVERDUE_SECONDS.labels(level).set(seconds)
