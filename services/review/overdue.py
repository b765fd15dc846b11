"""Deadlines: open cases waiting past their level's deadline are flagged overdue, and
the case gauges are set from the database so a restarted pod reports the truth."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import Gauge

from services.review.models import CaseState
from services.review.runtime import Review
from services.review.service import CASES
from shared import events as ev
from shared.clock import utcnow

CASES_OPEN = Gauge("citydesk_review_cases_open", "Review cases waiting, by level.", ["level"])
CASES_OVERDUE = Gauge(
    "citydesk_review_cases_overdue", "Review cases waiting past their deadline.", ["level"]
)
QUEUE_OLDEST = Gauge(
    "citydesk_review_queue_oldest_seconds",
    "How long the oldest case at a level has been waiting.",
    ["level"],
)


async def flag_overdue_cases(*, runtime: Review) -> None:
    """Flag open cases waiting past their level's deadline (and unflag after a change)."""
    config = runtime.config
    now = utcnow()
    for level, hours in config.overdue_hours.items():
        cutoff = now - timedelta(hours=hours)
        base = {"state": CaseState.OPEN, "level": str(level)}
        await runtime.db[CASES].update_many(
            {**base, "overdue": False, "waiting_since": {"$lt": cutoff}},
            {"$set": {"overdue": True, "overdue_since": now}},
        )
        await runtime.db[CASES].update_many(
            {**base, "overdue": True, "waiting_since": {"$gte": cutoff}},
            {"$set": {"overdue": False}},
        )


async def refresh_gauges(*, runtime: Review) -> None:
    """Set the case gauges from the database."""
    rows = await runtime.db[CASES].aggregate(
        [
            {"$match": {"state": CaseState.OPEN}},
            {
                "$group": {
                    "_id": "$level",
                    "open": {"$sum": 1},
                    "overdue": {"$sum": {"$cond": ["$overdue", 1, 0]}},
                    "oldest": {"$min": "$waiting_since"},
                }
            },
        ]
    )
    by_level = {row["_id"]: row async for row in rows}
    now = utcnow()
    for level in ev.ReviewLevel:
        row = by_level.get(str(level), {"open": 0, "overdue": 0, "oldest": None})
        CASES_OPEN.labels(level).set(row["open"])
        CASES_OVERDUE.labels(level).set(row["overdue"])
        oldest = row["oldest"]
        QUEUE_OLDEST.labels(level).set((now - oldest).total_seconds() if oldest else 0)


async def watch_cases(*, runtime: Review) -> None:
    """One pass of the overdue check: flags, then gauges."""
    await flag_overdue_cases(runtime=runtime)
    await refresh_gauges(runtime=runtime)
