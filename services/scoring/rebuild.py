"""Rebuild the ledger and projections by replaying every scored topic from the beginning
into a fresh database, with a fresh consumer group.

``python -m services.scoring.rebuild [--database NAME]`` prints what it did. The rule
versions and campaigns are configuration, not events: they are copied from the live
database first, so the replay scores each event by the version in force at its time.

The replay scores with the live consumers' functions, but keeps what they read back from
the database in memory — each story's scoring history, the entries already written, the
unit-month totals — because a fresh database holds nothing else: entries go out in large
unordered inserts while the next records are decoded, and the unit-months and period
summaries are written once at the end. What an event would have been refused for live
(a repeated event, an entry whose key exists) is left out here in the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pymongo.asynchronous.collection import AsyncCollection

from services.scoring.campaigns import complete_campaign_tasks
from services.scoring.documents import CampaignItem, LedgerEntry, campaign_items_of
from services.scoring.handlers import SCORED_TOPICS
from services.scoring.scorers import SCORERS, Scoring
from services.scoring.service import (
    CAMPAIGNS,
    LEDGER,
    RULE_VERSIONS,
    SUMMARIES,
    UNIT_MONTHS,
    Db,
    RuleBook,
    ensure_indexes,
    keep_first_month,
    rule_book,
    seed_rules,
)
from services.scoring.summaries import build_summaries
from services.scoring.totals import add_to_total, empty_total, projection_document
from shared import topics as tp
from shared.bus_auth import Keyring, keyring_for
from shared.clock import utcnow
from shared.deadletters import Delivery
from shared.events import Envelope
from shared.kafka import PermanentError, Refused, admit, client_security, truncating_topics
from shared.mongo import make_client
from shared.orgtree import OrgTree, load_org
from shared.settings import Settings, load_settings

# a ledger insert of this many documents; two in flight keep the store busy while the
# next records are decoded and scored
WRITE_CHUNK = 10_000
WRITES_IN_FLIGHT = 2
READ_RECORDS = 20_000


class Replay:
    """The scoring state of one rebuild, in memory."""

    def __init__(self, *, book: RuleBook, org: OrgTree) -> None:
        self.org = org
        self.scoring = Scoring(book=book, org=org, story_history=defaultdict(list))
        self.seen_events: set[str] = set()
        self.seen_entries: set[str] = set()
        self.seen_items: set[str] = set()
        self.totals: dict[tuple[str, str], dict[str, Any]] = {}
        self.rejected = 0
        self.duplicates = 0

    def score(self, event: Envelope) -> None:
        """Score one event as the live consumer would."""
        event_id = str(event.event_id)
        if event_id in self.seen_events:
            self.duplicates += 1
            return
        self.seen_events.add(event_id)
        try:
            SCORERS[event.type](self.scoring, event)
        except PermanentError:
            self.rejected += 1

    def take(self) -> tuple[list[LedgerEntry], list[CampaignItem]]:
        """The new ledger entries and campaign items scored since the last call."""
        entries = [e for e in self.scoring.entries if self._first(self.seen_entries, e)]
        items = [i for i in self.scoring.items if self._first(self.seen_items, i)]
        self.duplicates += len(self.scoring.entries) - len(entries)
        self.scoring.entries, self.scoring.items = [], []
        for entry in entries:
            self.count(entry)
        return entries, items

    def count(self, entry: LedgerEntry) -> None:
        key = (entry["unit"], entry["period"])
        if key not in self.totals:
            self.totals[key] = empty_total()
        add_to_total(self.totals[key], entry)

    @staticmethod
    def _first(seen: set[str], document: LedgerEntry | CampaignItem) -> bool:
        if document["_id"] in seen:
            return False
        seen.add(document["_id"])
        return True

    def projections(self) -> list[dict[str, Any]]:
        return [
            {"_id": f"{unit}|{period}", **projection_document(self.org, unit, period, total)}
            for (unit, period), total in sorted(self.totals.items())
        ]


async def rebuild(
    settings: Settings, database: str, *, idle_timeout: float = 60.0
) -> dict[str, Any]:
    """Replay every scored topic into ``database`` (dropped first) and return when the
    replay has reached each partition's high watermark as seen at the start."""
    if database == settings.database_name:
        raise ValueError("the rebuild needs a database other than the live one")
    keyring = keyring_for(settings)
    if keyring is None:
        raise ValueError("the rebuild needs the bus keyring to skip what live refused")
    finite = await truncating_topics(settings)
    if finite:
        raise TruncatedTopic(
            f"{', '.join(finite)} delete old records: a rebuild would rank differently from "
            "the live service; set retention.ms=-1 on them (see the README)"
        )
    started = time.perf_counter()
    org = load_org(settings.org_file)
    client = make_client(settings)
    target = client[database]
    try:
        await client.drop_database(database)
        # the indexes come first: on the embedded store keeping them up to date through
        # the inserts costs less than building them afterwards (0.8 against 1.3 ms a
        # ledger entry, measured), and it happens while the next records are decoded
        await ensure_indexes(db=target)
        book = await _copy_configuration(live=client[settings.database_name], target=target)
        replay = Replay(book=book, org=org)
        totals, phases = await _replay_topics(settings, keyring, replay, target, idle_timeout)
        totals["entries"] = await write_projections(
            target=target, book=book, org=org, replay=replay, phases=phases
        )
    finally:
        await client.close()
    return {
        "database": database,
        **totals,
        "duplicates": replay.duplicates,
        "rejected": replay.rejected,
        "seconds": round(time.perf_counter() - started, 2),
        "phases_seconds": {name: round(value, 2) for name, value in phases.items()},
        "finished_at": utcnow().isoformat(),
    }


