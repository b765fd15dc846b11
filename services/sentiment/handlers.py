"""Kafka subscribers: county opinion feeds and submitted stories."""

from __future__ import annotations

from services.sentiment import service
from services.sentiment.service import Sentiment
from shared import topics as tp
from shared.events import IntakeOpinionEvent, StorySubmittedEvent
from shared.kafka import consumer


def register_handlers(sentiment: Sentiment) -> None:
    runtime = sentiment.runtime

    @consumer(runtime.broker, tp.INTAKE_OPINIONS, group=runtime.name, settings=runtime.settings)
    async def analyse_intake_opinion(event: IntakeOpinionEvent) -> None:
        """Analyse a public-opinion item from a county feed; group negative ones into
        incidents and raise or escalate their alerts."""
        await service.record_opinion(sentiment=sentiment, event=event)

    @consumer(runtime.broker, tp.STORY_SUBMITTED, group=runtime.name, settings=runtime.settings)
    async def screen_submitted_story(event: StorySubmittedEvent) -> None:
        """Screen a submitted story's text; flag it for review when negative or sensitive."""
        await service.screen_story(sentiment=sentiment, event=event)
