"""Kafka subscribers: submitted stories open review cases; story screenings feed the hold."""

from __future__ import annotations

from services.review import cases, service
from services.review.runtime import Review
from shared import events as ev
from shared import topics as tp
from shared.kafka import consumer


def register_handlers(runtime: Review) -> None:
    """Subscribe the review service (consumer group ``review``) to its topics."""

    @consumer(runtime.base.bus, tp.STORY_SUBMITTED, group=service.SERVICE)
    async def open_review_case(event: ev.StorySubmittedEvent) -> None:
        """Open a review case for each submitted version of a story."""
        await cases.open_case(runtime=runtime, event=event)

    @consumer(runtime.base.bus, tp.OPINION_FLAGGED, group=service.SERVICE)
    async def record_story_screening(event: ev.OpinionFlaggedEvent) -> None:
        """Keep story screening results: a high severity holds final approval."""
        await cases.record_screening(runtime=runtime, event=event)
