"""Submitting a version: its quality flags (late, possible copy, republication), the
version document, the ``story.submitted`` event and the story's change, written together
with the outbox row in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from prometheus_client import Counter
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from services.submission import copies, search
from services.submission.copytext import TextPrint, standard_share
from services.submission.models import (
    EDITABLE,
    CopyFlag,
    MatchedPassage,
    QualityFlags,
    RepublicationFlag,
    Rules,
    StoryContent,
    StoryStatus,
)
from services.submission.service.counts import count_change
from services.submission.service.stories import (
    SERVICE,
    STORIES,
    CheckedContent,
    StoryConflict,
    check_content,
    content_hash,
    get_story,
    require_editable,
    today_in_shanghai,
)
from shared import events as ev
from shared import topics as tp
from shared.auth import Principal
from shared.clock import local, utcnow
from shared.mongo import in_transaction
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime

Source = Literal["api", "intake"]

STORIES_SUBMITTED = Counter(
    "citydesk_submission_stories_submitted_total",
    "Story versions submitted, by county and by source (api or county intake).",
    ["county", "source"],
)
FLAGS = Counter(
    "citydesk_submission_flags_total",
    "Submitted versions carrying a quality flag (late, possible_copy).",
    ["flag"],
)


async def submit_story(
    *, runtime: ServiceRuntime, principal: Principal, story_id: str, correlation_id: str | None
) -> dict[str, Any]:
    """Submit the working copy as the story's next version."""
    story = await get_story(runtime=runtime, principal=principal, story_id=story_id)
    require_editable(story)
    checked = await check_content(
        runtime=runtime, content=StoryContent(**story["draft"]), unit=story["unit"]
    )
    return await submit_version(
        runtime=runtime, story=story, checked=checked, actor=principal.sub, source="api",
        correlation_id=correlation_id,
    )  # fmt: skip


