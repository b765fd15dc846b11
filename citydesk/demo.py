"""The demo city: the local stack, all five services as processes, and a month of
publicity work driven through the same APIs and topics that people and county systems
use. It ends with the month's ranking, the open alerts and the addresses to look at."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citydesk.demo_content import INCIDENT_POSTS, OPINION_NOISE, compose_story, draw_photo
from citydesk.processes import SERVICES, ServiceProcesses
from citydesk.producer import SignedProducer
from citydesk.stack import Stack, StackConfig
from shared import events as ev
from shared import topics as tp
from shared.auth import Role, mint_token
from shared.orgtree import OrgTree, Unit, load_org
from shared.settings import Settings, load_settings

SHANGHAI = ZoneInfo("Asia/Shanghai")
ROLE_TITLES = {
    Role.CORRESPONDENT: "通讯员",
    Role.REVIEWER_SCHOOL: "审核员",
    Role.REVIEWER_COUNTY: "审核员",
    Role.REVIEWER_CITY: "审核员",
    Role.LEADER: "分管领导",
    Role.OPINION_OFFICER: "舆情管理员",
    Role.ADMIN: "系统管理员",
}
INTAKE_COUNTY = "nl"  # 南岭县 sends its stories through its own portal, over Kafka
INCIDENT_SCHOOL = "qh-syxx"  # where the canteen incident happens
# demo deadlines, so that an escalation happens while you watch
ESCALATION_SECONDS = 20
RETURN_NOTE = "请补充活动的时间、地点和参与人数，并附现场照片说明。"
REJECT_NOTE = "内容与本单位前期报道重复，不予采用。"
OUTLETS = [
    ("中国教育报", "national"), ("人民日报", "national"), ("省教育厅网站", "provincial"),
    ("省日报", "provincial"), ("江城日报", "city"), ("江城电视台", "city"),
    ("县融媒体中心", "county"),
]  # fmt: skip


@dataclass
class Users:
    """Demo users: one token per role and unit, minted with the local signing key."""

    settings: Settings
    org: OrgTree
    cache: dict[tuple[str, str], str] = field(default_factory=dict)

    def token(self, unit: str, role: Role) -> str:
        key = (unit, role.value)
        if key not in self.cache:
            self.cache[key] = mint_token(
                self.settings,
                sub=f"{role.value}@{unit}",
                # people read this name on every page: the unit and the role, in Chinese
                name=f"{self.org.unit(unit).name}{ROLE_TITLES[role]}",
                unit=unit,
                roles=[role],
            )
        return self.cache[key]

    def headers(self, unit: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(unit, role)}"}

    def showcase(self) -> dict[str, dict[str, str]]:
        """One token per role for people to try the console and the APIs with."""
        city = self.org.city.code
        picks = {
            "correspondent (东湖区实验小学)": ("dh-syxx", Role.CORRESPONDENT),
            "school reviewer (东湖区实验小学)": ("dh-syxx", Role.REVIEWER_SCHOOL),
            "county reviewer (东湖区)": ("dh", Role.REVIEWER_COUNTY),
            "city reviewer": (city, Role.REVIEWER_CITY),
            "leader in charge": (city, Role.LEADER),
            "county opinion officer (清河县)": ("qh", Role.OPINION_OFFICER),
            "city opinion officer": (city, Role.OPINION_OFFICER),
            "administrator": (city, Role.ADMIN),
        }
        return {
            label: {"unit": unit, "role": role.value, "token": self.token(unit, role)}
            for label, (unit, role) in picks.items()
        }


@dataclass
class Tally:
    submitted: int = 0
    intake: int = 0
    photos: int = 0
    approved: int = 0
    returned: int = 0
    rejected: int = 0
    adopted: int = 0
    opinions: int = 0
    planted_copies: int = 0
    flagged_copies: int = 0
    stories_checked: int = 0
    errors: list[str] = field(default_factory=list)


class DemoCity:
    """Drives a month of work against running services."""

    def __init__(
        self,
        urls: dict[str, str],
        settings: Settings,
        *,
        seed: int = 2026,
        schools_per_county: int | None = None,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.urls = urls
        self.settings = settings
        self.org = load_org(settings.org_file)
        self.users = Users(settings, self.org)
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.run_id = uuid.uuid4().hex[:6]
        self.started = datetime.now(SHANGHAI)
        self.schools_per_county = schools_per_county
        self.report_progress = progress or (lambda _task, _done, _total: None)
        self.story_ids: list[str] = []
        # what each school wrote itself, from which the deliberate copies are taken
        self.written: list[tuple[Unit, tuple[str, str, str]]] = []
        self.limit = asyncio.Semaphore(6)
        self.http = httpx.AsyncClient(timeout=60)

    async def close(self) -> None:
        await self.http.aclose()

    # ---- helpers -----------------------------------------------------------------------
    async def call(
        self, method: str, service: str, path: str, *, unit: str, role: Role, **kwargs: Any
    ) -> httpx.Response:
        async with self.limit:
            response = await self.http.request(
                method,
                f"{self.urls[service]}{path}",
                headers=self.users.headers(unit, role),
                **kwargs,
            )
        if response.status_code >= 500:
            self.tally.errors.append(f"{method} {service}{path}: {response.status_code}")
        return response

    def today(self) -> date:
        return datetime.now(SHANGHAI).date()

    def schools(self) -> list[Unit]:
        chosen = []
        for county in self.org.counties():
            schools = sorted(self.org.schools(county.code), key=lambda u: u.code)
            chosen += schools[: self.schools_per_county] if self.schools_per_county else schools
        chosen += [u for u in self.org.schools() if u.type == "direct"][
            : self.schools_per_county or None
        ]
        return chosen

    def story_text(self, school: Unit, event_day: date) -> tuple[str, str, str]:
        county = self.org.get(school.county) if school.county else None
        return compose_story(
            self.rng, school=school.name, county=county.name if county else "全市",
            date=f"{event_day.month}月{event_day.day}日",
        )  # fmt: skip

    # ---- 1. correspondents submit through the APIs ----------------------------------
    async def submit_as_correspondent(
        self, school: Unit, index: int, copied: tuple[str, str, str] | None = None
    ) -> None:
        """Write (or, with ``copied``, repost another school's story as one's own), attach
        photos and submit."""
        today = self.today()
        late = self.rng.random() < 0.12
        event_day = today - timedelta(
            days=self.rng.randint(9, 20) if late else self.rng.randint(0, 5)
        )
        category, title, body = copied or self.story_text(school, event_day)
        if copied is None:
            self.written.append((school, (category, title, body)))
        media_ids = []
        for photo in range(self.rng.choice((1, 1, 2))):
            upload = await self.call(
                "POST", "media", "/media", unit=school.code, role=Role.CORRESPONDENT,
                data={"unit": school.code},
                files={"file": (f"photo-{index}-{photo}.jpg",
                                draw_photo(hash((self.run_id, school.code, index, photo))),
                                "image/jpeg")},
            )  # fmt: skip
            if upload.status_code in (200, 201):
                media_ids.append(upload.json()["id"])
                self.tally.photos += 1
        story = {
            "unit": school.code, "title": title, "body": body, "category": category,
            "event_date": event_day.isoformat(), "media_ids": media_ids,
            "major": self.rng.random() < 0.06,
        }  # fmt: skip
        for _ in range(40):
            draft = await self.call(
                "POST", "submission", "/stories", unit=school.code, role=Role.CORRESPONDENT,
                json=story,
            )  # fmt: skip
            # the submission service learns of new media from media.stored, a moment later
            if draft.status_code != 422 or "not yet known" not in draft.text:
                break
            await asyncio.sleep(0.25)
        if draft.status_code != 201:
            self.tally.errors.append(f"draft {school.code}: {draft.status_code} {draft.text[:200]}")
            return
        story_id = draft.json()["id"]
        submitted = await self.call(
            "POST", "submission", f"/stories/{story_id}/submit",
            unit=school.code, role=Role.CORRESPONDENT,
        )  # fmt: skip
        if submitted.status_code == 200:
            self.tally.submitted += 1
            self.story_ids.append(story_id)

    async def correspondents_submit(self) -> None:
        schools = self.schools()
        silent = set(self.rng.sample([s.code for s in schools], k=max(1, len(schools) // 12)))
        jobs = []
        for school in schools:
            if school.code in silent or school.county == INTAKE_COUNTY:
                continue
            for index in range(self.rng.choice((1, 1, 2, 2, 3))):
                jobs.append((school, index))
        done = 0
        for batch_start in range(0, len(jobs), 6):
            batch = jobs[batch_start : batch_start + 6]
            await asyncio.gather(*(self.submit_as_correspondent(s, i) for s, i in batch))
            done += len(batch)
            self.report_progress("correspondents submit stories with photos", done, len(jobs))
        await self.plant_copies()

    async def plant_copies(self, count: int = 5) -> None:
        """The deliberate copies: a school in another county reposts a story as its own,
        only the school's name changed. These, and only these, should be flagged."""
        schools = self.schools()
        originals = self.rng.sample(self.written, k=min(count, len(self.written)))
        for index, (source, (category, title, body)) in enumerate(originals):
            others = [s for s in schools if s.county not in (source.county, INTAKE_COUNTY)]
            copier = self.rng.choice(others)
            text = (category, title.replace(source.name, copier.name),
                    body.replace(source.name, copier.name, 1))  # fmt: skip
            before = self.tally.submitted
            await self.submit_as_correspondent(copier, 100 + index, copied=text)
            self.tally.planted_copies += self.tally.submitted - before

    async def count_copy_flags(self) -> None:
        """How many of the city's submitted stories the copy detector flagged."""
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            found = await self.call(
                "GET", "submission", "/stories", unit=self.org.city.code,
                role=Role.REVIEWER_CITY, params=params,
            )  # fmt: skip
            if found.status_code != 200:
                self.tally.errors.append(f"stories: {found.status_code}")
                return
            items = found.json()["items"]
            for item in items:
                if item.get("version", 0) < 1:
                    continue
                self.tally.stories_checked += 1
                if (item.get("flags") or {}).get("possible_copy"):
                    self.tally.flagged_copies += 1
            cursor = found.json()["next_cursor"]
            if cursor is None:
                return

    # ---- 2. a county system publishes through intake ----------------------------------
    async def county_system_publishes(self) -> None:
        producer = SignedProducer(self.settings)
        await producer.start()
        schools = self.org.schools(INTAKE_COUNTY)
        try:
            for index, school in enumerate(schools):
                event_day = self.today() - timedelta(days=self.rng.randint(0, 4))
                category, title, body = self.story_text(school, event_day)
                event = ev.IntakeStoryEvent.build(
                    ev.IntakeStory(
                        external_id=f"nl-portal-{self.run_id}-{index}", unit=school.code,
                        title=title, body=body, category=category, event_date=event_day,
                        author=f"{INTAKE_COUNTY}-portal",
                    ),
                    producer=f"{INTAKE_COUNTY}-portal", county=INTAKE_COUNTY, unit=school.code,
                )  # fmt: skip
                await producer.publish(tp.INTAKE_STORIES, event)
                self.tally.intake += 1
                self.report_progress("南岭县 portal publishes over Kafka", index + 1, len(schools))
        finally:
            await producer.stop()

    # ---- 3. three-level review ----------------------------------------------------------
    def reviewers(self) -> list[tuple[str, Role]]:
        city = self.org.city.code
        people = [(s.code, Role.REVIEWER_SCHOOL) for s in self.org.schools()]
        people += [(c.code, Role.REVIEWER_COUNTY) for c in self.org.counties()]
        people += [(city, Role.REVIEWER_CITY), (city, Role.LEADER)]
        return people

    async def decide_queue(self, unit: str, role: Role) -> int:
        queue = await self.call("GET", "review", "/queue", unit=unit, role=role)
        if queue.status_code != 200:
            return 0
        decided = 0
        for case in queue.json()["items"]:
            screening = case.get("screening") or {}
            if screening.get("holds_final_approval") and role == Role.REVIEWER_CITY:
                await self.call(
                    "POST", "review", f"/cases/{case['case_id']}/override", unit=unit, role=role,
                    json={"reason": "经核实，稿件内容属正面宣传，不涉及负面舆情。"},
                )  # fmt: skip
            roll = self.rng.random()
            if role == Role.LEADER or roll < 0.86 or case["version"] > 1:
                body: dict[str, Any] = {"version": case["version"], "decision": "approve"}
            elif roll < 0.96:
                body = {"version": case["version"], "decision": "return", "comment": RETURN_NOTE}
            else:
                body = {"version": case["version"], "decision": "reject", "reason": REJECT_NOTE}
            result = await self.call(
                "POST", "review", f"/cases/{case['case_id']}/decisions", unit=unit, role=role,
                json=body,
            )  # fmt: skip
            if result.status_code != 200:
                continue
            decided += 1
            kind = body["decision"]
            if kind == "return":
                self.tally.returned += 1
                await self.revise(case)
            elif kind == "reject":
                self.tally.rejected += 1
            elif result.json().get("final"):
                self.tally.approved += 1
        return decided

    async def revise(self, case: dict[str, Any]) -> None:
        """The correspondent adds what the reviewer asked for and submits version 2."""
        unit = case["unit_path"]["unit"]
        body = case["body"] + "本次活动共有师生三百余人参加，现场照片见附件。"
        revised = await self.call(
            "PATCH", "submission", f"/stories/{case['story_id']}", unit=unit,
            role=Role.CORRESPONDENT, json={"body": body},
        )  # fmt: skip
        if revised.status_code == 200:
            await self.call(
                "POST", "submission", f"/stories/{case['story_id']}/submit", unit=unit,
                role=Role.CORRESPONDENT,
            )  # fmt: skip

    async def review_rounds(self, expected: int, rounds: int = 12) -> None:
        settled = 0
        for round_number in range(rounds):
            await asyncio.sleep(2.0)  # cases open from story.submitted asynchronously
            decided = 0
            for unit, role in self.reviewers():
                decided += await self.decide_queue(unit, role)
            settled += decided
            self.report_progress(
                "reviewers decide at school, county and city level",
                min(settled, expected), expected,
            )  # fmt: skip
            if decided == 0 and round_number > 2:
                break

    # ---- 4. publication and outside adoption -----------------------------------------
    async def city_office_records_adoptions(self) -> None:
        feed = await self.http.get(f"{self.urls['review']}/feed", params={"limit": 200})
        entries = feed.json() if feed.status_code == 200 else []
        items = entries.get("items", entries) if isinstance(entries, dict) else entries
        chosen = [e for e in items if self.rng.random() < 0.4]
        city = self.org.city.code
        for index, entry in enumerate(chosen):
            outlet, level = self.rng.choice(OUTLETS)
            story_id = entry.get("story_id") or entry.get("id")
            response = await self.call(
                "POST", "review", f"/stories/{story_id}/adoptions", unit=city,
                role=Role.REVIEWER_CITY,
                json={
                    "outlet": outlet, "level": level,
                    "placement": self.rng.choice(["normal", "normal", "in_depth", "headline"]),
                    "date": self.today().isoformat(),
                    "link": f"https://news.example.cn/{story_id}",
                    "leader_instruction": self.rng.random() < 0.05,
                },
            )  # fmt: skip
            if response.status_code == 201:
                self.tally.adopted += 1
            self.report_progress(
                "the city office records outside adoptions", index + 1, len(chosen)
            )

    # ---- 5. public opinion: noise, then an incident that grows and escalates -----------
    async def opinion_feed(self) -> None:
        city = self.org.city.code
        config = await self.call("GET", "sentiment", "/config", unit=city, role=Role.ADMIN)
        if config.status_code == 200:
            rules = config.json()
            rules["alerts"]["deadline_seconds"] = dict.fromkeys(
                rules["alerts"]["deadline_seconds"], ESCALATION_SECONDS
            )
            await self.call("PUT", "sentiment", "/config", unit=city, role=Role.ADMIN, json=rules)
        producer = SignedProducer(self.settings)
        await producer.start()
        school = self.org.unit(INCIDENT_SCHOOL)
        items: list[tuple[str, str | None, str, str]] = []
        for _ in range(24):
            bureau = self.rng.choice(self.org.counties())
            items.append((bureau.code, None, "百姓呼声", self.rng.choice(OPINION_NOISE)))
        for index in range(16):
            source = (
                "hot_search" if index == 12 else self.rng.choice(["微博", "百姓呼声", "投诉直通车"])
            )
            text = INCIDENT_POSTS[index % len(INCIDENT_POSTS)].format(school=school.name)
            items.append((school.county or "", school.code, source, text))
        try:
            for index, (county, unit, source, text) in enumerate(items):
                event = ev.IntakeOpinionEvent.build(
                    ev.IntakeOpinion(
                        item_id=f"{self.run_id}-{index}", source=source, school=unit, text=text,
                        published_at=ev.utcnow(),
                    ),
                    producer=f"{county}-monitor", county=county, unit=unit,
                )  # fmt: skip
                await producer.publish(tp.INTAKE_OPINIONS, event)
                self.tally.opinions += 1
                self.report_progress(
                    "county feeds: opinion items, and an incident", index + 1, len(items)
                )
                await asyncio.sleep(0.05)
        finally:
            await producer.stop()

    async def wait_for_escalation(self, timeout: float = 90.0) -> None:
        city = self.org.city.code
        deadline = asyncio.get_running_loop().time() + timeout
        waited = 0
        while asyncio.get_running_loop().time() < deadline:
            alerts = await self.call(
                "GET", "sentiment", "/alerts", unit=city, role=Role.OPINION_OFFICER
            )
            if alerts.status_code == 200 and any(
                a["school"] == INCIDENT_SCHOOL
                and a["owner_level"] != "school"
                and datetime.fromisoformat(a["created_at"]) >= self.started
                for a in alerts.json()
            ):
                self.report_progress("nobody acknowledges: the alert escalates", 1, 1)
                return
            waited += 1
            self.report_progress("nobody acknowledges: the alert escalates", 0, 1)
            await asyncio.sleep(2)

    # ---- 6. what the bureau sees ---------------------------------------------------------
    async def wait_for_scoring(self, timeout: float = 60.0) -> None:
        """Until the ledger stops moving (the scoring consumers have caught up)."""
        city = self.org.city.code
        period = f"month:{self.today():%Y-%m}"
        last: Any = None
        stable = 0
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline and stable < 3:
            ranking = await self.call(
                "GET", "scoring", "/rankings", unit=city, role=Role.ADMIN,
                params={"period": period, "scope": "counties"},
            )  # fmt: skip
            current = ranking.text
            stable = stable + 1 if current == last else 0
            last = current
            self.report_progress("scoring catches up", stable, 3)
            await asyncio.sleep(1.5)

    async def ranking(self, scope: str) -> dict[str, Any]:
        response = await self.call(
            "GET", "scoring", "/rankings", unit=self.org.city.code, role=Role.ADMIN,
            params={"period": f"month:{self.today():%Y-%m}", "scope": scope},
        )  # fmt: skip
        return response.json() if response.status_code == 200 else {"rows": []}

    async def open_alerts(self) -> list[dict[str, Any]]:
        response = await self.call(
            "GET", "sentiment", "/alerts", unit=self.org.city.code, role=Role.OPINION_OFFICER
        )
        return response.json() if response.status_code == 200 else []

    async def month_of_work(self) -> None:
        await self.correspondents_submit()
        await self.county_system_publishes()
        await self.review_rounds(expected=int((self.tally.submitted + self.tally.intake) * 3.2))
        await self.city_office_records_adoptions()
        await self.opinion_feed()
        await self.wait_for_escalation()
        await self.wait_for_scoring()
        await self.count_copy_flags()


