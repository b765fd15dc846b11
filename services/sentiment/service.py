"""Sentiment: the model's analysis with the configured rules, opinion items grouped into
incidents, alerts with an owner, a deadline and escalation, story screening, and signed
webhook notifications."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from prometheus_client import Counter, Gauge, Histogram
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.sentiment.classifier import SentimentModel, normalise
from services.sentiment.models import (
    AlertState,
    OwnerLevel,
    SentimentConfig,
    Verdict,
)
from services.sentiment.settings import SentimentSettings
from shared import topics as tp
from shared.auth import Principal
from shared.events import (
    FlagKind,
    IntakeOpinionEvent,
    OpinionFlagged,
    OpinionFlaggedEvent,
    Severity,
    StorySubmittedEvent,
)
from shared.kafka import PermanentError
from shared.mongo import in_transaction
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

SERVICE = "sentiment"
CONFIG_FILE = Path(__file__).parent / "config.yaml"
CONFIG_ID = "sentiment"
NEXT_LEVEL: dict[OwnerLevel, OwnerLevel] = {"school": "county", "county": "city"}
DUPLICATE_KEY = 11000
FOLD_CONCURRENCY = 8  # incident transactions of one batch in flight at once

ITEMS = Counter(
    "citydesk_sentiment_items_total",
    "Public-opinion items analysed, by county and verdict.",
    ["county", "negative"],
)
ALERTS_OPEN = Gauge(
    "citydesk_sentiment_alerts_open", "Alerts not yet closed, by severity.", ["severity"]
)
ALERTS_ESCALATED = Counter(
    "citydesk_sentiment_alerts_escalated_total",
    "Alerts handed one level up after their deadline passed unacknowledged.",
    ["to_level"],
)
CLASSIFY_SECONDS = Histogram(
    "citydesk_sentiment_classify_seconds",
    "Time to analyse one text (both cascade stages when the second runs).",
    # measured up to 4.9 s for a long /classify on a busy machine
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INCIDENTS = Counter(
    "citydesk_sentiment_incidents_total", "Incidents opened, by county.", ["county"]
)
SCREENINGS = Counter(
    "citydesk_sentiment_screenings_total",
    "Submitted stories screened, by whether they were flagged.",
    ["flagged"],
)
WEBHOOK_DELIVERIES = Counter(
    "citydesk_sentiment_webhook_deliveries_total",
    "Webhook notification attempts, by outcome (delivered, retry, failed).",
    ["outcome"],
)


class AlertNotFound(Exception):
    pass


class AlertConflict(Exception):
    """The action does not apply to the alert in its current state."""


class IncidentNotFound(Exception):
    pass


@dataclass
class Sentiment:
    """The model, the current rules and the runtime, shared by handlers, routes and jobs."""

    runtime: ServiceRuntime
    settings: SentimentSettings
    model: SentimentModel
    config: SentimentConfig

    @property
    def org(self) -> OrgTree:
        return self.runtime.org


def now_utc() -> datetime:
    return datetime.now(UTC)


def read_config_file(path: str | Path | None = None) -> SentimentConfig:
    """The shipped rules, or a bureau's own file."""
    source = Path(path) if path else CONFIG_FILE
    return SentimentConfig.model_validate(yaml.safe_load(source.read_text(encoding="utf-8")))


# ---- config ---------------------------------------------------------------------------
async def seed_config(*, sentiment: Sentiment) -> None:
    """Store the rules file's content unless rules are stored already, then load them."""
    db = sentiment.runtime.db
    seed = read_config_file(sentiment.settings.sentiment_config_file)
    try:
        await db.config.insert_one(
            {
                "_id": CONFIG_ID,
                "rules": seed.model_dump(mode="json"),
                "updated_at": now_utc(),
                "updated_by": "seed",
            }
        )
    except DuplicateKeyError:
        pass
    await reload_config(sentiment=sentiment)


async def reload_config(*, sentiment: Sentiment) -> SentimentConfig:
    """Read the stored rules (another replica may have replaced them)."""
    doc = await sentiment.runtime.db.config.find_one({"_id": CONFIG_ID})
    if doc is not None:
        sentiment.config = SentimentConfig.model_validate(doc["rules"])
    return sentiment.config


async def replace_config(*, sentiment: Sentiment, config: SentimentConfig, by: str) -> None:
    """Store new rules and use them at once."""
    await sentiment.runtime.db.config.replace_one(
        {"_id": CONFIG_ID},
        {"rules": config.model_dump(mode="json"), "updated_at": now_utc(), "updated_by": by},
        upsert=True,
    )
    sentiment.config = config


