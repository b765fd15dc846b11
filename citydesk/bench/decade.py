"""A benchmark city of a decade: 3,000 schools filing stories, photos and opinion items
for up to ten years, then every read route of every service timed at that size.

``scale`` is the share of the decade: 0.01 is the last five weeks, 0.1 the last year,
1 the whole ten years, always the same city at the same pace (a story per school a
month, two photos on most, an opinion item per school every two months). The stores
are filled through the services' own code, called in this process:

* submission: :func:`services.submission.service.bulk.import_stories`, the live builders
  applied in memory and inserted in batches (no copy lookup, no events emitted);
* media: :func:`services.media.bulk.import_media`, the live record of each story's photos
  as ``media.stored`` announced them (no objects written: the lists read metadata);
* scoring: the rebuild's path (:mod:`services.scoring.rebuild`): each month's events
  scored in their order by the live scorers in memory, the ledger inserted in large
  chunks, unit-months and period summaries written once at the end;
* sentiment: :func:`services.sentiment.intake.record_opinions`, the live batch path
  (classification, items, incidents, alerts);
* review: :func:`services.review.cases.open_case` for the stories still waiting when
  the history ends. Review has no bulk path and its live path stamps every case with the
  current time, so the closed cases of past years are not rebuilt (see the README).

Then the services run as separate processes over those stores and every ``GET`` route
with its parameters filled from the seeded city is asked ``REPEATS`` times.

    python -m citydesk.bench.decade --scale 0.01
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from citydesk.bench.scoring import big_city, big_city_yaml
from citydesk.bench.suite import on_temporary_stack
from citydesk.processes import ServiceProcesses
from citydesk.stack import free_port
from services.submission.models import StoryContent
from services.submission.service.bulk import PastStory, import_stories
from services.submission.service.rules import read_seed
from shared import events as ev
from shared.auth import Role, mint_token
from shared.orgtree import OrgTree
from shared.settings import Settings

YEARS = 10
STORIES_PER_SCHOOL_MONTH = 1.0
OPINIONS_PER_SCHOOL_MONTH = 0.5
REPEATS = 12
WAITING_DAYS = 10  # stories submitted this recently are still in review when history ends
CHARACTERS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过"
    "子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体"
)
OPINION_TEXTS = (
    "学校食堂饭菜质量差，孩子吃了肚子疼，家长非常担心，希望教育局调查处理",
    "老师课后辅导很用心，孩子成绩进步明显，感谢学校",
    "校门口接送秩序混乱，存在安全隐患，建议加强管理",
    "学校组织的研学活动很有意义，孩子收获很大",
    "有家长反映学校违规收费，要求退还资料费",
)


def settings_for(env: dict[str, str], service: str, prefix: str, org_file: Path) -> Settings:
    values = {
        k.removeprefix("CITYDESK_").lower(): v for k, v in env.items() if k.startswith("CITYDESK_")
    }
    return Settings.model_validate(
        {
            **values,
            "service_name": service,
            "mongo_database_prefix": prefix,
            "org_file": str(org_file),
            "run_consumers": False,
            "environment": "test",
        }
    )


# ---- the city's history ----------------------------------------------------------------
@dataclass
class Month:
    """One month of the city: its stories and the other services' events in time order."""

    stories: list[PastStory] = field(default_factory=list)
    scored: list[ev.Envelope] = field(default_factory=list)
    opinions: list[ev.IntakeOpinionEvent] = field(default_factory=list)
    waiting: list[ev.StorySubmittedEvent] = field(default_factory=list)


def _text(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(CHARACTERS, k=length))


