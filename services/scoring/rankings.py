"""Rankings (排行榜, 通报, 评比), quota shortfalls, vetoes and the explanation of a score,
all read from the monthly projections and the ledger.

Order of a ranking (documented tie rule): total points, descending; then adoptions at
the highest level first (national, provincial, city, county counts, each descending);
then adoption rate, descending; then unit code, ascending. Every unit of the scope is
listed, also those without any event; units with zero submissions or a veto keep their
place in the order but get no award rank.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from services.scoring.ledger import COUNTERS, task_units
from services.scoring.models import Quota
from services.scoring.periods import Period, parse_period
from services.scoring.service import CAMPAIGN_ITEMS, LEDGER, UNIT_MONTHS, Db, RuleBook, rule_book
from shared.orgtree import OrgTree, Unit

Scope = Literal["schools", "counties"]
LEVEL_ORDER = ("national", "provincial", "city", "county")
SUMMED = ("points", *COUNTERS)


@dataclass
class Member:
    """A ranked unit: a school (its own figures) or a county (rolled up)."""

    unit: Unit
    months: dict[str, dict[str, float]]
    totals: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for figures in self.months.values():
            for name, value in figures.items():
                self.totals[name] = self.totals.get(name, 0) + value

    def total(self, name: str, months: list[str] | None = None) -> float:
        if months is None:
            return self.totals.get(name, 0)
        return sum(self.months.get(m, {}).get(name, 0) for m in months)


def scope_units(org: OrgTree, scope: Scope, county: str | None) -> list[Unit]:
    """The units a ranking lists."""
    if scope == "counties":
        return sorted(org.counties(), key=lambda u: u.code)
    return sorted(org.schools(county), key=lambda u: u.code)


async def load_members(*, db: Db, units: list[Unit], months: list[str]) -> list[Member]:
    """Monthly figures of ``units``; a county's are its own plus its schools'; the
    city's are everyone's."""
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
    projection = dict.fromkeys(("unit", "county", "period", *SUMMED), 1)
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
            for name in SUMMED:
                month[name] = month.get(name, 0) + doc.get(name, 0)
    return [Member(unit=u, months=dict(figures.get(u.code, {}))) for u in units]


def quota_lines(
    *, member: Member, period: Period, book: RuleBook, now: datetime
) -> list[dict[str, Any]]:
    """Each quota of the member's type inside ``period``: target, actual, shortfall and
    the deduction (only once the quota's own period has ended)."""
    lines = []
    for sub_kind in ("month", "quarter", "half", "year"):
        for sub in period.sub_periods(sub_kind):
            version = book.at(min(sub.end() - timedelta(microseconds=1), now))
            for quota in version.rules.quotas:
                if quota.period != sub_kind or not _applies(quota, member.unit):
                    continue
                actual = int(member.total(quota.measure, sub.months()))
                short = max(0, quota.target - actual)
                ended = sub.end() <= now
                lines.append(
                    {
                        "unit": member.unit.code,
                        "unit_name": member.unit.name,
                        "quota": quota.code,
                        "name": quota.name,
                        "period": sub.label,
                        "measure": quota.measure,
                        "target": quota.target,
                        "actual": actual,
                        "met": short == 0,
                        "shortfall": short,
                        "ended": ended,
                        "deduction": round(short * quota.deduction_per_missing, 2)
                        if ended
                        else 0.0,
                        "rule_version": version.version,
                    }
                )
    return lines


def _applies(quota: Quota, unit: Unit) -> bool:
    return unit.type in quota.unit_types and unit.area in quota.areas


async def vetoes(*, db: Db, units: list[str], period: Period) -> dict[str, dict[str, Any]]:
    """The first serious incident per unit in the period's year, up to the period's end."""
    cursor = (
        db[LEDGER]
        .find(
            {
                "kind": "serious_incident",
                "year": period.year,
                "unit": {"$in": units},
                "occurred_at": {"$lt": period.end()},
            }
        )
        .sort([("occurred_at", 1), ("_id", 1)])
    )
    found: dict[str, dict[str, Any]] = {}
    async for entry in cursor:
        if entry["unit"] in found:
            continue
        detail = entry["detail"]
        found[entry["unit"]] = {
            "incident_id": detail["incident_id"],
            "topic": detail["topic"],
            "severity": detail["severity"],
            "at": entry["occurred_at"].astimezone(UTC).isoformat(),
        }
    return found


def _row(
    member: Member, lines: list[dict[str, Any]], veto: dict[str, Any] | None
) -> dict[str, Any]:
    unit = member.unit
    submitted = int(member.total("submitted"))
    adopted = int(member.total("adopted"))
    deductions = round(sum(line["deduction"] for line in lines), 2)
    ledger_points = round(member.total("points"), 2)
    zero = submitted == 0
    return {
        "unit": unit.code,
        "name": unit.name,
        "type": unit.type,
        "county": unit.county,
        "points": round(ledger_points - deductions, 2),
        "ledger_points": ledger_points,
        "quota_deductions": deductions,
        **{name: int(member.total(name)) for name in COUNTERS},
        "adoption_rate": round(adopted / submitted, 4) if submitted else 0.0,
        "quota_short": sum(line["shortfall"] for line in lines),
        "zero_submissions": zero,
        "veto": veto,
        "eligible": not zero and veto is None,
    }


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        -row["points"],
        *(-row[f"adopted_{level}"] for level in LEVEL_ORDER),
        -row["adoption_rate"],
        row["unit"],
    )


