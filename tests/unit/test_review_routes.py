"""Review routes as tables, without a server: the levels each kind of unit's story passes
through, who decides at each level, and what the correspondent is shown next — which
must be the route's own next level, however the route was configured (submission once
guessed it from a table of its own, and showed a directly-run unit's story at the
county)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from services.review import access, cases, decisions
from services.review.audit import Actor
from services.review.models import ReviewConfig
from services.submission.service import projections as submission
from shared import events as ev
from shared.auth import Principal, Role
from shared.kafka import PermanentError
from shared.orgtree import example_city
from shared.refusals import Refusal

ORG = example_city()
R = ev.ReviewLevel
SHIPPED = ReviewConfig.model_validate(
    yaml.safe_load((Path(cases.__file__).parent / "config.yaml").read_text(encoding="utf-8"))
)
# a unit of each type in the example city
UNIT_OF_TYPE = {"school": "dh-dyxx", "direct": "jc-yz", "county": "dh", "city": "jc"}


@pytest.mark.parametrize(
    ("unit_type", "major", "route"),
    [
        ("school", False, [R.SCHOOL, R.COUNTY, R.CITY]),
        ("school", True, [R.SCHOOL, R.COUNTY, R.CITY, R.LEADER]),
        ("direct", False, [R.SCHOOL, R.CITY]),  # the city runs it: no county
        ("direct", True, [R.SCHOOL, R.CITY, R.LEADER]),
        ("county", False, [R.COUNTY, R.CITY]),
        ("city", False, [R.CITY]),
        ("city", True, [R.CITY, R.LEADER]),
    ],
)
def test_each_kind_of_unit_has_its_route(unit_type: str, major: bool, route: list[R]) -> None:
    assert cases.route_for(SHIPPED, unit_type, major) == route
    assert ORG.unit(UNIT_OF_TYPE[unit_type]).type == unit_type


def test_an_administrators_route_replaces_the_shipped_one() -> None:
    config = SHIPPED.model_copy(update={"routes": {**SHIPPED.routes, "school": [R.SCHOOL, R.CITY]}})
    assert cases.route_for(config, "school", False) == [R.SCHOOL, R.CITY]
    assert cases.route_for(config, "school", True) == [R.SCHOOL, R.CITY, R.LEADER]


@pytest.mark.parametrize(
    "routes",
    [
        {"school": [R.SCHOOL, R.COUNTY]},  # must end at the city
        {"school": [R.SCHOOL, R.CITY, R.CITY]},  # no level twice
        {"school": []},
    ],
)
def test_a_route_that_does_not_end_once_at_the_city_is_refused(routes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="route of 'school'"):
        ReviewConfig.model_validate({**SHIPPED.model_dump(), "routes": routes})


def test_a_unit_type_without_a_route_cannot_open_a_case() -> None:
    config = SHIPPED.model_copy(update={"routes": {"city": [R.CITY]}})
    with pytest.raises(PermanentError, match="no review route"):
        cases.route_for(config, "school", False)


@pytest.mark.parametrize(
    ("unit", "level", "reviewer"),
    [
        ("dh-dyxx", R.SCHOOL, "dh-dyxx"),
        ("dh-dyxx", R.COUNTY, "dh"),
        ("dh-dyxx", R.CITY, "jc"),
        ("dh-dyxx", R.LEADER, "jc"),
        ("jc-yz", R.SCHOOL, "jc-yz"),
        ("jc-yz", R.CITY, "jc"),
        ("dh", R.COUNTY, "dh"),
    ],
)
def test_each_level_is_decided_by_its_own_unit(unit: str, level: R, reviewer: str) -> None:
    path = ORG.path(unit).model_dump()
    assert access.reviewing_unit(ORG, path, level) == reviewer
    role = access.LEVEL_ROLE[level]
    case = {"level": level.value, "unit_path": path}
    person = Principal(sub="p", name="某人", unit=reviewer, roles=frozenset({role}))
    assert access.authorise_decision(person, case, ORG) == role
    elsewhere = "xs" if reviewer != "xs" else "dh"
    outsider = Principal(sub="o", name="外人", unit=elsewhere, roles=frozenset({role}))
    with pytest.raises(Refusal) as refused:
        access.authorise_decision(outsider, case, ORG)
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    assert "无权处理" in refused.value.message
    wrong_role = Principal(
        sub="w", name="通讯员", unit=reviewer, roles=frozenset({Role.CORRESPONDENT})
    )
    with pytest.raises(Refusal, match="needs the role") as refused:
        access.authorise_decision(wrong_role, case, ORG)
    assert "没有这一环节的审核权限" in refused.value.message


# ---- what the correspondent is shown after each approval on the way ----------------------
def case_at(unit: str, route: list[R], step: int) -> dict[str, Any]:
    """A case as review's ``open_case`` stores it, waiting at ``route[step]``."""
    return {
        "_id": "c-1", "story_id": "s-1", "version": 1, "unit_path": ORG.path(unit).model_dump(),
        "route": [level.value for level in route], "step": step, "level": route[step].value,
        "story": {"category": "校园动态", "campaign": None}, "correlation_id": None,
    }  # fmt: skip


