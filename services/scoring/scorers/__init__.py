"""One scorer per kind of event: each turns an event into ledger entries (and campaign
items) on a :class:`Scoring`, the same way live and in the rebuild."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.scoring.scorers.base import STORY_STATE_KINDS, Scoring, new_entry
from services.scoring.scorers.opinions import score_flagged
from services.scoring.scorers.publications import score_published
from services.scoring.scorers.stories import score_media, score_reviewed, score_submitted

# each scorer takes the event type it is registered for
Scorer = Callable[[Scoring, Any], None]

SCORERS: dict[str, Scorer] = {
    "story.submitted": score_submitted,
    "story.reviewed": score_reviewed,
    "story.published": score_published,
    "opinion.flagged": score_flagged,
    "media.stored": score_media,
}

__all__ = ["SCORERS", "STORY_STATE_KINDS", "Scorer", "Scoring", "new_entry"]
