"""The console in a real headless browser, over all five services running as processes:
a correspondent submits with a photo and revises what came back, a reviewer at each level
decides, the city office records an adoption and sees the points in the ranking, an
opinion officer acknowledges an alert, and nobody opens a case outside their scope."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from playwright.async_api import Page, expect

from shared import events as ev
from tests.console.conftest import Console, SignIn
from tests.support import produce

pytestmark = pytest.mark.usefixtures("stack_env")

SCHOOL = "dh-dyxx"  # 东湖区第一小学, in county dh
OTHER_COUNTY = "xs"
STORY_BODY = (
    "十一月二十日下午，东湖区第一小学举行秋季科技节，全校一千二百名学生参与了机器人搭建、"
    "航模展示和科学小实验等二十余项活动，家长志愿者和社区科技辅导员到场指导。"
)
journey: dict[str, Any] = {}


async def shot(page: Page, console: Console, name: str) -> None:
    await page.screenshot(path=str(console.screenshots / f"{name}.png"), full_page=True)


async def reload_until(page: Page, path: str, selector: str, *, timeout: float = 40) -> None:
    """Open ``path`` again until ``selector`` is on it (events take a moment to arrive)."""
    deadline = time.monotonic() + timeout
    while True:
        await page.goto(path)
        if await page.locator(selector).count():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never appeared on {path}")
        await asyncio.sleep(0.5)


def photo(tmp: Path) -> Path:
    image = Image.new("RGB", (800, 600))
    for x in range(0, 800, 40):
        for y in range(0, 600, 40):
            image.paste((x % 255, y % 255, 160), (x, y, x + 40, y + 40))
    path = tmp / "keji-jie.jpg"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return path


async def school_points(page: Page) -> float:
    await page.goto("/rankings?kind=month&scope=schools&county=dh")
    return float(await page.locator(f"tr[data-unit='{SCHOOL}'] td.points").inner_text())


async def decide_in_queue(page: Page, console: Console, story_id: str, decision: str, comment: str,
                          name: str) -> str:  # fmt: skip
    """Find the story in my queue, open it and decide; returns the case id."""
    card = f"article.case[data-story='{story_id}']"
    await reload_until(page, "/review", card)
    await expect(page.locator(card).locator(".flags")).to_contain_text("报送滞后 10 天")
    case_id = await page.locator(card).first.get_attribute("data-case")
    await shot(page, console, f"queue-{name}")
    await page.locator(card).get_by_role("link", name="审核", exact=True).click()
    await expect(page.locator("form.decision")).to_be_visible()
    await shot(page, console, f"case-{name}")
    await page.fill("#comment", comment)
    await page.click(f"form.decision button[value='{decision}']")
    await expect(page.locator(".notice")).to_have_text("审核意见已提交。")
    assert case_id
    return case_id


async def test_correspondent_submits_a_story_with_a_photo(
    sign_in: SignIn, console: Console, tmp_path: Path
) -> None:
    page = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await shot(page, console, "home-correspondent")
    journey["points_before"] = await school_points(page)

    await page.goto("/stories/new")
    await page.set_input_files("fieldset.uploads input.picker", str(photo(tmp_path)))
    await expect(page.locator(".upload .state")).to_have_text("已上传", timeout=20_000)
    await expect(page.locator(".upload progress")).to_have_attribute("value", "100")
    await expect(page.locator(".thumbs figure img")).to_have_count(1)
    title = f"东湖区第一小学举办秋季科技节 {uuid.uuid4().hex[:6]}"
    await page.fill("#title", title)
    await page.fill("#body", STORY_BODY)
    await page.select_option("select[name=category]", "德育活动")
    # ten days after the event: past the 7-day rule, so reviewers see it flagged late
    event_day = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=10)
    await page.fill("input[name=event_date]", event_day.isoformat())
    await shot(page, console, "story-new")
    await page.click("form.story-form button[type=submit]")

    await expect(page.locator(".notice")).to_have_text("稿件已报送，等待审核。")
    await expect(page.locator("h1")).to_have_text(title)
    await expect(page.locator("article.story-body img.thumb")).to_have_count(1)
    journey["story_id"] = page.url.rsplit("/", 1)[-1].split("?")[0]
    journey["title"] = title

    await page.goto("/stories")
    row = page.locator(f"tr[data-story='{journey['story_id']}']")
    await expect(row).to_contain_text(title)
    await shot(page, console, "stories")


async def test_returned_story_is_revised_with_the_reviewers_comment_beside_it(
    sign_in: SignIn, console: Console
) -> None:
    story_id = journey["story_id"]
    reviewer = await sign_in(SCHOOL, "reviewer_school", sub="wang-chushen")
    comment = "请补充参与学生的年级分布和活动成效。"
    await decide_in_queue(reviewer, console, story_id, "return", comment, "school-return")
    await reviewer.goto("/review")
    await expect(reviewer.locator("body")).not_to_contain_text(journey["title"])

    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await reload_until(author, f"/stories/{story_id}", ".reviewer-comment")
    await expect(author.locator(".reviewer-comment")).to_have_text(comment)
    await expect(author.locator(".status").first).to_have_text("退回修改")
    await shot(author, console, "story-returned")
    await author.fill(
        "#body", STORY_BODY + "一至六年级均有学生参加，三个项目获评区级优秀科普活动。"
    )
    await author.click("form.story-form button[type=submit]")
    await expect(author.locator(".notice")).to_have_text("修改稿已重新报送。")
    await expect(author.locator("p.meta")).to_contain_text("第 2 版")


async def test_a_reviewer_at_each_level_approves_and_the_trail_shows_every_step(
    sign_in: SignIn, console: Console
) -> None:
    story_id = journey["story_id"]
    school = await sign_in(SCHOOL, "reviewer_school", sub="wang-chushen")
    await decide_in_queue(school, console, story_id, "approve", "同意报送。", "school")
    county = await sign_in("dh", "reviewer_county", sub="zhao-fushen")
    journey["county_case"] = await decide_in_queue(
        county, console, story_id, "approve", "内容属实，同意。", "county"
    )
    city = await sign_in("jc", "reviewer_city", sub="chen-zhongshen")
    await decide_in_queue(city, console, story_id, "approve", "终审通过。", "city")

    await city.goto(f"/stories/{story_id}/history")
    trail = city.locator("table.audit tbody")
    await expect(trail).to_contain_text("退回修改")
    await expect(trail).to_contain_text("终审（市局）")
    await shot(city, console, "history")


async def test_city_office_records_an_adoption_and_the_ranking_shows_the_new_points(
    sign_in: SignIn, console: Console
) -> None:
    story_id = journey["story_id"]
    office = await sign_in("jc", "reviewer_city", sub="chen-zhongshen")
    row = f"form.adoption[action='/office/stories/{story_id}/adoptions']"
    await reload_until(office, "/office", row)
    form = office.locator(row)
    await form.locator("input[name=outlet]").fill("江城日报")
    await form.locator("select[name=level]").select_option("city")
    await form.locator("input[name=link]").fill("https://news.example.org/keji-jie")
    await shot(office, console, "office")
    await form.get_by_role("button", name="登记").click()
    await expect(office.locator(".notice")).to_have_text("外部采用已登记。")

    deadline = time.monotonic() + 40
    while (points := await school_points(office)) <= journey["points_before"] + 3:
        assert time.monotonic() < deadline, f"points stayed at {points}"
        await asyncio.sleep(0.5)
    bar = office.locator("svg.chart g.bar[data-unit='东湖区第一小学']")
    await expect(bar).to_have_attribute("data-value", f"{points:g}")
    await shot(office, console, "rankings")

    async with office.expect_download() as download:
        await office.click("a[download]")
    saved = await (await download.value).path()
    with open(saved, "rb") as workbook:
        assert workbook.read(2) == b"PK"  # an XLSX is a zip


async def test_opinion_officer_acknowledges_an_alert(sign_in: SignIn, console: Console) -> None:
    school = _first_school(OTHER_COUNTY)
    texts = [
        "家长反映学校门口接送秩序混乱，孩子放学被电动车撞倒擦伤，学校不管。",
        "学校门口每天放学堵成一团，孩子差点被车撞，投诉多次没人理。",
        "放学时校门口太乱了，今天又有学生被电动车剐蹭受伤。",
    ]
    for text in texts:
        event = ev.IntakeOpinionEvent.build(
            ev.IntakeOpinion(
                item_id=uuid.uuid4().hex, source="weibo", school=school, text=text,
                published_at=ev.utcnow(),
            ),
            producer=f"county-{OTHER_COUNTY}",
            county=OTHER_COUNTY,
        )  # fmt: skip
        await produce("intake.opinions", event.model_dump_json().encode(), key=b"xs")

    officer = await sign_in(OTHER_COUNTY, "opinion_officer", sub="sun-yuqing")
    row = "table.alerts tr[data-alert]"
    await reload_until(officer, "/opinion", row)
    await shot(officer, console, "opinion")
    await officer.locator(row).first.get_by_role("link", name="查看处置").click()
    await expect(officer.locator("ul.items li").first).to_be_visible()
    await officer.locator("form.action input[name=comment]").first.fill("已联系学校核实情况")
    await officer.get_by_role("button", name="签收").click()
    await expect(officer.locator(".notice")).to_have_text("预警处置已记录。")
    await expect(officer.locator("p.meta .status")).to_have_text("已签收")
    await shot(officer, console, "alert")


async def test_a_county_user_cannot_open_another_countys_case_by_url(
    sign_in: SignIn, console: Console
) -> None:
    case_id = journey.get("county_case")
    if case_id is None:
        pytest.skip("needs the case of the review test")
    outsider = await sign_in(OTHER_COUNTY, "reviewer_county", sub="qian-fushen")
    response = await outsider.goto(f"/review/cases/{case_id}")
    assert response is not None and response.status == 403
    await expect(outsider.locator("h1")).to_contain_text("无权访问")
    await expect(outsider.locator("body")).not_to_contain_text(journey["title"])
    await shot(outsider, console, "forbidden")


def _first_school(county: str) -> str:
    from shared.orgtree import example_city

    return example_city().schools(county)[0].code
