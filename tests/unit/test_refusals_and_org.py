"""The one refusal body and the unit tree, without a server: every 4xx has a stable code,
a Chinese message and an English detail, whatever raised it; the tree answers who is
above whom."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from shared.orgtree import example_city, parse_org
from shared.refusals import Refusal, install_refusals

CHINESE = re.compile(r"[\u4e00-\u9fff]")


class Story(BaseModel):
    title: str = Field(min_length=1, max_length=10)


def app() -> FastAPI:
    application = FastAPI()
    install_refusals(application)

    @application.get("/refused")
    async def refused() -> None:
        raise Refusal(409, "story_settled", "稿件已发布，不能再修改", "the story is published")

    @application.get("/plain/{status}")
    async def plain(status: int) -> None:
        raise HTTPException(status, "something went wrong in English")

    @application.get("/worded")
    async def worded() -> None:
        raise HTTPException(403, "只有市教育局可以查看")

    @application.post("/stories")
    async def create(story: Story) -> Story:
        return story

    return application


async def answer(method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kwargs)


async def test_a_refusal_answers_with_its_own_status_code_and_words() -> None:
    response = await answer("GET", "/refused")
    assert response.status_code == 409
    assert response.json() == {
        "code": "story_settled", "message": "稿件已发布，不能再修改",
        "detail": "the story is published",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "bad_request"), (401, "unauthenticated"), (403, "forbidden"), (404, "not_found"),
        (409, "conflict"), (413, "too_large"), (422, "invalid_request"),
        (429, "too_many_requests"), (418, "error"),
    ],
)  # fmt: skip
async def test_a_plain_http_error_gets_a_stable_code_and_a_chinese_message(
    status: int, code: str
) -> None:
    response = await answer("GET", f"/plain/{status}")
    body = response.json()
    assert response.status_code == status
    assert body["code"] == code and CHINESE.search(body["message"])
    assert body["detail"] == "something went wrong in English"


async def test_a_message_already_in_chinese_is_the_one_people_read() -> None:
    body = (await answer("GET", "/worded")).json()
    assert body == {"code": "forbidden", "message": "只有市教育局可以查看",
                    "detail": "只有市教育局可以查看"}  # fmt: skip


async def test_an_unknown_route_is_a_chinese_404() -> None:
    response = await answer("GET", "/nowhere")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


async def test_invalid_input_names_each_field() -> None:
    response = await answer("POST", "/stories", json={"title": "很长很长很长很长很长很长的标题"})
    body = response.json()
    assert response.status_code == 422 and body["code"] == "invalid_request"
    assert CHINESE.search(body["message"])
    assert [problem["field"] for problem in body["errors"]] == ["body.title"]
    not_json = await answer(
        "POST", "/stories", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.json()["code"] == "invalid_request"


# ---- the unit tree ---------------------------------------------------------------------------
ORG = example_city()


@pytest.mark.parametrize(
    ("code", "kind", "county", "ancestors"),
    [
        ("jc", "city", None, ["jc"]),
        ("dh", "county", "dh", ["dh", "jc"]),
        ("dh-dyxx", "school", "dh", ["dh-dyxx", "dh", "jc"]),
        ("jc-yz", "direct", None, ["jc-yz", "jc"]),  # run by the city: no county
    ],
)
def test_each_unit_knows_its_place(
    code: str, kind: str, county: str | None, ancestors: list[str]
) -> None:
    unit = ORG.unit(code)
    assert (unit.type, unit.county) == (kind, county)
    assert ORG.ancestors(code) == ancestors
    assert ORG.path(code).model_dump() == {"city": "jc", "county": county, "unit": code}


@pytest.mark.parametrize(
    ("scope", "target", "inside"),
    [
        ("jc", "dh-dyxx", True), ("dh", "dh-dyxx", True), ("dh-dyxx", "dh-dyxx", True),
        ("xs", "dh-dyxx", False), ("dh-dyxx", "dh", False), ("dh", "jc-yz", False),
        ("jc", "jc-yz", True), ("jc", "nowhere", False), ("nowhere", "jc", False),
    ],
)  # fmt: skip
def test_a_scope_contains_itself_and_what_lies_below_it(
    scope: str, target: str, inside: bool
) -> None:
    assert ORG.contains(scope, target) is inside


def test_schools_and_counties_are_listed_by_kind() -> None:
    assert {unit.type for unit in ORG.counties()} == {"county"}
    assert {unit.type for unit in ORG.schools()} == {"school", "direct"}
    assert {unit.county for unit in ORG.schools("dh")} == {"dh"}
    assert {unit.code for unit in ORG.below("dh")} == {"dh", *(u.code for u in ORG.schools("dh"))}


def test_a_tree_from_yaml_takes_areas_from_the_county_and_joining_dates_as_text() -> None:
    tree = parse_org(
        {
            "city": {"code": "c", "name": "某市教育局"},
            "counties": [
                {"code": "k", "name": "某县教育局", "area": "rural", "joined": "2026-03-01",
                 "units": [{"code": "k-1", "name": "某县第一小学"}]},
            ],
            "direct_units": [{"code": "c-1", "name": "某市第一中学", "joined": date(2026, 4, 1)}],
        }
    )  # fmt: skip
    school = tree.unit("k-1")
    assert (school.type, school.area, school.county, school.parent) == ("school", "rural", "k", "k")
    assert tree.unit("k").joined == date(2026, 3, 1)
    assert tree.unit("c-1").joined == date(2026, 4, 1) and tree.unit("c-1").county is None
    with pytest.raises(KeyError, match="unknown unit"):
        tree.unit("elsewhere")
