"""The review and publish service over the real local stack: routes through the three
levels, decisions and their guards, the screening hold, publication on the feed and
signed webhooks, adoption, withdrawal and the audit trail."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from standardwebhooks.webhooks import WebhookVerificationError

from services.review import access, cases, delivery
from shared import events as ev
from shared.auth import Principal, Role
from shared.mongo import make_client
from shared.orgtree import example_city
from shared.outbound import verify_standard
from tests.review.support import every_page, index_of, story_event
from tests.support import (
    RunningService,
    auth,
    eventually,
    produce,
    read_topic,
    run_service,
    settings_for,
)

pytestmark = pytest.mark.usefixtures("stack_env")

ORG = example_city()
SCHOOL = auth("dh-syxx", "reviewer_school", sub="head-dh-syxx")
COUNTY = auth("dh", "reviewer_county", sub="reviewer-dh")
OTHER_COUNTY = auth("xs", "reviewer_county", sub="reviewer-xs")
CITY = auth("jc", "reviewer_city", sub="reviewer-jc")
LEADER = auth("jc", "leader", sub="leader-jc")
ADMIN = auth("jc", "admin", sub="admin-jc")


@pytest_asyncio.fixture(scope="module")
async def review() -> AsyncIterator[RunningService]:
    database = f"review_test_{uuid.uuid4().hex[:8]}"
    async with run_service(
        "review",
        mongo_database=database,
        overdue_check_seconds=0.3,
        publish_poll_seconds=0.2,
        # the test receivers listen on loopback: allowed here as the demo's would be
        review_webhook_allow=["127.0.0.1"],
    ) as running:
        yield running
    client = make_client(settings_for("review"))
    await client.drop_database(database)
    await client.close()


async def submit(event: ev.StorySubmittedEvent) -> str:
    await produce(
        "story.submitted", event.model_dump_json().encode(), key=event.payload.story_id.encode()
    )
    return event.payload.story_id


async def waiting_case(
    client: httpx.AsyncClient, headers: dict[str, str], story_id: str, version: int = 1
) -> dict[str, Any]:
    """The case of a story version once it waits in the queue of ``headers``' reviewer."""

    async def find() -> dict[str, Any] | None:
        queue = await every_page(client, "/queue", headers)
        return next(
            (c for c in queue if c["story_id"] == story_id and c["version"] == version), None
        )

    return await eventually(find, what=f"story {story_id} v{version} in the queue")


async def school_case(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    """A school's story submitted, and its case once it waits in the school's queue."""
    story_id = await submit(story_event("dh-syxx"))
    return story_id, await waiting_case(client, SCHOOL, story_id)


async def decide(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    case: dict[str, Any],
    decision: str = "approve",
    **extra: Any,
) -> httpx.Response:
    body = {"version": case["version"], "decision": decision, **extra}
    return await client.post(f"/cases/{case['case_id']}/decisions", json=body, headers=headers)


async def approve(
    client: httpx.AsyncClient, headers: dict[str, str], case: dict[str, Any]
) -> dict[str, Any]:
    response = await decide(client, headers, case)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def events_for(topic: str, story_id: str, count: int) -> list[dict[str, Any]]:
    """The payloads of ``topic`` about one story, once at least ``count`` are there."""

    def ours(records: list[Any]) -> list[dict[str, Any]]:
        found = []
        for record in records:
            with contextlib.suppress(ValueError, AttributeError):
                data = json.loads(record.value)
                if data.get("payload", {}).get("story_id") == story_id:
                    found.append(data["payload"])
        return found

    records = await read_topic(topic, until=lambda rs: len(ours(rs)) >= count)
    return ours(records)


async def in_feed(client: httpx.AsyncClient, story_id: str, state: str = "published") -> bool:
    entries = await every_page(client, "/feed", state=state)
    return any(item["story_id"] == story_id for item in entries)


# ---- routes -------------------------------------------------------------------------
async def test_a_schools_story_goes_through_school_county_and_city_and_is_published(
    review: RunningService,
) -> None:
    client = review.client
    story_id, case = await school_case(client)
    assert case["route"] == ["school", "county", "city"]
    assert case["late"] is True and case["late_days"] == 20
    assert case["media"][0]["thumbnail"].endswith("/media/m-photo-1/thumbnail?size=small")
    assert case["title"].startswith("春季运动会") and case["body"]

    first = await approve(client, SCHOOL, case)
    assert (first["level"], first["final"]) == ("county", False)
    second = await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id))
    assert (second["level"], second["final"]) == ("city", False)
    last = await approve(client, CITY, await waiting_case(client, CITY, story_id))
    assert (last["state"], last["final"]) == ("approved", True)

    reviewed = await events_for("story.reviewed", story_id, 3)
    assert [(e["level"], e["decision"], e["final"]) for e in reviewed] == [
        ("school", "approved", False),
        ("county", "approved", False),
        ("city", "approved", True),
    ]
    await eventually(lambda: in_feed(client, story_id), what="the story in the feed")
    published = await events_for("story.published", story_id, 1)
    assert published[0]["kind"] == "channel" and published[0]["channel"] == "feed"
    assert published[0]["outlet_level"] == "bureau"


