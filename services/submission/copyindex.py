"""The candidates of a copy lookup, found in each replica's own memory.

Why not a MongoDB index: on the local MongoDB-wire server a multikey ``$in`` costs about
1.5 ms for every stored story it matches (the server reads each in Python), and a stock
sentence shared by a hundred stories is common, so a lookup among 100,000 stored
fingerprints cost 30–50 raw ``find_one``\\s. Here every key of the submitted text is a
binary search in one sorted array of (key, row) pairs, and the window, the unit and the
share of keys shared are checked on columns of numbers; only the few candidates left are
read from MongoDB and compared exactly (``copies.find_possible_copy``).

The index is built from MongoDB at start-up and kept current by a change stream
(``copies.follow_changes``); a replica's own writes are applied at once, so its next
lookup sees them. It holds no text: keys, unit, times, nothing a pupil could be named in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from services.submission.copytext import TextPrint

COMPARED = 5  # candidates compared exactly, the most keys shared first
# a candidate is compared when it shares at least this share of the shorter text's keys
# (and at least one key): a copy needs 45% of one text found in the other, and on the
# evaluation set the lightest-edited copy shares 1 key in 7; a stock sentence of a long
# story shares 1 or 2 in 25
MIN_KEY_SHARE = 0.1
MERGE_AT = 50_000  # recent postings merged into the sorted array past this many
STANDARD_MATCHES = 20


def key_bytes(keys: np.ndarray) -> bytes:
    """How a text's keys are stored: little-endian unsigned 64-bit words."""
    return keys.astype("<u8").tobytes()


def keys_from_bytes(stored: bytes) -> np.ndarray:
    return np.frombuffer(stored, dtype="<u8").astype(np.uint64)


def worth_comparing(shared: int, ours: int, theirs: int) -> bool:
    """Whether a stored text sharing ``shared`` keys is compared exactly."""
    return shared >= max(1.0, MIN_KEY_SHARE * min(ours, theirs))


@dataclass(frozen=True)
class StandardText:
    text_id: str
    title: str
    text: TextPrint


@dataclass(frozen=True)
class Window:
    """What a lookup may compare against: other units' stories submitted since ``since``
    or published since ``published_since``, first submitted before ``original_before``."""

    unit: str
    since: datetime
    published_since: datetime
    original_before: datetime


class _Column:
    """A numpy column that grows by doubling (rows are only ever appended)."""

    def __init__(self, dtype: Any, fill: Any = 0) -> None:
        self.values = np.full(1024, fill, dtype=dtype)
        self._fill = fill

    def put(self, row: int, value: Any) -> None:
        if row >= self.values.size:
            grown = np.full(self.values.size * 2, self._fill, dtype=self.values.dtype)
            grown[: self.values.size] = self.values
            self.values = grown
        self.values[row] = value


def _stamp(moment: datetime | None) -> float:
    return np.nan if moment is None else moment.timestamp()


