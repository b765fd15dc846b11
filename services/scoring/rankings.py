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
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from services.scoring.ledger import COUNTERS, task_units
from services.scoring.models import Quota
from services.scoring.periods import SHANGHAI, Calendar, Period, month_of, parse_period
from services.scoring.service import CAMPAIGN_ITEMS, LEDGER, UNIT_MONTHS, Db, RuleBook, rule_book
from services.scoring.summaries import MONTHLY_MEASURES, group_of, load_summaries, unit_key
from shared.orgtree import OrgTree, Unit

Scope = Literal["schools", "counties"]
LEVEL_ORDER = ("national", "provincial", "city", "county")
SUMMED = ("points", *COUNTERS)


@dataclass
class Member:
    """A ranked unit: a school (its own figures) or a county (rolled up)."""

    unit: Unit
    months: dict[str, dict[str, float]]
    totals: dict[str, float] | None = None
    # from a summary: measure -> month number ("01".."12") -> count, read as it is stored
    monthly: dict[str, dict[str, float]] | None = None

    def __post_init__(self) -> None:
        if self.totals is None:
            self.totals = {}
            for figures in self.months.values():
                for name, value in figures.items():
                    self.totals[name] = self.totals.get(name, 0) + value

    def total(self, name: str, months: list[str] | None = None) -> float:
        if months is None:
            assert self.totals is not None
            return self.totals.get(name, 0)
        if self.monthly is not None:
            counts = self.monthly.get(name)
            return sum(counts.get(m[5:], 0) for m in months) if counts else 0
        if len(months) == 1:
            return self.months.get(months[0], {}).get(name, 0)
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


@dataclass(frozen=True)
class QuotaCheck:
    """The quotas of one ended sub-period of a ranked period, under its rule version."""

    period: Period
    label: str
    months: list[str]
    rule_version: int
    quotas: list[Quota]
    _counted: dict[date | None, list[str]] = field(default_factory=dict, compare=False)

    _targets: dict[tuple[str, str, date | None], list[tuple[Quota, int]]] = field(
        default_factory=dict, compare=False
    )

    def counted(self, calendar: Calendar, joined: date | None) -> list[str]:
        """The months that count for a unit that joined on ``joined`` (cached per date:
        a ranking asks for every unit)."""
        if joined not in self._counted:
            self._counted[joined] = calendar.counted(self.months, joined)
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


def summaries_suffice(period: Period, book: RuleBook) -> bool:
    """Whether the period summaries hold all a ranking of ``period`` needs: every quota
    shorter than the period counts a measure they keep month by month."""
    length = {"month": 1, "quarter": 3, "half": 6, "year": 12}
    return all(
        quota.measure in MONTHLY_MEASURES
        for version in book.versions
        for quota in version.rules.quotas
        if length[quota.period] < length[period.kind]
    )


async def members_from_summaries(
    *,
    db: Db,
    org: OrgTree,
    period: Period,
    scope: Scope,
    county: str | None,
    units: list[Unit],
) -> list[Member]:
    """The ranked units' figures from the period summaries: a few documents, whatever
    the number of units and months."""
    if scope == "counties":
        groups = [u.code for u in units]
    elif county is not None:
        groups = [county]
    else:
        groups = sorted({group_of(u) for u in units})
    found = await load_summaries(db=db, period=period, groups=groups)
    first_month = period.months()[0]
    members = []
    for unit in units:
        summary = found.get(unit.code if scope == "counties" else group_of(unit))
        if summary is None:
            entry: dict[str, Any] = {}
        elif scope == "counties":
            entry = summary["total"]
        else:
            entry = summary["units"].get(unit_key(unit.code), {})
        if period.kind == "month":
            members.append(Member(unit=unit, months={first_month: entry}, totals=entry))
        else:
            members.append(Member(unit=unit, months={}, totals=entry, monthly=entry.get("m", {})))
    return members


