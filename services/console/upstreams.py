"""The one HTTP client the console calls the five services with, always with the
signed-in person's own token, and what a refusal of theirs says to a person."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict, Unpack

import httpx
import orjson

from services.console.settings import ConsoleSettings
from services.console.wording import refusal_text

Upstream = Literal["submission", "media", "review", "scoring", "sentiment"]
UPSTREAMS: tuple[Upstream, ...] = ("submission", "media", "review", "scoring", "sentiment")


class UpstreamError(Exception):
    """A service refused or could not answer; ``status`` is what the page answers with,
    ``text`` the Chinese sentence a person reads, ``detail`` the service's English one."""

    def __init__(
        self,
        status: int,
        detail: str,
        upstream: str,
        *,
        code: str = "",
        message: str = "",
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{upstream}: {status} {detail}")
        self.status = status
        self.detail = detail
        self.upstream = upstream
        self.code = code
        self.errors = errors or []
        self.text = refusal_text(status, message=message, detail=detail, errors=self.errors)

    @classmethod
    def of(cls, response: httpx.Response, upstream: str) -> UpstreamError:
        """The error body every service answers with (code, message, detail, errors)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(response.status_code, response.text[:300], upstream)
        detail = body.get("detail", "")
        errors: list[dict[str, str]] = []
        if isinstance(detail, list):  # FastAPI's own validation shape
            errors = [
                {"field": ".".join(map(str, d.get("loc", []))), "message": str(d.get("msg", ""))}
                for d in detail
                if isinstance(d, dict)
            ]
            detail = "; ".join(e["message"] for e in errors)
        for problem in body.get("errors") or []:
            if isinstance(problem, dict):
                errors.append({"field": str(problem.get("field", "")),
                               "message": str(problem.get("message", ""))})  # fmt: skip
        return cls(
            response.status_code, str(detail), upstream,
            code=str(body.get("code", "")), message=str(body.get("message", "")), errors=errors,
        )  # fmt: skip


class JsonCall(TypedDict):
    """What ``Upstreams.json`` passes on to ``Upstreams.send`` besides where it goes."""

    token: str
    params: NotRequired[dict[str, Any] | None]
    json: NotRequired[Any]


@dataclass
class Upstreams:
    """One HTTP client for every service the console shows."""

    client: httpx.AsyncClient
    settings: ConsoleSettings

    def url(self, upstream: Upstream) -> str:
        base: str = getattr(self.settings, f"console_{upstream}_url")
        return base.rstrip("/")

    async def send(
        self,
        upstream: Upstream,
        method: str,
        path: str,
        *,
        token: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        expect_redirect: bool = False,
    ) -> httpx.Response:
        """One request with the caller's bearer token; a 4xx/5xx raises UpstreamError."""
        try:
            response = await self.client.request(
                method,
                f"{self.url(upstream)}{path}",
                params={k: v for k, v in (params or {}).items() if v not in (None, "")},
                json=json,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(
                503, f"服务暂时无法访问（{exc.__class__.__name__}）", upstream
            ) from exc
        if response.status_code >= 400 or (response.is_redirect and not expect_redirect):
            raise UpstreamError.of(response, upstream)
        return response

    async def json(
        self, upstream: Upstream, method: str, path: str, **call: Unpack[JsonCall]
    ) -> Any:
        """``send``'s request, answered with the body's JSON."""
        response = await self.send(upstream, method, path, **call)
        # orjson: a city's yearly ranking is 1.6 MB, 30 ms of the stdlib decoder
        return orjson.loads(response.content)

    async def items(
        self,
        upstream: Upstream,
        path: str,
        *,
        token: str,
        most: int,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``most`` items of a paged list (``{items, next_cursor}``), page by page."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(found) < most:
            query = {**(params or {}), "limit": min(200, most - len(found)), "cursor": cursor}
            page = await self.json(upstream, "GET", path, token=token, params=query)
            found += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found