def _past_story(
    org: OrgTree, rng: random.Random, unit: str, when: datetime, now: datetime
) -> tuple[PastStory, list[ev.Envelope], ev.StorySubmittedEvent | None]:
    """A story and what happened to it: reviewed up the route, mostly published."""
    path = org.path(unit)
    story_id = uuid.uuid4().hex
    categories = [c.name for c in read_seed()[0].categories]
    content = StoryContent(
        title=f"{org.unit(unit).name}{_text(rng, 10)}",
        body=_text(rng, rng.randint(150, 265)),
        category=rng.choice(categories),
        event_date=(when - timedelta(days=rng.randint(0, 9))).date(),
        campaign=f"专题{when.year}-{rng.randint(1, 4)}" if rng.random() < 0.3 else None,
        major=rng.random() < 0.02,
    )
    media = [
        ev.MediaStored(
            media_id=uuid.uuid4().hex,
            unit_path=path,
            kind=ev.MediaKind.PHOTO,
            content_type="image/jpeg",
            size=rng.randint(200_000, 4_000_000),
            width=4032,
            height=3024,
            sha256=uuid.uuid4().hex * 2,
            campaign=content.campaign,
            uploader=unit,
            stored_at=when - timedelta(minutes=rng.randint(5, 600)),
        )
        for _ in range(rng.choice((0, 1, 2, 2, 3)))
    ]
    submitted = ev.StorySubmittedEvent.build(
        ev.StorySubmitted(
            story_id=story_id,
            version=1,
            unit_path=path,
            # the content as written, with the media this story was given
            **content.model_dump(exclude={"media_ids"}),
            submitted_at=when,
            media_ids=[m.media_id for m in media],
            photo_count=len(media),
            author=unit,
        ),
        producer="submission",
        county=path.county,
        unit=unit,
    ).model_copy(update={"occurred_at": when})
    events: list[ev.Envelope] = [
        ev.MediaStoredEvent.build(m, producer="media", county=path.county, unit=unit).model_copy(
            update={"occurred_at": m.stored_at}
        )
        for m in media
    ]
    events.append(submitted)
    reviews: list[ev.StoryReviewed] = []
    publications: list[ev.StoryPublished] = []
    if now - when < timedelta(days=WAITING_DAYS):
        story = PastStory(story_id, unit, unit, content, when, media=media)
        return story, events, submitted
    levels = [ev.ReviewLevel.SCHOOL, ev.ReviewLevel.COUNTY, ev.ReviewLevel.CITY]
    if path.county is None:
        levels = [ev.ReviewLevel.SCHOOL, ev.ReviewLevel.CITY]
    decided = when
    outcome = rng.random()
    for index, level in enumerate(levels):
        decided += timedelta(hours=rng.randint(2, 40))
        final = index == len(levels) - 1
        decision = ev.Decision.APPROVED
        if final and outcome < 0.05:
            decision = ev.Decision.REJECTED
        reviews.append(
            ev.StoryReviewed(
                story_id=story_id,
                version=1,
                case_id=story_id,
                unit_path=path,
                level=level,
                decision=decision,
                final=final,
                reviewer=f"{level.value}-reviewer",
                reviewer_unit=org.city.code,
                decided_at=decided,
                comment="不符合报送要求" if decision == ev.Decision.REJECTED else None,
                category=content.category,
                campaign=content.campaign,
            )
        )
    if outcome >= 0.05 and outcome < 0.75:
        published_at = decided + timedelta(hours=rng.randint(1, 30))
        of_this_story = functools.partial(
            ev.StoryPublished, story_id=story_id, version=1, unit_path=path
        )
        publications.append(
            of_this_story(
                kind=ev.PublicationKind.CHANNEL,
                channel="website",
                outlet_level=ev.OutletLevel.BUREAU,
                published_at=published_at,
                photo_count=len(media),
                link=f"https://jy.example.cn/news/{story_id}",
            )
        )
        if rng.random() < 0.15:
            publications.append(
                of_this_story(
                    kind=ev.PublicationKind.ADOPTION,
                    outlet=f"媒体{rng.randint(1, 40)}",
                    outlet_level=rng.choice(list(ev.OutletLevel)[1:]),
                    placement=rng.choice(list(ev.Placement)),
                    published_at=published_at + timedelta(days=rng.randint(1, 5)),
                )
            )
    events += [
        ev.StoryReviewedEvent.build(r, producer="review", county=path.county, unit=unit).model_copy(
            update={"occurred_at": r.decided_at}
        )
        for r in reviews
    ]
    events += [
        ev.StoryPublishedEvent.build(
            p, producer="review", county=path.county, unit=unit
        ).model_copy(update={"occurred_at": p.published_at})
        for p in publications
    ]
    story = PastStory(
        story_id,
        unit,
        unit,
        content,
        when,
        media=media,
        reviews=reviews,
        publications=publications,
    )
    return story, events, None


