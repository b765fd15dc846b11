"""What the review tests share: a submitted story's event, every page of a list, and the
index an explained plan reads."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx

from shared import events as ev
from shared.orgtree import example_city

ORG = example_city()


def story_event(
    unit: str,
    *,
    story_id: str | None = None,
    version: int = 1,
    major: bool = False,
    title: str = "春季运动会圆满举行",
) -> ev.StorySubmittedEvent:
    path = ORG.path(unit)
    return ev.StorySubmittedEvent.build(
        ev.StorySubmitted(
            story_id=story_id or uuid.uuid4().hex, version=version, unit_path=path,
            title=f"{title} v{version}", body="第一段。\n第二段。", category="work_news",
            major=major, event_date=date.today(), submitted_at=ev.utcnow(),
            media_ids=["m-photo-1"], photo_count=1, author=f"writer-{unit}", late=True,
            late_days=20,
        ),
        producer="submission", county=path.county, unit=path.unit,
    )  # fmt: skip


async def every_page(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str] | None = None,
    limit: int = 200,
    **params: Any,
) -> list[dict[str, Any]]:
    """Every item of a paged list, following ``next_cursor`` to the last page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, headers=headers, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def index_of(plan: dict[str, Any]) -> str | None:
    """The index an explained plan reads, or None when it scans the collection."""
    if plan.get("stage") == "IXSCAN":
        return str(plan["indexName"])
    inner = plan.get("inputStage")
    return index_of(inner) if isinstance(inner, dict) else None
