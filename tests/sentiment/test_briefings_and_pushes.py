"""Briefings and push alerts over the real local stack: a weekly briefing counted from
the items and incidents the service stored, as JSON, as a workbook openpyxl opens with
its trend and as a PDF whose Chinese text pypdf reads back; e-mail to a real SMTP server
(aiosmtpd) that respects quiet hours with the clock injected; a 企业微信-format push to
a local receiver; a failing 钉钉 robot that delays nothing else; several workers sending
each push once."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from openpyxl import load_workbook
from pypdf import PdfReader

from citydesk.stack import free_port
from services.sentiment import notifications
from services.sentiment.periods import Period
from services.sentiment.runtime import Sentiment
from shared import events as ev
from shared.auth import Role
from shared.clock import BUREAU_ZONE, utcnow
from tests.sentiment.support import opinion, run_sentiment, send
from tests.support import (
    LocalEndpoint,
    QuietHandler,
    RunningService,
    auth,
    eventually,
    run_service,
)

pytestmark = pytest.mark.usefixtures("stack_env")

OFFICER = Role.OPINION_OFFICER
ADMIN = auth("jc", Role.ADMIN)


class Mailbox:
    """aiosmtpd's handler: every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []
        self.port = free_port()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(make_header(decode_header(m["Subject"]))) for _, m in self.messages]


