"""Review throughput beside raw MongoDB ``insert_one`` on the same server.

The service runs as its own process (``citydesk serve review``):

* ``cases_opened``: ``story.submitted`` events produced to the broker until each has its
  review case (one transaction per event: the idempotency marker, the case and its first
  audit entry);
* ``decisions``: school-level approvals through the HTTP API from a few concurrent
  reviewers (one transaction per decision: the guarded case update, the audit entry and
  the ``story.reviewed`` outbox row).

Each rate is reported as a ratio to the raw ``insert_one`` rate measured in the same run.

    python -m citydesk.bench.review     # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import date
from typing import Any

import httpx

from citydesk.bench.raw import mongo_rates
from citydesk.bench.suite import one_service, run_alone, settings_from
from citydesk.producer import SignedProducer
from shared import events as ev
from shared import topics as tp
from shared.auth import mint_token
from shared.kafka import ensure_topics
from shared.mongo import make_client
from shared.orgtree import example_city
from shared.settings import Settings

STORIES = 400
REVIEWERS = 8


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
            cases = await db.cases.find(
                {"story_id": {"$regex": f"^bench-{run_id}-"}},
                projection={"unit_path": 1, "version": 1},
            ).to_list()
            decided = await decision_rate(url, settings, cases)
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
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
