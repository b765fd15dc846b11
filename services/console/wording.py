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


Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

RULES: list[Rule] = [
    (re.compile(r"title has (\d+) characters; it needs (\d+) to (\d+)"),
     lambda m: f"标题现有 {m[1]} 字，应为 {m[2]}～{m[3]} 字。"),
    (re.compile(r"body has (\d+) characters; it needs (\d+) to (\d+)"),
     lambda m: f"正文现有 {m[1]} 字，应为 {m[2]}～{m[3]} 字。"),
    (re.compile(r"unknown category '([^']*)'"),
     lambda m: f"栏目“{m[1]}”不存在，请从列表中选择。"),
    (re.compile(r"event date (\S+) is in the future"),
     lambda m: f"活动日期 {m[1]} 晚于今天，请填写已经举办的活动日期。"),
    (re.compile(r"unknown media id"),
     lambda m: "图片或视频尚未登记完成（或已失效），请稍候再提交或重新上传。"),
    (re.compile(r"media .* belong to another unit"),
     lambda m: "所选图片属于其他单位，不能用于本稿件。"),
    (re.compile(r"unknown campaign '([^']*)'"),
     lambda m: f"专项任务“{m[1]}”不存在，请从列表中选择。"),
    (re.compile(r"changed while it was being edited|submitted or changed meanwhile"),
     lambda m: "稿件刚被修改或已报送，请刷新页面后重试。"),
    (re.compile(r"story \S+ is (\w+); only a draft or a story returned"),
     lambda m: f"稿件当前为“{_status_name(m[1])}”，只有草稿或退回修改的稿件才能修改或报送。"),
    (re.compile(r"no story .* (in your units|under review|was submitted here)"),
     lambda m: "未找到该稿件，或该稿件不在您的管辖范围内。"),
    (re.compile(r"a comment is required when returning"),
     lambda m: "退回修改时请填写修改意见。"),
    (re.compile(r"a reason is required when rejecting"),
     lambda m: "不予采用时请填写理由。"),
    (re.compile(r"publish_at goes with an approval only"),
     lambda m: "只有审核通过时才能设定发布时间。"),
    (re.compile(r"publish_at can be set only at the city level"),
     lambda m: "只有终审（市局）时才能设定发布时间。"),
    (re.compile(r"this needs one of the roles: (.+)$"),
     lambda m: f"此操作需要以下角色之一：{_roles(m[1])}。"),
    (re.compile(r"deciding at the (\w+) level needs the role (\w+)"),
     lambda m: f"{label(m[1], 'level')}需要{label(m[2], 'role')}角色。"),
    (re.compile(r"this is for the city office"),
     lambda m: "此操作由市局审核员办理。"),
    (re.compile(r"the review queue needs"),
     lambda m: "审核队列需要审核员或分管领导角色。"),
    (re.compile(r"the overdue list needs"),
     lambda m: "超时清单需要审核员、分管领导或管理员角色。"),
    (re.compile(r"no review case"),
     lambda m: "未找到该审核事项。"),
    (re.compile(r"is outside your scope"),
     lambda m: "该内容不在您的管辖范围内。"),
    (re.compile(r"someone else changed this case"),
     lambda m: "他人刚刚处理了这篇稿件，请刷新页面后查看。"),
    (re.compile(r"this case is (\w+); it waits for no decision"),
     lambda m: "这篇稿件在本环节的审核已经结束，无需再作决定。"),
    (re.compile(r"there is no hold to lift|already overridden|not held by a screening"),
     lambda m: "这篇稿件没有需要解除的舆情暂缓。"),
    (re.compile(r"has not passed its final review"),
     lambda m: "稿件尚未通过终审。"),
    (re.compile(r"is already withdrawn"),
     lambda m: "稿件已经撤稿。"),
    (re.compile(r"not published anywhere yet"),
     lambda m: "稿件尚未在任何渠道发布，请在发布队列中取消其发布任务。"),
    (re.compile(r"nothing of this story waits to be published"),
     lambda m: "该稿件没有待发布的内容。"),
    (re.compile(r"the adoption of this story by '([^']*)' is already recorded"),
     lambda m: f"“{m[1]}”对该稿件的采用已经登记过。"),
    (re.compile(r"publication is (\w+); this needs one of"),
     lambda m: f"该发布任务当前为“{label(m[1], 'publication_state')}”，不能执行此操作。"),
    (re.compile(r"no (published story|publication)"),
     lambda m: "未找到该发布任务或已发布稿件。"),
    (re.compile(r"cannot (\w+) an alert that is (\w+)"),
     lambda m: f"预警当前为“{label(m[2], 'alert_state')}”，不能{label(m[1], 'alert_action')}。"),
    (re.compile(r"to (\w+) an alert, say why in a comment"),
     lambda m: f"{label(m[1], 'alert_action')}预警时请填写说明。"),
    (re.compile(r"the alert changed meanwhile"),
     lambda m: "预警刚被他人处理，请刷新页面后重试。"),
    (re.compile(r"alert \S+ is now owned by '([^']*)' \((\w+)\)"),
     lambda m: f"该预警已升级至{label(m[2], 'owner_level')}，由上级单位处置。"),
    (re.compile(r"no (alert|incident) .* in your scope"),
     lambda m: "未找到该预警，或不在您的管辖范围内。"),
    (re.compile(r"unknown unit in token"), lambda m: "令牌中的单位不在本市组织机构中。"),
    (re.compile(r"unknown unit '([^']*)'"),
     lambda m: "单位不存在。"),
    (re.compile(r"already exists|exists already|is already defined"),
     lambda m: "编号已被使用，请换一个编号。"),
    (re.compile(r"task codes must be unique"),
     lambda m: "同一专项任务中的子任务编号不能重复。"),
    (re.compile(r"deadline needs a time zone"),
     lambda m: "截止时间缺少时区。"),
    (re.compile(r"unsupported (media|file|content) type|not an allowed type", re.I),
     lambda m: "不支持的文件类型：仅限 JPEG、PNG、WebP 图片和 MP4、MOV 视频。"),
    (re.compile(r"too large|exceeds|larger than", re.I),
     lambda m: "文件过大，请压缩后重新上传。"),
    (re.compile(r"pixel flood"), lambda m: "图片像素过多，请缩小尺寸后再上传。"),
    (re.compile(r"could not be decoded"), lambda m: "文件已损坏或无法识别，请换一个文件。"),
    (re.compile(r"the file is empty"), lambda m: "文件是空的，请重新选择。"),
    # sign-in
    (re.compile(r"expired", re.I), lambda m: "令牌已过期，请重新获取。"),
    (re.compile(r"malformed token|invalid token|Invalid header|Not enough segments", re.I),
     lambda m: "令牌格式有误，请完整粘贴统一身份认证签发的令牌。"),
    (re.compile(r"unknown role in token"), lambda m: "令牌中含有未知角色。"),
    (re.compile(r"unsupported token algorithm|tokens need|accepted only in local"),
     lambda m: "此类令牌在本环境中不被接受。"),
]  # fmt: skip

# pydantic's messages for one field
FIELD_RULES: list[Rule] = [
    (re.compile(r"at least (\d+) character"), lambda m: f"至少 {m[1]} 个字"),
    (re.compile(r"at most (\d+) character"), lambda m: f"最多 {m[1]} 个字"),
    (re.compile(r"Field required|Missing"), lambda m: "必填"),
    (re.compile(r"valid URL|URL scheme"), lambda m: "请填写以 http:// 或 https:// 开头的链接"),
    (re.compile(r"valid date|date"), lambda m: "日期格式有误"),
    (re.compile(r"greater than or equal to (\d+)"), lambda m: f"不能小于 {m[1]}"),
    (re.compile(r"String should match pattern"), lambda m: "格式有误（仅限字母、数字和短横线）"),
]


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
