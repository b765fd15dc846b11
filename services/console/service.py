"""Calls to the five services on behalf of the signed-in person, with their own token:
the console keeps no data and has no other way in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from services.console.upstreams import UpstreamError, Upstreams


# ---- correspondents -------------------------------------------------------------------
async def unit_stories(
    *,
    upstreams: Upstreams,
    token: str,
    status: str | None,
    cursor: str | None = None,
    filters: dict[str, str] | None = None,
    limit: int = 30,
) -> dict[str, Any]:
    """A page of the stories of my unit and the units below it, newest change first
    (``items``, ``next_cursor``, ``total`` when the submission service keeps it);
    ``filters`` narrows them (q: a phrase, unit, category, campaign, submitted_from/_to)."""
    params = {"status": status, "limit": limit, "cursor": cursor, **(filters or {})}
    params = {key: value for key, value in params.items() if value}
    return await upstreams.json("submission", "GET", "/stories", token=token, params=params)


async def story(*, upstreams: Upstreams, token: str, story_id: str) -> dict[str, Any]:
    """One story with its versions and history."""
    return await upstreams.json("submission", "GET", f"/stories/{story_id}", token=token)


async def categories(*, upstreams: Upstreams, token: str) -> list[dict[str, Any]]:
    """The categories a story may be filed under."""
    found = await upstreams.json("submission", "GET", "/config/categories", token=token)
    return found["categories"]


async def _until_media_known(upstreams: Upstreams, attempt: Any) -> dict[str, Any]:
    """Retry while the submission service has not yet heard of a just-uploaded photo."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + upstreams.settings.console_media_wait_seconds
    while True:
        try:
            return await attempt()
        except UpstreamError as exc:
            if exc.status != 422 or "not yet known" not in exc.detail or loop.time() > deadline:
                raise
        await asyncio.sleep(0.3)


async def rules(*, upstreams: Upstreams, token: str) -> dict[str, Any]:
    """Length bounds and the late threshold, for the form's hints."""
    return await upstreams.json("submission", "GET", "/config/rules", token=token)


async def save_draft(
    *, upstreams: Upstreams, token: str, content: dict[str, Any], story_id: str | None
) -> dict[str, Any]:
    """Keep the text as a draft without submitting it (a new one, or changes to one)."""

    async def attempt() -> dict[str, Any]:
        if story_id is None:
            return await upstreams.json("submission", "POST", "/stories", token=token, json=content)
        path = f"/stories/{story_id}"
        return await upstreams.json("submission", "PATCH", path, token=token, json=content)

    return await _until_media_known(upstreams, attempt)


async def submit_draft(*, upstreams: Upstreams, token: str, story_id: str) -> dict[str, Any]:
    path = f"/stories/{story_id}/submit"
    return await upstreams.json("submission", "POST", path, token=token)


async def version(
    *, upstreams: Upstreams, token: str, story_id: str, number: int
) -> dict[str, Any] | None:
    """One submitted version as it was sent (None when it is not readable)."""
    try:
        path = f"/stories/{story_id}/versions/{number}"
        return await upstreams.json("submission", "GET", path, token=token)
    except UpstreamError as exc:
        if exc.status in (403, 404):
            return None
        raise


async def titles(*, upstreams: Upstreams, token: str, story_ids: list[str]) -> dict[str, str]:
    """The titles of some stories, fetched together (unreadable ones are left out)."""

    async def one(story_id: str) -> tuple[str, str | None]:
        try:
            found = await story(upstreams=upstreams, token=token, story_id=story_id)
        except UpstreamError:
            return story_id, None
        return story_id, found["title"]

    pairs = await asyncio.gather(*(one(i) for i in dict.fromkeys(story_ids)))
    return {story_id: title for story_id, title in pairs if title}


async def submit_new_story(
    *, upstreams: Upstreams, token: str, content: dict[str, Any]
) -> dict[str, Any]:
    """Save a draft and submit it as version 1."""

    async def create() -> dict[str, Any]:
        return await upstreams.json("submission", "POST", "/stories", token=token, json=content)

    draft = await _until_media_known(upstreams, create)
    path = f"/stories/{draft['id']}/submit"
    return await upstreams.json("submission", "POST", path, token=token)


