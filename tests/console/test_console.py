"""The console in a real headless browser, over all five services running as processes:
a correspondent submits with a photo (after a rule error said in Chinese) and revises
what came back, a reviewer at each level decides seeing the earlier opinions and the
revision's changes, the city office schedules the publication at final approval, records
an adoption, sees the points in the ranking and withdraws the story, an administrator
sets up a campaign a correspondent can then choose, the home counts move when a case
arrives, every page fits a 390 px phone, no page shows a raw code, an opinion officer
acknowledges an alert, and nobody opens a case outside their scope."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from PIL import Image
from playwright.async_api import Browser, Page, expect

from services.console.models import LABELS
from shared import events as ev
from tests.console.conftest import Console, SignIn
from tests.support import QuietHandler, eventually, produce, serve_locally

pytestmark = pytest.mark.usefixtures("stack_env")

SCHOOL = "dh-dyxx"  # 东湖区第一小学, in county dh
OTHER_COUNTY = "xs"
STORY_BODY = (
    "十一月二十日下午，东湖区第一小学举行秋季科技节，全校一千二百名学生参与了机器人搭建、"
    "航模展示和科学小实验等二十余项活动，家长志愿者和社区科技辅导员到场指导。"
)

T = TypeVar("T")


@dataclass
class Story:
    """The one story the lifecycle tests follow, as far as its fixture has taken it."""

    story_id: str
    title: str
    points_before: float
    county_case: str | None = None


async def shot(page: Page, console: Console, name: str) -> None:
    await page.screenshot(path=str(console.screenshots / f"{name}.png"), full_page=True)


SIDEWAYS = """() => {
  const width = window.innerWidth;
  const root = document.documentElement.scrollWidth;
  const wide = root > width ? [`page ${root}px`] : [];
  const controls = "main button, main a, main input, main select, main textarea, header a";
  for (const el of document.querySelectorAll(controls)) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || getComputedStyle(el).visibility === "hidden") continue;
    if (box.right > width + 1 || box.left < -1) {
      const name = (el.textContent || el.name || "").trim().slice(0, 20);
      wide.push(`${el.tagName} ${name} ${Math.round(box.left)}-${Math.round(box.right)}`);
    }
  }
  return wide;
}"""


async def fits_the_screen(page: Page) -> None:
    """No sideways scrolling, and every control inside the screen's width."""
    overflow = await page.evaluate(SIDEWAYS)
    assert overflow == [], f"{page.url} is wider than {page.viewport_size}: {overflow[:8]}"


async def tappable(page: Page, selector: str) -> None:
    """The control is on screen after scrolling to it and nothing covers its middle."""
    control = page.locator(selector).first
    await control.scroll_into_view_if_needed()
    covered = await control.evaluate(
        """(el) => { const b = el.getBoundingClientRect();
        const top = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
        return !(top === el || el.contains(top)); }"""
    )
    assert not covered, f"{selector} is covered on {page.url}"


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
                          name: str, publish_at: str = "") -> str:  # fmt: skip
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
    if publish_at:
        await page.fill("#publish_at", publish_at)
    await page.click(f"form.decision button[value='{decision}']")
    await expect(page.locator(".notice")).to_have_text("审核意见已提交。")
    assert case_id
    return case_id


