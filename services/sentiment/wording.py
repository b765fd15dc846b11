"""The names bureau staff read for the service's codes: alert states and actions, levels
and feed sources (Simplified Chinese); severities and topics are named in
:mod:`shared.wording`, as every service names them."""

from __future__ import annotations

from shared.wording import SEVERITY_NAMES, TOPIC_NAMES

__all__ = [
    "ACTION_NAMES",
    "LEVEL_NAMES",
    "SEVERITY_NAMES",
    "SOURCE_NAMES",
    "STATE_NAMES",
    "TOPIC_NAMES",
]

ACTION_NAMES = {"acknowledge": "签收", "respond": "处置", "close": "办结", "comment": "批注"}
STATE_NAMES = {
    "open": "待签收",
    "acknowledged": "已签收",
    "responding": "处置中",
    "closed": "已办结",
}
LEVEL_NAMES = {"school": "学校", "county": "区县", "city": "市局"}
SOURCE_NAMES = {
    "12345": "12345热线",
    "complaint": "投诉平台",
    "douyin": "抖音",
    "forum": "论坛",
    "hot_search": "热搜榜",
    "hotline": "12345热线",
    "media_enquiry": "媒体问询",
    "media_in_depth": "媒体深度报道",
    "news": "新闻网站",
    "parent_forum": "家长论坛",
    "superior": "上级交办",
    "tieba": "贴吧",
    "wechat": "微信",
    "weibo": "微博",
    "zhihu": "知乎",
}


def source_name(source: str | None) -> str:
    """Where an item was found; a code nobody named stays generic rather than shown raw."""
    if not source:
        return ""
    return SOURCE_NAMES.get(source) or (source if not source.isascii() else "网络平台")


def action_name(action: str) -> str:
    """An alert history step as people say it (``escalated to county`` → 升级至区县)."""
    if action in ACTION_NAMES:
        return ACTION_NAMES[action]
    if action == "raised":
        return "生成预警"
    if action.startswith("escalated to "):
        return f"逾期未签收，升级至{LEVEL_NAMES.get(action[13:], action[13:])}"
    if action.startswith("severity raised to "):
        return f"等级升至{SEVERITY_NAMES.get(action[19:], action[19:])}"
    return action