class Robot(LocalEndpoint):
    """A group-robot endpoint: records the JSON bodies; answers errcode 0, or HTTP 500
    when ``broken``."""

    def __init__(self, *, broken: bool = False) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        robot = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                robot.bodies.append((self.path, json.loads(body)))
                self.send_response(500 if broken else 200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errcode": 0, "errmsg": "ok"}')

        self.serve(Handler)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
def robots() -> Iterator[tuple[Robot, Robot]]:
    with Robot() as wecom, Robot(broken=True) as dingtalk:
        yield wecom, dingtalk


@pytest_asyncio.fixture(scope="module")
async def service(mailbox: Mailbox) -> AsyncIterator[RunningService]:
    async with run_sentiment(
        "brief",
        sentiment_webhook_max_attempts=3,
        sentiment_smtp_host="127.0.0.1",
        sentiment_smtp_port=mailbox.port,
        sentiment_console_url="https://desk.example.cn",
    ) as running:
        yield running


def at_local(day: Any, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BUREAU_ZONE)


async def items_of(service: RunningService, unit: str, since: datetime) -> list[dict[str, Any]]:
    response = await service.client.get(
        "/items",
        params={"unit": unit, "merge": "false", "since": since.isoformat(), "limit": 200},
        headers=auth("jc", OFFICER),
    )
    assert response.status_code == 200, response.text
    return response.json()


def published(county: str, school: str | None, text: str, at: datetime) -> ev.IntakeOpinionEvent:
    item = ev.IntakeOpinion(
        item_id=uuid.uuid4().hex, source="parent_forum", school=school, text=text, published_at=at
    )
    return ev.IntakeOpinionEvent.build(item, producer=f"county-{county}", county=county)


async def test_a_weekly_briefing_counts_the_week_its_incidents_and_their_handling(
    service: RunningService,
) -> None:
    county, school = "bc", "bc-dyxx"
    sentiment: Sentiment = service.app.state.sentiment
    this_week = Period.holding("weekly", utcnow())
    last_week = this_week.previous()
    monday = last_week.first_day
    # the week before: one complaint, stored before the rest so it opens its own incident
    earlier = published(county, school, "北川县第一小学食堂的饭菜又凉又少，孩子天天吃不饱。",
                        at_local(monday - timedelta(days=3), 12))  # fmt: skip
    await send("intake.opinions", earlier)
    await eventually(lambda: items_of(service, county, last_week.previous().start), what="earlier")
    week = [
        published(county, school, "北川县第一小学食堂饭菜发霉，孩子吃完肚子疼，学校管不管？",
                  at_local(monday, 9)),
        published(county, school, "北川一小的午饭米饭夹生，孩子吃了两口就倒了，下午饿得上不了课。",
                  at_local(monday, 15)),
        published(county, school, "北川县第一小学食堂的菜有怪味，好几个同学吃完都拉肚子了。",
                  at_local(monday + timedelta(days=1), 10)),
        published(county, "bc-dezx", "北川县第二小学举行秋季运动会，同学们奋力拼搏，赛出风格。",
                  at_local(monday + timedelta(days=1), 11)),
        published(county, None, "北川县教育局发布今年义务教育招生政策，坚持免试就近入学。",
                  at_local(monday + timedelta(days=2), 16)),
    ]  # fmt: skip
    await send("intake.opinions", *week)

    async def all_stored() -> list[dict[str, Any]] | None:
        found = await items_of(service, county, last_week.previous().start)
        return found if len(found) == 6 else None

    stored = await eventually(all_stored, what="six items")
    in_week = [i for i in stored if datetime.fromisoformat(i["published_at"]) >= last_week.start]
    negative = sum(i["negative"] for i in in_week)
    assert len(in_week) == 5 and negative >= 2

    officer = auth(county, OFFICER)

    # intake stores a batch's items before it folds them into incidents: wait for both
    async def briefing_with_its_incident() -> dict[str, Any] | None:
        response = await service.client.get(f"/briefings/weekly/{last_week.code}", headers=officer)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found if found["new_incidents"] else None

    brief = await eventually(briefing_with_its_incident, what="the week's incident")
    assert brief["scope"] == county and brief["title"] == "北川县教育舆情周报"
    assert brief["ended"] is True and brief["note"] is None
    assert brief["period_label"].startswith(f"{monday.year}年第")
    assert brief["totals"]["total"] == 5 and brief["totals"]["negative"] == negative
    assert brief["totals"]["previous_total"] == 1
    assert (
        len(brief["trend"]) == 7 and brief["trend"][0]["label"] == f"{monday.month}月{monday.day}日"
    )
    assert sum(step["total"] for step in brief["trend"]) == 5
    assert brief["trend"][0]["total"] == 2  # Monday, counted in Shanghai time
    assert "食品安全" in {row["label"] for row in brief["topics"]}
    school_name = sentiment.unit_name(school)
    assert [line["unit"] for line in brief["new_incidents"]] == [school_name]
    assert brief["new_incidents"][0]["state"] == "待签收"
    assert brief["top_items"] and brief["top_items"][0]["unit"] == school_name
    assert brief["top_items"][0]["source"] == "家长论坛"
    assert brief["start"].endswith("+08:00")

    # the alert handled this week: the running week's briefing lists it closed, says so
    alert_id = brief["new_incidents"][0]["incident_id"].replace("inc-", "al-")
    handler = auth(school, OFFICER, sub="officer-bc1")
    for action, comment in (("acknowledge", ""), ("close", "已约谈食堂承包方，更换供应商")):
        done = await service.client.post(
            f"/alerts/{alert_id}/{action}", json={"comment": comment}, headers=handler
        )
        assert done.status_code == 200, done.text
    running = (
        await service.client.get(f"/briefings/weekly/{this_week.code}", headers=officer)
    ).json()
    assert running["ended"] is False and running["note"].endswith("本期尚未结束")
    assert running["note"].startswith("截至")
    closed = running["closed_incidents"]
    assert [line["unit"] for line in closed] == [school_name]
    assert any("办结" in step and "更换供应商" in step for step in closed[0]["handling"])
    assert any("签收" in step for step in closed[0]["handling"])

    # the workbook opens with openpyxl: the summary with the chart, the trend by day
    workbook = await service.client.get(f"/briefings/weekly/{last_week.code}.xlsx", headers=officer)
    assert workbook.status_code == 200
    book = load_workbook(io.BytesIO(workbook.content))
    assert book.sheetnames == ["概况", "走势", "话题分布", "舆情事件", "重点信息"]
    assert len(book["概况"]._images) == 1  # the trend chart
    rows = list(book["走势"].iter_rows(min_row=2, values_only=True))
    assert len(rows) == 7 and sum(row[1] for row in rows) == 5
    incidents = [row[0] for row in book["舆情事件"].iter_rows(values_only=True)]
    assert school_name in incidents
    chart = await service.client.get(
        f"/briefings/weekly/{last_week.code}/trend.png", headers=officer
    )
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")

    # the PDF opens with pypdf; its text (the embedded font's ToUnicode map) names the
    # scope, the school and the topic in Chinese, and the running week says it is running
    ended = await service.client.get(f"/briefings/weekly/{last_week.code}.pdf", headers=officer)
    assert ended.status_code == 200 and ended.headers["content-type"] == "application/pdf"
    disposition = ended.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"{last_week.code}.pdf" in disposition
    assert quote("北川县教育舆情周报") in disposition
    text, pages = pdf_text(ended.content)
    for expected in ("北川县教育舆情周报", "北川县教育局", school_name, "食品安全"):
        assert expected in text, expected
    assert all(f"第{n}页，共{pages}页" in text for n in range(1, pages + 1))
    assert "尚未结束" not in text
    running_pdf = await service.client.get(
        f"/briefings/weekly/{this_week.code}.pdf", headers=officer
    )
    assert running_pdf.status_code == 200
    text, _ = pdf_text(running_pdf.content)
    assert "本期尚未结束" in text and "更换供应商" in text  # the closure's handling


def pdf_text(content: bytes) -> tuple[str, int]:
    """The text of every page, without the line breaks wrapping put anywhere in Chinese,
    and the number of pages."""
    reader = PdfReader(io.BytesIO(content))
    text = "".join(page.extract_text() for page in reader.pages)
    return "".join(text.split()), len(reader.pages)


async def test_briefing_scope_and_periods_are_refused_with_a_code(service: RunningService) -> None:
    week = Period.holding("weekly", utcnow()).code
    path = f"/briefings/weekly/{week}"
    refusals = []
    for suffix in ("", ".xlsx", ".pdf"):  # every format refuses alike
        other = await service.client.get(
            path + suffix, params={"unit": "bc"}, headers=auth("dh", OFFICER)
        )
        assert other.status_code == 403 and other.json()["code"] == "unit_out_of_scope", suffix
        refusals.append(other.json())
    assert refusals[0] == refusals[1] == refusals[2]
    school = await service.client.get(path, headers=auth("bc-dyxx", OFFICER))
    assert school.status_code == 422 and school.json()["code"] == "briefing_scope"
    city = await service.client.get(path, params={"unit": "bc"}, headers=auth("jc", OFFICER))
    assert city.status_code == 200 and city.json()["scope_name"] == "北川县教育局"
    for (kind, period, status, code), suffix in itertools.product((
        ("weekly", "2026-W60", 422, "invalid_period"),
        ("monthly", "2026-13", 422, "invalid_period"),
        ("daily", "2026-02-30", 422, "invalid_period"),
        ("yearly", "2026", 404, "unknown_briefing_kind"),
        ("monthly", f"{utcnow().year + 1}-01", 422, "period_not_started"),
    ), ("", ".pdf")):  # fmt: skip
        refused = await service.client.get(f"/briefings/{kind}/{period}{suffix}", headers=ADMIN)
        assert refused.status_code == status, (kind, period, suffix, refused.text)
        assert refused.json()["code"] == code and refused.json()["message"]
    correspondent = await service.client.get(path, headers=auth("bc", Role.CORRESPONDENT))
    assert correspondent.status_code == 403


async def deliveries(service: RunningService) -> list[dict[str, Any]]:
    response = await service.client.get("/push/deliveries", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


async def test_pushes_respect_quiet_hours_reach_email_and_wecom_and_go_once(
    service: RunningService, mailbox: Mailbox, robots: tuple[Robot, Robot]
) -> None:
    wecom, dingtalk = robots
    group = "西山区舆情值班组"
    recipients = {
        "recipients": [
            {
                "name": group,
                "unit": "xs",
                "min_severity": "blue",
                "quiet_hours": {"start": "22:00", "end": "07:00"},
                "channels": [
                    {"kind": "email", "to": "duty@xs.example.cn"},
                    {"kind": "wecom", "url": f"{wecom.url}/cgi-bin/webhook/send?key=xs-key"},
                    {"kind": "dingtalk", "url": f"{dingtalk.url}/robot/send?access_token=t",
                     "secret": "SECtest"},
                ],
            },
            {"name": "市局值班", "unit": "jc", "min_severity": "orange",
             "channels": [{"kind": "wecom", "url": f"{wecom.url}/city?key=city-key"}]},
        ]
    }  # fmt: skip
    stored = await service.client.put("/push/recipients", json=recipients, headers=ADMIN)
    assert stored.status_code == 200, stored.text
    assert "xs-key" not in stored.text and "SECtest" not in stored.text  # masked
    unsafe = json.loads(json.dumps(recipients))
    unsafe["recipients"][1]["channels"][0]["url"] = "http://169.254.169.254/latest"
    refused = await service.client.put("/push/recipients", json=unsafe, headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["code"] == "unsafe_target"

    # half past eleven at night in Shanghai (the next one, so the clock only moves on)
    sentiment: Sentiment = service.app.state.sentiment
    night = at_local(utcnow().astimezone(BUREAU_ZONE).date(), 23, 30)
    night += timedelta(days=1) if night < utcnow() else timedelta(0)
    offset = night - utcnow()
    sentiment.clock = lambda: utcnow() + offset
    try:
        leak = "西山区第二小学的厕所漏水好几个星期了，孩子们不敢上厕所"
        await send("intake.opinions", opinion("xs", "xs-dezx", leak))

        async def quiet_ones() -> list[dict[str, Any]] | None:
            found = [d for d in await deliveries(service) if d["recipient"] == group]
            return found if len(found) == 3 else None

        waiting = await eventually(quiet_ones, what="three pushes held for the morning")
        assert all(d["quiet"] and d["state"] == "pending" for d in waiting)
        assert all(d["attempts"] == 0 for d in waiting)
        # an orange alert at night goes at once, to the city's duty robot too
        death = "西山区第一中学一名学生从宿舍楼坠楼身亡，家长质疑学校管理失职"
        await send("intake.opinions", opinion("xs", "xs-dyzx", death))
        await eventually(lambda: any("橙色" in s for s in mailbox.subjects()), what="orange mail")
        await eventually(lambda: any(p.startswith("/city") for p, _ in wecom.bodies), what="city")
        assert not any("蓝色" in s for s in mailbox.subjects())  # the blue one still waits
        rcpts, mail = mailbox.messages[0]
        assert rcpts == ["duty@xs.example.cn"]
        assert "西山区第一中学" in mailbox.subjects()[0]
        text = mail.get_payload(decode=True).decode()
        assert "https://desk.example.cn/opinion/alerts/al-" in text
        assert "坠楼" not in text  # no item text leaves the desk
        # each channel is delivered on its own: the group's robot may come after the mail
        path, body = await eventually(
            lambda: next(((p, b) for p, b in wecom.bodies if p.startswith("/cgi-bin")), None),
            what="the group's 企业微信 push",
        )
        assert path.endswith("key=xs-key") and body["msgtype"] == "markdown"
        assert "橙色" in body["markdown"]["content"] and set(body) == {"msgtype", "markdown"}

        # the broken 钉钉 robot was tried (signed), retried, given up; nothing waited on it
        def given_up(found: list[dict[str, Any]]) -> bool:
            return any(d["channel"] == "dingtalk" and d["state"] == "failed" for d in found)

        async def failed_robot() -> list[dict[str, Any]] | None:
            found = await deliveries(service)
            return found if given_up(found) else None

        record = next(d for d in await eventually(failed_robot, what="robot") if given_up([d]))
        assert record["attempts"] == 3 and record["last_status"] == 500
        dpath, dbody = dingtalk.bodies[0]
        assert "timestamp=" in dpath and "sign=" in dpath
        assert dbody["msgtype"] == "markdown" and set(dbody["markdown"]) == {"title", "text"}

        # seven ten in the morning: the blue pushes go
        offset += timedelta(hours=7, minutes=40)
        await eventually(lambda: any("蓝色" in s for s in mailbox.subjects()), what="blue mail")
        # two more workers at once (replicas) find nothing left to send twice
        await asyncio.gather(
            notifications.deliver_due(runtime=sentiment),
            notifications.deliver_due(runtime=sentiment),
        )
    finally:
        sentiment.clock = utcnow
    subjects = mailbox.subjects()
    assert len(subjects) == len(set(subjects)) == 2
    contents = [b["markdown"]["content"] for p, b in wecom.bodies if p.startswith("/cgi-bin")]
    assert len(contents) == len(set(contents)) == 2
    delivered = [d for d in await deliveries(service) if d["state"] == "delivered"]
    assert {d["channel"] for d in delivered} == {"email", "wecom"}


async def test_an_api_only_replica_takes_new_rules_without_a_restart(
    service: RunningService,
) -> None:
    """Rules replaced through one replica reach an API-only replica (no consumers) by its
    refresh job, so its /classify uses them."""
    database = service.runtime.settings.database_name
    async with run_service(
        "sentiment",
        mongo_database=database,
        run_consumers=False,
        sentiment_config_refresh_seconds=0.2,
    ) as api_pod:
        text = {"text": "北川县第二小学举行秋季运动会，同学们奋力拼搏。"}
        officer = auth("jc", OFFICER)
        before = await api_pod.client.post("/classify", json=text, headers=officer)
        assert before.json()["sensitive_words"] == []
        rules = (await service.client.get("/config", headers=ADMIN)).json()
        watched = {**rules, "sensitive_words": [*rules["sensitive_words"], "运动会"]}
        assert (await service.client.put("/config", json=watched, headers=ADMIN)).status_code == 200
        try:
            pod: Sentiment = api_pod.app.state.sentiment
            await eventually(lambda: "运动会" in pod.config.sensitive_words, what="new rules")
            after = await api_pod.client.post("/classify", json=text, headers=officer)
            assert after.json()["sensitive_words"] == ["运动会"]
        finally:
            await service.client.put("/config", json=rules, headers=ADMIN)


async def test_every_item_is_reached_page_by_page(service: RunningService) -> None:
    school = "qs-dezx"
    texts = [f"青石县第二小学第{n}次家长开放日，家长们参观了食堂和教室。" for n in range(5)]
    await send("intake.opinions", *(opinion("qs", school, text) for text in texts))
    officer = auth("qs", OFFICER)

    async def five() -> bool:
        found = await service.client.get(
            "/items", params={"unit": school, "merge": "false"}, headers=officer
        )
        return len(found.json()) == 5

    await eventually(five, what="five items")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(4):
        params = {"unit": school, "merge": "false", "limit": 2}
        params |= {"cursor": cursor} if cursor else {}
        page = await service.client.get("/items", params=params, headers=officer)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()]
        cursor = page.headers.get("x-next-cursor")
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = await service.client.get("/items", params={"cursor": "nonsense"}, headers=officer)
    assert bad.status_code == 422 and bad.json()["code"] == "bad_cursor"
