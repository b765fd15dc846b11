"""The opinion officer's item list and briefings in a real headless browser, over the
sentiment service and the console as processes: every item with its link and reasons,
the filters, a one-click correction that the service stores, a weekly briefing with its
chart, workbook and PDF, all on a 390 px phone, in Chinese, with no inline script."""

from __future__ import annotations

import asyncio
import io
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from openpyxl import load_workbook
from playwright.async_api import Browser, Page, expect
from pypdf import PdfReader

from citydesk.processes import ServiceProcesses
from citydesk.stack import free_port
from shared import events as ev
from tests.console.conftest import Console, SignIn
from tests.console.test_console import fits_the_screen, shot
from tests.support import produce

pytestmark = pytest.mark.usefixtures("stack_env")

COUNTY, SCHOOL = "lj", "lj-dyxx"
PRAISE = "临江市第一小学的老师对孩子很负责，家长很放心。"
COMPLAINT = "临江一小食堂饭菜发霉，孩子吃完肚子疼，学校管不管？"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def opinion_console(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """The sentiment service and the console only (the console's readiness asks every
    service, so it is waited for by its sign-in page)."""
    ports = {"sentiment": free_port(), "console": free_port()}
    env = {
        **stack_env,
        "CITYDESK_MONGO_DATABASE_PREFIX": f"opinionpages{free_port()}",
        "CITYDESK_ENVIRONMENT": "test",
        "CITYDESK_CONSOLE_SENTIMENT_URL": f"http://127.0.0.1:{ports['sentiment']}",
    }
    processes = ServiceProcesses(tmp_path_factory.mktemp("opinion-pages"), env, ports=ports)
    try:
        processes.start_all(("sentiment",), timeout=180)
        processes.start("console")
        url = f"http://127.0.0.1:{ports['console']}"
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/login") and time.monotonic() < deadline:
            time.sleep(0.25)
        yield Console(url=url, processes=processes, screenshots=tmp_path_factory.mktemp("shots"))
    finally:
        processes.stop_all()


@pytest_asyncio.fixture(scope="module")
async def officer_sign_in(browser: Browser, opinion_console: Console) -> AsyncIterator[SignIn]:
    yield SignIn(browser, opinion_console)


def item(text: str, *, source: str, link: str | None) -> ev.IntakeOpinionEvent:
    return ev.IntakeOpinionEvent.build(
        ev.IntakeOpinion(item_id=uuid.uuid4().hex, source=source, school=SCHOOL, text=text,
                         link=link, published_at=ev.utcnow()),
        producer=f"county-{COUNTY}", county=COUNTY,
    )  # fmt: skip


async def reload_until_items(page: Page, count: int, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while True:
        await page.goto("/opinion/items")
        if await page.locator("li.opinion-item").count() >= count:
            return
        assert time.monotonic() < deadline, "the items never appeared"
        await asyncio.sleep(0.5)


async def test_an_officer_reads_every_item_corrects_one_and_prints_the_week(
    officer_sign_in: SignIn, opinion_console: Console
) -> None:
    for event in (
        item(PRAISE, source="forum", link="https://bbs.example.org/t/77"),
        item(COMPLAINT, source="weibo", link="https://weibo.example.com/p/1"),
    ):
        await produce("intake.opinions", event.model_dump_json().encode(), key=COUNTY.encode())
    page = await officer_sign_in(COUNTY, "opinion_officer", sub="officer-lj", width=390)
    scripts: list[str] = []
    page.on("console", lambda message: scripts.append(message.text))
    await reload_until_items(page, 2)
    await fits_the_screen(page)
    await shot(page, opinion_console, "opinion-items-phone")
    praise = page.locator("li.opinion-item", has_text=PRAISE)
    await expect(praise.locator(".tag").first).to_have_text("非负面")
    await expect(praise.locator(".sources")).to_contain_text("论坛")
    assert await praise.locator("a", has_text="原文").get_attribute("href") == (
        "https://bbs.example.org/t/77"
    )
    await expect(praise.locator(".reasons")).to_contain_text("模型判断依据")
    complaint = page.locator("li.opinion-item", has_text=COMPLAINT)
    await expect(complaint.locator(".tag").first).to_have_text("负面")
    # no inline script or handler anywhere on the page
    inline = await page.evaluate(
        """() => [...document.querySelectorAll('script:not([src])')].length +
           [...document.querySelectorAll('*')].filter(e => [...e.attributes]
             .some(a => a.name.startsWith('on'))).length"""
    )
    assert inline == 0

    # filters: only what is not negative
    await page.select_option("select[name=negative]", "false")
    await page.wait_for_url("**negative=false**")
    await expect(page.locator("li.opinion-item")).to_have_count(1)
    await expect(page.locator("li.opinion-item")).to_contain_text(PRAISE)

    # one click: the praise hid a complaint after all
    await page.get_by_role("button", name="是负面").click()
    await expect(page.locator(".notice")).to_have_text("已记录您的判断，将用于下一次模型训练。")
    await page.goto("/opinion/items")
    corrected = page.locator("li.opinion-item", has_text=PRAISE)
    await expect(corrected.locator(".corrected")).to_contain_text("已人工更正为“负面”")
    await expect(corrected.get_by_role("button", name="不是负面")).to_be_visible()

    # the week's briefing: printable, the chart served, the workbook downloadable
    await page.goto("/opinion/briefings?kind=weekly")
    await fits_the_screen(page)
    await expect(page.locator("h1")).to_have_text("临江市教育舆情周报")
    await expect(page.locator(".unfinished")).to_contain_text("本期尚未结束")
    chart = page.locator("figure.trend img")
    assert await chart.evaluate("img => img.complete && img.naturalWidth > 0")
    await expect(page.locator("ol.top-items")).to_contain_text("临江市第一小学")
    await shot(page, opinion_console, "opinion-briefing-phone")
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="下载 Excel").click()
    download = await downloading.value
    book = load_workbook(io.BytesIO((await download.path()).read_bytes()))
    assert book.sheetnames[0] == "概况" and len(book["概况"]._images) == 1
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="下载 PDF").click()
    document = await downloading.value
    assert document.suggested_filename.endswith(".pdf")
    reader = PdfReader(io.BytesIO((await document.path()).read_bytes()))
    text = "".join("".join(sheet.extract_text() for sheet in reader.pages).split())
    assert "临江市教育舆情周报" in text and "本期尚未结束" in text and "临江市第一小学" in text
    assert not [text for text in scripts if "Content Security" in text]
