"""Documents, configuration and request/response models of the review service."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from shared.events import Decision, OutletLevel, Placement, ReviewLevel, Severity


class CaseState(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    RETURNED = "returned"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # a newer version of the story opened its own case


class PublicationState(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


class PublicationAction(StrEnum):
    PUBLISH = "publish"
    WITHDRAW = "withdraw"


class AuditAction(StrEnum):
    """What an audit step records. The four review decisions keep the values of
    :class:`shared.events.Decision`; the others are what happened to the story around them."""

    SUBMITTED = "submitted"
    SUPERSEDED = "superseded"  # a newer version replaced this one in review
    APPROVED = "approved"
    RETURNED = "returned"
    REJECTED = "rejected"
    OVERRIDDEN = "overridden"  # a city reviewer lifted the screening hold
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    PUBLICATION_FAILED = "publication_failed"
    ADOPTED = "adopted"
    WITHDRAWN = "withdrawn"

    @property
    def decision(self) -> Decision | None:
        """The review decision this step is, or None for every other kind of step."""
        return Decision(self.value) if self.value in Decision._value2member_map_ else None


class AuditFields(BaseModel):
    """What every audit step records: the story version, when, who (with their role and
    unit), at which level, what happened and why."""

    story_id: str
    case_id: str | None
    version: int
    at: datetime
    who: str
    name: str
    role: str
    unit: str
    level: str | None
    action: AuditAction
    comment: str | None
    channel: str | None = None


class AuditStep(AuditFields):
    """One document of the insert-only ``audit`` collection: ``decision`` is set only
    when the step is a review decision."""

    decision: Decision | None


# ---- configuration ------------------------------------------------------------------
class Strict(BaseModel):
    # Infinity and NaN are valid JSON to Python's parser: a backoff of Infinity would
    # be stored and then break every reading of the configuration
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class WebhookChannel(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    url: HttpUrl
    secret: str | None = Field(
        default=None,
        min_length=16,
        description="HMAC key; omitted in a replacement keeps the stored secret of that name",
    )


# the channel name of the bureau's own feed: deliveries to it are queued like a webhook's
FEED_CHANNEL = "feed"


class FeedConfig(Strict):
    enabled: bool = True
    title: str = "CityDesk"
    size: int = Field(default=50, ge=1, le=500)


class PublicationConfig(Strict):
    feed: FeedConfig = FeedConfig()
    webhooks: list[WebhookChannel] = Field(default_factory=list)
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_seconds: float = Field(default=30, gt=0, le=24 * 3600)
    backoff_max_seconds: float = Field(default=3600, gt=0, le=7 * 24 * 3600)

    @model_validator(mode="after")
    def _unique_names(self) -> PublicationConfig:
        names = [hook.name for hook in self.webhooks]
        if len(names) != len(set(names)) or FEED_CHANNEL in names:
            raise ValueError(f"webhook names must be unique and not {FEED_CHANNEL!r}")
        return self


class ScreeningConfig(Strict):
    hold_at: Severity = Severity.YELLOW


class ReviewConfig(Strict):
    routes: dict[Literal["school", "county", "direct", "city"], list[ReviewLevel]]
    major_levels: list[ReviewLevel] = Field(default_factory=lambda: [ReviewLevel.LEADER])
    overdue_hours: dict[ReviewLevel, float] = Field(default_factory=dict)
    screening: ScreeningConfig = ScreeningConfig()
    publication: PublicationConfig = PublicationConfig()

    @model_validator(mode="after")
    def _routes_end_at_the_city(self) -> ReviewConfig:
        for unit_type, levels in self.routes.items():
            if not levels or levels[-1] != ReviewLevel.CITY:
                raise ValueError(f"the route of {unit_type!r} must end with the city level")
            if len(set(levels)) != len(levels):
                raise ValueError(f"the route of {unit_type!r} repeats a level")
        for hours in self.overdue_hours.values():
            if not 0 < hours <= 90 * 24:
                raise ValueError("overdue_hours must be positive and at most 90 days")
        return self

    def webhook(self, name: str) -> WebhookChannel | None:
        return next((hook for hook in self.publication.webhooks if hook.name == name), None)

    def masked(self) -> dict[str, Any]:
        """The configuration as shown to people: webhook secrets hidden."""
        data = self.model_dump(mode="json")
        for hook in data["publication"]["webhooks"]:
            hook["secret"] = "***" if hook["secret"] else None
        return data


# ---- requests -----------------------------------------------------------------------
class DecisionRequest(Strict):
    version: int = Field(ge=1, description="the story version the reviewer judged")
    decision: Literal["approve", "return", "reject"]
    comment: str | None = Field(default=None, max_length=5000)
    reason: str | None = Field(default=None, max_length=5000)
    publish_at: AwareDatetime | None = Field(
        default=None, description="city level only: publish at this time instead of at once"
    )

    @model_validator(mode="after")
    def _explained(self) -> DecisionRequest:
        if self.decision == "return" and not (self.comment or "").strip():
            raise ValueError("a comment is required when returning a story for revision")
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ValueError("a reason is required when rejecting a story")
        if self.publish_at is not None and self.decision != "approve":
            raise ValueError("publish_at goes with an approval only")
        return self


class OverrideRequest(Strict):
    reason: str = Field(min_length=5, max_length=5000)


class ScheduleRequest(Strict):
    publish_at: AwareDatetime


class AdoptionRequest(Strict):
    outlet: str = Field(min_length=1, max_length=200)
    level: Literal["national", "provincial", "city", "county"]
    placement: Placement = Placement.NORMAL
    date: date
    link: HttpUrl
    leader_instruction: bool = False


class WithdrawRequest(Strict):
    reason: str = Field(min_length=5, max_length=5000)


# ---- responses ----------------------------------------------------------------------
class MediaLink(BaseModel):
    id: str
    url: str
    thumbnail: str


class Screening(BaseModel):
    severity: Severity
    negative: bool
    score: float
    topic: str
    explanation: list[str]
    flagged_at: datetime
    holds_final_approval: bool


class CaseView(BaseModel):
    case_id: str
    story_id: str
    version: int
    state: CaseState
    level: ReviewLevel
    route: list[ReviewLevel]
    unit_path: dict[str, str | None]
    waiting_since: datetime
    opened_at: datetime
    overdue: bool
    title: str
    body: str
    category: str
    campaign: str | None
    major: bool
    event_date: date
    author: str
    media: list[MediaLink]
    late: bool
    late_days: int
    possible_copy: dict[str, Any] | None
    screening: Screening | None
    hold_overridden: bool
    publish_at: datetime | None


class DecisionResult(BaseModel):
    case_id: str
    story_id: str
    version: int
    decision: str
    state: CaseState
    level: ReviewLevel
    final: bool


class AuditEntry(AuditFields):
    """An audit step as the API shows it; steps stored before ``action`` existed kept
    the action in ``decision``."""

    decision: str = Field(
        description="deprecated: the same value as `action`, kept for clients that read it; "
        "the step is a review decision when `action` is approved, returned, rejected or "
        "overridden"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_any_step(cls, data: Any) -> Any:
        if isinstance(data, dict):
            action = data.get("action") or data.get("decision")
            data = {**data, "action": action, "decision": action}
        return data


class PublicationView(BaseModel):
    publication_id: str
    story_id: str
    version: int
    channel: str
    action: PublicationAction
    state: PublicationState
    attempts: int
    publish_at: datetime
    next_attempt_at: datetime | None
    last_status: int | None = Field(
        default=None, description="the receiver's HTTP status at the last attempt"
    )
    last_error: str | None = Field(
        description="what went wrong at the last attempt, in short; never the receiver's answer"
    )
    delivered_at: datetime | None


class AdoptionView(BaseModel):
    adoption_id: str
    story_id: str
    version: int
    outlet: str
    level: OutletLevel
    placement: Placement
    date: date
    link: str
    leader_instruction: bool
    recorded_by: str
    recorded_at: datetime