async def ensure_indexes(*, sentiment: Sentiment) -> None:
    db = sentiment.runtime.db
    await db.incidents.create_index([("group", ASCENDING), ("last_item_at", DESCENDING)])
    await db.incidents.create_index([("county", ASCENDING), ("last_item_at", DESCENDING)])
    await db.alerts.create_index([("state", ASCENDING), ("deadline", ASCENDING)])
    await db.alerts.create_index([("county", ASCENDING), ("updated_at", DESCENDING)])
    await db.notifications.create_index([("delivered_at", ASCENDING), ("next_at", ASCENDING)])


# ---- analysis -------------------------------------------------------------------------
def _max_severity(*severities: Severity) -> Severity:
    return max(severities, key=lambda s: s.rank)


def apply_rules(*, config: SentimentConfig, analysis: Any, source: str | None = None) -> Verdict:
    """Threshold, severity keywords and sources, topic lexicon and sensitive words."""
    text: str = analysis.text
    negative = analysis.score >= config.negative_threshold
    severity = Severity.BLUE
    hits: list[str] = []
    if negative:
        for level, words in config.item_severity.keywords.items():
            found = [word for word in words if word in text]
            if found:
                hits += found
                severity = _max_severity(severity, level)
        for level, sources in config.item_severity.sources.items():
            if source in sources:
                severity = _max_severity(severity, level)
    topic_scores = dict(analysis.topic_scores)
    for topic, words in config.topics.items():
        matched = sum(word in text for word in words)
        if matched:
            topic_scores[topic] = topic_scores.get(topic, 0.0) + config.lexicon_weight * matched
    topic = max(topic_scores, key=topic_scores.__getitem__)
    explanation = list(analysis.terms)
    explanation += [word for word in hits if word not in explanation]
    return Verdict(
        negative=negative,
        score=round(min(1.0, max(0.0, analysis.score)), 4),
        severity=severity,
        topic=topic,
        explanation=explanation,
        sensitive_words=[word for word in config.sensitive_words if word in text],
        stage=analysis.stage,
    )


async def classify(*, sentiment: Sentiment, text: str, source: str | None = None) -> Verdict:
    """Analyse one text."""
    verdicts = await classify_many(sentiment=sentiment, texts=[text], sources=[source], refine=True)
    return verdicts[0]


async def classify_many(
    *, sentiment: Sentiment, texts: list[str], sources: list[str | None], refine: bool
) -> list[Verdict]:
    """Analyse a batch in one call, in a worker thread so the event loop keeps serving:
    the linear stage for every text and, when ``refine``, one embedding call for those in
    the uncertain band."""
    model = sentiment.model
    started = time.perf_counter()
    analyses = await asyncio.to_thread(model.analyse_many if refine else model.linear_many, texts)
    per_text = (time.perf_counter() - started) / max(1, len(texts))
    for _ in texts:
        CLASSIFY_SECONDS.observe(per_text)
    config = sentiment.config
    return [
        apply_rules(config=config, analysis=analysis, source=source)
        for analysis, source in zip(analyses, sources, strict=True)
    ]


# ---- intake ---------------------------------------------------------------------------
def check_place(*, org: OrgTree, county: str, school: str | None) -> None:
    """The county must exist and a named school must be in it."""
    unit = org.get(county)
    if unit is None or unit.type not in ("county", "city"):
        raise PermanentError(f"unknown county {county!r}")
    if school is None:
        return
    found = org.get(school)
    if found is None or not found.is_school():
        raise PermanentError(f"unknown school {school!r}")
    expected = county if unit.type == "county" else None
    if found.county != expected:
        raise PermanentError(f"school {school!r} is not in county {county!r}")


def check_link(link: str | None) -> None:
    """A link to the original is shown to officers as a link: http or https to a host
    only (``javascript:``, ``data:`` and the like would run in the console)."""
    if link is None:
        return
    parts = urlsplit(link)
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(ch.isspace() or ord(ch) < 32 for ch in link)
    ):
        raise PermanentError(f"link {link[:80]!r} refused: only http(s) links are kept")


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1) if text[i : i + 2].isalnum()}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _minute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%d%H%M")


class FoldConflict(Exception):
    """Another consumer changed an incident meanwhile: the batch is read again and
    retried."""


def _group_of(item: dict[str, Any]) -> str:
    return item["school"] or f"county:{item['county']}"


async def record_opinions(*, sentiment: Sentiment, events: list[IntakeOpinionEvent]) -> None:
    """Analyse a batch of intake items, store each once per (source, item id), and fold
    the negative ones not yet counted into their incidents. Items that can never apply
    are refused once the others are stored."""
    refused: list[str] = []
    accepted: dict[str, IntakeOpinionEvent] = {}
    for event in events:
        try:
            check_place(org=sentiment.org, county=event.county, school=event.payload.school)
            check_link(event.payload.link)
        except PermanentError as exc:
            refused.append(str(exc))
            continue
        accepted.setdefault(f"{event.payload.source}:{event.payload.item_id}", event)
    if accepted:
        negatives = await _store_items(sentiment=sentiment, events=accepted)
        await _fold_negatives(sentiment=sentiment, items=negatives)
    if refused:
        raise PermanentError("; ".join(refused))