def quota_checks(*, period: Period, book: RuleBook, calendar: Calendar) -> list[QuotaCheck]:
    """Each sub-period of ``period`` that has ended, with the quotas of its length in the
    rule version in force at its end."""
    checks = []
    for sub_kind in ("month", "quarter", "half", "year"):
        for sub in period.sub_periods(sub_kind):
            months = sub.months()
            if months[-1] > calendar.last_ended_month:
                continue
            version = book.at(sub.end() - timedelta(microseconds=1))
            quotas = [q for q in version.rules.quotas if q.period == sub_kind]
            if quotas:
                checks.append(QuotaCheck(sub, sub.label, months, version.version, quotas))
    return checks


def quota_lines(
    *,
    member: Member,
    period: Period,
    book: RuleBook,
    calendar: Calendar,
    checks: list[QuotaCheck] | None = None,
    shortfalls_only: bool = False,
) -> list[dict[str, Any]]:
    """Each quota of the member's type whose own period inside ``period`` has ended and
    holds whole months of the unit's time on the desk: target (in proportion to those
    months), actual, shortfall and deduction. A month still running, or before the
    go-live or the day the unit joined, has no line."""
    if checks is None:
        checks = quota_checks(period=period, book=book, calendar=calendar)
    unit = member.unit
    lines = []
    whole = len(period.months())
    for check in checks:
        # a quota as long as the ranked period counts the period's totals
        span = None if len(check.months) == whole else check.months
        for quota, target in check.targets(calendar, unit):
            actual = int(member.total(quota.measure, span))
            short = max(0, target - actual)
            if shortfalls_only and not short:
                continue
            lines.append(
                {
                    "unit": unit.code,
                    "unit_name": unit.name,
                    "quota": quota.code,
                    "name": quota.name,
                    "period": check.label,
                    "months": check.counted(calendar, unit.joined),
                    "measure": quota.measure,
                    "target": target,
                    "actual": actual,
                    "met": short == 0,
                    "shortfall": short,
                    "deduction": round(short * quota.deduction_per_missing, 2),
                    "rule_version": check.rule_version,
                }
            )
    return lines


async def calendar_for(
    *, db: Db, go_live: date | None = None, now: datetime | None = None
) -> Calendar:
    """The scoring calendar: the configured go-live, else the first day of the earliest
    month the ledger has an entry in (else of this month)."""
    now = now or datetime.now(UTC)
    if go_live is None:
        first = await db[UNIT_MONTHS].find_one({}, sort=[("period", 1)], projection={"period": 1})
        month = first["period"] if first else month_of(now)
        go_live = date(int(month[:4]), int(month[5:]), 1)
    return Calendar(go_live=go_live, now=now)


DETERMINATION_KINDS = ("determination", "determination_lifted")


