"""The story list: newest change first (newest submission first within a submission
period), a page at a time by keyset windows, each filter served by an index, and a total
read from the maintained counters instead of counted on every page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING

from services.submission import search
from services.submission.models import StoryStatus
from services.submission.service.counts import total
from services.submission.service.stories import STORIES, shanghai_day_start
from shared.auth import Principal
from shared.paging import PageQuery
from shared.runtime import ServiceRuntime
from shared.windows import FIRST_WINDOW, FLOOR, windowed_page

Flag = Literal["late", "possible_copy"]
WHOLE_HISTORY = timedelta(days=365 * 50)
SUMMARY_PROJECTION = {"history": 0, "content_hashes": 0, search.FIELD: 0}

# one equality field beside the scope: each is the prefix of an index ending in the sort
FILTER_FIELDS = {
    "status": "status",
    "category": "draft.category",
    "campaign": "draft.campaign",
    "level": "review_level",
    "late": "flags.late",
    "possible_copy": "copy_flagged",
}


@dataclass(frozen=True)
class StoryFilter:
    """What the caller narrowed the list to (``unit``: that unit and those below it)."""

    unit: str
    status: StoryStatus | None = None
    category: str | None = None
    campaign: str | None = None
    level: str | None = None
    flag: Flag | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None
    text: str | None = None

    def equalities(self) -> dict[str, Any]:
        """The filter as equalities, the scope first (the index's leading field)."""
        query: dict[str, Any] = {"ancestors": self.unit}
        if self.text:
            wanted = search.grams(self.text)
            if wanted:
                query[search.FIELD] = {"$all": wanted}
        chosen = {
            "status": self.status.value if self.status else None, "category": self.category,
            "campaign": self.campaign, "level": self.level,
            "late": True if self.flag == "late" else None,
            "possible_copy": True if self.flag == "possible_copy" else None,
        }  # fmt: skip
        query.update({FILTER_FIELDS[key]: value for key, value in chosen.items() if value})
        return query

    def counted(self) -> bool:
        """Whether the maintained counters hold this list's total (scope and status only)."""
        return not any(
            (self.category, self.campaign, self.level, self.flag, self.text,
             self.submitted_from, self.submitted_to)
        )  # fmt: skip


def sort_field(story_filter: StoryFilter) -> str:
    """A submission period lists by submission time (the range the index serves)."""
    if story_filter.submitted_from or story_filter.submitted_to:
        return "submitted_at"
    return "updated_at"


async def ensure_list_indexes(*, runtime: ServiceRuntime) -> None:
    """One index per list shape: the scope, at most one filter, then the sort."""
    stories = runtime.db[STORIES]
    for sort in ("updated_at", "submitted_at"):
        await stories.create_index(
            [("ancestors", ASCENDING), (sort, DESCENDING), ("_id", ASCENDING)]
        )
    for field in FILTER_FIELDS.values():
        await stories.create_index(
            [("ancestors", ASCENDING), (field, ASCENDING), ("updated_at", DESCENDING),
             ("_id", ASCENDING)]
        )  # fmt: skip


async def list_stories(
    *, runtime: ServiceRuntime, principal: Principal, story_filter: StoryFilter, page: PageQuery
) -> tuple[list[dict[str, Any]], str | None, int | None]:
    """One page of the stories of the caller's units (or of the filter's unit inside them),
    the next page's cursor and, where the counters hold it, the total; the period is in
    Asia/Shanghai days, inclusive."""
    field = sort_field(story_filter)
    floor = FLOOR
    if story_filter.submitted_from is not None:
        floor = max(floor, shanghai_day_start(story_filter.submitted_from))
    before = None
    if story_filter.submitted_to is not None:
        before = shanghai_day_start(story_filter.submitted_to + timedelta(days=1))
    # a phrase's bigrams are no equality an index can pair with the time: one query a page
    first_window = WHOLE_HISTORY if story_filter.text else FIRST_WINDOW
    docs, next_cursor = await windowed_page(
        runtime.db[STORIES], story_filter.equalities(), field=field, query=page,
        projection=SUMMARY_PROJECTION, floor=floor, before=before, first_window=first_window,
    )  # fmt: skip
    counted = None
    if story_filter.counted():
        status = story_filter.status.value if story_filter.status else None
        counted = await total(runtime.db, unit=story_filter.unit, status=status)
    return docs, next_cursor, counted