async def _store_items(
    *, sentiment: Sentiment, events: dict[str, IntakeOpinionEvent]
) -> list[dict[str, Any]]:
    """Analyse the batch and insert every item by its natural key in one unordered bulk
    insert, without a transaction; an item stored before is left as it is (its duplicate
    key is expected). Returns the negative items, in batch order.

    Insert-if-absent is what an upsert with ``$setOnInsert`` does; the bulk insert is
    the same effect at several times the rate on the embedded MongoDB-wire server."""
    payloads = [event.payload for event in events.values()]
    verdicts = await classify_many(
        sentiment=sentiment,
        texts=[payload.text for payload in payloads],
        sources=[payload.source for payload in payloads],
        refine=sentiment.settings.sentiment_intake_embeddings,
    )
    received_at = now_utc()
    docs: list[dict[str, Any]] = []
    labels: list[tuple[str, str]] = []
    for (key, event), verdict in zip(events.items(), verdicts, strict=True):
        payload = event.payload
        published_at = payload.published_at
        if published_at.tzinfo is None:
            published_at = published_at.replace(tzinfo=UTC)
        item = {
            "_id": key,
            "source": payload.source,
            "item_id": payload.item_id,
            "county": event.county,
            "school": payload.school,
            "text": payload.text,
            "link": payload.link,
            "published_at": published_at,
            "received_at": received_at,
            "event_id": str(event.event_id),
            "correlation_id": event.correlation_id,
            **verdict.model_dump(
                mode="json",
                include={"negative", "score", "severity", "topic", "explanation", "stage"},
            ),
        }
        docs.append(item)
        labels.append((event.county, "true" if verdict.negative else "false"))
    stored_before: set[int] = set()
    try:
        await sentiment.runtime.db.items.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(
            error.get("code") != DUPLICATE_KEY for error in errors
        ):
            raise
        stored_before = {error["index"] for error in errors}
    for index, label in enumerate(labels):
        if index not in stored_before:
            ITEMS.labels(*label).inc()
    return [doc for doc in docs if doc["negative"]]


def _rule_severity(config: SentimentConfig, minutes: dict[str, int], latest: datetime) -> Severity:
    severity = Severity.BLUE
    for rule in config.incident.volume:
        since = _minute(latest - timedelta(hours=rule.hours))
        if sum(n for m, n in minutes.items() if m > since) >= rule.items:
            severity = _max_severity(severity, rule.severity)
    for velocity in config.incident.velocity:
        since = _minute(latest - timedelta(minutes=velocity.minutes))
        if sum(n for m, n in minutes.items() if m > since) >= velocity.items:
            severity = _max_severity(severity, velocity.severity)
    return severity


def _horizon(config: SentimentConfig) -> timedelta:
    hours = [rule.hours for rule in config.incident.volume]
    hours += [rule.minutes / 60 for rule in config.incident.velocity]
    return timedelta(hours=max(hours, default=1))


@dataclass
class IncidentFold:
    """One incident's change from one batch: its document as it grows, what it was when
    read, and the items folded into it."""

    doc: dict[str, Any]
    stored_updated_at: datetime | None  # None for an incident this batch opens
    severity_before: Severity
    alert_before: str | None
    items: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, doc: dict[str, Any]) -> IncidentFold:
        return cls(
            doc=doc,
            stored_updated_at=doc.get("updated_at"),
            severity_before=Severity(doc["severity"]),
            alert_before=doc.get("alert_id"),
        )

    def add(self, *, config: SentimentConfig, item: dict[str, Any]) -> None:
        """Count the item: volume per minute, severity, sources, last activity and the
        list of counted item ids that makes a redelivery count nothing."""
        incident = self.doc
        published_at: datetime = item["published_at"]
        minutes: dict[str, int] = dict(incident["minutes"])
        slot = _minute(published_at)
        minutes[slot] = minutes.get(slot, 0) + 1
        latest = max(incident["last_item_at"], published_at)
        oldest = _minute(latest - _horizon(config))
        minutes = {m: n for m, n in minutes.items() if m > oldest}
        severity = _max_severity(
            Severity(incident["severity"]),
            Severity(item["severity"]),
            _rule_severity(config, minutes, latest),
        )
        incident.update(
            severity=severity.value,
            item_count=incident["item_count"] + 1,
            sources=sorted({*incident["sources"], item["source"]}),
            last_item_at=latest,
            minutes=minutes,
            updated_at=now_utc(),
        )
        incident.setdefault("item_ids", []).append(item["_id"])
        self.items.append(item)