async def submit_with_a_photo(sign_in: SignIn, console: Console, tmp_path: Path) -> Story:
    """A correspondent submits a story with a photo, after a rule error said in Chinese."""
    page = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await shot(page, console, "home-correspondent")
    points_before = await school_points(page)

    await page.goto("/stories/new")
    refused = tmp_path / "notes.txt"
    refused.write_text("这不是图片")
    await page.set_input_files("fieldset.uploads input.picker", str(refused))
    failed = page.locator(".upload.failed")
    await expect(failed).to_contain_text("上传失败：不支持的文件类型：仅限 JPEG", timeout=20_000)
    await expect(failed.locator("progress")).to_have_count(0)
    await page.set_input_files("fieldset.uploads input.picker", str(photo(tmp_path)))
    await expect(page.locator(".upload.done .state")).to_have_text("已上传", timeout=20_000)
    await expect(page.locator(".upload.done progress")).to_have_attribute("value", "100")
    await expect(page.locator(".thumbs figure img")).to_have_count(1)
    await page.select_option("select[name=category]", "德育活动")
    # ten days after the event: past the 7-day rule, so reviewers see it flagged late
    event_day = datetime.now(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=10)
    await page.fill("input[name=event_date]", event_day.isoformat())

    # a rule the service enforces comes back in Chinese, on the form, with the text kept
    await page.fill("#title", "科技节")
    await page.fill("#body", STORY_BODY)
    await expect(page.locator(".counter[data-for=title]")).to_have_text("3")
    await page.click("form.story-form button[value=submit]")
    await expect(page.locator(".form-error")).to_contain_text("标题现有 3 字，应为 5～100 字")
    await expect(page.locator("#body")).to_have_value(STORY_BODY)
    await expect(page.locator("#title")).to_have_value("科技节")
    await expect(page.locator(".thumbs figure img")).to_have_count(1)
    await expect(page.locator("select[name=category]")).to_have_value("德育活动")
    await shot(page, console, "story-refused")

    title = f"东湖区第一小学举办秋季科技节 {uuid.uuid4().hex[:6]}"
    await page.fill("#title", title)
    await shot(page, console, "story-new")
    await page.click("form.story-form button[value=submit]")

    await expect(page.locator(".notice")).to_have_text("稿件已报送，等待审核。")
    await expect(page.locator("h1")).to_have_text(title)
    await expect(page.locator("article.story-body img.thumb")).to_have_count(1)
    story_id = page.url.rsplit("/", 1)[-1].split("?")[0]
    return Story(story_id=story_id, title=title, points_before=points_before)


# Each step of the story's life is a module fixture that takes it from the step before:
# a test that needs the story at some stage asks for that stage, so it runs alone as well
# as after the others (which then share the one story). The steps sign people in through
# a SignIn of their own, as the fixtures outlive any one test, and hold its pages to the
# same headers and CSP as the tests' own.
async def step(browser: Browser, console: Console, take: Callable[[SignIn], Awaitable[T]]) -> T:
    signer = SignIn(browser, console)
    result = await take(signer)
    await asyncio.gather(*signer.checking, return_exceptions=True)
    assert signer.problems == [], signer.problems[:5]
    return result


@pytest_asyncio.fixture(scope="module")
async def submitted(
    browser: Browser, console: Console, tmp_path_factory: pytest.TempPathFactory
) -> Story:
    folder = tmp_path_factory.mktemp("photo")
    return await step(browser, console, lambda s: submit_with_a_photo(s, console, folder))


@pytest_asyncio.fixture(scope="module")
async def revised(browser: Browser, console: Console, submitted: Story) -> Story:
    await step(browser, console, lambda s: return_and_revise(s, console, submitted))
    return submitted


@pytest_asyncio.fixture(scope="module")
async def approved(browser: Browser, console: Console, revised: Story) -> Story:
    revised.county_case = await step(
        browser, console, lambda s: approve_at_every_level(s, console, revised)
    )
    return revised


@pytest_asyncio.fixture(scope="module")
async def adopted(browser: Browser, console: Console, approved: Story) -> Story:
    await step(browser, console, lambda s: record_an_adoption(s, console, approved))
    return approved


async def test_correspondent_submits_a_story_with_a_photo(
    sign_in: SignIn, console: Console, submitted: Story
) -> None:
    page = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await page.goto("/stories")
    row = page.locator(f"tr[data-story='{submitted.story_id}']")
    await expect(row).to_contain_text(submitted.title)
    await shot(page, console, "stories")


