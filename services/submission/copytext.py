"""How two texts are compared, and the keys that find the candidates to compare.

The body is cut into passages (sentences, long ones at their commas) that keep their
place in the original body, so that a reviewer sees the original words side by side;
each passage is normalised (``copynormal``: what forwarders swap becomes placeholders).

Two scores: resemblance (Jaccard of the normalised character 3-grams, the whole texts
alike) and containment (the share of one text's passages found in the other, either
direction: a paragraph lifted into a longer story). Retrieval keys are winnowed k-gram
hashes, which guarantee that any shared normalised run of ``WINDOW + KGRAM - 1``
characters shares a key, so an embedded paragraph is found even when the whole texts
are not alike; every key of a text is looked up in the in-process index (``copyindex``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# re-exported: callers import the whole of copy text handling from here
from services.submission.copynormal import Normaliser as Normaliser
from services.submission.copynormal import normaliser_for as normaliser_for
from services.submission.copynormal import unit_name_forms as unit_name_forms

KGRAM = 6
WINDOW = 40  # any shared normalised run of 45 characters shares at least one key
MIN_PASSAGE_CHARS = 8  # shorter passages ("会议强调。") prove nothing either way
LONG_PASSAGE_CHARS = 80  # an unpunctuated run is cut into pieces of half this length
PASSAGE_FOUND = 0.8  # share of a passage's 3-grams present in the other text

_SEEDS = (np.arange(1, 9, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)).reshape(-1)


# ---- passages, grams and keys -------------------------------------------------------
_SENTENCE_END = re.compile(r"[。！？!?；;\n]+")
_CLAUSE_END = re.compile(r"[，,、：:]+")


@dataclass(frozen=True)
class Passage:
    """A sentence of the original body: where it is, and what it normalises to."""

    start: int
    end: int
    normalised: str
    grams: np.ndarray = field(repr=False, compare=False)

    @property
    def weight(self) -> int:
        return len(self.normalised)


def _spans(body: str) -> list[tuple[int, int]]:
    """Sentences; a long one is cut at its commas into clauses of about half
    ``LONG_PASSAGE_CHARS``, and an unpunctuated run into pieces of that length."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(body):
        spans.append((start, match.end()))
        start = match.end()
    if start < len(body):
        spans.append((start, len(body)))
    pieces: list[tuple[int, int]] = []
    for begin, end in spans:
        if end - begin <= LONG_PASSAGE_CHARS:
            pieces.append((begin, end))
            continue
        cuts = [m.end() for m in _CLAUSE_END.finditer(body, begin, end)]
        clause_start = begin
        for cut in [*cuts, end]:
            if cut - clause_start >= LONG_PASSAGE_CHARS // 2 or cut == end:
                pieces.extend(_chunks(clause_start, cut))
                clause_start = cut
    return [piece for piece in pieces if piece[1] > piece[0]]


def _chunks(begin: int, end: int) -> list[tuple[int, int]]:
    if end - begin <= LONG_PASSAGE_CHARS:
        return [(begin, end)]
    step = LONG_PASSAGE_CHARS // 2
    return [(at, min(at + step, end)) for at in range(begin, end, step)]


