"""The demo city's stories read like a city's: composed from parts so that stories of one
theme by different schools stay below the copy threshold, while the copies the demo
plants on purpose (another school's story with the name changed) stay above it."""

from __future__ import annotations

import random
import statistics

from citydesk.demo_content import compose_story
from services.submission.copies import jaccard, shingles, text_of
from shared.orgtree import example_city

THRESHOLD = 0.8  # services/submission/config.yaml: copy_similarity_threshold


def _schools() -> list[tuple[str, str]]:
    org = example_city()
    return [(s.code, s.name) for c in org.counties() for s in org.schools(c.code)]


def test_schools_writing_on_the_same_themes_are_not_flagged_as_copies() -> None:
    rng = random.Random(2026)
    schools = _schools()
    written = []
    for _ in range(160):
        code, name = rng.choice(schools)
        category, title, body = compose_story(rng, school=name, county="东湖区", date="11月12日")
        written.append((code, category, body, shingles(text_of(title, body))))
    closest = [
        max((jaccard(g, g2) for c2, _, _, g2 in written[:i] if c2 != code), default=0.0)
        for i, (code, _, _, g) in enumerate(written)
    ]
    assert max(closest) < THRESHOLD - 0.05, max(closest)
    lengths = [len(body) for _, _, body, _ in written]
    assert min(lengths) >= 120 and statistics.mean(lengths) > 180
    assert len({category for _, category, _, _ in written}) >= 5


def test_a_story_reposted_with_only_the_school_changed_is_above_the_threshold() -> None:
    rng = random.Random(11)
    schools = _schools()
    for _ in range(200):
        (_, source), (_, copier) = rng.sample(schools, 2)
        _, title, body = compose_story(rng, school=source, county="东湖区", date="11月12日")
        copy = text_of(title.replace(source, copier), body.replace(source, copier, 1))
        assert jaccard(shingles(text_of(title, body)), shingles(copy)) >= THRESHOLD
