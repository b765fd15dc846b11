"""Throughput and latency of the sentiment service beside the raw broker rate of the
same run.

* the model alone: items/s through the cascade (linear stage, embedding stage for the
  uncertain band) on this machine's cores, and precision/recall of the negative class
  on the held-out split;
* through the service (``citydesk serve sentiment`` as its own process): items/s from a
  backlog on ``intake.opinions`` until every item is stored;
* latency from an item entering ``intake.opinions`` to its ``opinion.flagged`` alert,
  p50/p99, at a sustained rate.

    python -m citydesk.bench.sentiment     # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient

from citydesk.bench.raw import broker_rates
from citydesk.processes import ServiceProcesses
from citydesk.stack import Stack, StackConfig, free_port
from services.sentiment import dataset
from services.sentiment.classifier import SentimentModel
from services.sentiment.train import evaluate
from shared import events as ev
from shared.kafka import ensure_topics
from shared.orgtree import example_city
from shared.settings import Settings

BACKLOG = 600
PROBE_RATE = 10  # items/s offered while measuring latency, below the service's rate
PROBE_SECONDS = 5


def settings_from(env: dict[str, str]) -> Settings:
    values = {
        k.removeprefix("CITYDESK_").lower(): v for k, v in env.items() if k.startswith("CITYDESK_")
    }
    return Settings.model_validate({**values, "service_name": "bench"})


def model_rate(texts: list[str]) -> dict[str, Any]:
    """The cascade alone, in batches of 100 as a consumer with batching would call it."""
    model = SentimentModel.load()
    model.analyse_many(texts[:50])
    started = time.perf_counter()
    routed = 0
    for start in range(0, len(texts), 100):
        routed += sum(
            a.stage == "embedding" for a in model.analyse_many(texts[start : start + 100])
        )
    seconds = time.perf_counter() - started
    linear_started = time.perf_counter()
    for text in texts:
        model.linear(text)
    linear_seconds = time.perf_counter() - linear_started
    return {
        "cascade_items_per_s": round(len(texts) / seconds),
        "linear_only_items_per_s": round(len(texts) / linear_seconds),
        "share_routed_to_embedding": round(routed / len(texts), 3),
    }


def opinion_event(
    county: str, school: str | None, text: str, *, source: str = "weibo"
) -> ev.IntakeOpinionEvent:
    return ev.IntakeOpinionEvent.build(
        ev.IntakeOpinion(
            item_id=uuid.uuid4().hex, source=source, school=school, text=text,
            published_at=ev.utcnow(),
        ),
        producer="bench", county=county, correlation_id=uuid.uuid4().hex,
    )  # fmt: skip


async def service_rate(
    settings: Settings, database: str, items: list[dict[str, Any]]
) -> dict[str, Any]:
    """Items/s from a backlog on intake.opinions until all are stored by the service."""
    schools = [school for school in example_city().schools() if school.county]
    events = []
    for i in range(BACKLOG):
        item = items[i % len(items)]
        school = schools[i % len(schools)]
        events.append(opinion_event(school.county, school.code, item["text"], source="bench"))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    started = time.perf_counter()
    futures = [
        await producer.send("intake.opinions", e.model_dump_json().encode(), key=e.county.encode())
        for e in events
    ]
    await asyncio.gather(*futures)
    produced = time.perf_counter() - started
    await producer.stop()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    stored = 0
    while stored < BACKLOG and time.perf_counter() - started < 60:
        await asyncio.sleep(0.25)
        stored = await client[database].items.count_documents({"source": "bench"})
    seconds = time.perf_counter() - started
    await client.close()
    return {
        "items": BACKLOG,
        "stored": stored,
        "items_per_s": round(stored / seconds),
        "produce_seconds": round(produced, 2),
    }


async def latency(settings: Settings) -> dict[str, Any]:
    """Offer negative items at PROBE_RATE/s, each about a new (school, topic), and time
    each one's alert on opinion.flagged."""
    negatives = {
        "food": "{name}食堂饭菜发霉变质，多名学生吃完午饭后呕吐腹泻，家长要求给个说法",
        "fees": "{name}以资料费名义每人收取800元，不开收据，这是乱收费",
        "bullying": "我家孩子在{name}被几个同学围殴勒索零花钱，学校说是开玩笑",
    }
    probes = [
        opinion_event(school.county or "dh", school.code, text.format(name=school.name))
        for text in negatives.values()
        for school in example_city().schools()
        if school.county
    ][: PROBE_RATE * PROBE_SECONDS]
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    reader = AIOKafkaConsumer(
        "opinion.flagged", bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}", auto_offset_reset="latest",
        enable_auto_commit=False,
    )  # fmt: skip
    await reader.start()
    while not reader.assignment():
        await reader.getmany(timeout_ms=200)

    async def read() -> None:
        while True:
            batch = await reader.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    cid = json.loads(record.value).get("correlation_id")
                    if cid in sent_at and cid not in seen_at:
                        seen_at[cid] = now
            if len(seen_at) == len(probes):
                return

    reading = asyncio.create_task(read())
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    interval = 1 / PROBE_RATE
    started = time.perf_counter()
    for n, probe in enumerate(probes):
        await asyncio.sleep(max(0.0, started + n * interval - time.perf_counter()))
        sent_at[probe.correlation_id] = time.perf_counter()
        await producer.send(
            "intake.opinions", probe.model_dump_json().encode(), key=probe.county.encode()
        )
    await producer.flush()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reading, timeout=30)
    reading.cancel()
    await producer.stop()
    await reader.stop()
    waits = sorted(seen_at[c] - sent_at[c] for c in seen_at)
    if not waits:
        return {"offered_per_s": PROBE_RATE, "alerts_seen": 0}
    return {
        "offered_per_s": PROBE_RATE,
        "probes": len(probes),
        "alerts_seen": len(waits),
        "p50_ms": round(waits[len(waits) // 2] * 1000),
        "p99_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1000),
    }


async def run(env: dict[str, str]) -> dict[str, Any]:
    """Raw broker rate, the model alone, the service from a backlog, and alert latency."""
    settings = settings_from(env)
    await ensure_topics(settings)
    raw = await broker_rates(settings, messages=5000)
    items = dataset.load()
    held_out = [item for item in items if item["split"] == "test"]
    texts = [item["text"] for item in items] * 6
    model = await asyncio.to_thread(model_rate, texts)
    quality = await asyncio.to_thread(evaluate, SentimentModel.load(), held_out)
    database = f"bench_sentiment_{os.getpid()}_{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="bench-sentiment-") as root:
        processes = ServiceProcesses(
            Path(root),
            {**env, "CITYDESK_MONGO_DATABASE": database, "CITYDESK_LOG_LEVEL": "WARNING"},
            ports={"sentiment": free_port()},
        )
        processes.start("sentiment")
        try:
            await asyncio.to_thread(processes.wait_ready, ["sentiment"], 90.0)
            delays = await latency(settings)
            through = await service_rate(settings, database, items)
        finally:
            processes.stop("sentiment")
    produce = raw["produce_batched_msgs_per_s"]
    return {
        "cores": os.cpu_count(),
        "raw_broker": raw,
        "model": model | {"ratio_to_raw_produce": round(model["cascade_items_per_s"] / produce, 2)},
        "service_intake": through
        | {"ratio_to_raw_produce": round(through["items_per_s"] / produce, 3)},
        "latency_intake_to_flagged": delays,
        "held_out": {
            stage: quality[stage]
            for stage in ("linear", "embedding", "cascade")
            if stage in quality
        },
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as root:
        config = StackConfig(
            root=Path(root), kafka_port=free_port(), mongo_port=free_port(),
            s3_port=free_port(), s3_metrics_port=free_port(), kafka_storage="memory",
        )  # fmt: skip
        stack = Stack(config)
        stack.up()
        try:
            print(json.dumps(asyncio.run(run(config.env())), indent=2, ensure_ascii=False))
        finally:
            stack.down()


if __name__ == "__main__":
    main()
