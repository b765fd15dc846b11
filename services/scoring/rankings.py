"""Rankings (排行榜, 通报, 评比): every unit of a scope with its points, counters, quota
shortfalls, veto and place, read from the period summaries.

Order of a ranking (documented tie rule): total points, descending; then adoptions at
the highest level first (national, provincial, city, county counts, each descending);
then adoption rate, descending; then unit code, ascending. Every unit of the scope is
listed, also those without any event; units with zero submissions or a veto keep their
place in the order but get no award place.

A ranking reads one summary document per county (and one for the city's directly-run
units) whatever the period, and one query for the year's determinations; the rest is
arithmetic on each unit's row of figures (see ``summaries``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, Literal

from services.scoring.periods import Calendar, Period, parse_period
from services.scoring.quotas import QuotaLine, QuotaTable
from services.scoring.service import UNIT_MONTHS, Db, calendar_for, rule_book
from services.scoring.summaries import Layout, Row, as_floats, group_of, layout_of, load_tables
from services.scoring.totals import COUNTERS, FIGURES
from services.scoring.vetoes import vetoes
from shared.orgtree import OrgTree, Unit

Scope = Literal["schools", "counties"]
LEVEL_ORDER = ("national", "provincial", "city", "county")
# where the counters sit in a row (the figures come first in every layout)
_COUNTERS_AT = slice(FIGURES.index(COUNTERS[0]), FIGURES.index(COUNTERS[-1]) + 1)


@dataclass(slots=True)
class Member:
    """A ranked unit: a school (its own figures) or a county (rolled up), as one row of
    figures in the columns of ``layout``."""

    unit: Unit
    values: Row
    layout: Layout

    def total(self, name: str) -> float:
        at = self.layout.index.get(name)
        return float(self.values[at]) if at is not None else 0.0

    def over(self, name: str, months: tuple[str, ...]) -> float:
        """``name`` added up over ``months`` of the period."""
        columns = self.layout.span(name, months)
        if columns is None:
            raise LookupError(f"{name} is not kept month by month in {self.layout.period.label}")
        values = self.values
        return float(sum(values[c] for c in columns))


def scope_units(org: OrgTree, scope: Scope, county: str | None) -> list[Unit]:
    """The units a ranking lists."""
    if scope == "counties":
        return sorted(org.counties(), key=lambda u: u.code)
    return sorted(org.schools(county), key=lambda u: u.code)


def _sum_rows(rows: list[Row], width: int) -> list[float]:
    """The column sums of ``rows`` (in their order, so every reader adds alike)."""
    if not rows:
        return [0.0] * width
    total = [sum(column) for column in zip(*map(as_floats, rows), strict=True)]
    total[0] = round(total[0], 2)
    return total


@cache
def full_layout(label: str) -> Layout:
    """Every figure month by month: what a unit's own view reads from its months."""
    return Layout(parse_period(label), FIGURES)


async def load_members(*, db: Db, units: list[Unit], period: Period) -> list[Member]:
    """The figures of ``units`` summed from their unit-months (every figure kept month by
    month); a county's are its own plus its schools'; the city's are everyone's."""
    codes = {u.code for u in units}
    counties = {u.code for u in units if u.type == "county"}
    city = next((u.code for u in units if u.type == "city"), None)
    # one equality query per month: the store answers those from its indexes quickly
    narrow: dict[str, Any] = {}
    home = {u.county for u in units}
    if city is None and len(home) == 1 and None not in home:
        narrow = {"county": home.pop()}
    elif city is None and len(codes) == 1:
        narrow = {"unit": next(iter(codes))}
    projection = dict.fromkeys(("unit", "county", "period", *FIGURES), 1)
    months = period.months()
    figures: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    batches = await asyncio.gather(
        *(
            db[UNIT_MONTHS].find({"period": month, **narrow}, projection=projection).to_list()
            for month in months
        )
    )
    for doc in (doc for batch in batches for doc in batch):
        targets = [doc["unit"]] if doc["unit"] in codes else []
        if doc.get("county") in counties and doc["county"] != doc["unit"]:
            targets.append(doc["county"])
        if city is not None and doc["unit"] != city:
            targets.append(city)
        for target in targets:
            month = figures[target][doc["period"]]
            for name in FIGURES:
                month[name] = month.get(name, 0) + doc.get(name, 0)
    layout = full_layout(period.label)
    return [Member(u, layout.row(figures.get(u.code, {})), layout) for u in units]


async def members_from_summaries(
    *, db: Db, org: OrgTree, period: Period, scope: Scope, units: list[Unit]
) -> list[Member]:
    """The ranked units' figures from the period summaries: a few documents, whatever
    the number of units and months."""
    groups = sorted({u.code if scope == "counties" else group_of(u) for u in units})
    tables = await load_tables(db=db, org=org, period=period, groups=groups)
    layout = layout_of(period.label)
    empty = [0.0] * layout.width
    members = []
    for unit in units:
        if scope == "counties":
            rows = tables.get(unit.code, {})
            values: Row = _sum_rows([rows[c] for c in sorted(rows)], layout.width)
        else:
            values = tables.get(group_of(unit), {}).get(unit.code, empty)
        members.append(Member(unit, values, layout))
    return members