def grams_of(normalised: str) -> np.ndarray:
    """The set of character 3-grams, each packed exactly into 63 bits."""
    codes = np.frombuffer(normalised.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if codes.size < 3:
        return np.empty(0, dtype=np.uint64)
    grams = (codes[:-2] << np.uint64(42)) | (codes[1:-1] << np.uint64(21)) | codes[2:]
    return np.unique(grams)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on 64-bit words."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def winnowed_keys(normalised: str) -> np.ndarray:
    """The minimum k-gram hash of every window of ``WINDOW`` k-grams (Schleimer et al.'s
    winnowing), in the order they occur: two texts sharing a normalised run of
    ``WINDOW + KGRAM - 1`` characters share a key."""
    codes = np.frombuffer(normalised.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if codes.size < KGRAM:
        return np.empty(0, dtype=np.uint64)
    count = codes.size - KGRAM + 1
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(KGRAM):
            hashes ^= _mix(codes[offset : offset + count] ^ _SEEDS[offset])
    if count <= WINDOW:
        return hashes[[int(hashes.argmin())]]
    windows = np.lib.stride_tricks.sliding_window_view(hashes, WINDOW)
    positions = np.unique(windows.argmin(axis=1) + np.arange(windows.shape[0]))
    keys = hashes[positions]
    _, first = np.unique(keys, return_index=True)
    return keys[np.sort(first)]


@dataclass(frozen=True)
class TextPrint:
    """A body's passages, its 3-gram set and its retrieval keys."""

    body: str
    passages: tuple[Passage, ...]
    grams: np.ndarray = field(repr=False)
    keys: np.ndarray = field(repr=False)

    @property
    def weight(self) -> int:
        return sum(p.weight for p in self.passages)

    @classmethod
    def of(cls, body: str, normaliser: Normaliser) -> TextPrint:
        passages = []
        for start, end in _spans(body):
            normalised = normaliser.normalise(body[start:end])
            if len(normalised) >= MIN_PASSAGE_CHARS:
                passages.append((start, end, normalised))
        return cls.from_passages(body, passages)

    @classmethod
    def from_passages(cls, body: str, passages: Iterable[Sequence[Any]]) -> TextPrint:
        """Rebuilt from stored ``(start, end, normalised)`` passages, without normalising
        again (what a lookup does with its candidates)."""
        kept = tuple(
            Passage(int(start), int(end), str(normalised), grams_of(str(normalised)))
            for start, end, normalised in passages
        )
        whole = "".join(p.normalised for p in kept)
        return cls(body, kept, grams_of(whole), winnowed_keys(whole))

    def stored_passages(self) -> list[list[int | str]]:
        return [[p.start, p.end, p.normalised] for p in self.passages]


# ---- scores -------------------------------------------------------------------------
def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0 or b.size == 0:
        return 0.0
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / (a.size + b.size - common)


def contained(part: np.ndarray, whole: np.ndarray) -> float:
    """The share of ``part``'s 3-grams present in ``whole``."""
    if part.size == 0:
        return 0.0
    return float(np.isin(part, whole, assume_unique=True).mean())


def _union(passages: Sequence[Passage]) -> np.ndarray:
    if not passages:
        return np.empty(0, dtype=np.uint64)
    return np.unique(np.concatenate([p.grams for p in passages]))


@dataclass(frozen=True)
class PassagePair:
    """One of our passages and the passage of theirs it was found in (spans in the
    original bodies, end exclusive)."""

    ours: tuple[int, int]
    theirs: tuple[int, int]


@dataclass(frozen=True)
class Comparison:
    resemblance: float  # Jaccard of the two texts' 3-grams
    ours_in_theirs: float  # share of our passage characters found in their text
    theirs_in_ours: float
    ours_found: int  # passages of ours found in theirs
    ours_counted: int  # passages of ours compared (standard-text passages left out)
    theirs_found: int
    theirs_counted: int
    matched_chars: int  # normalised characters of ours found in theirs, or theirs in ours
    pairs: tuple[PassagePair, ...]

    @property
    def containment(self) -> float:
        return max(self.ours_in_theirs, self.theirs_in_ours)

    def is_copy(self, *, resemblance: float, containment: float, min_chars: int) -> bool:
        if self.matched_chars < min_chars:
            return False
        return self.resemblance >= resemblance or self.containment >= containment


def _found(passages: Sequence[Passage], other: np.ndarray) -> list[Passage]:
    return [p for p in passages if contained(p.grams, other) >= PASSAGE_FOUND]


def standard_passages(text: TextPrint, standard: Sequence[TextPrint]) -> set[int]:
    """Indexes of ``text``'s passages found in any of the registered standard texts."""
    if not standard:
        return set()
    grams = np.unique(np.concatenate([s.grams for s in standard]))
    return {i for i, p in enumerate(text.passages) if contained(p.grams, grams) >= PASSAGE_FOUND}


def standard_share(text: TextPrint, standard: Sequence[TextPrint]) -> float:
    """The share of ``text`` (by normalised characters) made of registered standard text."""
    if text.weight == 0:
        return 0.0
    inside = standard_passages(text, standard)
    return sum(text.passages[i].weight for i in inside) / text.weight


class _GramPlaces:
    """Which passages each 3-gram occurs in, sorted by gram: the passage holding most of
    another passage's grams is found with two binary searches, not one ``isin`` each."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        grams = np.concatenate([p.grams for p in passages])
        places = np.repeat(np.arange(len(passages)), [p.grams.size for p in passages])
        order = np.argsort(grams, kind="stable")
        self._grams, self._places, self._count = grams[order], places[order], len(passages)

    def likeliest(self, grams: np.ndarray) -> int:
        """The passage holding most of ``grams`` (the first among equals)."""
        starts = np.searchsorted(self._grams, grams, side="left")
        ends = np.searchsorted(self._grams, grams, side="right")
        lengths = ends - starts
        hits = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        return int(np.bincount(self._places[hits], minlength=self._count).argmax())


def compare(ours: TextPrint, theirs: TextPrint, standard: Sequence[TextPrint] = ()) -> Comparison:
    """Resemblance and containment of two bodies, leaving out the passages either takes
    from a registered standard text (everyone is asked to republish those)."""
    our_skip = standard_passages(ours, standard)
    their_skip = standard_passages(theirs, standard)
    our_passages = [p for i, p in enumerate(ours.passages) if i not in our_skip]
    their_passages = [p for i, p in enumerate(theirs.passages) if i not in their_skip]
    our_grams, their_grams = _union(our_passages), _union(their_passages)
    ours_found = _found(our_passages, their_grams)
    theirs_found = _found(their_passages, our_grams)
    our_weight = sum(p.weight for p in our_passages)
    their_weight = sum(p.weight for p in their_passages)
    ours_chars = sum(p.weight for p in ours_found)
    theirs_chars = sum(p.weight for p in theirs_found)
    pairs = []
    in_theirs = _GramPlaces(their_passages) if ours_found else None
    for passage in ours_found:
        assert in_theirs is not None
        best = their_passages[in_theirs.likeliest(passage.grams)]
        pairs.append(PassagePair((passage.start, passage.end), (best.start, best.end)))
    paired = {pair.theirs for pair in pairs}
    in_ours = _GramPlaces(our_passages) if theirs_found else None
    for passage in theirs_found:  # their passages that ours split or merged differently
        if (passage.start, passage.end) in paired or in_ours is None:
            continue
        best = our_passages[in_ours.likeliest(passage.grams)]
        pairs.append(PassagePair((best.start, best.end), (passage.start, passage.end)))
    return Comparison(
        resemblance=round(jaccard(our_grams, their_grams), 4),
        ours_in_theirs=round(ours_chars / our_weight, 4) if our_weight else 0.0,
        theirs_in_ours=round(theirs_chars / their_weight, 4) if their_weight else 0.0,
        ours_found=len(ours_found),
        ours_counted=len(our_passages),
        theirs_found=len(theirs_found),
        theirs_counted=len(their_passages),
        matched_chars=max(ours_chars, theirs_chars),
        pairs=tuple(sorted(set(pairs), key=lambda pair: pair.ours)),
    )
