"""What the correspondents' views learn from the other services: stored media, review
decisions and publications, each applied once and kept in the story's history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from services.submission import copies
from services.submission.models import StoryStatus
from services.submission.service.counts import count_change
from services.submission.service.stories import MEDIA, SERVICE, STORIES, StoryNotFound
from shared import events as ev
from shared.clock import utcnow
from shared.mongo import apply_once
from shared.runtime import ServiceRuntime

SETTLED = (StoryStatus.PUBLISHED, StoryStatus.WITHDRAWN)


def media_fields(media: ev.MediaStored) -> dict[str, Any]:
    """What submission keeps of a stored photo or video: enough to attach and count it."""
    return {
        "unit": media.unit_path.unit,
        "county": media.unit_path.county,
        "kind": media.kind.value,
        "content_type": media.content_type,
        "size": media.size,
        "campaign": media.campaign,
        "stored_at": media.stored_at,
    }


async def record_media(*, runtime: ServiceRuntime, event: ev.MediaStoredEvent) -> None:
    """Keep what the media service stored (upsert by media id: replays change nothing)."""
    media = event.payload
    await runtime.db[MEDIA].update_one(
        {"_id": media.media_id}, {"$set": media_fields(media)}, upsert=True
    )


async def _apply_to_story(
    *,
    runtime: ServiceRuntime,
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
        now = utcnow()
        found = await db[STORIES].update_one(
            {"_id": story_id}, {"$push": {"history": entry}, "$set": {"updated_at": now}},
            session=session,
        )  # fmt: skip
        if found.matched_count == 0:
            raise StoryNotFound(f"no story {story_id!r} was submitted here")
        if status_change is not None:
            before = await db[STORIES].find_one_and_update(
                {
                    "_id": story_id,
                    "version": version,
                    "status": {"$nin": [s.value for s in unless]},
                },
                {"$set": status_change},
                projection={"ancestors": 1, "status": 1},
                return_document=ReturnDocument.BEFORE,
                session=session,
            )
            if before is not None:
                await count_change(
                    db, before, before["status"], status_change["status"], session=session
                )
        if also is not None:
            await also(session)

    await apply_once(
        runtime.mongo, db, consumer=consumer, event_id=str(event.event_id), effect=effect
    )


@dataclass(frozen=True)
class StoryEffect:
    """What one event does to a story: a history entry, and a status change applied when
    the event is about the latest version and the story is not in one of ``unless``."""

    entry: dict[str, Any]
    status: dict[str, Any] | None = None
    unless: tuple[StoryStatus, ...] = ()

    def apply_to(self, story: dict[str, Any], version: int) -> None:
        """The same effect on a story held in memory (the bulk import)."""
        story["history"].append(self.entry)
        story["updated_at"] = max(story["updated_at"], self.entry["at"])
        unless = {s.value for s in self.unless}
        if self.status is not None and story["version"] == version:
            if story["status"] not in unless:
                story.update(self.status)


def review_effect(review: ev.StoryReviewed) -> StoryEffect:
    """A review decision: where the story waits, or why it came back."""
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
    return StoryEffect(entry=entry, status=status, unless=SETTLED)


def publication_effect(published: ev.StoryPublished) -> StoryEffect:
    """A publication on a channel, an outside adoption or a withdrawal."""
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
    return StoryEffect(entry=entry, status=status, unless=unless)


async def record_review(*, runtime: ServiceRuntime, event: ev.StoryReviewedEvent) -> None:
    """Show the correspondent a review decision: where the story waits, or why it came back."""
    review = event.payload
    effect = review_effect(review)
    await _apply_to_story(
        runtime=runtime, consumer=f"{SERVICE}:story.reviewed", event=event,
        story_id=review.story_id, version=review.version, entry=effect.entry,
        status_change=effect.status, unless=effect.unless,
    )  # fmt: skip


async def record_publication(*, runtime: ServiceRuntime, event: ev.StoryPublishedEvent) -> None:
    """Show the correspondent where the story was published, adopted or withdrawn."""
    published = event.payload
    effect = publication_effect(published)

    async def keep_as_copy_source(session: AsyncClientSession) -> None:
        await copies.mark_published(
            runtime.db, story_id=published.story_id, version=published.version,
            published_at=published.published_at, session=session,
        )  # fmt: skip

    await _apply_to_story(
        runtime=runtime, consumer=f"{SERVICE}:story.published", event=event,
        story_id=published.story_id, version=published.version, entry=effect.entry,
        status_change=effect.status, unless=effect.unless,
        also=keep_as_copy_source if published.kind == ev.PublicationKind.CHANNEL else None,
    )  # fmt: skip