async def standing_determinations(
    *, db: Db, units: list[str], year: int, before: datetime | None = None
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (unit, incident) of ``year`` (incidents that began before ``before``), the
    bureau's determination that stands: the last one, unless lifted after it."""
    # determinations are few: all of the year's, then the units asked for (a list of a
    # city's schools in the query would cost more than the entries themselves)
    wanted = set(units)
    query = {"kind": {"$in": list(DETERMINATION_KINDS)}, "year": year}
    cursor = db[LEDGER].find(query).sort([("occurred_at", 1), ("_id", 1)])
    standing: dict[tuple[str, str], dict[str, Any] | None] = {}
    async for entry in cursor:
        detail = entry["detail"]
        if entry["unit"] not in wanted:
            continue
        if before is not None and detail["incident_at"] >= before:
            continue
        key = (entry["unit"], detail["incident_id"])
        standing[key] = entry if entry["kind"] == "determination" else None
    return {key: entry for key, entry in standing.items() if entry is not None}


async def vetoes(*, db: Db, units: list[str], period: Period) -> dict[str, dict[str, Any]]:
    """Per unit, the first incident of the period's year (up to the period's end) that
    the bureau has determined to be a serious negative incident and not lifted since."""
    standing = await standing_determinations(
        db=db, units=units, year=period.year, before=period.end()
    )
    found: dict[str, dict[str, Any]] = {}
    for entry in sorted(standing.values(), key=lambda e: (e["detail"]["incident_at"], e["_id"])):
        if entry["unit"] not in found:
            found[entry["unit"]] = _veto(entry)
    return found


def _veto(entry: dict[str, Any]) -> dict[str, Any]:
    detail = entry["detail"]
    return {
        "incident_id": detail["incident_id"],
        "topic": detail["topic"],
        "severity": detail["severity"],
        "incident_at": _local(detail["incident_at"]),
        "at": _local(detail["incident_at"]),  # the incident's time, as readers had it before
        "decided_by": detail["decided_by"],
        "decided_by_name": detail["decided_by_name"],
        "decided_at": _local(entry["occurred_at"]),
        "reason": detail["reason"],
    }


def _local(moment: datetime) -> str:
    """An instant as people read it: Shanghai time with its offset."""
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _row(
    member: Member,
    lines: list[dict[str, Any]],
    veto: dict[str, Any] | None,
    active: bool,
) -> dict[str, Any]:
    unit = member.unit
    totals = member.totals or {}
    submitted = int(member.total("submitted"))
    adopted = int(member.total("adopted"))
    deductions = round(sum(line["deduction"] for line in lines), 2)
    ledger_points = round(member.total("points"), 2)
    zero = active and submitted == 0
    return {
        "unit": unit.code,
        "name": unit.name,
        "type": unit.type,
        "county": unit.county,
        "points": round(ledger_points - deductions, 2),
        "ledger_points": ledger_points,
        "quota_deductions": deductions,
        **{name: int(totals.get(name, 0)) for name in COUNTERS},
        "adoption_rate": round(adopted / submitted, 4) if submitted else 0.0,
        "quota_short": sum(line["shortfall"] for line in lines),
        "active": active,
        "zero_submissions": zero,
        "veto": veto,
        "eligible": active and not zero and veto is None,
    }


def _standing(row: dict[str, Any]) -> tuple[Any, ...]:
    """What the order compares; rows equal in all of it share a place (并列)."""
    return (
        -row["points"],
        *(-row[f"adopted_{level}"] for level in LEVEL_ORDER),
        -row["adoption_rate"],
    )


TIE_RULE = (
    "按总得分从高到低排列；得分相同时依次比较国家级、省级、市级、县级媒体采用数，再比较采用率；"
    "以上均相同的单位名次并列。报送信息为零或被认定一票否决的单位列出但不参加评奖排名。"
)


def assign_ranks(rows: list[dict[str, Any]]) -> bool:
    """Sort ``rows`` and give each its place and award place, equal rows the same one
    (1, 2, 2, 4); returns False, with no places at all, when every row is equal."""
    keyed = sorted(((_standing(row), row["unit"], row) for row in rows), key=lambda k: k[:2])
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
) -> dict[str, Any]:
    """The ranking of ``scope`` for ``period`` with flags, quota lines and award ranks
    (from the period summaries unless ``use_summaries`` is off: then from the months)."""
    calendar = calendar or await calendar_for(db=db, now=now)
    book = await rule_book(db=db)
    units = scope_units(org, scope, county)
    months = period.months()
    if use_summaries and summaries_suffice(period, book):
        members = await members_from_summaries(
            db=db, org=org, period=period, scope=scope, county=county, units=units
        )
    else:
        members = await load_members(db=db, units=units, months=months)
    found = await vetoes(db=db, units=[u.code for u in units], period=period)
    checks = quota_checks(period=period, book=book, calendar=calendar)
    rows, shortfalls = [], []
    active_by_joined: dict[date | None, bool] = {}
    for member in members:
        lines = quota_lines(
            member=member, period=period, book=book, calendar=calendar, checks=checks,
            shortfalls_only=True,
        )  # fmt: skip
        shortfalls += lines
        joined = member.unit.joined
        if joined not in active_by_joined:
            active_by_joined[joined] = calendar.active(months, joined)
        rows.append(_row(member, lines, found.get(member.unit.code), active_by_joined[joined]))
    ranked = assign_ranks(rows)
    return {
        "period": period.label,
        "scope": scope,
        "county": county,
        "go_live": calendar.go_live.isoformat(),
        "counted_months": calendar.counted(months),
        "ranked": ranked,
        "note": None if ranked else "本期各单位得分相同，不排名次。",
        "tie_rule": TIE_RULE,
        "rows": rows,
        "quota_shortfalls": shortfalls,
    }