async def revise_story(
    *, upstreams: Upstreams, token: str, story_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change a returned story and submit it as the next version."""

    async def patch() -> dict[str, Any]:
        path = f"/stories/{story_id}"
        return await upstreams.json("submission", "PATCH", path, token=token, json=changes)

    await _until_media_known(upstreams, patch)
    path = f"/stories/{story_id}/submit"
    return await upstreams.json("submission", "POST", path, token=token)


async def upload_media(
    *,
    upstreams: Upstreams,
    token: str,
    content_type: str,
    content_length: str | None,
    body: AsyncIterator[bytes],
) -> httpx.Response:
    """Stream a multipart upload through to the media service as it arrives."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    if content_length:
        headers["Content-Length"] = content_length
    try:
        return await upstreams.client.post(
            f"{upstreams.url('media')}/media",
            content=body,
            headers=headers,
            timeout=upstreams.settings.console_upload_timeout_seconds,
        )
    except httpx.HTTPError as exc:
        raise UpstreamError(
            503, f"媒体服务暂时无法访问（{exc.__class__.__name__}）", "media"
        ) from exc


async def thumbnail_link(*, upstreams: Upstreams, token: str, media_id: str, size: str) -> str:
    """The short-lived link the media service hands out for a thumbnail."""
    response = await upstreams.send(
        "media", "GET", f"/media/{media_id}/thumbnail", token=token,
        params={"size": size}, expect_redirect=True,
    )  # fmt: skip
    return response.headers["location"]


# ---- reviewers ------------------------------------------------------------------------
async def review_queue(*, upstreams: Upstreams, token: str) -> list[dict[str, Any]]:
    """Cases waiting at my levels in my scope, oldest first."""
    return await upstreams.items("review", "/queue", token=token, most=100)


async def review_case(*, upstreams: Upstreams, token: str, case_id: str) -> dict[str, Any]:
    """One review case with the story as judged and its flags."""
    return await upstreams.json("review", "GET", f"/cases/{case_id}", token=token)


async def decide(
    *, upstreams: Upstreams, token: str, case_id: str, decision: dict[str, Any]
) -> dict[str, Any]:
    """Approve, return or reject the version judged."""
    path = f"/cases/{case_id}/decisions"
    return await upstreams.json("review", "POST", path, token=token, json=decision)


async def audit_trail(*, upstreams: Upstreams, token: str, story_id: str) -> list[dict[str, Any]]:
    """Every step of a story, oldest first."""
    path = f"/stories/{story_id}/audit"
    return await upstreams.items("review", path, token=token, most=1000)


async def copy_source(*, upstreams: Upstreams, token: str, story_id: str) -> dict[str, Any] | None:
    """The other story a possible copy resembles, when my scope lets me read it."""
    try:
        return await story(upstreams=upstreams, token=token, story_id=story_id)
    except UpstreamError as exc:
        if exc.status in (403, 404):
            return None
        raise


async def screening(*, upstreams: Upstreams, token: str, story_id: str) -> list[dict[str, Any]]:
    """The sentiment screening of each version of a story (empty when there is none)."""
    try:
        path = f"/screenings/{story_id}"
        return await upstreams.json("sentiment", "GET", path, token=token)
    except UpstreamError as exc:
        if exc.status in (403, 404):
            return []
        raise


# ---- the city office ------------------------------------------------------------------
async def schedule(
    *, upstreams: Upstreams, token: str, story_id: str, publish_at: str
) -> dict[str, Any]:
    """Publish a story at a set time, or at once when that time has passed."""
    path = f"/stories/{story_id}/schedule"
    return await upstreams.json(
        "review", "POST", path, token=token, json={"publish_at": publish_at}
    )


async def record_adoption(
    *, upstreams: Upstreams, token: str, story_id: str, adoption: dict[str, Any]
) -> dict[str, Any]:
    """Record that an outside outlet ran a story."""
    path = f"/stories/{story_id}/adoptions"
    return await upstreams.json("review", "POST", path, token=token, json=adoption)


async def publications(
    *, upstreams: Upstreams, token: str, limit: int = 500
) -> list[dict[str, Any]]:
    """The publish queue per channel, newest first."""
    return await upstreams.items("review", "/publications", token=token, most=limit)


async def recent_adoptions(
    *, upstreams: Upstreams, token: str, limit: int = 500
) -> list[dict[str, Any]]:
    """The latest adoptions recorded across stories, newest first."""
    return await upstreams.items("review", "/adoptions", token=token, most=limit)


async def withdraw(*, upstreams: Upstreams, token: str, story_id: str, reason: str) -> Any:
    """Withdraw (撤稿) a published story on every channel."""
    path = f"/stories/{story_id}/withdraw"
    return await upstreams.json("review", "POST", path, token=token, json={"reason": reason})


async def create_campaign(*, upstreams: Upstreams, token: str, campaign: dict[str, Any]) -> Any:
    """Define a campaign (administrators)."""
    return await upstreams.json("scoring", "POST", "/campaigns", token=token, json=campaign)


async def story_totals(*, upstreams: Upstreams, token: str) -> dict[str, int]:
    """How many stories of my units are in each status (none while they are counted)."""
    found = await upstreams.json("submission", "GET", "/stories/totals", token=token)
    return dict(found.get("by_status") or {})


async def ranking(
    *, upstreams: Upstreams, token: str, period: str, scope: str, county: str | None
) -> dict[str, Any]:
    """The ranking of schools or counties for a period, with zero-submission and veto flags,
    and the quota lines short of their targets when it lists a county's schools or the
    counties (city-wide, a year holds tens of thousands: the bulletin carries those)."""
    lines = "true" if county or scope != "schools" else "false"
    params = {"period": period, "scope": scope, "county": county, "shortfalls": lines}
    return await upstreams.json("scoring", "GET", "/rankings", token=token, params=params)


async def bulletin(
    *, upstreams: Upstreams, token: str, period: str, scope: str, county: str | None
) -> httpx.Response:
    """The XLSX bulletin as the scoring service renders it."""
    params = {"scope": scope, "county": county}
    path = f"/bulletins/{period}.xlsx"
    return await upstreams.send("scoring", "GET", path, token=token, params=params)


async def campaigns(*, upstreams: Upstreams, token: str) -> list[dict[str, Any]]:
    """The newest campaigns (a page of up to 200: a city runs a few dozen a year)."""
    params = {"limit": 200}
    return await upstreams.json("scoring", "GET", "/campaigns", token=token, params=params)


async def campaign_progress(*, upstreams: Upstreams, token: str, code: str) -> dict[str, Any]:
    """Progress per task and owner unit."""
    path = f"/campaigns/{code}/progress"
    return await upstreams.json("scoring", "GET", path, token=token)


# ---- opinion officers -----------------------------------------------------------------
async def alerts(*, upstreams: Upstreams, token: str, state: str | None) -> list[dict[str, Any]]:
    """Alerts in my scope, most recently changed first."""
    params = {"state": state, "limit": 200}
    return await upstreams.json("sentiment", "GET", "/alerts", token=token, params=params)


async def incidents(*, upstreams: Upstreams, token: str) -> list[dict[str, Any]]:
    """Incidents in my scope, most recent first."""
    params = {"limit": 200}
    return await upstreams.json("sentiment", "GET", "/incidents", token=token, params=params)


async def alert(*, upstreams: Upstreams, token: str, alert_id: str) -> dict[str, Any]:
    """One alert with its history."""
    return await upstreams.json("sentiment", "GET", f"/alerts/{alert_id}", token=token)


async def incident(*, upstreams: Upstreams, token: str, incident_id: str) -> dict[str, Any]:
    """One incident with the items behind it."""
    path = f"/incidents/{incident_id}"
    return await upstreams.json("sentiment", "GET", path, token=token)


async def act_on_alert(
    *, upstreams: Upstreams, token: str, alert_id: str, action: str, comment: str
) -> dict[str, Any]:
    """Acknowledge, respond, close or comment on an alert."""
    path = f"/alerts/{alert_id}/{action}"
    return await upstreams.json("sentiment", "POST", path, token=token, json={"comment": comment})
