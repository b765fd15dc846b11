"""Vetoes (一票否决) and incidents: the bureau's standing determinations per unit and
incident, the candidates an alert's severity proposes, and the incidents of a period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.scoring.periods import Period
from services.scoring.service import LEDGER, Db
from shared.clock import local

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
    """A standing determination as a ranking shows it: the incident, who decided, when
    and why (times as people read them)."""
    detail = entry["detail"]
    began = local_text(detail["incident_at"])
    return {
        **{name: detail[name] for name in ("incident_id", "topic", "severity")},
        "incident_at": began,
        "at": began,  # the incident's time, as readers had it before
        **{name: detail[name] for name in ("decided_by", "decided_by_name")},
        "decided_at": local_text(entry["occurred_at"]),
        "reason": detail["reason"],
    }


def local_text(moment: datetime) -> str:
    """An instant as people read it: Shanghai time with its offset."""
    return local(moment).isoformat(timespec="seconds")


async def veto_candidates(*, db: Db, units: list[str], period: Period) -> list[dict[str, Any]]:
    """Incidents whose alert reached the rules' serious severity in the period: the bureau
    may determine them serious (认定); until then they veto nothing."""
    candidates = await _of_period(db=db, kinds=["veto_candidate"], units=units, period=period)
    determined = await standing_determinations(db=db, units=units, year=period.year)
    return [
        {
            "incident_id": c["detail"]["incident_id"],
            "unit": c["unit"],
            "county": c["county"],
            "topic": c["detail"]["topic"],
            "severity": c["detail"]["severity"],
            "flagged_at": local_text(c["occurred_at"]),
            "determined": (c["unit"], c["detail"]["incident_id"]) in determined,
        }
        for c in candidates
    ]


async def incidents(*, db: Db, units: list[str], period: Period) -> list[dict[str, Any]]:
    """Negative opinion incidents of ``units`` first flagged in ``period``, with whether
    each is a veto candidate and whether the bureau has determined it serious."""
    kinds = ["incident", "veto_candidate"]
    found = await _of_period(db=db, kinds=kinds, units=units, period=period)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in found:
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


async def _of_period(
    *, db: Db, kinds: list[str], units: list[str], period: Period
) -> list[dict[str, Any]]:
    """The ledger entries of ``kinds`` (incidents and veto candidates, whose year is that
    of their month) of ``units`` in ``period``, oldest first. Queried by kind and year
    (the index) and narrowed here: they are few, and a city's schools as an ``$in`` list
    cost the store more than the entries themselves."""
    wanted, months = set(units), set(period.months())
    query = {"kind": {"$in": kinds}, "year": period.year}
    cursor = db[LEDGER].find(query).sort([("occurred_at", 1), ("_id", 1)])
    return [e async for e in cursor if e["unit"] in wanted and e["period"] in months]
