"""Stories: drafts, submitted versions with their quality flags, county intake, and the
review and publication history learned from the bus."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from prometheus_client import Counter
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from services.submission import copies, search
from services.submission.config import category_names, get_config
from services.submission.copytext import TextPrint, standard_share
from services.submission.models import (
    EDITABLE,
    CopyFlag,
    DraftCreate,
    DraftUpdate,
    MatchedPassage,
    QualityFlags,
    RepublicationFlag,
    Rules,
    StoryContent,
    StoryStatus,
)
from shared import events as ev
from shared import topics as tp
from shared.auth import Principal
from shared.mongo import apply_once, in_transaction
from shared.runtime import ServiceRuntime

SERVICE = "submission"
SHANGHAI = ZoneInfo("Asia/Shanghai")
STORIES = "stories"
MEDIA = "media"

STORIES_SUBMITTED = Counter(
    "citydesk_submission_stories_submitted_total",
    "Story versions submitted, by county and by source (api or county intake).",
    ["county", "source"],
)
FLAGS = Counter(
    "citydesk_submission_flags_total",
    "Submitted versions carrying a quality flag (late, possible_copy).",
    ["flag"],
)
INTAKE = Counter(
    "citydesk_submission_intake_total",
    "County intake events applied, by county and outcome (created, new_version, duplicate).",
    ["county", "outcome"],
)

SETTLED = (StoryStatus.PUBLISHED, StoryStatus.WITHDRAWN)


class InvalidStory(ValueError):
    """The story breaks a rule (length, category, date, media): answered with 422."""


class StoryNotFound(LookupError):
    """No such story, or not one the caller may see: answered with 404."""


class StoryConflict(RuntimeError):
    """The story is not in a state that allows this: answered with 409."""


@dataclass(frozen=True)
class CheckedContent:
    content: StoryContent
    media: list[dict[str, Any]]
    rules: Rules


def today_in_shanghai(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(SHANGHAI).date()


def shanghai_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, SHANGHAI).astimezone(UTC)


def content_hash(content: StoryContent) -> str:
    """What identifies a resend of the same text: everything but the attached media."""
    data = content.model_dump(mode="json", exclude={"media_ids"})
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def ensure_indexes(runtime: ServiceRuntime) -> None:
    """Indexes for scope listing, intake dedupe and fingerprint lookups."""
    db = runtime.db
    await db[STORIES].create_index([("ancestors", ASCENDING), ("updated_at", DESCENDING)])
    await db[STORIES].create_index([("ancestors", ASCENDING), ("submitted_at", DESCENDING)])
    await db[STORIES].create_index("intake_key", unique=True, sparse=True)
    await db[copies.VERSIONS].create_index([("story_id", ASCENDING), ("version", ASCENDING)])
    await db[STORIES].create_index(search.FIELD)  # multikey: one entry per bigram
    await copies.ensure_indexes(db, org=runtime.org)
    await _index_unsearchable_stories(runtime)


async def _index_unsearchable_stories(runtime: ServiceRuntime) -> None:
    """Stories saved before search existed get their bigrams once, at start-up."""
    stories = runtime.db[STORIES]
    missing = stories.find({search.FIELD: {"$exists": False}}, projection={"draft": 1})
    async for doc in missing:
        draft = doc.get("draft") or {}
        grams = search.story_grams(draft.get("title", ""), draft.get("body", ""))
        await stories.update_one({"_id": doc["_id"]}, {"$set": {search.FIELD: grams}})


# ---- validation ---------------------------------------------------------------------
async def check_content(
    runtime: ServiceRuntime, *, content: StoryContent, unit: str
) -> CheckedContent:
    """Apply the configured rules; raises :class:`InvalidStory` with the reason."""
    categories, rules = await get_config(db=runtime.db)
    title, body = content.title.strip(), content.body.strip()
    if not rules.title_min_chars <= len(title) <= rules.title_max_chars:
        raise InvalidStory(
            f"title has {len(title)} characters; it needs "
            f"{rules.title_min_chars} to {rules.title_max_chars}"
        )
    if not rules.body_min_chars <= len(body) <= rules.body_max_chars:
        raise InvalidStory(
            f"body has {len(body)} characters; it needs "
            f"{rules.body_min_chars} to {rules.body_max_chars}"
        )
    known = category_names(categories)
    if content.category not in known:
        raise InvalidStory(
            f"unknown category {content.category!r}; one of: {', '.join(sorted(known))}"
        )
    today = today_in_shanghai()
    if content.event_date > today:
        raise InvalidStory(
            f"event date {content.event_date} is in the future (today is {today} in Asia/Shanghai)"
        )
    campaign = content.campaign.strip() if content.campaign else None
    media_ids = list(dict.fromkeys(content.media_ids))
    media = await runtime.db[MEDIA].find({"_id": {"$in": media_ids}}).to_list() if media_ids else []
    found = {doc["_id"]: doc for doc in media}
    missing = [media_id for media_id in media_ids if media_id not in found]
    if missing:
        raise InvalidStory(
            f"unknown media id(s): {', '.join(missing)} (not stored, or not yet known)"
        )
    foreign = [media_id for media_id in media_ids if found[media_id]["unit"] != unit]
    if foreign:
        raise InvalidStory(f"media {', '.join(foreign)} belong to another unit than {unit!r}")
    checked = content.model_copy(
        update={"title": title, "body": body, "campaign": campaign or None, "media_ids": media_ids}
    )
    return CheckedContent(checked, [found[media_id] for media_id in media_ids], rules)


# ---- drafts and submission ----------------------------------------------------------
def _new_story(
    runtime: ServiceRuntime,
    *,
    unit: str,
    author: str,
    author_name: str,
    content: StoryContent,
    now: datetime,
    source: Literal["api", "intake"] = "api",
    county: str | None = None,
    external_id: str | None = None,
) -> dict[str, Any]:
    story_id = uuid.uuid4().hex
    story: dict[str, Any] = {
        "_id": story_id,
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
    runtime: ServiceRuntime, *, principal: Principal, request: DraftCreate
) -> dict[str, Any]:
    """Save a new draft in the caller's unit (or one below it)."""
    unit = request.unit or principal.unit
    checked = await check_content(runtime, content=request.content(), unit=unit)
    story = _new_story(
        runtime, unit=unit, author=principal.sub, author_name=principal.name,
        content=checked.content, now=datetime.now(UTC),
    )  # fmt: skip
    await runtime.db[STORIES].insert_one(story)
    return story


