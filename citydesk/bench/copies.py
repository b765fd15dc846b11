"""Copy detection: precision and recall on the hand-written pairs, and lookup latency.

* ``evaluation``: the pairs in ``copy_pairs/`` (see its README) are compared exactly as
  the service compares a submission with a candidate; the resemblance and containment
  thresholds are chosen on the tuning half (the pair of thresholds with the best F1,
  then the highest containment threshold among equals, the most conservative) and
  precision and recall are reported on the held-out half with those thresholds;
* ``lookup``: 100,000 fingerprints of other units' stories are stored in MongoDB with
  their versions and the in-process index is loaded from them as a starting replica
  does; then a submission's lookup (normalising, standard texts, candidates from the
  index, exact comparison of the best few read from MongoDB) is timed; the raw indexed
  ``find_one`` latency of the same server in the same run is the yardstick;
* ``mongodb_multikey_lookup``: for comparison, the query the lookup used to send (the
  stories sharing any of 16 keys, from a multikey index) on 20,000 stored, with the
  server's ``explain``.

    python -m citydesk.bench.copies   # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pymongo import AsyncMongoClient

from citydesk.bench.submission import CHARACTERS
from citydesk.bench.suite import run_alone
from services.submission import copies, copyindex
from services.submission.copyindex import worth_comparing
from services.submission.copytext import Normaliser, TextPrint, compare, standard_share
from shared.evaluation import binary_scores
from shared.mongo import insert_new
from shared.orgtree import example_city
from shared.settings import Settings

PAIRS = Path(__file__).parent / "copy_pairs"
DEFAULT_COPIES = (("S", "F"), ("S", "E"), ("S", "R"), ("S", "T"), ("F", "E"))
DEFAULT_DISTINCT = (("S", "O"), ("S", "I"), ("F", "O"), ("R", "O"), ("I", "O"), ("F", "I"))
RESEMBLANCE_GRID = tuple(round(0.30 + 0.05 * step, 2) for step in range(13))
CONTAINMENT_GRID = tuple(round(0.30 + 0.05 * step, 2) for step in range(13))
STORED_FINGERPRINTS = 100_000
LOOKUPS = 200
INSERT_BATCH = 2_000
PROBE_STORED = 20_000  # the MongoDB-only lookup, for comparison (it fills at ~500 docs/s)
PROBE_LOOKUPS = 50
SCHOOLS = [unit.code for unit in example_city().schools()]


@dataclass(frozen=True)
class Pair:
    name: str
    split: str
    kind: str  # which two texts of the group, e.g. "S-F"
    original: str
    later: str
    standard: tuple[str, ...]
    copy: bool


def groups(folder: Path = PAIRS) -> list[dict[str, Any]]:
    """The groups of the evaluation set as written."""
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.yaml")):
        found.extend(yaml.safe_load(path.read_text(encoding="utf-8")))
    return found


def group(name: str) -> dict[str, Any]:
    return next(each for each in groups() if each["group"] == name)


def group_texts(name: str) -> dict[str, str]:
    texts: dict[str, str] = group(name)["texts"]
    return texts


def load_pairs(folder: Path = PAIRS) -> list[Pair]:
    """Every labelled pair of the evaluation set, in file order."""
    pairs = []
    for each in groups(folder):
        texts: dict[str, str] = each["texts"]
        standard = tuple(each.get("standard", []))
        labelled = [(a, b, True) for a, b in each.get("copies", DEFAULT_COPIES)]
        labelled += [(a, b, False) for a, b in each.get("distinct", DEFAULT_DISTINCT)]
        for a, b, is_copy in labelled:
            if a in texts and b in texts:
                pairs.append(
                    Pair(
                        name=f"{each['group']} {a}-{b}",
                        split=each["split"],
                        kind=f"{a}-{b}",
                        original=texts[a],
                        later=texts[b],
                        standard=standard,
                        copy=is_copy,
                    )
                )
    return pairs


@dataclass(frozen=True)
class Scored:
    pair: Pair
    resemblance: float
    containment: float
    matched_chars: int
    republication: float
    retrieved: bool  # the original shares enough keys to be compared (``worth_comparing``)


def score_pairs(pairs: list[Pair], normaliser: Normaliser) -> list[Scored]:
    """Compare the later text of each pair with the earlier, as a submission would be."""
    scored = []
    for pair in pairs:
        standard = [TextPrint.of(text, normaliser) for text in pair.standard]
        later = TextPrint.of(pair.later, normaliser)
        original = TextPrint.of(pair.original, normaliser)
        found = compare(later, original, standard)
        shared = int(np.intersect1d(later.keys, original.keys).size)
        retrieved = worth_comparing(shared, later.keys.size, original.keys.size)
        scored.append(
            Scored(
                pair, found.resemblance, found.containment, found.matched_chars,
                standard_share(later, standard), retrieved,
            )
        )  # fmt: skip
    return scored


def flagged(item: Scored, resemblance: float, containment: float) -> bool:
    if not item.retrieved or item.matched_chars < copies.MIN_MATCHED_CHARS:
        return False
    return item.resemblance >= resemblance or item.containment >= containment


def figures(items: list[Scored], resemblance: float, containment: float) -> dict[str, Any]:
    truth = [item.pair.copy for item in items]
    said = [flagged(item, resemblance, containment) for item in items]
    # nothing flagged among no copies is a perfect score, not a zero
    scores = binary_scores(said, truth, undefined=1.0)
    return {
        "pairs": len(items),
        "copies": sum(truth),
        "precision": round(scores.precision, 3),
        "recall": round(scores.recall, 3),
        "f1": round(scores.f1, 3),
        "missed": [i.pair.name for i, t, s in zip(items, truth, said, strict=True) if t and not s],
        "false_flags": [
            i.pair.name for i, t, s in zip(items, truth, said, strict=True) if s and not t
        ],
    }


def choose_thresholds(tuning: list[Scored]) -> tuple[float, float]:
    """The best F1 on the tuning half; among equals the strictest thresholds."""
    best: tuple[tuple[float, float, float], tuple[float, float]] | None = None
    for resemblance, containment in product(RESEMBLANCE_GRID, CONTAINMENT_GRID):
        f1 = figures(tuning, resemblance, containment)["f1"]
        rank = (f1, containment, resemblance)
        if best is None or rank > best[0]:
            best = (rank, (resemblance, containment))
    assert best is not None
    return best[1]


def _kind(pair: Pair) -> str:
    if pair.standard:
        return "standard text, " + ("copied around it" if pair.copy else "republished by both")
    return pair.kind


def evaluation() -> dict[str, Any]:
    normaliser = Normaliser.for_org(example_city())
    pairs = load_pairs()
    started = time.perf_counter()
    scored = score_pairs(pairs, normaliser)
    per_pair_ms = (time.perf_counter() - started) * 1000 / len(pairs)
    tuning = [item for item in scored if item.pair.split == "tuning"]
    held_out = [item for item in scored if item.pair.split == "held_out"]
    resemblance, containment = choose_thresholds(tuning)
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in sorted({_kind(item.pair) for item in held_out}):
        of_kind = [item for item in held_out if _kind(item.pair) == kind]
        said = sum(flagged(item, resemblance, containment) for item in of_kind)
        by_kind[kind] = {"pairs": len(of_kind), "flagged": said}
    republished = [item for item in scored if item.pair.standard]
    return {
        "pairs": len(pairs),
        "groups": len({item.pair.name.split(" ")[0] for item in scored}),
        "thresholds": {"resemblance": resemblance, "containment": containment},
        "tuning": figures(tuning, resemblance, containment),
        "held_out": figures(held_out, resemblance, containment),
        "held_out_by_kind": by_kind,
        "republication_share_min": round(min(item.republication for item in republished), 2),
        "compare_ms_per_pair": round(per_pair_ms, 2),
    }


# ---- lookup latency -----------------------------------------------------------------
# common characters without numerals, which the normaliser leaves as they are: the
# stored stories need no normalising, so filling the store takes minutes, not an hour
PLAIN = "".join(ch for ch in CHARACTERS if ch not in "一二三四五六七八九十百千万两")


def _own_words(rng: random.Random, sentences: int = 12) -> list[str]:
    """Random common characters in sentences of 40: a story nobody else wrote."""
    return ["".join(rng.choice(PLAIN) for _ in range(39)) + "。" for _ in range(sentences)]


def _stock_sentences() -> list[str]:
    """Sentences of the evaluation set: the stock phrases many real stories share."""
    found = {
        sentence.strip() + "。"
        for pair in load_pairs()
        for sentence in (pair.original + "。" + pair.later).split("。")
        if len(sentence.strip()) > 12
    }
    return sorted(found)


def _stored_story(
    own: list[str], stock: str, stock_normalised: str
) -> tuple[str, list[tuple[int, int, str]]]:
    """A body and its passages as ``TextPrint.of`` would find them."""
    body, passages = "", []
    for sentence, normalised in [*((s, s[:-1]) for s in own), (stock, stock_normalised)]:
        passages.append((len(body), len(body) + len(sentence), normalised))
        body += sentence
    return body, passages


async def _timed_lookups(
    db: Any, bodies: list[str], normaliser: Normaliser, now: datetime
) -> tuple[list[float], int]:
    timings, flagged_count = [], 0
    for body in bodies:
        started = time.perf_counter()
        text = TextPrint.of(body, normaliser)
        standard = await copies.matching_standard_texts(db, text=text)
        match = await copies.find_possible_copy(
            db, text=text, unit="bench-unit", since=now - timedelta(days=90),
            published_since=now - timedelta(days=730), original_before=now,
            thresholds=copies.CopyThresholds(resemblance=0.45, containment=0.45),
            standard=standard,
        )  # fmt: skip
        timings.append((time.perf_counter() - started) * 1000)
        flagged_count += match is not None
    return timings, flagged_count


def _summary(timings: list[float], flagged_count: int, raw_median: float) -> dict[str, Any]:
    ordered = sorted(timings)
    median = statistics.median(ordered)
    p95 = ordered[int(0.95 * len(ordered))]
    return {
        "median_ms": round(median, 2),
        "p95_ms": round(p95, 2),
        "ratio_to_raw_find_one": round(median / raw_median, 2),
        "p95_ratio_to_raw_find_one": round(p95 / raw_median, 2),
        "flagged": flagged_count,
    }


def _story_docs(
    rng: random.Random, index: int, stock: list[str], stock_normalised: list[str], now: datetime
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """One stored story of another school: its fingerprint, its version and its body."""
    choice = rng.randrange(len(stock))
    body, passages = _stored_story(_own_words(rng), stock[choice], stock_normalised[choice])
    at = now - timedelta(minutes=index)
    fingerprint = copies.fingerprint_doc(
        text=TextPrint.from_passages(body, passages), story_id=f"s{index}", version=1,
        unit=SCHOOLS[index % len(SCHOOLS)], submitted_at=at, first_submitted_at=at,
    )  # fmt: skip
    version = {"_id": f"s{index}:1", "title": f"稿件{index}", "body": body, "submitted_at": at}
    return fingerprint, version, body


async def _raw_find_one(db: Any, rng: random.Random, stored: int) -> float:
    raw = []
    for _ in range(LOOKUPS):
        started = time.perf_counter()
        await db[copies.FINGERPRINTS].find_one({"_id": f"s{rng.randrange(stored)}:1"})
        raw.append((time.perf_counter() - started) * 1000)
    return statistics.median(raw)


def _stock() -> tuple[Normaliser, list[str], list[str]]:
    normaliser = Normaliser.for_org(example_city())
    stock = _stock_sentences()
    return normaliser, stock, [normaliser.normalise(sentence) for sentence in stock]


def _scratch_database(settings: Settings, prefix: str) -> tuple[AsyncMongoClient[Any], Any]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri, tz_aware=True)
    return mongo, mongo[f"{prefix}_{uuid.uuid4().hex[:8]}"]


async def multikey_probe(settings: Settings, stored: int = PROBE_STORED) -> dict[str, Any]:
    """What the earlier lookup asked MongoDB: the stories sharing any of 16 keys, from a
    multikey index on the keys array; with the server's own ``explain``."""
    normaliser, stock, stock_normalised = _stock()
    rng = random.Random(7)
    mongo, db = _scratch_database(settings, "bench_multikey")
    now = datetime.now(UTC)
    try:
        for offset in range(0, stored, INSERT_BATCH):
            docs = []
            for index in range(offset, min(offset + INSERT_BATCH, stored)):
                fingerprint, _, _ = _story_docs(rng, index, stock, stock_normalised, now)
                keys = np.frombuffer(fingerprint.pop("key_bytes"), dtype="<u8")
                docs.append({**fingerprint, "keys": keys.view(np.int64).tolist()})
            await insert_new(db[copies.FINGERPRINTS], docs)
        await db[copies.FINGERPRINTS].create_index("keys")
        raw_median = await _raw_find_one(db, rng, stored)
        timings, matched = [], []
        for _ in range(PROBE_LOOKUPS):
            text = TextPrint.of("".join(_own_words(rng)) + rng.choice(stock), normaliser)
            spread = np.linspace(0, text.keys.size - 1, 16).round().astype(int)
            asked = {"keys": {"$in": text.keys[spread].view(np.int64).tolist()}}
            started = time.perf_counter()
            found = await db[copies.FINGERPRINTS].find(asked, projection={"unit": 1}).to_list()
            timings.append((time.perf_counter() - started) * 1000)
            matched.append(len(found))
        plan = await db.command(
            "explain", {"find": copies.FINGERPRINTS, "filter": asked}, verbosity="executionStats"
        )
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
    stats = plan.get("executionStats", {})
    return {
        "stored_fingerprints": stored,
        "raw_find_one_median_ms": round(raw_median, 2),
        "multikey_in_16_keys": _summary(timings, 0, raw_median) | {"flagged": None},
        "stories_matched_median": statistics.median(matched),
        "explain": {
            "stage": plan.get("queryPlanner", {})
            .get("winningPlan", {})
            .get("inputStage", {})
            .get("stage", plan.get("queryPlanner", {}).get("winningPlan", {}).get("stage")),
            "keys_examined": stats.get("totalKeysExamined"),
            "docs_examined": stats.get("totalDocsExamined"),
            "returned": stats.get("nReturned"),
            "ms": stats.get("executionTimeMillis"),
        },
    }


