"""A story's whole life across the five running services."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import openpyxl
import pytest

from citydesk.processes import ServiceProcesses
from shared import events as ev
from shared import topics as tp
from shared.auth import Role
from tests.e2e import flows
from tests.support import auth, eventually, produce

SCHOOL, COUNTY = "bc-syxx", "bc"


async def story_entries(
    http: httpx.AsyncClient, city: ServiceProcesses, unit: str, story_id: str, kinds: set[str]
) -> list[dict[str, Any]] | None:
    entries = [
        e
        for e in (await flows.ledger(http, city, unit))["entries"]
        if e.get("story_id") == story_id
    ]
    return entries if kinds <= {e["kind"] for e in entries} else None


async def test_a_story_goes_from_submission_through_three_reviews_to_adoption_and_the_ranking(
    city: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        media_id = await flows.upload_photo(http, city, SCHOOL, seed=7001)
        story_id = await flows.submit_story(
            http, city, unit=SCHOOL, media_ids=[media_id],
            title="北川县实验小学举行“红领巾心向党”主题队日活动",
            body="十一月，北川县实验小学举行“红领巾心向党”主题队日活动，全校少先队员参加。"
            "活动通过重温入队誓词、讲述英雄故事、合唱红色歌曲等形式，引导队员坚定理想信念。",
        )  # fmt: skip
        await flows.approve_through_every_level(
            http, city, story_id=story_id, school=SCHOOL, county=COUNTY
        )

        async def published() -> bool:
            feed = (await http.get(f"{city.url('review')}/feed")).json()
            return any(item["story_id"] == story_id for item in feed["items"])

        await eventually(published, what="the story on the bureau's public feed")
        adoption = await http.post(
            f"{city.url('review')}/stories/{story_id}/adoptions",
            headers=auth("jc", Role.REVIEWER_CITY),
            json={
                "outlet": "中国教育报", "level": "national", "placement": "headline",
                "date": flows.today().isoformat(), "link": "https://www.jyb.cn/e2e",
            },
        )  # fmt: skip
        assert adoption.status_code == 201, adoption.text

        # the correspondent sees where the story stands
        async def shown_as_published() -> bool:
            story = await http.get(
                f"{city.url('submission')}/stories/{story_id}",
                headers=auth(SCHOOL, Role.CORRESPONDENT),
            )
            return story.json()["status"] == "published"

        await eventually(shown_as_published, what="the correspondent sees it published")

        kinds = {"submitted", "approved", "publication", "media_bonus", "adoption"}
        entries = await eventually(
            lambda: story_entries(http, city, SCHOOL, story_id, kinds),
            what="every scoring entry of the story", timeout=60,
        )  # fmt: skip
        points = {e["kind"]: e["points"] for e in entries}
        # rules.yaml: submitted 1, approved 2, the bureau's feed 1 with 0.5 for its photo,
        # a national headline adoption 30 x 2
        assert points == {
            "submitted": 1, "approved": 2, "publication": 1, "media_bonus": 0.5, "adoption": 60
        }  # fmt: skip

        explained = await flows.ledger(http, city, SCHOOL)
        table = await flows.ranking(
            http, city, period=flows.this_month(), scope="schools", county=COUNTY
        )
        row = flows.row_of(table, SCHOOL)
        assert row["points"] == explained["points"]
        assert row["adopted"] >= 1 and row["submitted"] >= 1

        bulletin = await http.get(
            f"{city.url('scoring')}/bulletins/{flows.this_month()}.xlsx",
            headers=auth("jc", Role.ADMIN),
            params={"scope": "schools", "county": COUNTY},
        )
        assert bulletin.status_code == 200, bulletin.text
        book = openpyxl.load_workbook(io.BytesIO(bulletin.content))
        sheet = book.worksheets[0]
        rows = [[cell.value for cell in r] for r in sheet.iter_rows()]
        ours = [r for r in rows if SCHOOL in r or "北川县实验小学" in r]
        assert ours, rows[:3]
        assert row["points"] in ours[0]


async def test_a_county_system_and_a_correspondent_reach_the_same_result(
    city: ServiceProcesses,
) -> None:
    """The same kind of story, once typed in by a correspondent and once sent by the
    county's portal over Kafka, is reviewed and scored alike."""
    via_api, via_intake = "qs-dyxx", "qs-dezx"
    body = (
        "青石县{school}开展冬季安全教育主题班会，班主任结合寒假特点讲解防火、防冻、防溺水和交通安全知识，"
        "学生们认真聆听并签订安全承诺书，家长通过家长群同步学习安全提示，家校携手守护学生平安。"
    )
    async with httpx.AsyncClient(timeout=30) as http:
        api_story = await flows.submit_story(
            http, city, unit=via_api, title="青石县第一小学开展冬季安全教育",
            body=body.format(school="第一小学"),
        )  # fmt: skip
        external_id = f"qs-portal-{api_story[:8]}"
        event = ev.IntakeStoryEvent.build(
            ev.IntakeStory(
                external_id=external_id, unit=via_intake, title="青石县第二小学开展冬季安全教育",
                body=body.format(school="第二小学"), category="工作动态",
                event_date=flows.today(), author="qs-portal",
            ),
            producer="qs-portal", county="qs", unit=via_intake,
        )  # fmt: skip
        await produce(
            tp.INTAKE_STORIES.name,
            event.model_dump_json().encode(),
            key=tp.INTAKE_STORIES.key(event),
        )

        async def intake_story() -> str | None:
            listed = await http.get(
                f"{city.url('submission')}/stories",
                headers=auth("qs", Role.REVIEWER_COUNTY), params={"unit": via_intake},
            )  # fmt: skip
            for item in listed.json()["items"]:
                if item.get("external_id") == external_id or item["title"].startswith(
                    "青石县第二小学开展冬季"
                ):
                    return str(item["id"])
            return None

        intake_id = await eventually(intake_story, what="the portal's story filed")
        for story_id, school in ((api_story, via_api), (intake_id, via_intake)):
            await flows.approve_through_every_level(
                http, city, story_id=story_id, school=school, county="qs"
            )
        kinds = {"submitted", "approved", "publication"}
        api_entries = await eventually(
            lambda: story_entries(http, city, via_api, api_story, kinds),
            what="api scored",
            timeout=60,
        )
        intake_entries = await eventually(
            lambda: story_entries(http, city, via_intake, intake_id, kinds), what="intake scored",
            timeout=60,
        )  # fmt: skip

        def shape(entries: list[dict[str, Any]]) -> list[tuple[str, float]]:
            return sorted((e["kind"], e["points"]) for e in entries)

        assert shape(api_entries) == shape(intake_entries)
        for story_id in (api_story, intake_id):
            audit = await http.get(
                f"{city.url('review')}/stories/{story_id}/audit", headers=auth("jc", Role.ADMIN)
            )
            decisions = [
                (a["level"], a["decision"]) for a in audit.json()["items"] if a.get("level")
            ]
            assert ("school", "approved") in decisions and ("city", "approved") in decisions