async def _copy_configuration(*, live: Db, target: Db) -> RuleBook:
    """The rule versions and campaigns are configuration, not events: copied first, so
    the replay scores each event by the version in force at its time."""
    for collection in (RULE_VERSIONS, CAMPAIGNS):
        documents = await live[collection].find().to_list()
        if documents:
            await target[collection].insert_many(documents)
    await seed_rules(db=target)
    return await rule_book(db=target)


async def _replay_topics(
    settings: Settings, keyring: Keyring, replay: Replay, target: Db, idle_timeout: float
) -> tuple[dict[str, int], dict[str, float]]:
    """Read every scored topic from the start in large batches, score them in memory and
    write the ledger in large unordered inserts while the next batch is read."""
    by_name = {topic.name: topic for topic in SCORED_TOPICS}
    reader = AIOKafkaConsumer(
        *by_name,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.service_name}-rebuild-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **client_security(settings),
    )
    await reader.start()
    totals = {"events": 0, "entries": 0, "refused": 0}
    ledger = LedgerWriter(target)
    # where the time goes: waiting for the broker, decoding and scoring, waiting for the
    # store to take ledger inserts beyond those in flight
    phases = dict.fromkeys(("fetch", "decode_and_score", "ledger_writes"), 0.0)
    try:
        await _refuse_truncated(reader, by_name)
        deadline = time.monotonic() + idle_timeout
        while not await _caught_up(reader, by_name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rebuild made no progress for {idle_timeout}s")
            fetch_started = time.perf_counter()
            batch = await reader.getmany(timeout_ms=500, max_records=READ_RECORDS)
            score_started = time.perf_counter()
            phases["fetch"] += score_started - fetch_started
            if batch:
                deadline = time.monotonic() + idle_timeout
            for partition, records in batch.items():
                topic: tp.Topic = by_name[partition.topic]
                for record in records:
                    try:  # the live consumers dead-lettered exactly these
                        event = admit(topic, Delivery.of(record), keyring)
                    except Refused:
                        totals["refused"] += 1
                        continue
                    totals["events"] += 1
                    replay.score(event)
            write_started = time.perf_counter()
            phases["decode_and_score"] += write_started - score_started
            await write_scored(replay, ledger)
            phases["ledger_writes"] += time.perf_counter() - write_started
        write_started = time.perf_counter()
        await ledger.flush()
        phases["ledger_writes"] += time.perf_counter() - write_started
    finally:
        ledger.cancel()
        await reader.stop()
    return totals, phases


async def write_scored(replay: Replay, ledger: LedgerWriter) -> None:
    """Send what ``replay`` scored since the last call to the store: campaign items at
    once, ledger entries through ``ledger``'s chunks in flight."""
    entries, items = replay.take()
    if items:
        await campaign_items_of(ledger.db).insert_many(items, ordered=False)
    await ledger.add(entries)


class LedgerWriter:
    """Ledger entries out in chunks of ``WRITE_CHUNK``, at most ``WRITES_IN_FLIGHT`` at
    once, so that reading and scoring go on while the store inserts."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.pending: list[LedgerEntry] = []
        self.writes: list[asyncio.Task[None]] = []

    async def add(self, entries: list[LedgerEntry]) -> None:
        self.pending += entries
        while len(self.pending) >= WRITE_CHUNK:
            chunk, self.pending = self.pending[:WRITE_CHUNK], self.pending[WRITE_CHUNK:]
            self.writes.append(asyncio.create_task(_insert(self.db, LEDGER, chunk)))
            self.writes = await _at_most(self.writes, WRITES_IN_FLIGHT)

    async def flush(self) -> None:
        self.writes.append(asyncio.create_task(_insert(self.db, LEDGER, self.pending)))
        self.pending = []
        await asyncio.gather(*self.writes)
        self.writes = []

    def cancel(self) -> None:
        for write in self.writes:
            write.cancel()


async def write_projections(
    *, target: Db, book: RuleBook, org: OrgTree, replay: Replay, phases: dict[str, float]
) -> int:
    """Campaign completions, unit-months and summaries from the replay's totals; returns
    the number of ledger entries."""
    started = time.perf_counter()
    campaign_ids = [c["_id"] for c in await target[CAMPAIGNS].find({}, {"_id": 1}).to_list()]
    completions = await complete_campaign_tasks(
        db=target, book=book, org=org, items=[], campaign_codes=campaign_ids
    )
    for entry in completions:
        replay.count(entry)
    await _insert(target, LEDGER, completions)
    projections = replay.projections()
    await keep_first_month(db=target, months=(p["period"] for p in projections))
    await _insert(target, UNIT_MONTHS, projections)
    summaries_started = time.perf_counter()
    phases["unit_months"] = summaries_started - started
    await _insert(target, SUMMARIES, [dict(s) for s in build_summaries(org, projections)])
    phases["summaries"] = time.perf_counter() - summaries_started
    return len(replay.seen_entries) + len(completions)


class TruncatedTopic(RuntimeError):
    """A topic the rebuild reads no longer starts at offset 0."""


async def _refuse_truncated(reader: AIOKafkaConsumer, by_name: dict[str, tp.Topic]) -> None:
    partitions = [
        TopicPartition(name, number)
        for name in by_name
        for number in sorted(reader.partitions_for_topic(name) or ())
    ]
    starts = await reader.beginning_offsets(partitions)
    lost = {f"{p.topic}[{p.partition}]": offset for p, offset in starts.items() if offset > 0}
    if lost:
        raise TruncatedTopic(f"records already deleted before offsets {lost}: refusing to rebuild")


async def _insert(db: Db, collection: str, documents: Sequence[Mapping[str, Any]]) -> None:
    # documents of any typed shape (ledger entries, projections, summaries) go in as they are
    target: AsyncCollection[Any] = db[collection]
    for start in range(0, len(documents), WRITE_CHUNK):
        await target.insert_many(documents[start : start + WRITE_CHUNK], ordered=False)


async def _at_most(tasks: list[asyncio.Task[None]], running: int) -> list[asyncio.Task[None]]:
    """Wait until no more than ``running`` of ``tasks`` are unfinished; raise their errors."""
    while sum(not t.done() for t in tasks) > running:
        await asyncio.wait([t for t in tasks if not t.done()], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done():
            task.result()
    return [t for t in tasks if not t.done()]


async def _caught_up(reader: AIOKafkaConsumer, by_name: dict[str, tp.Topic]) -> bool:
    """Every partition is assigned and read up to the high watermark its last fetch
    reported (Tansu's ListOffsets cannot be trusted for the end of a partition)."""
    wanted = sum(len(reader.partitions_for_topic(name) or ()) for name in by_name)
    assignment = reader.assignment()
    if not wanted or len(assignment) < wanted:
        return False
    for partition in assignment:
        mark = reader.highwater(partition)
        if mark is None or await reader.position(partition) < mark:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", help="the database to rebuild into (default: a new one)")
    args = parser.parse_args()
    settings = load_settings("scoring")
    stamp = utcnow().strftime("%Y%m%d%H%M%S")
    database = args.database or f"{settings.database_name}_rebuild_{stamp}"
    print(json.dumps(asyncio.run(rebuild(settings, database)), ensure_ascii=False))


if __name__ == "__main__":
    main()
