"""Kafka subscribers: county intake, and the projections of media, review decisions and
publications that the correspondents' views are built from."""

from __future__ import annotations

from services.submission import service
from shared import events as ev
from shared import topics as tp
from shared.kafka import PermanentError, consumer
from shared.runtime import ServiceRuntime


def register_handlers(runtime: ServiceRuntime) -> None:
    """Subscribe this service's handlers in its consumer group."""
    bus, group = runtime.bus, runtime.name

    @consumer(bus, tp.INTAKE_STORIES, group=group)
    async def take_in_county_story(event: ev.IntakeStoryEvent) -> None:
        """A county system's story becomes a submitted version; a resend changes nothing."""
        try:
            await service.take_in_county_story(runtime, event=event)
        except (service.InvalidStory, service.StoryConflict) as exc:
            raise PermanentError(
                f"county {event.county} story {event.payload.external_id!r}: {exc}"
            ) from exc

    @consumer(bus, tp.MEDIA_STORED, group=group)
    async def record_media(event: ev.MediaStoredEvent) -> None:
        """Remember stored media, so that stories can attach them."""
        await service.record_media(runtime, event=event)

    @consumer(bus, tp.STORY_REVIEWED, group=group)
    async def record_review(event: ev.StoryReviewedEvent) -> None:
        """Show the correspondent each review decision."""
        try:
            await service.record_review(runtime, event=event)
        except service.StoryNotFound as exc:
            raise PermanentError(str(exc)) from exc

    @consumer(bus, tp.STORY_PUBLISHED, group=group)
    async def record_publication(event: ev.StoryPublishedEvent) -> None:
        """Show the correspondent where the story was published, adopted or withdrawn."""
        try:
            await service.record_publication(runtime, event=event)
        except service.StoryNotFound as exc:
            raise PermanentError(str(exc)) from exc
