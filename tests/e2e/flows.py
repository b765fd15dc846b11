"""Steps people take, as HTTP calls against running services."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from PIL import Image

from citydesk.processes import ServiceProcesses
from shared.auth import Role
from tests.support import auth, eventually, every_page

SHANGHAI = ZoneInfo("Asia/Shanghai")
LEVEL_REVIEWERS = {
    "school": Role.REVIEWER_SCHOOL,
    "county": Role.REVIEWER_COUNTY,
    "city": Role.REVIEWER_CITY,
    "leader": Role.LEADER,
}


def today() -> date:
    return datetime.now(SHANGHAI).date()


def this_month() -> str:
    return f"month:{today():%Y-%m}"


def photo(seed: int) -> bytes:
    image = Image.new("RGB", (320, 240), (seed % 256, (seed * 7) % 256, (seed * 13) % 256))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


async def upload_photo(
    http: httpx.AsyncClient, city: ServiceProcesses, unit: str, seed: int
) -> str:
    response = await http.post(
        f"{city.url('media')}/media",
        headers=auth(unit, Role.CORRESPONDENT),
        data={"unit": unit},
        files={"file": (f"p{seed}.jpg", photo(seed), "image/jpeg")},
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


async def submit_story(
    http: httpx.AsyncClient,
    city: ServiceProcesses,
    *,
    unit: str,
    title: str,
    body: str,
    media_ids: list[str] | None = None,
    category: str = "工作动态",
    event_date: date | None = None,
) -> str:
    story = {
        "unit": unit, "title": title, "body": body, "category": category,
        "event_date": (event_date or today()).isoformat(), "media_ids": media_ids or [],
    }  # fmt: skip

    async def create() -> httpx.Response | None:
        response = await http.post(
            f"{city.url('submission')}/stories", headers=auth(unit, Role.CORRESPONDENT), json=story
        )
        # new media reach the submission service through media.stored, a moment later
        return None if "not yet known" in response.text else response

    draft = await eventually(create, what="the draft accepted")
    assert draft.status_code == 201, draft.text
    story_id = str(draft.json()["id"])
    submitted = await http.post(
        f"{city.url('submission')}/stories/{story_id}/submit",
        headers=auth(unit, Role.CORRESPONDENT),
    )
    assert submitted.status_code == 200, submitted.text
    return story_id


async def case_at(
    http: httpx.AsyncClient, city: ServiceProcesses, *, story_id: str, reviewer_unit: str,
    level: str, timeout: float = 60,
) -> dict[str, Any]:  # fmt: skip
    """Wait until the story's case stands in this reviewer's queue at ``level``."""

    async def find() -> dict[str, Any] | None:
        queue = await every_page(
            http, f"{city.url('review')}/queue", headers=auth(reviewer_unit, LEVEL_REVIEWERS[level])
        )
        for case in queue:
            if case["story_id"] == story_id and case["level"] == level:
                return dict(case)
        return None

    return await eventually(find, timeout=timeout, what=f"{story_id} at the {level} level")


async def decide(
    http: httpx.AsyncClient, city: ServiceProcesses, case: dict[str, Any], *, reviewer_unit: str,
    decision: str = "approve", comment: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"version": case["version"], "decision": decision}
    if comment:
        body["comment" if decision == "return" else "reason"] = comment
    response = await http.post(
        f"{city.url('review')}/cases/{case['case_id']}/decisions",
        headers=auth(reviewer_unit, LEVEL_REVIEWERS[case["level"]]),
        json=body,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def approve_through_every_level(
    http: httpx.AsyncClient, city: ServiceProcesses, *, story_id: str, school: str, county: str
) -> None:
    for level, unit in (("school", school), ("county", county), ("city", "jc")):
        case = await case_at(http, city, story_id=story_id, reviewer_unit=unit, level=level)
        await decide(http, city, case, reviewer_unit=unit)


async def ledger(
    http: httpx.AsyncClient, city: ServiceProcesses, unit: str, period: str | None = None
) -> dict[str, Any]:
    response = await http.get(
        f"{city.url('scoring')}/units/{unit}/ledger",
        headers=auth("jc", Role.ADMIN),
        params={"period": period or this_month()},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def ranking(
    http: httpx.AsyncClient, city: ServiceProcesses, *, period: str, scope: str,
    county: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    params = {"period": period, "scope": scope}
    if county:
        params["county"] = county
    response = await http.get(
        f"{city.url('scoring')}/rankings", headers=auth("jc", Role.ADMIN), params=params
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def row_of(table: dict[str, Any], unit: str) -> dict[str, Any]:
    return next(row for row in table["rows"] if row["unit"] == unit)


def days_ago(days: int) -> date:
    return today() - timedelta(days=days)
