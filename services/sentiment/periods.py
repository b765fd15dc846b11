"""Briefing periods in the bureau's local time (Asia/Shanghai): a day ``2026-11-29``, an
ISO week ``2026-W48`` (Monday to Sunday) or a month ``2026-11``; their bounds in UTC, the
period before, the buckets of the trend and the Chinese names people read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from shared.clock import BUREAU_ZONE
from shared.refusals import Refusal

BriefingKind = Literal["daily", "weekly", "monthly"]
KIND_NAMES: dict[str, str] = {"daily": "日报", "weekly": "周报", "monthly": "月报"}
EXAMPLES = {"daily": "2026-11-29", "weekly": "2026-W48", "monthly": "2026-11"}
FIRST_YEAR, LAST_YEAR = 2000, 2999
_PATTERNS = {
    "daily": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    "weekly": re.compile(r"^(\d{4})-W(\d{2})$"),
    "monthly": re.compile(r"^(\d{4})-(\d{2})$"),
}


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BUREAU_ZONE)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def local_text(at: datetime, *, with_time: bool = True) -> str:
    """``2026年11月29日 14:05`` in the bureau's time."""
    at = at.astimezone(BUREAU_ZONE)
    text = f"{at.year}年{at.month}月{at.day}日"
    return f"{text} {at:%H:%M}" if with_time else text


@dataclass(frozen=True)
class Period:
    kind: BriefingKind
    first_day: date  # local

    @classmethod
    def parse(cls, kind: str, code: str) -> Period:
        """A period from its code; a malformed or impossible one is refused in Chinese."""
        if kind not in _PATTERNS:
            raise Refusal(
                404,
                "unknown_briefing_kind",
                "简报只有日报（daily）、周报（weekly）、月报（monthly）",
            )
        found = _PATTERNS[kind].match(code)
        try:
            if found is None:
                raise ValueError(code)
            numbers = [int(part) for part in found.groups()]
            if not FIRST_YEAR <= numbers[0] <= LAST_YEAR:  # the period before must exist too
                raise ValueError(code)
            if kind == "daily":
                first = date(numbers[0], numbers[1], numbers[2])
            elif kind == "weekly":
                first = date.fromisocalendar(numbers[0], numbers[1], 1)
            else:
                first = date(numbers[0], numbers[1], 1)
        except ValueError as exc:
            raise Refusal(
                422,
                "invalid_period",
                f"{KIND_NAMES[kind]}的期别应写作 {EXAMPLES[kind]} 这样的格式",
                f"invalid {kind} period {code!r}",
            ) from exc
        return cls(kind=kind, first_day=first)  # type: ignore[arg-type]  # checked above

    @classmethod
    def holding(cls, kind: BriefingKind, at: datetime) -> Period:
        """The period of ``kind`` that holds the instant ``at``."""
        day = at.astimezone(BUREAU_ZONE).date()
        if kind == "weekly":
            day -= timedelta(days=day.weekday())
        elif kind == "monthly":
            day = day.replace(day=1)
        return cls(kind=kind, first_day=day)

    @property
    def start(self) -> datetime:
        return _midnight(self.first_day)

    @property
    def end(self) -> datetime:
        """Where the next period starts: the bounds of one period never overlap."""
        return self.following().start

    @property
    def code(self) -> str:
        if self.kind == "daily":
            return self.first_day.isoformat()
        if self.kind == "weekly":
            year, week, _ = self.first_day.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{self.first_day:%Y-%m}"

    @property
    def label(self) -> str:
        """``2026年11月29日``, ``2026年第48周（11月23日至11月29日）``, ``2026年11月``."""
        day = self.first_day
        if self.kind == "daily":
            return f"{day.year}年{day.month}月{day.day}日"
        if self.kind == "weekly":
            year, week, _ = day.isocalendar()
            last = day + timedelta(days=6)
            return f"{year}年第{week}周（{day.month}月{day.day}日至{last.month}月{last.day}日）"
        return f"{day.year}年{day.month}月"

    def previous(self) -> Period:
        if self.kind == "daily":
            return Period(self.kind, self.first_day - timedelta(days=1))
        if self.kind == "weekly":
            return Period(self.kind, self.first_day - timedelta(days=7))
        before = self.first_day - timedelta(days=1)
        return Period(self.kind, before.replace(day=1))

    def following(self) -> Period:
        if self.kind == "daily":
            return Period(self.kind, self.first_day + timedelta(days=1))
        if self.kind == "weekly":
            return Period(self.kind, self.first_day + timedelta(days=7))
        return Period(self.kind, _next_month(self.first_day))

    def buckets(self) -> list[tuple[str, datetime, datetime]]:
        """The trend's steps: hours of a day, days of a week or a month (label, start, end)."""
        if self.kind == "daily":
            start = self.start
            return [
                (f"{hour:02d}时", start + timedelta(hours=hour), start + timedelta(hours=hour + 1))
                for hour in range(24)
            ]
        steps = []
        day, end = self.first_day, self.following().first_day
        while day < end:
            after = day + timedelta(days=1)
            steps.append((f"{day.month}月{day.day}日", _midnight(day), _midnight(after)))
            day = after
        return steps
