"""Precision, recall and F1 of a yes/no judgement against labels: the sentiment model's
negative class and the copy detector's flags are measured the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BinaryScores:
    precision: float
    recall: float
    f1: float
    false_positives: int
    false_negatives: int


def binary_scores(
    said: Sequence[bool], truth: Sequence[bool], *, undefined: float = 0.0
) -> BinaryScores:
    """How ``said`` matches ``truth``; ``undefined`` is the precision when nothing was said
    and the recall when there was nothing to find."""
    pairs = list(zip(said, truth, strict=True))
    true_positives = sum(s and t for s, t in pairs)
    false_positives = sum(s and not t for s, t in pairs)
    false_negatives = sum(t and not s for s, t in pairs)
    flagged, relevant = true_positives + false_positives, true_positives + false_negatives
    precision = true_positives / flagged if flagged else undefined
    recall = true_positives / relevant if relevant else undefined
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return BinaryScores(precision, recall, f1, false_positives, false_negatives)
