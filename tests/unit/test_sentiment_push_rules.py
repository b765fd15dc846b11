"""Push rules without a server: quiet hours by severity and local time, recipients by
scope and threshold, the 钉钉 signature and the robots' message formats."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, time
from urllib.parse import parse_qs, urlsplit

import pytest

from services.sentiment.channels import dingtalk_body, dingtalk_signed, wecom_body
from services.sentiment.models import PushConfig, QuietHours
from services.sentiment.pushes import message_for, quiet_until, recipients_for
from shared.clock import BUREAU_ZONE
from shared.events import Severity
from shared.orgtree import load_org

NIGHT = QuietHours(start=time(22), end=time(7, 30))
LUNCH = QuietHours(start=time(12), end=time(14))
ORG = load_org()


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=BUREAU_ZONE)


@pytest.mark.parametrize(
    ("quiet", "severity", "at", "until"),
    [
        (NIGHT, Severity.BLUE, local(29, 23, 10), local(30, 7, 30)),
        (NIGHT, Severity.YELLOW, local(30, 2, 0), local(30, 7, 30)),
        (NIGHT, Severity.YELLOW, local(30, 7, 30), None),  # the quiet hours just ended
        (NIGHT, Severity.BLUE, local(29, 21, 59), None),
        (NIGHT, Severity.ORANGE, local(29, 23, 10), None),  # orange and red always go
        (NIGHT, Severity.RED, local(30, 3, 0), None),
        (LUNCH, Severity.BLUE, local(29, 12, 30), local(29, 14, 0)),
        (LUNCH, Severity.BLUE, local(29, 14, 0), None),
        (None, Severity.BLUE, local(29, 23, 10), None),
    ],
)
def test_quiet_hours_hold_blue_and_yellow_until_they_end(
    quiet: QuietHours | None, severity: Severity, at: datetime, until: datetime | None
) -> None:
    assert quiet_until(quiet, severity, at) == until
    # the same instant given in UTC answers the same
    assert quiet_until(quiet, severity, at.astimezone(UTC)) == until


def test_recipients_by_scope_and_threshold() -> None:
    config = PushConfig.model_validate(
        {
            "recipients": [
                {"name": "市局", "unit": "jc", "min_severity": "orange",
                 "channels": [{"kind": "email", "to": "city@x.cn"}]},
                {"name": "东湖", "unit": "dh", "channels": [{"kind": "email", "to": "dh@x.cn"}]},
                {"name": "一小", "unit": "dh-dyxx", "min_severity": "yellow",
                 "channels": [{"kind": "email", "to": "s@x.cn"}]},
            ]
        }
    )  # fmt: skip

    def names(severity: str, school: str | None, county: str) -> list[str]:
        alert = {"severity": severity, "school": school, "county": county}
        return [r.name for r in recipients_for(config=config, org=ORG, alert=alert)]

    assert names("blue", "dh-dyxx", "dh") == ["东湖"]
    assert names("yellow", "dh-dyxx", "dh") == ["东湖", "一小"]
    assert names("red", "dh-dyxx", "dh") == ["市局", "东湖", "一小"]
    assert names("orange", "xs-dyxx", "xs") == ["市局"]


def test_dingtalk_signature_is_the_documented_hmac() -> None:
    signed = dingtalk_signed("https://oapi.dingtalk.com/robot/send?access_token=t", "SECabc",
                             now_ms=1764400000000)  # fmt: skip
    query = parse_qs(urlsplit(signed).query)
    assert query["access_token"] == ["t"] and query["timestamp"] == ["1764400000000"]
    digest = hmac.new(b"SECabc", b"1764400000000\nSECabc", hashlib.sha256).digest()
    assert query["sign"] == [base64.b64encode(digest).decode()]
    assert (
        dingtalk_signed("https://x/robot?access_token=t", None) == "https://x/robot?access_token=t"
    )


def test_the_message_names_units_and_levels_and_carries_no_item_text() -> None:
    payload = {
        "kind": "alert", "severity": "yellow", "serious": False, "topic": "food",
        "school": "dh-dyxx", "county": "dh", "owner_level": "school", "item_count": 3,
        "alert_id": "al-1", "flagged_at": "2026-11-29T15:05:00+00:00",
        "explanation": ["发霉"],
    }  # fmt: skip
    message = message_for(payload=payload, org=ORG, console_url="https://desk.example.cn/")
    school = ORG.unit("dh-dyxx").name
    assert message.title == f"【黄色（III级）舆情新预警】{school} · 食品安全"
    assert "时间：2026年11月29日 23:05" in message.text()  # Shanghai time
    assert message.link == "https://desk.example.cn/opinion/alerts/al-1"
    assert "发霉" not in message.text()
    robot = {"title": message.title, "markdown": message.markdown()}
    assert wecom_body(**robot) == {
        "msgtype": "markdown",
        "markdown": {"content": message.markdown()},
    }
    assert dingtalk_body(**robot)["markdown"] == {
        "title": message.title,
        "text": message.markdown(),
    }
