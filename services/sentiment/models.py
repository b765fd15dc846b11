"""The sentiment rules (config), stored documents as the API shows them, and requests."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from services.sentiment.classifier import TOPICS
from shared.events import Severity

OwnerLevel = Literal["school", "county", "city"]
AlertState = Literal["open", "acknowledged", "responding", "closed"]


class Rules(BaseModel):
    # Infinity and NaN are valid JSON to Python's parser; no rule means anything with them
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


DAY_HOURS = 24


class ItemSeverityRules(Rules):
    keywords: dict[Severity, list[str]] = Field(default_factory=dict)
    sources: dict[Severity, list[str]] = Field(default_factory=dict)


class VolumeRule(Rules):
    severity: Severity
    items: int = Field(ge=1, le=1_000_000)
    hours: float = Field(gt=0, le=90 * DAY_HOURS)


class VelocityRule(Rules):
    severity: Severity
    items: int = Field(ge=1, le=1_000_000)
    minutes: float = Field(gt=0, le=7 * DAY_HOURS * 60)


class IncidentRules(Rules):
    window_hours: float = Field(default=48, gt=0, le=90 * DAY_HOURS)
    similarity: float = Field(default=0.2, ge=0, le=1)
    volume: list[VolumeRule] = Field(default_factory=list)
    velocity: list[VelocityRule] = Field(default_factory=list)


class AlertRules(Rules):
    min_severity: Severity = Severity.BLUE
    min_items: int = Field(default=1, ge=1, le=1_000_000)
    serious_from: Severity = Severity.ORANGE
    deadline_seconds: dict[Severity, float]

    @model_validator(mode="after")
    def _every_severity_has_a_deadline(self) -> AlertRules:
        missing = [s.value for s in Severity if s not in self.deadline_seconds]
        if missing:
            raise ValueError(f"deadline_seconds needs every severity; missing {missing}")
        if any(not 0 < value <= 30 * DAY_HOURS * 3600 for value in self.deadline_seconds.values()):
            raise ValueError("deadline_seconds must be positive and at most 30 days")
        return self


class SentimentConfig(Rules):
    """Everything a bureau may tune, validated before it is stored."""

    negative_threshold: float = Field(default=0.5, gt=0, lt=1)
    sensitive_words: list[str] = Field(default_factory=list)
    lexicon_weight: float = Field(default=0.3, ge=0, le=10)
    topics: dict[str, list[str]]
    item_severity: ItemSeverityRules = Field(default_factory=ItemSeverityRules)
    incident: IncidentRules = Field(default_factory=IncidentRules)
    alerts: AlertRules

    @model_validator(mode="after")
    def _known_topics(self) -> SentimentConfig:
        unknown = sorted(set(self.topics) - set(TOPICS))
        if unknown:
            raise ValueError(f"unknown topics {unknown}; topics are {list(TOPICS)}")
        return self


class Verdict(BaseModel):
    """The analysis of one text with the configured rules applied."""

    negative: bool
    score: float = Field(ge=0, le=1)
    severity: Severity
    topic: str
    explanation: list[str]
    sensitive_words: list[str] = Field(default_factory=list)
    stage: Literal["linear", "embedding"]


class ClassifyRequest(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)
    source: str | None = Field(default=None, max_length=64)


class AlertAction(BaseModel):
    comment: str = Field(default="", max_length=2000)


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    by: str
    by_name: str | None = None
    comment: str = ""
    owner_level: OwnerLevel | None = None


class AlertOut(BaseModel):
    id: str
    incident_id: str
    county: str | None
    school: str | None
    owner_level: OwnerLevel
    owner_unit: str
    severity: Severity
    serious: bool
    state: AlertState
    topic: str
    item_count: int
    deadline: datetime
    created_at: datetime
    updated_at: datetime
    history: list[HistoryEntry]

    @classmethod
    def of(cls, doc: dict[str, Any]) -> AlertOut:
        return cls(id=doc["_id"], **{k: v for k, v in doc.items() if k != "_id"})


class ItemOut(BaseModel):
    id: str
    source: str
    item_id: str
    county: str
    school: str | None
    text: str
    link: str | None
    published_at: datetime
    negative: bool
    score: float
    severity: Severity
    topic: str
    explanation: list[str]

    @classmethod
    def of(cls, doc: dict[str, Any]) -> ItemOut:
        return cls(id=doc["_id"], **{k: v for k, v in doc.items() if k in cls.model_fields})


class DeterminationRequest(BaseModel):
    """The city bureau's determination (认定) of an incident, or its lifting: always why."""

    reason: str = Field(min_length=4, max_length=2000, description="认定或撤销的理由")


class Determination(BaseModel):
    """Whether the bureau holds the incident to be a serious negative incident (一票否决),
    who decided, when and why; the history keeps every determination and lifting."""

    determined: bool
    by: str
    by_name: str
    at: datetime
    reason: str


class IncidentOut(BaseModel):
    id: str
    county: str
    school: str | None
    topic: str
    severity: Severity
    item_count: int
    sources: list[str]
    first_item_at: datetime
    last_item_at: datetime
    alert_id: str | None
    determination: Determination | None = None
    items: list[ItemOut] | None = None

    @classmethod
    def of(cls, doc: dict[str, Any], items: list[dict[str, Any]] | None = None) -> IncidentOut:
        fields = {k: v for k, v in doc.items() if k in cls.model_fields and k != "items"}
        return cls(
            id=doc["_id"],
            **fields,
            items=[ItemOut.of(item) for item in items] if items is not None else None,
        )


# ---- push alerts ------------------------------------------------------------------------
class QuietHours(Rules):
    """Local (Asia/Shanghai) hours when blue and yellow pushes wait until ``end``; orange
    and red always go. ``start`` after ``end`` spans midnight (22:00-07:30)."""

    start: time
    end: time


class EmailChannel(Rules):
    kind: Literal["email"]
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)


def _robot_url(value: str) -> str:
    """An http(s) URL with a host (where it may point is checked before each send)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError as exc:
        raise ValueError("not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a robot URL is http(s) with a host")
    return value


RobotUrl = Annotated[str, Field(max_length=1000), AfterValidator(_robot_url)]


class WecomChannel(Rules):
    """企业微信 group robot: its webhook URL (``.../cgi-bin/webhook/send?key=...``)."""

    kind: Literal["wecom"]
    url: RobotUrl


class DingtalkChannel(Rules):
    """钉钉 group robot: its webhook URL and, when the robot signs, its ``SEC...`` secret."""

    kind: Literal["dingtalk"]
    url: RobotUrl
    secret: str | None = Field(default=None, max_length=200)


Channel = Annotated[EmailChannel | WecomChannel | DingtalkChannel, Field(discriminator="kind")]


class Recipient(Rules):
    """A person or a duty group: which alerts (their unit and below, from a severity) reach
    them, on which channels, and when they are not to be woken."""

    name: str = Field(min_length=1, max_length=50)
    unit: str = Field(min_length=1, max_length=64)
    min_severity: Severity = Severity.BLUE
    quiet_hours: QuietHours | None = None
    channels: list[Channel] = Field(min_length=1)


class PushConfig(Rules):
    recipients: list[Recipient] = Field(default_factory=list)
