"""What scoring one batch needs and what every scorer writes: ledger entries with a
natural key, attributed to a unit and the Shanghai month of the event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.scoring.periods import month_of, year_of
from services.scoring.service import RuleBook
from shared import events as ev
from shared.kafka import PermanentError
from shared.orgtree import OrgTree, Unit

# entry kinds whose history decides a story's next points
STORY_STATE_KINDS = ("publication", "media_bonus", "withdrawal", "adoption", "leader_bonus")


@dataclass
class Scoring:
    """What one batch needs: the rules, the org tree, and the ledger history of the
    batch's stories (extended as the batch's own entries are computed)."""

    book: RuleBook
    org: OrgTree
    story_history: dict[str, list[dict[str, Any]]]
    entries: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    def unit(self, code: str | None) -> Unit:
        found = self.org.get(code) if code else None
        if found is None:
            raise PermanentError(f"unknown unit {code!r}")
        return found

    def add(
        self,
        event: ev.Envelope,
        *,
        key: str,
        kind: str,
        unit: Unit,
        points: float,
        reason: str,
        story_id: str | None = None,
        counts: dict[str, int] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        version = self.book.at(event.occurred_at)
        entry = new_entry(
            key=key,
            kind=kind,
            unit=unit,
            at=event.occurred_at,
            points=points,
            reason=reason,
            rule_version=version.version,
            source_event_id=str(event.event_id),
            story_id=story_id,
            counts=counts,
            detail=detail,
        )
        self.entries.append(entry)
        if story_id is not None and kind in STORY_STATE_KINDS:
            self.story_history.setdefault(story_id, []).append(entry)
        return entry

    def add_item(
        self, event: ev.Envelope, *, campaign: str, what: str, item: str, unit: Unit
    ) -> None:
        self.items.append(
            {
                "_id": f"{campaign}|{what}|{item}",
                "campaign": campaign,
                "what": what,
                "unit": unit.code,
                "county": unit.county,
                "occurred_at": event.occurred_at,
                "source_event_id": str(event.event_id),
            }
        )


def new_entry(
    *,
    key: str,
    kind: str,
    unit: Unit,
    at: datetime,
    points: float,
    reason: str,
    rule_version: int,
    source_event_id: str | None,
    story_id: str | None = None,
    counts: dict[str, int] | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ledger entry, attributed to ``unit`` and the Shanghai month of ``at``."""
    return {
        "_id": key,
        "kind": kind,
        "unit": unit.code,
        "county": unit.county,
        "period": month_of(at),
        "year": year_of(at),
        "occurred_at": at,
        "points": round(points, 4),
        "reason": reason,
        "rule_version": rule_version,
        "source_event_id": source_event_id,
        "story_id": story_id,
        "counts": {k: v for k, v in (counts or {}).items() if v},
        "detail": detail or {},
    }
