"""The documents scoring stores, as they are stored: the ledger's entries and the
campaign items they count. Typed here so the scorers, the live consumer and the rebuild
build and read one shape (the rebuild compares its ledger with the live one byte for
byte, so a field's name, order and type here is the stored one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypedDict, cast

from pymongo.asynchronous.collection import AsyncCollection

from services.scoring.models import CampaignWhat
from services.scoring.service import CAMPAIGN_ITEMS, LEDGER, Db

# what a ledger entry records: one kind per effect of an event (the closed set the
# scorers and the campaign completions write)
EntryKind = Literal[
    "submitted",
    "approved",
    "returned",
    "rejected",
    "publication",
    "media_bonus",
    "adoption",
    "leader_bonus",
    "withdrawal",
    "incident",
    "veto_candidate",
    "determination",
    "determination_lifted",
    "campaign_completed",
]


class LedgerEntry(TypedDict):
    """One effect of one event on one unit's points, in the order it is stored."""

    _id: str  # the natural key: "<kind>|<story or event>…"
    kind: EntryKind
    unit: str
    county: str | None
    period: str  # the Shanghai month, "2026-11"
    year: int  # the year the entry counts towards (a veto: the incident's year)
    occurred_at: datetime
    points: float
    reason: str  # for people, in Chinese
    rule_version: int
    source_event_id: str | None  # None for a campaign completion (no single event)
    story_id: str | None
    counts: dict[str, int]  # the unit-month counters it adds to (only non-zero ones)
    detail: dict[str, Any]  # what the kind needs to be read again (differs per kind)


class CampaignItem(TypedDict):
    """One thing delivered that may count towards a campaign's task."""

    _id: str  # "<campaign>|<what>|<item>"
    campaign: str
    what: CampaignWhat
    unit: str
    county: str | None
    occurred_at: datetime
    source_event_id: str


class EntryFigures(TypedDict):
    """What a unit-month's total reads of an entry (the projection of a ledger query)."""

    points: float
    counts: dict[str, int]


def ledger_of(db: Db) -> AsyncCollection[LedgerEntry]:
    """The ledger, read and written as :class:`LedgerEntry` documents."""
    return cast("AsyncCollection[LedgerEntry]", db[LEDGER])


def campaign_items_of(db: Db) -> AsyncCollection[CampaignItem]:
    """The campaign items, read and written as :class:`CampaignItem` documents."""
    return cast("AsyncCollection[CampaignItem]", db[CAMPAIGN_ITEMS])
