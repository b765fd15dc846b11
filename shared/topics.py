"""Every topic on the bus, the contract it carries and the key that orders it.

A story's events are keyed by story id, an opinion alert's by its incident id, county
intake by county (so one county's feed is read in order). Each topic has a ``.dlq``
sibling for events that could not be applied, and a list of who may write it: a service
writes only its own topics, a county system only intake for its own county
(:mod:`shared.bus_auth` checks both on every record).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared import events as ev

COUNTY_SYSTEMS = "county systems"  # any county's principal, for events of its own county


@dataclass(frozen=True)
class Topic:
    name: str
    model: type[ev.Envelope]
    key_of: Callable[[ev.Envelope], str]
    description: str
    writers: tuple[str, ...]
    # the services that consume it (their broker users get Read on it)
    readers: tuple[str, ...]

    @property
    def rebuild_reads(self) -> bool:
        """The scoring rebuild reads what scoring reads from the first offset: such a
        topic must keep everything."""
        return "scoring" in self.readers

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def key(self, event: ev.Envelope) -> bytes:
        return self.key_of(event).encode()


def _story_key(event: ev.Envelope) -> str:
    return str(event.payload.story_id)


def _of_stories(
    name: str,
    model: type[ev.Envelope],
    description: str,
    writer: str,
    readers: tuple[str, ...],
) -> Topic:
    """A topic of story events, keyed by story id so that one story's are read in order."""
    return Topic(name, model, _story_key, description, (writer,), readers)


def _opinion_key(event: ev.Envelope) -> str:
    payload: ev.OpinionFlagged = event.payload
    return payload.incident_id or payload.story_id or str(event.event_id)


STORY_SUBMITTED = _of_stories(
    "story.submitted", ev.StorySubmittedEvent,
    "Every submitted version of a story, with its quality flags.",
    "submission", ("review", "sentiment", "scoring"),
)  # fmt: skip
STORY_REVIEWED = _of_stories(
    "story.reviewed", ev.StoryReviewedEvent,
    "Every review decision at every level.",
    "review", ("submission", "scoring"),
)  # fmt: skip
STORY_PUBLISHED = _of_stories(
    "story.published", ev.StoryPublishedEvent,
    "Publication on a bureau channel, adoption by an outside outlet, or withdrawal.",
    "review", ("submission", "scoring"),
)  # fmt: skip
OPINION_FLAGGED = Topic(
    "opinion.flagged", ev.OpinionFlaggedEvent, _opinion_key,
    "Story screening results, opinion alerts and their escalations.",
    ("sentiment",), ("review", "scoring"),
)  # fmt: skip
MEDIA_STORED = Topic(
    "media.stored", ev.MediaStoredEvent, lambda e: str(e.payload.media_id),
    "A photo or video whose object and metadata are both stored.",
    ("media",), ("submission", "scoring"),
)  # fmt: skip
INTAKE_STORIES = Topic(
    "intake.stories", ev.IntakeStoryEvent, lambda e: str(e.county),
    "Stories published by county systems.",
    (COUNTY_SYSTEMS,), ("submission",),
)  # fmt: skip
INTAKE_OPINIONS = Topic(
    "intake.opinions", ev.IntakeOpinionEvent, lambda e: str(e.county),
    "Public-opinion items from county feeds.",
    (COUNTY_SYSTEMS,), ("sentiment",),
)  # fmt: skip

ALL: tuple[Topic, ...] = (
    STORY_SUBMITTED,
    STORY_REVIEWED,
    STORY_PUBLISHED,
    OPINION_FLAGGED,
    MEDIA_STORED,
    INTAKE_STORIES,
    INTAKE_OPINIONS,
)
BY_NAME: dict[str, Topic] = {topic.name: topic for topic in ALL}
