"""Time, once: UTC for storage and comparison, the bureau's zone for what people read
and for calendar periods (a month ends at midnight in Shanghai, not in Greenwich).

Pure logic that depends on "now" takes a :data:`Clock` so tests can inject one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

BUREAU_ZONE = ZoneInfo("Asia/Shanghai")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


def local(moment: datetime) -> datetime:
    """``moment`` on the bureau's wall clock (a naive value is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(BUREAU_ZONE)


def local_now() -> datetime:
    return utcnow().astimezone(BUREAU_ZONE)


def fixed(moment: datetime) -> Clock:
    """A clock that always reads ``moment`` (tests and replays)."""
    return lambda: moment
