"""Scorers of opinion: an alert records the incident and may propose a veto; only the
bureau's determination (认定) vetoes, and lifting it restores the award place."""

from __future__ import annotations

from services.scoring.documents import EntryKind
from services.scoring.periods import year_of
from services.scoring.scorers.base import Scoring
from shared import events as ev
from shared.kafka import PermanentError
from shared.orgtree import Unit

SEVERITY_NAMES = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}


def score_flagged(scoring: Scoring, event: ev.OpinionFlaggedEvent) -> None:
    """An alert or escalation records the incident, and at the rules' serious severity
    proposes it as a veto candidate; only the bureau's determination (认定) vetoes."""
    flag = event.payload
    if flag.kind == ev.FlagKind.STORY_SCREENING or not flag.negative:
        return
    unit = scoring.unit(flag.school or flag.county or event.unit or event.county)
    incident = flag.incident_id or flag.alert_id or str(event.event_id)
    severity = SEVERITY_NAMES[flag.severity.value]
    if flag.kind in (ev.FlagKind.DETERMINATION, ev.FlagKind.DETERMINATION_LIFTED):
        _score_determination(scoring, event, unit, incident)
        return
    rules = scoring.book.at(event.occurred_at).rules
    detail = {
        "incident_id": incident,
        "alert_id": flag.alert_id,
        "topic": flag.topic,
        "severity": flag.severity.value,
        "flagged_at": flag.flagged_at,
    }
    # every incident counts; one at the serious severity is also a veto candidate
    entries: list[tuple[EntryKind, str, dict[str, int] | None]] = [
        ("incident", f"负面舆情事件：{flag.topic}（{severity}）", {"incidents": 1})
    ]
    if flag.severity.rank >= rules.opinion.serious_severity.rank:
        why = f"舆情达到{severity}预警，列为一票否决候选，待市教育局认定：{flag.topic}"
        entries.append(("veto_candidate", why, None))
    for kind, reason, counts in entries:
        scoring.add(
            event, key=f"{kind}|{incident}|{unit.code}", kind=kind, unit=unit, points=0,
            reason=reason, counts=counts, detail=detail,
        )  # fmt: skip


def _score_determination(
    scoring: Scoring, event: ev.OpinionFlaggedEvent, unit: Unit, incident: str
) -> None:
    flag = event.payload
    determined = flag.kind == ev.FlagKind.DETERMINATION
    if not (flag.decided_by and flag.reason and flag.reason.strip()):
        raise PermanentError("a determination names who decided and why")
    incident_at = flag.incident_at or flag.flagged_at
    kind: EntryKind = "determination" if determined else "determination_lifted"
    entry = scoring.add(
        event,
        key=f"{kind}|{event.event_id}",
        kind=kind,
        unit=unit,
        points=0,
        reason=(
            f"经认定为严重负面舆情事件，一票否决：{flag.topic}。认定理由：{flag.reason}"
            if determined
            else f"撤销严重负面舆情认定：{flag.topic}。理由：{flag.reason}"
        ),
        counts={"serious_incidents": 1 if determined else -1},
        detail={
            "incident_id": incident,
            "topic": flag.topic,
            "severity": flag.severity.value,
            "decided_by": flag.decided_by,
            "decided_by_name": flag.decided_by_name or flag.decided_by,
            "reason": flag.reason,
            "incident_at": incident_at,
        },
    )
    # the veto falls on the year of the incident, whenever the bureau decided
    entry["year"] = year_of(incident_at)
