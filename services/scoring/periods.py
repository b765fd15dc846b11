"""Scoring periods in Asia/Shanghai: months, quarters, half-years and years.

A period is written ``month:2026-11``, ``quarter:2026-Q4``, ``half:2026-H2`` or
``year:2026`` (the prefix may be left out: ``2026-11``, ``2026-Q4``, ``2026-H2``, ``2026``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

_FORMS = (
    ("month", re.compile(r"^(?:month:)?(\d{4})-(\d{2})$")),
    ("quarter", re.compile(r"^(?:quarter:)?(\d{4})-Q([1-4])$")),
    ("half", re.compile(r"^(?:half:)?(\d{4})-H([12])$")),
    ("year", re.compile(r"^(?:year:)?(\d{4})$")),
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
        start = self.first_month
        return [f"{self.year}-{m:02d}" for m in range(start, start + _MONTHS_PER[self.kind])]

    def start(self) -> datetime:
        return datetime(self.year, self.first_month, 1, tzinfo=SHANGHAI).astimezone(UTC)

    def end(self) -> datetime:
        """The first instant after the period."""
        last = self.first_month + _MONTHS_PER[self.kind]
        year, month = (self.year + 1, 1) if last > 12 else (self.year, last)
        return datetime(year, month, 1, tzinfo=SHANGHAI).astimezone(UTC)

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


def parse_period(text: str) -> Period:
    """Parse a period label; raises :class:`PeriodError` with a readable message."""
    for kind, pattern in _FORMS:
        match = pattern.match(text.strip())
        if match:
            year = int(match.group(1))
            index = int(match.group(2)) if kind != "year" else 1
            if kind == "month" and not 1 <= index <= 12:
                break
            return Period(kind, year, index)
    raise PeriodError(
        f"unknown period {text!r}: use month:2026-11, quarter:2026-Q4, half:2026-H2 or year:2026"
    )


def month_of(moment: datetime) -> str:
    """The Shanghai month (``2026-10``) an instant falls in."""
    local = moment.astimezone(SHANGHAI)
    return f"{local.year}-{local.month:02d}"


def year_of(moment: datetime) -> int:
    return moment.astimezone(SHANGHAI).year
