"""Kafka subscribers: county opinion feeds and submitted stories."""

from __future__ import annotations

from services.sentiment.intake import record_opinions
from services.sentiment.runtime import Sentiment
from services.sentiment.screening import screen_story
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
        await record_opinions(runtime=sentiment, events=events)

    @consumer(runtime.bus, tp.STORY_SUBMITTED, group=runtime.name)
    async def screen_submitted_story(event: StorySubmittedEvent) -> None:
        """Screen a submitted story's text; flag it for review when negative or sensitive."""
        await screen_story(runtime=sentiment, event=event)