def _new_incident(*, item: dict[str, Any], signature: set[str]) -> IncidentFold:
    published_at: datetime = item["published_at"]
    return IncidentFold(
        doc={
            "_id": f"inc-{uuid.uuid4().hex[:16]}",
            "group": _group_of(item),
            "county": item["county"],
            "school": item["school"],
            "topic": item["topic"],
            "severity": Severity.BLUE.value,
            "item_count": 0,
            "sources": [],
            "signature": sorted(signature),
            "first_item_at": published_at,
            "last_item_at": published_at,
            "minutes": {},
            "alert_id": None,
            "item_ids": [],
            "created_at": now_utc(),
        },
        stored_updated_at=None,
        severity_before=Severity.BLUE,
        alert_before=None,
    )


def _matching_incident(
    *, config: SentimentConfig, folds: list[IncidentFold], item: dict[str, Any], signature: set[str]
) -> IncidentFold | None:
    """The most recently active incident of the item's group within the window with the
    same topic or similar text."""
    since = item["published_at"] - timedelta(hours=config.incident.window_hours)
    recent = sorted(
        (f for f in folds if f.doc["last_item_at"] >= since),
        key=lambda f: f.doc["last_item_at"],
        reverse=True,
    )[:20]
    return next(
        (
            f
            for f in recent
            if f.doc["topic"] == item["topic"]
            or _jaccard(set(f.doc["signature"]), signature) >= config.incident.similarity
        ),
        None,
    )


async def _fold_negatives(*, sentiment: Sentiment, items: list[dict[str, Any]]) -> None:
    """Group the batch's negative items by incident in memory, skipping those an incident
    counted already (a redelivery), then write each incident's change once."""
    if not items:
        return
    config = sentiment.config
    since = min(item["published_at"] for item in items) - timedelta(
        hours=config.incident.window_hours
    )
    by_group: dict[str, list[IncidentFold]] = {}
    stored = sentiment.runtime.db.incidents.find(
        {"group": {"$in": sorted({_group_of(i) for i in items})}, "last_item_at": {"$gte": since}}
    )
    counted: set[str] = set()
    async for doc in stored:
        by_group.setdefault(doc["group"], []).append(IncidentFold.of(doc))
        counted.update(doc.get("item_ids", ()))
    touched: dict[str, IncidentFold] = {}
    for item in items:
        if item["_id"] in counted:
            continue
        signature = _bigrams(normalise(item["text"]))
        folds = by_group.setdefault(_group_of(item), [])
        fold = _matching_incident(config=config, folds=folds, item=item, signature=signature)
        if fold is None:
            fold = _new_incident(item=item, signature=signature)
            folds.append(fold)
        fold.add(config=config, item=item)
        touched[fold.doc["_id"]] = fold
    # incidents are independent of each other: their writes overlap their waits
    limit = asyncio.Semaphore(FOLD_CONCURRENCY)

    async def commit(fold: IncidentFold) -> None:
        async with limit:
            await _commit_fold(sentiment=sentiment, fold=fold)

    outcomes = await asyncio.gather(
        *(commit(fold) for fold in touched.values()), return_exceptions=True
    )
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:
        raise failure


async def _store_incident(
    *, sentiment: Sentiment, fold: IncidentFold, session: AsyncClientSession | None = None
) -> None:
    """Insert a new incident, or update one only if nobody changed it since it was read,
    adding the newly counted item ids."""
    incidents = sentiment.runtime.db.incidents
    incident = fold.doc
    if fold.stored_updated_at is None:
        await incidents.insert_one(incident, session=session)
        return
    changes = {
        field_name: incident[field_name]
        for field_name in (
            "severity", "item_count", "sources", "last_item_at", "minutes", "updated_at",
            "alert_id",
        )
    }  # fmt: skip
    done = await incidents.update_one(
        {"_id": incident["_id"], "updated_at": fold.stored_updated_at},
        {"$set": changes, "$push": {"item_ids": {"$each": [i["_id"] for i in fold.items]}}},
        session=session,
    )
    if done.matched_count != 1:
        raise FoldConflict(f"incident {incident['_id']} changed meanwhile")


async def _commit_fold(*, sentiment: Sentiment, fold: IncidentFold) -> None:
    """Store the incident's change from this batch: alone when nothing is announced (one
    document, atomic by itself), or in one transaction with its alert and its outbox
    event when an alert is raised or escalated."""
    runtime = sentiment.runtime
    alerts = sentiment.config.alerts
    incident = fold.doc
    severity = Severity(incident["severity"])
    kind: FlagKind | None = None
    if fold.alert_before is None:
        if severity.rank >= alerts.min_severity.rank and incident["item_count"] >= alerts.min_items:
            kind = FlagKind.ALERT
            incident["alert_id"] = f"al-{incident['_id'][4:]}"
    elif severity.rank > fold.severity_before.rank:
        kind = FlagKind.ESCALATION
    if kind is None:
        await _store_incident(sentiment=sentiment, fold=fold)
        if fold.alert_before is not None:
            # the alert grows with its incident even when nothing new is announced
            await runtime.db.alerts.update_one(
                {"_id": fold.alert_before},
                {"$max": {"item_count": incident["item_count"]}, "$set": {"updated_at": now_utc()}},
            )
    else:
        lead = max(fold.items, key=lambda item: (Severity(item["severity"]).rank, item["score"]))

        async def effect(session: AsyncClientSession) -> None:
            await _store_incident(sentiment=sentiment, fold=fold, session=session)
            alert = await _raise_alert(
                sentiment=sentiment, incident=incident, kind=kind, session=session
            )
            await _announce(
                sentiment=sentiment,
                alert=alert,
                kind=kind,
                score=lead["score"],
                explanation=lead["explanation"],
                correlation_id=lead.get("correlation_id"),
                session=session,
            )

        await in_transaction(runtime.mongo, effect)
        runtime.outbox_written()
    if fold.stored_updated_at is None:
        INCIDENTS.labels(incident["county"]).inc()


