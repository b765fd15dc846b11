"""Submission throughput beside raw MongoDB ``insert_one`` on the same server.

The service runs in this process (its lifespan: consumers and outbox relay) behind an
in-process ASGI client:

* ``api_submissions``: a correspondent creates a draft and submits it, one story after
  the other and then from several correspondents at once. A submission reads the rules,
  categories and fingerprint candidates, and writes the version, the story, the
  fingerprint and the ``story.submitted`` outbox row in one transaction;
* ``intake``: county stories produced to ``intake.stories`` until each is a submitted
  story (the same transaction, after the dedupe lookup by county and external id).

Each rate is reported as a ratio to the raw ``insert_one`` rate measured in the same run.

    python -m citydesk.bench.submission   # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx

from citydesk.bench.raw import mongo_rates
from citydesk.bench.suite import run_alone, settings_from
from citydesk.producer import SignedProducer
from services.submission.app import create_app
from shared import events as ev
from shared import topics as tp
from shared.auth import Role, mint_token
from shared.orgtree import example_city
from shared.settings import Settings

SEQUENTIAL_STORIES = 80
CONCURRENT_STORIES = 120
CORRESPONDENTS = 8
INTAKE_STORIES = 200
CHARACTERS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过"
    "子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体"
)


def story_text(rng: random.Random, length: int) -> str:
    """Random common characters: no two bench stories look like copies of each other."""
    return "".join(rng.choice(CHARACTERS) for _ in range(length))


def draft(rng: random.Random, unit: str) -> dict[str, Any]:
    return {
        "unit": unit,
        "title": "基准测试稿件" + story_text(rng, 8),
        "body": story_text(rng, 600),
        "category": "工作动态",
        "event_date": (date.today() - timedelta(days=1)).isoformat(),
    }


async def submit_one(
    client: httpx.AsyncClient, headers: dict[str, str], story: dict[str, Any]
) -> None:
    created = await client.post("/stories", json=story, headers=headers)
    created.raise_for_status()
    submitted = await client.post(f"/stories/{created.json()['id']}/submit", headers=headers)
    submitted.raise_for_status()


async def api_rates(client: httpx.AsyncClient, settings: Settings) -> dict[str, float]:
    """Create-and-submit cycles per second, one at a time and from several correspondents."""
    rng = random.Random(7)
    schools = [unit.code for unit in example_city().schools()]
    tokens = {
        unit: {
            "Authorization": "Bearer "
            + mint_token(settings, sub=f"bench-{unit}", unit=unit, roles=[Role.CORRESPONDENT])
        }
        for unit in schools
    }
    started = time.perf_counter()
    for index in range(SEQUENTIAL_STORIES):
        unit = schools[index % len(schools)]
        await submit_one(client, tokens[unit], draft(rng, unit))
    sequential = SEQUENTIAL_STORIES / (time.perf_counter() - started)

    async def correspondent(offset: int) -> None:
        for index in range(offset, CONCURRENT_STORIES, CORRESPONDENTS):
            unit = schools[index % len(schools)]
            await submit_one(client, tokens[unit], draft(rng, unit))

    started = time.perf_counter()
    await asyncio.gather(*(correspondent(offset) for offset in range(CORRESPONDENTS)))
    concurrent = CONCURRENT_STORIES / (time.perf_counter() - started)
    return {"sequential": sequential, "concurrent": concurrent}


def intake_event(rng: random.Random, run: str, index: int) -> ev.IntakeStoryEvent:
    school = rng.choice([unit for unit in example_city().schools() if unit.county])
    return ev.IntakeStoryEvent.build(
        ev.IntakeStory(
            external_id=f"bench-{run}-{index}", unit=school.code,
            title="县区系统稿件" + story_text(rng, 8), body=story_text(rng, 600),
            category="教育教学", event_date=date.today() - timedelta(days=1), author="bench",
        ),
        producer="bench", county=school.county,
    )  # fmt: skip


async def intake_rate(settings: Settings, db: Any) -> float:
    """County stories per second from the broker to submitted stories."""
    rng = random.Random(11)
    run = uuid.uuid4().hex[:8]
    producer = SignedProducer(settings, linger_ms=5)
    await producer.start()
    try:
        # one story first, so that the clock does not include the consumer group's join
        warm_up = intake_event(rng, f"{run}-warm", 0)
        await producer.send_and_wait(
            tp.INTAKE_STORIES.name, warm_up.model_dump_json().encode(),
            key=tp.INTAKE_STORIES.key(warm_up),
        )  # fmt: skip
        await wait_for_intake(db, f"bench-{run}-warm-", 1, timeout=60)
        events = [intake_event(rng, run, index) for index in range(INTAKE_STORIES)]
        started = time.perf_counter()
        sends = [
            await producer.send(
                tp.INTAKE_STORIES.name,
                event.model_dump_json().encode(),
                key=tp.INTAKE_STORIES.key(event),
            )
            for event in events
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    done = await wait_for_intake(db, f"bench-{run}-", INTAKE_STORIES, timeout=120)
    return done / (time.perf_counter() - started)


async def wait_for_intake(db: Any, prefix: str, wanted: int, *, timeout: float) -> int:
    """How many of the intake stories exist, once all do or the time is up."""
    deadline = time.monotonic() + timeout
    query = {"source": "intake", "external_id": {"$regex": f"^{prefix}"}}
    count = 0
    while time.monotonic() < deadline:
        count = await db.stories.count_documents(query)
        if count >= wanted:
            break
        await asyncio.sleep(0.2)
    return count


async def run(env: dict[str, str]) -> dict[str, Any]:
    """Measure raw ``insert_one``, API submissions and county intake on the given stack."""
    settings = settings_from(env, "submission")
    raw = await mongo_rates(settings, documents=1000)
    database = f"bench_submission_{uuid.uuid4().hex[:8]}"
    app = create_app(settings.model_copy(update={"mongo_database": database}))
    runtime = app.state.runtime
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://submission") as client:
            api = await api_rates(client, settings)
        intake = await intake_rate(settings, runtime.db)
        await runtime.mongo.drop_database(database)
    insert_one = raw["insert_one_per_s"]
    return {
        "raw_insert_one_per_s": insert_one,
        "api_submissions_per_s": round(api["sequential"], 1),
        "api_submissions_ratio_to_raw": round(api["sequential"] / insert_one, 3),
        "api_submissions_concurrent_per_s": round(api["concurrent"], 1),
        "api_submissions_concurrent_ratio_to_raw": round(api["concurrent"] / insert_one, 3),
        "intake_stories_per_s": round(intake, 1),
        "intake_ratio_to_raw": round(intake / insert_one, 3),
        "stories": {
            "sequential": SEQUENTIAL_STORIES,
            "concurrent": CONCURRENT_STORIES,
            "correspondents": CORRESPONDENTS,
            "intake": INTAKE_STORIES,
        },
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
