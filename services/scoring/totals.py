"""A unit-month's figures: the counters every ledger entry adds to, and the projection
document of one unit and month."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from shared import events as ev
from shared.orgtree import OrgTree

if TYPE_CHECKING:  # the ledger's documents name the models, which import Measure from here
    from services.scoring.documents import EntryFigures

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
# What a quota or a ranking can count per unit and period: the counters above but for
# the review outcomes, the incidents and the campaign tasks.
Measure = Literal[
    "submitted",
    "approved",
    "published",
    "adopted",
    "adopted_national",
    "adopted_provincial",
    "adopted_city",
    "adopted_county",
    "adopted_city_or_higher",
    "adopted_county_or_higher",
]
# the numbers of a unit-month, in the order a period summary stores them (points first)
FIGURES = ("points", "entries", *COUNTERS)


def empty_total() -> dict[str, Any]:
    return {"points": 0.0, "entries": 0, **dict.fromkeys(COUNTERS, 0)}


def add_to_total(total: dict[str, Any], entry: EntryFigures) -> None:
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