async def test_a_draft_is_saved_and_submitted_later(sign_in: SignIn) -> None:
    page = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await page.goto("/stories/new")
    title = f"东湖区第一小学开展垃圾分类主题班会 {uuid.uuid4().hex[:6]}"
    await page.fill("#title", title)
    first_go = STORY_BODY.replace("秋季科技节", "垃圾分类主题班会")
    await page.fill("#body", first_go)
    await page.click("form.story-form button[value=draft]")
    await expect(page.locator(".notice")).to_contain_text("草稿已保存")
    await expect(page.locator(".status").first).to_have_text("草稿")
    await expect(page.locator("#body")).to_have_value(first_go)
    await page.fill("#body", first_go + "班会后各班评出了十名环保小卫士。")
    await page.click("form.story-form button[value=submit]")
    await expect(page.locator(".notice")).to_have_text("稿件已报送，等待审核。")
    await expect(page.locator("p.meta")).to_contain_text("第 1 版")


async def return_and_revise(sign_in: SignIn, console: Console, story: Story) -> None:
    """The school reviewer returns the story; the correspondent revises it on a phone."""
    story_id = story.story_id
    reviewer = await sign_in(SCHOOL, "reviewer_school", sub="wang-chushen")
    comment = "请补充参与学生的年级分布和活动成效。"
    await decide_in_queue(reviewer, console, story_id, "return", comment, "school-return")
    await reviewer.goto("/review")
    await expect(reviewer.locator("body")).not_to_contain_text(story.title)

    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun", width=390)
    await reload_until(author, f"/stories/{story_id}", ".reviewer-comment")
    await expect(author.locator(".reviewer-comment")).to_have_text(comment)
    await expect(author.locator(".status").first).to_have_text("退回修改")
    await fits_the_screen(author)
    await tappable(author, "form.story-form button[value=submit]")
    await shot(author, console, "story-returned-390")
    await author.fill("#body", STORY_BODY + ADDED)
    await author.click("form.story-form button[value=submit]")
    await expect(author.locator(".notice")).to_have_text("修改稿已重新报送。")
    await expect(author.locator("p.meta")).to_contain_text("第 2 版")


async def test_returned_story_is_revised_with_the_reviewers_comment_beside_it(
    sign_in: SignIn, revised: Story
) -> None:
    # the steps are in return_and_revise; read again, the story is the revision
    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await author.goto(f"/stories/{revised.story_id}")
    await expect(author.locator("p.meta")).to_contain_text("第 2 版")
    await expect(author.locator("article.story-body")).to_contain_text(ADDED)


ADDED = "一至六年级均有学生参加，三个项目获评区级优秀科普活动。"


async def approve_at_every_level(sign_in: SignIn, console: Console, story: Story) -> str:
    """The school, the county and the city approve the revision, the city with a
    publication time; returns the county's case id."""
    story_id = story.story_id
    school = await sign_in(SCHOOL, "reviewer_school", sub="wang-chushen")
    card = f"article.case[data-story='{story_id}']"
    await reload_until(school, "/review", card)
    await expect(school.locator(card)).to_contain_text("修改稿")
    await school.locator(card).get_by_role("link", name="审核", exact=True).click()
    # the resubmission shows what changed since version 1, and what was said about it
    await expect(school.locator("section.diff h2")).to_contain_text("与第 1 版相比")
    await expect(school.locator("section.diff .diff-body ins")).to_contain_text(ADDED)
    await expect(school.locator("section.opinions")).to_contain_text("请补充参与学生的年级分布")
    # a return without a comment is refused in Chinese and the case stays on screen
    await school.click("form.decision button[value=return]")
    await expect(school.locator(".form-error")).to_have_text("退回修改时请填写修改意见。")
    await shot(school, console, "case-diff")
    await decide_in_queue(school, console, story_id, "approve", "同意报送。", "school")

    county = await sign_in("dh", "reviewer_county", sub="zhao-fushen")
    county_case = await decide_in_queue(
        county, console, story_id, "approve", "内容属实，同意。", "county"
    )
    city = await sign_in("jc", "reviewer_city", sub="chen-zhongshen")
    card_city = f"article.case[data-story='{story_id}']"
    await reload_until(city, "/review", card_city)
    await city.locator(card_city).get_by_role("link", name="审核", exact=True).click()
    opinions = city.locator("section.opinions li")
    await expect(opinions).to_have_count(3)  # returned, then approved at school and county
    await expect(opinions.nth(2)).to_contain_text("内容属实，同意。")
    # final approval with a publication time: the story waits in the queue until then
    at = datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0) + timedelta(seconds=45)
    await decide_in_queue(
        city, console, story_id, "approve", "终审通过。", "city",
        publish_at=at.strftime("%Y-%m-%dT%H:%M:%S"),
    )  # fmt: skip
    await city.goto("/office")
    queued = city.locator(f"tr[data-publication-story='{story_id}']").first
    await expect(queued).to_contain_text(story.title)
    await expect(queued).to_contain_text(at.strftime("%Y-%m-%d %H:%M"))
    await expect(queued).to_contain_text("待发布")
    await shot(city, console, "office-scheduled")
    return county_case


