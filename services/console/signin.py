"""Signing in and out, and the home page of what is waiting.

Failed sign-ins are limited per client address and per token subject with the ``limits``
library's moving window (the same counting ``slowapi`` and ``Flask-Limiter`` use): a client
guessing tokens, or many clients trying one person's, are told to wait (429 with
Retry-After) before the token is even checked. Only failures count, so a busy office
behind one address signing in all day is not slowed. The counts live in the process: with
several console replicas each counts its own share.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

import jwt
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from services.console import waiting
from services.console.models import COOKIE
from services.console.pages import SignedIn, Ups, org_of, render, see_other, settings_of
from services.console.settings import ConsoleSettings
from services.console.wording import from_detail
from shared.auth import AuthError, verify_token

router = APIRouter(include_in_schema=False)


class SignInLimiter:
    """Failed sign-ins per client and per subject, in a moving window."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_client: RateLimitItem = parse(settings.console_signin_failures_per_client)
        self.per_subject: RateLimitItem = parse(settings.console_signin_failures_per_subject)

    def _keys(self, client: str, subject: str | None) -> list[tuple[RateLimitItem, str, str]]:
        keys = [(self.per_client, "client", client)]
        if subject:
            keys.append((self.per_subject, "subject", subject))
        return keys

    async def wait_seconds(self, client: str, subject: str | None) -> int | None:
        """Seconds until another attempt is allowed, or None when one is allowed now."""
        waits = []
        for item, kind, key in self._keys(client, subject):
            if not await self.limiter.test(item, kind, key):
                stats = await self.limiter.get_window_stats(item, kind, key)
                waits.append(max(1, math.ceil(stats.reset_time - time.time())))
        return max(waits) if waits else None

    async def failed(self, client: str, subject: str | None) -> None:
        for item, kind, key in self._keys(client, subject):
            await self.limiter.hit(item, kind, key)


def claimed_subject(token: str) -> str | None:
    """Whom a token claims to be, before any check: the key its failures count under."""
    try:
        sub = jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.PyJWTError:
        return None
    return str(sub)[:200] if sub else None


@router.get("/login")
async def login_page(request: Request, next: str = "/", revoked: str = "") -> HTMLResponse:
    error = "您的令牌已被撤销，请获取新的令牌后重新登录。" if revoked else None
    return render(request, None, "login.html", next=next, error=error)


@router.post("/login")
async def login(
    request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
) -> Response:
    """Check the token as the services will, then keep it in an HttpOnly cookie; too many
    failures from one client or for one subject are refused for a while."""
    token = token.strip()
    limiter: SignInLimiter = request.app.state.signin_limiter
    client = request.client.host if request.client else "unknown"
    subject = claimed_subject(token)
    wait = await limiter.wait_seconds(client, subject)
    if wait is not None:
        said = f"登录尝试过于频繁，请 {wait} 秒后再试。"
        return render(request, None, "login.html", 429, headers={"Retry-After": str(wait)},
                      next=next, error=said)  # fmt: skip
    try:
        principal = verify_token(token, settings_of(request))
        if org_of(request).get(principal.unit) is None:
            raise AuthError("unknown unit in token")
    except AuthError as exc:
        await limiter.failed(client, subject)
        said = from_detail(str(exc)) or "令牌无效，请重新获取。"
        return render(request, None, "login.html", 401, next=next, error=said)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = see_other(target)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="lax", path="/",
        secure=settings_of(request).console_cookie_secure,
    )  # fmt: skip
    return response


@router.post("/logout")
async def logout() -> Response:
    response = see_other("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
async def home(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    """What is waiting for me, by role; the counts refresh themselves."""
    counts = await waiting.waiting(me.principal, me.token, up, org_of(request))
    return render(request, me, "home.html", counts=counts)


@router.get("/waiting.json")
async def waiting_counts(request: Request, me: SignedIn, up: Ups) -> JSONResponse:
    """The home page's counts and the menu's badges, polled by every page."""
    counts = await waiting.waiting(me.principal, me.token, up, org_of(request))
    return JSONResponse(counts, headers={"Cache-Control": "no-store"})
