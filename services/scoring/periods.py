"""Scoring periods in Asia/Shanghai: months, quarters, half-years and years.

A period is written ``month:2026-11``, ``quarter:2026-Q4``, ``half:2026-H2`` or
``year:2026`` (the prefix may be left out: ``2026-11``, ``2026-Q4``, ``2026-H2``, ``2026``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property

from shared.clock import BUREAU_ZONE

_FORMS = (
    ("month", re.compile(r"(?:month:)?([0-9]{4})-([0-9]{2})")),
    ("quarter", re.compile(r"(?:quarter:)?([0-9]{4})-Q([1-4])")),
    ("half", re.compile(r"(?:half:)?([0-9]{4})-H([12])")),
    ("year", re.compile(r"(?:year:)?([0-9]{4})")),
)
_MONTHS_PER = {"month": 1, "quarter": 3, "half": 6, "year": 12}


class PeriodError(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    kind: str
    year: int
    index: int  # month 1-12, quarter 1-4, half 1-2, year 1

    @property
    def label(self) -> str:
        suffix = {
            "month": f"-{self.index:02d}",
            "quarter": f"-Q{self.index}",
            "half": f"-H{self.index}",
            "year": "",
        }[self.kind]
        return f"{self.kind}:{self.year}{suffix}"

    @property
    def first_month(self) -> int:
        return (self.index - 1) * _MONTHS_PER[self.kind] + 1

    def months(self) -> list[str]:
        """The month keys (``2026-11``) the period covers."""
        return list(self._months)

    @cached_property
    def _months(self) -> tuple[str, ...]:
        start = self.first_month
        return tuple(f"{self.year}-{m:02d}" for m in range(start, start + _MONTHS_PER[self.kind]))

    def start(self) -> datetime:
        return datetime(self.year, self.first_month, 1, tzinfo=BUREAU_ZONE).astimezone(UTC)

    def end(self) -> datetime:
        """The first instant after the period."""
        last = self.first_month + _MONTHS_PER[self.kind]
        year, month = (self.year + 1, 1) if last > 12 else (self.year, last)
        return datetime(year, month, 1, tzinfo=BUREAU_ZONE).astimezone(UTC)

    def sub_periods(self, kind: str) -> list[Period]:
        """The periods of ``kind`` that lie inside this one (none if ``kind`` is longer)."""
        size = _MONTHS_PER[kind]
        if size > _MONTHS_PER[self.kind]:
            return []
        first = self.first_month
        return [
            Period(kind, self.year, (m - 1) // size + 1)
            for m in range(first, first + _MONTHS_PER[self.kind], size)
        ]


def parse_period(text: str, *, years: tuple[int, int] | None = None) -> Period:
    """Parse a period label; raises :class:`PeriodError` with a Chinese message. With
    ``years`` (first, last) a period outside those years is refused too."""
    for kind, pattern in _FORMS:
        match = pattern.fullmatch(text.strip())
        if match:
            year = int(match.group(1))
            index = int(match.group(2)) if kind != "year" else 1
            if kind == "month" and not 1 <= index <= 12:
                break
            if years is not None and not years[0] <= year <= years[1]:
                raise PeriodError(
                    f"期间 {text!r} 超出可查询范围：只能查询 {years[0]} 年至 {years[1]} 年"
                )
            if not 1 <= year <= 9998:
                break
            return Period(kind, year, index)
    raise PeriodError(
        f"无法识别的期间 {text!r}：请写成 month:2026-11、quarter:2026-Q4、half:2026-H2 或 year:2026"
    )


def first_whole_month(day: date) -> str:
    """The first month counted from ``day`` on: its own month when it is the first of the
    month, else the next one (a month counts only when the unit had all of it)."""
    if day.day == 1:
        return f"{day.year}-{day.month:02d}"
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return f"{year}-{month:02d}"


def previous_month(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    year, number = (year - 1, 12) if number == 1 else (year, number - 1)
    return f"{year}-{number:02d}"


@dataclass(frozen=True)
class Calendar:
    """Which months count for scoring: from the go-live (or the day a unit joined) to the
    last month that has ended, in Shanghai time."""

    go_live: date
    now: datetime

    # cached: a ranking asks for each unit
    @cached_property
    def current_month(self) -> str:
        return month_of(self.now)

    @cached_property
    def last_ended_month(self) -> str:
        return previous_month(self.current_month)

    def first_month(self, joined: date | None = None) -> str:
        """The first whole month of a unit that joined on ``joined`` (if after go-live)."""
        start = max(self.go_live, joined) if joined else self.go_live
        return first_whole_month(start)

    def counted(self, months: list[str], joined: date | None = None) -> list[str]:
        """The months of ``months`` that have ended and lie after the unit's start."""
        first, last = self.first_month(joined), self.last_ended_month
        return [m for m in months if first <= m <= last]

    def active(self, months: list[str], joined: date | None = None) -> bool:
        """Whether the unit used the desk in any of ``months`` up to now."""
        start = month_of_day(max(self.go_live, joined) if joined else self.go_live)
        return any(start <= m <= self.current_month for m in months)

    @property
    def years(self) -> tuple[int, int]:
        """The years a period may name: from the go-live year to next year."""
        return (self.go_live.year, year_of(self.now) + 1)


def month_of_day(day: date) -> str:
    return f"{day.year}-{day.month:02d}"


def month_of(moment: datetime) -> str:
    """The Shanghai month (``2026-10``) an instant falls in."""
    local = moment.astimezone(BUREAU_ZONE)
    return f"{local.year}-{local.month:02d}"


def year_of(moment: datetime) -> int:
    return moment.astimezone(BUREAU_ZONE).year