async def veto_candidates(*, db: Db, units: list[str], period: Period) -> list[dict[str, Any]]:
    """Incidents whose alert reached the rules' serious severity in the period: the bureau
    may determine them serious (认定); until then they veto nothing."""
    query = {"kind": "veto_candidate", "unit": {"$in": units}, "period": {"$in": period.months()}}
    candidates = await db[LEDGER].find(query).sort([("occurred_at", 1), ("_id", 1)]).to_list()
    determined = await standing_determinations(db=db, units=units, year=period.year)
    return [
        {
            "incident_id": c["detail"]["incident_id"],
            "unit": c["unit"],
            "county": c["county"],
            "topic": c["detail"]["topic"],
            "severity": c["detail"]["severity"],
            "flagged_at": _local(c["occurred_at"]),
            "determined": (c["unit"], c["detail"]["incident_id"]) in determined,
        }
        for c in candidates
    ]


async def incidents(*, db: Db, units: list[str], period: Period) -> list[dict[str, Any]]:
    """Negative opinion incidents of ``units`` first flagged in ``period``, with whether
    each is a veto candidate and whether the bureau has determined it serious."""
    cursor = (
        db[LEDGER]
        .find(
            {
                "kind": {"$in": ["incident", "veto_candidate"]},
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
                "first_at": entry["occurred_at"],
                "candidate": False,
                "serious": False,
                "veto": None,
            },
        )
        if entry["kind"] == "veto_candidate":
            row["candidate"] = True
            row["severity"] = detail["severity"]
    determined = await standing_determinations(db=db, units=units, year=period.year)
    for key, row in rows.items():
        if key in determined:
            row["serious"], row["veto"] = True, _veto(determined[key])
    return list(rows.values())


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
    book = await rule_book(db=db)
    member = (await load_members(db=db, units=[unit], months=period.months()))[0]
    lines = quota_lines(member=member, period=period, book=book, calendar=calendar)
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
    book = await rule_book(db=db)
    member = (await load_members(db=db, units=[unit], months=period.months()))[0]
    lines = quota_lines(member=member, period=period, book=book, calendar=calendar)
    active = calendar.active(period.months(), unit.joined)
    row = _row(member, lines, None, active)
    row.pop("veto")
    row.pop("eligible")
    months = []
    for month in period.months():
        of_month = [line for line in lines if line["period"] == f"month:{month}"]
        ledger = round(member.total("points", [month]), 2)
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


def _public_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": entry["_id"],
        "kind": entry["kind"],
        "period": entry["period"],
        "occurred_at": _local(entry["occurred_at"]),
        "points": entry["points"],
        "reason": entry["reason"],
        "rule_version": entry["rule_version"],
        "source_event_id": entry["source_event_id"],
        "story_id": entry["story_id"],
        "counts": entry["counts"],
        "detail": {
            k: (_local(v) if isinstance(v, datetime) else v) for k, v in entry["detail"].items()
        },
    }


def parse_scope(scope: str) -> Scope:
    """``schools`` or ``counties`` (``county`` is accepted for the latter)."""
    if scope == "schools":
        return "schools"
    if scope in ("counties", "county"):
        return "counties"
    raise ValueError(f"无法识别的排行范围 {scope!r}：请用 schools（学校）或 counties（县区）")


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
