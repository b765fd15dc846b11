"""What every console page shares: who is signed in, the services' client, rendering with
the header, the menu, any notice and the form token, and the usual answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.console import csrf, service
from services.console.models import COOKIE, LABELS, menu_for
from services.console.settings import ConsoleSettings
from services.console.upstreams import UpstreamError, Upstreams
from shared.auth import AuthError, Principal, verify_token
from shared.orgtree import OrgTree

NOTICES = {
    "submitted": "稿件已报送，等待审核。",
    "revised": "修改稿已重新报送。",
    "decided": "审核意见已提交。",
    "scheduled": "已安排发布。",
    "adopted": "外部采用已登记。",
    "acted": "预警处置已记录。",
    "saved": "草稿已保存，可以继续修改后再报送。",
    "withdrawn": "已撤稿，各渠道将撤下该稿件。",
    "campaign": "专项任务已设立。",
}
PAGE_SIZE = 30


class SignInNeeded(Exception):
    """No valid token: the person is sent to the sign-in page."""


@dataclass(frozen=True)
class Me:
    principal: Principal
    token: str


def settings_of(request: Request) -> ConsoleSettings:
    return request.app.state.settings


def org_of(request: Request) -> OrgTree:
    return request.app.state.org


def _upstreams(request: Request) -> Upstreams:
    return request.app.state.upstreams


def signed_in(request: Request) -> Me:
    """The person the token cookie names, verified as every service verifies it."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded
    try:
        principal = verify_token(token, settings_of(request))
    except AuthError as exc:
        raise SignInNeeded from exc
    if org_of(request).get(principal.unit) is None:
        raise SignInNeeded
    return Me(principal=principal, token=token)


def me_or_none(request: Request) -> Me | None:
    try:
        return signed_in(request)
    except SignInNeeded:
        return None


SignedIn = Annotated[Me, Depends(signed_in)]
Ups = Annotated[Upstreams, Depends(_upstreams)]


def render(
    request: Request,
    me: Me | None,
    template: str,
    status_code: int = 200,
    *,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page with the header, the menu of the person's roles, any notice and the token
    its forms carry."""
    templates: Jinja2Templates = request.app.state.templates
    org = org_of(request)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    base = {
        "me": me.principal if me else None,
        "my_unit": org.get(me.principal.unit) if me else None,
        "menu": menu_for(me.principal, org) if me else [],
        "org": org,
        "notice": notice,
        "labels": LABELS,
        "csrf_token": csrf.form_token(me.token) if me else "",
    }
    return templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code, headers=headers
    )


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def download(answer: httpx.Response, fallback_disposition: str = "attachment") -> Response:
    """A file another service answered with, passed through to the browser as a download."""
    disposition = answer.headers.get("content-disposition", fallback_disposition)
    return Response(
        answer.content,
        media_type=answer.headers.get("content-type"),
        headers={"Content-Disposition": disposition},
    )


def forbidden(request: Request, me: Me, detail: str) -> HTMLResponse:
    return render(request, me, "error.html", 403, status=403, detail=detail)


async def campaigns_or_none(up: Upstreams, token: str) -> list[dict[str, Any]]:
    try:
        return await service.campaigns(upstreams=up, token=token)
    except UpstreamError:
        return []
