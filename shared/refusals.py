"""One way to refuse a request: a stable machine code, an HTTP status, a Chinese message
for people and an English detail for developers, in one documented error body.

Routes raise :class:`Refusal`; :func:`install_refusals` (called by the service builder)
turns it, FastAPI's own ``HTTPException`` and request validation errors into
:class:`ErrorBody`, so every 4xx of every service has the same shape.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every refusal: ``code`` is stable (for programs), ``message`` is Chinese (for
    people), ``detail`` is the English explanation."""

    code: str
    message: str
    detail: str
    errors: list[FieldProblem] | None = None


class Refusal(Exception):
    """A request refused on purpose."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail or message
        # e.g. Retry-After on a 503
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return ErrorBody(code=self.code, message=self.message, detail=self.detail).model_dump(
            exclude_none=True
        )


_CHINESE = re.compile(r"[\u4e00-\u9fff]")

# what a plain HTTPException (auth, scope, unknown route) means to a person
_BY_STATUS: dict[int, tuple[str, str]] = {
    400: ("bad_request", "请求有误"),
    401: ("unauthenticated", "请先登录（令牌缺失、无效或已过期）"),
    403: ("forbidden", "无权执行此操作或查看此内容"),
    404: ("not_found", "未找到所请求的内容"),
    405: ("method_not_allowed", "不支持此请求方式"),
    409: ("conflict", "与当前状态冲突，请刷新后重试"),
    413: ("too_large", "提交的内容过大"),
    415: ("unsupported_type", "不支持的文件或内容类型"),
    422: ("invalid_request", "提交的内容不符合要求"),
    429: ("too_many_requests", "请求过于频繁，请稍后再试"),
    503: ("unavailable", "服务暂时不可用，请稍后再试"),
}

# documented on every route of every service
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, (_, text) in _BY_STATUS.items()
    if status in (401, 403, 404, 422)
}


def refusal_for_status(status: int, detail: str) -> Refusal:
    code, message = _BY_STATUS.get(status, ("error", "请求未能完成"))
    return Refusal(status, code, message, detail)


def install_refusals(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        refusal = refusal_for_status(exc.status_code, str(exc.detail))
        if isinstance(exc.detail, str) and _CHINESE.search(exc.detail):
            refusal.message = exc.detail  # already written for people
        return JSONResponse(refusal.body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            FieldProblem(field=".".join(str(p) for p in err["loc"]), message=err["msg"])
            for err in exc.errors()
        ]
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
        body = ErrorBody(
            code="invalid_request",
            message="提交的内容不符合要求，请检查各项填写",
            detail=f"invalid request: {summary}",
            errors=problems,
        )
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)