async def test_a_reviewer_at_each_level_approves_and_the_trail_shows_every_step(
    sign_in: SignIn, console: Console, approved: Story
) -> None:
    city = await sign_in("jc", "reviewer_city", sub="chen-zhongshen")
    await city.goto(f"/stories/{approved.story_id}/history")
    trail = city.locator("table.audit tbody")
    await expect(trail).to_contain_text("退回修改")
    await expect(trail).to_contain_text("终审（市局）")
    times = await trail.locator("td[data-label='时间']").all_inner_texts()
    assert times == sorted(times), times
    await shot(city, console, "history")


async def record_an_adoption(sign_in: SignIn, console: Console, story: Story) -> None:
    """Once the story is published at its set time, the city office records that the
    city's paper adopted it."""
    story_id = story.story_id
    office = await sign_in("jc", "reviewer_city", sub="chen-zhongshen")
    row = f"form.adoption[action='/office/stories/{story_id}/adoptions']"
    await reload_until(office, "/office", row, timeout=120)  # published at the set time
    form = office.locator(row)
    await form.locator("input[name=outlet]").fill("江城日报")
    await form.locator("select[name=level]").select_option("city")
    await form.locator("input[name=link]").fill("https://news.example.org/keji-jie")
    await shot(office, console, "office")
    await form.get_by_role("button", name="登记").click()
    await expect(office.locator(".notice")).to_have_text("外部采用已登记。")
    await expect(office.locator(f"tr[data-story='{story_id}'] .tag.adopted")).to_have_text(
        "已采用 1 家"
    )


async def test_city_office_records_an_adoption_and_the_ranking_shows_the_new_points(
    sign_in: SignIn, console: Console, adopted: Story
) -> None:
    office = await sign_in("jc", "reviewer_city", sub="chen-zhongshen")
    await office.goto("/")
    assert int(await office.locator("[data-count=adopted_today]").inner_text()) >= 1

    async def more_points() -> float | None:
        points = await school_points(office)
        return points if points > adopted.points_before + 3 else None

    points = await eventually(more_points, timeout=40, interval=0.5, what="the adoption's points")
    bar = office.locator("svg.chart g.bar[data-unit='东湖区第一小学']")
    await expect(bar).to_have_attribute("data-value", f"{points:g}")
    await shot(office, console, "rankings")

    async with office.expect_download() as download:
        await office.click("a[download]")
    saved = await (await download.value).path()
    with open(saved, "rb") as workbook:
        assert workbook.read(2) == b"PK"  # an XLSX is a zip