async def test_a_county_bureaus_own_story_starts_at_the_county(review: RunningService) -> None:
    client = review.client
    story_id = await submit(story_event("dh"))
    case = await waiting_case(client, COUNTY, story_id)
    assert case["route"] == ["county", "city"] and case["level"] == "county"
    assert (await approve(client, COUNTY, case))["level"] == "city"
    await waiting_case(client, CITY, story_id)


async def test_a_directly_run_units_story_skips_the_county(review: RunningService) -> None:
    client = review.client
    story_id = await submit(story_event("jc-yz"))
    case = await waiting_case(client, auth("jc-yz", "reviewer_school"), story_id)
    assert case["route"] == ["school", "city"]
    assert (await approve(client, auth("jc-yz", "reviewer_school"), case))["level"] == "city"
    await waiting_case(client, CITY, story_id)


async def test_a_redelivered_submission_opens_one_case(review: RunningService) -> None:
    event = story_event("dh-syxx")
    await submit(event)
    await submit(event)
    await waiting_case(review.client, SCHOOL, event.payload.story_id)
    # the next version has the same key, so the same partition: once its case is open,
    # the redelivery before it has been handled
    story_id = event.payload.story_id
    await submit(story_event("dh-syxx", story_id=story_id, version=2))
    await waiting_case(review.client, SCHOOL, story_id, version=2)
    count = await review.runtime.db.cases.count_documents({"story_id": story_id, "version": 1})
    assert count == 1


# ---- decisions ----------------------------------------------------------------------
async def test_a_returned_story_is_resubmitted_as_a_new_version_and_approved(
    review: RunningService,
) -> None:
    client = review.client
    story_id, case = await school_case(client)
    missing = await decide(client, SCHOOL, case, "return")
    assert missing.status_code == 422 and "comment is required" in missing.json()["detail"]
    returned = await decide(client, SCHOOL, case, "return", comment="请补充活动时间和人数")
    assert returned.json()["state"] == "returned"

    await submit(story_event("dh-syxx", story_id=story_id, version=2))
    second = await waiting_case(client, SCHOOL, story_id, version=2)
    old = await client.get(f"/cases/{case['case_id']}", headers=SCHOOL)
    assert old.json()["state"] == "superseded"
    assert second["level"] == "school"
    await approve(client, SCHOOL, second)
    await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id, version=2))
    final = await approve(client, CITY, await waiting_case(client, CITY, story_id, version=2))
    assert final["final"] is True and final["version"] == 2


async def test_a_rejection_needs_a_reason_and_ends_the_review(review: RunningService) -> None:
    client = review.client
    story_id, case = await school_case(client)
    assert (await decide(client, SCHOOL, case, "reject")).status_code == 422
    rejected = await decide(client, SCHOOL, case, "reject", reason="内容与事实不符")
    assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    again = await decide(client, SCHOOL, case)
    assert again.status_code == 409
    reviewed = await events_for("story.reviewed", story_id, 1)
    assert (reviewed[0]["decision"], reviewed[0]["final"]) == ("rejected", False)
    assert reviewed[0]["comment"] == "内容与事实不符"