def _opinion(org: OrgTree, rng: random.Random, when: datetime) -> ev.IntakeOpinionEvent:
    school = rng.choice(org.schools())
    return ev.IntakeOpinionEvent.build(
        ev.IntakeOpinion(
            item_id=uuid.uuid4().hex,
            source=f"{school.county}-feed",
            school=school.code,
            text=f"{school.name}：{rng.choice(OPINION_TEXTS)}",
            published_at=when,
        ),
        producer=f"county-{school.county}",
        county=school.county,
    ).model_copy(update={"occurred_at": when})


def history(org: OrgTree, *, scale: float, now: datetime, seed: int = 19) -> Iterator[Month]:
    """The city's last ``scale`` of a decade, a month at a time, oldest first."""
    rng = random.Random(seed)
    schools = [unit.code for unit in org.schools()]
    start = now - timedelta(days=365.25 * YEARS * scale)
    cursor = start
    while cursor < now:
        end = min(cursor + timedelta(days=30), now)
        share = (end - cursor) / timedelta(days=30)
        month = Month()
        moments = sorted(
            cursor + (end - cursor) * rng.random()
            for _ in range(round(len(schools) * STORIES_PER_SCHOOL_MONTH * share))
        )
        for when in moments:
            story, events, waiting = _past_story(org, rng, rng.choice(schools), when, now)
            month.stories.append(story)
            month.scored += events
            if waiting is not None:
                month.waiting.append(waiting)
        month.scored.sort(key=lambda event: event.occurred_at)
        month.opinions = [
            _opinion(org, rng, cursor + (end - cursor) * rng.random())
            for _ in range(round(len(schools) * OPINIONS_PER_SCHOOL_MONTH * share))
        ]
        yield month
        cursor = end