def print_report(
    console: Console, city: DemoCity, counties: dict[str, Any], schools: dict[str, Any],
    alerts: list[dict[str, Any]], urls: dict[str, str], tokens: Path,
) -> None:  # fmt: skip
    tally = city.tally
    console.rule("[bold]江城市教育宣传 · 本月工作[/bold]")
    console.print(
        f"stories submitted through the API: {tally.submitted} (with {tally.photos} photos); "
        f"through 南岭县's portal: {tally.intake}; final approvals {tally.approved}, "
        f"returned {tally.returned}, rejected {tally.rejected}; outside adoptions {tally.adopted}; "
        f"opinion items {tally.opinions}"
    )
    share = tally.flagged_copies / tally.stories_checked if tally.stories_checked else 0.0
    console.print(
        f"flagged as possible copies: {tally.flagged_copies} of {tally.stories_checked} "
        f"stories ({share:.1%}); the demo planted {tally.planted_copies} deliberate copies"
    )
    table = Table(title="County ranking (排行榜) this month")
    for column in ("#", "county", "points", "submitted", "adopted", "adoption rate", "flags"):
        table.add_column(column)
    for row in counties.get("rows", []):
        table.add_row(*_ranking_cells(row))
    console.print(table)
    table = Table(title="Top ten schools city-wide")
    for column in ("#", "school", "points", "submitted", "adopted", "adoption rate", "flags"):
        table.add_column(column)
    for row in schools.get("rows", [])[:10]:
        table.add_row(*_ranking_cells(row))
    console.print(table)
    table = Table(title="Opinion alerts")
    for column in ("severity", "school", "owner", "state", "items", "topic"):
        table.add_column(column)
    for alert in alerts:
        if alert.get("state") != "closed":
            table.add_row(
                alert["severity"], str(alert.get("school") or alert.get("county")),
                f"{alert['owner_level']} ({alert['owner_unit']})", alert["state"],
                str(alert["item_count"]), alert["topic"],
            )  # fmt: skip
    console.print(table)
    if tally.errors:
        console.print(
            f"[yellow]{len(tally.errors)} calls failed; first: {tally.errors[:3]}[/yellow]"
        )
    console.rule("Where to look")
    for name, url in urls.items():
        if name != "console":
            console.print(f"{name:10} {url}/docs   {url}/metrics   {url}/asyncapi.json")
    console.print(f"public feed  {urls['review']}/feed   {urls['review']}/feed.rss")
    console.print("AsyncAPI of the whole bus: docs/contracts/asyncapi.json")
    if "console" in urls:
        console.print(f"console      {urls['console']}/  (sign in with a token below)")
    console.print(f"tokens per role: {tokens}")
    console.print("stop everything: make stop")


