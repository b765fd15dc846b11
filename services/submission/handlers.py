"""Kafka subscribers: county intake, and the projections of media, review decisions and
publications that the correspondents' views are built from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.submission.service import intake, projections
from services.submission.service.stories import InvalidStory, StoryConflict, StoryNotFound
from shared import events as ev
from shared import topics as tp
from shared.kafka import PermanentError, consumer
from shared.runtime import ServiceRuntime


@contextmanager
def _unknown_story_is_permanent() -> Iterator[None]:
    """News of a story this service never took in can never be applied: no retry."""
    try:
        yield
    except StoryNotFound as exc:
        raise PermanentError(str(exc)) from exc


def register_handlers(runtime: ServiceRuntime) -> None:
    """Subscribe this service's handlers in its consumer group."""
    bus, group = runtime.bus, runtime.name

    @consumer(bus, tp.INTAKE_STORIES, group=group)
    async def take_in_county_story(event: ev.IntakeStoryEvent) -> None:
        """A county system's story becomes a submitted version; a resend changes nothing."""
        try:
            await intake.take_in_county_story(runtime=runtime, event=event)
        except (InvalidStory, StoryConflict) as exc:
            raise PermanentError(
                f"county {event.county} story {event.payload.external_id!r}: {exc.detail}"
            ) from exc

    @consumer(bus, tp.MEDIA_STORED, group=group)
    async def record_media(event: ev.MediaStoredEvent) -> None:
        """Remember stored media, so that stories can attach them."""
        await projections.record_media(runtime=runtime, event=event)

    @consumer(bus, tp.STORY_REVIEWED, group=group)
    async def record_review(event: ev.StoryReviewedEvent) -> None:
        """Show the correspondent each review decision."""
        with _unknown_story_is_permanent():
            await projections.record_review(runtime=runtime, event=event)

    @consumer(bus, tp.STORY_PUBLISHED, group=group)
    async def record_publication(event: ev.StoryPublishedEvent) -> None:
        """Show the correspondent where the story was published, adopted or withdrawn."""
        with _unknown_story_is_permanent():
            await projections.record_publication(runtime=runtime, event=event)
