"""Copy flags over the real stack, with texts from the hand-written evaluation set: a
forward with the school's name and date swapped and a paragraph lifted into a longer
story are flagged with the matching passages and a reason in Chinese; the same theme in
a school's own words is not; a registered standard notice is marked republication. A
story submitted through another replica reaches this one's index by the change stream,
and fingerprints of earlier formats are backfilled once and then found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from citydesk.bench import copies as evaluation_set
from services.submission import copies, copybackfill
from services.submission.copytext import TextPrint
from shared import events as ev
from shared.auth import Role
from tests.submission.conftest import draft, metric, publish, submitted_events
from tests.support import RunningService, auth, eventually, run_service

pytestmark = pytest.mark.usefixtures("stack_env")

CITY_REVIEWER = auth("jc", Role.REVIEWER_CITY, sub="city-office")


def correspondent(unit: str) -> dict[str, str]:
    return auth(unit, Role.CORRESPONDENT, sub=f"corr-{unit}")


async def submit(service: RunningService, unit: str, body: str) -> dict[str, Any]:
    created = await service.client.post(
        "/stories", json=draft(body=body), headers=correspondent(unit)
    )
    assert created.status_code == 201, created.text
    submitted = await service.client.post(
        f"/stories/{created.json()['id']}/submit", headers=correspondent(unit)
    )
    assert submitted.status_code == 200, submitted.text
    return submitted.json()


def story_texts(group: str) -> dict[str, str]:
    return evaluation_set.group_texts(group)


async def test_a_forward_with_the_school_name_and_date_swapped_is_flagged_with_its_passages(
    submission: RunningService,
) -> None:
    texts = story_texts("禁毒教育")  # 清河县实验小学's story, forwarded by 东湖区第一小学
    before = metric("citydesk_submission_flags_total", flag="possible_copy")
    original = await submit(submission, "qh-syxx", texts["S"])
    forward = await submit(submission, "dh-dyxx", texts["F"])

    assert original["flags"]["possible_copy"] is None
    flag = forward["flags"]["possible_copy"]
    assert flag["story_id"] == original["id"] and flag["unit"] == "qh-syxx"
    assert flag["unit_name"] == "清河县实验小学"
    assert flag["ours_in_theirs"] == 1.0 and flag["similarity"] > 0.9
    assert flag["reason"].startswith("疑似直接转发：与清河县实验小学")
    assert "校名、日期、人名、数字不计" in flag["reason"]
    # every passage is paired with the original's, offsets into both bodies
    assert len(flag["passages"]) == 5
    for passage in flag["passages"]:
        assert texts["F"][passage["ours_start"] : passage["ours_end"]] == passage["ours_text"]
        assert texts["S"][passage["theirs_start"] : passage["theirs_end"]] == passage["theirs_text"]
    [police] = [p for p in flag["passages"] if "冯涛警官" in p["ours_text"]]
    assert police["theirs_text"].startswith("黄磊警官通过图片、视频和毒品仿真模型")

    [event] = await submitted_events(forward["id"])
    announced = event["payload"]["possible_copy"]
    assert announced["story_id"] == original["id"]
    assert announced["containment"] == flag["containment"]
    assert announced["reason"] == flag["reason"]
    assert metric("citydesk_submission_flags_total", flag="possible_copy") == before + 1


async def test_a_paragraph_lifted_into_a_longer_story_is_flagged(
    submission: RunningService,
) -> None:
    texts = story_texts("科技节")
    original = await submit(submission, "nl-dezhx", texts["S"])
    longer = await submit(submission, "nl-sqz-zxx", texts["R"])

    flag = longer["flags"]["possible_copy"]
    assert flag is not None and flag["story_id"] == original["id"]
    assert flag["similarity"] < 0.45  # the whole texts are not alike
    assert flag["theirs_in_ours"] >= 0.45
    assert flag["reason"].startswith("疑似")
    lifted = " ".join(passage["ours_text"] for passage in flag["passages"])
    assert "机器人社团的同学们进行了编程机器人表演" in lifted


async def test_the_same_theme_in_a_schools_own_words_is_not_flagged(
    submission: RunningService,
) -> None:
    texts = story_texts("双减课后服务")
    await submit(submission, "lj-dyxx", texts["S"])
    own_words = await submit(submission, "qs-syxx", texts["O"])
    independent = await submit(submission, "lj", texts["I"])
    assert own_words["flags"]["possible_copy"] is None
    assert independent["flags"]["possible_copy"] is None


async def test_a_registered_standard_notice_is_republication_not_a_copy(
    submission: RunningService,
) -> None:
    group = evaluation_set.group("规定文本反诈宣传")
    notice, texts = group["standard"][0], group["texts"]
    request = {"title": "防范电信网络诈骗宣传口径", "body": notice, "campaign": "反诈宣传"}

    refused = await submission.client.post(
        "/standard-texts", json=request, headers=correspondent("dh-syxx")
    )
    assert refused.status_code == 403
    county = auth("dh", Role.REVIEWER_CITY, sub="county-with-city-role")
    not_city = await submission.client.post("/standard-texts", json=request, headers=county)
    assert not_city.status_code == 403
    assert not_city.json()["code"] == "city_office_only"
    assert "市教育局" in not_city.json()["message"]
    registered = await submission.client.post(
        "/standard-texts", json=request, headers=CITY_REVIEWER
    )
    assert registered.status_code == 201, registered.text
    listed = await submission.client.get("/standard-texts", headers=correspondent("dh-syxx"))
    assert registered.json()["id"] in [text["id"] for text in listed.json()]

    first = await submit(submission, "dh-zyzx", texts["A"])
    second = await submit(submission, "lj-zyzx", texts["B"])
    assert second["flags"]["possible_copy"] is None
    republication = second["flags"]["republication"]
    assert republication["standard_text_id"] == registered.json()["id"]
    assert republication["share"] >= 0.6
    assert republication["reason"].startswith("转载规定文本")
    assert first["flags"]["republication"] is not None

    # a school that copies another's own words around the notice is still flagged
    copied = await submit(submission, "xs-zyzx", texts["X"])
    assert copied["flags"]["possible_copy"]["story_id"] == first["id"]

    retired = await submission.client.delete(
        f"/standard-texts/{registered.json()['id']}", headers=CITY_REVIEWER
    )
    assert retired.status_code == 204
    again = await submission.client.delete(
        f"/standard-texts/{registered.json()['id']}", headers=CITY_REVIEWER
    )
    assert again.status_code == 404
    assert again.json()["code"] == "standard_text_not_found"


async def test_a_published_story_stays_a_source_after_the_submission_window(
    submission: RunningService,
) -> None:
    texts = story_texts("校园足球联赛")
    original = await submit(submission, "nl-dyxx", texts["S"])
    # the original was submitted half a year ago: outside the 90-day window
    long_ago = datetime.now(UTC) - timedelta(days=180)
    await submission.runtime.db[copies.FINGERPRINTS].update_one(
        {"story_id": original["id"]},
        {"$set": {"submitted_at": long_ago, "first_submitted_at": long_ago}},
    )
    unpublished = await submit(submission, "qs-syxx", texts["F"])
    assert unpublished["flags"]["possible_copy"] is None

    published = ev.StoryPublishedEvent.build(
        ev.StoryPublished(
            story_id=original["id"], version=1, unit_path=ev.UnitPath(**original["unit_path"]),
            kind=ev.PublicationKind.CHANNEL, channel="门户网站",
            outlet_level=ev.OutletLevel.BUREAU, published_at=long_ago + timedelta(days=3),
        ),
        producer="review", county="nl", unit="nl-dyxx",
    )  # fmt: skip
    await publish("story.published", published)

    async def recorded() -> bool:
        found = await submission.runtime.db[copies.FINGERPRINTS].find_one(
            {"story_id": original["id"]}
        )
        return found is not None and found["published_at"] is not None

    await eventually(recorded, what="the publication on the fingerprint")
    forward = await submit(submission, "qs-syxx", texts["F"])
    flag = forward["flags"]["possible_copy"]
    assert flag["story_id"] == original["id"] and flag["published"] is True
    assert "发布的《" in flag["reason"]


async def test_a_story_submitted_through_another_replica_is_found_by_this_one(
    submission: RunningService,
) -> None:
    texts = story_texts("秋季运动会")
    database = submission.runtime.settings.database_name
    async with run_service("submission", mongo_database=database, run_consumers=False) as other:
        original = await submit(other, "qh-syxx", texts["S"])
        ours = await copies.index_of(submission.runtime.db)

        async def arrived() -> bool:
            return f"{original['id']}:1" in ours

        await eventually(arrived, timeout=5, what="the other replica's story in our index")
    forward = await submit(submission, "dh-dyxx", texts["F"])
    assert forward["flags"]["possible_copy"]["story_id"] == original["id"]


async def _legacy_story(
    service: RunningService, story_id: str, unit: str, body: str, fingerprint: dict[str, Any]
) -> None:
    at = datetime.now(UTC) - timedelta(days=2)
    db = service.runtime.db
    await db[copies.VERSIONS].insert_one(
        {"_id": f"{story_id}:1", "story_id": story_id, "version": 1, "title": "旧稿",
         "body": body, "submitted_at": at}
    )  # fmt: skip
    await db[copies.FINGERPRINTS].insert_one(
        {"_id": f"{story_id}:1", "story_id": story_id, "version": 1, "unit": unit,
         "submitted_at": at, "first_submitted_at": at, **fingerprint}
    )  # fmt: skip


async def test_fingerprints_of_earlier_formats_are_backfilled_once_and_then_found(
    submission: RunningService,
) -> None:
    runtime = submission.runtime
    normaliser = copies.normaliser_for(runtime.org)
    bands_era = story_texts("学雷锋志愿服务")  # format 1: MinHash bands, no passages
    keys_era = story_texts("家访留守儿童关爱")  # format 2: an indexed array of keys
    text = TextPrint.of(keys_era["S"], normaliser)
    await _legacy_story(
        submission, "legacy-bands", "qh-syxx", bands_era["S"],
        {"bands": ["00ab12"], "signature": [1, 2, 3]},
    )  # fmt: skip
    await _legacy_story(
        submission, "legacy-keys", "nl-dyxx", keys_era["S"],
        {"keys": text.keys.view(np.int64).tolist(), "passages": text.stored_passages(),
         "published_at": None},
    )  # fmt: skip
    stale = ["legacy-bands:1", "legacy-keys:1"]

    # bounded: one at a time when asked so
    assert await copybackfill.backfill(runtime.db, normaliser=normaliser, ids=stale, limit=1) == (
        1,
        1,
    )
    # at start-up, whatever the index load found of an earlier format
    await copies.ensure_indexes(runtime.db, org=runtime.org)
    for doc in await runtime.db[copies.FINGERPRINTS].find({"_id": {"$in": stale}}).to_list():
        assert doc["format"] == copies.FORMAT and doc["key_bytes"] and doc["passages"]
        assert not {"keys", "bands", "signature"} & set(doc)
    # idempotent: nothing is left to convert, and nothing is written again
    assert await copybackfill.backfill(runtime.db, normaliser=normaliser, ids=stale) == (0, 0)
    assert await copybackfill.backfill_all(runtime.db, normaliser=normaliser) == 0

    for original, texts in (("legacy-bands", bands_era), ("legacy-keys", keys_era)):
        forward = await submit(submission, "dh-dyxx", texts["F"])
        flag = forward["flags"]["possible_copy"]
        assert flag is not None and flag["story_id"] == original, original
        assert all(
            texts["S"][p["theirs_start"] : p["theirs_end"]] == p["theirs_text"]
            for p in flag["passages"]
        )
