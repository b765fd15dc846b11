"""A unit's score explained: its ledger entries and quota deductions in a period, and
its summary month by month (rolled up for a county and the city)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.scoring.periods import Calendar, Period
from services.scoring.quotas import QuotaTable
from services.scoring.rankings import Member, load_members, row_of, short_of
from services.scoring.service import LEDGER, Db, calendar_for, rule_book
from services.scoring.vetoes import local_text
from shared.orgtree import Unit


async def explain(
    *, db: Db, unit: Unit, period: Period, calendar: Calendar | None = None
) -> dict[str, Any]:
    """The ledger entries and quota deductions that make up ``unit``'s score."""
    calendar = calendar or await calendar_for(db=db)
    entries = (
        await db[LEDGER]
        .find({"unit": unit.code, "period": {"$in": period.months()}})
        .sort([("occurred_at", 1), ("_id", 1)])
        .to_list()
    )
    member = await _member(db=db, unit=unit, period=period)
    quotas = QuotaTable(period=period, book=await rule_book(db=db), calendar=calendar)
    lines = quotas.lines(member)
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
    *, db: Db, unit: Unit, period: Period, calendar: Calendar | None = None
) -> dict[str, Any]:
    """The projection of ``unit`` (rolled up for a county or the city) with its quotas and
    each month's points and deductions, so that a quarter or a year reads as the sum of
    its months minus the deductions of its longer quotas."""
    calendar = calendar or await calendar_for(db=db)
    member = await _member(db=db, unit=unit, period=period)
    quotas = QuotaTable(period=period, book=await rule_book(db=db), calendar=calendar)
    lines = quotas.lines(member)
    active = calendar.active(period.months(), unit.joined)
    row = row_of(member, short_of(lines), None, active)
    row.pop("veto")
    row.pop("eligible")
    months = []
    for month in period.months():
        of_month = [line for line in lines if line["period"] == f"month:{month}"]
        ledger = round(member.over("points", (month,)), 2)
        deducted = round(sum(line["deduction"] for line in of_month), 2)
        months.append(
            {
                "month": month,
                "counted": month in calendar.counted([month], unit.joined),
                "ledger_points": ledger,
                "quota_deductions": deducted,
                "points": round(ledger - deducted, 2),
            }
        )
    longer = round(sum(ln["deduction"] for ln in lines if not ln["period"].startswith("month")), 2)
    return {
        "period": period.label,
        **row,
        "months": months,
        "longer_quota_deductions": longer,
        "quotas": lines,
    }


async def _member(*, db: Db, unit: Unit, period: Period) -> Member:
    """The unit's figures read from its months (every figure kept month by month)."""
    return (await load_members(db=db, units=[unit], period=period))[0]


def _public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entry["_id"],
        "kind": entry["kind"],
        "period": entry["period"],
        "occurred_at": local_text(entry["occurred_at"]),
        "points": entry["points"],
        "reason": entry["reason"],
        "rule_version": entry["rule_version"],
        "source_event_id": entry["source_event_id"],
        "story_id": entry["story_id"],
        "counts": entry["counts"],
        "detail": {
            k: (local_text(v) if isinstance(v, datetime) else v) for k, v in entry["detail"].items()
        },
    }