async def test_a_major_story_needs_the_leaders_sign_off(review: RunningService) -> None:
    client = review.client
    story_id = await submit(story_event("dh", major=True))
    case = await waiting_case(client, COUNTY, story_id)
    assert case["route"] == ["county", "city", "leader"]
    await approve(client, COUNTY, case)
    city = await approve(client, CITY, await waiting_case(client, CITY, story_id))
    assert (city["level"], city["final"]) == ("leader", False)
    at_leader = await waiting_case(client, LEADER, story_id)
    assert (await decide(client, CITY, at_leader)).status_code == 403
    signed = await approve(client, LEADER, at_leader)
    assert (signed["state"], signed["final"]) == ("approved", True)


async def test_a_decision_on_a_stale_version_is_refused(review: RunningService) -> None:
    client = review.client
    _, case = await school_case(client)
    stale = await decide(client, SCHOOL, {**case, "version": 2})
    assert stale.status_code == 409 and "stale version" in stale.json()["detail"]


async def test_two_reviewers_deciding_at_once_only_one_wins(review: RunningService) -> None:
    client = review.client
    story_id, case = await school_case(client)
    other = auth("dh-syxx", "reviewer_school", sub="deputy-dh-syxx")
    answers = await asyncio.gather(
        decide(client, SCHOOL, case), decide(client, other, case, "return", comment="重写")
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    trail = await every_page(client, f"/stories/{story_id}/audit", CITY)
    assert len([e for e in trail if e["level"] == "school"]) == 1


async def test_a_county_reviewer_cannot_see_or_decide_another_countys_case(
    review: RunningService,
) -> None:
    client = review.client
    story_id, at_school = await school_case(client)
    await approve(client, SCHOOL, at_school)
    case = await waiting_case(client, COUNTY, story_id)
    queue = await every_page(client, "/queue", OTHER_COUNTY)
    assert all(c["story_id"] != story_id for c in queue)
    refused = await decide(client, OTHER_COUNTY, case)
    assert refused.status_code == 403
    assert (await client.get(f"/cases/{case['case_id']}", headers=OTHER_COUNTY)).status_code == 403
    assert (await decide(client, SCHOOL, case)).status_code == 403  # not the school's level


# ---- screening hold -----------------------------------------------------------------
async def test_a_screening_hold_blocks_final_approval_until_a_city_reviewer_overrides(
    review: RunningService,
) -> None:
    client = review.client
    story_id = await submit(story_event("dh"))
    await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id))
    flag = ev.OpinionFlaggedEvent.build(
        ev.OpinionFlagged(
            kind=ev.FlagKind.STORY_SCREENING, story_id=story_id, story_version=1, county="dh",
            severity=ev.Severity.ORANGE, score=0.8, topic="safety",
            explanation=["踩踏"], flagged_at=ev.utcnow(),
        ),
        producer="sentiment", county="dh",
    )  # fmt: skip
    await produce("opinion.flagged", flag.model_dump_json().encode(), key=story_id.encode())

    async def held() -> dict[str, Any] | None:
        case = await waiting_case(client, CITY, story_id)
        screening = case["screening"]
        return case if screening and screening["holds_final_approval"] else None

    case = await eventually(held, what="the screening hold")
    assert case["screening"]["severity"] == "orange"
    blocked = await decide(client, CITY, case)
    assert blocked.status_code == 409 and "held" in blocked.json()["detail"]
    reason = {"reason": "已核实，报道内容准确，无负面影响"}
    assert (await client.post(f"/cases/{case['case_id']}/override", json=reason,
                              headers=COUNTY)).status_code == 403  # fmt: skip
    lifted = await client.post(f"/cases/{case['case_id']}/override", json=reason, headers=CITY)
    assert lifted.status_code == 200 and lifted.json()["hold_overridden"] is True
    assert (await approve(client, CITY, case))["final"] is True
    reviewed = await events_for("story.reviewed", story_id, 3)
    assert [e["decision"] for e in reviewed] == ["approved", "overridden", "approved"]