def _deadline(config: SentimentConfig, severity: Severity, start: datetime) -> datetime:
    return start + timedelta(seconds=config.alerts.deadline_seconds[severity])


async def _raise_alert(
    *,
    sentiment: Sentiment,
    incident: dict[str, Any],
    kind: FlagKind,
    session: AsyncClientSession,
) -> dict[str, Any]:
    """Open the incident's alert, or raise its severity."""
    db = sentiment.runtime.db
    config = sentiment.config
    now = now_utc()
    severity = Severity(incident["severity"])
    serious = severity.rank >= config.alerts.serious_from.rank
    common = {
        "severity": severity.value,
        "serious": serious,
        "item_count": incident["item_count"],
        "topic": incident["topic"],
        "updated_at": now,
    }
    if kind == FlagKind.ALERT:
        level: OwnerLevel = "school" if incident["school"] else "county"
        alert = {
            "_id": incident["alert_id"],
            "incident_id": incident["_id"],
            "county": incident["county"],
            "school": incident["school"],
            "owner_level": level,
            "owner_unit": incident["school"] or incident["county"],
            "state": "open",
            "deadline": _deadline(config, severity, now),
            "created_at": now,
            "history": [
                {"at": now, "action": "raised", "by": SERVICE, "comment": "", "owner_level": level}
            ],
            **common,
        }
        await db.alerts.insert_one(alert, session=session)
        return alert
    current = await db.alerts.find_one({"_id": incident["alert_id"]}, session=session)
    if current is None:
        raise AlertNotFound(incident["alert_id"])
    update: dict[str, Any] = dict(common)
    if current["state"] == "open":
        update["deadline"] = min(current["deadline"], _deadline(config, severity, now))
    entry = {
        "at": now,
        "action": f"severity raised to {severity.value}",
        "by": SERVICE,
        "comment": "",
        "owner_level": current["owner_level"],
    }
    await db.alerts.update_one(
        {"_id": current["_id"]}, {"$set": update, "$push": {"history": entry}}, session=session
    )
    return {**current, **update}


async def _announce(
    *,
    sentiment: Sentiment,
    alert: dict[str, Any],
    kind: FlagKind,
    score: float,
    explanation: list[str],
    correlation_id: str | None,
    session: AsyncClientSession,
) -> None:
    """``opinion.flagged`` through the outbox, and a webhook notification when one is set."""
    flagged = OpinionFlagged(
        kind=kind,
        incident_id=alert["incident_id"],
        alert_id=alert["_id"],
        county=alert["county"],
        school=alert["school"],
        owner_level=alert["owner_level"],
        severity=Severity(alert["severity"]),
        serious=alert["serious"],
        negative=True,
        score=score,
        topic=alert["topic"],
        explanation=explanation,
        item_count=alert["item_count"],
        flagged_at=now_utc(),
    )
    event = OpinionFlaggedEvent.build(
        flagged,
        producer=SERVICE,
        county=alert["county"],
        unit=alert["owner_unit"],
        correlation_id=correlation_id,
    )
    await sentiment.runtime.emit(tp.OPINION_FLAGGED, event, session=session)
    await _queue_notification(sentiment=sentiment, event=event, session=session)