def _ranking_cells(row: dict[str, Any]) -> list[str]:
    flags = []
    if not row.get("eligible", True):
        flags.append("zero submissions" if row.get("zero_submissions") else "not eligible")
    if row.get("veto"):
        flags.append("veto")
    rate = row.get("adoption_rate")
    return [
        str(row.get("rank", "")),
        str(row.get("name") or row.get("unit")),
        f"{row.get('points', 0):g}",
        str(row.get("submitted", "")),
        str(row.get("adopted", "")),
        f"{rate:.0%}" if isinstance(rate, int | float) else "-",
        ", ".join(flags),
    ]


def run_demo(root: Path = Path(".stack"), *, with_console: bool = True) -> None:
    console = Console()
    config = StackConfig.load(root)
    stack = Stack(config)
    console.print("[bold]Starting the local stack[/bold] (Kafka protocol, MongoDB wire, S3)…")
    stack.up()
    names = SERVICES + (("console",) if with_console and _has_console() else ())
    processes = ServiceProcesses(root, env={**config.env(), "CITYDESK_ENVIRONMENT": "local"})
    console.print(f"[bold]Starting the services[/bold]: {', '.join(names)}…")
    if "console" in names:
        assert processes.ports is not None
        processes.ports.setdefault("console", 8100)
    processes.start_all(names)
    urls = {name: processes.url(name) for name in names}
    # the demo's own producers (the county portal) sign with the stack's local bus keys
    settings = load_settings("demo").model_copy(
        update={
            "kafka_bootstrap": config.kafka_bootstrap,
            "bus_keys_dir": str(config.bus_keys_dir.resolve()),
        }
    )

    async def simulate() -> tuple[DemoCity, dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        columns = (
            TextColumn("{task.description:<52}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            tasks: dict[str, Any] = {}

            def report(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = progress.add_task(name, total=max(total, 1))
                progress.update(tasks[name], completed=done, total=max(total, 1))

            city = DemoCity(urls, settings, progress=report)
            try:
                await city.month_of_work()
                return (
                    city,
                    await city.ranking("counties"),
                    await city.ranking("schools"),
                    (await city.open_alerts()),
                )
            finally:
                await city.close()

    city, counties, schools, alerts = asyncio.run(simulate())
    tokens = root / "tokens.json"
    tokens.write_text(json.dumps(city.users.showcase(), ensure_ascii=False, indent=2))
    print_report(console, city, counties, schools, alerts, urls, tokens)


def _has_console() -> bool:
    return (Path(__file__).parent.parent / "services" / "console" / "app.py").exists()


def stop_demo(root: Path = Path(".stack")) -> None:
    processes = ServiceProcesses(root, env={})
    assert processes.ports is not None
    processes.ports.setdefault("console", 8100)
    processes.stop_all()
    Stack(StackConfig.load(root)).down()