# ---- seeding through the services' own code --------------------------------------------
async def seed(
    env: dict[str, str], *, scale: float, prefix: str, org: OrgTree, org_file: Path, now: datetime
) -> dict[str, Any]:
    """Fill every service's store with the city's history; seconds per service."""
    from contextlib import AsyncExitStack

    from services.media.app import create_app as media_app
    from services.media.bulk import import_media
    from services.review.app import create_app as review_app
    from services.review.cases import open_case
    from services.scoring.app import create_app as scoring_app
    from services.scoring.rebuild import LedgerWriter, Replay, write_projections, write_scored
    from services.scoring.service import rule_book
    from services.sentiment.app import create_app as sentiment_app
    from services.sentiment.intake import record_opinions
    from services.submission.app import create_app as submission_app

    apps = {
        "submission": submission_app,
        "media": media_app,
        "review": review_app,
        "scoring": scoring_app,
        "sentiment": sentiment_app,
    }
    seconds = dict.fromkeys(apps, 0.0)
    counts = dict.fromkeys(("stories", "media", "scored_events", "opinions", "open_cases"), 0)
    rules = read_seed()[1]
    async with AsyncExitStack() as running:
        built = {}
        for name, create in apps.items():
            app = create(settings_for(env, name, prefix, org_file))
            await running.enter_async_context(app.router.lifespan_context(app))
            built[name] = app
        submission = built["submission"].state.runtime
        scoring = built["scoring"].state.runtime
        sentiment = built["sentiment"].state.sentiment
        review = built["review"].state.review
        media = built["media"].state.media
        # scoring is filled the way its rebuild fills a fresh database: every event scored
        # in memory by the live scorers, the ledger inserted in large chunks, unit-months
        # and period summaries written once at the end
        replay = Replay(book=await rule_book(db=scoring.db), org=org)
        ledger = LedgerWriter(scoring.db)
        for month in history(org, scale=scale, now=now):
            started = time.perf_counter()
            counts["stories"] += await import_stories(
                runtime=submission, stories=month.stories, rules=rules, recount=False
            )
            seconds["submission"] += time.perf_counter() - started
            started = time.perf_counter()
            files = [file for story in month.stories for file in story.media]
            counts["media"] += await import_media(runtime=media, files=files)
            seconds["media"] += time.perf_counter() - started
            print(f"submission {counts} {seconds}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            for event in month.scored:
                replay.score(event)
            await write_scored(replay, ledger)
            counts["scored_events"] += len(month.scored)
            seconds["scoring"] += time.perf_counter() - started
            print(f"scoring {counts} {seconds}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            for chunk in range(0, len(month.opinions), 500):
                await record_opinions(runtime=sentiment, events=month.opinions[chunk : chunk + 500])
            counts["opinions"] += len(month.opinions)
            seconds["sentiment"] += time.perf_counter() - started
            print(f"sentiment {counts} {seconds}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            for submitted in month.waiting:
                counts["open_cases"] += int(await open_case(runtime=review, event=submitted))
            seconds["review"] += time.perf_counter() - started
            print(
                f"{month.stories[0].submitted_at:%Y-%m} {counts} {seconds}"
                if month.stories
                else "",
                file=sys.stderr,
                flush=True,
            )
        started = time.perf_counter()
        await ledger.flush()
        await write_projections(
            target=scoring.db, book=replay.scoring.book, org=org, replay=replay, phases={}
        )
        seconds["scoring"] += time.perf_counter() - started
        started = time.perf_counter()
        from services.submission.service.counts import rebuild_counts

        await rebuild_counts(submission.db, stories="stories")
        seconds["submission"] += time.perf_counter() - started
    return {"seconds": {k: round(v, 1) for k, v in seconds.items()}, "counts": counts}


# ---- timing every read -----------------------------------------------------------------
SKIPPED_PATHS = {
    "/metrics",
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/asyncapi.json",
    "/redoc",
    "/docs/oauth2-redirect",
    "/login",
    "/feed.rss",
    "/feed.atom",
}


async def samples(env: dict[str, str], prefix: str, org: OrgTree, now: datetime) -> dict[str, str]:
    """A value for every path and required query parameter the read routes take."""
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(env["CITYDESK_MONGO_URI"])
    try:
        story = await client[f"{prefix}_submission"]["stories"].find_one(
            {"status": "published"}, projection={"_id": 1, "unit": 1}
        )
        case = await client[f"{prefix}_review"]["cases"].find_one({}, projection={"_id": 1})
        alert = await client[f"{prefix}_sentiment"]["alerts"].find_one({}, projection={"_id": 1})
        incident = await client[f"{prefix}_sentiment"]["incidents"].find_one(
            {}, projection={"_id": 1}
        )
    finally:
        await client.close()
    month = now.strftime("%Y-%m")
    school = (story or {}).get("unit") or org.schools()[0].code
    return {
        "story_id": (story or {}).get("_id", "none"),
        "version": "1",
        "case_id": (case or {}).get("_id", "none"),
        "alert_id": (alert or {}).get("_id", "none"),
        "incident_id": (incident or {}).get("_id", "none"),
        "unit": school,
        "unit_code": school,
        "county": org.counties()[0].code,
        "external_id": "none",
        "period": f"month:{month}",
        "code": "none",
        "level": "county",
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1)}


async def _time(client: httpx.AsyncClient, url: str, **kwargs: Any) -> dict[str, Any]:
    durations, status, size = [], 0, 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        try:
            response = await client.get(url, **kwargs)
        except httpx.HTTPError as exc:  # a route that breaks is a row, not the end of the run
            return {"p50_ms": None, "p95_ms": None, "status": type(exc).__name__, "bytes": 0}
        durations.append((time.perf_counter() - started) * 1000)
        status, size = response.status_code, len(response.content)
    return {**_percentiles(durations), "status": status, "bytes": size}


def _fill(path: str, values: dict[str, str]) -> str | None:
    for name in [part[1:-1] for part in path.split("/") if part.startswith("{")]:
        if name not in values:
            return None
        path = path.replace("{" + name + "}", values[name])
    return path


async def time_routes(urls: dict[str, str], token: str, values: dict[str, str]) -> dict[str, Any]:
    """p50/p95 of every GET route of every service, and of every console page."""
    found: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=120) as client:
        for service, base in urls.items():
            if service == "console":
                continue
            schema = (await client.get(f"{base}/openapi.json")).json()
            for path, operations in sorted(schema["paths"].items()):
                get = operations.get("get")
                filled = _fill(path, values)
                if get is None or path in SKIPPED_PATHS or filled is None:
                    continue
                query = {
                    p["name"]: values[p["name"]]
                    for p in get.get("parameters", [])
                    if p["in"] == "query" and p.get("required") and p["name"] in values
                }
                found[f"{service} GET {path}"] = await _time(
                    client, f"{base}{filled}", headers=headers, params=query
                )
        console = urls.get("console")
        if console:
            for page in (
                "/",
                "/stories",
                "/review",
                "/office",
                "/rankings",
                "/campaigns",
                "/opinion",
                "/stories/{story_id}",
                "/stories/{story_id}/history",
                "/review/cases/{case_id}",
                "/opinion/alerts/{alert_id}",
            ):
                filled = _fill(page, values)
                if filled is not None:
                    found[f"console page {page}"] = await _time(
                        client, f"{console}{filled}", cookies={"citydesk_token": token}
                    )
    return found


def run_processes(
    env: dict[str, str], prefix: str, org_file: Path, folder: Path
) -> ServiceProcesses:
    names = ("submission", "media", "review", "scoring", "sentiment", "console")
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    process_env = {
        **env,
        "CITYDESK_MONGO_DATABASE_PREFIX": prefix,
        "CITYDESK_ORG_FILE": str(org_file),
        "CITYDESK_ENVIRONMENT": "test",
        "CITYDESK_RUN_CONSUMERS": "false",
        **{f"CITYDESK_CONSOLE_{name.upper()}_URL": url for name, url in urls.items()},
    }
    processes = ServiceProcesses(folder, env=process_env, ports=ports)
    processes.start_all(names, timeout=180)
    return processes


async def run(env: dict[str, str], scale: float = 0.01, hold: Path | None = None) -> dict[str, Any]:
    """Seed the city's last ``scale`` of a decade, then time every read over it; with
    ``hold``, write the stack's addresses and a city token there and keep it running
    until it is sent SIGTERM or SIGINT, to look into a route by hand."""
    os.environ.update(env)
    org = big_city()
    now = datetime.now(UTC)
    prefix = f"decade{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="citydesk-decade-") as folder:
        org_file = big_city_yaml(org, Path(folder))
        started = time.perf_counter()
        seeded = await seed(env, scale=scale, prefix=prefix, org=org, org_file=org_file, now=now)
        seeded["total_seconds"] = round(time.perf_counter() - started, 1)
        processes = run_processes(env, prefix, org_file, Path(folder))
        try:
            values = await samples(env, prefix, org, now)
            token = mint_token(
                settings_for(env, "bench", prefix, org_file),
                sub="bench-city",
                unit=org.city.code,
                roles=[role.value for role in Role],
                name="市局测试",
            )
            urls = {name: processes.url(name) for name in (processes.ports or {})}
            routes = await time_routes(urls, token, values)
            if hold is not None:
                await _hold(hold, env=env, prefix=prefix, urls=urls, token=token, values=values)
        finally:
            processes.stop_all()
    return {
        "scale": scale,
        "years": round(YEARS * scale, 2),
        "schools": len(org.schools()),
        "seeded": seeded,
        "routes": routes,
    }


async def _hold(path: Path, **running: Any) -> None:
    text = json.dumps(running, ensure_ascii=False, indent=2, default=str) + "\n"
    await asyncio.to_thread(path.write_text, text)
    print(f"the decade city runs until stopped; addresses in {path}", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # a background job ignores SIGINT: TERM (or INT in a terminal) ends the hold, and the
    # processes and the stack are stopped on the way out
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    await stop.wait()


def table(results: list[dict[str, Any]]) -> str:
    """The per-route table: p50/p95 at each size, side by side."""
    routes = sorted({route for result in results for route in result["routes"]})
    header = "| route | " + " | ".join(f"{r['years']} y p50 / p95 ms" for r in results) + " |"
    lines = [header, "|---|" + "---|" * len(results)]
    for route in routes:
        cells = []
        for result in results:
            got = result["routes"].get(route)
            cells.append(f"{got['p50_ms']} / {got['p95_ms']} ({got['status']})" if got else "–")
        lines.append(f"| `{route}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_scales(scales: list[float], out: Path, hold: Path | None = None) -> list[dict[str, Any]]:
    """Each size on a fresh local stack; the JSON to ``out``, the table to stdout."""
    results = [
        on_temporary_stack(functools.partial(run, scale=scale, hold=hold)) for scale in scales
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2, default=str) + "\n")
    print(json.dumps([{"scale": r["scale"], **r["seeded"]} for r in results], indent=2))
    print(table(results))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="share of the decade")
    parser.add_argument("--out", type=Path, default=Path(".bench/decade.json"))
    parser.add_argument(
        "--hold",
        type=Path,
        help="after timing, keep the city running and write its addresses and a token here",
    )
    args = parser.parse_args()
    run_scales(args.scale or [0.01], args.out, args.hold)


if __name__ == "__main__":
    main()