# ---- story screening ------------------------------------------------------------------
async def screen_story(*, sentiment: Sentiment, event: StorySubmittedEvent) -> None:
    """Screen a submitted story's own text once per version; flag it when negative or
    sensitive so that review holds it."""
    payload = event.payload
    runtime = sentiment.runtime
    key = f"{payload.story_id}:v{payload.version}"
    if await runtime.db.screenings.find_one({"_id": key}, projection={"_id": 1}) is not None:
        return
    verdict = await classify(sentiment=sentiment, text=f"{payload.title}\n{payload.body}")
    flagged = verdict.negative or bool(verdict.sensitive_words)
    unit = sentiment.org.get(payload.unit_path.unit)
    school = unit.code if unit is not None and unit.is_school() else None
    county = payload.unit_path.county
    doc = {
        "_id": key,
        "story_id": payload.story_id,
        "version": payload.version,
        "county": county,
        "unit": payload.unit_path.unit,
        "flagged": flagged,
        "screened_at": now_utc(),
        **verdict.model_dump(mode="json"),
    }

    async def effect(session: AsyncClientSession) -> None:
        await runtime.db.screenings.insert_one(doc, session=session)
        if not flagged:
            return
        explanation = verdict.explanation + [
            word for word in verdict.sensitive_words if word not in verdict.explanation
        ]
        screening = OpinionFlagged(
            kind=FlagKind.STORY_SCREENING,
            story_id=payload.story_id,
            story_version=payload.version,
            county=county,
            school=school,
            severity=verdict.severity,
            serious=verdict.severity.rank >= sentiment.config.alerts.serious_from.rank,
            negative=verdict.negative,
            score=verdict.score,
            topic=verdict.topic,
            explanation=explanation,
            flagged_at=now_utc(),
        )
        await runtime.emit(
            tp.OPINION_FLAGGED,
            OpinionFlaggedEvent.build(
                screening,
                producer=SERVICE,
                county=county,
                unit=payload.unit_path.unit,
                correlation_id=event.correlation_id,
            ),
            session=session,
        )

    try:
        await in_transaction(runtime.mongo, effect)
    except DuplicateKeyError:
        return
    SCREENINGS.labels("true" if flagged else "false").inc()
    if flagged:
        runtime.outbox_written()


async def get_screening(*, sentiment: Sentiment, story_id: str) -> list[dict[str, Any]]:
    """Every screened version of a story, newest first."""
    return (
        await sentiment.runtime.db.screenings.find({"story_id": story_id})
        .sort("version", DESCENDING)
        .to_list()
    )


# ---- alerts: people's actions and the deadline job ------------------------------------
ACTIONS: dict[str, tuple[frozenset[str], AlertState | None]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged"),
    "respond": (frozenset({"acknowledged", "responding"}), "responding"),
    "close": (frozenset({"open", "acknowledged", "responding"}), "closed"),
    "comment": (frozenset({"open", "acknowledged", "responding", "closed"}), None),
}


def can_act_on(*, org: OrgTree, principal: Principal, alert: dict[str, Any]) -> bool:
    """The alert's current owner unit, or any unit above it, may act on it."""
    return org.contains(principal.unit, alert["owner_unit"])


async def act_on_alert(
    *, sentiment: Sentiment, alert_id: str, action: str, principal: Principal, comment: str
) -> dict[str, Any]:
    """Move an alert along open → acknowledged → responding → closed, or comment on it."""
    db = sentiment.runtime.db
    alert = await db.alerts.find_one({"_id": alert_id})
    if alert is None or not in_scope_of(org=sentiment.org, principal=principal, doc=alert):
        raise AlertNotFound(alert_id)
    if not can_act_on(org=sentiment.org, principal=principal, alert=alert):
        raise PermissionError(
            f"alert {alert_id} is now owned by {alert['owner_unit']!r} ({alert['owner_level']})"
        )
    allowed, target = ACTIONS[action]
    if alert["state"] not in allowed:
        raise AlertConflict(f"cannot {action} an alert that is {alert['state']}")
    if action in ("close", "comment") and not comment.strip():
        raise AlertConflict(f"to {action} an alert, say why in a comment")
    now = now_utc()
    entry = {
        "at": now,
        "action": action,
        "by": principal.sub,
        "comment": comment,
        "owner_level": alert["owner_level"],
    }
    changes: dict[str, Any] = {"updated_at": now}
    if target is not None:
        changes["state"] = target
    done = await db.alerts.find_one_and_update(
        {"_id": alert_id, "state": alert["state"]},
        {"$set": changes, "$push": {"history": entry}},
        return_document=True,
    )
    if done is None:
        raise AlertConflict("the alert changed meanwhile; reload it and try again")
    return done


