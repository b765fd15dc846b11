"""The documents sentiment stores, as they are stored: items, incidents, alerts with
their history, officers' corrections and the push intents. The functions that create
and read them take and return these types; the API's response models (models.py) are
built from them.

A field typed with a ``StrEnum`` (``Severity``) is stored as its value: BSON writes the
member as the plain string, and a document read back holds that string, equal to the
member."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict, cast

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.sentiment.models import AlertState, OwnerLevel
from shared.events import Severity

Stage = Literal["linear", "embedding"]


class CorrectionMark(TypedDict):
    """An officer's "negative / not negative" mark, kept on the item."""

    negative: bool
    by: str
    at: datetime
    note: str | None


class ItemDoc(TypedDict):
    """One opinion item from a county feed, stored once per (source, item id), with the
    model's verdict."""

    _id: str  # "<source>:<item id>"
    source: str
    item_id: str
    county: str
    school: str | None
    text: str
    link: str | None
    published_at: datetime
    received_at: datetime
    event_id: str
    correlation_id: str | None
    negative: bool
    score: float
    severity: Severity
    topic: str
    explanation: list[str]
    stage: Stage
    correction: NotRequired[CorrectionMark]


class CorrectionDoc(TypedDict):
    """A correction as the next training run reads it: the item's text and what the
    model said beside the officer's mark."""

    item: str
    text: str
    topic: str | None
    source: str | None
    model_negative: bool | None
    negative: bool
    by: str
    at: datetime
    note: str | None


class Determination(TypedDict):
    """The city bureau's determination (认定) of an incident, or its lifting."""

    determined: bool
    by: str
    by_name: str
    at: datetime
    reason: str


class IncidentDoc(TypedDict):
    """Negative items about one school (or one county) within a window, counted once
    each. ``updated_at`` is set when the first item is counted, before it is stored."""

    _id: str  # "inc-<hex>"
    group: str  # the school, or "county:<code>"
    county: str
    school: str | None
    topic: str
    severity: Severity
    item_count: int
    sources: list[str]
    signature: list[str]  # the first item's character bigrams
    first_item_at: datetime
    last_item_at: datetime
    minutes: dict[str, int]  # items per UTC minute "YYYYmmddHHMM" within the rules' horizon
    alert_id: str | None
    item_ids: list[str]  # left out of reads that project it away
    created_at: datetime
    updated_at: NotRequired[datetime]
    determination: NotRequired[Determination]
    determination_history: NotRequired[list[Determination]]


# what an alert's history records: raised, a person's action, or an automatic step
PersonAction = Literal["acknowledge", "respond", "close", "comment"]
SeverityRaised = Literal[
    "severity raised to blue",
    "severity raised to yellow",
    "severity raised to orange",
    "severity raised to red",
]
Escalated = Literal["escalated to county", "escalated to city"]
HistoryAction = Literal["raised", PersonAction, SeverityRaised, Escalated]
SEVERITY_RAISED: dict[Severity, SeverityRaised] = {
    Severity.BLUE: "severity raised to blue",
    Severity.YELLOW: "severity raised to yellow",
    Severity.ORANGE: "severity raised to orange",
    Severity.RED: "severity raised to red",
}
ESCALATED: dict[OwnerLevel, Escalated] = {
    "county": "escalated to county",
    "city": "escalated to city",
}


class HistoryStep(TypedDict):
    """One step of an alert's history (``by_name`` only for a person's action)."""

    at: datetime
    action: HistoryAction
    by: str
    by_name: NotRequired[str | None]
    comment: str
    owner_level: OwnerLevel


class AlertDoc(TypedDict):
    """An incident's alert: who owns it now, its state and deadline, and every step."""

    _id: str  # "al-<the incident's hex>"
    incident_id: str
    county: str
    school: str | None
    owner_level: OwnerLevel
    owner_unit: str
    state: AlertState
    deadline: datetime
    created_at: datetime
    history: list[HistoryStep]
    severity: Severity
    serious: bool
    item_count: int
    topic: str
    updated_at: datetime


class AlertChange(TypedDict, total=False):
    """The fields of an alert that a raise in severity or an escalation sets."""

    severity: Severity
    serious: bool
    item_count: int
    topic: str
    updated_at: datetime
    deadline: datetime
    owner_level: OwnerLevel
    owner_unit: str


INTENTS = "notifications"


class NotificationIntent(TypedDict):
    """A push intent, written in the alert change's transaction and expanded later into
    one delivery per channel."""

    _id: str  # the announced event's id
    event: dict[str, Any]  # the ``opinion.flagged`` envelope as JSON
    at: datetime
    expanded_at: datetime | None


PushChannel = Literal["webhook", "email", "wecom", "dingtalk"]


class PushPlan(TypedDict):
    """One delivery an intent expands into, before the shared delivery queue stores it
    (its stored document, with state and attempts, is the queue's)."""

    key: str  # the intent's id, and for a person "<id>:<recipient>:<channel index>"
    channel: PushChannel
    target: str  # the system webhook's or a robot's URL, or an e-mail address
    payload: dict[str, Any]  # {"event": …} for the webhook; title, text, robot (secret)
    not_before: datetime | None  # the end of the recipient's quiet hours
    extra: dict[str, Any]  # recipient, event id, quiet, severity: kept for the record


Db = AsyncDatabase[dict[str, Any]]


def items_of(db: Db) -> AsyncCollection[ItemDoc]:
    return cast("AsyncCollection[ItemDoc]", db.items)


def corrections_of(db: Db) -> AsyncCollection[CorrectionDoc]:
    return cast("AsyncCollection[CorrectionDoc]", db.corrections)


def incidents_of(db: Db) -> AsyncCollection[IncidentDoc]:
    return cast("AsyncCollection[IncidentDoc]", db.incidents)


def alerts_of(db: Db) -> AsyncCollection[AlertDoc]:
    return cast("AsyncCollection[AlertDoc]", db.alerts)


def intents_of(db: Db) -> AsyncCollection[NotificationIntent]:
    return cast("AsyncCollection[NotificationIntent]", db[INTENTS])
