"""Kafka subscribers: every scored topic is read in batches and goes through the same
ledger write as the rebuild."""

from __future__ import annotations

from services.scoring.ledger import apply_events
from shared import topics as tp
from shared.events import Envelope
from shared.kafka import batch_consumer
from shared.runtime import ServiceRuntime

SCORED_TOPICS: tuple[tp.Topic, ...] = (
    tp.STORY_SUBMITTED,
    tp.STORY_REVIEWED,
    tp.STORY_PUBLISHED,
    tp.OPINION_FLAGGED,
    tp.MEDIA_STORED,
)
BATCH = 500


def register_handlers(runtime: ServiceRuntime) -> None:
    """Subscribe the ledger to every scored topic in the service's consumer group."""
    for topic in SCORED_TOPICS:
        _subscribe(runtime, topic)


def _subscribe(runtime: ServiceRuntime, topic: tp.Topic) -> None:
    name = "score_" + topic.name.replace(".", "_")

    @batch_consumer(
        runtime.bus,
        topic,
        group=runtime.name,
        max_records=BATCH,
        handler_name=name,
    )
    async def score_events(events: list[Envelope]) -> None:
        """Write the events' ledger entries and refresh the projections they touch."""
        await apply_events(db=runtime.db, org=runtime.org, events=events)