async def escalate_overdue(*, sentiment: Sentiment) -> int:
    """Hand each open alert past its deadline one level up, with a new deadline, and
    announce it again."""
    runtime = sentiment.runtime
    db = runtime.db
    config = sentiment.config
    now = now_utc()
    due = (
        await db.alerts.find(
            {"state": "open", "deadline": {"$lte": now}, "owner_level": {"$ne": "city"}}
        )
        .limit(200)
        .to_list()
    )
    escalated = 0
    for alert in due:
        level: OwnerLevel = NEXT_LEVEL[alert["owner_level"]]
        if level == "county" and not alert["county"]:
            level = "city"
        unit = alert["county"] if level == "county" else sentiment.org.city.code
        severity = Severity(alert["severity"])
        changes = {
            "owner_level": level,
            "owner_unit": unit,
            "deadline": _deadline(config, severity, now),
            "updated_at": now,
        }
        entry = {
            "at": now,
            "action": f"escalated to {level}",
            "by": SERVICE,
            "comment": f"not acknowledged by {alert['owner_unit']} before the deadline",
            "owner_level": level,
        }
        moved = False

        async def effect(
            session: AsyncClientSession,
            alert: dict[str, Any] = alert,
            changes: dict[str, Any] = changes,
            entry: dict[str, Any] = entry,
        ) -> None:
            nonlocal moved
            done = await db.alerts.update_one(
                {"_id": alert["_id"], "state": "open", "owner_level": alert["owner_level"]},
                {"$set": changes, "$push": {"history": entry}},
                session=session,
            )
            moved = done.modified_count == 1
            if moved:
                await _announce(
                    sentiment=sentiment,
                    alert={**alert, **changes},
                    kind=FlagKind.ESCALATION,
                    score=1.0,
                    explanation=[entry["comment"]],
                    correlation_id=None,
                    session=session,
                )

        await in_transaction(runtime.mongo, effect)
        if moved:
            escalated += 1
            ALERTS_ESCALATED.labels(level).inc()
    if escalated:
        runtime.outbox_written()
    return escalated


async def refresh_gauges(*, sentiment: Sentiment) -> None:
    """Open alerts per severity, counted from the database."""
    counts = {s.value: 0 for s in Severity}
    async for row in await sentiment.runtime.db.alerts.aggregate(
        [
            {"$match": {"state": {"$ne": "closed"}}},
            {"$group": {"_id": "$severity", "n": {"$sum": 1}}},
        ]
    ):
        counts[row["_id"]] = row["n"]
    for severity, count in counts.items():
        ALERTS_OPEN.labels(severity).set(count)


# ---- determination (认定) ----------------------------------------------------------------
async def determine_incident(
    *,
    sentiment: Sentiment,
    incident_id: str,
    principal: Principal,
    reason: str,
    determined: bool,
) -> dict[str, Any]:
    """Record the city bureau's determination that an incident is a serious negative
    incident (or lift it) and announce it on ``opinion.flagged`` in the same transaction:
    scoring vetoes the unit's year on this, never on the alert's severity alone."""
    runtime = sentiment.runtime
    db = runtime.db
    incident = await db.incidents.find_one({"_id": incident_id}, projection={"item_ids": False})
    if incident is None:
        raise IncidentNotFound(incident_id)
    current = (incident.get("determination") or {}).get("determined", False)
    if current == determined:
        raise AlertConflict(
            "该事件已被认定为严重负面舆情事件" if determined else "该事件尚未被认定，无需撤销"
        )
    now = now_utc()
    record = {
        "determined": determined,
        "by": principal.sub,
        "by_name": principal.name,
        "at": now,
        "reason": reason.strip(),
    }
    kind = FlagKind.DETERMINATION if determined else FlagKind.DETERMINATION_LIFTED
    flagged = OpinionFlagged(
        kind=kind,
        incident_id=incident_id,
        alert_id=incident.get("alert_id"),
        county=incident["county"],
        school=incident["school"],
        owner_level="city",
        severity=Severity(incident["severity"]),
        negative=True,
        score=1.0,
        topic=incident["topic"],
        item_count=incident["item_count"],
        flagged_at=now,
        decided_by=principal.sub,
        decided_by_name=principal.name,
        reason=record["reason"],
        incident_at=incident["first_item_at"],
    )
    event = OpinionFlaggedEvent.build(
        flagged, producer=SERVICE, county=incident["county"],
        unit=incident["school"] or incident["county"],
    )  # fmt: skip
    # the state read above must still hold: two officers deciding at once do not both win
    unchanged = (
        {"determination.determined": True}
        if current
        else {"$or": [{"determination": {"$exists": False}}, {"determination.determined": False}]}
    )

    async def effect(session: AsyncClientSession) -> None:
        done = await db.incidents.update_one(
            {"_id": incident_id, **unchanged},
            {"$set": {"determination": record}, "$push": {"determination_history": record}},
            session=session,
        )
        if done.modified_count != 1:
            raise AlertConflict("该事件的认定状态刚刚被他人更改，请刷新后重试")
        await runtime.emit(tp.OPINION_FLAGGED, event, session=session)

    await in_transaction(runtime.mongo, effect)
    runtime.outbox_written()
    return {**incident, "determination": record}


# ---- queries --------------------------------------------------------------------------
def scope_filter(*, org: OrgTree, principal: Principal) -> dict[str, Any]:
    """Incidents and alerts about the principal's unit and the units below it."""
    if principal.unit == org.city.code:
        return {}
    codes = [unit.code for unit in org.below(principal.unit)]
    return {"$or": [{"county": {"$in": codes}}, {"school": {"$in": codes}}]}


def in_scope_of(*, org: OrgTree, principal: Principal, doc: dict[str, Any]) -> bool:
    if principal.unit == org.city.code:
        return True
    return any(
        code and org.contains(principal.unit, code)
        for code in (doc.get("school"), doc.get("county"))
    )