async def get_story(
    runtime: ServiceRuntime, *, principal: Principal, story_id: str
) -> dict[str, Any]:
    """One story the caller may see (its unit is in the caller's scope)."""
    story = await runtime.db[STORIES].find_one({"_id": story_id, "ancestors": principal.unit})
    if story is None:
        raise StoryNotFound(f"no story {story_id!r} in your units")
    return story


async def get_versions(runtime: ServiceRuntime, *, story_id: str) -> list[dict[str, Any]]:
    """Every submitted version of a story, oldest first."""
    return (
        await runtime.db[copies.VERSIONS]
        .find({"story_id": story_id})
        .sort("version", ASCENDING)
        .to_list()
    )


async def update_draft(
    runtime: ServiceRuntime, *, principal: Principal, story_id: str, changes: DraftUpdate
) -> dict[str, Any]:
    """Change the working copy of a draft or a returned story."""
    story = await get_story(runtime, principal=principal, story_id=story_id)
    _require_editable(story)
    content = changes.apply_to(StoryContent(**story["draft"]))
    checked = await check_content(runtime, content=content, unit=story["unit"])
    updated = await runtime.db[STORIES].find_one_and_update(
        {"_id": story_id, "version": story["version"], "status": {"$in": list(EDITABLE)}},
        {
            "$set": {
                "draft": checked.content.model_dump(mode="json"),
                search.FIELD: search.story_grams(checked.content.title, checked.content.body),
                "updated_at": datetime.now(UTC),
            }
        },
        return_document=True,
    )
    if updated is None:
        raise StoryConflict(f"story {story_id} changed while it was being edited; reload it")
    return updated


def _require_editable(story: dict[str, Any]) -> None:
    if story["status"] not in EDITABLE:
        raise StoryConflict(
            f"story {story['_id']} is {story['status']}; only a draft or a story returned "
            "for revision can be changed or submitted"
        )