async def shown_after_approval(
    monkeypatch: pytest.MonkeyPatch, unit: str, route: list[R], step: int
) -> dict[str, Any]:
    """Approve the case at ``route[step]`` as review announces it, and return the status
    submission then stores for the correspondent (the story write itself is captured:
    what is stored is the point here, not MongoDB)."""
    event = decisions.reviewed_event(
        case_at(unit, route, step), level=route[step], decision=ev.Decision.APPROVED,
        final=step + 1 >= len(route), actor=Actor("r", "审核人", "reviewer", "jc"),
        comment=None, at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
    )  # fmt: skip
    stored: dict[str, Any] = {}

    async def capture(**write: Any) -> None:
        stored.update(write["status_change"])

    monkeypatch.setattr(submission, "_apply_to_story", capture)
    # the runtime only reaches the captured write, so an empty one does
    await submission.record_review(runtime=SimpleNamespace(), event=event)  # type: ignore[arg-type]
    return stored


ADMIN_SCHOOL_ROUTE = [R.SCHOOL, R.CITY]


@pytest.mark.parametrize(
    ("unit", "route", "step"),
    [
        ("dh-dyxx", SHIPPED.routes["school"], 0),
        ("dh-dyxx", SHIPPED.routes["school"], 1),
        ("dh-dyxx", [*SHIPPED.routes["school"], R.LEADER], 2),
        ("dh", SHIPPED.routes["county"], 0),
        ("jc-yz", [*SHIPPED.routes["direct"], R.LEADER], 1),
        ("jc-yz", [*SHIPPED.routes["direct"], R.LEADER], 0),
        ("dh-dyxx", ADMIN_SCHOOL_ROUTE, 0),  # an administrator's route
    ],
)  # fmt: skip
async def test_after_each_approval_the_story_shows_the_next_level_of_its_own_route(
    monkeypatch: pytest.MonkeyPatch, unit: str, route: list[R], step: int
) -> None:
    status = await shown_after_approval(monkeypatch, unit, route, step)
    assert status["status"] == "in_review"
    assert status["review_level"] == route[step + 1].value


async def test_a_directly_run_units_story_goes_from_the_school_to_the_city(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The route of a unit the city runs directly is school -> city: after the school's
    approval the correspondent must see the city next, never the county, which does not
    review it."""
    route = cases.route_for(SHIPPED, ORG.unit("jc-yz").type, False)
    assert route == [R.SCHOOL, R.CITY]
    status = await shown_after_approval(monkeypatch, "jc-yz", route, 0)
    assert status == {"status": "in_review", "review_level": "city", "status_comment": None}


async def test_the_last_approval_shows_the_story_approved(monkeypatch: pytest.MonkeyPatch) -> None:
    for unit, route in (("dh-dyxx", SHIPPED.routes["school"]), ("jc-yz", SHIPPED.routes["direct"])):
        status = await shown_after_approval(monkeypatch, unit, route, len(route) - 1)
        assert status == {"status": "approved", "review_level": None, "status_comment": None}
