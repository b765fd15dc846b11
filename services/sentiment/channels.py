"""How a push leaves the desk, per channel: e-mail over SMTP, the 企业微信 and 钉钉 group
robots' documented markdown messages, and a system's webhook signed the Standard Webhooks
way. Each send answers with an outcome; only the receiver's status (and a robot's error
code) is kept, never its body."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote_plus

import httpx

from services.sentiment.settings import SentimentSettings
from shared.outbound import check_target, standard_headers


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None
    reason: str = ""


def wecom_body(*, title: str, markdown: str) -> dict[str, Any]:
    """企业微信 group robot: ``{"msgtype": "markdown", "markdown": {"content": ...}}``."""
    return {"msgtype": "markdown", "markdown": {"content": markdown}}


def dingtalk_body(*, title: str, markdown: str) -> dict[str, Any]:
    """钉钉 group robot: ``{"msgtype": "markdown", "markdown": {"title", "text"}}``."""
    return {"msgtype": "markdown", "markdown": {"title": title, "text": markdown}}


def dingtalk_signed(url: str, secret: str | None, *, now_ms: int | None = None) -> str:
    """The robot URL with ``timestamp`` and ``sign`` (Base64 HMAC-SHA256 of
    ``"{timestamp}\\n{secret}"`` keyed by the secret) when the robot requires signing."""
    if not secret:
        return url
    stamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={stamp}&sign={sign}"


async def _post_robot(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Outcome:
    """Both robots answer HTTP 200 with ``errcode`` 0 on success and another code (bad
    key, rate limit, keyword missing) otherwise."""
    response = await client.post(url, json=body)
    if response.status_code >= 300:
        return Outcome(False, response.status_code, f"HTTP {response.status_code}")
    try:
        code = int(response.json().get("errcode", 0))
    except (ValueError, AttributeError, TypeError):
        code = 0
    if code != 0:
        return Outcome(False, response.status_code, f"robot errcode {code}")
    return Outcome(True, response.status_code)


def _send_mail(settings: SentimentSettings, to: str, subject: str, text: str) -> None:
    message = EmailMessage()
    message["From"] = settings.sentiment_smtp_sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    host = settings.sentiment_smtp_host or ""
    with smtplib.SMTP(host, settings.sentiment_smtp_port, timeout=15) as smtp:
        if settings.sentiment_smtp_starttls:
            smtp.starttls()
        if settings.sentiment_smtp_user and settings.sentiment_smtp_password:
            smtp.login(
                settings.sentiment_smtp_user, settings.sentiment_smtp_password.get_secret_value()
            )
        smtp.send_message(message)


async def send(
    *, settings: SentimentSettings, client: httpx.AsyncClient, delivery: dict[str, Any]
) -> Outcome:
    """One attempt of one delivery; any failure is an outcome, never an exception."""
    payload = delivery["payload"]
    channel = delivery["channel"]
    try:
        if channel == "email":
            if not settings.sentiment_smtp_host:
                return Outcome(False, None, "no SMTP server configured")
            await asyncio.to_thread(
                _send_mail, settings, delivery["target"], payload["title"], payload["text"]
            )
            return Outcome(True)
        url = delivery["target"]
        await check_target(url, settings.sentiment_push_allow)
        if channel == "wecom":
            return await _post_robot(client, url, wecom_body(**payload["robot"]))
        if channel == "dingtalk":
            signed = dingtalk_signed(url, payload.get("secret"))
            return await _post_robot(client, signed, dingtalk_body(**payload["robot"]))
        return await _post_webhook(settings, client, delivery)
    except (OSError, smtplib.SMTPException, httpx.HTTPError) as exc:
        return Outcome(False, None, exc.__class__.__name__)
    except Exception as exc:  # a refused target or a malformed delivery: recorded, not raised
        return Outcome(False, None, f"{exc.__class__.__name__}: {str(exc)[:120]}")


async def _post_webhook(
    settings: SentimentSettings, client: httpx.AsyncClient, delivery: dict[str, Any]
) -> Outcome:
    body = json.dumps(delivery["payload"]["event"], ensure_ascii=False).encode()
    secret = settings.sentiment_webhook_secret
    headers = standard_headers(secret.get_secret_value() if secret else "", delivery["key"], body)
    response = await client.post(delivery["target"], content=body, headers=headers)
    if response.status_code >= 300:
        return Outcome(False, response.status_code, f"HTTP {response.status_code}")
    return Outcome(True, response.status_code)