class CopyIndex:
    """Stored fingerprints' keys and metadata, and the registered standard texts."""

    def __init__(self) -> None:
        self._row_of: dict[str, int] = {}  # fingerprint id -> row
        self._ids: list[str] = []
        self._stories: dict[str, int] = {}
        self._units: dict[str, int] = {}
        self._story = _Column(np.int32)
        self._unit = _Column(np.int32)
        self._submitted = _Column(np.float64)
        self._first = _Column(np.float64)
        self._published = _Column(np.float64, np.nan)
        self._key_count = _Column(np.int32)
        self._alive = _Column(np.bool_, False)
        self._digest: list[int] = []
        self._sorted_keys = np.empty(0, dtype=np.uint64)
        self._sorted_rows = np.empty(0, dtype=np.int32)
        # postings since the last merge: by key for lookups, and as arrays for the merge
        self._recent: dict[int, list[int]] = {}
        self._pending_keys: list[np.ndarray] = []
        self._pending_rows: list[np.ndarray] = []
        self._recent_count = 0
        self._standard: dict[str, tuple[StandardText, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, fingerprint_id: object) -> bool:
        return fingerprint_id in self._row_of

    def nbytes(self) -> int:
        """The numpy arrays' bytes (the postings and the columns), ids and dicts aside."""
        columns = (self._story, self._unit, self._submitted, self._first, self._published,
                   self._key_count, self._alive)  # fmt: skip
        return int(
            self._sorted_keys.nbytes
            + self._sorted_rows.nbytes
            + sum(column.values.nbytes for column in columns)
        )

    # ---- fingerprints ---------------------------------------------------------------
    def put(self, doc: dict[str, Any], *, loading: bool = False) -> None:
        """Add or update one stored fingerprint (a current-format document). While
        ``loading``, postings only pile up until ``merge`` sorts them all at once."""
        keys = np.unique(keys_from_bytes(doc["key_bytes"]))
        digest = hash(keys.tobytes())  # compared within this process only
        row = self._row_of.get(doc["_id"])
        if row is not None and self._digest[row] != digest:
            self._alive.values[row] = False  # its keys changed: a new row, the old one dead
            row = None
        if row is None:
            row = len(self._ids)
            self._ids.append(doc["_id"])
            self._digest.append(digest)
            self._row_of[doc["_id"]] = row
            self._pending_keys.append(keys)
            self._pending_rows.append(np.full(keys.size, row, dtype=np.int32))
            if not loading:
                for key in keys.tolist():
                    self._recent.setdefault(key, []).append(row)
            self._recent_count += keys.size
        story = self._stories.setdefault(doc["story_id"], len(self._stories))
        unit = self._units.setdefault(doc["unit"], len(self._units))
        self._story.put(row, story)
        self._unit.put(row, unit)
        self._submitted.put(row, doc["submitted_at"].timestamp())
        self._first.put(row, doc["first_submitted_at"].timestamp())
        self._published.put(row, _stamp(doc.get("published_at")))
        self._key_count.put(row, keys.size)
        self._alive.put(row, True)
        if not loading and self._recent_count > max(MERGE_AT, self._sorted_keys.size // 4):
            self.merge()

    def mark_published(self, fingerprint_id: str, published_at: datetime) -> None:
        row = self._row_of.get(fingerprint_id)
        if row is not None and np.isnan(self._published.values[row]):
            self._published.values[row] = published_at.timestamp()

    def drop(self, fingerprint_id: str) -> None:
        row = self._row_of.pop(fingerprint_id, None)
        if row is not None:
            self._alive.values[row] = False

    def merge(self) -> None:
        """Fold the recent postings into the sorted array, leaving out dead rows."""
        all_keys = np.concatenate([self._sorted_keys, *self._pending_keys])
        all_rows = np.concatenate([self._sorted_rows, *self._pending_rows])
        alive = self._alive.values[all_rows]
        all_keys, all_rows = all_keys[alive], all_rows[alive]
        order = np.argsort(all_keys, kind="stable")
        self._sorted_keys, self._sorted_rows = all_keys[order], all_rows[order]
        self._recent, self._recent_count = {}, 0
        self._pending_keys, self._pending_rows = [], []

    def _rows_sharing(self, keys: np.ndarray) -> np.ndarray:
        starts = np.searchsorted(self._sorted_keys, keys, side="left")
        ends = np.searchsorted(self._sorted_keys, keys, side="right")
        parts = [self._sorted_rows[a:b] for a, b in zip(starts, ends, strict=True) if b > a]
        for key in keys.tolist():
            of_key = self._recent.get(key)
            if of_key:
                parts.append(np.asarray(of_key, dtype=np.int32))
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)

    def candidates(self, keys: np.ndarray, window: Window) -> list[tuple[str, int]]:
        """At most ``COMPARED`` fingerprints worth comparing with a text of ``keys``, one
        version per story, the most keys shared first: ``(fingerprint id, shared)``."""
        asked = np.unique(keys.astype(np.uint64))
        if asked.size == 0:
            return []
        rows, shared = np.unique(self._rows_sharing(asked), return_counts=True)
        if rows.size == 0:
            return []
        unit = self._units.get(window.unit, -1)
        published = self._published.values[rows]
        with np.errstate(invalid="ignore"):  # NaN: never published
            in_window = (self._submitted.values[rows] >= window.since.timestamp()) | (
                published >= window.published_since.timestamp()
            )
        needed = np.maximum(
            1.0, MIN_KEY_SHARE * np.minimum(asked.size, self._key_count.values[rows])
        )
        keep = (
            self._alive.values[rows]
            & (self._unit.values[rows] != unit)
            & (self._first.values[rows] < window.original_before.timestamp())
            & in_window
            & (shared >= needed)
        )
        rows, shared = rows[keep], shared[keep]
        order = np.lexsort((rows, -shared))  # most shared first, then the earliest stored
        rows, shared = rows[order], shared[order]
        _, first_of_story = np.unique(self._story.values[rows], return_index=True)
        best = np.sort(first_of_story)[:COMPARED]
        chosen = zip(rows[best].tolist(), shared[best].tolist(), strict=True)
        return [(self._ids[row], count) for row, count in chosen]

    # ---- standard texts -------------------------------------------------------------
    def put_standard(self, doc: dict[str, Any]) -> None:
        """Add, update or (when retired) remove one registered standard text."""
        if doc.get("retired"):
            self._standard.pop(doc["_id"], None)
            return
        text = TextPrint.from_passages(doc["body"], doc["passages"])
        self._standard[doc["_id"]] = (StandardText(doc["_id"], doc["title"], text), text.keys)

    def drop_standard(self, text_id: str) -> None:
        self._standard.pop(text_id, None)

    def standard_texts(self, keys: np.ndarray) -> list[StandardText]:
        """The standard texts in force sharing a key with a text of ``keys``."""
        found = [
            standard
            for standard, of_text in self._standard.values()
            if np.intersect1d(of_text, keys).size
        ]
        return found[:STANDARD_MATCHES]


def built(fingerprints: Iterable[dict[str, Any]], standard: Iterable[dict[str, Any]]) -> CopyIndex:
    """A whole index at once (start-up): the postings sorted once, not merged piecemeal."""
    index = CopyIndex()
    for doc in fingerprints:
        index.put(doc, loading=True)
    for doc in standard:
        index.put_standard(doc)
    index.merge()
    return index