async def test_a_search_finds_a_story_by_a_phrase_from_its_body(
    sign_in: SignIn, console: Console, revised: Story
) -> None:
    story_id = revised.story_id
    for unit, roles in ((SCHOOL, ("correspondent",)), ("jc", ("reviewer_city",))):
        page = await sign_in(unit, *roles, sub="searcher")
        await page.goto("/stories")
        await page.fill("input[name=q]", "三个项目获评区级优秀")
        await page.get_by_role("button", name="查询").click()
        await expect(page.locator(f"tr[data-story='{story_id}']")).to_contain_text(revised.title)
        await expect(page.locator("input[name=q]")).to_have_value("三个项目获评区级优秀")
    await shot(page, console, "search")
    # the story was ten days late: the late flag keeps it, the copy flag does not
    await page.select_option("select[name=flag]", "late")
    await page.get_by_role("button", name="查询").click()
    await expect(page.locator(f"tr[data-story='{story_id}']")).to_have_count(1)
    await page.select_option("select[name=flag]", "possible_copy")
    await page.get_by_role("button", name="查询").click()
    await expect(page.locator(f"tr[data-story='{story_id}']")).to_have_count(0)
    await page.select_option("select[name=flag]", "")
    await page.fill("input[name=q]", "这句话不在任何稿件里")
    await page.get_by_role("button", name="查询").click()
    await expect(page.locator(".pager")).to_have_attribute("data-total", "0")
    await expect(page.locator("table.list")).to_contain_text("没有找到")


async def test_the_city_office_withdraws_a_published_story(
    sign_in: SignIn, console: Console, adopted: Story
) -> None:
    story_id = adopted.story_id
    office = await sign_in("jc", "reviewer_city", sub="chen-zhongshen")
    await office.goto("/office")
    form = office.locator(f"form.withdraw[action='/office/stories/{story_id}/withdraw']")
    await form.locator("input[name=reason]").fill("活动数据有误，待核实后重发。")
    office.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await form.get_by_role("button", name="撤稿").click()
    await expect(office.locator(".notice")).to_contain_text("已撤稿")
    await reload_until(office, f"/stories/{story_id}", "p.meta .st-withdrawn", timeout=60)
    await expect(office.locator("ol.timeline")).to_contain_text("撤稿")


async def test_a_campaign_set_up_by_an_administrator_is_then_selectable(
    sign_in: SignIn, console: Console
) -> None:
    admin = await sign_in("jc", "admin", sub="zhou-guanli")
    await admin.goto("/campaigns")
    code = f"laodong-{uuid.uuid4().hex[:6]}"
    name = f"劳动教育宣传月 {code[-6:]}"
    form = admin.locator("form.campaign-form")
    await form.locator("input[name=code]").fill(code)
    await form.locator("input[name=name]").fill(name)
    deadline = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=30)
    await form.locator("input[name=deadline]").fill(deadline.strftime("%Y-%m-%dT%H:%M"))
    await form.locator("input[name=count]").fill("2")
    await form.get_by_role("button", name="设立").click()
    await expect(admin.locator(".notice")).to_have_text("专项任务已设立。")
    await expect(admin.locator("main h2").first).to_have_text(name)
    await shot(admin, console, "campaign-created")
    # the same code again is refused in Chinese, with the form kept
    await form.locator("input[name=code]").fill(code)
    await form.locator("input[name=name]").fill(name)
    await form.locator("input[name=deadline]").fill(deadline.strftime("%Y-%m-%dT%H:%M"))
    await form.get_by_role("button", name="设立").click()
    await expect(admin.locator(".form-error")).to_contain_text("已被使用，请换一个编号。")
    await expect(admin.locator("form.campaign-form input[name=name]")).to_have_value(name)

    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await author.goto("/stories/new")
    option = author.locator(f"select[name=campaign] option[value='{code}']")
    await expect(option).to_have_count(1)
    await expect(option).to_contain_text(name)


async def test_the_home_counts_move_when_a_case_arrives(sign_in: SignIn, console: Console) -> None:
    reviewer = await sign_in(SCHOOL, "reviewer_school", sub="wang-chushen")
    count = reviewer.locator("[data-count=queue]")
    await expect(count).to_be_visible()
    before = int(await count.inner_text())
    await expect(reviewer.locator("header nav [data-badge=queue]")).to_have_text(
        str(before) if before else ""
    )

    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    await author.goto("/stories/new")
    await author.fill("#title", f"东湖区第一小学举行冬季长跑比赛 {uuid.uuid4().hex[:6]}")
    await author.fill("#body", STORY_BODY.replace("秋季科技节", "冬季长跑比赛"))
    await author.click("form.story-form button[value=submit]")
    await expect(author.locator(".notice")).to_have_text("稿件已报送，等待审核。")

    # no reload: the page asks for its counts again by itself
    await expect(count).to_have_text(str(before + 1), timeout=60_000)
    await expect(reviewer.locator("header nav [data-badge=queue]")).to_have_text(str(before + 1))
    await shot(reviewer, console, "home-reviewer")


