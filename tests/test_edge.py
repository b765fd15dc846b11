"""The hardened edge over the real stack: services take bearer tokens only, every answer
carries the security headers, bodies and pages are bounded, a full service says 503 with
Retry-After, revoked tokens are refused within the cache time, city-wide configuration
needs a city administrator and holds finite values, and the console's sign-in slows
guessing down (429) and refuses forms from elsewhere."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.console.app import create_app as console_app
from services.console.csrf import form_token
from services.console.settings import ConsoleSettings
from shared.auth import Role
from shared.http import EdgePolicy, install_edge
from shared.mongo import make_client
from shared.revocation import Subject, TokenId, revocation_collection, revoke
from tests.support import RunningService, auth, eventually, run_service, settings_for, token_for

pytestmark = pytest.mark.usefixtures("stack_env")

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
COUNTY_ADMIN = auth("dh", Role.ADMIN, sub="admin-dh")
CITY_ADMIN = auth("jc", Role.ADMIN, sub="admin-jc")


def guarded(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest_asyncio.fixture(scope="module")
async def submission() -> AsyncIterator[RunningService]:
    database = f"edge_submission_{uuid.uuid4().hex[:8]}"
    async with run_service(
        "submission", mongo_database=database, jwt_revocation_refresh_seconds=0.0
    ) as running:
        yield running
    client = make_client(settings_for("submission"))
    await client.drop_database(database)
    await client.close()


@pytest_asyncio.fixture(scope="module")
async def review() -> AsyncIterator[RunningService]:
    database = f"edge_review_{uuid.uuid4().hex[:8]}"
    async with run_service("review", mongo_database=database) as running:
        yield running
    client = make_client(settings_for("review"))
    await client.drop_database(database)
    await client.close()


async def test_a_service_refuses_the_consoles_cookie_and_takes_the_bearer_token(
    submission: RunningService,
) -> None:
    token = token_for("dh-dyxx", Role.CORRESPONDENT)
    by_cookie = await submission.client.get("/stories", cookies={"citydesk_token": token})
    assert by_cookie.status_code == 401
    assert by_cookie.json()["code"] == "unauthenticated"
    guarded(by_cookie)
    by_bearer = await submission.client.get("/stories", headers=auth("dh-dyxx", "correspondent"))
    assert by_bearer.status_code == 200
    guarded(by_bearer)


async def test_every_answer_of_a_service_carries_the_headers(submission: RunningService) -> None:
    correspondent = auth("dh-dyxx", "correspondent")
    answers = [
        await submission.client.get("/healthz"),
        await submission.client.get("/openapi.json"),
        await submission.client.get("/nowhere"),
        await submission.client.get("/stories/nothing-here", headers=correspondent),
        await submission.client.post("/stories", json={}, headers=correspondent),
    ]
    for answer in answers:
        guarded(answer)
    docs = await submission.client.get("/docs")
    guarded(docs)  # the docs page may load Swagger UI, but still never in a frame


async def test_a_large_body_is_refused_before_it_is_parsed(submission: RunningService) -> None:
    correspondent = auth("dh-dyxx", "correspondent")
    big = json.dumps({"title": "x", "body": "长" * (2 * 1024 * 1024)}).encode()
    declared = await submission.client.post(
        "/stories", content=big, headers={**correspondent, "content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["code"] == "too_large" and "上限 1 MB" in declared.json()["message"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await submission.client.post(
        "/stories", content=chunks(), headers={**correspondent, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    guarded(streamed)


async def test_list_pages_are_bounded(review: RunningService) -> None:
    office = auth("jc", Role.REVIEWER_CITY)
    assert (await review.client.get("/adoptions", params={"limit": 200}, headers=office)).is_success
    too_many = await review.client.get("/adoptions", params={"limit": 1000}, headers=office)
    assert too_many.status_code == 422
    assert too_many.json()["code"] == "page_too_large"
    assert "每页最多 500 条" in too_many.json()["message"]


async def test_a_full_service_answers_503_with_retry_after() -> None:
    database = f"edge_busy_{uuid.uuid4().hex[:8]}"
    async with run_service(
        "submission", mongo_database=database, http_max_concurrent_requests=2,
        http_queue_seconds=0.05, http_retry_after_seconds=3,
    ) as busy:  # fmt: skip
        correspondent = auth("dh-dyxx", "correspondent")
        answers = await asyncio.gather(
            *(busy.client.get("/stories", headers=correspondent) for _ in range(30))
        )
        refused = [a for a in answers if a.status_code == 503]
        served = [a for a in answers if a.status_code == 200]
        assert refused and served, [a.status_code for a in answers]
        assert all(a.headers["retry-after"] == "3" for a in refused)
        assert refused[0].json()["code"] == "busy"
        # probes are never held back
        probes = await asyncio.gather(*(busy.client.get("/healthz") for _ in range(10)))
        assert all(p.status_code == 200 for p in probes)
    client = make_client(settings_for("submission"))
    await client.drop_database(database)
    await client.close()


async def test_the_bound_waits_for_a_slot_before_refusing() -> None:
    """Pure edge: two slots, a queue of 0.5 s, requests of 0.1 s all get through."""
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(0.1)
        return {"ok": True}

    policy = EdgePolicy(
        csp="default-src 'none'", hsts=True, max_body_bytes=1024, max_page_size=10,
        max_concurrent=2, queue_seconds=0.5, retry_after_seconds=1,
    )  # fmt: skip
    install_edge(app, policy)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        answers = await asyncio.gather(*(client.get("/slow") for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6
    assert answers[0].headers["strict-transport-security"].startswith("max-age=")


async def test_a_revoked_token_is_refused_by_id_and_by_subject(
    submission: RunningService,
) -> None:
    settings = submission.runtime.settings
    collection = revocation_collection(submission.runtime.mongo, settings)
    sub = f"lost-phone-{uuid.uuid4().hex[:6]}"
    token = token_for("dh-dyxx", Role.CORRESPONDENT, sub=sub)
    other = token_for("dh-dyxx", Role.CORRESPONDENT, sub=sub)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await submission.client.get("/stories", headers=bearer)).status_code == 200

    claims = json.loads(_payload(token))
    await revoke(collection, settings, TokenId(claims["jti"]), by="admin-jc", reason="test")
    refused = await submission.client.get("/stories", headers=bearer)
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
    assert "已被撤销" in refused.json()["message"]
    # another token of the same person still works until the person is revoked
    other_bearer = {"Authorization": f"Bearer {other}"}
    assert (await submission.client.get("/stories", headers=other_bearer)).status_code == 200
    await revoke(collection, settings, Subject(sub), by="admin-jc", reason="left")
    assert (await submission.client.get("/stories", headers=other_bearer)).status_code == 401


def _payload(token: str) -> str:
    import base64

    body = token.split(".")[1]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


async def test_a_county_admin_cannot_change_city_wide_configuration(
    submission: RunningService, review: RunningService
) -> None:
    categories = (await submission.client.get("/config/categories", headers=CITY_ADMIN)).json()
    refused = await submission.client.put(
        "/config/categories", json=categories, headers=COUNTY_ADMIN
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "city_admin_required"
    assert "市局管理员" in refused.json()["message"]
    allowed = await submission.client.put("/config/categories", json=categories, headers=CITY_ADMIN)
    assert allowed.status_code == 200

    config = (await review.client.get("/config", headers=CITY_ADMIN)).json()
    for hook in config["publication"]["webhooks"]:
        hook.pop("secret")
    county = await review.client.put("/config", json=config, headers=COUNTY_ADMIN)
    assert county.status_code == 403 and county.json()["code"] == "city_admin_required"


async def test_infinity_in_the_configuration_is_422_and_the_configuration_still_reads(
    review: RunningService,
) -> None:
    config = (await review.client.get("/config", headers=CITY_ADMIN)).json()
    for hook in config["publication"]["webhooks"]:
        hook.pop("secret")
    config["publication"]["backoff_seconds"] = math.inf
    body = json.dumps(config)  # Python writes Infinity, as an attacker's client would
    assert "Infinity" in body
    refused = await review.client.put(
        "/config", content=body, headers={**CITY_ADMIN, "content-type": "application/json"}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "invalid_request"
    again = await review.client.get("/config", headers=CITY_ADMIN)
    assert again.status_code == 200
    assert math.isfinite(again.json()["publication"]["backoff_seconds"])


def test_failed_sign_ins_are_slowed_to_429_per_client_and_per_subject() -> None:
    settings = ConsoleSettings(
        environment="test", console_signin_failures_per_client="10/minute",
        console_signin_failures_per_subject="5/minute",
    )  # fmt: skip
    with TestClient(console_app(settings)) as console:
        started = time.perf_counter()
        statuses = [console.post("/login", data={"token": "guess"}).status_code for _ in range(100)]
        elapsed = time.perf_counter() - started
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429] * 90, statuses
        limited = console.post("/login", data={"token": "guess"})
        assert 0 < int(limited.headers["retry-after"]) <= 60
        assert "登录尝试过于频繁" in limited.text
        print(f"100 failed sign-ins: 10 answered 401, then 429, in {elapsed:.2f} s")

    # one person's token forged again and again: the subject's limit (5) holds before
    # the client's (10)
    with TestClient(console_app(settings)) as console:
        forged = _unsigned_token("zhou-guanli")
        for _ in range(5):
            assert console.post("/login", data={"token": forged}).status_code == 401
        assert console.post("/login", data={"token": forged}).status_code == 429
        # a good token of another person still signs in
        good = token_for("dh-dyxx", Role.CORRESPONDENT, sub="someone-else")
        signed = console.post("/login", data={"token": good}, follow_redirects=False)
        assert signed.status_code == 303


def _unsigned_token(sub: str) -> str:
    import jwt

    return jwt.encode({"sub": sub, "unit": "jc", "roles": []}, "not-the-key-0123456789abcdef!!")


def test_console_forms_from_elsewhere_or_without_the_token_are_refused() -> None:
    with TestClient(console_app(ConsoleSettings(environment="test"))) as console:
        token = token_for("dh-dyxx", Role.CORRESPONDENT)
        console.cookies.set("citydesk_token", token)
        page = console.get("/login")
        guarded(page)
        assert "script-src 'self'" in page.headers["content-security-policy"]
        cases: list[dict[str, Any]] = [
            # another site, and the same site on another port (the cookie rides along)
            {"headers": {"origin": "https://evil.example"}, "data": {"csrf_token": ""}},
            {"headers": {"origin": "http://testserver:8999"}, "data": {}},
            {"headers": {"referer": "http://127.0.0.1:8999/page"}, "data": {}},
            # the console's own origin but no token, or a wrong one
            {"headers": {"origin": "http://testserver"}, "data": {}},
            {"headers": {"origin": "http://testserver"}, "data": {"csrf_token": "0" * 64}},
        ]
        for case in cases:
            answer = console.post(
                "/logout", data=case["data"], headers=case["headers"], follow_redirects=False
            )
            assert answer.status_code == 403, case
            assert "来自其他网站" in answer.text
            guarded(answer)
        accepted = console.post(
            "/logout", data={"csrf_token": form_token(token)},
            headers={"origin": "http://testserver"}, follow_redirects=False,
        )  # fmt: skip
        assert accepted.status_code == 303


async def test_the_revoke_command_cuts_off_a_person_everywhere(
    submission: RunningService,
) -> None:
    from typer.testing import CliRunner

    from citydesk.cli import app as cli

    sub = f"left-the-bureau-{uuid.uuid4().hex[:6]}"
    bearer = auth("dh-dyxx", Role.CORRESPONDENT, sub=sub)
    assert (await submission.client.get("/stories", headers=bearer)).status_code == 200
    # issue times are whole seconds: the cutoff must fall after this token's second
    issued = int(time.time())
    await eventually(lambda: int(time.time()) > issued, what="the next whole second")
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["revoke", "--sub", sub, "--by", "admin-jc", "--reason", "调离"]
    )
    assert result.exit_code == 0, result.output
    assert f"subject:{sub}" in result.output
    assert (await submission.client.get("/stories", headers=bearer)).status_code == 401
    refused = await asyncio.to_thread(
        CliRunner().invoke, cli, ["revoke", "--by", "x", "--reason", "y"]
    )
    assert refused.exit_code == 2


async def test_the_console_forgets_a_revoked_token_and_says_why(
    submission: RunningService,
) -> None:
    settings = submission.runtime.settings
    token = token_for("dh-dyxx", Role.CORRESPONDENT, sub=f"revoked-{uuid.uuid4().hex[:6]}")
    jti = json.loads(_payload(token))["jti"]
    await revoke(
        revocation_collection(submission.runtime.mongo, settings),
        settings, TokenId(jti), by="admin-jc", reason="test",
    )  # fmt: skip
    app = console_app(ConsoleSettings(environment="test", console_submission_url="http://sub"))
    async with app.router.lifespan_context(app):
        # the console reaches the in-process submission service; the others stay away
        app.state.upstreams.client = httpx.AsyncClient(
            mounts={"http://sub": httpx.ASGITransport(app=submission.app)}
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as browser:
            browser.cookies.set("citydesk_token", token)
            page = await browser.get("/stories")
            assert page.status_code == 303
            assert page.headers["location"] == "/login?revoked=1"
            assert 'citydesk_token=""' in page.headers["set-cookie"]
            login = await browser.get("/login?revoked=1")
            assert "令牌已被撤销" in login.text
        await app.state.upstreams.client.aclose()
