"""Rebuild the ledger and projections by replaying every scored topic from the beginning
into a fresh database, with a fresh consumer group, in batches.

``python -m services.scoring.rebuild [--database NAME]`` prints what it did. The rule
versions and campaigns are configuration, not events: they are copied from the live
database first, so the replay scores each event by the version in force at its time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from services.scoring.handlers import BATCH, SCORED_TOPICS
from services.scoring.ledger import apply_events
from services.scoring.service import CAMPAIGNS, RULE_VERSIONS, ensure_indexes, seed_rules
from shared import topics as tp
from shared.bus_auth import keyring_for
from shared.deadletters import Delivery
from shared.events import Envelope
from shared.kafka import Refused, admit, client_security, truncating_topics
from shared.mongo import make_client
from shared.orgtree import load_org
from shared.settings import Settings, load_settings


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
    live = client[settings.database_name]
    target = client[database]
    await client.drop_database(database)
    await ensure_indexes(db=target)
    for collection in (RULE_VERSIONS, CAMPAIGNS):
        documents = await live[collection].find().to_list()
        if documents:
            await target[collection].insert_many(documents)
    await seed_rules(db=target)

    by_name = {topic.name: topic for topic in SCORED_TOPICS}
    reader = AIOKafkaConsumer(
        *by_name,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.service_name}-rebuild-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_security(settings),
    )
    await reader.start()
    totals = {"events": 0, "entries": 0, "duplicates": 0, "refused": 0, "rejected": 0}
    try:
        await _refuse_truncated(reader, by_name)
        deadline = time.monotonic() + idle_timeout
        while not await _caught_up(reader, by_name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rebuild made no progress for {idle_timeout}s")
            batch = await reader.getmany(timeout_ms=500, max_records=BATCH)
            events: list[Envelope] = []
            for partition, records in batch.items():
                topic: tp.Topic = by_name[partition.topic]
                for record in records:
                    # the live consumers dead-lettered exactly these
                    try:
                        events.append(admit(topic, Delivery.of(record), keyring))
                    except Refused:
                        totals["refused"] += 1
            if batch:
                deadline = time.monotonic() + idle_timeout
            if events:
                applied = await apply_events(
                    db=target, org=org, events=events, count_metrics=False, skip_rejected=True
                )
                totals["events"] += len(events)
                totals["entries"] += applied.entries
                totals["duplicates"] += applied.duplicates
                totals["rejected"] += len(applied.rejected)
    finally:
        await reader.stop()
        await client.close()
    return {
        "database": database,
        **totals,
        "seconds": round(time.perf_counter() - started, 2),
        "finished_at": datetime.now(UTC).isoformat(),
    }


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
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    database = args.database or f"{settings.database_name}_rebuild_{stamp}"
    print(json.dumps(asyncio.run(rebuild(settings, database)), ensure_ascii=False))


if __name__ == "__main__":
    main()