async def lookup_latency(settings: Settings, stored: int = STORED_FINGERPRINTS) -> dict[str, Any]:
    """A submission's lookup with ``stored`` fingerprints of other units' stories (each
    its own words plus one stock sentence of the evaluation set), for a new story and
    for a forward of a stored one; beside the raw indexed ``find_one`` of the server."""
    normaliser, stock, stock_normalised = _stock()
    rng = random.Random(5)
    mongo, db = _scratch_database(settings, "bench_copies")
    now = datetime.now(UTC)
    kept: list[str] = []
    try:
        started = time.perf_counter()
        for offset in range(0, stored, INSERT_BATCH):
            prints, versions = [], []
            for index in range(offset, min(offset + INSERT_BATCH, stored)):
                fingerprint, version, body = _story_docs(rng, index, stock, stock_normalised, now)
                if index < 3:  # the shortcut holds: the same passages as a submission's
                    assert (
                        TextPrint.of(body, normaliser).stored_passages()
                        == (fingerprint["passages"])
                    )
                prints.append(fingerprint)
                versions.append(version)
                if index % (stored // LOOKUPS) == 0:
                    kept.append(body)
            # a retried batch (the loaded server timing out) inserts nothing twice
            await insert_new(db[copies.FINGERPRINTS], prints)
            await insert_new(db[copies.VERSIONS], versions)
        await copies.ensure_indexes(db)  # what a replica does at start-up: loads the index
        store_seconds = time.perf_counter() - started
        started = time.perf_counter()
        loaded = await copies.load_index(db)  # a second replica starting
        load_seconds = time.perf_counter() - started

        raw_median = await _raw_find_one(db, rng, stored)
        fresh = ["".join(_own_words(rng)) + rng.choice(stock) for _ in range(LOOKUPS)]
        new_story = await _timed_lookups(db, fresh, normaliser, now)
        forward = await _timed_lookups(db, kept[:LOOKUPS], normaliser, now)
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
    return {
        "stored_fingerprints": stored,
        "store_seconds": round(store_seconds, 1),
        "index_load_seconds": round(load_seconds, 1),
        "indexed_fingerprints": len(loaded),
        "index_bytes": loaded.nbytes(),
        "lookups_each": LOOKUPS,
        "raw_find_one_median_ms": round(raw_median, 2),
        "new_story": _summary(*new_story, raw_median),
        "forward_of_a_stored_story": _summary(*forward, raw_median),
    }


def index_alone(stored: int = STORED_FINGERPRINTS) -> dict[str, Any]:
    """The lookup's work in this process alone at ``stored`` fingerprints (normalising,
    standard texts, candidates from the index), without MongoDB: what the lookup costs
    beyond its reads, measured apart from the server's load."""
    normaliser, stock, stock_normalised = _stock()
    rng = random.Random(5)
    now = datetime.now(UTC)
    docs, kept = [], []
    for index in range(stored):
        fingerprint, _, body = _story_docs(rng, index, stock, stock_normalised, now)
        docs.append(fingerprint)
        if index % (stored // LOOKUPS) == 0:
            kept.append(body)
    started = time.perf_counter()
    held = copyindex.built(docs, [])
    build_seconds = time.perf_counter() - started
    window = copyindex.Window(
        "bench-unit", now - timedelta(days=90), now - timedelta(days=730), now
    )
    fresh = ["".join(_own_words(rng)) + rng.choice(stock) for _ in range(LOOKUPS)]
    result: dict[str, Any] = {
        "stored_fingerprints": stored,
        "build_seconds": round(build_seconds, 1),
    }
    for name, bodies in (("new_story", fresh), ("forward_of_a_stored_story", kept)):
        timings, proposed = [], 0
        for body in bodies:
            started = time.perf_counter()
            text = TextPrint.of(body, normaliser)
            held.standard_texts(text.keys)
            proposed += len(held.candidates(text.keys, window))
            timings.append((time.perf_counter() - started) * 1000)
        ordered = sorted(timings)
        result[name] = {
            "median_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[int(0.95 * len(ordered))], 2),
            "candidates_read_per_lookup": round(proposed / len(bodies), 2),
        }
    return result


async def run(env: dict[str, str]) -> dict[str, Any]:
    values = {
        k.removeprefix("CITYDESK_").lower(): v for k, v in env.items() if k.startswith("CITYDESK_")
    }
    settings = Settings.model_validate({**values, "service_name": "bench"})
    return {
        "evaluation": evaluation(),
        "lookup": await lookup_latency(settings),
        "lookup_in_process_alone": index_alone(),
        "mongodb_multikey_lookup": await multikey_probe(settings),
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
