"""The five services and the console as processes over the test stack, and a headless
Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, Response, async_playwright

from citydesk.processes import SERVICES, ServiceProcesses
from citydesk.stack import free_port
from tests.support import token_for

CHROMIUM = "/usr/bin/chromium"
# a Chinese font, so that screenshots show the pages as people see them
CJK_FONT = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NAMES = (*SERVICES, "console")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium and a Chinese font, as `make browser` (a step of `make test`)
    installs them; a missing one fails the console tests rather than skip them."""
    missing = [path for path in (CHROMIUM, CJK_FONT) if not Path(path).exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: run `make browser` (Debian's chromium and "
            "fonts-wqy-zenhei), which `make test` runs first",
            pytrace=False,
        )
    return CHROMIUM


@dataclass
class Console:
    url: str
    processes: ServiceProcesses
    screenshots: Path


@pytest.fixture(scope="module")
def console(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    """Every service and the console on free ports, as `citydesk serve` runs them."""
    ports = {name: free_port() for name in NAMES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        **stack_env,
        # databases and consumer groups of their own: other tests' services (scoring's
        # rebuild test above all) read the topics from offsets nobody else committed
        "CITYDESK_MONGO_DATABASE_PREFIX": f"console{free_port()}",
        "CITYDESK_ENVIRONMENT": "test",
        "CITYDESK_MEDIA_PUBLIC_URL": urls["media"],
        **{f"CITYDESK_CONSOLE_{name.upper()}_URL": urls[name] for name in SERVICES},
    }
    processes = ServiceProcesses(tmp_path_factory.mktemp("console-services"), env, ports=ports)
    screenshots = tmp_path_factory.mktemp("console-screenshots")
    try:
        processes.start_all(NAMES, timeout=180)
        yield Console(url=urls["console"], processes=processes, screenshots=screenshots)
    finally:
        processes.stop_all()


@pytest_asyncio.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


# what every page of the console must answer with (shared/http.py)
PAGE_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


CHECKED_KINDS = ("document", "script", "stylesheet", "fetch", "xhr")


@dataclass
class SignIn:
    browser: Browser
    console: Console
    # what the pages of the current test did wrong: a script or style the CSP refused, a
    # page without the security headers (checked after each test)
    problems: list[str] = field(default_factory=list)
    checking: list[asyncio.Task[None]] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:
                self.problems.append(f"{page.url}: {message.text[:200]}")

        async def check(response: Response) -> None:
            # all_headers: Playwright's plain ``headers`` leaves security headers out
            headers = await response.all_headers()
            missing = [k for k, v in PAGE_HEADERS.items() if headers.get(k) != v]
            csp = headers.get("content-security-policy", "")
            if "frame-ancestors 'none'" not in csp or "unsafe-inline" in csp:
                missing.append("content-security-policy")
            if missing:
                self.problems.append(f"{response.url} lacks {missing}")

        def on_response(response: Response) -> None:
            # pages, their scripts, styles and calls; an image's redirect answered from
            # Chromium's memory cache is reported without its headers, so images are not
            # judged here (the edge adds the headers to every answer alike)
            kind = response.request.resource_type
            if response.url.startswith(self.console.url) and kind in CHECKED_KINDS:
                self.checking.append(asyncio.ensure_future(check(response)))

        page.on("console", on_console)
        page.on("response", on_response)

    async def __call__(
        self, unit: str, *roles: str, sub: str | None = None, width: int = 1280
    ) -> Page:
        """A fresh browser session signed in through the sign-in page; ``width`` 390 is
        a phone held upright."""
        height = 844 if width < 500 else 900
        context = await self.browser.new_context(
            base_url=self.console.url, locale="zh-CN",
            viewport={"width": width, "height": height}, has_touch=width < 500,
        )  # fmt: skip
        page = await context.new_page()
        self.watch(page)
        await page.goto("/")
        await page.fill("#token", token_for(unit, *roles, sub=sub))
        await page.click("form[action='/login'] button[type=submit]")
        await page.wait_for_url(f"{self.console.url}/")
        return page


@pytest.fixture(scope="module")
def signing_in(browser: Browser, console: Console) -> SignIn:
    return SignIn(browser, console)


@pytest_asyncio.fixture
async def sign_in(signing_in: SignIn) -> AsyncIterator[SignIn]:
    """Signs people in; after the test, no answer of the console may have lacked the
    security headers and no script or style may have been refused by the CSP."""
    signing_in.problems.clear()
    signing_in.checking.clear()
    yield signing_in
    await asyncio.gather(*signing_in.checking, return_exceptions=True)
    assert signing_in.problems == [], signing_in.problems[:5]