@pytest.mark.parametrize("width", [390, 1366])
async def test_every_correspondent_page_and_the_case_page_fit_the_screen(
    sign_in: SignIn, console: Console, submitted: Story, width: int
) -> None:
    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun", width=width)
    story_id = submitted.story_id
    for path in ("/", "/stories/new", "/stories", f"/stories/{story_id}",
                 f"/stories/{story_id}/history", "/rankings"):  # fmt: skip
        await author.goto(path)
        await fits_the_screen(author)
        await shot(author, console, f"fit-{width}{path.replace('/', '-')}")
    if width == 390:  # a phone shows the first thirty units of the ranking, the rest on tap
        await author.goto("/rankings?kind=month&scope=schools")
        rows = author.locator("table.ranking tbody tr")
        shown = await rows.evaluate_all("rs => rs.filter(r => r.offsetHeight > 0).length")
        assert shown == min(30, await rows.count())
        if await rows.count() > 30:
            await author.get_by_role("button", name=re.compile("显示(本页)?全部")).click()
            shown = await rows.evaluate_all("rs => rs.filter(r => r.offsetHeight > 0).length")
            assert shown == await rows.count()
            await fits_the_screen(author)
    await author.goto("/stories/new")
    await tappable(author, "form.story-form button[value=submit]")
    await tappable(author, "form.story-form button[value=draft]")

    reviewer = await sign_in(SCHOOL, "reviewer_school", sub="wang-chushen", width=width)
    await reviewer.goto("/review")
    await fits_the_screen(reviewer)
    await reviewer.locator("article.case a.button").first.click()
    await expect(reviewer.locator("form.decision")).to_be_visible()
    await fits_the_screen(reviewer)
    for decision in ("approve", "return", "reject"):
        await tappable(reviewer, f"form.decision button[value={decision}]")
    await shot(reviewer, console, f"fit-{width}-case")


RAW_CODES = {code for names in LABELS.values() for code in names} | {"feed", "weibo"}
ASCII_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_@.:-]*")
PERIOD_CODE = re.compile(r"(month|quarter|half|year):\d{4}")
LONG_ID = re.compile(r"\b[0-9a-f]{8,}\b")


async def no_raw_codes(page: Page, path: str) -> None:
    response = await page.goto(path)
    assert response is not None and response.status < 400, (path, response and response.status)
    text = await page.locator("body").inner_text()
    words = {w.rstrip(".:") for w in ASCII_WORD.findall(text)}
    assert not (words & RAW_CODES), f"{path} shows raw codes {sorted(words & RAW_CODES)}"
    assert not [w for w in words if "@" in w], f"{path} shows an account: {words}"
    assert not PERIOD_CODE.search(text), f"{path} shows a period code"
    assert not LONG_ID.search(text), f"{path} shows an id: {LONG_ID.findall(text)[:3]}"


