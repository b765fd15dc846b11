"""Stories as documents: the refusals, the rules every text is checked against, drafts,
and reading one story or its versions."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, Literal

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession

from services.submission import copies, search
from services.submission.models import (
    EDITABLE,
    DraftCreate,
    DraftUpdate,
    Rules,
    StoryContent,
    StoryStatus,
)
from services.submission.service.counts import count_change
from services.submission.service.rules import category_names, get_config
from shared.auth import Principal
from shared.clock import BUREAU_ZONE, local, utcnow
from shared.mongo import in_transaction
from shared.refusals import Refusal
from shared.runtime import ServiceRuntime

SERVICE = "submission"
STORIES = "stories"
MEDIA = "media"


class InvalidStory(Refusal):
    """The story breaks a rule (length, category, date, media)."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(422, "invalid_story", message, detail)


class StoryNotFound(Refusal):
    """No such story, or not one the caller may see."""

    def __init__(self, detail: str) -> None:
        super().__init__(404, "story_not_found", "没有这篇稿件，或不在您的管辖范围内", detail)


class StoryConflict(Refusal):
    """The story is not in a state that allows this."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(409, "story_conflict", message, detail)


@dataclass(frozen=True)
class CheckedContent:
    content: StoryContent
    media: list[dict[str, Any]]
    rules: Rules


def today_in_shanghai(now: datetime | None = None) -> date:
    return local(now or utcnow()).date()


def shanghai_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, BUREAU_ZONE).astimezone(UTC)


def content_hash(content: StoryContent) -> str:
    """What identifies a resend of the same text: everything but the attached media."""
    data = content.model_dump(mode="json", exclude={"media_ids"})
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def check_content(
    *, runtime: ServiceRuntime, content: StoryContent, unit: str
) -> CheckedContent:
    """Apply the configured rules; raises :class:`InvalidStory` with the reason."""
    categories, rules = await get_config(db=runtime.db)
    return check_against(
        content=content, unit=unit, rules=rules, categories=category_names(categories),
        media=await _media_of(runtime, content.media_ids),
    )  # fmt: skip


async def _media_of(runtime: ServiceRuntime, media_ids: list[str]) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys(media_ids))
    found = await runtime.db[MEDIA].find({"_id": {"$in": wanted}}).to_list() if wanted else []
    return {doc["_id"]: doc for doc in found}


def check_against(
    *,
    content: StoryContent,
    unit: str,
    rules: Rules,
    categories: set[str],
    media: dict[str, dict[str, Any]],
    today: date | None = None,
) -> CheckedContent:
    """The rules as a pure check (the bulk import applies the same one)."""
    title, body = content.title.strip(), content.body.strip()
    if not rules.title_min_chars <= len(title) <= rules.title_max_chars:
        raise InvalidStory(
            f"标题须为{rules.title_min_chars}至{rules.title_max_chars}个字，现为{len(title)}个字",
            f"title has {len(title)} characters; it needs "
            f"{rules.title_min_chars} to {rules.title_max_chars}",
        )
    if not rules.body_min_chars <= len(body) <= rules.body_max_chars:
        raise InvalidStory(
            f"正文须为{rules.body_min_chars}至{rules.body_max_chars}个字，现为{len(body)}个字",
            f"body has {len(body)} characters; it needs "
            f"{rules.body_min_chars} to {rules.body_max_chars}",
        )
    if content.category not in categories:
        raise InvalidStory(
            f"没有“{content.category}”这个栏目，请从{'、'.join(sorted(categories))}中选择",
            f"unknown category {content.category!r}; one of: {', '.join(sorted(categories))}",
        )
    today = today or today_in_shanghai()
    if content.event_date > today:
        raise InvalidStory(
            f"事件日期{content.event_date}晚于今天（{today}）",
            f"event date {content.event_date} is in the future (today is {today} in Asia/Shanghai)",
        )
    media_ids = list(dict.fromkeys(content.media_ids))
    missing = [media_id for media_id in media_ids if media_id not in media]
    if missing:
        raise InvalidStory(
            "所附图片或视频尚未上传成功，请稍后重试或重新上传",
            f"unknown media id(s): {', '.join(missing)} (not stored, or not yet known)",
        )
    foreign = [media_id for media_id in media_ids if media[media_id]["unit"] != unit]
    if foreign:
        raise InvalidStory(
            "所附图片或视频属于其他单位，只能使用本单位上传的素材",
            f"media {', '.join(foreign)} belong to another unit than {unit!r}",
        )
    campaign = content.campaign.strip() if content.campaign else None
    checked = content.model_copy(
        update={"title": title, "body": body, "campaign": campaign or None, "media_ids": media_ids}
    )
    return CheckedContent(checked, [media[media_id] for media_id in media_ids], rules)


def new_story(
    *,
    runtime: ServiceRuntime,
    unit: str,
    author: str,
    author_name: str,
    content: StoryContent,
    now: datetime,
    source: Literal["api", "intake"] = "api",
    county: str | None = None,
    external_id: str | None = None,
    story_id: str | None = None,
) -> dict[str, Any]:
    """A draft as stored, before its first submission."""
    story: dict[str, Any] = {
        "_id": story_id or uuid.uuid4().hex,
        "unit": unit,
        "unit_path": runtime.org.path(unit).model_dump(),
        "ancestors": runtime.org.ancestors(unit),
        "author": author,
        "author_name": author_name,
        "source": source,
        "external_id": external_id,
        "status": StoryStatus.DRAFT.value,
        "review_level": None,
        "status_comment": None,
        "version": 0,
        "draft": content.model_dump(mode="json"),
        search.FIELD: search.story_grams(content.title, content.body),
        "flags": None,
        "copy_flagged": False,
        "content_hashes": [],
        "created_at": now,
        "updated_at": now,
        "submitted_at": None,
        "history": [{"at": now, "action": "created", "actor": author}],
    }
    if external_id is not None:
        story["intake_key"] = f"{county}:{external_id}"
    return story


async def create_draft(
    *, runtime: ServiceRuntime, principal: Principal, request: DraftCreate
) -> dict[str, Any]:
    """Save a new draft in the caller's unit (or one below it)."""
    unit = request.unit or principal.unit
    checked = await check_content(runtime=runtime, content=request.content(), unit=unit)
    story = new_story(
        runtime=runtime, unit=unit, author=principal.sub, author_name=principal.name,
        content=checked.content, now=utcnow(),
    )  # fmt: skip

    async def write(session: AsyncClientSession) -> None:
        await runtime.db[STORIES].insert_one(story, session=session)
        await count_change(runtime.db, story, None, StoryStatus.DRAFT.value, session=session)

    await in_transaction(runtime.mongo, write)
    return story


