"""Story screening: each submitted version's own text analysed once; a negative or
sensitive one is flagged on ``opinion.flagged`` so that review holds it."""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from services.sentiment.metrics import SCREENINGS
from services.sentiment.models import Verdict
from services.sentiment.rules import classify
from services.sentiment.runtime import SERVICE, Sentiment
from shared import topics as tp
from shared.clock import utcnow
from shared.events import (
    FlagKind,
    OpinionFlagged,
    OpinionFlaggedEvent,
    StorySubmittedEvent,
)
from shared.mongo import in_transaction


def _screening_flag(
    *, runtime: Sentiment, event: StorySubmittedEvent, verdict: Verdict
) -> OpinionFlaggedEvent:
    payload = event.payload
    unit = runtime.org.get(payload.unit_path.unit)
    explanation = verdict.explanation + [
        word for word in verdict.sensitive_words if word not in verdict.explanation
    ]
    screening = OpinionFlagged(
        kind=FlagKind.STORY_SCREENING,
        story_id=payload.story_id,
        story_version=payload.version,
        county=payload.unit_path.county,
        school=unit.code if unit is not None and unit.is_school() else None,
        severity=verdict.severity,
        serious=verdict.severity.rank >= runtime.config.alerts.serious_from.rank,
        negative=verdict.negative,
        score=verdict.score,
        topic=verdict.topic,
        explanation=explanation,
        flagged_at=utcnow(),
    )
    return OpinionFlaggedEvent.build(
        screening,
        producer=SERVICE,
        county=payload.unit_path.county,
        unit=payload.unit_path.unit,
        correlation_id=event.correlation_id,
    )


async def screen_story(*, runtime: Sentiment, event: StorySubmittedEvent) -> None:
    """Screen a submitted story's own text once per version; flag it when negative or
    sensitive so that review holds it."""
    payload = event.payload
    key = f"{payload.story_id}:v{payload.version}"
    if await runtime.db.screenings.find_one({"_id": key}, projection={"_id": 1}) is not None:
        return
    verdict = await classify(runtime=runtime, text=f"{payload.title}\n{payload.body}")
    flagged = verdict.negative or bool(verdict.sensitive_words)
    doc = {
        "_id": key,
        "story_id": payload.story_id,
        "version": payload.version,
        "county": payload.unit_path.county,
        "unit": payload.unit_path.unit,
        "flagged": flagged,
        "screened_at": utcnow(),
        **verdict.model_dump(mode="json"),
    }

    async def effect(session: AsyncClientSession) -> None:
        await runtime.db.screenings.insert_one(doc, session=session)
        if flagged:
            flag = _screening_flag(runtime=runtime, event=event, verdict=verdict)
            await runtime.emit(tp.OPINION_FLAGGED, flag, session=session)

    try:
        await in_transaction(runtime.mongo, effect)
    except DuplicateKeyError:
        return
    SCREENINGS.labels("true" if flagged else "false").inc()
    if flagged:
        runtime.outbox_written()


async def get_screening(*, runtime: Sentiment, story_id: str) -> list[dict[str, Any]]:
    """Every screened version of a story, newest first."""
    return (
        await runtime.db.screenings.find({"story_id": story_id})
        .sort("version", DESCENDING)
        .to_list()
    )