@pytest.mark.slow
async def test_a_negative_burst_is_one_incident_one_alert_an_escalation_and_a_determined_veto(
    city: ServiceProcesses,
) -> None:
    # a school no other test writes opinion items about: an earlier incident there would
    # take these items in, with the deadline it was given before this test's config
    school, county = "lj-jk-zxx", "lj"
    async with httpx.AsyncClient(timeout=30) as http:
        config = (
            await http.get(f"{city.url('sentiment')}/config", headers=auth("jc", Role.ADMIN))
        ).json()
        config["alerts"]["deadline_seconds"] = dict.fromkeys(
            config["alerts"]["deadline_seconds"], 3
        )
        put = await http.put(
            f"{city.url('sentiment')}/config", headers=auth("jc", Role.ADMIN), json=config
        )
        assert put.status_code == 200, put.text
        posts = [
            "临江市江口镇中心学校食堂饭菜变质，孩子吃完呕吐腹泻，已经送医院了！",
            "临江市江口镇中心学校又出事了，十几个学生食物中毒住院，学校不回应。",
            "临江市江口镇中心学校食堂卫生太差，饭菜有异味，家长要求彻查。",
            "我家孩子在临江市江口镇中心学校吃午饭后肚子疼，食堂必须给个说法。",
            "临江市江口镇中心学校食物中毒事件上了热搜，监管部门在哪里？",
        ]
        marker = flows.today().strftime("%Y%m%d") + str(id(posts))[-6:]
        for index in range(10):
            source = "hot_search" if index == 9 else "微博"
            event = ev.IntakeOpinionEvent.build(
                ev.IntakeOpinion(
                    item_id=f"burst-{marker}-{index}", source=source, school=school,
                    text=posts[index % len(posts)], published_at=ev.utcnow(),
                ),
                producer="lj-monitor", county=county, unit=school,
            )  # fmt: skip
            await produce(
                tp.INTAKE_OPINIONS.name, event.model_dump_json().encode(),
                key=tp.INTAKE_OPINIONS.key(event),
            )  # fmt: skip
            await asyncio.sleep(
                0.3
            )  # a feed trickles: the items reach the service in several batches

        async def alerts() -> list[dict[str, Any]]:
            listed = await http.get(
                f"{city.url('sentiment')}/alerts", headers=auth(county, Role.OPINION_OFFICER)
            )
            return [a for a in listed.json() if a["school"] == school]

        seen: list[list[dict[str, Any]]] = [[]]

        async def escalated() -> list[dict[str, Any]] | None:
            found = seen[0] = await alerts()
            ok = (
                len(found) == 1
                and found[0]["item_count"] >= 10
                and found[0]["owner_level"] != "school"
            )
            return found if ok else None

        try:
            found = await eventually(escalated, what="one grown alert, escalated", timeout=60)
        except AssertionError:
            summary = [
                (a["item_count"], a["owner_level"], a["severity"], a["state"]) for a in seen[0]
            ]
            raise AssertionError(f"alerts at {school}: {summary}") from None
        assert found[0]["serious"] is True
        incidents = await http.get(
            f"{city.url('sentiment')}/incidents", headers=auth(county, Role.OPINION_OFFICER)
        )
        ours = [i for i in incidents.json() if i["school"] == school]
        assert len(ours) == 1
        period = f"year:{flows.today():%Y}"
        city_officer = auth("jc", Role.OPINION_OFFICER, sub="city-officer")

        async def candidate() -> bool:
            listed = await http.get(
                f"{city.url('scoring')}/veto-candidates", headers=city_officer,
                params={"period": period},
            )  # fmt: skip
            return any(c["incident_id"] == ours[0]["id"] for c in listed.json())

        # the machine's verdict only proposes the veto: the city office decides
        await eventually(candidate, what="the incident among the veto candidates", timeout=60)
        table = await flows.ranking(http, city, period=period, scope="schools", county=county)
        assert flows.row_of(table, school)["veto"] is None
        determined = await http.post(
            f"{city.url('sentiment')}/incidents/{ours[0]['id']}/determination",
            headers=city_officer, json={"reason": "食物中毒经卫生部门确认，上了热搜，影响恶劣"},
        )  # fmt: skip
        assert determined.status_code == 200, determined.text

        async def vetoed() -> dict[str, Any] | None:
            table = await flows.ranking(
                http, city, period=f"year:{flows.today():%Y}", scope="schools", county=county
            )
            row = flows.row_of(table, school)
            return row if row.get("veto") else None

        row = await eventually(vetoed, what="the veto in the yearly appraisal", timeout=60)
        assert row["eligible"] is False
        assert row["veto"]["decided_by"] == "city-officer" and "热搜" in row["veto"]["reason"]