# ---- publication --------------------------------------------------------------------
async def test_a_scheduled_story_appears_in_the_feed_after_its_time(review: RunningService) -> None:
    client = review.client
    story_id = await submit(story_event("dh", title="校园开放日"))
    await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id))
    case = await waiting_case(client, CITY, story_id)
    publish_at = datetime.now(UTC) + timedelta(seconds=2)
    assert (await decide(client, COUNTY, case, publish_at=publish_at.isoformat())).status_code in (
        403,
        422,
    )
    response = await decide(client, CITY, case, publish_at=publish_at.isoformat())
    assert response.status_code == 200
    assert not await in_feed(client, story_id)
    await eventually(lambda: in_feed(client, story_id), what="the scheduled story in the feed")
    assert datetime.now(UTC) >= publish_at

    rss = ET.fromstring((await client.get("/feed.rss")).content)
    titles = [item.findtext("title") for item in rss.iter("item")]
    assert "校园开放日 v1" in titles
    atom = ET.fromstring((await client.get("/feed.atom")).content)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entry = next(
        e
        for e in atom.findall("a:entry", ns)
        if e.findtext("a:title", namespaces=ns) == "校园开放日 v1"
    )
    links = [link.get("href") for link in entry.findall("a:link", ns)]
    assert any(str(href).endswith("/media/m-photo-1") for href in links)


# what a failing receiver answers: another system's internals, never to be shown back
LEAKY_ANSWER = b"upstream db password=hunter2 at 10.0.0.7"


class FlakyReceiver:
    """A tiny HTTP endpoint that refuses its first ``failures`` requests (with an answer
    that must never be shown back), then accepts, each after ``delay`` seconds."""

    def __init__(self, failures: int, delay: float = 0.0) -> None:
        self.failures = failures
        self.delay = delay
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> FlakyReceiver:
        self.server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {}
        for line in head.split("\r\n")[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = 503 if len(self.requests) < self.failures else 200
        self.requests.append((headers, body, status))
        await asyncio.sleep(self.delay)
        reason, answer = ("OK", b"") if status == 200 else ("Service Unavailable", LEAKY_ANSWER)
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(answer)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + answer
        )
        await writer.drain()
        writer.close()


async def replace_config(client: httpx.AsyncClient, change: dict[str, Any]) -> dict[str, Any]:
    current = (await client.get("/config", headers=ADMIN)).json()
    previous = json.loads(json.dumps(current))
    for hook in previous["publication"]["webhooks"]:
        hook.pop("secret")
    for key, value in change.items():
        current[key] = value if not isinstance(value, dict) else {**current[key], **value}
    response = await client.put("/config", json=current, headers=ADMIN)
    assert response.status_code == 200, response.text
    return previous


async def test_webhooks_are_signed_retried_with_backoff_and_failures_are_listed(
    review: RunningService,
) -> None:
    client = review.client
    secret = "a-long-shared-webhook-secret"
    async with FlakyReceiver(failures=2) as receiver, FlakyReceiver(failures=99) as portal:
        previous = await replace_config(client, {"publication": {
            "webhooks": [
                {"name": "wechat", "url": receiver.url, "secret": secret},
                {"name": "portal", "url": portal.url, "secret": secret},
            ],
            "max_attempts": 3, "backoff_seconds": 0.2, "backoff_max_seconds": 1,
        }})  # fmt: skip
        try:
            story_id = await submit(story_event("dh"))
            await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id))
            await approve(client, CITY, await waiting_case(client, CITY, story_id))
            await eventually(lambda: len(receiver.requests) >= 3, what="three deliveries")
            failed = await eventually(
                lambda: _publications(client, story_id, "failed"), what="the portal failing"
            )
        finally:
            await client.put("/config", json=previous, headers=ADMIN)
    assert [status for _, _, status in receiver.requests[:3]] == [503, 503, 200]
    headers, body, _ = receiver.requests[2]
    sent = verify_standard(secret, body, headers)  # Standard Webhooks: id.timestamp.body
    assert headers["webhook-timestamp"].isdigit()
    assert sent["story_id"] == story_id and sent["media"][0]["thumbnail"]
    # one message id across the attempts of a delivery, so a receiver can drop repeats
    assert {h["webhook-id"] for h, _, _ in receiver.requests[:3]} == {sent["delivery_id"]}
    with pytest.raises(WebhookVerificationError):
        verify_standard("another-shared-secret-entirely", body, headers)

    delivered = await eventually(lambda: _publications(client, story_id, "success"))
    wechat = next(p for p in delivered if p["channel"] == "wechat")
    assert wechat["attempts"] == 3
    assert [p["channel"] for p in failed] == ["portal"] and failed[0]["attempts"] == 3
    assert (failed[0]["last_status"], failed[0]["last_error"]) == (503, "HTTP 503")
    listed = await client.get("/publications", params={"story_id": story_id}, headers=CITY)
    assert b"hunter2" not in listed.content  # the receiver's answer is never shown back
    assert await review.runtime.db.publications.count_documents({"story_id": story_id}) == 3
    assert not await review.runtime.db.publications.find_one({"last_error": {"$regex": "hunter"}})
    published = await events_for("story.published", story_id, 2)
    assert {p["channel"] for p in published} == {"feed", "wechat"}

    resent = await client.post(f"/publications/{failed[0]['publication_id']}/resend", headers=CITY)
    assert resent.status_code == 200 and resent.json()["state"] == "pending"
    cancelled = await client.post(f"/publications/{wechat['publication_id']}/cancel", headers=CITY)
    assert cancelled.status_code == 409  # already delivered