async def ranking(
    *,
    db: Db,
    org: OrgTree,
    period: Period,
    scope: Scope,
    county: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ranking of ``scope`` for ``period`` with flags, quota lines and award ranks."""
    now = now or datetime.now(UTC)
    book = await rule_book(db=db)
    units = scope_units(org, scope, county)
    members = await load_members(db=db, units=units, months=period.months())
    found = await vetoes(db=db, units=[u.code for u in units], period=period)
    rows, shortfalls = [], []
    for member in members:
        lines = quota_lines(member=member, period=period, book=book, now=now)
        shortfalls += [line for line in lines if line["shortfall"]]
        rows.append(_row(member, lines, found.get(member.unit.code)))
    rows.sort(key=_order)
    award = 0
    for position, row in enumerate(rows, start=1):
        row["rank"] = position
        if row["eligible"]:
            award += 1
            row["award_rank"] = award
        else:
            row["award_rank"] = None
    return {
        "period": period.label,
        "scope": scope,
        "county": county,
        "tie_rule": "points desc; adoptions national, provincial, city, county desc; "
        "adoption rate desc; unit code asc",
        "rows": rows,
        "quota_shortfalls": shortfalls,
    }


async def incidents(*, db: Db, units: list[str], period: Period) -> list[dict[str, Any]]:
    """Negative opinion incidents of ``units`` first flagged in ``period``."""
    cursor = (
        db[LEDGER]
        .find(
            {
                "kind": {"$in": ["incident", "serious_incident"]},
                "unit": {"$in": units},
                "period": {"$in": period.months()},
            }
        )
        .sort([("occurred_at", 1), ("_id", 1)])
    )
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    async for entry in cursor:
        detail = entry["detail"]
        key = (entry["unit"], detail["incident_id"])
        row = rows.setdefault(
            key,
            {
                "incident_id": detail["incident_id"],
                "unit": entry["unit"],
                "county": entry["county"],
                "topic": detail["topic"],
                "severity": detail["severity"],
                "first_at": entry["occurred_at"].astimezone(UTC).isoformat(),
                "serious": False,
            },
        )
        if entry["kind"] == "serious_incident":
            row["serious"] = True
            row["severity"] = detail["severity"]
    return list(rows.values())


async def explain(
    *, db: Db, unit: Unit, period: Period, now: datetime | None = None
) -> dict[str, Any]:
    """The ledger entries and quota deductions that make up ``unit``'s score."""
    now = now or datetime.now(UTC)
    entries = (
        await db[LEDGER]
        .find({"unit": unit.code, "period": {"$in": period.months()}})
        .sort([("occurred_at", 1), ("_id", 1)])
        .to_list()
    )
    book = await rule_book(db=db)
    member = (await load_members(db=db, units=[unit], months=period.months()))[0]
    lines = quota_lines(member=member, period=period, book=book, now=now)
    ledger_points = round(sum(e["points"] for e in entries), 2)
    deductions = round(sum(line["deduction"] for line in lines), 2)
    return {
        "unit": unit.code,
        "name": unit.name,
        "period": period.label,
        "ledger_points": ledger_points,
        "quota_deductions": deductions,
        "points": round(ledger_points - deductions, 2),
        "entries": [_public_entry(e) for e in entries],
        "quotas": lines,
    }


async def summary(
    *, db: Db, unit: Unit, period: Period, now: datetime | None = None
) -> dict[str, Any]:
    """The projection of ``unit`` (rolled up for a county or the city) with its quotas."""
    now = now or datetime.now(UTC)
    book = await rule_book(db=db)
    member = (await load_members(db=db, units=[unit], months=period.months()))[0]
    lines = quota_lines(member=member, period=period, book=book, now=now)
    row = _row(member, lines, None)
    row.pop("veto")
    row.pop("eligible")
    return {"period": period.label, **row, "quotas": lines}


def _public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entry["_id"],
        "kind": entry["kind"],
        "period": entry["period"],
        "occurred_at": entry["occurred_at"].astimezone(UTC).isoformat(),
        "points": entry["points"],
        "reason": entry["reason"],
        "rule_version": entry["rule_version"],
        "source_event_id": entry["source_event_id"],
        "story_id": entry["story_id"],
        "counts": entry["counts"],
        "detail": {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in entry["detail"].items()
        },
    }


