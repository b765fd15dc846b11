"""Request and response models of the submission service, and the rules it reads from
configuration."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.events import ReviewLevel, UnitPath
from shared.rejections import Rejection


class StoryStatus(StrEnum):
    """Where a story stands, as its correspondent sees it."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    RETURNED = "returned"  # 退回修改: revise and resubmit as a new version
    REJECTED = "rejected"
    APPROVED = "approved"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"  # 撤稿


EDITABLE = (StoryStatus.DRAFT, StoryStatus.RETURNED)


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoryContent(BaseModel):
    """What a correspondent writes; each submitted version freezes one copy of it."""

    title: str
    body: str
    category: str
    event_date: date
    campaign: str | None = None
    major: bool = False
    media_ids: list[str] = Field(default_factory=list)


class DraftCreate(Input):
    unit: str | None = Field(default=None, description="defaults to the caller's own unit")
    title: str = Field(max_length=1000)
    body: str = Field(max_length=200_000)
    category: str = Field(max_length=64)
    event_date: date
    campaign: str | None = Field(default=None, max_length=64)
    major: bool = False
    media_ids: list[str] = Field(default_factory=list, max_length=100)

    def content(self) -> StoryContent:
        return StoryContent(**self.model_dump(exclude={"unit"}))


class DraftUpdate(Input):
    """Only the fields given are changed; ``campaign: null`` clears the campaign."""

    title: str | None = Field(default=None, max_length=1000)
    body: str | None = Field(default=None, max_length=200_000)
    category: str | None = Field(default=None, max_length=64)
    event_date: date | None = None
    campaign: str | None = Field(default=None, max_length=64)
    major: bool | None = None
    media_ids: list[str] | None = Field(default=None, max_length=100)

    def apply_to(self, content: StoryContent) -> StoryContent:
        changes = self.model_dump(exclude_unset=True)
        for name in ("title", "body", "category", "event_date", "major", "media_ids"):
            if name in changes and changes[name] is None:
                del changes[name]
        return content.model_copy(update=changes)


class MatchedPassage(BaseModel):
    """A passage of this version and the passage of the other story it was found in:
    character offsets into each body (end exclusive) and the original words."""

    ours_start: int
    ours_end: int
    ours_text: str
    theirs_start: int
    theirs_end: int
    theirs_text: str


class CopyFlag(BaseModel):
    story_id: str
    unit: str
    similarity: float = Field(description="resemblance: Jaccard of the normalised 3-grams")
    containment: float = Field(
        0.0, description="the larger share of one story's passages found in the other"
    )
    ours_in_theirs: float = Field(0.0, description="share of this story found in the other")
    theirs_in_ours: float = Field(0.0, description="share of the other story found in this one")
    version: int | None = None
    unit_name: str | None = None
    title: str | None = None
    submitted_at: datetime | None = None
    published: bool = Field(False, description="the other story is on the bureau's channels")
    reason: str | None = Field(None, description="why it was flagged, for the reviewer")
    passages: list[MatchedPassage] = Field(default_factory=list)


class RepublicationFlag(BaseModel):
    """转载规定文本: the story is mostly a registered standard text."""

    standard_text_id: str
    title: str
    share: float = Field(description="share of the story made of the standard text")
    reason: str


class QualityFlags(BaseModel):
    late: bool = False
    late_days: int = Field(0, description="days from the event to the submission, when late")
    possible_copy: CopyFlag | None = None
    republication: RepublicationFlag | None = None


class VersionRead(StoryContent):
    version: int
    submitted_at: datetime
    submitted_by: str
    photo_count: int = 0
    video_count: int = 0
    flags: QualityFlags


class HistoryEntry(BaseModel):
    at: datetime
    action: Literal["created", "submitted", "reviewed", "published", "adopted", "withdrawn"]
    version: int | None = None
    actor: str | None = None
    level: ReviewLevel | None = None
    decision: str | None = None
    comment: str | None = None
    channel: str | None = None
    outlet: str | None = None
    outlet_level: str | None = None
    link: str | None = None


class StorySummary(BaseModel):
    id: str
    unit: str
    unit_path: UnitPath
    author: str
    author_name: str | None = Field(None, description="the author's name, for people to read")
    source: Literal["api", "intake"]
    external_id: str | None = None
    status: StoryStatus
    review_level: ReviewLevel | None = Field(
        None, description="while in review: the level the story waits at"
    )
    status_comment: str | None = Field(None, description="why it was returned or rejected")
    version: int = Field(description="the latest submitted version; 0 before the first")
    title: str
    category: str
    campaign: str | None = None
    major: bool = False
    event_date: date
    flags: QualityFlags | None = None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None = None


class StoryRead(StorySummary):
    draft: StoryContent = Field(description="the working copy: what the next submission sends")
    versions: list[VersionRead] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)


class StoryTotals(BaseModel):
    """How many stories a unit and the units below it hold, by status."""

    unit: str
    total: int | None = Field(description="every story; null while the counters are built")
    by_status: dict[StoryStatus, int] | None = None


class StoryPage(BaseModel):
    """One page of the story list; ask again with ``cursor=next_cursor`` for the next."""

    items: list[StorySummary]
    next_cursor: str | None = None
    total: int | None = Field(
        None,
        description="how many stories the list holds, from maintained counters: given for "
        "the scope alone or with a status, not for other filters",
    )
    limit: int


class StandardTextCreate(Input):
    title: str = Field(min_length=2, max_length=200)
    body: str = Field(min_length=20, max_length=200_000)
    campaign: str | None = Field(default=None, max_length=64)


class StandardTextRead(BaseModel):
    id: str
    title: str
    body: str
    campaign: str | None = None
    registered_by: str
    registered_at: datetime


class Category(Input):
    name: str = Field(min_length=1, max_length=32)
    description: str = Field(default="", max_length=500)


class CategoryList(Input):
    categories: list[Category] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _names_unique(self) -> Self:
        names = [c.name for c in self.categories]
        if len(set(names)) != len(names):
            raise ValueError("category names must be unique")
        return self


class Rules(Input):
    title_min_chars: int = Field(ge=1, le=1000)
    title_max_chars: int = Field(ge=1, le=1000)
    body_min_chars: int = Field(ge=1, le=200_000)
    body_max_chars: int = Field(ge=1, le=200_000)
    late_after_days: int = Field(ge=0, le=3650)
    copy_similarity_threshold: float = Field(gt=0, le=1)
    copy_window_days: int = Field(ge=1, le=3650)
    # defaults, so that rules stored before these existed still load
    copy_containment_threshold: float = Field(0.45, gt=0, le=1)
    copy_published_window_days: int = Field(730, ge=1, le=3650)
    republication_share: float = Field(0.6, gt=0, le=1)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Self:
        if self.title_min_chars > self.title_max_chars:
            raise ValueError("title_min_chars is above title_max_chars")
        if self.body_min_chars > self.body_max_chars:
            raise ValueError("body_min_chars is above body_max_chars")
        return self


class IntakeStatus(BaseModel):
    """What became of one record a county system sent to ``intake.stories``."""

    status: Literal["accepted", "refused"]
    message: str
    story_id: str | None = None
    story_status: str | None = None
    version: int | None = None
    rejection: Rejection | None = None
