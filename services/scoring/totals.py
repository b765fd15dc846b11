"""A unit-month's figures: the counters every ledger entry adds to, and the projection
document of one unit and month."""

from __future__ import annotations

from typing import Any

from shared import events as ev
from shared.orgtree import OrgTree

OUTSIDE_LEVELS = (
    ev.OutletLevel.NATIONAL,
    ev.OutletLevel.PROVINCIAL,
    ev.OutletLevel.CITY,
    ev.OutletLevel.COUNTY,
)
CITY_OR_HIGHER = {ev.OutletLevel.NATIONAL, ev.OutletLevel.PROVINCIAL, ev.OutletLevel.CITY}

COUNTERS = (
    "submitted",
    "approved",
    "returned",
    "rejected",
    "published",
    "adopted",
    *(f"adopted_{level.value}" for level in OUTSIDE_LEVELS),
    "adopted_city_or_higher",
    "adopted_county_or_higher",
    "incidents",
    "serious_incidents",
    "campaign_tasks_completed",
)
# entry kinds whose history decides a story's next points
# the numbers of a unit-month, in the order a period summary stores them (points first)
FIGURES = ("points", "entries", *COUNTERS)


def empty_total() -> dict[str, Any]:
    return {"points": 0.0, "entries": 0, **dict.fromkeys(COUNTERS, 0)}


def add_to_total(total: dict[str, Any], entry: dict[str, Any]) -> None:
    """Count one ledger entry into a unit-month's figures."""
    total["points"] += entry["points"]
    total["entries"] += 1
    for name, value in entry["counts"].items():
        total[name] = total.get(name, 0) + value


def projection_document(
    org: OrgTree, unit_code: str, period: str, total: dict[str, Any]
) -> dict[str, Any]:
    """The unit-month projection of ``total`` (without its ``_id``)."""
    unit = org.unit(unit_code)
    return {
        "unit": unit_code,
        "county": unit.county,
        "type": unit.type,
        "area": unit.area,
        "period": period,
        "year": int(period[:4]),
        **total,
        "points": round(total["points"], 2),
    }
