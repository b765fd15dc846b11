"""What a refusal says to a person. The services answer every 4xx with a stable ``code``,
a Chinese ``message`` and an English ``detail``; where the message is only the generic one
for its status, the console reads the detail it knows and says the specific reason in
Chinese. An English sentence never reaches the page."""

from __future__ import annotations

import re
from collections.abc import Callable

from services.console.models import LABELS, label

# the generic Chinese message the service builder gives a status; a more specific one wins
GENERIC_BY_STATUS: dict[int, str] = {
    400: "请求有误，请检查后重试。",
    401: "登录已失效，请重新登录。",
    403: "您无权执行此操作或查看此内容。",
    404: "未找到所请求的内容，可能已被删除或不在您的管辖范围内。",
    409: "与当前状态冲突，请刷新页面后重试。",
    413: "文件过大，请压缩后重新上传。",
    415: "不支持的文件类型：仅限 JPEG、PNG、WebP 图片和 MP4、MOV 视频。",
    422: "提交的内容不符合要求，请检查各项填写。",
    429: "请求过于频繁，请稍后再试。",
    503: "服务暂时不可用，请稍后再试。",
}

FIELD_NAMES = {
    "title": "标题",
    "body": "正文",
    "category": "栏目",
    "event_date": "活动日期",
    "campaign": "专项任务",
    "media_ids": "图片和视频",
    "comment": "意见",
    "reason": "理由",
    "publish_at": "发布时间",
    "outlet": "媒体名称",
    "level": "媒体级别",
    "placement": "刊发位置",
    "date": "刊发日期",
    "link": "链接",
    "code": "编号",
    "name": "名称",
    "period": "周期",
    "tasks": "任务",
    "count": "数量",
    "deadline": "截止时间",
    "file": "文件",
}


def _status_name(value: str) -> str:
    return label(value, "status")


def _roles(text: str) -> str:
    names = [label(part.strip(), "role") for part in text.split(",") if part.strip()]
    return "、".join(names)


# what to say: a fixed sentence, or one made from what the pattern caught
Say = str | Callable[[re.Match[str]], str]
Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _compiled(table: list[tuple[str, Say]]) -> list[Rule]:
    def fixed(text: str) -> Callable[[re.Match[str]], str]:
        return lambda _match: text

    return [(re.compile(p), say if callable(say) else fixed(say)) for p, say in table]


RULES: list[Rule] = _compiled([
    (r"title has (\d+) characters; it needs (\d+) to (\d+)",
     lambda m: f"标题现有 {m[1]} 字，应为 {m[2]}～{m[3]} 字。"),
    (r"body has (\d+) characters; it needs (\d+) to (\d+)",
     lambda m: f"正文现有 {m[1]} 字，应为 {m[2]}～{m[3]} 字。"),
    (r"unknown category '([^']*)'", lambda m: f"栏目“{m[1]}”不存在，请从列表中选择。"),
    (r"event date (\S+) is in the future",
     lambda m: f"活动日期 {m[1]} 晚于今天，请填写已经举办的活动日期。"),
    (r"unknown media id", "图片或视频尚未登记完成（或已失效），请稍候再提交或重新上传。"),
    (r"media .* belong to another unit", "所选图片属于其他单位，不能用于本稿件。"),
    (r"unknown campaign '([^']*)'", lambda m: f"专项任务“{m[1]}”不存在，请从列表中选择。"),
    (r"changed while it was being edited|submitted or changed meanwhile",
     "稿件刚被修改或已报送，请刷新页面后重试。"),
    (r"story \S+ is (\w+); only a draft or a story returned",
     lambda m: f"稿件当前为“{_status_name(m[1])}”，只有草稿或退回修改的稿件才能修改或报送。"),
    (r"no story .* (in your units|under review|was submitted here)",
     "未找到该稿件，或该稿件不在您的管辖范围内。"),
    (r"a comment is required when returning", "退回修改时请填写修改意见。"),
    (r"a reason is required when rejecting", "不予采用时请填写理由。"),
    (r"publish_at goes with an approval only", "只有审核通过时才能设定发布时间。"),
    (r"publish_at can be set only at the city level", "只有终审（市局）时才能设定发布时间。"),
    (r"this needs one of the roles: (.+)$", lambda m: f"此操作需要以下角色之一：{_roles(m[1])}。"),
    (r"deciding at the (\w+) level needs the role (\w+)",
     lambda m: f"{label(m[1], 'level')}需要{label(m[2], 'role')}角色。"),
    (r"this is for the city office", "此操作由市局审核员办理。"),
    (r"the review queue needs", "审核队列需要审核员或分管领导角色。"),
    (r"the overdue list needs", "超时清单需要审核员、分管领导或管理员角色。"),
    (r"no review case", "未找到该审核事项。"),
    (r"is outside your scope", "该内容不在您的管辖范围内。"),
    (r"someone else changed this case", "他人刚刚处理了这篇稿件，请刷新页面后查看。"),
    (r"this case is (\w+); it waits for no decision",
     "这篇稿件在本环节的审核已经结束，无需再作决定。"),
    (r"there is no hold to lift|already overridden|not held by a screening",
     "这篇稿件没有需要解除的舆情暂缓。"),
    (r"has not passed its final review", "稿件尚未通过终审。"),
    (r"is already withdrawn", "稿件已经撤稿。"),
    (r"not published anywhere yet", "稿件尚未在任何渠道发布，请在发布队列中取消其发布任务。"),
    (r"nothing of this story waits to be published", "该稿件没有待发布的内容。"),
    (r"the adoption of this story by '([^']*)' is already recorded",
     lambda m: f"“{m[1]}”对该稿件的采用已经登记过。"),
    (r"publication is (\w+); this needs one of",
     lambda m: f"该发布任务当前为“{label(m[1], 'publication_state')}”，不能执行此操作。"),
    (r"no (published story|publication)", "未找到该发布任务或已发布稿件。"),
    (r"cannot (\w+) an alert that is (\w+)",
     lambda m: f"预警当前为“{label(m[2], 'alert_state')}”，不能{label(m[1], 'alert_action')}。"),
    (r"to (\w+) an alert, say why in a comment",
     lambda m: f"{label(m[1], 'alert_action')}预警时请填写说明。"),
    (r"the alert changed meanwhile", "预警刚被他人处理，请刷新页面后重试。"),
    (r"alert \S+ is now owned by '([^']*)' \((\w+)\)",
     lambda m: f"该预警已升级至{label(m[2], 'owner_level')}，由上级单位处置。"),
    (r"no (alert|incident) .* in your scope", "未找到该预警，或不在您的管辖范围内。"),
    (r"unknown unit in token", "令牌中的单位不在本市组织机构中。"),
    (r"unknown unit '([^']*)'", "单位不存在。"),
    (r"already exists|exists already|is already defined", "编号已被使用，请换一个编号。"),
    (r"task codes must be unique", "同一专项任务中的子任务编号不能重复。"),
    (r"deadline needs a time zone", "截止时间缺少时区。"),
    (r"(?i)unsupported (media|file|content) type|not an allowed type",
     "不支持的文件类型：仅限 JPEG、PNG、WebP 图片和 MP4、MOV 视频。"),
    (r"(?i)too large|exceeds|larger than", "文件过大，请压缩后重新上传。"),
    (r"pixel flood", "图片像素过多，请缩小尺寸后再上传。"),
    (r"could not be decoded", "文件已损坏或无法识别，请换一个文件。"),
    (r"the file is empty", "文件是空的，请重新选择。"),
    # sign-in
    (r"(?i)expired", "令牌已过期，请重新获取。"),
    (r"(?i)malformed token|invalid token|Invalid header|Not enough segments",
     "令牌格式有误，请完整粘贴统一身份认证签发的令牌。"),
    (r"unknown role in token", "令牌中含有未知角色。"),
    (r"unsupported token algorithm|tokens need|accepted only in local",
     "此类令牌在本环境中不被接受。"),
])  # fmt: skip