def parse_scope(scope: str) -> Scope:
    """``schools`` or ``counties`` (``county`` is accepted for the latter)."""
    if scope == "schools":
        return "schools"
    if scope in ("counties", "county"):
        return "counties"
    raise ValueError(f"unknown scope {scope!r}: use schools or counties")


async def campaign_progress(
    *, db: Db, org: OrgTree, campaign: dict[str, Any], now: datetime | None = None
) -> dict[str, Any]:
    """Per task and owner unit: delivered in time, late, shortfall and status."""
    now = now or datetime.now(UTC)
    start = parse_period(campaign["period"]).start()
    tasks, shortfalls = [], []
    for task in campaign["tasks"]:
        on_time: dict[str, int] = defaultdict(int)
        late: dict[str, int] = defaultdict(int)
        cursor = db[CAMPAIGN_ITEMS].find(
            {"campaign": campaign["_id"], "what": task["what"]},
            projection={"unit": 1, "occurred_at": 1},
        )
        async for item in cursor:
            if start <= item["occurred_at"] <= task["deadline"]:
                on_time[item["unit"]] += 1
            elif item["occurred_at"] > task["deadline"]:
                late[item["unit"]] += 1
        past_deadline = now > task["deadline"]
        rows = []
        for owner in sorted(org.units.values(), key=lambda u: u.code):
            if owner.type != task["owner_type"]:
                continue
            members = task_units(org, task, owner)
            delivered = sum(on_time[m] for m in members)
            short = max(0, task["count"] - delivered)
            status = "done" if short == 0 else ("short" if past_deadline else "in_progress")
            row = {
                "unit": owner.code,
                "name": owner.name,
                "county": owner.county,
                "target": task["count"],
                "delivered": delivered,
                "late": sum(late[m] for m in members),
                "shortfall": short,
                "status": status,
            }
            rows.append(row)
            if status == "short":
                shortfalls.append({"task": task["code"], **row})
        tasks.append(
            {
                "code": task["code"],
                "owner_type": task["owner_type"],
                "what": task["what"],
                "count": task["count"],
                "deadline": task["deadline"].astimezone(UTC).isoformat(),
                "past_deadline": past_deadline,
                "units": rows,
            }
        )
    return {
        "code": campaign["_id"],
        "name": campaign["name"],
        "period": campaign["period"],
        "tasks": tasks,
        "shortfalls": shortfalls,
    }
