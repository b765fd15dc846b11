"""Event contracts: one envelope, versioned payloads.

Every event on the bus is an :class:`Envelope` subclass with a literal ``type`` and
``version``. County systems write ``intake.*`` events in the same envelope. The JSON
Schema of each is exported by ``citydesk contracts export`` for the broker's schema
registry and for county integrators.
"""

from __future__ import annotations

import inspect
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.clock import utcnow as utcnow  # re-exported: envelopes are stamped with it

Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- vocabulary ---------------------------------------------------------------------
class ReviewLevel(StrEnum):
    SCHOOL = "school"  # 初审
    COUNTY = "county"  # 复审
    CITY = "city"  # 终审
    LEADER = "leader"  # 分管领导 sign-off for major stories


class Decision(StrEnum):
    APPROVED = "approved"
    RETURNED = "returned"  # 退回修改
    REJECTED = "rejected"
    OVERRIDDEN = "overridden"  # a city reviewer lifts a screening hold, with a reason


class OutletLevel(StrEnum):
    BUREAU = "bureau"  # the bureau's own platforms
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    CITY = "city"
    COUNTY = "county"


class Placement(StrEnum):
    HEADLINE = "headline"
    IN_DEPTH = "in_depth"
    NORMAL = "normal"


class PublicationKind(StrEnum):
    CHANNEL = "channel"  # published on one of the bureau's channels
    ADOPTION = "adoption"  # 采用 by an outside outlet
    WITHDRAWAL = "withdrawal"  # 撤稿


class MediaKind(StrEnum):
    PHOTO = "photo"
    VIDEO = "video"


class FlagKind(StrEnum):
    STORY_SCREENING = "story_screening"  # a submitted story's own text
    ALERT = "alert"  # an incident crossed its threshold
    ESCALATION = "escalation"  # an alert went unacknowledged past its deadline
    DETERMINATION = "determination"  # the city bureau determined (认定) the incident serious
    DETERMINATION_LIFTED = "determination_lifted"  # the bureau lifted its determination


class Severity(StrEnum):
    """Chinese emergency practice: IV blue < III yellow < II orange < I red."""

    BLUE = "blue"
    YELLOW = "yellow"
    ORANGE = "orange"
    RED = "red"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class UnitPath(Contract):
    """Where a unit sits in the tree: the city, its county (if any) and the unit itself."""

    city: Code
    county: Code | None = None
    unit: Code


# ---- payloads -----------------------------------------------------------------------
class PossibleCopy(Contract):
    story_id: str
    unit: str
    similarity: float = Field(ge=0, le=1)
    # optional since v1.1: the larger share of one story's passages found in the other,
    # and the reason in words for the reviewer
    containment: float | None = Field(default=None, ge=0, le=1)
    reason: str | None = None


class StoryVersion(Contract):
    """What every event about a story names first: which story, which version."""

    story_id: str
    version: int = Field(ge=1)


class StorySubmitted(StoryVersion):
    unit_path: UnitPath
    title: str
    body: str
    category: str
    campaign: str | None = None
    major: bool = False
    event_date: date
    submitted_at: datetime
    media_ids: list[str] = Field(default_factory=list)
    photo_count: int = 0
    video_count: int = 0
    author: str
    source: Literal["api", "intake"] = "api"
    external_id: str | None = None
    late: bool = False
    late_days: int = 0
    possible_copy: PossibleCopy | None = None


class StoryReviewed(StoryVersion):
    case_id: str
    unit_path: UnitPath
    level: ReviewLevel
    decision: Decision
    final: bool = Field(description="true when this decision ends the review: published next")
    next_level: ReviewLevel | None = Field(
        default=None,
        description="the level the story waits at after this decision, as its route decides: "
        "the next level after a non-final approval, the same level after an override; null "
        "when the review ended or the story went back to its author (and in events written "
        "before this field existed)",
    )
    reviewer: str
    reviewer_unit: str
    comment: str | None = None
    decided_at: datetime
    category: str | None = None
    campaign: str | None = None


class StoryPublished(StoryVersion):
    unit_path: UnitPath
    kind: PublicationKind
    channel: str | None = None
    outlet: str | None = None
    outlet_level: OutletLevel
    placement: Placement = Placement.NORMAL
    leader_instruction: bool = False
    link: str | None = None
    published_at: datetime
    title: str | None = None
    category: str | None = None
    campaign: str | None = None
    photo_count: int = 0
    video_count: int = 0
    reason: str | None = None


