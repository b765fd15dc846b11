"""Nothing lost, nothing counted twice: a steady load of stories and opinion items while
every service is killed with SIGKILL in turn, the broker is stopped and restarted, and
MongoDB is restarted. Afterwards every ledger, case and alert is exactly what the load
alone produces, and a replay of all topics into a fresh scoring database gives the same
rankings."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pymongo import AsyncMongoClient

from citydesk.processes import ServiceProcesses
from citydesk.producer import SignedProducer
from citydesk.stack import Stack, free_port
from shared import events as ev
from shared import topics as tp
from shared.auth import Role
from shared.orgtree import example_city
from shared.settings import Settings
from tests.e2e import flows
from tests.e2e.conftest import start_city
from tests.support import auth, eventually, every_page, header

pytestmark = [pytest.mark.slow]

ORG = example_city()
INTAKE_COUNTIES = ("bc", "lj", "xs")
INCIDENT_SCHOOLS = ("nl-dyzx", "qs-syxx", "dh-zyzx")
COMPLAINTS = [
    "{name}食堂饭菜变质，孩子吃完呕吐腹泻，已经送医院了！",
    "{name}又有学生食物中毒住院，学校到现在都不回应，家长非常气愤。",
    "{name}食堂卫生太差，饭菜有异味，强烈要求彻查！",
    "我家孩子在{name}吃完午饭肚子疼，食堂必须给家长一个说法。",
]


async def whole_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` so far, read without a consumer group."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        await reader.topics()
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        reader.assign(partitions)
        await reader.seek_to_beginning()
        records: list[Any] = []
        while batch := await reader.getmany(timeout_ms=1000):
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        await reader.stop()


def intake_story(county: str, school: str, index: int, run: str) -> ev.IntakeStoryEvent:
    name = ORG.unit(school).name
    return ev.IntakeStoryEvent.build(
        ev.IntakeStory(
            external_id=f"{run}-{county}-{index}", unit=school,
            title=f"{name}开展第{index + 1}期“书香校园”阅读分享会",
            body=f"{name}组织开展第{index + 1}期“书香校园”阅读分享会，各班推选代表分享读书心得，"
            "老师进行点评，活动营造了浓厚的读书氛围，进一步激发了学生的阅读兴趣。",
            category="工作动态", event_date=flows.today(), author=f"{county}-portal",
        ),
        producer=f"{county}-portal", county=county, unit=school,
    )  # fmt: skip


def opinion(school: str, index: int, run: str) -> ev.IntakeOpinionEvent:
    unit = ORG.unit(school)
    return ev.IntakeOpinionEvent.build(
        ev.IntakeOpinion(
            item_id=f"{run}-{school}-{index}", source="百姓呼声", school=school,
            text=COMPLAINTS[index % len(COMPLAINTS)].format(name=unit.name),
            published_at=ev.utcnow(),
        ),
        producer=f"{unit.county}-monitor", county=unit.county or "", unit=school,
    )  # fmt: skip


class Load:
    """Produces the load, waiting out a stopped broker rather than losing a message."""

    def __init__(self, settings: Settings, run: str) -> None:
        self.settings = settings
        self.run = run
        self.stories: list[ev.IntakeStoryEvent] = []
        self.opinions: list[ev.IntakeOpinionEvent] = []
        self.poisons: dict[str, list[bytes]] = {"intake.stories": [], "intake.opinions": []}

    async def send(self, topic: tp.Topic, event: ev.Envelope) -> None:
        await self.send_raw(topic, event.model_dump_json().encode(), topic.key(event))

    async def send_raw(
        self, topic: tp.Topic, value: bytes, key: bytes, headers: dict[str, str] | None = None
    ) -> None:
        while True:
            producer = SignedProducer(self.settings, request_timeout_ms=5000)
            try:
                await producer.start()
                await producer.send_and_wait(topic.name, value, key=key, headers=headers)
                return
            except Exception:
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await producer.stop()

    async def wave(self, wave: int) -> None:
        for county in INTAKE_COUNTIES:
            schools = sorted(u.code for u in ORG.schools(county))
            for index in range(wave * 3, wave * 3 + 3):
                event = intake_story(county, schools[index % len(schools)], index, self.run)
                self.stories.append(event)
                await self.send(tp.INTAKE_STORIES, event)
        for school in INCIDENT_SCHOOLS:
            for index in range(wave * 4, wave * 4 + 4):
                event = opinion(school, index, self.run)
                self.opinions.append(event)
                await self.send(tp.INTAKE_OPINIONS, event)
        # a county system resends what it already sent: must change nothing
        await self.send(tp.INTAKE_STORIES, self.stories[-1])
        await self.send(tp.INTAKE_OPINIONS, self.opinions[-1])
        # and a record that says JSON but is not: dead-lettered once, whatever is killed
        for topic in (tp.INTAKE_STORIES, tp.INTAKE_OPINIONS):
            poison = f"\xff not json {self.run} {topic.name} {wave}".encode("latin-1")
            self.poisons[topic.name].append(poison)
            county = INTAKE_COUNTIES[0].encode()
            await self.send_raw(topic, poison, county, {"content-type": "application/json"})


async def approve_everything(
    http: httpx.AsyncClient, city: ServiceProcesses, story_ids: set[str]
) -> None:
    """Every reviewer clears their queue of our stories until all are finally approved."""
    reviewers = [(c, Role.REVIEWER_COUNTY) for c in INTAKE_COUNTIES] + [("jc", Role.REVIEWER_CITY)]
    reviewers += [(u.code, Role.REVIEWER_SCHOOL) for c in INTAKE_COUNTIES for u in ORG.schools(c)]
    finals: set[str] = set()
    for _ in range(60):
        for unit, role in reviewers:
            try:
                queue = await every_page(
                    http, f"{city.url('review')}/queue", headers=auth(unit, role)
                )
            except httpx.HTTPError:  # a service restarting in the fault sequence
                continue
            for case in queue:
                if case["story_id"] not in story_ids:
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    decided = await http.post(
                        f"{city.url('review')}/cases/{case['case_id']}/decisions",
                        headers=auth(unit, role),
                        json={"version": case["version"], "decision": "approve"},
                    )
                    if decided.status_code == 200 and decided.json()["final"]:
                        finals.add(case["story_id"])
        if finals >= story_ids:
            return
        await asyncio.sleep(1)
    raise AssertionError(f"{len(story_ids - finals)} stories never reached final approval")


async def until_counts(read: Any, expected: Any, what: str, timeout: float = 120) -> Any:
    async def check() -> Any:
        found = await read()
        return found if found == expected else None

    try:
        return await eventually(check, what=what, timeout=timeout, interval=1)
    except AssertionError:
        raise AssertionError(f"{what}: expected {expected}, found {await read()}") from None


async def test_kills_and_restarts_lose_nothing_and_count_nothing_twice(
    durable_stack: Stack, tmp_path: Path
) -> None:
    config = durable_stack.config
    prefix = f"faults{free_port()}"
    env = {**config.env(), "CITYDESK_MONGO_DATABASE_PREFIX": prefix}
    city = start_city(tmp_path / "city", env)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(config.mongo_uri, tz_aware=True)
    load = Load(
        Settings(kafka_bootstrap=config.kafka_bootstrap, bus_keys_dir=env["CITYDESK_BUS_KEYS_DIR"]),
        run=prefix,
    )
    try:
        faults = [
            lambda: city.kill("submission"),
            lambda: city.kill("sentiment"),
            lambda: durable_stack.restart("kafka", sig=signal.SIGKILL),
            lambda: city.kill("scoring"),
            lambda: durable_stack.restart("mongo"),
            lambda: city.kill("review"),
            lambda: city.kill("media"),
        ]
        for wave, fault in enumerate(faults):
            await load.wave(wave)
            await asyncio.to_thread(fault)
            for name in ("submission", "media", "review", "scoring", "sentiment"):
                city.start(name)  # a killed service comes back, as Kubernetes would do
        await asyncio.to_thread(city.wait_ready, list(city.ports or {}), 120)

        submission = mongo[f"{prefix}_submission"]
        intake_keys = {f"{e.county}:{e.payload.external_id}" for e in load.stories}

        async def filed() -> int:
            return await submission.stories.count_documents(
                {"intake_key": {"$in": list(intake_keys)}}
            )

        await until_counts(filed, len(intake_keys), "each county story filed once")
        stories = await submission.stories.find(
            {"intake_key": {"$in": list(intake_keys)}}, {"_id": 1}
        ).to_list()
        story_ids = {str(s["_id"]) for s in stories}

        review = mongo[f"{prefix}_review"]

        async def decided() -> int:
            return await review.audit.count_documents(
                {"story_id": {"$in": list(story_ids)}, "decision": "approved"}
            )

        async with httpx.AsyncClient(timeout=30) as http:
            approving = asyncio.create_task(approve_everything(http, city, story_ids))
            await eventually(decided, timeout=120, what="the first approvals")
            await asyncio.to_thread(city.kill, "scoring")  # once more, mid-review
            city.start("scoring")
            await approving

        cases = Counter(
            c["story_id"]
            for c in await review.cases.find({"story_id": {"$in": list(story_ids)}}).to_list()
        )
        assert set(cases.values()) == {1}, "one review case per story version"
        audit = await review.audit.find({"story_id": {"$in": list(story_ids)}}).to_list()
        steps = Counter(
            (a["story_id"], a.get("level"), a.get("action") or a.get("decision")) for a in audit
        )
        assert max(steps.values()) == 1, [k for k, v in steps.items() if v > 1][:5]

        scoring = mongo[f"{prefix}_scoring"]
        wanted = Counter({"submitted": len(story_ids), "approved": len(story_ids),
                          "publication": len(story_ids)})  # fmt: skip

        async def ledger_kinds() -> Counter[str]:
            entries = await scoring.ledger.find({"story_id": {"$in": list(story_ids)}}).to_list()
            return Counter(e["kind"] for e in entries)

        await until_counts(ledger_kinds, wanted, "one entry of each kind per story")

        sentiment = mongo[f"{prefix}_sentiment"]
        per_school = Counter(e.payload.school for e in load.opinions)

        async def incidents() -> dict[str, int]:
            found = await sentiment.incidents.find(
                {"school": {"$in": list(INCIDENT_SCHOOLS)}}
            ).to_list()
            return {i["school"]: i["item_count"] for i in found}

        await until_counts(incidents, dict(per_school), "one incident per school, every item once")

        # each poison record is in its dead-letter topic exactly once per consuming service
        async def poison_copies(topic_name: str, service: str) -> Counter[bytes]:
            records = await whole_topic(config.kafka_bootstrap, f"{topic_name}.dlq")
            ours = [r.value for r in records if header(r, "dlq-service") == service]
            return Counter(value for value in ours if value in load.poisons[topic_name])

        for topic_name, service in (
            ("intake.stories", "submission"),
            ("intake.opinions", "sentiment"),
        ):
            await until_counts(
                functools.partial(poison_copies, topic_name, service),
                Counter(dict.fromkeys(load.poisons[topic_name], 1)),
                f"{service}'s poison records dead-lettered once each",
            )
        alerts = Counter(
            a["school"]
            for a in await sentiment.alerts.find(
                {"school": {"$in": list(INCIDENT_SCHOOLS)}}
            ).to_list()
        )
        assert alerts == Counter(dict.fromkeys(INCIDENT_SCHOOLS, 1))

        # a replay of every topic into a fresh database ranks exactly like the live one
        from services.scoring import rankings
        from services.scoring.periods import parse_period
        from services.scoring.rebuild import rebuild

        settings = Settings(
            service_name="scoring", kafka_bootstrap=config.kafka_bootstrap,
            mongo_uri=config.mongo_uri, mongo_database_prefix=prefix,
            bus_keys_dir=env["CITYDESK_BUS_KEYS_DIR"],
        )  # fmt: skip
        await rebuild(settings, f"{prefix}_scoring_replay")
        replay = mongo[f"{prefix}_scoring_replay"]
        period = parse_period(flows.this_month())
        for scope in ("schools", "counties"):
            live = await rankings.ranking(db=scoring, org=ORG, period=period, scope=scope)
            again = await rankings.ranking(db=replay, org=ORG, period=period, scope=scope)
            assert json.dumps(again["rows"], default=str) == json.dumps(live["rows"], default=str)
    finally:
        city.stop_all()
        await mongo.close()
        durable_stack.up()  # whatever a failed fault left stopped