async def _publications(client: httpx.AsyncClient, story_id: str, state: str) -> list[Any]:
    params = {"state": state, "story_id": story_id}
    return await every_page(client, "/publications", CITY, **params)


async def test_an_outside_adoption_counts_once_per_outlet(review: RunningService) -> None:
    client = review.client
    story_id = await submit(story_event("dh"))
    adoption = {
        "outlet": "中国教育报", "level": "national", "placement": "headline",
        "date": date.today().isoformat(), "link": "https://example.org/jyb/1",
        "leader_instruction": True,
    }  # fmt: skip
    early = await client.post(f"/stories/{story_id}/adoptions", json=adoption, headers=CITY)
    assert early.status_code in (404, 409)  # not approved (or not even opened) yet
    await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id))
    await approve(client, CITY, await waiting_case(client, CITY, story_id))
    assert (await client.post(f"/stories/{story_id}/adoptions", json=adoption,
                              headers=COUNTY)).status_code == 403  # fmt: skip
    first = await client.post(f"/stories/{story_id}/adoptions", json=adoption, headers=CITY)
    assert first.status_code == 201, first.text
    again = {**adoption, "outlet": " 中国教育报 ", "placement": "normal"}
    second = await client.post(f"/stories/{story_id}/adoptions", json=again, headers=CITY)
    assert second.status_code == 409 and "already recorded" in second.json()["detail"]
    listed = await every_page(client, f"/stories/{story_id}/adoptions", CITY)
    assert len(listed) == 1
    latest = await client.get("/adoptions", params={"limit": 5}, headers=CITY)
    assert latest.status_code == 200
    assert latest.json()["items"][0]["story_id"] == story_id  # newest first, across stories
    assert (await client.get("/adoptions", headers=COUNTY)).status_code == 403
    published = await events_for("story.published", story_id, 2)
    adopted = [p for p in published if p["kind"] == "adoption"]
    assert len(adopted) == 1
    assert (adopted[0]["outlet"], adopted[0]["outlet_level"], adopted[0]["placement"]) == (
        "中国教育报", "national", "headline",
    )  # fmt: skip
    assert adopted[0]["leader_instruction"] is True


async def test_cases_waiting_too_long_are_flagged_overdue(review: RunningService) -> None:
    client = review.client
    previous = await replace_config(client, {"overdue_hours": {"school": 0.0003}})
    try:
        story_id = await submit(story_event("dh-syxx"))
        await waiting_case(client, SCHOOL, story_id)

        async def listed() -> bool:
            overdue = await every_page(client, "/cases/overdue", COUNTY)
            return any(c["story_id"] == story_id for c in overdue)

        await eventually(listed, what="the case flagged overdue")

        def gauge() -> float:
            return (
                REGISTRY.get_sample_value("citydesk_review_cases_overdue", {"level": "school"}) or 0
            )

        await eventually(lambda: gauge() >= 1, what="the overdue gauge")
    finally:
        await client.put("/config", json=previous, headers=ADMIN)
    other = await every_page(client, "/cases/overdue", OTHER_COUNTY)
    assert all(c["story_id"] != story_id for c in other)