class OpinionFlagged(Contract):
    kind: FlagKind
    incident_id: str | None = None
    alert_id: str | None = None
    story_id: str | None = None
    story_version: int | None = None
    county: str | None = None
    school: str | None = None
    owner_level: Literal["school", "county", "city"] | None = None
    severity: Severity
    serious: bool = False
    negative: bool = True
    score: float = Field(ge=0, le=1)
    topic: str
    explanation: list[str] = Field(default_factory=list)
    item_count: int = 1
    flagged_at: datetime
    # a determination and its lifting: who decided, why, and when the incident began
    decided_by: str | None = None
    decided_by_name: str | None = None
    reason: str | None = None
    incident_at: datetime | None = None


class MediaStored(Contract):
    media_id: str
    unit_path: UnitPath
    kind: MediaKind
    content_type: str
    size: int = Field(ge=0)
    sha256: str
    campaign: str | None = None
    width: int | None = None
    height: int | None = None
    uploader: str
    stored_at: datetime


class IntakeStory(Contract):
    """A story a county system sends instead of a correspondent typing it in."""

    external_id: str = Field(min_length=1, max_length=128)
    unit: Code
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=50_000)
    category: str
    event_date: date
    campaign: str | None = None
    major: bool = False
    author: str = Field(min_length=1, max_length=64)


class IntakeOpinion(Contract):
    """A public-opinion item from a county feed (complaint column, post, media enquiry)."""

    item_id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1, max_length=64)
    school: Code | None = None
    text: str = Field(min_length=1, max_length=20_000)
    link: str | None = None
    published_at: datetime


# ---- envelope -----------------------------------------------------------------------
class Envelope(Contract):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str
    county: Code | None = None
    unit: Code | None = None
    correlation_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    payload: Any

    EVENT_TYPE: ClassVar[str]
    EVENT_VERSION: ClassVar[int]

    def __init_subclass__(
        cls, *, event_type: str | None = None, event_version: int = 1, **kwargs: Any
    ) -> None:
        """Pin ``type`` and ``version`` to literals before pydantic collects the fields.

        Pydantic reads a model's annotations after ``type.__new__`` has run this hook, so
        the literal fields added here are exactly as if each event had written them out.
        """
        if event_type is not None:
            cls.EVENT_TYPE = event_type
            cls.EVENT_VERSION = event_version
            pinned = {"type": Literal[event_type], "version": Literal[event_version]}
            cls.__annotations__ = {**pinned, **inspect.get_annotations(cls)}
            cls.type = event_type
            cls.version = event_version
        super().__init_subclass__(**kwargs)

    @classmethod
    def build(
        cls,
        payload: BaseModel,
        *,
        producer: str,
        county: str | None = None,
        unit: str | None = None,
        correlation_id: str | None = None,
    ) -> Self:
        """Wrap a payload in a fresh envelope."""
        extra: dict[str, Any] = {}
        if correlation_id:
            extra["correlation_id"] = correlation_id
        return cls(
            type=cls.EVENT_TYPE,
            version=cls.EVENT_VERSION,
            producer=producer,
            county=county,
            unit=unit,
            payload=payload,
            **extra,
        )


# Each event names its type and version once, as class keywords; the envelope turns them
# into the literal ``type`` and ``version`` fields the JSON Schema pins.
class StorySubmittedEvent(Envelope, event_type="story.submitted"):
    payload: StorySubmitted


class StoryReviewedEvent(Envelope, event_type="story.reviewed"):
    payload: StoryReviewed


class StoryPublishedEvent(Envelope, event_type="story.published"):
    payload: StoryPublished


class OpinionFlaggedEvent(Envelope, event_type="opinion.flagged"):
    payload: OpinionFlagged


class MediaStoredEvent(Envelope, event_type="media.stored"):
    payload: MediaStored


class IntakeStoryEvent(Envelope, event_type="intake.story"):
    county: Code  # a county system always says which county it speaks for
    payload: IntakeStory


class IntakeOpinionEvent(Envelope, event_type="intake.opinion"):
    county: Code
    payload: IntakeOpinion


EVENT_MODELS: tuple[type[Envelope], ...] = (
    StorySubmittedEvent,
    StoryReviewedEvent,
    StoryPublishedEvent,
    OpinionFlaggedEvent,
    MediaStoredEvent,
    IntakeStoryEvent,
    IntakeOpinionEvent,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every event, keyed by ``<type>.v<version>``."""
    return {
        f"{model.EVENT_TYPE}.v{model.EVENT_VERSION}": model.model_json_schema(mode="serialization")
        for model in EVENT_MODELS
    }
