"""Reviewers' pages: the queue, a case with the story, its flags, the earlier opinions and
the changes since the previous version, the decision, and a story's whole history."""

from __future__ import annotations

import asyncio
import difflib
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console import service
from services.console.models import REVIEW_ROLES, SHANGHAI
from services.console.pages import Me, SignedIn, Ups, forbidden, render, see_other
from services.console.upstreams import UpstreamError, Upstreams
from shared.auth import Role

router = APIRouter(include_in_schema=False)

LEVEL_ROLE = {
    "school": Role.REVIEWER_SCHOOL,
    "county": Role.REVIEWER_COUNTY,
    "city": Role.REVIEWER_CITY,
    "leader": Role.LEADER,
}


@router.get("/review")
async def review_queue(request: Request, me: SignedIn, up: Ups) -> HTMLResponse:
    """My queue, oldest first."""
    if not me.principal.has(*REVIEW_ROLES, Role.ADMIN):
        return forbidden(request, me, "审核队列需要审核员或分管领导角色。")
    cases = await service.review_queue(upstreams=up, token=me.token)
    return render(request, me, "queue.html", cases=cases)


def body_diff(before: str, after: str) -> list[tuple[str, str]]:
    """The body's changes as ``(kind, text)`` runs, kind one of same/ins/del; Chinese has
    no spaces, so the comparison is character by character."""
    runs: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            runs.append(("same", before[a1:a2]))
            continue
        if a2 > a1:
            runs.append(("del", before[a1:a2]))
        if b2 > b1:
            runs.append(("ins", after[b1:b2]))
    return runs


async def _case_view(
    request: Request,
    me: Me,
    up: Upstreams,
    case_id: str,
    *,
    error: str | None = None,
    comment: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    case = await service.review_case(upstreams=up, token=me.token, case_id=case_id)
    copy_of = case["possible_copy"]["story_id"] if case.get("possible_copy") else None
    story_id = case["story_id"]
    copy, trail, story, previous = await asyncio.gather(
        service.copy_source(upstreams=up, token=me.token, story_id=copy_of)
        if copy_of
        else _nothing(),
        service.audit_trail(upstreams=up, token=me.token, story_id=story_id),
        service.copy_source(upstreams=up, token=me.token, story_id=story_id),
        service.version(upstreams=up, token=me.token, story_id=story_id, number=case["version"] - 1)
        if case["version"] > 1
        else _nothing(),
    )
    opinions = sorted(
        (t for t in trail if t["decision"] in ("approved", "returned", "rejected")),
        key=lambda t: t["at"],
    )
    role = LEVEL_ROLE.get(case["level"])
    can_decide = case["state"] == "open" and role is not None and me.principal.has(role)
    diff = None
    if previous is not None:
        diff = {
            "version": previous["version"],
            "title_before": previous["title"] if previous["title"] != case["title"] else None,
            "runs": body_diff(previous["body"], case["body"]),
        }
    return render(
        request, me, "case.html", status_code, case=case, copy=copy, opinions=opinions,
        can_decide=can_decide, author=(story or {}).get("author_name") or "本单位通讯员",
        diff=diff, error=error, comment=comment,
    )  # fmt: skip


async def _nothing() -> None:
    return None


@router.get("/review/cases/{case_id}")
async def review_case(request: Request, me: SignedIn, up: Ups, case_id: str) -> HTMLResponse:
    """One case: the story, its photos, its flags, what earlier levels said, the changes
    since the previous version and the decision form."""
    return await _case_view(request, me, up, case_id)


@router.post("/review/cases/{case_id}/decide")
async def decide(
    request: Request,
    me: SignedIn,
    up: Ups,
    case_id: str,
    version: Annotated[int, Form()],
    decision: Annotated[str, Form()],
    comment: Annotated[str, Form()] = "",
    publish_at: Annotated[str, Form()] = "",
) -> Response:
    """Approve (at the city level, optionally at a set publication time), return (with a
    comment) or reject (with a reason)."""
    text = comment.strip() or None
    body: dict[str, Any] = {"version": version, "decision": decision, "comment": text}
    if decision == "reject":
        body["reason"] = text
    if decision == "approve" and publish_at.strip():
        moment = datetime.fromisoformat(publish_at.strip()).replace(tzinfo=SHANGHAI)
        body["publish_at"] = moment.isoformat()
    try:
        await service.decide(upstreams=up, token=me.token, case_id=case_id, decision=body)
    except UpstreamError as exc:
        if exc.status in (401, 403, 404):
            raise
        return await _case_view(request, me, up, case_id, error=exc.text, comment=comment,
                                status_code=exc.status)  # fmt: skip
    return see_other("/review?notice=decided")


@router.get("/stories/{story_id}/history")
async def story_history(request: Request, me: SignedIn, up: Ups, story_id: str) -> HTMLResponse:
    """Every step of a story as the review service recorded it, oldest first."""
    trail, story = await asyncio.gather(
        service.audit_trail(upstreams=up, token=me.token, story_id=story_id),
        service.copy_source(upstreams=up, token=me.token, story_id=story_id),
    )
    trail.sort(key=lambda t: t["at"])
    return render(request, me, "history.html", story=story, trail=trail)