# pydantic's messages for one field
FIELD_RULES: list[Rule] = _compiled([
    (r"at least (\d+) character", lambda m: f"至少 {m[1]} 个字"),
    (r"at most (\d+) character", lambda m: f"最多 {m[1]} 个字"),
    (r"Field required|Missing", "必填"),
    (r"valid URL|URL scheme", "请填写以 http:// 或 https:// 开头的链接"),
    (r"valid date|date", "日期格式有误"),
    (r"greater than or equal to (\d+)", lambda m: f"不能小于 {m[1]}"),
    (r"String should match pattern", "格式有误（仅限字母、数字和短横线）"),
])  # fmt: skip


def from_detail(detail: str) -> str | None:
    """The Chinese reason for a known English detail, or None."""
    for pattern, say in RULES:
        found = pattern.search(detail)
        if found:
            return say(found)
    return None


def field_problem(field: str, message: str) -> str:
    """One field's problem as ``标题：至少 5 个字``."""
    parts = field.split(".")
    # ("body",) is the whole request body (a rule across fields), not the story's text
    name = "" if parts == ["body"] else FIELD_NAMES.get(parts[-1], "")
    for pattern, say in FIELD_RULES:
        found = pattern.search(message)
        if found:
            return f"{name or '填写内容'}：{say(found)}"
    chinese = from_detail(message)
    if chinese:
        return chinese
    return f"{name or '某项填写'}不符合要求"


def has_chinese(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


def refusal_text(
    status: int,
    *,
    message: str = "",
    detail: str = "",
    errors: list[dict[str, str]] | None = None,
) -> str:
    """What the page says about a refusal: the specific Chinese reason when known, the
    service's own Chinese message otherwise; never the English detail."""
    if errors:
        problems = [
            field_problem(e.get("field", ""), e.get("message", "")).rstrip("。") for e in errors
        ]
        if problems:
            return "；".join(dict.fromkeys(problems)) + "。"
    specific = from_detail(detail) if detail else None
    if specific:
        return specific
    if message and has_chinese(message):
        return message if message.endswith(("。", "！", "）")) else message + "。"
    if detail and has_chinese(detail):
        return detail
    return GENERIC_BY_STATUS.get(status, "操作未能完成，请稍后再试。")


def known_labels() -> set[str]:
    """Every code the console has a Chinese name for (the raw-code check uses them)."""
    return {code for names in LABELS.values() for code in names}