async def submit_version(
    *,
    runtime: ServiceRuntime,
    story: dict[str, Any],
    checked: CheckedContent,
    actor: str,
    source: Source,
    correlation_id: str | None,
    is_new: bool = False,
) -> dict[str, Any]:
    """Freeze one version with its flags, and announce it through the outbox in the same
    transaction."""
    db, content = runtime.db, checked.content
    now = utcnow()
    version = story["version"] + 1
    text = TextPrint.of(content.body, copies.normaliser_for(runtime.org))
    flags, match = await assess(runtime=runtime, story=story, checked=checked, text=text, now=now)
    submission = Submission(story, version, checked, flags, actor, now)
    version_doc = submission.version_document()
    event = submitted_event(
        story=story, version_doc=version_doc, content=content, flags=flags, source=source,
        correlation_id=correlation_id,
    )  # fmt: skip
    change = submission.story_change()
    old_status = story["status"]

    async def write(session: AsyncClientSession) -> dict[str, Any]:
        if is_new:
            await db[STORIES].insert_one(story, session=session)
            await count_change(db, story, None, old_status, session=session)
        stored = await db[STORIES].find_one_and_update(
            {"_id": story["_id"], "version": version - 1, "status": {"$in": list(EDITABLE)}},
            change,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if stored is None:
            raise StoryConflict(
                "稿件已被报送或修改，请刷新后查看",
                f"story {story['_id']} was submitted or changed meanwhile",
            )
        await count_change(db, story, old_status, StoryStatus.SUBMITTED.value, session=session)
        await db[copies.VERSIONS].insert_one(version_doc, session=session)
        fingerprint = copies.fingerprint_doc(
            text=text, story_id=story["_id"], version=version, unit=story["unit"],
            submitted_at=now, first_submitted_at=change["$set"]["first_submitted_at"],
        )  # fmt: skip
        await copies.record_fingerprint(db, fingerprint, session=session)
        await runtime.emit(tp.STORY_SUBMITTED, event, session=session)
        return stored

    stored: dict[str, Any] = await in_transaction(runtime.mongo, write)
    runtime.outbox_written()
    count_flags(story=story, source=source, flags=flags, copied=match is not None)
    return stored


async def assess(
    *,
    runtime: ServiceRuntime,
    story: dict[str, Any],
    checked: CheckedContent,
    text: TextPrint,
    now: datetime,
) -> tuple[QualityFlags, copies.CopyMatch | None]:
    """The version's quality flags, looking for the story it may copy."""
    rules = checked.rules
    standard = await copies.matching_standard_texts(runtime.db, text=text)
    match = await copies.find_possible_copy(
        runtime.db, text=text, unit=story["unit"],
        since=now - timedelta(days=rules.copy_window_days),
        published_since=now - timedelta(days=rules.copy_published_window_days),
        original_before=story.get("first_submitted_at") or now,
        thresholds=copies.CopyThresholds(
            resemblance=rules.copy_similarity_threshold,
            containment=rules.copy_containment_threshold,
        ),
        standard=standard,
    )  # fmt: skip
    copy_flag = None if match is None else copy_flag_of(runtime.org, match, checked.content.body)
    flags = quality_flags(
        content=checked.content, rules=rules, now=now, copy_flag=copy_flag,
        republication=republication_flag(text, standard, rules.republication_share),
    )  # fmt: skip
    return flags, match


def quality_flags(
    *,
    content: StoryContent,
    rules: Rules,
    now: datetime,
    copy_flag: CopyFlag | None,
    republication: RepublicationFlag | None,
) -> QualityFlags:
    age_days = (today_in_shanghai(now) - content.event_date).days
    late = age_days > rules.late_after_days
    return QualityFlags(
        late=late, late_days=age_days if late else 0, possible_copy=copy_flag,
        republication=republication,
    )  # fmt: skip


@dataclass(frozen=True)
class Submission:
    """One version being submitted: its story, number, checked content and flags, who
    submitted it and when; what is stored for it follows from these."""

    story: dict[str, Any]
    version: int
    checked: CheckedContent
    flags: QualityFlags
    actor: str
    now: datetime

    def version_document(self) -> dict[str, Any]:
        """The version as stored: frozen, never changed."""
        story, version, now = self.story, self.version, self.now
        kinds = [m["kind"] for m in self.checked.media]
        return {
            "_id": f"{story['_id']}:{version}",
            "story_id": story["_id"],
            "version": version,
            **self.checked.content.model_dump(mode="json"),
            "submitted_at": now,
            "submitted_by": self.actor,
            "photo_count": kinds.count(ev.MediaKind.PHOTO.value),
            "video_count": kinds.count(ev.MediaKind.VIDEO.value),
            "flags": self.flags.model_dump(),
        }

    def story_change(self) -> dict[str, Any]:
        """The story's update: submitted, with the version's flags and a history entry."""
        content, flags, version, now = self.checked.content, self.flags, self.version, self.now
        entry = {"at": now, "action": "submitted", "version": version, "actor": self.actor}
        return {
            "$set": {
                "status": StoryStatus.SUBMITTED.value,
                "review_level": None,
                "status_comment": None,
                "version": version,
                "draft": content.model_dump(mode="json"),
                search.FIELD: search.story_grams(content.title, content.body),
                "flags": flags.model_dump(),
                # a scalar beside the flag, so the flagged stories are an index range
                "copy_flagged": flags.possible_copy is not None,
                "submitted_at": now,
                "first_submitted_at": self.story.get("first_submitted_at") or now,
                "updated_at": now,
            },
            "$push": {"history": entry, "content_hashes": content_hash(content)},
        }


def submitted_event(
    *,
    story: dict[str, Any],
    version_doc: dict[str, Any],
    content: StoryContent,
    flags: QualityFlags,
    source: Source,
    correlation_id: str | None,
) -> ev.StorySubmittedEvent:
    """``story.submitted`` for one version, as review, sentiment and scoring read it."""
    unit_path = ev.UnitPath(**story["unit_path"])
    copy_flag = flags.possible_copy
    return ev.StorySubmittedEvent.build(
        ev.StorySubmitted(
            story_id=story["_id"], version=version_doc["version"], unit_path=unit_path,
            title=content.title, body=content.body, category=content.category,
            campaign=content.campaign, major=content.major, event_date=content.event_date,
            submitted_at=version_doc["submitted_at"], media_ids=content.media_ids,
            photo_count=version_doc["photo_count"], video_count=version_doc["video_count"],
            author=story["author"], source=source, external_id=story.get("external_id"),
            late=flags.late, late_days=flags.late_days,
            possible_copy=None if copy_flag is None else ev.PossibleCopy(
                story_id=copy_flag.story_id, unit=copy_flag.unit,
                similarity=copy_flag.similarity, containment=copy_flag.containment,
                reason=copy_flag.reason,
            ),
        ),
        producer=SERVICE, county=unit_path.county, unit=unit_path.unit,
        correlation_id=correlation_id,
    )  # fmt: skip


def count_flags(
    *, story: dict[str, Any], source: Source, flags: QualityFlags, copied: bool
) -> None:
    STORIES_SUBMITTED.labels(story["unit_path"].get("county") or "city", source).inc()
    if flags.late:
        FLAGS.labels("late").inc()
    if copied:
        FLAGS.labels("possible_copy").inc()
    if flags.republication is not None:
        FLAGS.labels("republication").inc()


def _shanghai_day(moment: datetime) -> str:
    day = local(moment)
    return f"{day.year}年{day.month}月{day.day}日"


def copy_reason(match: copies.CopyMatch, unit_name: str) -> str:
    """The flag's reason as the reviewer reads it."""
    found = match.comparison
    verb = "报送并已发布" if match.published else "报送"
    source = f"{unit_name}{_shanghai_day(match.submitted_at)}{verb}的《{match.title}》"
    if found.ours_in_theirs >= 0.9 and found.theirs_in_ours >= 0.9:
        return (
            f"疑似直接转发：与{source}基本相同，本稿{found.ours_counted}句中有"
            f"{found.ours_found}句见于对方稿件（校名、日期、人名、数字不计），"
            f"全文相似度{found.resemblance:.0%}。"
        )
    if found.ours_in_theirs >= found.theirs_in_ours:
        return (
            f"疑似摘抄他人稿件：本稿{found.ours_in_theirs:.0%}的内容"
            f"（{found.ours_counted}句中的{found.ours_found}句）取自{source}。"
        )
    return (
        f"疑似整段搬用：{source}{found.theirs_in_ours:.0%}的内容"
        f"（{found.theirs_counted}句中的{found.theirs_found}句）出现在本稿中。"
    )


def copy_flag_of(org: OrgTree, match: copies.CopyMatch, body: str) -> CopyFlag:
    """The flag a reviewer sees: the other story, the scores, the reason and the passages."""
    found = match.comparison
    unit = org.get(match.unit)
    unit_name = unit.name if unit else match.unit
    return CopyFlag(
        story_id=match.story_id, unit=match.unit, similarity=found.resemblance,
        containment=found.containment, ours_in_theirs=found.ours_in_theirs,
        theirs_in_ours=found.theirs_in_ours, version=match.version, unit_name=unit_name,
        title=match.title, submitted_at=match.submitted_at, published=match.published,
        reason=copy_reason(match, unit_name),
        passages=[
            MatchedPassage(
                ours_start=pair.ours[0], ours_end=pair.ours[1],
                ours_text=body[pair.ours[0] : pair.ours[1]],
                theirs_start=pair.theirs[0], theirs_end=pair.theirs[1],
                theirs_text=match.body[pair.theirs[0] : pair.theirs[1]],
            )
            for pair in found.pairs
        ],
    )  # fmt: skip


def republication_flag(
    text: TextPrint, standard: list[copies.StandardText], share_needed: float
) -> RepublicationFlag | None:
    """转载规定文本 when most of the story is one registered standard text."""
    best: tuple[float, copies.StandardText] | None = None
    for each in standard:
        share = standard_share(text, [each.text])
        if best is None or share > best[0]:
            best = (share, each)
    if best is None or best[0] < share_needed:
        return None
    share, chosen = best
    return RepublicationFlag(
        standard_text_id=chosen.text_id, title=chosen.title, share=round(share, 4),
        reason=f"转载规定文本：本稿{share:.0%}的内容为统一发布的《{chosen.title}》，不按抄袭处理。",
    )  # fmt: skip