async def submit_story(
    runtime: ServiceRuntime, *, principal: Principal, story_id: str, correlation_id: str | None
) -> dict[str, Any]:
    """Submit the working copy as the story's next version."""
    story = await get_story(runtime, principal=principal, story_id=story_id)
    _require_editable(story)
    checked = await check_content(
        runtime, content=StoryContent(**story["draft"]), unit=story["unit"]
    )
    return await _submit_version(
        runtime, story=story, checked=checked, actor=principal.sub, source="api",
        correlation_id=correlation_id,
    )  # fmt: skip


async def _submit_version(
    runtime: ServiceRuntime,
    *,
    story: dict[str, Any],
    checked: CheckedContent,
    actor: str,
    source: Literal["api", "intake"],
    correlation_id: str | None,
    is_new: bool = False,
) -> dict[str, Any]:
    """Freeze one version with its flags, and announce it through the outbox in the same
    transaction."""
    db, content, rules = runtime.db, checked.content, checked.rules
    now = datetime.now(UTC)
    version = story["version"] + 1
    first_submitted_at = story.get("first_submitted_at") or now
    unit_path = ev.UnitPath(**story["unit_path"])
    normaliser = copies.normaliser_for(runtime.org)
    text = TextPrint.of(content.body, normaliser)
    standard = await copies.matching_standard_texts(db, text=text)
    match = await copies.find_possible_copy(
        db, text=text, unit=story["unit"],
        since=now - timedelta(days=rules.copy_window_days),
        published_since=now - timedelta(days=rules.copy_published_window_days),
        original_before=first_submitted_at,
        thresholds=copies.CopyThresholds(
            resemblance=rules.copy_similarity_threshold,
            containment=rules.copy_containment_threshold,
        ),
        standard=standard,
    )  # fmt: skip
    age_days = (today_in_shanghai(now) - content.event_date).days
    late = age_days > rules.late_after_days
    copy_flag = None if match is None else _copy_flag(runtime, match, content.body)
    flags = QualityFlags(
        late=late,
        late_days=age_days if late else 0,
        possible_copy=copy_flag,
        republication=_republication_flag(text, standard, rules.republication_share),
    )
    photos = sum(1 for m in checked.media if m["kind"] == ev.MediaKind.PHOTO.value)
    videos = sum(1 for m in checked.media if m["kind"] == ev.MediaKind.VIDEO.value)
    flags_doc = flags.model_dump()
    version_doc = {
        "_id": f"{story['_id']}:{version}",
        "story_id": story["_id"],
        "version": version,
        **content.model_dump(mode="json"),
        "submitted_at": now,
        "submitted_by": actor,
        "photo_count": photos,
        "video_count": videos,
        "flags": flags_doc,
    }
    event = ev.StorySubmittedEvent.build(
        ev.StorySubmitted(
            story_id=story["_id"], version=version, unit_path=unit_path, title=content.title,
            body=content.body, category=content.category, campaign=content.campaign,
            major=content.major, event_date=content.event_date, submitted_at=now,
            media_ids=content.media_ids, photo_count=photos, video_count=videos,
            author=story["author"], source=source, external_id=story.get("external_id"),
            late=flags.late, late_days=flags.late_days,
            possible_copy=None if copy_flag is None else ev.PossibleCopy(
                story_id=copy_flag.story_id, unit=copy_flag.unit,
                similarity=copy_flag.similarity, containment=copy_flag.containment,
                reason=copy_flag.reason,
            ),
        ),
        producer=SERVICE, county=unit_path.county, unit=unit_path.unit,
        correlation_id=correlation_id,
    )  # fmt: skip
    change = {
        "$set": {
            "status": StoryStatus.SUBMITTED.value,
            "review_level": None,
            "status_comment": None,
            "version": version,
            "draft": content.model_dump(mode="json"),
            search.FIELD: search.story_grams(content.title, content.body),
            "flags": flags_doc,
            "submitted_at": now,
            "first_submitted_at": first_submitted_at,
            "updated_at": now,
        },
        "$push": {
            "history": {"at": now, "action": "submitted", "version": version, "actor": actor},
            "content_hashes": content_hash(content),
        },
    }

    async def write(session: AsyncClientSession) -> dict[str, Any]:
        if is_new:
            await db[STORIES].insert_one(story, session=session)
        stored = await db[STORIES].find_one_and_update(
            {"_id": story["_id"], "version": version - 1, "status": {"$in": list(EDITABLE)}},
            change,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if stored is None:
            raise StoryConflict(f"story {story['_id']} was submitted or changed meanwhile")
        await db[copies.VERSIONS].insert_one(version_doc, session=session)
        await copies.record_fingerprint(
            db, text=text, story_id=story["_id"], version=version, unit=story["unit"],
            submitted_at=now, first_submitted_at=first_submitted_at, session=session,
        )  # fmt: skip
        await runtime.emit(tp.STORY_SUBMITTED, event, session=session)
        return stored

    stored: dict[str, Any] = await in_transaction(runtime.mongo, write)
    runtime.outbox_written()
    STORIES_SUBMITTED.labels(unit_path.county or "city", source).inc()
    if flags.late:
        FLAGS.labels("late").inc()
    if match is not None:
        FLAGS.labels("possible_copy").inc()
    if flags.republication is not None:
        FLAGS.labels("republication").inc()
    return stored


def _shanghai_day(moment: datetime) -> str:
    day = moment.astimezone(SHANGHAI)
    return f"{day.year}年{day.month}月{day.day}日"


def copy_reason(match: copies.CopyMatch, unit_name: str) -> str:
    """The flag's reason as the reviewer reads it."""
    found = match.comparison
    verb = "报送并已发布" if match.published else "报送"
    source = f"{unit_name}{_shanghai_day(match.submitted_at)}{verb}的《{match.title}》"
    if found.ours_in_theirs >= 0.9 and found.theirs_in_ours >= 0.9:
        return (
            f"疑似直接转发：与{source}基本相同，本稿{found.ours_counted}句中有"
            f"{found.ours_found}句见于对方稿件（校名、日期、人名、数字不计），"
            f"全文相似度{found.resemblance:.0%}。"
        )
    if found.ours_in_theirs >= found.theirs_in_ours:
        return (
            f"疑似摘抄他人稿件：本稿{found.ours_in_theirs:.0%}的内容"
            f"（{found.ours_counted}句中的{found.ours_found}句）取自{source}。"
        )
    return (
        f"疑似整段搬用：{source}{found.theirs_in_ours:.0%}的内容"
        f"（{found.theirs_counted}句中的{found.theirs_found}句）出现在本稿中。"
    )


def _copy_flag(runtime: ServiceRuntime, match: copies.CopyMatch, body: str) -> CopyFlag:
    found = match.comparison
    unit = runtime.org.get(match.unit)
    unit_name = unit.name if unit else match.unit
    return CopyFlag(
        story_id=match.story_id, unit=match.unit, similarity=found.resemblance,
        containment=found.containment, ours_in_theirs=found.ours_in_theirs,
        theirs_in_ours=found.theirs_in_ours, version=match.version, unit_name=unit_name,
        title=match.title, submitted_at=match.submitted_at, published=match.published,
        reason=copy_reason(match, unit_name),
        passages=[
            MatchedPassage(
                ours_start=pair.ours[0], ours_end=pair.ours[1],
                ours_text=body[pair.ours[0] : pair.ours[1]],
                theirs_start=pair.theirs[0], theirs_end=pair.theirs[1],
                theirs_text=match.body[pair.theirs[0] : pair.theirs[1]],
            )
            for pair in found.pairs
        ],
    )  # fmt: skip


def _republication_flag(
    text: TextPrint, standard: list[copies.StandardText], share_needed: float
) -> RepublicationFlag | None:
    """转载规定文本 when most of the story is one registered standard text."""
    best: tuple[float, copies.StandardText] | None = None
    for each in standard:
        share = standard_share(text, [each.text])
        if best is None or share > best[0]:
            best = (share, each)
    if best is None or best[0] < share_needed:
        return None
    share, chosen = best
    return RepublicationFlag(
        standard_text_id=chosen.text_id, title=chosen.title, share=round(share, 4),
        reason=f"转载规定文本：本稿{share:.0%}的内容为统一发布的《{chosen.title}》，不按抄袭处理。",
    )  # fmt: skip


# ---- county intake ------------------------------------------------------------------
IntakeOutcome = Literal["created", "new_version", "duplicate"]


async def take_in_county_story(
    runtime: ServiceRuntime, *, event: ev.IntakeStoryEvent
) -> IntakeOutcome:
    """Apply a story a county system published. A resend with the text of any earlier
    version changes nothing; a changed resend becomes a new version while the story is a
    draft or returned for revision, and is refused once it is in review or beyond."""
    intake = event.payload
    unit = runtime.org.get(intake.unit)
    if unit is None:
        raise InvalidStory(f"unknown unit {intake.unit!r}")
    if unit.county != event.county:
        raise InvalidStory(
            f"unit {intake.unit!r} does not belong to the producing county {event.county!r}"
        )
    content = StoryContent(
        title=intake.title, body=intake.body, category=intake.category,
        event_date=intake.event_date, campaign=intake.campaign, major=intake.major,
    )  # fmt: skip
    checked = await check_content(runtime, content=content, unit=intake.unit)
    existing = await runtime.db[STORIES].find_one(
        {"intake_key": f"{event.county}:{intake.external_id}"}
    )
    if existing is not None:
        if content_hash(checked.content) in existing["content_hashes"]:
            outcome: IntakeOutcome = "duplicate"
            INTAKE.labels(event.county, outcome).inc()
            return outcome
        _require_editable(existing)
        story, outcome, is_new = existing, "new_version", False
    else:
        story = _new_story(
            runtime, unit=intake.unit, author=intake.author, author_name=intake.author,
            content=checked.content, now=datetime.now(UTC), source="intake",
            county=event.county, external_id=intake.external_id,
        )  # fmt: skip
        outcome, is_new = "created", True
    await _submit_version(
        runtime, story=story, checked=checked, actor=intake.author, source="intake",
        correlation_id=event.correlation_id, is_new=is_new,
    )  # fmt: skip
    INTAKE.labels(event.county, outcome).inc()
    return outcome


# ---- projections from other services ------------------------------------------------
async def record_media(runtime: ServiceRuntime, *, event: ev.MediaStoredEvent) -> None:
    """Keep what the media service stored (upsert by media id: replays change nothing)."""
    media = event.payload
    await runtime.db[MEDIA].update_one(
        {"_id": media.media_id},
        {
            "$set": {
                "unit": media.unit_path.unit,
                "county": media.unit_path.county,
                "kind": media.kind.value,
                "content_type": media.content_type,
                "size": media.size,
                "campaign": media.campaign,
                "stored_at": media.stored_at,
            }
        },
        upsert=True,
    )


async def _apply_to_story(
    runtime: ServiceRuntime,
    *,
    consumer: str,
    event: ev.Envelope,
    story_id: str,
    version: int,
    entry: dict[str, Any],
    status_change: dict[str, Any] | None,
    unless: tuple[StoryStatus, ...] = (),
    also: Callable[[AsyncClientSession], Awaitable[None]] | None = None,
) -> None:
    """Add ``entry`` to the story's history and, when the event is about the latest
    version and the story is not in one of ``unless``, change its status; and ``also``
    in the same transaction; once."""
    db = runtime.db

    async def effect(session: AsyncClientSession) -> None:
        now = datetime.now(UTC)
        found = await db[STORIES].update_one(
            {"_id": story_id}, {"$push": {"history": entry}, "$set": {"updated_at": now}},
            session=session,
        )  # fmt: skip
        if found.matched_count == 0:
            raise StoryNotFound(f"no story {story_id!r} was submitted here")
        if status_change is not None:
            await db[STORIES].update_one(
                {
                    "_id": story_id,
                    "version": version,
                    "status": {"$nin": [s.value for s in unless]},
                },
                {"$set": status_change},
                session=session,
            )
        if also is not None:
            await also(session)

    await apply_once(
        runtime.mongo, db, consumer=consumer, event_id=str(event.event_id), effect=effect
    )


async def record_review(runtime: ServiceRuntime, *, event: ev.StoryReviewedEvent) -> None:
    """Show the correspondent a review decision: where the story waits, or why it came back."""
    review = event.payload
    if review.decision == ev.Decision.APPROVED and review.final:
        state, level, comment = StoryStatus.APPROVED, None, None
    elif review.decision in (ev.Decision.APPROVED, ev.Decision.OVERRIDDEN):
        # the review service knows the story's route and names where it waits; an event
        # written before it did leaves the level of the decision
        state, level, comment = StoryStatus.IN_REVIEW, review.next_level or review.level, None
    else:
        state, level, comment = StoryStatus(review.decision.value), review.level, review.comment
    status = {
        "status": state.value,
        "review_level": level.value if level else None,
        "status_comment": comment,
    }
    entry = {
        "at": review.decided_at, "action": "reviewed", "version": review.version,
        "actor": review.reviewer, "level": review.level.value, "decision": review.decision.value,
        "comment": review.comment,
    }  # fmt: skip
    await _apply_to_story(
        runtime, consumer=f"{SERVICE}:story.reviewed", event=event, story_id=review.story_id,
        version=review.version, entry=entry, status_change=status, unless=SETTLED,
    )  # fmt: skip


async def record_publication(runtime: ServiceRuntime, *, event: ev.StoryPublishedEvent) -> None:
    """Show the correspondent where the story was published, adopted or withdrawn."""
    published = event.payload
    action = {
        ev.PublicationKind.CHANNEL: "published",
        ev.PublicationKind.ADOPTION: "adopted",
        ev.PublicationKind.WITHDRAWAL: "withdrawn",
    }[published.kind]
    status: dict[str, Any] | None = None
    unless: tuple[StoryStatus, ...] = ()
    if published.kind == ev.PublicationKind.CHANNEL:
        status = {"status": StoryStatus.PUBLISHED.value, "review_level": None}
        unless = (StoryStatus.WITHDRAWN,)
    elif published.kind == ev.PublicationKind.WITHDRAWAL:
        status = {"status": StoryStatus.WITHDRAWN.value, "review_level": None,
                  "status_comment": published.reason}  # fmt: skip
    entry = {
        "at": published.published_at, "action": action, "version": published.version,
        "channel": published.channel, "outlet": published.outlet,
        "outlet_level": published.outlet_level.value, "link": published.link,
        "comment": published.reason,
    }  # fmt: skip

    async def keep_as_copy_source(session: AsyncClientSession) -> None:
        await copies.mark_published(
            runtime.db, story_id=published.story_id, version=published.version,
            published_at=published.published_at, session=session,
        )  # fmt: skip

    await _apply_to_story(
        runtime, consumer=f"{SERVICE}:story.published", event=event,
        story_id=published.story_id, version=published.version, entry=entry,
        status_change=status, unless=unless,
        also=keep_as_copy_source if published.kind == ev.PublicationKind.CHANNEL else None,
    )  # fmt: skip


# ---- listing ------------------------------------------------------------------------
async def list_stories(
    runtime: ServiceRuntime,
    *,
    principal: Principal,
    unit: str | None,
    status: StoryStatus | None,
    category: str | None,
    campaign: str | None,
    submitted_from: date | None,
    submitted_to: date | None,
    page: int,
    page_size: int,
    text: str | None = None,
    level: str | None = None,
    flag: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The stories of the caller's units (or of ``unit`` inside them), newest change
    first; the period is in Asia/Shanghai days, inclusive."""
    query: dict[str, Any] = {"ancestors": unit or principal.unit}
    if status is not None:
        query["status"] = status.value
    if category is not None:
        query["draft.category"] = category
    if campaign is not None:
        query["draft.campaign"] = campaign
    if level is not None:
        query["review_level"] = level
    if flag == "late":
        query["flags.late"] = True
    elif flag == "possible_copy":
        query["flags.possible_copy"] = {"$ne": None}
    wanted = search.grams(text) if text else []
    if wanted:
        query[search.FIELD] = {"$all": wanted}
    period: dict[str, datetime] = {}
    if submitted_from is not None:
        period["$gte"] = shanghai_day_start(submitted_from)
    if submitted_to is not None:
        period["$lt"] = shanghai_day_start(submitted_to + timedelta(days=1))
    if period:
        query["submitted_at"] = period
    stories = runtime.db[STORIES]
    total = await stories.count_documents(query)
    docs = (
        await stories.find(query, projection={"history": 0, "content_hashes": 0, search.FIELD: 0})
        .sort([("updated_at", DESCENDING), ("_id", ASCENDING)])
        .skip((page - 1) * page_size)
        .limit(page_size)
        .to_list()
    )
    return docs, total
