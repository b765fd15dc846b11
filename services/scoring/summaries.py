"""Period summaries: per county (or the city's directly-run units) and period — month,
quarter, half-year, year — one document holding every unit's figures as a table, so that
a ranking reads a handful of documents instead of units × months.

**Why a packed table.** The store decodes, matches and re-encodes every BSON element it
returns, in Python; a city-wide yearly ranking read as one document per unit (3,000
documents) or as nested sub-documents per unit (tens of thousands of elements) cost it
100-300 ms before the ranking did anything. The figures of a summary are therefore one
binary field: ``figures`` is a little-endian float64 matrix, one row per code of
``units`` (sorted), one column per name of ``columns``. The columns are the unit-month
figures (points, entries and the counters) and, in a quarter, half-year or year, the
monthly count of every quota measure (``submitted@11`` is November's submissions), so a
monthly quota inside a year is checked from the year's document alone.

A summary is derived from the unit-month projections, never incremented: after a batch,
the touched units' rows are summed again from their unit-months and replaced in the
summary of each period containing a touched month, under an optimistic revision check.
Running it again (a retry, a redelivered batch) writes the same bytes; the rebuild builds
the same documents from its in-memory unit-months.
"""

from __future__ import annotations

import asyncio
import random
import sys
import weakref
from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any, TypedDict, get_args

import numpy as np
from bson import Binary
from numpy.typing import NDArray
from pymongo.errors import DuplicateKeyError

from services.scoring.periods import Period, parse_period
from services.scoring.service import SUMMARIES, UNIT_MONTHS, Db
from services.scoring.totals import FIGURES, Measure
from shared.orgtree import OrgTree, Unit

# every measure a quota can count, kept month by month inside longer periods
MONTHLY_MEASURES: tuple[str, ...] = get_args(Measure)
DIRECT = "direct"  # the group of units the city runs directly (and the city itself)
MERGE_ATTEMPTS = 50
MERGE_CONCURRENCY = 8
# a unit's figures in the columns of a layout: a list when summed from its months, a row
# of the stored matrix when read from a summary
Row = Sequence[float] | NDArray[np.float64]


class SummaryDocument(TypedDict):
    _id: str
    period: str
    group: str
    rev: int
    columns: list[str]
    units: list[str]
    figures: bytes


def group_of(unit: Unit) -> str:
    return unit.county or DIRECT


def summary_id(period: Period, group: str) -> str:
    return f"{period.label}|{group}"


