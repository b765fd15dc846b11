"""Period summaries: per county (or the city's directly-run units) and period — month,
quarter, half-year, year — one document with every unit's figures and the group's total,
so that a ranking reads a handful of documents instead of units × months.

A summary is derived from the unit-month projections, never incremented: after a batch,
the units it touched are summed again from their unit-months and put into the summaries
of each period containing a touched month, under an optimistic revision check. Running it
again (a retry, a redelivered batch) writes the same figures. Quarter, half-year and year
summaries keep, beside each unit's totals, its month-by-month figures of the measures that
task tables count per month (``MONTHLY_MEASURES``), so monthly quotas inside a year are
checked without reading the months.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pymongo.errors import DuplicateKeyError

from services.scoring.periods import Period, parse_period
from services.scoring.service import SUMMARIES, UNIT_MONTHS, Db
from shared.orgtree import OrgTree, Unit

# the measures kept month by month inside longer summaries; a quota shorter than the
# period it is checked in, on another measure, makes a ranking read the months instead
MONTHLY_MEASURES = ("submitted", "adopted", "adopted_city_or_higher", "adopted_county_or_higher")
IDENTITY = frozenset({"_id", "unit", "county", "type", "area", "period", "year"})
DIRECT = "direct"  # the group of units the city runs directly (and the city itself)
MERGE_ATTEMPTS = 50
MERGE_CONCURRENCY = 8


def group_of(unit: Unit) -> str:
    return unit.county or DIRECT


def summary_id(period: Period, group: str) -> str:
    return f"{period.label}|{group}"


def periods_of_month(month: str) -> list[Period]:
    """The month, its quarter, half-year and year."""
    period = parse_period(f"month:{month}")
    return [period, *(p for p in _containing(period))]


def _containing(month: Period) -> list[Period]:
    number = month.index
    return [
        Period("quarter", month.year, (number - 1) // 3 + 1),
        Period("half", month.year, (number - 1) // 6 + 1),
        Period("year", month.year, 1),
    ]


def unit_key(code: str) -> str:
    """A unit code as a field name (a code may hold a dot, a field path may not)."""
    return code.replace(".", "\uff0e")


def unit_code(key: str) -> str:
    return key.replace("\uff0e", ".")


def figures_of(document: dict[str, Any]) -> dict[str, float]:
    """The numeric figures of a unit-month projection."""
    return {k: v for k, v in document.items() if k not in IDENTITY and isinstance(v, int | float)}


def unit_entry(period: Period, months: dict[str, dict[str, float]]) -> dict[str, Any]:
    """A unit's figures in ``period`` from its unit-month figures (month key -> figures)."""
    totals: dict[str, float] = defaultdict(float)
    by_month: dict[str, dict[str, float]] = defaultdict(dict)
    for month in period.months():
        figures = months.get(month)
        if not figures:
            continue
        for name, value in figures.items():
            totals[name] += value
        if period.kind != "month":
            for measure in MONTHLY_MEASURES:
                if figures.get(measure):
                    by_month[measure][month[5:]] = figures[measure]
    entry: dict[str, Any] = {k: _tidy(k, v) for k, v in totals.items() if v}
    if by_month:
        entry["m"] = dict(by_month)
    return entry


def _tidy(name: str, value: float) -> float:
    return round(value, 2) if name == "points" else int(value)


def group_total(units: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The sum of a group's unit entries (a county's own figures and its schools')."""
    totals: dict[str, float] = defaultdict(float)
    by_month: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for key in sorted(units):  # one order, so that live and rebuilt sums agree to the bit
        for name, value in units[key].items():
            if name == "m":
                for measure, months in value.items():
                    for month, count in months.items():
                        by_month[measure][month] += count
            else:
                totals[name] += value
    total: dict[str, Any] = {k: _tidy(k, v) for k, v in totals.items() if v}
    if by_month:
        total["m"] = {measure: dict(months) for measure, months in by_month.items()}
    return total


def summary_document(
    period: Period, group: str, units: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    return {
        "_id": summary_id(period, group),
        "period": period.label,
        "group": group,
        "units": units,
        "total": group_total(units),
    }


async def refresh_summaries(*, db: Db, org: OrgTree, keys: Iterable[tuple[str, str]]) -> None:
    """Put the current figures of the ``(unit, month)`` keys' units into the summaries of
    every period containing one of those months."""
    touched: dict[tuple[str, str], set[str]] = defaultdict(set)
    for code, month in keys:
        group = group_of(org.unit(code))
        for period in periods_of_month(month):
            touched[(period.label, group)].add(code)
    pending = sorted(touched.items())
    # the consumers of one process take turns (they would only void each other's
    # revisions); the documents of one refresh are written a few at a time
    async with _process_lock():
        for start in range(0, len(pending), MERGE_CONCURRENCY):
            await asyncio.gather(
                *(
                    _merge(db=db, period=parse_period(label), group=group, codes=sorted(codes))
                    for (label, group), codes in pending[start : start + MERGE_CONCURRENCY]
                )
            )


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _process_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    if loop not in _LOCKS:
        _LOCKS[loop] = asyncio.Lock()
    return _LOCKS[loop]


async def _merge(*, db: Db, period: Period, group: str, codes: list[str]) -> None:
    """Replace the entries of ``codes`` in a summary with their figures summed from the
    unit-months. The unit-months are read after the summary's revision and the write
    holds only if that revision is still current, so a writer that read older unit-months
    than another cannot overwrite the newer figures: it reads again."""
    identifier = summary_id(period, group)
    for attempt in range(MERGE_ATTEMPTS):
        current = await db[SUMMARIES].find_one({"_id": identifier})
        query = {"unit": {"$in": codes}, "period": {"$in": period.months()}}
        months: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        async for document in db[UNIT_MONTHS].find(query):
            months[document["unit"]][document["period"]] = figures_of(document)
        fresh = {unit_key(code): unit_entry(period, months.get(code, {})) for code in codes}
        revision = current["rev"] if current else 0
        units = {**(current["units"] if current else {}), **fresh}
        document = {**summary_document(period, group, units), "rev": revision + 1}
        if current is None:
            try:
                await db[SUMMARIES].insert_one(document)
            except DuplicateKeyError:
                continue
            return
        done = await db[SUMMARIES].replace_one({"_id": identifier, "rev": revision}, document)
        if done.matched_count == 1:
            return
        # another replica wrote it in between: read again after a short, random pause
        await asyncio.sleep(random.uniform(0, 0.05 * (attempt + 1)))
    raise RuntimeError(f"summary {identifier} kept changing; the batch will be retried")


def build_summaries(org: OrgTree, unit_months: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every summary from a complete set of unit-month projections (the rebuild)."""
    months: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    periods: dict[tuple[str, str], set[str]] = defaultdict(set)
    for document in unit_months:
        months[document["unit"]][document["period"]] = figures_of(document)
        group = group_of(org.unit(document["unit"]))
        for period in periods_of_month(document["period"]):
            periods[(period.label, group)].add(document["unit"])
    summaries = []
    for (label, group), codes in sorted(periods.items()):
        period = parse_period(label)
        units = {unit_key(code): unit_entry(period, months[code]) for code in sorted(codes)}
        summaries.append({**summary_document(period, group, units), "rev": 1})
    return summaries


async def load_summaries(*, db: Db, period: Period, groups: list[str]) -> dict[str, dict[str, Any]]:
    """The summaries of ``groups`` for ``period`` (a group without any figure is absent)."""
    ids = [summary_id(period, group) for group in groups]
    documents = await db[SUMMARIES].find({"_id": {"$in": ids}}).to_list()
    return {document["group"]: document for document in documents}
