"""Scoring ledger throughput beside raw MongoDB ``insert_one`` on the same server, and the
latency of rankings over a city of 3,000 schools with a year of projections.

* ``ledger_per_event``: events applied one at a time, what the live consumers do when
  events trickle in (ledger insert with its unique keys, then the projection recomputed
  from the ledger);
* ``ledger_batched``: the same work in batches of 500, the code path the live consumers
  and the rebuild share;
* ``ledger_replayed``: the batches applied a second time (everything is a duplicate);
* ``live_consumer``: the scoring service itself, its batch consumers scoring events
  produced while it runs, until the last projection is written;
* ``city_year``: a year of a city of 3,000 schools in 15 counties produced to the topics
  (stories, reviews, publications, adoptions and the bureau's determinations), rebuilt
  from the broker, then ranked from the rebuilt database: month, quarter and year rankings
  of all schools (``latency.<period>_schools_city_wide.median_ms``), of one county and of
  the counties.

Per-event rates are reported as ratios to the raw ``insert_one`` rate measured in the same
run, the rebuild also as a ratio to raw ``insert_many`` (documents per second), the bulk
write it is made of.

    python -m citydesk.bench.scoring     # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from citydesk.bench.raw import mongo_rates
from citydesk.bench.suite import run_alone, settings_from
from citydesk.producer import SignedProducer
from services.scoring import rankings
from services.scoring.app import create_app
from services.scoring.handlers import SCORED_TOPICS
from services.scoring.ledger import apply_events
from services.scoring.periods import parse_period
from services.scoring.rebuild import rebuild
from services.scoring.service import (
    LEDGER,
    SUMMARIES,
    UNIT_MONTHS,
    calendar_for,
    ensure_indexes,
    seed_rules,
)
from shared import events as ev
from shared import topics as tp
from shared.http import JSONAnswer
from shared.kafka import ensure_topics
from shared.mongo import make_client
from shared.orgtree import OrgTree, example_city, parse_org
from shared.settings import Settings

PER_EVENT = 300
YEAR_EVENTS = 300_000  # a year of 3,000 schools: about 8 stories each, with their reviews
BATCHED = 2_000
BATCH = 500
CITY_SCHOOLS = 3_000
CITY_COUNTIES = 15


def story_events(org: OrgTree, count: int, seed: int) -> list[ev.Envelope]:
    """A realistic mix: every story submitted, most approved, some published and adopted."""
    rng = random.Random(seed)
    schools = org.schools()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    events: list[ev.Envelope] = []
    levels = list(ev.OutletLevel)[1:]
    while len(events) < count:
        unit = rng.choice(schools)
        path = org.path(unit.code)
        story = uuid.uuid4().hex
        when = start + timedelta(minutes=rng.randrange(365 * 24 * 60))
        submitted = ev.StorySubmitted(
            story_id=story, version=1, unit_path=path, title="t", body="b", category="工作动态",
            event_date=when.date(), submitted_at=when, author="a",
        )  # fmt: skip
        chain: list[Any] = [ev.StorySubmittedEvent.build(submitted, producer="bench")]
        if rng.random() < 0.7:
            reviewed = ev.StoryReviewed(
                story_id=story, version=1, case_id=story, unit_path=path,
                level=ev.ReviewLevel.CITY, decision=ev.Decision.APPROVED, final=True,
                reviewer="r", reviewer_unit="jc", decided_at=when,
            )  # fmt: skip
            chain.append(ev.StoryReviewedEvent.build(reviewed, producer="bench"))
            channel = ev.StoryPublished(
                story_id=story, version=1, unit_path=path, kind=ev.PublicationKind.CHANNEL,
                channel="website", outlet_level=ev.OutletLevel.BUREAU, published_at=when,
                photo_count=rng.randrange(3),
            )  # fmt: skip
            chain.append(ev.StoryPublishedEvent.build(channel, producer="bench"))
            if rng.random() < 0.4:
                adopted = ev.StoryPublished(
                    story_id=story, version=1, unit_path=path, kind=ev.PublicationKind.ADOPTION,
                    outlet=f"outlet-{rng.randrange(20)}", outlet_level=rng.choice(levels),
                    placement=rng.choice(list(ev.Placement)), published_at=when,
                )  # fmt: skip
                chain.append(ev.StoryPublishedEvent.build(adopted, producer="bench"))
        events += [e.model_copy(update={"occurred_at": when}) for e in chain]
    return events[:count]


async def ledger_rates(settings: Settings, org: OrgTree) -> dict[str, Any]:
    client = make_client(settings)
    db = client[f"bench_scoring_{uuid.uuid4().hex[:8]}"]
    await ensure_indexes(db=db)
    await seed_rules(db=db)
    try:
        single = story_events(org, PER_EVENT, seed=1)
        started = time.perf_counter()
        for event in single:
            await apply_events(db=db, org=org, events=[event], count_metrics=False)
        per_event = PER_EVENT / (time.perf_counter() - started)

        batched = story_events(org, BATCHED, seed=2)
        started = time.perf_counter()
        for i in range(0, BATCHED, BATCH):
            await apply_events(db=db, org=org, events=batched[i : i + BATCH], count_metrics=False)
        batch_rate = BATCHED / (time.perf_counter() - started)

        entries = await db[LEDGER].count_documents({})
        started = time.perf_counter()
        for i in range(0, BATCHED, BATCH):
            applied = await apply_events(
                db=db, org=org, events=batched[i : i + BATCH], count_metrics=False
            )
            assert applied.entries == 0
        replay_rate = BATCHED / (time.perf_counter() - started)
        assert await db[LEDGER].count_documents({}) == entries
    finally:
        await client.drop_database(db.name)
        await client.close()
    return {
        "per_event_events_per_s": round(per_event),
        "batched_events_per_s": round(batch_rate),
        "replayed_events_per_s": round(replay_rate),
        "ledger_entries": entries,
    }


async def produce(settings: Settings, events: list[ev.Envelope]) -> None:
    """Publish ``events`` to their topics, in order, with their ordering keys."""
    producer = SignedProducer(settings, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for event in events:
            topic = tp.BY_NAME[event.type]
            payload = event.model_dump_json().encode()
            futures.append(await producer.send(topic.name, payload, key=topic.key(event)))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def events_handled() -> float:
    """Events the scoring consumers of this process have applied or dead-lettered."""
    total = 0.0
    for topic in SCORED_TOPICS:
        for outcome in ("applied", "dead_lettered"):
            labels = {
                "service": "scoring", "topic": topic.name,
                "handler": "score_" + topic.name.replace(".", "_"), "outcome": outcome,
            }  # fmt: skip
            total += REGISTRY.get_sample_value("citydesk_events_handled_total", labels) or 0.0
    return total


async def live_rate(settings: Settings, org: OrgTree, *, timeout: float = 300.0) -> dict[str, Any]:
    """Run the scoring service with fresh consumer groups and database, let it catch up on
    a warm-up, then time it scoring events produced while it runs."""
    await ensure_topics(settings)
    prefix = f"benchlive{uuid.uuid4().hex[:8]}"
    service = settings.model_copy(update={"mongo_database_prefix": prefix, "run_consumers": True})
    app = create_app(service)

    async def scored(events: list[ev.Envelope], handled: float = 0.0) -> bool:
        """Every event has its ledger entries and the consumers have handled ``handled``
        events in all (so the batches' projections are written too)."""
        if events_handled() < handled:
            return False
        ids = [str(e.event_id) for e in events]
        query = {"source_event_id": {"$in": ids}}
        found = await app.state.runtime.db[LEDGER].distinct("source_event_id", query)
        return len(found) == len(ids)

    async def until(check: Callable[[], Awaitable[bool]]) -> None:
        deadline = time.monotonic() + timeout
        while not await check():
            if time.monotonic() > deadline:
                raise TimeoutError("the live consumers did not score the events in time")
            await asyncio.sleep(0.2)

    async with app.router.lifespan_context(app):
        warm_up = story_events(org, 50, seed=5)
        await produce(settings, warm_up)
        await until(lambda: scored(warm_up))
        events = story_events(org, BATCHED, seed=4)
        before = events_handled()
        started = time.perf_counter()
        await produce(settings, events)
        await until(lambda: scored(events, before + len(events)))
        seconds = time.perf_counter() - started
        handled = events_handled() - before
    client = make_client(settings)
    await client.drop_database(service.database_name)
    await client.close()
    return {"events": round(handled), "events_per_s": round(handled / seconds)}


def determinations(org: OrgTree, count: int, seed: int) -> list[ev.Envelope]:
    """The bureau's determinations of serious incidents at ``count`` schools (vetoes)."""
    rng = random.Random(seed)
    events: list[ev.Envelope] = []
    for unit in rng.sample(org.schools(), count):
        when = datetime(2026, rng.randrange(1, 12), 10, tzinfo=UTC)
        flag = ev.OpinionFlagged(
            kind=ev.FlagKind.DETERMINATION, incident_id=f"inc-{unit.code}",
            county=unit.county, school=unit.code, severity=ev.Severity.ORANGE, score=1.0,
            topic="food", flagged_at=when, decided_by="office", decided_by_name="局办公室",
            reason="经调查属实，造成恶劣影响", incident_at=when,
        )  # fmt: skip
        event = ev.OpinionFlaggedEvent.build(flag, producer="bench", county=unit.county)
        events.append(event.model_copy(update={"occurred_at": when}))
    return events


def big_city_yaml(org: OrgTree, folder: Path) -> Path:
    """The big city as an org file, for the rebuild (which loads its org from settings)."""
    data = {
        "city": {"code": org.city.code, "name": org.city.name},
        "counties": [
            {
                "code": county.code, "name": county.name, "area": county.area,
                "units": [
                    {"code": s.code, "name": s.name, "area": s.area}
                    for s in sorted(org.schools(county.code), key=lambda u: u.code)
                ],
            }
            for county in sorted(org.counties(), key=lambda u: u.code)
        ],
    }  # fmt: skip
    path = folder / "big-city.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


async def city_year(settings: Settings, *, events: int = YEAR_EVENTS) -> dict[str, Any]:
    """Produce a city's year, rebuild it from the topics, and rank it."""
    org = big_city()
    await ensure_topics(settings)
    year = story_events(org, events, seed=7) + determinations(org, 20, seed=8)
    await produce(settings, year)
    with tempfile.TemporaryDirectory(prefix="citydesk-bench-city-") as folder:
        source = settings.model_copy(
            update={
                "mongo_database": f"bench_live_{uuid.uuid4().hex[:8]}",
                "org_file": str(big_city_yaml(org, Path(folder))),
            }
        )
        database = f"bench_rebuild_{uuid.uuid4().hex[:8]}"
        client = make_client(settings)
        await seed_rules(db=client[source.database_name])
        try:
            rebuilt = await rebuild(source, database)
            db = client[database]
            ranking = await ranking_latency(db, org)
            counts = {
                "ledger_entries": await db[LEDGER].estimated_document_count(),
                "unit_months": await db[UNIT_MONTHS].estimated_document_count(),
                "summaries": await db[SUMMARIES].estimated_document_count(),
            }
        finally:
            await client.drop_database(database)
            await client.drop_database(source.database_name)
            await client.close()
    return {
        "schools": CITY_SCHOOLS,
        "counties": CITY_COUNTIES,
        "events_produced": len(year),
        "rebuild": {
            "events": rebuilt["events"],
            "rejected": rebuilt["rejected"],  # other benches' events name other units
            "seconds": rebuilt["seconds"],
            "events_per_s": round(rebuilt["events"] / rebuilt["seconds"]),
            "phases_seconds": rebuilt["phases_seconds"],
        },
        **counts,
        "ranking": ranking,
    }


def big_city() -> OrgTree:
    """A city of 15 counties and 3,000 schools (a quarter of them rural)."""
    per_county = CITY_SCHOOLS // CITY_COUNTIES
    counties = [
        {
            "code": f"c{c:02d}",
            "name": f"县区{c}",
            "area": "urban",
            "units": [
                {
                    "code": f"c{c:02d}-s{s:03d}",
                    "name": f"学校{c}-{s}",
                    "area": "rural" if s % 4 == 0 else "urban",
                }
                for s in range(per_county)
            ],
        }
        for c in range(CITY_COUNTIES)
    ]
    return parse_org({"city": {"code": "big", "name": "大城市"}, "counties": counties})


async def ranking_latency(db: Any, org: OrgTree) -> dict[str, Any]:
    """Rankings of the rebuilt year as ``GET /rankings`` answers them (the calendar, the
    ranking and its JSON body), each timed a few times (the median is reported); the year
    city-wide also with every quota line short of its target, as the bulletin asks."""
    now = datetime(2027, 1, 15, tzinfo=UTC)
    timings: dict[str, Any] = {}
    cases = {
        "month_schools_city_wide": ("month:2026-11", "schools", None, False),
        "month_schools_one_county": ("month:2026-11", "schools", "c03", False),
        "month_counties": ("month:2026-11", "counties", None, False),
        "quarter_schools_city_wide": ("quarter:2026-Q4", "schools", None, False),
        "half_schools_city_wide": ("half:2026-H2", "schools", None, False),
        "year_schools_city_wide": ("year:2026", "schools", None, False),
        "year_counties": ("year:2026", "counties", None, False),
        "year_schools_city_wide_with_shortfall_lines": ("year:2026", "schools", None, True),
    }
    for name, (label, scope, county, lines) in cases.items():
        samples = []
        for _ in range(11):
            started = time.perf_counter()
            # the calendar as the route reads it: the go-live from the ledger's first month
            calendar = await calendar_for(db=db, now=now)
            result = await rankings.ranking(
                db=db, org=org, period=parse_period(label), scope=scope,  # type: ignore[arg-type]
                county=county, calendar=calendar, shortfall_lines=lines,
            )  # fmt: skip
            body = JSONAnswer(result).body
            samples.append(time.perf_counter() - started)
        timings[name] = {
            "median_ms": round(statistics.median(samples) * 1000, 1),
            "rows": len(result["rows"]),
            "vetoed": sum(1 for row in result["rows"] if row["veto"]),
            "shortfall_lines": len(result.get("quota_shortfalls") or ()),
            "answer_kb": round(len(body) / 1024),
        }
    return {"latency": timings}


async def run(env: dict[str, str]) -> dict[str, Any]:
    """Raw insert rates; ledger and live consumer rates as ratios to ``insert_one``; a
    city's year rebuilt from the topics (as a ratio to ``insert_many``) and ranked."""
    settings = settings_from(env, "scoring")
    org = example_city()
    raw = await mongo_rates(settings, documents=1000)
    ledger = await ledger_rates(settings, org)
    live = await live_rate(settings, org)
    # a smaller year for a quick run: CITYDESK_BENCH_YEAR_EVENTS in the stack's or the
    # caller's environment
    events = int(
        env.get("CITYDESK_BENCH_YEAR_EVENTS")
        or os.environ.get("CITYDESK_BENCH_YEAR_EVENTS", str(YEAR_EVENTS))
    )
    city = await city_year(settings, events=events)
    insert_one, insert_many = raw["insert_one_per_s"], raw["insert_many_docs_per_s"]
    return {
        "raw_mongo": raw,
        "ledger": ledger,
        "ratios_to_insert_one": {
            "per_event": round(ledger["per_event_events_per_s"] / insert_one, 2),
            "batched": round(ledger["batched_events_per_s"] / insert_one, 2),
            "replayed": round(ledger["replayed_events_per_s"] / insert_one, 2),
            "live_consumer": round(live["events_per_s"] / insert_one, 2),
        },
        "live_consumer": live,
        "rebuild_from_kafka": {
            **city["rebuild"],
            "ratio_to_insert_many": round(city["rebuild"]["events_per_s"] / insert_many, 2),
        },
        "city_year": {k: v for k, v in city.items() if k not in ("rebuild", "ranking")},
        "ranking": city["ranking"],
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
