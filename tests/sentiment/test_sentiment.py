"""The sentiment service over the real local stack: analysis, incidents and alerts,
escalation, scope, story screening, dead letters and signed webhooks (Standard Webhooks)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr
from standardwebhooks.webhooks import WebhookVerificationError

from citydesk.producer import SignedProducer
from shared import events as ev
from shared.auth import Role
from shared.outbound import verify_standard
from shared.settings import load_settings
from tests.sentiment.support import opinion, run_sentiment, send
from tests.support import (
    LocalEndpoint,
    QuietHandler,
    RunningService,
    auth,
    eventually,
    header,
    read_topic,
)

pytestmark = pytest.mark.usefixtures("stack_env")

OFFICER = Role.OPINION_OFFICER
CITY_OFFICER = auth("jc", OFFICER)
WEBHOOK_SECRET = "test-webhook-secret"


class WebhookReceiver(LocalEndpoint):
    """A local endpoint that refuses the first delivery, then records what it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if receiver.refused == 0:
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.received.append(
                        ({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    self.send_response(200)
                self.end_headers()

        self.serve(Handler, "/hook")


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest_asyncio.fixture(scope="module")
async def sentiment(webhook: WebhookReceiver) -> AsyncIterator[RunningService]:
    async with run_sentiment(
        "test",
        sentiment_escalation_poll_seconds=0.3,
        sentiment_gauge_refresh_seconds=0.5,
        sentiment_webhook_url=webhook.url,
        sentiment_webhook_secret=SecretStr(WEBHOOK_SECRET),
    ) as running:
        yield running


def _bootstrap() -> str:
    import os

    return os.environ["CITYDESK_KAFKA_BOOTSTRAP"]


def flags(records: list[Any], **wanted: Any) -> list[dict[str, Any]]:
    found = []
    for record in records:
        try:
            payload = json.loads(record.value)["payload"]
        except (ValueError, KeyError, TypeError):
            continue
        if all(payload.get(k) == v for k, v in wanted.items()):
            found.append(payload)
    return found


async def incident_of(service: RunningService, school: str) -> dict[str, Any] | None:
    response = await service.client.get("/incidents", headers=CITY_OFFICER)
    return next((i for i in response.json() if i["school"] == school), None)


async def test_simplified_and_traditional_complaints_are_flagged_with_their_topic(
    sentiment: RunningService,
) -> None:
    cases = {
        "城南小学十几名学生在食堂吃完午饭后上吐下泻，家长怀疑食物中毒。": "food",
        "學校老師上課打學生耳光，孩子臉都腫了，家長要求嚴肅處理。": "teacher_conduct",
        "学校以资料费名义每人收800元，不给收据，这就是乱收费！": "fees",
        "我儿子在宿舍被几个高年级同学围殴、勒索零花钱，学校说是开玩笑。": "bullying",
        "兩名初二學生放學後到水庫游泳溺水身亡，家屬質疑學校安全教育不到位。": "safety",
        "教学楼墙体开裂，天花板掉下来砸伤了学生，学校还让在危房里上课。": "facilities",
        "学区内的孩子上不了学，有关系的外区孩子却能入学，招生暗箱操作。": "admissions",
    }
    for text, topic in cases.items():
        response = await sentiment.client.post(
            "/classify", json={"text": text}, headers=CITY_OFFICER
        )
        assert response.status_code == 200, response.text
        verdict = response.json()
        assert verdict["negative"], text
        assert verdict["topic"] == topic, (text, verdict)
        assert verdict["explanation"], text
    drowning = (
        await sentiment.client.post(
            "/classify",
            json={"text": next(iter(k for k, v in cases.items() if v == "safety"))},
            headers=CITY_OFFICER,
        )
    ).json()
    assert drowning["severity"] == "orange"  # a death raises the item's severity


async def test_ordinary_school_news_is_not_flagged_even_when_it_names_a_risk(
    sentiment: RunningService,
) -> None:
    news = [
        "北川县第二小学举办预防校园欺凌专题讲座，法治副校长教学生识别和应对欺凌。",
        "暑假来临，学校给孩子们上了一节防溺水安全教育课，提醒不私自下河游泳。",
        "区市场监管局检查学校食堂，对食品安全管理工作给予充分肯定。",
        "学校开展消防应急疏散演练，全校师生三分钟内有序撤离。",
        "學校舉行秋季運動會，同學們奮力拼搏，賽出風格。",
        "县教育局发布今年义务教育招生政策，坚持免试就近入学。",
    ]
    for text in news:
        response = await sentiment.client.post(
            "/classify", json={"text": text}, headers=CITY_OFFICER
        )
        assert response.status_code == 200
        assert not response.json()["negative"], (text, response.json())


async def test_classify_needs_an_opinion_officer(sentiment: RunningService) -> None:
    response = await sentiment.client.post(
        "/classify", json={"text": "测试"}, headers=auth("dh-syxx", Role.CORRESPONDENT)
    )
    assert response.status_code == 403
    response = await sentiment.client.post("/classify", json={"text": ""}, headers=CITY_OFFICER)
    assert response.status_code == 422


async def test_ten_posts_about_one_incident_make_one_incident_one_alert_and_signed_webhooks(
    sentiment: RunningService, webhook: WebhookReceiver
) -> None:
    school = "dh-dyxx"
    texts = [
        "东湖区第一小学食堂饭菜发霉，孩子吃完肚子疼，学校管不管？",
        "#东湖一小食物中毒# 我家孩子中午吃完饭就开始呕吐腹泻",
        "东湖区第一小学好多学生午饭后上吐下泻，已经送医院了",
        "家长群都炸了，一小食堂的菜是馊的，孩子们集体拉肚子",
        "投诉：东湖区第一小学食堂使用过期食材，学生吃坏了肚子",
        "一小今天又有学生呕吐，食堂到底有没有人监管",
        "孩子说食堂的肉有异味，吃了以后肚子痛到哭",
        "东湖一小食物中毒的事学校至今没有说法，家长很愤怒",
        "听说一小有十几个孩子因为吃了食堂的饭住院了",
        "強烈要求徹查東湖區第一小學食堂，孩子們吃了飯菜後腹瀉嘔吐",
    ]
    posts = [opinion("dh", school, text) for text in texts]
    duplicate = opinion("dh", school, texts[0], item_id=posts[0].payload.item_id)
    await send("intake.opinions", *posts, duplicate)

    async def ten_items() -> dict[str, Any] | None:
        found = await incident_of(sentiment, school)
        return found if found and found["item_count"] == 10 else None

    incident = await eventually(ten_items, what="one incident with ten items")
    detail = (
        await sentiment.client.get(f"/incidents/{incident['id']}", headers=CITY_OFFICER)
    ).json()
    assert len(detail["items"]) == 10
    assert {i["item_id"] for i in detail["items"]} == {p.payload.item_id for p in posts}
    assert detail["topic"] == "food"

    # a media enquiry about the same incident raises it to orange: one escalation, serious
    await send(
        "intake.opinions",
        opinion(
            "dh",
            school,
            "记者来电：东湖区第一小学食堂学生集体腹泻一事，请教育局回应。",
            source="media_enquiry",
        ),
    )

    def alert_and_escalation(records: list[Any]) -> bool:
        return bool(flags(records, incident_id=incident["id"], severity="orange"))

    records = await read_topic("opinion.flagged", until=alert_and_escalation)
    alerts = flags(records, incident_id=incident["id"], kind="alert")
    assert len(alerts) == 1
    assert alerts[0]["owner_level"] == "school" and alerts[0]["school"] == school
    escalation = flags(records, incident_id=incident["id"], severity="orange")[0]
    assert escalation["kind"] == "escalation"
    assert escalation["severity"] == "orange" and escalation["serious"] is True
    assert escalation["item_count"] == 11

    def delivered() -> list[dict[str, Any]]:
        return [
            json.loads(body)["payload"]
            for _, body in webhook.received
            if json.loads(body)["payload"].get("incident_id") == incident["id"]
        ]

    announced = len(flags(records, incident_id=incident["id"]))
    await eventually(lambda: len(delivered()) == announced, timeout=30, what="every notification")
    assert webhook.refused == 1  # the first attempt was refused and retried
    headers, body = next((h, b) for h, b in webhook.received if incident["id"] in b.decode())
    # signed the Standard Webhooks way, as a receiver verifies it
    assert verify_standard(WEBHOOK_SECRET, body, headers)["payload"]["incident_id"]
    assert headers["webhook-id"] and headers["webhook-signature"].startswith("v1,")
    tampered = body.replace(b'"item_count"', b'"item_count "')
    with pytest.raises(WebhookVerificationError):
        verify_standard(WEBHOOK_SECRET, tampered, headers)


async def test_an_unacknowledged_alert_escalates_from_school_to_county_to_city(
    sentiment: RunningService,
) -> None:
    admin = auth("jc", Role.ADMIN)
    config = (await sentiment.client.get("/config", headers=admin)).json()
    quick = json.loads(json.dumps(config))
    quick["alerts"]["deadline_seconds"] = {"blue": 1, "yellow": 1, "orange": 1, "red": 1}
    assert (await sentiment.client.put("/config", json=quick, headers=admin)).status_code == 200
    try:
        school = "xs-dyzx"
        await send(
            "intake.opinions",
            opinion("xs", school, "西山区第一中学宿舍漏雨一个月没人修，孩子被子都是湿的"),
        )
        incident = await eventually(lambda: incident_of(sentiment, school), what="the incident")

        def escalated_to_city(records: list[Any]) -> bool:
            return bool(flags(records, incident_id=incident["id"], owner_level="city"))

        records = await read_topic("opinion.flagged", until=escalated_to_city)
        levels = [f["owner_level"] for f in flags(records, incident_id=incident["id"])]
        assert levels == ["school", "county", "city"]
        alert = (
            await sentiment.client.get(f"/alerts/{incident['alert_id']}", headers=CITY_OFFICER)
        ).json()
        assert alert["owner_level"] == "city" and alert["owner_unit"] == "jc"
        assert [h["action"] for h in alert["history"]] == [
            "raised",
            "escalated to county",
            "escalated to city",
        ]
    finally:
        await sentiment.client.put("/config", json=config, headers=admin)


async def test_officers_see_only_their_own_units_and_follow_the_alert_procedure(
    sentiment: RunningService,
) -> None:
    await send(
        "intake.opinions",
        opinion("nl", "nl-dyxx", "南岭一小的班主任当着全班辱骂学生是废物，孩子不敢去上学"),
        opinion("dh", "dh-dezx", "东湖区第二小学门口接送车辆乱停，一个孩子被车撞伤了"),
    )
    nl_incident = await eventually(lambda: incident_of(sentiment, "nl-dyxx"), what="nl incident")
    await eventually(lambda: incident_of(sentiment, "dh-dezx"), what="dh incident")

    county_officer = auth("nl", OFFICER)
    seen = (await sentiment.client.get("/alerts", headers=county_officer)).json()
    assert seen and {a["county"] for a in seen} == {"nl"}
    incidents = (await sentiment.client.get("/incidents", headers=county_officer)).json()
    assert {i["county"] for i in incidents} == {"nl"}
    other = (await sentiment.client.get("/alerts", headers=auth("dh-dezx", OFFICER))).json()
    assert {a["school"] for a in other} == {"dh-dezx"}
    alert_id = nl_incident["alert_id"]
    assert (
        await sentiment.client.get(f"/alerts/{alert_id}", headers=auth("dh", OFFICER))
    ).status_code == 404
    assert (
        await sentiment.client.get("/alerts", headers=auth("nl", Role.CORRESPONDENT))
    ).status_code == 403

    school_officer = auth("nl-dyxx", OFFICER)
    close_early = await sentiment.client.post(
        f"/alerts/{alert_id}/close", json={}, headers=school_officer
    )
    assert close_early.status_code == 409
    for action, state in (
        ("acknowledge", "acknowledged"),
        ("respond", "responding"),
        ("close", "closed"),
    ):
        response = await sentiment.client.post(
            f"/alerts/{alert_id}/{action}",
            json={"comment": f"{action}: 已核实并处理"},
            headers=school_officer,
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == state
    again = await sentiment.client.post(
        f"/alerts/{alert_id}/acknowledge", json={}, headers=school_officer
    )
    assert again.status_code == 409
    closed = (await sentiment.client.get("/alerts?state=closed", headers=county_officer)).json()
    assert alert_id in {a["id"] for a in closed}


def story(story_id: str, title: str, body: str) -> ev.StorySubmittedEvent:
    return ev.StorySubmittedEvent.build(
        ev.StorySubmitted(
            story_id=story_id,
            version=1,
            unit_path=ev.UnitPath(city="jc", county="dh", unit="dh-syxx"),
            title=title,
            body=body,
            category="工作动态",
            event_date=date.today() - timedelta(days=1),
            submitted_at=ev.utcnow(),
            author="corr-1",
        ),
        producer="submission",
        county="dh",
        unit="dh-syxx",
    )


async def test_a_negative_story_is_flagged_for_review_and_ordinary_news_is_not(
    sentiment: RunningService,
) -> None:
    bad, good = f"st-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    await send(
        "story.submitted",
        story(bad, "我校学生食物中毒事件", "昨天中午多名学生在食堂就餐后呕吐腹泻，被送往医院。"),
        story(good, "我校举行秋季运动会", "同学们在运动会上奋力拼搏，展现了良好的精神风貌。"),
    )
    records = await read_topic("opinion.flagged", until=lambda rs: bool(flags(rs, story_id=bad)))
    flagged = flags(records, story_id=bad)[0]
    assert flagged["kind"] == "story_screening" and flagged["story_version"] == 1
    assert flagged["negative"] and flagged["topic"] == "food"
    reviewer = auth("dh", Role.REVIEWER_COUNTY)

    async def screened() -> Any:
        response = await sentiment.client.get(f"/screenings/{good}", headers=reviewer)
        return response.json() if response.status_code == 200 else None

    result = await eventually(screened, what="the ordinary story screened")
    assert result[0]["flagged"] is False
    assert not flags(records, story_id=good)


async def test_bad_intake_goes_to_the_dead_letter_topic_with_its_reason(
    sentiment: RunningService,
) -> None:
    wrong_county = opinion("xs", "dh-syxx", "东湖区实验小学乱收费")
    unknown = opinion("zz", None, "某校乱收费")  # a county the bureau gave no key
    await send("intake.opinions", wrong_county)
    await send("intake.opinions", unknown, principal=None)

    def both(records: list[Any]) -> bool:
        ids = {json.loads(r.value).get("event_id") for r in records}
        return {str(wrong_county.event_id), str(unknown.event_id)} <= ids

    records = await read_topic("intake.opinions.dlq", until=both)
    reasons = {json.loads(r.value)["event_id"]: header(r, "dlq-reason") for r in records}
    assert "not in county 'xs'" in reasons[str(wrong_county.event_id)]
    assert "unsigned record" in reasons[str(unknown.event_id)]


async def test_a_replayed_batch_changes_no_counts(sentiment: RunningService) -> None:
    school = "nl-dezx"
    texts = [
        "南岭区第二中学教辅资料费每人三百元，不开收据，家长质疑乱收费",
        "南岭二中又让每人交三百元补课费，说是自愿其实不交不行",
        "南嶺二中亂收費，資料費、補課費一樣不少，收據都沒有",
    ]
    posts = [opinion("nl", school, text) for text in texts]
    ordinary = opinion("nl", school, "南岭区第二中学举行春季运动会，同学们奋力拼搏")
    await send("intake.opinions", *posts, ordinary)

    async def three_items() -> dict[str, Any] | None:
        found = await incident_of(sentiment, school)
        return found if found and found["item_count"] == 3 else None

    incident = await eventually(three_items, what="one incident with three items")
    await send("intake.opinions", *posts, ordinary)
    # a marker sent after the replay: once it is counted, the replay has been applied
    marker = opinion("nl", school, "南岭二中收费不开发票，这笔资料费到底去了哪里")
    await send("intake.opinions", marker)

    async def marker_counted() -> dict[str, Any] | None:
        found = await incident_of(sentiment, school)
        return found if found and found["item_count"] >= 4 else None

    after = await eventually(marker_counted, what="the marker after the replay")
    assert after["id"] == incident["id"] and after["item_count"] == 4
    detail = (await sentiment.client.get(f"/incidents/{after['id']}", headers=CITY_OFFICER)).json()
    assert sorted(i["item_id"] for i in detail["items"]) == sorted(
        p.payload.item_id for p in [*posts, marker]
    )
    records = await read_topic(
        "opinion.flagged", until=lambda rs: bool(flags(rs, incident_id=incident["id"]))
    )
    assert len(flags(records, incident_id=incident["id"], kind="alert")) == 1


async def test_a_batch_mixing_bad_and_good_items_dead_letters_exactly_the_bad_ones(
    sentiment: RunningService,
) -> None:
    school = "xs-dyxx"
    good = [
        opinion("xs", school, "西山区第一小学的厕所漏水好几个星期了，孩子们不敢上厕所"),
        opinion("xs", None, "西山区教育局发布暑期安全提示，提醒家长看护好孩子"),
    ]
    wrong_county = opinion("dh", school, "西山区第一小学厕所漏水")
    invalid = b'{"type": "intake.opinion", "payload": {"text": "no id"}}'
    producer = SignedProducer(load_settings("tests"), linger_ms=50)
    await producer.start()
    try:
        batch = [
            good[0].model_dump_json().encode(),
            invalid,
            wrong_county.model_dump_json().encode(),
        ]
        batch.append(good[1].model_dump_json().encode())
        sent = [await producer.send("intake.opinions", value, key=b"xs") for value in batch]
        for future in sent:
            await future
    finally:
        await producer.stop()

    def both_dead(records: list[Any]) -> bool:
        return any(r.value == invalid for r in records) and any(
            str(wrong_county.event_id) in r.value.decode() for r in records
        )

    records = await read_topic("intake.opinions.dlq", until=both_dead)
    ours = [
        r
        for r in records
        if r.value == invalid
        or any(str(e.event_id) in r.value.decode() for e in [*good, wrong_county])
    ]
    assert len(ours) == 2
    kinds = {header(r, "dlq-reason-kind") for r in ours}
    assert kinds == {"invalid", "unauthorised"}  # xs's feed may not post dh's items
    incident = await eventually(lambda: incident_of(sentiment, school), what="the good item")
    assert incident["item_count"] == 1
    detail = (
        await sentiment.client.get(f"/incidents/{incident['id']}", headers=CITY_OFFICER)
    ).json()
    assert [i["item_id"] for i in detail["items"]] == [good[0].payload.item_id]


# fifteen parents praising, thanking and asking about one school, in the words the old
# model took for complaints (家长, 孩子, 老师, 食堂, 安全); the first is the text
PARENT_PRAISE = [
    "清河县第一小学的老师对孩子很负责，家长很放心。",
    "一小的食堂越办越好了，孩子每天回来都说午饭好吃，当家长的放心。",
    "感谢清河一小的班主任，孩子发烧时第一时间联系我们，还一直陪着他。",
    "请问清河县第一小学下学期几号开学？要不要提前交午餐费？",
    "孩子在一小上三年级，老师每天在群里发孩子们上课的照片，家长都很安心。",
    "一小的安全教育做得真细，孩子回家教我怎么用灭火器。",
    "清河一小开了防溺水家长会，讲得很实在，我们家长都认真听了。",
    "想问一下清河县第一小学的课后服务是几点结束？家长下班比较晚。",
    "孩子说一小的体育老师上课很有趣，现在天天吵着要去跳绳。",
    "一小门口每天都有老师和保安护导，孩子过马路我们家长很放心。",
    "清河縣第一小學嘅老師好有心，個仔每日都好開心返學。",
    "谢谢一小的老师们，孩子转学过来一个月就交到了好朋友。",
    "请问一小今年的校服在哪里订？一套多少钱？",
    "家长开放日去一小食堂看了，干净整洁，菜色也好，给学校点赞。",
    "孩子在一小的反欺凌班会上学会了怎么求助，家长觉得这课很有用。",
]
# six parents about another school's lunches, most without a complaint word
HUNGRY_CHILDREN = [
    "清河县第二小学的孩子说中午又没吃饱，菜少得可怜，一连好几天了。",
    "二小食堂的饭是凉的，孩子们冬天天天吃冷饭，回家就喊肚子疼。",
    "清河二小的午饭米饭夹生，孩子吃了两口就倒了，下午饿得上不了课。",
    "孩子说二小食堂的菜有怪味，好几个同学吃完都拉肚子了。",
    "清河县第二小学食堂饭菜分量越来越少，价钱倒是涨了，家长们都很有意见。",
    "二小的孩子们午饭吃不饱，反映了好几次，学校一直没有回音。",
]


async def test_parents_praise_stays_quiet_while_a_complaint_burst_raises_one_alert(
    sentiment: RunningService,
) -> None:
    praised, complained = "qh-dyxx", "qh-dezx"
    praise = [opinion("qh", praised, text, source="parent_forum") for text in PARENT_PRAISE]
    burst = [opinion("qh", complained, text, source="parent_forum") for text in HUNGRY_CHILDREN]
    # one county, one partition: the praise is analysed before the burst
    await send("intake.opinions", *praise, *burst)

    async def burst_incident() -> dict[str, Any] | None:
        found = await incident_of(sentiment, complained)
        # all six but at most one (recall on the held-out part is 0.95-0.98, not 1)
        return found if found and found["item_count"] >= len(HUNGRY_CHILDREN) - 1 else None

    incident = await eventually(burst_incident, what="the lunch complaints' incident")
    assert incident["topic"] == "food"
    records = await read_topic(
        "opinion.flagged", until=lambda rs: bool(flags(rs, incident_id=incident["id"]))
    )
    assert len(flags(records, incident_id=incident["id"], kind="alert")) == 1
    assert await incident_of(sentiment, praised) is None
    assert not flags(records, school=praised)


async def test_every_item_is_listed_with_link_and_reasons_and_an_officer_corrects_one(
    sentiment: RunningService, tmp_path: Any
) -> None:
    from services.sentiment.dataset import _read
    from services.sentiment.items import export_corrections

    school = "qs-dyxx"
    praise = opinion(
        "qs",
        school,
        "青石县第一小学的食堂阿姨很细心，孩子过敏她都记得，家长很放心。",
        source="forum",
        link="https://bbs.example.org/t/123",
    )
    complaint = opinion("qs", school, "孩子说青石一小的教室一冬天都没有暖气，冻得手都肿了。")
    repost = opinion(
        "qs",
        school,
        "孩子说青石一小的教室一冬天都没有暖气，冻得手都肿了！！",
        source="12345",
        link="http://hotline.example.gov/ticket/9",
    )
    sneaky = opinion("qs", school, "点这里看原帖", link="javascript:alert(document.cookie)")
    await send("intake.opinions", praise, complaint, repost, sneaky)

    records = await read_topic(
        "intake.opinions.dlq",
        until=lambda rs: any(
            json.loads(r.value).get("event_id") == str(sneaky.event_id) for r in rs
        ),
    )
    refused = next(
        r for r in records if json.loads(r.value).get("event_id") == str(sneaky.event_id)
    )
    assert "only http(s) links" in (header(refused, "dlq-reason") or "")

    county_officer = auth("qs", OFFICER)

    async def all_listed() -> list[dict[str, Any]] | None:
        response = await sentiment.client.get(
            "/items", params={"unit": school, "merge": "false"}, headers=county_officer
        )
        assert response.status_code == 200, response.text
        found = response.json()
        return found if len(found) == 3 else None

    listed = {item["item_id"]: item for item in await eventually(all_listed, what="3 items")}
    # the complaint and its repost elsewhere are one entry listing both sources
    merged = (
        await sentiment.client.get("/items", params={"unit": school}, headers=county_officer)
    ).json()
    assert len(merged) == 2
    both = next(entry for entry in merged if entry["negative"])
    assert {s["item_id"] for s in both["sources"]} == {
        complaint.payload.item_id,
        repost.payload.item_id,
    }
    assert {s["source"] for s in both["sources"]} == {"weibo", "12345"}
    quiet = listed[praise.payload.item_id]
    assert quiet["negative"] is False and quiet["link"] == "https://bbs.example.org/t/123"
    assert quiet["explanation"] and quiet["source"] == "forum"
    assert listed[complaint.payload.item_id]["negative"] is True
    only_quiet = await sentiment.client.get(
        "/items", params={"unit": school, "negative": "false"}, headers=county_officer
    )
    assert [i["item_id"] for i in only_quiet.json()] == [praise.payload.item_id]
    assert only_quiet.json()[0]["sources"][0]["link"] == "https://bbs.example.org/t/123"
    by_source = await sentiment.client.get(
        "/items", params={"unit": school, "source": "forum"}, headers=county_officer
    )
    assert [i["item_id"] for i in by_source.json()] == [praise.payload.item_id]

    # another county's officer sees none of it; bad filters get a code and a Chinese message
    other = auth("dh", OFFICER)
    outside = await sentiment.client.get("/items", params={"unit": school}, headers=other)
    assert outside.status_code == 403 and outside.json()["code"] == "unit_out_of_scope"
    listed_there = (await sentiment.client.get("/items", headers=other)).json()
    assert not {i["item_id"] for i in listed_there} & set(listed)
    bad = await sentiment.client.get("/items", params={"topic": "weather"}, headers=other)
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_topic"
    assert "主题" in bad.json()["message"]

    # the officer marks the praise negative (say it hid a complaint): stored, exported
    marked = await sentiment.client.post(
        f"/items/{quiet['id']}/correction",
        json={"negative": True, "note": "复核后认定"},
        headers=auth("qs", OFFICER, sub="officer-qs"),
    )
    assert marked.status_code == 200, marked.text
    assert marked.json()["correction"]["negative"] is True
    assert marked.json()["correction"]["by"] == "officer-qs"
    missing = await sentiment.client.post(
        "/items/forum:nothing/correction", json={"negative": False}, headers=county_officer
    )
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_item"
    settings = sentiment.runtime.settings
    path = tmp_path / "corrections.jsonl"
    assert await export_corrections(settings.mongo_uri, settings.database_name, path) >= 1
    rows = {row["text"]: row for row in _read(path)}
    assert rows[praise.payload.text]["negative"] is True


async def test_the_item_list_answers_bad_periods_and_units_with_a_code(
    sentiment: RunningService,
) -> None:
    officer = auth("qs", OFFICER)
    mixed = await sentiment.client.get(
        "/items",
        params={"since": "2026-03-02T00:00:00", "until": "2026-03-01T00:00:00+08:00"},
        headers=officer,
    )
    assert mixed.status_code == 422 and mixed.json()["code"] == "empty_period"
    unknown = await sentiment.client.get("/items", params={"unit": "zz-nowhere"}, headers=officer)
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_unit"
    window = await sentiment.client.get(
        "/items", params={"since": "2020-01-01T00:00:00", "until": "2020-01-02"}, headers=officer
    )
    assert window.status_code == 200 and window.json() == []
    correspondent = auth("qs-dyxx", Role.CORRESPONDENT)
    assert (await sentiment.client.get("/items", headers=correspondent)).status_code == 403


async def test_only_the_city_office_determines_an_incident_serious_with_a_reason_and_can_lift_it(
    sentiment: RunningService,
) -> None:
    school = "qs-syxx"
    await send(
        "intake.opinions",
        opinion("qs", school, "青石县第一小学体育课上学生摔伤骨折，老师不管不问", source="weibo"),
    )
    incident = await eventually(lambda: incident_of(sentiment, school), what="qs incident")
    path = f"/incidents/{incident['id']}/determination"
    reason = "经调查属实，多家媒体转载，造成恶劣社会影响"
    county = await sentiment.client.post(path, json={"reason": reason}, headers=auth("qs", OFFICER))
    assert county.status_code == 403 and "市教育局" in county.json()["detail"]
    school_officer = auth(school, OFFICER)
    assert (
        await sentiment.client.post(path, json={"reason": reason}, headers=school_officer)
    ).status_code == 403
    silent = await sentiment.client.post(path, json={"reason": ""}, headers=CITY_OFFICER)
    assert silent.status_code == 422
    unknown = await sentiment.client.post(
        "/incidents/inc-nowhere/determination", json={"reason": reason}, headers=CITY_OFFICER
    )
    assert unknown.status_code == 404

    chief = auth("jc", OFFICER, sub="city-officer-li")
    done = await sentiment.client.post(path, json={"reason": reason}, headers=chief)
    assert done.status_code == 200, done.text
    determination = done.json()["determination"]
    assert determination["determined"] is True and determination["by"] == "city-officer-li"
    assert determination["reason"] == reason
    again = await sentiment.client.post(path, json={"reason": reason}, headers=chief)
    assert again.status_code == 409
    shown = (await sentiment.client.get(f"/incidents/{incident['id']}", headers=chief)).json()
    assert shown["determination"]["determined"] is True

    why_not = "复核后认定为个别事件，已妥善处置"
    lifted = await sentiment.client.request("DELETE", path, json={"reason": why_not}, headers=chief)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["determination"]["determined"] is False
    twice = await sentiment.client.request("DELETE", path, json={"reason": why_not}, headers=chief)
    assert twice.status_code == 409

    def both(records: list[Any]) -> bool:
        return len(flags(records, incident_id=incident["id"], decided_by="city-officer-li")) == 2

    records = await read_topic("opinion.flagged", until=both)
    announced = flags(records, incident_id=incident["id"], decided_by="city-officer-li")
    assert [(a["kind"], a["reason"]) for a in announced] == [
        ("determination", reason),
        ("determination_lifted", why_not),
    ]
    assert all(a["incident_at"] and a["school"] == school for a in announced)
