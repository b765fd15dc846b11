"""The task table (任务分解表) applied to a period: which quota lines apply to a unit,
their targets for the whole months the unit had, and the shortfalls and deductions.

A month still running, or before the go-live or the day the unit joined, has no line;
a quota of a quarter, half-year or year is checked once it has ended, its target in
proportion to the whole months inside it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import numpy as np

from services.scoring.models import Quota
from services.scoring.periods import Calendar, Period
from services.scoring.service import RuleBook
from shared.orgtree import Unit

if TYPE_CHECKING:
    from services.scoring.summaries import Layout, Row


class Counted(Protocol):
    """A unit's figures in a period as one row in the columns of a layout (see
    ``rankings.Member``)."""

    @property
    def unit(self) -> Unit: ...

    @property
    def values(self) -> Row: ...

    @property
    def layout(self) -> Layout: ...


class QuotaLine(TypedDict):
    unit: str
    unit_name: str
    quota: str
    name: str
    period: str
    months: list[str]
    measure: str
    target: int
    actual: int
    met: bool
    shortfall: int
    deduction: float
    rule_version: int


@dataclass(frozen=True)
class QuotaCheck:
    """The quotas of one ended sub-period of a ranked period, under its rule version."""

    period: Period
    label: str
    months: tuple[str, ...]
    rule_version: int
    quotas: list[Quota]
    # a quota as long as the ranked period counts the period's totals
    whole: bool
    _counted: dict[date | None, list[str]] = field(default_factory=dict, compare=False)
    _targets: dict[tuple[str, str, date | None], list[tuple[Quota, int]]] = field(
        default_factory=dict, compare=False
    )

    def counted(self, calendar: Calendar, joined: date | None) -> list[str]:
        """The months that count for a unit that joined on ``joined`` (cached per date:
        a ranking asks for every unit)."""
        if joined not in self._counted:
            self._counted[joined] = calendar.counted(list(self.months), joined)
        return self._counted[joined]

    def targets(self, calendar: Calendar, unit: Unit) -> list[tuple[Quota, int]]:
        """The quotas that apply to ``unit`` with their targets for its whole months
        (cached per kind of unit and joining date)."""
        key = (unit.type, unit.area, unit.joined)
        if key not in self._targets:
            counted = len(self.counted(calendar, unit.joined))
            self._targets[key] = [
                (quota, math.ceil(quota.target * counted / len(self.months)))
                for quota in self.quotas
                if counted and unit.type in quota.unit_types and unit.area in quota.areas
            ]
        return self._targets[key]


def quota_checks(*, period: Period, book: RuleBook, calendar: Calendar) -> list[QuotaCheck]:
    """Each sub-period of ``period`` that has ended, with the quotas of its length in the
    rule version in force at its end."""
    checks = []
    whole = len(period.months())
    for sub_kind in ("month", "quarter", "half", "year"):
        for sub in period.sub_periods(sub_kind):
            months = tuple(sub.months())
            if months[-1] > calendar.last_ended_month:
                continue
            version = book.at(sub.end() - timedelta(microseconds=1))
            quotas = [q for q in version.rules.quotas if q.period == sub_kind]
            if quotas:
                checks.append(
                    QuotaCheck(
                        sub, sub.label, months, version.version, quotas, len(months) == whole
                    )
                )
    return checks


# one quota of one sub-period for one kind of unit: the columns that count its measure,
# the target, the deduction per missing item and the line's fixed fields
_Step = tuple[list[int], int, float, dict[str, Any], int]


class QuotaTable:
    """The quota checks of a period under a calendar, applied to one unit after another.

    A ranking applies it to every unit: the steps are worked out once per kind of unit
    (type, area, joining date) and layout, and a unit's check is then a few additions
    on its row of figures."""

    def __init__(self, *, period: Period, book: RuleBook, calendar: Calendar) -> None:
        self.calendar = calendar
        self.checks = quota_checks(period=period, book=book, calendar=calendar)
        self._steps: dict[tuple[int, str, str, date | None], list[_Step]] = {}

    def _plan(self, unit: Unit, layout: Layout) -> list[_Step]:
        key = (id(layout), unit.type, unit.area, unit.joined)
        if key not in self._steps:
            steps: list[_Step] = []
            for check in self.checks:
                months = layout.months if check.whole else check.months
                for quota, target in check.targets(self.calendar, unit):
                    columns = layout.span(quota.measure, months)
                    if columns is None:
                        raise LookupError(f"{quota.measure} is not kept month by month")
                    fixed = {
                        "quota": quota.code,
                        "name": quota.name,
                        "period": check.label,
                        "months": check.counted(self.calendar, unit.joined),
                        "measure": quota.measure,
                        "target": target,
                    }
                    steps.append(
                        (columns, target, quota.deduction_per_missing, fixed, check.rule_version)
                    )
            self._steps[key] = steps
        return self._steps[key]

    def lines(self, member: Counted, *, shortfalls_only: bool = False) -> list[QuotaLine]:
        """Each quota of the member's kind whose sub-period holds whole months of the
        unit's time on the desk: target (in proportion to those months), actual,
        shortfall and deduction."""
        unit, values = member.unit, member.values
        lines: list[QuotaLine] = []
        for columns, target, per_missing, fixed, version in self._plan(unit, member.layout):
            if len(columns) == 1:
                actual = int(values[columns[0]])
            else:
                actual = int(sum(values[c] for c in columns))
            short = target - actual if target > actual else 0
            if shortfalls_only and not short:
                continue
            line: Any = {
                "unit": unit.code,
                "unit_name": unit.name,
                **fixed,
                "actual": actual,
                "met": short == 0,
                "shortfall": short,
                "deduction": round(short * per_missing, 2),
                "rule_version": version,
            }
            lines.append(line)
        return lines

    def totals(self, members: Sequence[Counted]) -> list[tuple[int, float]]:
        """Each member's shortfall and deduction summed over its quota lines, without
        the lines: what a ranking's rows show. Worked out a kind of unit at a time on the
        members' figures as one matrix (a city's year is 3,000 units × 15 quota checks;
        building each line as a mapping costs more than the rest of the ranking)."""
        kinds: dict[tuple[int, str, str, date | None], list[int]] = defaultdict(list)
        for position, member in enumerate(members):
            unit = member.unit
            kinds[(id(member.layout), unit.type, unit.area, unit.joined)].append(position)
        short = np.zeros(len(members), dtype=np.int64)
        deduction = np.zeros(len(members))
        for positions in kinds.values():
            first = members[positions[0]]
            steps = self._plan(first.unit, first.layout)
            if not steps:
                continue
            figures = np.array([members[p].values for p in positions], dtype=np.float64)
            for columns, target, per_missing, _, _ in steps:
                # int() of each column's sum, as ``lines`` counts a measure's actual
                actual = figures[:, columns].sum(axis=1).astype(np.int64)
                missing = np.maximum(target - actual, 0)
                short[positions] += missing
                # each line's deduction is rounded to cents before the lines are added
                deduction[positions] += np.round(missing * per_missing, 2)
        pairs = zip(short.tolist(), deduction.tolist(), strict=True)
        return [(int(missing), round(float(points), 2)) for missing, points in pairs]
