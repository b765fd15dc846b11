"""Incidents: negative items about one school (or one county) within a window, of one
topic or alike in wording, counted once each; their severity rises with the items' own
and with volume and velocity. An incident's change is written once per batch, with its
alert and announcement in one transaction when one is due."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from services.sentiment.alerts import announce, raise_alert
from services.sentiment.classifier import normalise
from services.sentiment.metrics import INCIDENTS
from services.sentiment.models import SentimentConfig
from services.sentiment.rules import max_severity
from services.sentiment.runtime import Sentiment
from services.sentiment.similarity import bigrams, jaccard
from shared.clock import utcnow
from shared.events import FlagKind, Severity
from shared.mongo import in_transaction

FOLD_CONCURRENCY = 8  # incident transactions of one batch in flight at once


def _minute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%d%H%M")


class FoldConflict(Exception):
    """Another consumer changed an incident meanwhile: the batch is read again and
    retried."""


def _group_of(item: dict[str, Any]) -> str:
    return item["school"] or f"county:{item['county']}"


def _rule_severity(config: SentimentConfig, minutes: dict[str, int], latest: datetime) -> Severity:
    severity = Severity.BLUE
    for rule in config.incident.volume:
        since = _minute(latest - timedelta(hours=rule.hours))
        if sum(n for m, n in minutes.items() if m > since) >= rule.items:
            severity = max_severity(severity, rule.severity)
    for velocity in config.incident.velocity:
        since = _minute(latest - timedelta(minutes=velocity.minutes))
        if sum(n for m, n in minutes.items() if m > since) >= velocity.items:
            severity = max_severity(severity, velocity.severity)
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
        severity = max_severity(
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
            updated_at=utcnow(),
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
            "created_at": utcnow(),
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
            or jaccard(set(f.doc["signature"]), signature) >= config.incident.similarity
        ),
        None,
    )


async def fold_negatives(*, runtime: Sentiment, items: list[dict[str, Any]]) -> None:
    """Group the batch's negative items by incident in memory, skipping those an incident
    counted already (a redelivery), then write each incident's change once."""
    if not items:
        return
    config = runtime.config
    since = min(item["published_at"] for item in items) - timedelta(
        hours=config.incident.window_hours
    )
    by_group: dict[str, list[IncidentFold]] = {}
    stored = runtime.db.incidents.find(
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
        signature = bigrams(normalise(item["text"]))
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
            await _commit_fold(runtime=runtime, fold=fold)

    outcomes = await asyncio.gather(
        *(commit(fold) for fold in touched.values()), return_exceptions=True
    )
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:
        raise failure


async def _store_incident(
    *, runtime: Sentiment, fold: IncidentFold, session: AsyncClientSession | None = None
) -> None:
    """Insert a new incident, or update one only if nobody changed it since it was read,
    adding the newly counted item ids."""
    incidents = runtime.db.incidents
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


async def _commit_fold(*, runtime: Sentiment, fold: IncidentFold) -> None:
    """Store the incident's change from this batch: alone when nothing is announced (one
    document, atomic by itself), or in one transaction with its alert and its outbox
    event when an alert is raised or escalated."""
    alerts = runtime.config.alerts
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
        await _store_incident(runtime=runtime, fold=fold)
        if fold.alert_before is not None:
            # the alert grows with its incident even when nothing new is announced
            await runtime.db.alerts.update_one(
                {"_id": fold.alert_before},
                {"$max": {"item_count": incident["item_count"]}, "$set": {"updated_at": utcnow()}},
            )
    else:
        lead = max(fold.items, key=lambda item: (Severity(item["severity"]).rank, item["score"]))

        async def effect(session: AsyncClientSession) -> None:
            await _store_incident(runtime=runtime, fold=fold, session=session)
            alert = await raise_alert(
                runtime=runtime, incident=incident, kind=kind, session=session
            )
            await announce(
                runtime=runtime,
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
