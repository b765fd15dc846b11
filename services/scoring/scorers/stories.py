"""Scorers of a story's own life: submitted, reviewed, and media stored for a campaign."""

from __future__ import annotations

from services.scoring.scorers.base import Scoring
from shared import events as ev


def score_submitted(scoring: Scoring, event: ev.StorySubmittedEvent) -> None:
    story = event.payload
    unit = scoring.unit(story.unit_path.unit)
    rules = scoring.book.at(event.occurred_at).rules
    scoring.add(
        event,
        key=f"submitted|{story.story_id}",
        kind="submitted",
        unit=unit,
        points=rules.stories.submitted,
        reason=f"报送稿件《{story.title}》",
        story_id=story.story_id,
        counts={"submitted": 1},
    )
    if story.campaign:
        scoring.add_item(
            event, campaign=story.campaign, what="stories", item=story.story_id, unit=unit
        )


def score_reviewed(scoring: Scoring, event: ev.StoryReviewedEvent) -> None:
    review = event.payload
    unit = scoring.unit(review.unit_path.unit)
    points = scoring.book.at(event.occurred_at).rules.stories
    # approval counts once per story (at its final level); each return or rejection counts
    if review.decision == ev.Decision.APPROVED and review.final:
        kind, key = "approved", f"approved|{review.story_id}"
    elif review.decision in _COUNTED_EACH_TIME:
        kind, key = review.decision.value, f"{review.decision.value}|{event.event_id}"
    else:
        return
    scoring.add(
        event,
        key=key,
        kind=kind,
        unit=unit,
        points=getattr(points, kind),
        reason=f"{_REVIEW_REASONS[kind]}（{review.level.value}）",
        story_id=review.story_id,
        counts={kind: 1},
    )


_COUNTED_EACH_TIME = (ev.Decision.RETURNED, ev.Decision.REJECTED)
_REVIEW_REASONS = {
    "approved": "稿件通过终审",
    "returned": "稿件被退回修改",
    "rejected": "稿件未通过审核",
}


def score_media(scoring: Scoring, event: ev.MediaStoredEvent) -> None:
    media = event.payload
    unit = scoring.unit(media.unit_path.unit)
    if media.campaign:
        what = "photos" if media.kind == ev.MediaKind.PHOTO else "videos"
        scoring.add_item(event, campaign=media.campaign, what=what, item=media.media_id, unit=unit)