def row_of(
    member: Member, short: tuple[int, float], veto: dict[str, Any] | None, active: bool
) -> dict[str, Any]:
    """A unit's line of the ranking: its figures, quota shortfall and deduction, flags."""
    unit = member.unit
    head = as_floats(member.values[: _COUNTERS_AT.stop])
    counters = dict(zip(COUNTERS, map(int, head[_COUNTERS_AT]), strict=True))
    submitted, adopted = counters["submitted"], counters["adopted"]
    shortfall, deductions = short
    ledger_points = round(head[0], 2)
    zero = active and submitted == 0
    return {
        "unit": unit.code,
        "name": unit.name,
        "type": unit.type,
        "county": unit.county,
        "points": round(ledger_points - deductions, 2),
        "ledger_points": ledger_points,
        "quota_deductions": deductions,
        **counters,
        "adoption_rate": round(adopted / submitted, 4) if submitted else 0.0,
        "quota_short": shortfall,
        "active": active,
        "zero_submissions": zero,
        "veto": veto,
        "eligible": active and not zero and veto is None,
    }


def short_of(lines: Sequence[QuotaLine]) -> tuple[int, float]:
    """The shortfall and deduction of a unit's quota lines (as ``QuotaTable.totals``)."""
    if not lines:
        return 0, 0.0
    return sum(line["shortfall"] for line in lines), round(
        sum(line["deduction"] for line in lines), 2
    )


_ADOPTED_BY_LEVEL = tuple(f"adopted_{level}" for level in LEVEL_ORDER)


def _standing(row: dict[str, Any]) -> tuple[Any, ...]:
    """What the order compares; rows equal in all of it share a place (并列)."""
    national, provincial, city, county = (row[name] for name in _ADOPTED_BY_LEVEL)
    return (-row["points"], -national, -provincial, -city, -county, -row["adoption_rate"])


TIE_RULE = (
    "按总得分从高到低排列；得分相同时依次比较国家级、省级、市级、县级媒体采用数，再比较采用率；"
    "以上均相同的单位名次并列。报送信息为零或被认定一票否决的单位列出但不参加评奖排名。"
)


def _first_two(keyed: tuple[Any, ...]) -> tuple[Any, ...]:
    return keyed[:2]


def assign_ranks(rows: list[dict[str, Any]]) -> bool:
    """Sort ``rows`` and give each its place and award place, equal rows the same one
    (1, 2, 2, 4); returns False, with no places at all, when every row is equal."""
    keyed = sorted(((_standing(row), row["unit"], row) for row in rows), key=_first_two)
    rows[:] = [row for _, _, row in keyed]
    if not keyed or keyed[0][0] == keyed[-1][0]:
        for row in rows:
            row["rank"] = row["award_rank"] = None
        return False
    previous: tuple[Any, ...] | None = None
    award_previous: tuple[Any, ...] | None = None
    rank = award = eligible_seen = 0
    for position, (standing, _, row) in enumerate(keyed, start=1):
        if standing != previous:
            rank, previous = position, standing
        row["rank"] = rank
        if row["eligible"]:
            eligible_seen += 1
            if standing != award_previous:
                award, award_previous = eligible_seen, standing
            row["award_rank"] = award
        else:
            row["award_rank"] = None
    return True


async def ranking(
    *,
    db: Db,
    org: OrgTree,
    period: Period,
    scope: Scope,
    county: str | None = None,
    calendar: Calendar | None = None,
    now: datetime | None = None,
    use_summaries: bool = True,
    shortfall_lines: bool = True,
) -> dict[str, Any]:
    """The ranking of ``scope`` for ``period`` with flags, quota shortfalls and award
    ranks (from the period summaries unless ``use_summaries`` is off: then from the
    months). With ``shortfall_lines`` it also lists every quota line short of its target
    (``quota_shortfalls``: the 任务缺口 sheet; tens of thousands for a city's year)."""
    calendar = calendar or await calendar_for(db=db, now=now)
    units = scope_units(org, scope, county)
    months = period.months()
    if use_summaries:
        loading = members_from_summaries(db=db, org=org, period=period, scope=scope, units=units)
    else:
        loading = load_members(db=db, units=units, period=period)
    members, book, found = await asyncio.gather(
        loading, rule_book(db=db), vetoes(db=db, units=[u.code for u in units], period=period)
    )
    quotas = QuotaTable(period=period, book=book, calendar=calendar)
    rows = []
    active_by_joined: dict[date | None, bool] = {}
    for member, short in zip(members, quotas.totals(members), strict=True):
        joined = member.unit.joined
        if joined not in active_by_joined:
            active_by_joined[joined] = calendar.active(months, joined)
        rows.append(row_of(member, short, found.get(member.unit.code), active_by_joined[joined]))
    ranked = assign_ranks(rows)
    answer: dict[str, Any] = {
        "period": period.label,
        "scope": scope,
        "county": county,
        "go_live": calendar.go_live.isoformat(),
        "counted_months": calendar.counted(months),
        "ranked": ranked,
        "note": None if ranked else "本期各单位得分相同，不排名次。",
        "tie_rule": TIE_RULE,
        "rows": rows,
    }
    if shortfall_lines:
        answer["quota_shortfalls"] = [
            line for member in members for line in quotas.lines(member, shortfalls_only=True)
        ]
    return answer


def parse_scope(scope: str) -> Scope:
    """``schools`` or ``counties`` (``county`` is accepted for the latter)."""
    if scope == "schools":
        return "schools"
    if scope in ("counties", "county"):
        return "counties"
    raise ValueError(f"无法识别的排行范围 {scope!r}：请用 schools（学校）或 counties（县区）")
