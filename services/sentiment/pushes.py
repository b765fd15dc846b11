"""Who is told of an alert change, when, and in what words: recipients matched by scope
and severity; quiet hours (blue and yellow wait until the morning, orange and red always
go); the Chinese message every channel carries. Pure logic with the time given, so the
rules are tested without a server.

Pushes carry no item text: an item may name a pupil, and a message leaves the desk for
mailboxes and group chats; the officer reads the items in the console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.sentiment.models import PushConfig, QuietHours, Recipient
from services.sentiment.wording import LEVEL_NAMES, SEVERITY_NAMES, TOPIC_NAMES
from shared.clock import BUREAU_ZONE
from shared.events import Severity
from shared.orgtree import OrgTree

# severities that never wait for the morning
ALWAYS_NOW = frozenset({Severity.ORANGE, Severity.RED})
KIND_WORDS = {
    "alert": "新预警",
    "escalation": "预警升级",
}


def quiet_until(quiet: QuietHours | None, severity: Severity, at: datetime) -> datetime | None:
    """When a push of ``severity`` due at ``at`` may go: None for now, else the end of the
    recipient's quiet hours (local time) as an instant."""
    if quiet is None or severity in ALWAYS_NOW or quiet.start == quiet.end:
        return None
    local = at.astimezone(BUREAU_ZONE)
    now = local.time()
    spans_midnight = quiet.start > quiet.end
    inside = (
        (now >= quiet.start or now < quiet.end)
        if spans_midnight
        else (quiet.start <= now < quiet.end)
    )
    if not inside:
        return None
    day = local.date()
    if spans_midnight and now >= quiet.start:
        day += timedelta(days=1)
    return datetime.combine(day, quiet.end, tzinfo=BUREAU_ZONE)


def recipients_for(*, config: PushConfig, org: OrgTree, alert: dict[str, Any]) -> list[Recipient]:
    """Recipients whose unit holds the alert's school or county and whose threshold the
    alert's severity reaches."""
    severity = Severity(alert["severity"])
    found = []
    for recipient in config.recipients:
        if severity.rank < recipient.min_severity.rank:
            continue
        places = [code for code in (alert.get("school"), alert.get("county")) if code]
        if recipient.unit == org.city.code or any(
            org.contains(recipient.unit, code) for code in places
        ):
            found.append(recipient)
    return found


@dataclass(frozen=True)
class Message:
    title: str
    lines: list[str]
    link: str | None

    def text(self) -> str:
        body = "\n".join(self.lines)
        return f"{self.title}\n\n{body}" + (f"\n\n查看与处置：{self.link}" if self.link else "")

    def markdown(self) -> str:
        body = "\n".join(f"> {line}" for line in self.lines)
        link = f"\n\n[查看与处置]({self.link})" if self.link else ""
        return f"### {self.title}\n{body}{link}"


def message_for(*, payload: dict[str, Any], org: OrgTree, console_url: str | None) -> Message:
    """The words of one ``opinion.flagged`` alert or escalation, for people."""

    def name(code: str | None) -> str:
        unit = org.get(code) if code else None
        return unit.name if unit is not None else "全市"

    severity = SEVERITY_NAMES.get(payload["severity"], payload["severity"])
    topic = TOPIC_NAMES.get(payload.get("topic") or "other", "其他")
    place = name(payload.get("school") or payload.get("county"))
    kind = KIND_WORDS.get(payload.get("kind", ""), "预警变化")
    owner = LEVEL_NAMES.get(payload.get("owner_level") or "", "")
    title = f"【{severity}舆情{kind}】{place} · {topic}"
    lines = [
        f"等级：{severity}" + ("（重大）" if payload.get("serious") else ""),
        f"涉及单位：{place}",
        f"话题：{topic}",
        f"相关信息：{payload.get('item_count') or 1} 条",
        f"责任层级：{owner}",
    ]
    if payload.get("kind") == "escalation" and payload.get("explanation"):
        lines.append("说明：逾期未签收已升级，或信息量、来源使等级上升")
    flagged_at = payload.get("flagged_at")
    if flagged_at:
        at = datetime.fromisoformat(flagged_at).astimezone(BUREAU_ZONE)
        lines.append(f"时间：{at.year}年{at.month}月{at.day}日 {at:%H:%M}")
    link = None
    if console_url and payload.get("alert_id"):
        link = f"{console_url.rstrip('/')}/opinion/alerts/{payload['alert_id']}"
    return Message(title=title, lines=lines, link=link)
