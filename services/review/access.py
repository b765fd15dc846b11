"""Who may act where: the role each level needs, the unit whose reviewers decide, the
city office, and the cases a principal's queue and scope hold."""

from __future__ import annotations

from typing import Any

from services.review.models import CaseState
from services.review.refused import forbidden
from shared import events as ev
from shared.auth import Principal, Role
from shared.orgtree import OrgTree

LEVEL_ROLE: dict[ev.ReviewLevel, Role] = {
    ev.ReviewLevel.SCHOOL: Role.REVIEWER_SCHOOL,
    ev.ReviewLevel.COUNTY: Role.REVIEWER_COUNTY,
    ev.ReviewLevel.CITY: Role.REVIEWER_CITY,
    ev.ReviewLevel.LEADER: Role.LEADER,
}
CITY_LEVELS = (ev.ReviewLevel.CITY, ev.ReviewLevel.LEADER)
LEVEL_NAME = {
    ev.ReviewLevel.SCHOOL: "学校初审",
    ev.ReviewLevel.COUNTY: "区县复审",
    ev.ReviewLevel.CITY: "市局终审",
    ev.ReviewLevel.LEADER: "领导审签",
}


def reviewing_unit(org: OrgTree, unit_path: dict[str, Any], level: ev.ReviewLevel) -> str:
    """The unit whose reviewers decide at ``level``: the school, its county, or the city."""
    if level == ev.ReviewLevel.SCHOOL:
        return str(unit_path["unit"])
    if level == ev.ReviewLevel.COUNTY:
        return str(unit_path["county"] or unit_path["unit"])
    return org.city.code


def authorise_decision(principal: Principal, case: dict[str, Any], org: OrgTree) -> Role:
    """The role the principal decides with at the case's level; 403 outside level or scope."""
    level = ev.ReviewLevel(case["level"])
    role = LEVEL_ROLE[level]
    if role not in principal.roles:
        raise forbidden(
            f"该稿件正处于{LEVEL_NAME[level]}环节，您没有这一环节的审核权限",
            f"deciding at the {level} level needs the role {role}",
        )
    unit = reviewing_unit(org, case["unit_path"], level)
    if principal.unit != unit:
        raise forbidden(
            f"该稿件正等待其他单位的{LEVEL_NAME[level]}，您无权处理",
            f"this case waits at the {level} level of {unit!r}; you act for {principal.unit!r}",
        )
    return role


def require_city_office(principal: Principal, org: OrgTree) -> Role:
    """403 unless the principal is a city reviewer (or administrator) of the city bureau."""
    if principal.unit != org.city.code or not principal.has(Role.REVIEWER_CITY, Role.ADMIN):
        raise forbidden(
            "此操作仅限市教育局终审人员或管理员",
            "this is for the city office: role reviewer_city or admin at the city",
        )
    return Role.REVIEWER_CITY if Role.REVIEWER_CITY in principal.roles else Role.ADMIN


def require_city_reviewer(principal: Principal, org: OrgTree) -> None:
    """403 unless the principal is a city reviewer: lifting a screening hold is theirs."""
    if principal.unit != org.city.code or Role.REVIEWER_CITY not in principal.roles:
        raise forbidden(
            "只有市教育局终审人员可以解除舆情暂缓",
            "only a city reviewer (reviewer_city at the city) can override a hold",
        )


def require_overdue_reader(principal: Principal) -> None:
    if not principal.has(*LEVEL_ROLE.values(), Role.ADMIN):
        raise forbidden(
            "查看超时稿件需要审核员、领导或管理员角色",
            "the overdue list needs a reviewer, leader or admin role",
        )


def queue_filters(principal: Principal, org: OrgTree) -> list[dict[str, Any]]:
    """The open cases a principal's roles let them decide, one filter of equalities per
    level: the queue reads each through its own index and merges them in order. One
    filter with ``$or`` of the levels (or a ``$in`` of them, once a cursor adds a range
    on the waiting time) is answered by reading every case on the embedded server."""
    clauses: list[dict[str, Any]] = []
    unit = org.get(principal.unit)
    if Role.REVIEWER_SCHOOL in principal.roles:
        clauses.append({"level": "school", "unit_path.unit": principal.unit})
    if Role.REVIEWER_COUNTY in principal.roles and unit is not None and unit.type == "county":
        clauses.append({"level": "county", "unit_path.county": principal.unit})
    if principal.unit == org.city.code:
        if Role.REVIEWER_CITY in principal.roles:
            clauses.append({"level": "city"})
        if Role.LEADER in principal.roles:
            clauses.append({"level": "leader"})
    if not clauses:
        raise forbidden(
            "审核队列需要审核员或领导角色", "the review queue needs a reviewer or leader role"
        )
    return [{"state": CaseState.OPEN, **clause} for clause in clauses]


def scope_filter(principal: Principal, org: OrgTree) -> dict[str, Any]:
    """Cases of units inside the principal's scope."""
    if principal.unit == org.city.code:
        return {}
    unit = org.unit(principal.unit)
    if unit.type == "county":
        return {"unit_path.county": unit.code}
    return {"unit_path.unit": unit.code}
