"""Storage of the scoring service's configuration: rule versions and campaigns, and the
indexes of every collection."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.scoring.models import CampaignCreate, RuleSet, RuleVersion
from services.scoring.periods import Calendar, PeriodError, month_of, parse_period
from shared.clock import utcnow
from shared.paging import PageQuery, keyset_page

Db = AsyncDatabase[dict[str, Any]]

RULE_VERSIONS = "rule_versions"
LEDGER = "ledger"
UNIT_MONTHS = "unit_months"
CAMPAIGNS = "campaigns"
CAMPAIGN_ITEMS = "campaign_items"
SUMMARIES = "summaries"
# one document: the earliest month any unit-month holds, kept with $min as they are
# written, so the calendar is one read by key (the embedded server answers a sort over
# every unit-month by fetching them all: 55 ms over 2,600 of them)
FIRST_MONTH = "first_month"

DEFAULT_RULES = Path(__file__).parent / "rules.yaml"
# the seed version governs every event, however old
SEED_EFFECTIVE_FROM = datetime(2000, 1, 1, tzinfo=UTC)


NEWEST_CAMPAIGNS = [("created_at", DESCENDING), ("_id", ASCENDING)]


class ConflictError(Exception):
    pass


async def ensure_indexes(*, db: Db) -> None:
    """Create the indexes the ledger, projections and campaigns rely on."""
    await db[LEDGER].create_index(
        [("source_event_id", ASCENDING), ("kind", ASCENDING)],
        unique=True,
        partialFilterExpression={"source_event_id": {"$type": "string"}},
        name="one_entry_per_event_and_kind",
    )
    await db[LEDGER].create_index([("unit", ASCENDING), ("period", ASCENDING)])
    await db[LEDGER].create_index([("story_id", ASCENDING), ("kind", ASCENDING)])
    await db[LEDGER].create_index([("kind", ASCENDING), ("year", ASCENDING)])
    await db[UNIT_MONTHS].create_index([("period", ASCENDING), ("unit", ASCENDING)])
    await db[UNIT_MONTHS].create_index([("period", ASCENDING), ("county", ASCENDING)])
    await db[CAMPAIGN_ITEMS].create_index(
        [("campaign", ASCENDING), ("what", ASCENDING), ("unit", ASCENDING)]
    )
    await db[RULE_VERSIONS].create_index([("effective_from", DESCENDING)])
    await db[CAMPAIGNS].create_index(NEWEST_CAMPAIGNS)


def load_default_rules(path: Path = DEFAULT_RULES) -> RuleSet:
    """The rule set shipped with the service."""
    return RuleSet.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


async def seed_rules(*, db: Db, path: Path = DEFAULT_RULES) -> None:
    """Store the shipped rules as version 1 when no version exists yet."""
    if await db[RULE_VERSIONS].find_one({}, projection={"_id": 1}) is not None:
        return
    rules = load_default_rules(path)
    document = {
        "_id": 1,
        "version": 1,
        "effective_from": SEED_EFFECTIVE_FROM,
        "created_at": utcnow(),
        "created_by": "seed",
        "rules": rules.model_dump(mode="json"),
    }
    try:
        await db[RULE_VERSIONS].insert_one(document)
    except DuplicateKeyError:
        return  # another replica seeded it first


class RuleBook:
    """Every rule version, ordered by when it takes effect."""

    def __init__(self, versions: list[RuleVersion]) -> None:
        if not versions:
            raise LookupError("no scoring rule version is stored")
        self.versions = sorted(versions, key=lambda v: (v.effective_from, v.version))
        self._starts = [v.effective_from for v in self.versions]

    def at(self, moment: datetime) -> RuleVersion:
        """The version in force at ``moment`` (the earliest one for older moments)."""
        index = bisect_right(self._starts, moment) - 1
        return self.versions[max(index, 0)]

    @property
    def current(self) -> RuleVersion:
        return self.at(utcnow())


async def rule_book(*, db: Db) -> RuleBook:
    """Load every stored rule version."""
    documents = await db[RULE_VERSIONS].find({}, projection={"_id": 0}).to_list()
    return RuleBook([RuleVersion.model_validate(d) for d in documents])


async def list_rule_versions(*, db: Db, page: PageQuery) -> tuple[list[RuleVersion], str | None]:
    """A page of the versions, newest first (a version's ``_id`` is its number), and the
    next page's cursor."""
    documents, cursor = await keyset_page(db[RULE_VERSIONS], {}, sort=[("_id", -1)], query=page)
    versions = [
        RuleVersion.model_validate({k: v for k, v in d.items() if k != "_id"}) for d in documents
    ]
    return versions, cursor


async def list_campaigns(*, db: Db, page: PageQuery) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the campaigns, newest first, and the next page's cursor."""
    documents, cursor = await keyset_page(db[CAMPAIGNS], {}, sort=NEWEST_CAMPAIGNS, query=page)
    return [{k: v for k, v in d.items() if k != "_id"} for d in documents], cursor


async def add_rule_version(
    *, db: Db, rules: RuleSet, effective_from: datetime | None, created_by: str
) -> RuleVersion:
    """Store ``rules`` as the next version, in force from ``effective_from`` (default now)."""
    now = utcnow()
    starts = (effective_from or now).astimezone(UTC)
    latest = await db[RULE_VERSIONS].find_one({}, sort=[("version", -1)], projection={"version": 1})
    number = (latest["version"] if latest else 0) + 1
    version = RuleVersion(
        version=number, effective_from=starts, created_at=now, created_by=created_by, rules=rules
    )
    try:
        await db[RULE_VERSIONS].insert_one(
            {
                "_id": number,
                **version.model_dump(mode="python", exclude={"rules"}),
                "rules": rules.model_dump(mode="json"),
            }
        )
    except DuplicateKeyError as exc:
        raise ConflictError("另一个规则版本刚刚保存，请重试") from exc
    return version


async def create_campaign(*, db: Db, campaign: CampaignCreate, created_by: str) -> dict[str, Any]:
    """Store a new campaign; its code must be new."""
    try:
        parse_period(campaign.period)
    except PeriodError as exc:
        raise ValueError(str(exc)) from exc
    document = {
        "_id": campaign.code,
        **campaign.model_dump(mode="python"),
        "created_at": utcnow(),
        "created_by": created_by,
    }
    try:
        await db[CAMPAIGNS].insert_one(document)
    except DuplicateKeyError as exc:
        raise ConflictError(f"专项任务编号“{campaign.code}”已被使用，请换一个编号。") from exc
    return document


async def get_campaign(*, db: Db, code: str) -> dict[str, Any] | None:
    """One campaign by its code."""
    return await db[CAMPAIGNS].find_one({"_id": code})


async def calendar_for(
    *, db: Db, go_live: date | None = None, now: datetime | None = None
) -> Calendar:
    """The scoring calendar: the configured go-live, else the first day of the earliest
    month the ledger has an entry in (else of this month)."""
    now = now or utcnow()
    if go_live is None:
        kept = await db[FIRST_MONTH].find_one({"_id": FIRST_MONTH})
        month = kept["period"] if kept else await _first_month_of_the_ledger(db)
        month = month or month_of(now)
        go_live = date(int(month[:4]), int(month[5:]), 1)
    return Calendar(go_live=go_live, now=now)


async def keep_first_month(*, db: Db, months: Iterable[str]) -> None:
    """Lower the kept first month to the earliest of ``months`` (unit-months written)."""
    earliest = min(months, default=None)
    if earliest is not None:
        await db[FIRST_MONTH].update_one(
            {"_id": FIRST_MONTH}, {"$min": {"period": earliest}}, upsert=True
        )


async def _first_month_of_the_ledger(db: Db) -> str | None:
    """The earliest unit-month of a database from before the first month was kept, kept
    from now on."""
    first = await db[UNIT_MONTHS].find_one({}, sort=[("period", 1)], projection={"period": 1})
    if first is None:
        return None
    await keep_first_month(db=db, months=[first["period"]])
    return str(first["period"])
