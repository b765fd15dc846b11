"""Kafka subscribers: county opinion feeds and submitted stories."""

from __future__ import annotations

from services.sentiment import intake, screening
from services.sentiment.runtime import Sentiment
from shared import topics as tp
from shared.events import IntakeOpinionEvent, StorySubmittedEvent
from shared.kafka import batch_consumer, consumer

INTAKE_BATCH = 500


def register_handlers(sentiment: Sentiment) -> None:
    runtime = sentiment.base

    @batch_consumer(runtime.bus, tp.INTAKE_OPINIONS, group=runtime.name, max_records=INTAKE_BATCH)
    async def analyse_intake_opinions(events: list[IntakeOpinionEvent]) -> None:
        """Analyse public-opinion items from county feeds in batches; group negative ones
        into incidents and raise or escalate their alerts."""
        # looked up on the module at each call, so a test can stand in for the function
        await intake.record_opinions(runtime=sentiment, events=events)

    @consumer(runtime.bus, tp.STORY_SUBMITTED, group=runtime.name)
    async def screen_submitted_story(event: StorySubmittedEvent) -> None:
        """Screen a submitted story's text; flag it for review when negative or sensitive."""
        await screening.screen_story(runtime=sentiment, event=event)
