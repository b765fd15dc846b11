"""The web console: server-rendered pages over the five services' APIs. It owns no data
and needs no broker; it signs people in with the bureau's tokens and calls each service
with the person's own token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import api, csrf
from services.console.models import (
    COOKIE,
    alert_step,
    audit_comment,
    channel_label,
    label,
    local_time,
    period_label,
    source_label,
)
from services.console.pages import SignInNeeded, me_or_none, render
from services.console.settings import ConsoleSettings, console_settings
from services.console.signin import SignInLimiter
from services.console.upstreams import UPSTREAMS, Upstream, UpstreamError, Upstreams
from services.console.wording import FIELD_NAMES, GENERIC_BY_STATUS
from shared.http import allow_body, install_edge, policy_for
from shared.observability import configure_logging, install_http_observability
from shared.orgtree import load_org
from shared.settings import Settings

HERE = Path(__file__).parent


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["label"] = label
    templates.env.filters["local_time"] = local_time
    templates.env.filters["alert_step"] = alert_step
    templates.env.filters["period"] = period_label
    templates.env.filters["source"] = source_label
    templates.env.filters["channel"] = channel_label
    templates.env.filters["audit_comment"] = audit_comment
    return templates


def _health_check(app: FastAPI, upstream: Upstream) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        upstreams: Upstreams = app.state.upstreams
        response = await upstreams.client.get(f"{upstreams.url(upstream)}/healthz", timeout=2.0)
        response.raise_for_status()

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    """The console app; uvicorn runs it with ``citydesk serve console``."""
    config: ConsoleSettings = console_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging("console", config.log_level)
        async with httpx.AsyncClient(timeout=config.console_timeout_seconds) as client:
            app.state.upstreams = Upstreams(client=client, settings=config)
            yield

    app = FastAPI(
        title="CityDesk console",
        description="Pages for correspondents, reviewers, the city office and opinion officers.",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = config
    app.state.org = load_org(config.org_file)
    app.state.templates = _templates()
    app.state.signin_limiter = SignInLimiter(config)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    install_http_observability(
        app, service="console", checks={name: _health_check(app, name) for name in UPSTREAMS}
    )

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, _: Exception) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(UpstreamError)
    async def _upstream_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UpstreamError)
        if exc.status == 401:
            # a revoked token is forgotten, and the sign-in page says why
            if exc.code == "token_revoked":
                gone = RedirectResponse("/login?revoked=1", status_code=303)
                gone.delete_cookie(COOKIE, path="/")
                return gone
            return RedirectResponse("/login", status_code=303)
        me = me_or_none(request)
        return render(request, me, "error.html", exc.status, status=exc.status, detail=exc.text)

    @app.exception_handler(csrf.CrossSiteRefused)
    async def _cross_site(request: Request, exc: Exception) -> Response:
        detail = "页面已过期或来自其他网站，操作未执行。请回到本平台的页面，刷新后重试。"
        return render(request, me_or_none(request), "error.html", 403, status=403, detail=detail)

    @app.exception_handler(RequestValidationError)
    async def _bad_form(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = "、".join(
            dict.fromkeys(FIELD_NAMES.get(str(err["loc"][-1]), "填写内容") for err in exc.errors())
        )
        detail = f"请检查这些项目：{fields}。"
        return render(request, me_or_none(request), "error.html", 422, status=422, detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not request.url.path.startswith("/static") and exc.status_code in (404, 405):
            return render(
                request, me_or_none(request), "error.html", exc.status_code,
                status=exc.status_code, detail=GENERIC_BY_STATUS.get(exc.status_code, ""),
            )  # fmt: skip
        return HTMLResponse(
            GENERIC_BY_STATUS.get(exc.status_code, "请求未能完成。"), exc.status_code
        )

    for router in api.ROUTERS:
        app.include_router(router, dependencies=[Depends(csrf.guard)])
    edge = install_edge(
        app, policy_for(config, csp=page_policy(config), hsts=config.console_cookie_secure)
    )
    edge.html = True
    # an upload streams on to the media service, which holds it to its own limit
    allow_body(app, "POST", "/upload", None)
    # a story's text posted as a form: each Chinese character takes nine bytes encoded
    allow_body(app, "POST", "/stories", 4 * 1024 * 1024)
    return app


def page_policy(config: ConsoleSettings) -> str:
    """The pages' Content-Security-Policy: scripts and styles from the console's own
    files only (no inline ones), photos also from the object store the media service's
    short-lived links point at, and no framing."""
    images = " ".join(["'self'", "data:", *config.image_origins()])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )
