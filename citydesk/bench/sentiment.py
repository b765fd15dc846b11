"""Throughput and latency of the sentiment service beside the raw broker rate of the
same run.

* the model alone, in batches of 500 as the intake consumer calls it: items/s of the
  linear stage (what intake runs by default) and of the whole cascade (one embedding
  call per batch for the uncertain band, when the model carries an embedding head), and
  precision/recall of the negative class on the held-out part (written apart from the
  training items), overall and per register, with the parent-praise false-positive rate;
* through the service (``citydesk serve sentiment`` as its own process): items/s from a
  backlog waiting on ``intake.opinions`` before the service starts (90% items that are
  not negative — news, notices, parents' praise and questions — 10% complaints about a
  few schools), from the first item stored to the last;
* latency from an item entering ``intake.opinions`` to its ``opinion.flagged`` alert,
  p50/p99, at a sustained offered rate; each probe is a complaint that opens a new
  incident (a new school and topic), among ordinary items;
* the running month's city briefing over all those items: JSON, XLSX and PDF, beside the
  raw read of the month's items from MongoDB.

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

import httpx
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from citydesk.bench.raw import broker_rates
from citydesk.bench.suite import run_alone, settings_from
from citydesk.processes import ServiceProcesses
from citydesk.producer import SignedProducer
from citydesk.stack import free_port
from services.sentiment import dataset
from services.sentiment.classifier import SentimentModel
from services.sentiment.evaluation import evaluate
from shared import events as ev
from shared.auth import Role, mint_token
from shared.clock import local_now
from shared.kafka import ensure_topics
from shared.orgtree import Unit, example_city
from shared.settings import Settings

BATCH = 500  # as the intake consumer reads
BACKLOG = 5000
BACKLOG_SCHOOLS = 6
NEGATIVE_SHARE = 0.1
OFFERED_RATE = 200  # items/s while measuring latency
OFFERED_SECONDS = 10
# one complaint per topic, worded apart so that each (school, topic) is its own incident
PROBES = {
    "food": "食堂饭菜发霉变质，多名学生吃完午饭后呕吐腹泻，家长要求给个说法",
    "fees": "以资料费名义每人收取800元，不开收据，这是乱收费",
    "bullying": "我家孩子被几个高年级同学围殴勒索零花钱，学校说是开玩笑",
    "teacher_conduct": "班主任上课打学生耳光，还罚跪，孩子回家哭了一晚上",
    "safety": "放学时校车超载，司机开得飞快，孩子吓得不敢坐",
    "facilities": "教学楼天花板掉下来砸伤学生，墙体裂缝也没人修",
    "admissions": "招生摇号暗箱操作，学区内的孩子上不了学",
}


def model_rate(texts: list[str]) -> dict[str, Any]:
    """The cascade alone, in batches as the intake consumer calls it, and the linear
    stage alone."""
    model = SentimentModel.load()
    model.analyse_many(texts[:BATCH])
    started = time.perf_counter()
    routed = 0
    for start in range(0, len(texts), BATCH):
        routed += sum(
            a.stage == "embedding" for a in model.analyse_many(texts[start : start + BATCH])
        )
    seconds = time.perf_counter() - started
    linear_started = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        model.linear_many(texts[start : start + BATCH])
    linear_seconds = time.perf_counter() - linear_started
    return {
        "linear_items_per_s": round(len(texts) / linear_seconds),
        "cascade_items_per_s": round(len(texts) / seconds),
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


def schools() -> list[Unit]:
    return [school for school in example_city().schools() if school.county]


def mixed_items(
    items: list[dict[str, Any]], count: int, places: list[Unit], *, source: str
) -> list[ev.IntakeOpinionEvent]:
    """``count`` items over ``places``, one in ten a complaint, the rest not negative."""
    negatives = [item["text"] for item in items if item["negative"]]
    ordinary = [item["text"] for item in items if not item["negative"]]
    every = round(1 / NEGATIVE_SHARE)
    events = []
    for n in range(count):
        school = places[n % len(places)]
        pool = negatives if n % every == 0 else ordinary
        text = pool[(n // every if pool is negatives else n) % len(pool)]
        events.append(opinion_event(school.county or "", school.code, text, source=source))
    return events


async def produce_all(settings: Settings, events: list[ev.IntakeOpinionEvent]) -> float:
    """Send every event, batched; returns the seconds it took."""
    producer = SignedProducer(settings, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    futures = [
        await producer.send("intake.opinions", e.model_dump_json().encode(), key=e.county.encode())
        for e in events
    ]
    await asyncio.gather(*futures)
    seconds = time.perf_counter() - started
    await producer.stop()
    return seconds


async def drain_rate(settings: Settings, database: str, *, count: int) -> dict[str, Any]:
    """Items/s stored by the service, from the first stored item of the backlog to the
    last (so the service's start-up and group join are not counted)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    items = client[database].items
    deadline = time.perf_counter() + 120
    first_at: float | None = None
    first_count = stored = 0
    while stored < count and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
        # the backlog is all this fresh database holds yet: the cheap estimate is exact
        # and does not load the server the way a filtered count would
        stored = await items.estimated_document_count()
        if first_at is None and stored:
            first_at, first_count = time.perf_counter(), stored
    seconds = time.perf_counter() - (first_at or time.perf_counter())
    incidents = await client[database].incidents.count_documents({})
    await client.close()
    return {
        "items": count,
        "stored": stored,
        "items_per_s": round((stored - first_count) / seconds) if seconds > 0 else None,
        "seconds": round(seconds, 2),
        "incidents": incidents,
    }


async def latency(settings: Settings, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Offer OFFERED_RATE items/s for OFFERED_SECONDS: one in ten a complaint that opens
    a new incident (a school outside the backlog, a new topic), timed to its alert on
    opinion.flagged. (One function over 60 lines: the sending loop and the reading task
    share the two clocks, and apart they would pass them back and forth.)"""
    places = schools()[BACKLOG_SCHOOLS:]
    combos = [(school, text) for text in PROBES.values() for school in places]
    total = OFFERED_RATE * OFFERED_SECONDS
    traffic = mixed_items(items, total, places, source="bench-sustained")
    every = round(1 / NEGATIVE_SHARE)
    probes: set[str] = set()
    for n in range(0, total, every):
        school, text = combos[(n // every) % len(combos)]
        traffic[n] = opinion_event(school.county or "", school.code, text)
        probes.add(traffic[n].correlation_id)
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
        while len(seen_at) < len(probes):
            batch = await reader.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    cid = json.loads(record.value).get("correlation_id")
                    if cid in probes and cid not in seen_at:
                        seen_at[cid] = now

    reading = asyncio.create_task(read())
    producer = SignedProducer(settings)
    await producer.start()
    tick = 0.02  # send in small bursts every 20 ms to hold the rate
    per_tick = round(OFFERED_RATE * tick)
    started = time.perf_counter()
    for n in range(0, total, per_tick):
        await asyncio.sleep(max(0.0, started + (n / OFFERED_RATE) - time.perf_counter()))
        now = time.perf_counter()
        for event in traffic[n : n + per_tick]:
            if event.correlation_id in probes:
                sent_at[event.correlation_id] = now
            await producer.send(
                "intake.opinions", event.model_dump_json().encode(), key=event.county.encode()
            )
    await producer.flush()
    offered_seconds = time.perf_counter() - started
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reading, timeout=20)
    reading.cancel()
    await producer.stop()
    await reader.stop()
    waits = sorted(seen_at[c] - sent_at[c] for c in seen_at)
    result: dict[str, Any] = {
        "offered_per_s": round(total / offered_seconds),
        "items": total,
        "probes": len(probes),
        "alerts_seen": len(waits),
    }
    if waits:
        result["p50_ms"] = round(waits[len(waits) // 2] * 1000)
        result["p99_ms"] = round(waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1000)
    return result


async def briefing_times(settings: Settings, url: str, database: str) -> dict[str, Any]:
    """The running month's city briefing over everything stored (the backlog and the
    sustained traffic): JSON (median of three), the XLSX workbook and the PDF, beside
    the raw read of the month's items (topic and verdict of each) from MongoDB."""
    token = mint_token(settings, sub="bench", unit="jc", roles=[Role.OPINION_OFFICER])
    period = f"{local_now():%Y-%m}"
    month_start = local_now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    started = time.perf_counter()
    read = (
        await client[database]
        .items.find({"published_at": {"$gte": month_start}}, projection={"topic": 1, "negative": 1})
        .to_list()
    )
    raw_seconds = time.perf_counter() - started
    await client.close()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as http:
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            answer = await http.get(f"/briefings/monthly/{period}")
            runs.append(time.perf_counter() - started)
            answer.raise_for_status()
        started = time.perf_counter()
        workbook = await http.get(f"/briefings/monthly/{period}.xlsx")
        workbook.raise_for_status()
        xlsx_seconds = time.perf_counter() - started
        started = time.perf_counter()
        document = await http.get(f"/briefings/monthly/{period}.pdf")
        document.raise_for_status()
        pdf_seconds = time.perf_counter() - started
    json_seconds = sorted(runs)[1]
    return {
        "items_in_month": len(read),
        "counted": answer.json()["totals"]["total"],
        "raw_read_ms": round(raw_seconds * 1000),
        "json_ms": round(json_seconds * 1000),
        "xlsx_ms": round(xlsx_seconds * 1000),
        "pdf_ms": round(pdf_seconds * 1000),
        "pdf_bytes": len(document.content),
        "json_ratio_to_raw_read": round(json_seconds / raw_seconds, 2) if raw_seconds else None,
    }


async def run(env: dict[str, str]) -> dict[str, Any]:
    """Raw broker rate, the model alone, the service from a backlog, and alert latency."""
    settings = settings_from(env)
    await ensure_topics(settings)
    raw = await broker_rates(settings, messages=BACKLOG)
    items = dataset.load()
    held_out = [item for item in items if item["split"] == "test"]
    model = await asyncio.to_thread(model_rate, [item["text"] for item in items] * 6)
    quality = await asyncio.to_thread(evaluate, SentimentModel.load(), held_out)
    database = f"bench_sentiment_{os.getpid()}_{int(time.time())}"
    backlog = mixed_items(items, BACKLOG, schools()[:BACKLOG_SCHOOLS], source="bench-backlog")
    backlog_produce_seconds = await produce_all(settings, backlog)
    with tempfile.TemporaryDirectory(prefix="bench-sentiment-") as root:
        processes = ServiceProcesses(
            Path(root),
            {**env, "CITYDESK_MONGO_DATABASE": database, "CITYDESK_LOG_LEVEL": "WARNING"},
            ports={"sentiment": free_port()},
        )
        processes.start("sentiment")
        try:
            through, _ = await asyncio.gather(
                drain_rate(settings, database, count=BACKLOG),
                asyncio.to_thread(processes.wait_ready, ["sentiment"], 90.0),
            )
            delays = await latency(settings, items)
            briefing = await briefing_times(settings, processes.url("sentiment"), database)
        finally:
            processes.stop("sentiment")
    produce = raw["produce_batched_msgs_per_s"]
    return {
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "raw_broker": raw,
        "model": model
        | {"linear_ratio_to_raw_produce": round(model["linear_items_per_s"] / produce, 2)},
        "service_backlog": through
        | {
            "produce_seconds": round(backlog_produce_seconds, 2),
            "ratio_to_raw_produce": round((through["items_per_s"] or 0) / produce, 3),
        },
        "latency_intake_to_flagged": delays,
        "monthly_briefing": briefing,
        "held_out": {
            stage: {
                "overall": quality[stage]["overall"],
                "parent_praise_fpr": quality[stage]["parent_praise_fpr"],
                "registers": {
                    register: {k: row[k] for k in ("precision", "recall", "n")}
                    for register, row in quality[stage]["registers"].items()
                },
            }
            for stage in ("linear", "embedding", "cascade")
            if stage in quality
        },
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