# ---- the whole life of a story ------------------------------------------------------
async def test_the_audit_trail_keeps_every_step_of_a_story(review: RunningService) -> None:
    client = review.client
    story_id = await submit(story_event("dh-syxx", major=True))
    first = await waiting_case(client, SCHOOL, story_id)
    await decide(client, SCHOOL, first, "return", comment="标题太长")
    await submit(story_event("dh-syxx", story_id=story_id, version=2, major=True))
    await approve(client, SCHOOL, await waiting_case(client, SCHOOL, story_id, 2))
    await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id, 2))
    flag = ev.OpinionFlaggedEvent.build(
        ev.OpinionFlagged(
            kind=ev.FlagKind.STORY_SCREENING, story_id=story_id, severity=ev.Severity.YELLOW,
            score=0.6, topic="fees", flagged_at=ev.utcnow(),
        ),
        producer="sentiment", county="dh",
    )  # fmt: skip
    await produce("opinion.flagged", flag.model_dump_json().encode(), key=story_id.encode())

    async def held() -> dict[str, Any] | None:
        case = await waiting_case(client, CITY, story_id, 2)
        return case if case["screening"] else None

    case = await eventually(held, what="the screening result")
    lifted = await client.post(
        f"/cases/{case['case_id']}/override",
        json={"reason": "收费标准经物价部门核准"},
        headers=CITY,
    )
    assert lifted.status_code == 200
    await approve(client, CITY, case)
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    scheduled = await client.post(
        f"/stories/{story_id}/schedule", json={"publish_at": later}, headers=CITY
    )
    assert scheduled.status_code == 200, scheduled.text
    await approve(client, LEADER, await waiting_case(client, LEADER, story_id, 2))
    await eventually(lambda: in_feed(client, story_id), what="publication")
    adoption = {"outlet": "江城日报", "level": "city", "date": date.today().isoformat(),
                "link": "https://example.org/jcrb/7"}  # fmt: skip
    assert (await client.post(f"/stories/{story_id}/adoptions", json=adoption,
                              headers=CITY)).status_code == 201  # fmt: skip
    withdrawn = await client.post(
        f"/stories/{story_id}/withdraw", json={"reason": "数据有误，撤稿更正"}, headers=CITY
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert not await in_feed(client, story_id)
    assert await in_feed(client, story_id, state="withdrawn")

    trail = await every_page(client, f"/stories/{story_id}/audit", SCHOOL)
    steps = [(e["version"], e["action"], e["level"]) for e in trail]
    assert steps == [
        (1, "submitted", None),
        (1, "returned", "school"),
        (1, "superseded", "school"),
        (2, "submitted", None),
        (2, "approved", "school"),
        (2, "approved", "county"),
        (2, "overridden", "city"),
        (2, "approved", "city"),
        (2, "scheduled", None),
        (2, "approved", "leader"),
        (2, "published", None),
        (2, "adopted", None),
        (2, "withdrawn", None),
    ]
    returned = trail[1]
    assert (returned["who"], returned["role"], returned["unit"]) == (
        "head-dh-syxx", "reviewer_school", "dh-syxx",
    )  # fmt: skip
    assert returned["comment"] == "标题太长" and returned["at"]
    assert trail[-1]["comment"] == "数据有误，撤稿更正"
    published = await events_for("story.published", story_id, 3)
    assert [p["kind"] for p in published] == ["channel", "adoption", "withdrawal"]
    assert published[-1]["reason"] == "数据有误，撤稿更正"
    again = await client.post(
        f"/stories/{story_id}/withdraw", json={"reason": "再次撤稿，重复操作"}, headers=CITY
    )
    assert again.status_code == 409


# ---- outbound safety ----------------------------------------------------------------
async def test_a_webhook_inside_the_network_is_refused_unless_allowed(
    review: RunningService,
) -> None:
    client = review.client
    current = (await client.get("/config", headers=ADMIN)).json()
    secret = "a-long-shared-webhook-secret"

    async def put_hook(url: str) -> httpx.Response:
        hooks = [{"name": "probe", "url": url, "secret": secret}]
        body = {**current, "publication": {**current["publication"], "webhooks": hooks}}
        return await client.put("/config", json=body, headers=ADMIN)

    metadata = await put_hook("http://169.254.169.254/latest/meta-data/")
    assert metadata.status_code == 422 and metadata.json()["code"] == "unsafe_target"
    assert "元数据" in metadata.json()["message"]
    settings = review.app.state.review.settings
    allowed = settings.review_webhook_allow
    settings.review_webhook_allow = []  # a deployment that allows nothing inside
    try:
        loopback = await put_hook("http://127.0.0.1:8103/config")
        assert loopback.status_code == 422 and loopback.json()["code"] == "unsafe_target"
        private = await put_hook("http://10.1.2.3/hook")
        assert private.status_code == 422
    finally:
        settings.review_webhook_allow = allowed
    assert (await put_hook("http://127.0.0.1:8103/hook")).status_code == 200  # allow-listed
    restored = await client.put("/config", json=current, headers=ADMIN)
    assert restored.status_code == 200, restored.text


async def test_replicas_on_one_publish_queue_send_each_delivery_once(
    review: RunningService,
) -> None:
    """The service's own workers and a second replica's, all on one queue, against a
    slow receiver: every delivery reaches it exactly once."""
    client = review.client
    runtime = review.app.state.review
    secret = "a-long-shared-webhook-secret"
    async with FlakyReceiver(failures=0, delay=0.3) as receiver:
        previous = await replace_config(client, {"publication": {
            "webhooks": [{"name": "county-portal", "url": receiver.url, "secret": secret}],
        }})  # fmt: skip
        stop = asyncio.Event()
        idle: set[int] = set()  # replicas that found nothing to send since last cleared

        async def other_replica(number: int) -> None:
            while not stop.is_set():
                if not await delivery.deliver_next(runtime=runtime, worker=f"replica-b-{number}"):
                    idle.add(number)
                    await asyncio.sleep(0.01)

        replica = [asyncio.create_task(other_replica(n)) for n in range(4)]
        try:
            stories = [await submit(story_event("dh", title="同队列多副本推送")) for _ in range(4)]
            for story_id in stories:
                await approve(client, COUNTY, await waiting_case(client, COUNTY, story_id))
                await approve(client, CITY, await waiting_case(client, CITY, story_id))

            async def portal_row(story_id: str) -> dict[str, Any] | None:
                # a sender records the success after the receiver's answer, which comes
                # after the receiver has logged the request: wait for the record itself
                rows = await _publications(client, story_id, "success")
                return next((p for p in rows if p["channel"] == "county-portal"), None)

            for story_id in stories:
                await eventually(lambda s=story_id: portal_row(s), what="delivered")

            def sent_for(story_id: str) -> int:
                return sum(1 for _, body, _ in receiver.requests if story_id.encode() in body)

            await eventually(lambda: all(sent_for(s) >= 1 for s in stories), what="all sent")
            # once every replica has since finished a send and found nothing more, no
            # second send of any of them is on its way
            idle.clear()
            await eventually(lambda: len(idle) == len(replica), what="every replica idle")
        finally:
            stop.set()
            await asyncio.gather(*replica)
            await client.put("/config", json=previous, headers=ADMIN)
    assert [sent_for(s) for s in stories] == [1, 1, 1, 1]
    ids = [h["webhook-id"] for h, _, _ in receiver.requests]
    assert len(ids) == len(set(ids))
    for story_id in stories:
        portal = await portal_row(story_id)
        assert portal is not None
        assert (portal["attempts"], portal["last_status"]) == (1, 200)


# ---- pages --------------------------------------------------------------------------
PAGED_SCHOOL = "lj-dezhx"  # no other test files stories for this school


async def test_a_reviewer_pages_through_a_long_queue_without_a_duplicate_or_a_gap(
    review: RunningService,
) -> None:
    """Cases as the service opens them (its own document builder), many sharing one
    waiting time so that only the id breaks the tie, paged through in small pages."""
    runtime = review.app.state.review
    unit = ORG.unit(PAGED_SCHOOL)
    route = cases.route_for(runtime.config, unit.type, False)
    now = datetime.now(UTC)
    documents = []
    for index in range(3000):
        event = story_event(PAGED_SCHOOL)
        at = now - timedelta(minutes=index % 7)  # seven waiting times shared by many
        documents.append(
            cases.case_document(event, unit=unit, route=route, case_id=uuid.uuid4().hex, now=at)
        )
    await runtime.db.cases.insert_many(documents)
    try:
        reviewer = auth(PAGED_SCHOOL, "reviewer_school")
        seen = await every_page(review.client, "/queue", reviewer, limit=97)
        expected = sorted(documents, key=lambda d: (d["waiting_since"], d["_id"]))
        assert [c["case_id"] for c in seen] == [d["_id"] for d in expected]
        bad = await review.client.get("/queue", headers=reviewer, params={"cursor": "bm90IG1pbmU"})
        assert bad.status_code == 422 and bad.json()["code"] == "bad_cursor"
        too_many = await review.client.get("/queue", headers=reviewer, params={"limit": 201})
        assert too_many.status_code == 422
    finally:
        await runtime.db.cases.delete_many({"unit_path.unit": PAGED_SCHOOL})


async def test_audit_steps_stored_before_actions_existed_are_read(review: RunningService) -> None:
    client = review.client
    story_id, case = await school_case(client)
    await review.runtime.db.audit.insert_one(
        {
            "story_id": story_id, "case_id": case["case_id"], "version": 1,
            "at": datetime.now(UTC) + timedelta(seconds=1), "who": "system",
            "name": "CityDesk", "role": "system", "unit": "jc", "level": None,
            "decision": "published", "comment": None, "channel": "feed",
        }
    )  # fmt: skip
    trail = await every_page(client, f"/stories/{story_id}/audit", SCHOOL)
    assert [(e["action"], e["decision"]) for e in trail] == [
        ("submitted", "submitted"),
        ("published", "published"),
    ]
    stored = await review.runtime.db.audit.find_one({"story_id": story_id, "action": "submitted"})
    assert stored is not None and stored["decision"] is None  # not a review decision


async def test_the_first_page_of_every_list_is_read_through_an_index(
    review: RunningService,
) -> None:
    """The filters the list routes send (built by the service's own functions), as the
    server plans them. A later page adds equalities and one range on the sort keys to
    the same filter (``paging.resume_steps``), read through the same index."""
    db = review.runtime.db
    school = Principal(
        sub="s", name="校审", unit="dh-syxx", roles=frozenset({Role.REVIEWER_SCHOOL})
    )
    county = Principal(sub="c", name="县审", unit="dh", roles=frozenset({Role.REVIEWER_COUNTY}))
    city = Principal(sub="j", name="市审", unit="jc", roles=frozenset({Role.REVIEWER_CITY}))
    oldest = [("waiting_since", 1), ("_id", 1)]
    newest = [("created_at", -1), ("_id", 1)]
    lists = {
        "school queue": ("cases", *access.queue_filters(school, ORG), oldest),
        "county queue": ("cases", *access.queue_filters(county, ORG), oldest),
        "city queue": ("cases", *access.queue_filters(city, ORG), oldest),
        "county overdue": (
            "cases", {"state": "open", "overdue": True, **access.scope_filter(county, ORG)}, oldest,
        ),
        "city overdue": ("cases", {"state": "open", "overdue": True}, oldest),
        "audit trail": ("audit", {"story_id": "s-1"}, [("at", 1), ("_id", 1)]),
        "failed deliveries": ("publications", {"state": "failed"}, newest),
        "a story's deliveries": ("publications", {"story_id": "s-1"}, newest),
        "feed": ("feed", {"state": "published"}, [("published_at", -1), ("_id", 1)]),
        "a story's adoptions": ("adoptions", {"story_id": "s-1"}, [("recorded_at", 1), ("_id", 1)]),
    }  # fmt: skip
    for name, (collection, where, sort) in lists.items():
        explained = await db.command(
            "explain", {"find": collection, "filter": where, "sort": dict(sort), "limit": 51}
        )
        used = index_of(explained["queryPlanner"]["winningPlan"])
        assert used is not None, f"{name}: {explained['queryPlanner']['winningPlan']}"
