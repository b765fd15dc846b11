"""Who sees what of the scoring: the rankings and the zero-submission list are what a
bureau publishes anyway (open to every unit unless configured otherwise); an incident's
details and a veto's cause are shown only in the caller's scope: a school its own, a
county its schools, the city everyone's."""

from __future__ import annotations

from typing import Any

from shared.auth import Principal, Role
from shared.orgtree import OrgTree
from shared.refusals import Refusal

# who may determine an incident serious and see the veto candidates: the city office
CITY_OFFICE_ROLES = (Role.OPINION_OFFICER, Role.LEADER, Role.ADMIN)


# the fields a reader of a veto expects, all empty: that it exists is published, not why
HIDDEN_VETO: dict[str, Any] = {"hidden": True, "topic": None, "severity": None, "at": None}


def in_scope_units(principal: Principal, org: OrgTree, units: list[str]) -> list[str]:
    """The units of ``units`` the principal answers for."""
    return [code for code in units if org.contains(principal.unit, code)]


def redact_ranking(ranking: dict[str, Any], principal: Principal, org: OrgTree) -> dict[str, Any]:
    """The ranking with each veto's cause kept only for units in the caller's scope (the
    veto itself, like the award place it costs, is published)."""
    for row in ranking["rows"]:
        if row["veto"] is not None and not org.contains(principal.unit, row["unit"]):
            row["veto"] = dict(HIDDEN_VETO)
    return ranking


def require_city_office(principal: Principal, org: OrgTree) -> None:
    """403 unless the caller is the city bureau's office or its opinion officer."""
    if principal.unit != org.city.code or not principal.has(*CITY_OFFICE_ROLES):
        raise Refusal(
            403,
            "city_office_only",
            "只有市教育局办公室或市级舆情管理员可以查看和认定一票否决",
            "veto candidates are for the city office and its opinion officer",
        )
