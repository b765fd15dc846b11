"""Scorers of publication: the bureau's channels with their photo and video bonus,
outside adoption by level and placement with the leader-instruction bonus, and
withdrawal, which reverses what publication earned. Each reads the story's history."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from services.scoring.documents import EntryKind, LedgerEntry
from services.scoring.models import RuleSet
from services.scoring.scorers.base import Scoring
from services.scoring.totals import CITY_OR_HIGHER, OUTSIDE_LEVELS
from shared import events as ev
from shared.orgtree import Unit


class _Story(NamedTuple):
    """One publication event being scored, with what every scorer of it reads."""

    scoring: Scoring
    event: ev.StoryPublishedEvent
    unit: Unit
    rules: RuleSet
    history: list[LedgerEntry]  # the story's ledger entries so far

    def enter(
        self,
        kind: EntryKind,
        *,
        points: float,
        reason: str,
        counts: dict[str, int] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """One ledger entry of this event about this story, keyed by its kind and the event."""
        self.scoring.add(
            self.event, key=f"{kind}|{self.event.event_id}", kind=kind, unit=self.unit,
            points=points, reason=reason, story_id=self.event.payload.story_id,
            counts=counts, detail=detail,
        )  # fmt: skip


def _active_publications(history: list[LedgerEntry]) -> list[LedgerEntry]:
    """Publication and bonus entries not yet reversed by a withdrawal."""
    reversed_ids = {
        i for e in history if e["kind"] == "withdrawal" for i in e["detail"]["reverses"]
    }
    return [
        e
        for e in history
        if e["kind"] in ("publication", "media_bonus") and e["_id"] not in reversed_ids
    ]


def score_published(scoring: Scoring, event: ev.StoryPublishedEvent) -> None:
    published = event.payload
    unit = scoring.unit(published.unit_path.unit)
    rules = scoring.book.at(event.occurred_at).rules
    history = scoring.story_history.setdefault(published.story_id, [])
    story = _Story(scoring, event, unit, rules, history)
    if published.kind == ev.PublicationKind.CHANNEL:
        _score_channel(story)
    elif published.kind == ev.PublicationKind.ADOPTION:
        _score_adoption(story)
    else:
        _score_withdrawal(story)
    if published.campaign and published.kind != ev.PublicationKind.WITHDRAWAL:
        scoring.add_item(
            event, campaign=published.campaign, what="highlight", item=published.story_id, unit=unit
        )


def _score_channel(story: _Story) -> None:
    event, rules, history = story.event, story.rules, story.history
    published = event.payload
    channel = published.channel or "bureau"
    active = _active_publications(history)
    if any(e["kind"] == "publication" and e["detail"]["channel"] == channel for e in active):
        return  # the same channel counts once per story
    first = not any(e["kind"] == "publication" for e in active)
    points = rules.publication.channel_points.get(channel, rules.publication.default_channel_points)
    story.enter(
        "publication",
        points=points,
        reason=f"在局平台发布（{channel}）",
        counts={"published": 1 if first else 0},
        detail={"channel": channel, "link": published.link},
    )
    if first and not any(e["kind"] == "media_bonus" for e in active):
        bonus = (rules.publication.photo_bonus if published.photo_count else 0) + (
            rules.publication.video_bonus if published.video_count else 0
        )
        if bonus:
            story.enter(
                "media_bonus",
                points=bonus,
                reason=f"图片/视频加分（图{published.photo_count}，视频{published.video_count}）",
                detail={"photos": published.photo_count, "videos": published.video_count},
            )


def _score_adoption(story: _Story) -> None:
    event, rules, history = story.event, story.rules, story.history
    published = event.payload
    level, placement = published.outlet_level, published.placement
    outlet = published.outlet or published.link or level.value
    adoptions = [e for e in history if e["kind"] == "adoption"]
    earlier_levels = {e["detail"]["level"] for e in adoptions}
    value = rules.adoption.value(level, placement)
    if any(e["detail"]["outlet"] == outlet for e in adoptions):
        points, why = 0.0, "同一媒体重复采用，只计一次"
    elif rules.adoption.mode == "highest_only":
        awarded = sum(e["points"] for e in adoptions)
        points = max(0.0, value - awarded)
        why = "只计最高层级" + ("，补足差额" if awarded and points else "")
    elif rules.adoption.same_tier_counts_once and level.value in earlier_levels:
        points, why = 0.0, "同一层级只计一次"
    else:
        points, why = value, "多家媒体采用累加"
    counts = _adoption_counts(level, adoptions)
    story.enter(
        "adoption",
        points=points,
        reason=f"被{published.outlet or level.value}采用（{level.value}，{placement.value}，"
        f"{rules.adoption.levels.get(level, 0)}×{rules.adoption.placement.get(placement, 1)}）"
        f"：{why}",
        counts=counts,
        detail={
            "outlet": outlet,
            "level": level.value,
            "placement": placement.value,
            "value": value,
            "link": published.link,
        },
    )
    if published.leader_instruction:
        _score_leader_bonus(story)


def _adoption_counts(level: ev.OutletLevel, adoptions: list[LedgerEntry]) -> dict[str, int]:
    """What an adoption adds to the counters: each counts a story once, at its first
    adoption outside the bureau, at a level, at city level or higher, at county or higher."""
    outside = level in OUTSIDE_LEVELS
    earlier = {e["detail"]["level"] for e in adoptions}
    return {
        "adopted": int(outside and not any(lvl != "bureau" for lvl in earlier)),
        f"adopted_{level.value}": int(outside and level.value not in earlier),
        "adopted_city_or_higher": int(
            level in CITY_OR_HIGHER and not earlier & _values(CITY_OR_HIGHER)
        ),
        "adopted_county_or_higher": int(outside and not earlier & _values(OUTSIDE_LEVELS)),
    }


def _score_leader_bonus(story: _Story) -> None:
    """A leader's instruction on an adopted story: its level's bonus, once per level (or
    topped up to the highest level's, as adoption points are)."""
    event, rules, history = story.event, story.rules, story.history
    level = event.payload.outlet_level
    bonus = rules.adoption.leader_instruction.get(level, 0.0)
    if not bonus:
        return
    given = [e for e in history if e["kind"] == "leader_bonus"]
    if rules.adoption.mode == "highest_only":
        bonus = max(0.0, bonus - sum(e["points"] for e in given))
    elif any(e["detail"]["level"] == level.value for e in given):
        bonus = 0.0
    story.enter(
        "leader_bonus",
        points=bonus,
        reason=f"领导批示加分（{level.value}）",
        detail={"level": level.value},
    )


def _values(levels: Iterable[ev.OutletLevel]) -> set[str]:
    return {level.value for level in levels}


def _score_withdrawal(story: _Story) -> None:
    event, history = story.event, story.history
    published = event.payload
    active = _active_publications(history)
    if not active:
        return
    story.enter(
        "withdrawal",
        points=-sum(e["points"] for e in active),
        reason=f"撤稿，冲销发布得分{('：' + published.reason) if published.reason else ''}",
        counts={"published": -1 if any(e["kind"] == "publication" for e in active) else 0},
        # sorted: the history comes in index order live and in event order on a rebuild
        detail={"reverses": sorted(e["_id"] for e in active)},
    )
