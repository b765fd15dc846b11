"""HTTP routes of the push alerts: the recipients (administrators; robot keys and secrets
masked when read) and the record of every push with its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from pymongo import DESCENDING

from services.sentiment.models import PushConfig
from services.sentiment.notifications import DELIVERIES
from services.sentiment.runtime import Sentiment
from shared.auth import CurrentPrincipal, Role, require_role
from shared.outbound import check_target
from shared.refusals import Refusal

router = APIRouter()
MASK = "********"


def _masked_url(url: str) -> str:
    """A robot URL without its query (the key or access token is in it)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, MASK if parts.query else "", ""))


def masked(config: PushConfig) -> PushConfig:
    shown = config.model_copy(deep=True)
    for recipient in shown.recipients:
        for channel in recipient.channels:
            if channel.kind != "email":
                channel.url = _masked_url(channel.url)
            if channel.kind == "dingtalk" and channel.secret:
                channel.secret = MASK
    return shown


@router.get("/push/recipients", response_model=PushConfig)
async def get_recipients(request: Request, principal: CurrentPrincipal) -> PushConfig:
    """Who receives push alerts, on which channels (keys masked)."""
    require_role(principal, Role.ADMIN)
    sentiment: Sentiment = request.app.state.sentiment
    return masked(await sentiment.pushes.get(sentiment.db))


@router.put("/push/recipients", response_model=PushConfig)
async def replace_recipients(
    request: Request, principal: CurrentPrincipal, body: PushConfig
) -> PushConfig:
    """Replace the recipients (administrators); a robot URL to a loopback, private or
    metadata address is refused unless the deployment allows it."""
    require_role(principal, Role.ADMIN)
    sentiment: Sentiment = request.app.state.sentiment
    for recipient in body.recipients:
        if sentiment.org.get(recipient.unit) is None:
            message = f"接收人“{recipient.name}”的单位编码 {recipient.unit} 不存在"
            raise Refusal(422, "unknown_unit", message)
        for channel in recipient.channels:
            if channel.kind != "email":
                await check_target(channel.url, sentiment.settings.sentiment_push_allow)
    return masked(await sentiment.pushes.replace(sentiment.db, body, by=principal.sub))


class PushRecord(BaseModel):
    recipient: str
    channel: str
    severity: str | None = None
    state: str
    attempts: int
    quiet: bool = False
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime
    next_at: datetime | None = None
    delivered_at: datetime | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> PushRecord:
        return cls(**{k: v for k, v in doc.items() if k in cls.model_fields})


@router.get("/push/deliveries", response_model=list[PushRecord])
async def list_deliveries(
    request: Request,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[PushRecord]:
    """The latest pushes, each with its outcome: delivered, waiting (quiet hours or a
    retry) or failed, the attempts and the receiver's last status."""
    require_role(principal, Role.ADMIN)
    sentiment: Sentiment = request.app.state.sentiment
    docs = (
        await sentiment.db[DELIVERIES].find().sort("created_at", DESCENDING).limit(limit).to_list()
    )
    return [PushRecord.of(doc) for doc in docs]
