"""The demo city's stories read like a city's: composed from parts so that stories of one
theme by different schools stay below the copy threshold, while the copies the demo
plants on purpose (another school's story with the name changed) stay above it."""

from __future__ import annotations

import random
import statistics

from citydesk.demo_content import compose_story
from services.submission.copies import MIN_MATCHED_CHARS, normaliser_for
from services.submission.copytext import TextPrint, compare
from services.submission.service.rules import read_seed
from shared.orgtree import example_city

NORMALISER = normaliser_for(example_city())
RULES = read_seed()[1]


def flagged(a: str, b: str) -> bool:
    """What the submission service's detector says of two bodies, with its seeded rules."""
    comparison = compare(TextPrint.of(a, NORMALISER), TextPrint.of(b, NORMALISER))
    return comparison.is_copy(
        resemblance=RULES.copy_similarity_threshold,
        containment=RULES.copy_containment_threshold,
        min_chars=MIN_MATCHED_CHARS,
    )


def _schools() -> list[tuple[str, str]]:
    org = example_city()
    return [(s.code, s.name) for c in org.counties() for s in org.schools(c.code)]


def test_schools_writing_on_the_same_themes_are_not_flagged_as_copies() -> None:
    rng = random.Random(2026)
    schools = _schools()
    written = []
    for _ in range(100):
        code, name = rng.choice(schools)
        category, _, body = compose_story(rng, school=name, county="东湖区", date="11月12日")
        written.append((code, category, body))
    pairs = [
        (body, other)
        for i, (code, _, body) in enumerate(written)
        for other_code, _, other in written[:i]
        if other_code != code
    ]
    false_flags = sum(flagged(a, b) for a, b in pairs)
    assert false_flags <= len(pairs) * 0.001, (false_flags, len(pairs))
    lengths = [len(body) for _, _, body in written]
    assert min(lengths) >= 120 and statistics.mean(lengths) > 180
    assert len({category for _, category, _ in written}) >= 5


def test_a_story_reposted_with_only_the_school_changed_is_flagged() -> None:
    rng = random.Random(11)
    schools = _schools()
    for _ in range(200):
        (_, source), (_, copier) = rng.sample(schools, 2)
        _, _, body = compose_story(rng, school=source, county="东湖区", date="11月12日")
        assert flagged(body, body.replace(source, copier))
