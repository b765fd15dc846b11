"""How alike two texts are: character bigrams of the normalised text and their Jaccard
index, used to group items into incidents and to merge reposts in the item list."""

from __future__ import annotations


def bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1) if text[i : i + 2].isalnum()}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