async def get_story(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str
) -> dict[str, Any]:
    """One story the caller may see (its unit is in the caller's scope)."""
    # by key alone, then the scope: the embedded server plans ``_id`` with another field
    # as a collection scan
    story = await runtime.db[STORIES].find_one({"_id": story_id})
    if story is None or principal.unit not in story["ancestors"]:
        raise StoryNotFound(f"no story {story_id!r} in your units")
    return story


async def get_versions(*, runtime: ServiceRuntime, story_id: str) -> list[dict[str, Any]]:
    """Every submitted version of a story, oldest first (a story has a handful)."""
    return (
        await runtime.db[copies.VERSIONS]
        .find({"story_id": story_id})
        .sort("version", ASCENDING)
        .to_list(length=1000)
    )


async def get_version(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str, version: int
) -> dict[str, Any]:
    """One submitted version, read by its key."""
    await get_story(runtime=runtime, principal=principal, story_id=story_id)
    found = await runtime.db[copies.VERSIONS].find_one({"_id": f"{story_id}:{version}"})
    if found is None:
        raise StoryNotFound(f"story {story_id} has no version {version}")
    return found


async def update_draft(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str, changes: DraftUpdate
) -> dict[str, Any]:
    """Change the working copy of a draft or a returned story."""
    story = await get_story(runtime=runtime, principal=principal, story_id=story_id)
    require_editable(story)
    content = changes.apply_to(StoryContent(**story["draft"]))
    checked = await check_content(runtime=runtime, content=content, unit=story["unit"])
    updated = await runtime.db[STORIES].find_one_and_update(
        {"_id": story_id, "version": story["version"], "status": {"$in": list(EDITABLE)}},
        {
            "$set": {
                "draft": checked.content.model_dump(mode="json"),
                search.FIELD: search.story_grams(checked.content.title, checked.content.body),
                "updated_at": utcnow(),
            }
        },
        return_document=True,
    )
    if updated is None:
        raise StoryConflict(
            "稿件在编辑期间已被修改，请刷新后重试",
            f"story {story_id} changed while it was being edited; reload it",
        )
    return updated


def require_editable(story: dict[str, Any]) -> None:
    if story["status"] not in EDITABLE:
        raise StoryConflict(
            "只有草稿或退回修改的稿件才能修改或报送",
            f"story {story['_id']} is {story['status']}; only a draft or a story returned "
            "for revision can be changed or submitted",
        )