def periods_of_month(month: str) -> list[Period]:
    """The month, its quarter, half-year and year."""
    period = parse_period(f"month:{month}")
    number = period.index
    return [
        period,
        Period("quarter", period.year, (number - 1) // 3 + 1),
        Period("half", period.year, (number - 1) // 6 + 1),
        Period("year", period.year, 1),
    ]


class Layout:
    """The columns of a period's figures: the totals, then each monthly measure per month
    (none for a month, whose totals are its month)."""

    def __init__(self, period: Period, monthly: Sequence[str] = MONTHLY_MEASURES) -> None:
        self.period = period
        self.months = tuple(period.months())
        per_month = () if period.kind == "month" else tuple(monthly)
        self.columns: tuple[str, ...] = (
            *FIGURES,
            *(f"{measure}@{month[5:]}" for measure in per_month for month in self.months),
        )
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.width = len(self.columns)
        self._spans: dict[tuple[str, tuple[str, ...]], list[int] | None] = {}

    def row(self, months: dict[str, dict[str, float]]) -> list[float]:
        """A unit's row from its unit-month figures (month key -> figures)."""
        values = [0.0] * self.width
        for month in self.months:
            figures = months.get(month)
            if not figures:
                continue
            for name, value in figures.items():
                at = self.index.get(name)
                if at is not None:
                    values[at] += value
                if len(self.months) > 1:
                    at = self.index.get(f"{name}@{month[5:]}")
                    if at is not None:
                        values[at] += value
        values[0] = round(values[0], 2)  # points, as a unit-month stores them
        return values

    def span(self, name: str, months: tuple[str, ...]) -> list[int] | None:
        """The columns that add up ``name`` over ``months`` (None: not kept per month)."""
        key = (name, months)
        if key not in self._spans:
            if months == self.months:
                found: list[int] | None = [self.index[name]] if name in self.index else []
            else:
                columns = [self.index.get(f"{name}@{m[5:]}") for m in months]
                found = None if None in columns else [c for c in columns if c is not None]
            self._spans[key] = found
        return self._spans[key]


@cache
def layout_of(label: str) -> Layout:
    return Layout(parse_period(label))


def pack(rows: Iterable[Row]) -> bytes:
    table = array("d")
    for row in rows:
        table.extend(as_floats(row))
    if sys.byteorder == "big":
        table.byteswap()
    return table.tobytes()


def unpack(blob: bytes, width: int) -> NDArray[np.float64]:
    """The table as a matrix, one row per unit: read in place, so a ranking's quota check
    takes the rows as they are (a city's year is 3,000 rows of some 200 columns)."""
    return np.frombuffer(blob, dtype="<f8").reshape(-1, width)


def as_floats(row: Row) -> list[float]:
    """A row as plain numbers (what an answer or a sum in reading order takes)."""
    return row.tolist() if isinstance(row, np.ndarray) else list(row)


def summary_document(
    period: Period, group: str, rows: Mapping[str, Row], *, rev: int
) -> SummaryDocument:
    layout = layout_of(period.label)
    codes = sorted(rows)
    return {
        "_id": summary_id(period, group),
        "period": period.label,
        "group": group,
        "rev": rev,
        "columns": list(layout.columns),
        "units": codes,
        "figures": Binary(pack(rows[code] for code in codes)),
    }


def rows_of(document: dict[str, Any] | None) -> dict[str, Row] | None:
    """The rows of a stored summary by unit code; None when it was written with other
    columns (an older layout: its units are summed again from the unit-months)."""
    if document is None:
        return {}
    layout = layout_of(document["period"])
    if tuple(document.get("columns", ())) != layout.columns:
        return None
    return dict(zip(document["units"], unpack(document["figures"], layout.width), strict=True))


def figures_of(document: dict[str, Any]) -> dict[str, float]:
    """The figures of a unit-month projection."""
    return {name: document[name] for name in FIGURES if document.get(name)}


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
                    _merge(db=db, org=org, period=parse_period(label), group=group, codes=codes)
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


async def _unit_rows(*, db: Db, period: Period, codes: Iterable[str]) -> dict[str, list[float]]:
    """The rows of ``codes`` summed from their unit-months (units without any are left out)."""
    query = {"unit": {"$in": sorted(codes)}, "period": {"$in": period.months()}}
    months: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    async for document in db[UNIT_MONTHS].find(query):
        months[document["unit"]][document["period"]] = figures_of(document)
    layout = layout_of(period.label)
    return {code: layout.row(of_unit) for code, of_unit in months.items()}


async def _merge(*, db: Db, org: OrgTree, period: Period, group: str, codes: set[str]) -> None:
    """Replace the rows of ``codes`` in a summary with their figures summed from the
    unit-months. The unit-months are read after the summary's revision and the write
    holds only if that revision is still current, so a writer that read older unit-months
    than another cannot overwrite the newer figures: it reads again."""
    identifier = summary_id(period, group)
    for attempt in range(MERGE_ATTEMPTS):
        current = await db[SUMMARIES].find_one({"_id": identifier})
        rows = rows_of(current)
        wanted = set(codes)
        if rows is None:  # an older layout: every unit of the group again
            rows, wanted = {}, {u.code for u in org.units.values() if group_of(u) == group}
        rows.update(await _unit_rows(db=db, period=period, codes=wanted))
        revision = current["rev"] if current else 0
        document = summary_document(period, group, rows, rev=revision + 1)
        if current is None:
            try:
                await db[SUMMARIES].insert_one(dict(document))
            except DuplicateKeyError:
                continue
            return
        replace = {"_id": identifier, "rev": revision}
        if (await db[SUMMARIES].replace_one(replace, dict(document))).matched_count == 1:
            return
        # another replica wrote it in between: read again after a short, random pause
        await asyncio.sleep(random.uniform(0, 0.05 * (attempt + 1)))
    raise RuntimeError(f"summary {identifier} kept changing; the batch will be retried")


def build_summaries(org: OrgTree, unit_months: Iterable[dict[str, Any]]) -> list[SummaryDocument]:
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
        layout = layout_of(label)
        rows = {code: layout.row(months[code]) for code in codes}
        summaries.append(summary_document(layout.period, group, rows, rev=1))
    return summaries


async def load_tables(
    *, db: Db, org: OrgTree, period: Period, groups: list[str]
) -> dict[str, dict[str, Row]]:
    """The rows of ``groups`` for ``period`` by group and unit (a group without any figure
    is absent); one query, by ``_id``."""
    ids = [summary_id(period, group) for group in groups]
    found: dict[str, dict[str, Row]] = {}
    async for document in db[SUMMARIES].find({"_id": {"$in": ids}}):
        group = document["group"]
        rows = rows_of(document)
        if rows is None:  # an older layout, until the group's next batch rewrites it
            codes = [u.code for u in org.units.values() if group_of(u) == group]
            rows = dict(await _unit_rows(db=db, period=period, codes=codes))
        found[group] = rows
    return found
