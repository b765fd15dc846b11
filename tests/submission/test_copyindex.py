"""The in-process candidate index on its own: it proposes the stories a lookup must
compare (other units', in the window, sharing enough keys, one version per story) and
nothing else, whatever order its entries arrived in. No server needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from citydesk.bench import copies as bench
from services.submission.copyindex import (
    COMPARED,
    MERGE_AT,
    CopyIndex,
    Window,
    built,
    key_bytes,
    worth_comparing,
)
from services.submission.copytext import Normaliser, TextPrint
from shared.orgtree import example_city

NORMALISER = Normaliser.for_org(example_city())
NOW = datetime(2026, 11, 29, 8, tzinfo=UTC)
WINDOW = Window("dh-dyxx", NOW - timedelta(days=90), NOW - timedelta(days=730), NOW)


def fingerprint(
    story: str, text: TextPrint, unit: str = "qh-syxx", *, version: int = 1, **times: Any
) -> dict[str, Any]:
    at = times.get("submitted_at", NOW - timedelta(days=1))
    return {
        "_id": f"{story}:{version}", "story_id": story, "unit": unit,
        "key_bytes": key_bytes(text.keys), "submitted_at": at,
        "first_submitted_at": times.get("first_submitted_at", at),
        "published_at": times.get("published_at"),
    }  # fmt: skip


def printed(text: str) -> TextPrint:
    return TextPrint.of(text, NORMALISER)


def test_a_forward_finds_its_original_first_and_an_unrelated_story_not_at_all() -> None:
    texts = bench.group_texts("禁毒教育")
    unrelated = printed(bench.group_texts("科技节")["S"])
    index = built(
        [
            fingerprint("original", printed(texts["S"])),
            fingerprint("own-words", printed(texts["O"])),
            fingerprint("unrelated", unrelated),
        ],
        [],
    )
    found = index.candidates(printed(texts["F"]).keys, WINDOW)
    assert found[0][0] == "original:1"
    assert "unrelated:1" not in [fid for fid, _ in found]
    # the same theme in a school's own words may share a phrase: the exact comparison
    # decides, so it may be proposed, but after the original
    assert all(shared < found[0][1] for _, shared in found[1:])


def test_own_unit_later_originals_and_stories_out_of_the_window_are_never_proposed() -> None:
    text = printed(bench.group_texts("禁毒教育")["S"])
    long_ago = NOW - timedelta(days=200)
    index = built(
        [
            fingerprint("ours", text, unit="dh-dyxx"),
            fingerprint("later", text, first_submitted_at=NOW + timedelta(seconds=1)),
            fingerprint("old", text, submitted_at=long_ago),
            fingerprint("old-published", text, submitted_at=long_ago, published_at=long_ago),
        ],
        [],
    )
    assert [fid for fid, _ in index.candidates(text.keys, WINDOW)] == ["old-published:1"]
    index.drop("old-published:1")
    assert index.candidates(text.keys, WINDOW) == []
    # a publication arriving later brings an old story back into the longer window
    index.mark_published("old:1", long_ago)
    assert [fid for fid, _ in index.candidates(text.keys, WINDOW)] == ["old:1"]


def test_one_version_per_story_the_most_shared_first_and_at_most_a_few() -> None:
    texts = bench.group_texts("禁毒教育")
    original, forward = printed(texts["S"]), printed(texts["F"])
    half = TextPrint.from_passages("", original.stored_passages()[:3])
    docs = [fingerprint("s", half), fingerprint("s", original, version=2)]
    docs += [fingerprint(f"other{i}", original, unit=f"u{i}") for i in range(COMPARED + 3)]
    found = built(docs, []).candidates(forward.keys, WINDOW)
    assert len(found) == COMPARED
    assert found[0][0] == "s:2"  # the version sharing most, not both versions
    assert [shared for _, shared in found] == sorted((s for _, s in found), reverse=True)


def test_recent_entries_and_merged_ones_answer_alike() -> None:
    rng = np.random.default_rng(3)
    keys = [rng.integers(0, 2**63, size=30, dtype=np.uint64) for _ in range(MERGE_AT // 20)]
    recent, merged = CopyIndex(), CopyIndex()
    for number, of_story in enumerate(keys):
        doc = {
            "_id": f"s{number}:1", "story_id": f"s{number}", "unit": f"u{number % 7}",
            "key_bytes": key_bytes(of_story), "submitted_at": NOW - timedelta(days=1),
            "first_submitted_at": NOW - timedelta(days=1), "published_at": None,
        }  # fmt: skip
        recent.put(doc)
        merged.put(doc)
    merged.merge()
    asked = np.concatenate([keys[5][:20], keys[9][:4]])
    assert recent.candidates(asked, WINDOW) == merged.candidates(asked, WINDOW)
    assert [fid for fid, _ in merged.candidates(asked, WINDOW)] == ["s5:1", "s9:1"]
    # a fingerprint whose keys change (a backfill) answers with its new keys only
    moved = {**fingerprint("s5", printed("完全不同的一篇稿件内容写在这里" * 5)), "unit": "u5"}
    merged.put(moved)
    assert [fid for fid, _ in merged.candidates(asked, WINDOW)] == ["s9:1"]


def test_a_stock_sentence_alone_is_not_worth_reading() -> None:
    assert not worth_comparing(2, 25, 24)  # one stock sentence of a long story
    assert worth_comparing(1, 7, 6)  # the lightest-edited copy of the evaluation set
    assert not worth_comparing(0, 3, 3)


def test_standard_texts_in_force_are_found_and_retired_ones_are_not() -> None:
    group = bench.group("规定文本防溺水致家长信")
    notice = printed(group["standard"][0])
    doc = {"_id": "n1", "title": "致家长的一封信", "body": notice.body,
           "passages": notice.stored_passages(), "retired": False}  # fmt: skip
    index = built([], [doc])
    story = printed(group["texts"]["A"])
    assert [s.text_id for s in index.standard_texts(story.keys)] == ["n1"]
    assert index.standard_texts(printed(bench.group_texts("禁毒教育")["S"]).keys) == []
    index.put_standard({**doc, "retired": True})
    assert index.standard_texts(story.keys) == []
