"""Past stories written many at a time, for a city rebuilt from its history or a
benchmark city: the documents come from the same builders the live paths use (the draft,
the version, the submission's change, each review and publication effect), applied in
memory and inserted in large unordered batches, then the counters are counted once.

What the live path does besides is left out on purpose: no ``story.submitted`` is
emitted (the other services rebuild from their own history), and no copy lookup runs (a
rebuilt city keeps the flags it was given; a lookup per story would cost more than all
the writes together).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.submission import copies
from services.submission.models import Rules, StoryContent
from services.submission.service.counts import rebuild_counts
from services.submission.service.projections import (
    media_fields,
    publication_effect,
    review_effect,
)
from services.submission.service.stories import MEDIA, STORIES, CheckedContent, new_story
from services.submission.service.submitting import (
    Source,
    Submission,
    quality_flags,
)
from shared import events as ev
from shared.mongo import insert_new
from shared.runtime import ServiceRuntime

# the local server writes an insert_many in transactions of up to 1,000 documents (about
# 230 index entries a story): 2,000 at a time in a 256 MB cache wrote 2 stories a second,
# 500 in a 1 GB cache 73
BATCH = 500


@dataclass(frozen=True)
class PastStory:
    """A story as it happened: filed, submitted once, then reviewed and published."""

    story_id: str
    unit: str
    author: str
    content: StoryContent
    submitted_at: datetime
    media: Sequence[ev.MediaStored] = ()
    reviews: Sequence[ev.StoryReviewed] = ()
    publications: Sequence[ev.StoryPublished] = ()
    source: Source = "api"
    external_id: str | None = field(default=None)


def _apply_change(story: dict[str, Any], change: dict[str, Any]) -> None:
    story.update(change["$set"])
    for key, value in change["$push"].items():
        story[key].append(value)


def story_documents(
    *, runtime: ServiceRuntime, past: PastStory, rules: Rules
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The story and its first version, as the live paths would have left them."""
    filed = past.submitted_at
    story = new_story(
        runtime=runtime, unit=past.unit, author=past.author, author_name=past.author,
        content=past.content, now=filed, source=past.source,
        county=runtime.org.path(past.unit).county, external_id=past.external_id,
        story_id=past.story_id,
    )  # fmt: skip
    checked = CheckedContent(
        past.content, [{"kind": media.kind.value} for media in past.media], rules
    )
    flags = quality_flags(
        content=past.content, rules=rules, now=filed, copy_flag=None, republication=None
    )
    submission = Submission(story, 1, checked, flags, past.author, filed)
    version = submission.version_document()
    _apply_change(story, submission.story_change())
    effects = [review_effect(review) for review in past.reviews]
    effects += [publication_effect(published) for published in past.publications]
    for effect in sorted(effects, key=lambda each: each.entry["at"]):
        effect.apply_to(story, 1)
    return story, version


async def import_stories(
    *,
    runtime: ServiceRuntime,
    stories: Iterable[PastStory],
    rules: Rules,
    recount: bool = True,
) -> int:
    """Write past stories, their versions and the media they used; returns how many
    stories were new. The counters are recounted at the end (``recount=False`` for all
    but the last of several imports)."""
    db = runtime.db
    written = 0
    batch: list[PastStory] = []

    async def flush() -> int:
        docs = [story_documents(runtime=runtime, past=past, rules=rules) for past in batch]
        media = [
            {"_id": stored.media_id, **media_fields(stored)}
            for past in batch
            for stored in past.media
        ]
        if media:
            await insert_new(db[MEDIA], media)
        await insert_new(db[copies.VERSIONS], [version for _, version in docs])
        return len(await insert_new(db[STORIES], [story for story, _ in docs]))

    for past in stories:
        batch.append(past)
        if len(batch) >= BATCH:
            written += await flush()
            batch = []
    if batch:
        written += await flush()
    if recount:
        await rebuild_counts(db, stories=STORIES)
    return written
