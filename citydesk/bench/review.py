"""Review throughput beside raw MongoDB ``insert_one`` on the same server.

The service runs as its own process (``citydesk serve review``):

* ``cases_opened``: ``story.submitted`` events produced to the broker until each has its
  review case (one transaction per event: the idempotency marker, the case and its first
  audit entry);
* ``decisions``: school-level approvals through the HTTP API from a few concurrent
  reviewers (one transaction per decision: the guarded case update, the audit entry and
  the ``story.reviewed`` outbox row).

* ``queue_pages``: a school reviewer's ``GET /queue`` (pages of 50), the first page and
  the one after it, with ``QUEUE_CASES`` cases stored (``CITYDESK_BENCH_QUEUE_CASES``,
  default 3,000 and 30,000), 1 % of them waiting at that school; the cases are built by
  the service's own ``cases.case_document``.

Each rate is reported as a ratio to the raw ``insert_one`` rate measured in the same run,
each page time as a multiple of one raw ``insert_one``.

    python -m citydesk.bench.review     # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx

from citydesk.bench.raw import mongo_rates
from citydesk.bench.suite import one_service, run_alone, settings_from
from citydesk.producer import SignedProducer
from services.review import cases
from shared import events as ev
from shared import topics as tp
from shared.auth import mint_token
from shared.kafka import ensure_topics
from shared.mongo import make_client
from shared.orgtree import example_city
from shared.settings import Settings

STORIES = 400
REVIEWERS = 8
QUEUE_CASES = [
    int(n) for n in os.environ.get("CITYDESK_BENCH_QUEUE_CASES", "3000,30000").split(",")
]
PAGED_SCHOOL = "lj-dezhx"
SCHOOL_ROUTE = [ev.ReviewLevel.SCHOOL, ev.ReviewLevel.COUNTY, ev.ReviewLevel.CITY]


def submitted(unit: str, run: str, index: int) -> ev.StorySubmittedEvent:
    path = example_city().path(unit)
    return ev.StorySubmittedEvent.build(
        ev.StorySubmitted(
            story_id=f"bench-{run}-{index}", version=1, unit_path=path,
            title=f"基准测试稿件 {index}", body="正文。" * 200, category="work_news",
            event_date=date.today(), submitted_at=ev.utcnow(), author="bench",
        ),
        producer="bench", county=path.county, unit=path.unit,
    )  # fmt: skip


async def produce_all(settings: Settings, events: list[ev.StorySubmittedEvent]) -> None:
    producer = SignedProducer(settings, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                tp.STORY_SUBMITTED.name, e.model_dump_json().encode(), key=tp.STORY_SUBMITTED.key(e)
            )
            for e in events
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def wait_for_cases(db: Any, run: str, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    query = {"story_id": {"$regex": f"^bench-{run}-"}}
    while await db.cases.count_documents(query) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"cases for run {run} not all opened after {timeout:.0f}s")
        await asyncio.sleep(0.05)


async def decision_rate(base_url: str, settings: Settings, cases: list[dict[str, Any]]) -> float:
    """Approve every case at the school level from ``REVIEWERS`` concurrent clients."""
    tokens = {
        unit: mint_token(settings, sub=f"head-{unit}", unit=unit, roles=["reviewer_school"])
        for unit in {case["unit_path"]["unit"] for case in cases}
    }
    pending = list(cases)

    async def reviewer(client: httpx.AsyncClient) -> None:
        while pending:
            case = pending.pop()
            token = tokens[case["unit_path"]["unit"]]
            response = await client.post(
                f"/cases/{case['_id']}/decisions",
                json={"version": case["version"], "decision": "approve"},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 200:
                raise RuntimeError(f"decision answered {response.status_code}: {response.text}")

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*(reviewer(client) for _ in range(REVIEWERS)))
        return len(cases) / (time.perf_counter() - started)


def stored_cases(count: int, start: int) -> list[dict[str, Any]]:
    """Cases as the service opens them, 1 % waiting at ``PAGED_SCHOOL``."""
    org = example_city()
    schools = [unit for unit in org.schools() if unit.type == "school"]
    now = ev.utcnow()
    documents = []
    for index in range(start, start + count):
        unit = org.unit(PAGED_SCHOOL) if index % 100 == 0 else schools[index % len(schools)]
        event = submitted(unit.code, "pages", index)
        documents.append(
            cases.case_document(
                event, unit=unit, route=SCHOOL_ROUTE,
                case_id=uuid.uuid4().hex, now=now - timedelta(seconds=index),
            )
        )  # fmt: skip
    return documents


async def queue_page_times(base_url: str, settings: Settings, db: Any) -> dict[str, Any]:
    """p50/p95 of the first and the second page of a school's queue at each size."""
    token = mint_token(settings, sub="head", unit=PAGED_SCHOOL, roles=["reviewer_school"])
    headers = {"Authorization": f"Bearer {token}"}
    figures: dict[str, Any] = {}
    stored = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=60, headers=headers) as client:
        for size in QUEUE_CASES:
            for chunk in range(stored, size, 5000):
                await db.cases.insert_many(stored_cases(min(5000, size - chunk), chunk))
            stored = size
            first, second = [], []
            for _ in range(20):
                started = time.perf_counter()
                page = (await client.get("/queue")).json()
                first.append(time.perf_counter() - started)
                started = time.perf_counter()
                await client.get("/queue", params={"cursor": page["next_cursor"]})
                second.append(time.perf_counter() - started)
            figures[str(size)] = {
                "first_page_ms": percentiles(first),
                "second_page_ms": percentiles(second),
            }
    return figures


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50": round(statistics.median(ordered) * 1000, 1),
        "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
    }


async def run(env: dict[str, str]) -> dict[str, Any]:
    """Raw insert_one/s, then cases opened per second and decisions per second."""
    settings = settings_from(env)
    await ensure_topics(settings)
    raw = await mongo_rates(settings)
    schools = [unit.code for unit in example_city().schools() if unit.type == "school"]
    run_id = uuid.uuid4().hex[:8]
    database = f"bench_review_{os.getpid()}_{int(time.time())}"
    client = make_client(settings)
    db = client[database]
    try:
        async with one_service(env, "review", database) as url:
            # one story first: the consumer has joined and read whatever came before
            await produce_all(settings, [submitted(schools[0], f"{run_id}w", 0)])
            await wait_for_cases(db, f"{run_id}w", 1)
            events = [submitted(schools[i % len(schools)], run_id, i) for i in range(STORIES)]
            started = time.perf_counter()
            await produce_all(settings, events)
            await wait_for_cases(db, run_id, STORIES)
            opened = STORIES / (time.perf_counter() - started)
            opened_cases = await db.cases.find(
                {"story_id": {"$regex": f"^bench-{run_id}-"}},
                projection={"unit_path": 1, "version": 1},
            ).to_list()
            decided = await decision_rate(url, settings, opened_cases)
            pages = await queue_page_times(url, settings, db)
    finally:
        await client.drop_database(database)
        await client.close()
    insert_one = raw["insert_one_per_s"]
    return {
        "raw_insert_one_per_s": insert_one,
        "cases_opened_per_s": round(opened, 1),
        "cases_opened_ratio_to_raw": round(opened / insert_one, 3),
        "decisions_per_s": round(decided, 1),
        "decisions_ratio_to_raw": round(decided / insert_one, 3),
        "stories": STORIES,
        "concurrent_reviewers": REVIEWERS,
        "queue_pages": pages,
        "raw_insert_one_ms": round(1000 / insert_one, 2),
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