async def list_incidents(
    *, sentiment: Sentiment, principal: Principal, severity: Severity | None, limit: int
) -> list[dict[str, Any]]:
    query = scope_filter(org=sentiment.org, principal=principal)
    if severity is not None:
        query["severity"] = severity.value
    cursor = sentiment.runtime.db.incidents.find(query, projection={"item_ids": False}).sort(
        "last_item_at", DESCENDING
    )
    return await cursor.limit(limit).to_list()


async def get_incident(
    *, sentiment: Sentiment, principal: Principal, incident_id: str, item_limit: int = 500
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """An incident in scope with its items, oldest first."""
    db = sentiment.runtime.db
    incident = await db.incidents.find_one({"_id": incident_id})
    if incident is None or not in_scope_of(org=sentiment.org, principal=principal, doc=incident):
        return None
    # incidents list the items they counted; those from before that list link each item
    query = (
        {"_id": {"$in": incident["item_ids"][:item_limit]}}
        if "item_ids" in incident
        else {"incident_id": incident_id}
    )
    items = await db.items.find(query).sort("published_at", ASCENDING).limit(item_limit).to_list()
    return incident, items


async def list_alerts(
    *,
    sentiment: Sentiment,
    principal: Principal,
    state: AlertState | None,
    severity: Severity | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = scope_filter(org=sentiment.org, principal=principal)
    if state is not None:
        query["state"] = state
    if severity is not None:
        query["severity"] = severity.value
    cursor = sentiment.runtime.db.alerts.find(query).sort("updated_at", DESCENDING)
    return await cursor.limit(limit).to_list()


async def get_alert(
    *, sentiment: Sentiment, principal: Principal, alert_id: str
) -> dict[str, Any] | None:
    alert = await sentiment.runtime.db.alerts.find_one({"_id": alert_id})
    if alert is None or not in_scope_of(org=sentiment.org, principal=principal, doc=alert):
        return None
    return alert


# ---- webhook notifications ------------------------------------------------------------
async def _queue_notification(
    *, sentiment: Sentiment, event: OpinionFlaggedEvent, session: AsyncClientSession
) -> None:
    """Keep the notification in the same transaction as the alert change; the delivery
    job sends it (with retries) when a webhook is configured."""
    if not sentiment.settings.sentiment_webhook_url:
        return
    await sentiment.runtime.db.notifications.insert_one(
        {
            "_id": str(event.event_id),
            "body": event.model_dump_json(),
            "attempts": 0,
            "next_at": now_utc(),
            "delivered_at": None,
            "failed_at": None,
            "last_error": None,
        },
        session=session,
    )


def sign(*, secret: str, timestamp: str, body: str) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``, hex, as sent in ``X-CityDesk-Signature``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


async def deliver_notifications(*, sentiment: Sentiment, client: httpx.AsyncClient) -> int:
    """POST pending notifications; back off exponentially on failure, give up after the
    configured number of attempts. Returns how many were delivered."""
    settings = sentiment.settings
    url = settings.sentiment_webhook_url
    if not url:
        return 0
    secret = (
        settings.sentiment_webhook_secret.get_secret_value()
        if settings.sentiment_webhook_secret
        else ""
    )
    db = sentiment.runtime.db
    now = now_utc()
    pending = (
        await db.notifications.find(
            {"delivered_at": None, "failed_at": None, "next_at": {"$lte": now}}
        )
        .sort("next_at", ASCENDING)
        .limit(50)
        .to_list()
    )
    delivered = 0
    for note in pending:
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-citydesk-event-id": note["_id"],
            "x-citydesk-timestamp": timestamp,
            "x-citydesk-signature": sign(secret=secret, timestamp=timestamp, body=note["body"]),
        }
        error: str | None = None
        try:
            response = await client.post(url, content=note["body"].encode(), headers=headers)
            if response.status_code >= 300:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        attempts = note["attempts"] + 1
        if error is None:
            await db.notifications.update_one(
                {"_id": note["_id"]}, {"$set": {"delivered_at": now_utc(), "attempts": attempts}}
            )
            WEBHOOK_DELIVERIES.labels("delivered").inc()
            delivered += 1
            continue
        gave_up = attempts >= settings.sentiment_webhook_max_attempts
        await db.notifications.update_one(
            {"_id": note["_id"]},
            {
                "$set": {
                    "attempts": attempts,
                    "last_error": error,
                    "next_at": now_utc() + timedelta(seconds=min(300, 2**attempts)),
                    "failed_at": now_utc() if gave_up else None,
                }
            },
        )
        WEBHOOK_DELIVERIES.labels("failed" if gave_up else "retry").inc()
        log.warning("webhook delivery failed: %s", error, extra={"event_id": note["_id"]})
    return delivered