async def test_no_page_shows_a_raw_code_or_an_id(
    sign_in: SignIn, console: Console, submitted: Story
) -> None:
    story_id = submitted.story_id
    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    for path in ("/", "/stories", "/stories/new", f"/stories/{story_id}",
                 f"/stories/{story_id}/history", "/rankings?kind=month",
                 "/rankings?kind=quarter&scope=counties", "/nowhere"):  # fmt: skip
        if path == "/nowhere":
            await author.goto(path)
            await expect(author.locator("h1")).to_have_text("未找到")
            continue
        await no_raw_codes(author, path)
    reviewer = await sign_in("dh", "reviewer_county", sub="zhao-fushen")
    for path in ("/", "/review", "/stories"):
        await no_raw_codes(reviewer, path)
    if await reviewer.locator("article.case a.button").count():
        await reviewer.goto("/review")
        await reviewer.locator("article.case a.button").first.click()
        await no_raw_codes(reviewer, reviewer.url.removeprefix(console.url))
    office = await sign_in("jc", "reviewer_city", "admin", sub="chen-zhongshen")
    for path in ("/", "/office", "/campaigns", "/rankings?kind=year"):
        await no_raw_codes(office, path)
    officer = await sign_in("jc", "opinion_officer", sub="sun-yuqing")
    for path in ("/", "/opinion"):
        await no_raw_codes(officer, path)
    if await officer.locator("table.alerts a.button").count():
        await officer.locator("table.alerts a.button").first.click()
        await no_raw_codes(officer, officer.url.removeprefix(console.url))
    # a broken token is refused in Chinese
    page = await author.context.browser.new_page(base_url=console.url)  # type: ignore[union-attr]
    await page.goto("/login")
    await page.fill("#token", "not-a-token")
    await page.click("form[action='/login'] button[type=submit]")
    await expect(page.locator("p.error")).to_have_text(
        "令牌格式有误，请完整粘贴统一身份认证签发的令牌。"
    )


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
    sign_in: SignIn, console: Console, approved: Story
) -> None:
    case_id = approved.county_case
    outsider = await sign_in(OTHER_COUNTY, "reviewer_county", sub="qian-fushen")
    response = await outsider.goto(f"/review/cases/{case_id}")
    assert response is not None and response.status == 403
    await expect(outsider.locator("h1")).to_contain_text("无权访问")
    await expect(outsider.locator("body")).not_to_contain_text(approved.title)
    await shot(outsider, console, "forbidden")


def _first_school(county: str) -> str:
    from shared.orgtree import example_city

    return example_city().schools(county)[0].code


ATTACK = """<!doctype html><html><body>
<form id="f" method="post" action="{action}">
<input name="title" value="{title}"><input name="body" value="{body}">
<input name="category" value="德育活动"><input name="event_date" value="{day}">
<input name="action" value="submit"></form>
<script>document.getElementById("f").submit();</script></body></html>"""


@contextlib.contextmanager
def attacker_site(page_html: str) -> Iterator[str]:
    """A page served from another port of the same host: the same site to a browser,
    which sends the console's SameSite=Lax cookie along with its form."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            body = page_html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = serve_locally(Handler)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


async def test_a_form_from_the_same_site_or_without_the_token_is_refused(
    sign_in: SignIn, console: Console
) -> None:
    """The attack the privacy review made: a page of the same site posts a story for a
    signed-in correspondent; and the services no longer take the console's cookie."""
    author = await sign_in(SCHOOL, "correspondent", sub="li-tongxun")
    title = f"伪造的稿件 {uuid.uuid4().hex[:6]}"
    day = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    page_html = ATTACK.format(
        action=f"{console.url}/stories/new", title=title, body=STORY_BODY, day=day
    )
    with attacker_site(page_html) as site:
        await author.goto(site)
        await author.wait_for_url(f"{console.url}/stories/new")
        await expect(author.locator("main")).to_contain_text("来自其他网站")
    # the console's own origin, but a form without the token of this sign-in
    await author.goto("/stories")
    status = await author.evaluate(
        """async (title) => {
            const form = new URLSearchParams({title, body: "x", category: "德育活动",
                                             event_date: "2026-01-01"});
            const answer = await fetch("/stories/new", {method: "POST", body: form});
            return answer.status;
        }""",
        title,
    )
    assert status == 403
    await author.goto(f"/stories?q={title}")
    await expect(author.locator("main")).to_contain_text("共 0 篇")
    # a service answers the cookie as if there were no sign-in at all
    cookies = await author.context.cookies()
    token = next(c["value"] for c in cookies if c["name"] == "citydesk_token")
    submission = console.processes.url("submission")
    by_cookie = await author.context.request.get(
        f"{submission}/stories", headers={"Cookie": f"citydesk_token={token}"}
    )
    assert by_cookie.status == 401
    by_bearer = await author.context.request.get(
        f"{submission}/stories", headers={"Authorization": f"Bearer {token}"}
    )
    assert by_bearer.status == 200
