"""What the console shows: the Chinese names of states, levels and roles, the menus each
role sees, and the periods a ranking can cover."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel

from shared.auth import Principal, Role
from shared.clock import BUREAU_ZONE, local_now
from shared.orgtree import OrgTree

SHANGHAI = BUREAU_ZONE  # the bureau's time, as every service shows it
COOKIE = "citydesk_token"

LABELS: dict[str, dict[str, str]] = {
    "role": {
        "correspondent": "通讯员",
        "reviewer_school": "学校审核员（初审）",
        "reviewer_county": "区县审核员（复审）",
        "reviewer_city": "市局审核员（终审）",
        "leader": "分管领导",
        "opinion_officer": "舆情管理员",
        "admin": "系统管理员",
    },
    "status": {
        "draft": "草稿",
        "submitted": "已报送",
        "in_review": "审核中",
        "returned": "退回修改",
        "rejected": "不予采用",
        "approved": "审核通过",
        "published": "已发布",
        "withdrawn": "已撤稿",
    },
    "level": {
        "school": "初审（学校）",
        "county": "复审（区县）",
        "city": "终审（市局）",
        "leader": "分管领导审签",
    },
    "decision": {
        "approve": "通过",
        "approved": "通过",
        "return": "退回修改",
        "returned": "退回修改",
        "reject": "不予采用",
        "rejected": "不予采用",
        "submitted": "报送",
        "created": "创建草稿",
        "reviewed": "审核",
        "published": "发布",
        "adopted": "外部采用",
        "withdrawn": "撤稿",
        "held": "舆情暂缓",
        "overridden": "解除舆情暂缓",
        "superseded": "已被新版本取代",
        "scheduled": "定时发布",
        "publication_failed": "发布失败",
    },
    "severity": {
        "blue": "蓝色 IV级",
        "yellow": "黄色 III级",
        "orange": "橙色 II级",
        "red": "红色 I级",
    },
    "alert_state": {
        "open": "待签收",
        "acknowledged": "已签收",
        "responding": "处置中",
        "closed": "已办结",
    },
    "alert_action": {
        "acknowledge": "签收",
        "respond": "处置",
        "close": "办结",
        "comment": "批注",
        "raised": "生成预警",
    },
    "owner_level": {"school": "学校", "county": "区县", "city": "市局"},
    "topic": {
        "safety": "校园安全",
        "fees": "收费",
        "food": "食品安全",
        "teacher_conduct": "师德师风",
        "bullying": "学生欺凌",
        "admissions": "招生入学",
        "facilities": "校舍设施",
        "other": "其他",
    },
    "outlet_level": {
        "national": "国家级",
        "provincial": "省级",
        "city": "市级",
        "county": "县级",
        "bureau": "本局平台",
    },
    "placement": {"headline": "头版头条", "in_depth": "深度报道", "normal": "一般刊发"},
    "publication_state": {
        "pending": "待发布",
        "in_progress": "发布中",
        "retrying": "重试中",
        "success": "已发布",
        "failed": "失败",
        "cancelled": "已取消",
    },
    "period_kind": {"month": "月度", "quarter": "季度", "half": "半年", "year": "年度"},
    "campaign_status": {"done": "已完成", "short": "未完成", "in_progress": "进行中"},
    "what": {"stories": "稿件", "photos": "图片", "videos": "视频", "highlight": "亮点"},
    "unit_type": {"county": "区县", "school": "学校", "direct": "直属单位", "city": "市局"},
    "channel": {"feed": "本局网站（公开订阅）", "wechat": "微信公众号", "portal": "区县门户网站"},
    "source": {
        "weibo": "微博",
        "wechat": "微信",
        "douyin": "抖音",
        "hot_search": "热搜榜",
        "news": "新闻网站",
        "forum": "论坛",
        "complaint": "投诉平台",
        "hotline": "12345热线",
        "tieba": "贴吧",
        "zhihu": "知乎",
    },
    "publication_action": {"publish": "发布", "withdraw": "撤稿"},
    "case_state": {
        "open": "待审核",
        "approved": "已通过",
        "returned": "已退回",
        "rejected": "不予采用",
        "superseded": "已被新版本取代",
        "held": "舆情暂缓",
    },
}
SEVERITY_ORDER = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}
REVIEW_ROLES = (Role.REVIEWER_SCHOOL, Role.REVIEWER_COUNTY, Role.REVIEWER_CITY, Role.LEADER)


def label(value: object, kind: str) -> str:
    """The Chinese name of ``value`` among ``kind`` (a Jinja filter: ``x|label('status')``),
    or the value itself when none is known."""
    if value is None:
        return ""
    text = str(value)
    return LABELS.get(kind, {}).get(text, text)


def period_label(period: str | None) -> str:
    """A ranking period as people say it: ``month:2026-11`` → 2026年11月."""
    if not period:
        return ""
    kind, _, value = str(period).partition(":")
    halves = {"H1": "上半年", "H2": "下半年"}
    quarters = {"Q1": "第一季度", "Q2": "第二季度", "Q3": "第三季度", "Q4": "第四季度"}
    year, _, part = value.partition("-")
    if kind == "month" and part.isdigit():
        return f"{year}年{int(part)}月"
    if kind == "quarter" and part in quarters:
        return f"{year}年{quarters[part]}"
    if kind == "half" and part in halves:
        return f"{year}年{halves[part]}"
    if kind == "year" and year.isdigit():
        return f"{year}年"
    return str(period)


def recent_periods(kind: str, today: date, count: int = 12) -> list[str]:
    """The periods of ``kind`` up to the one holding ``today``, newest first."""
    found: list[str] = []
    year, month = today.year, today.month
    step = {"month": 1, "quarter": 3, "half": 6, "year": 12}.get(kind, 1)
    for _ in range(count):
        label_ = current_period(kind, date(year, month, 1))
        if label_ not in found:
            found.append(label_)
        month -= step
        while month < 1:
            month += 12
            year -= 1
    return found


def source_label(source: str | None) -> str:
    """Where an opinion item was found; codes the console does not know stay generic."""
    if not source:
        return ""
    known = LABELS["source"].get(source)
    if known:
        return known
    return source if not source.isascii() else "网络平台"


def channel_label(channel: str | None) -> str:
    """A publication channel: the bureau's own feed or a configured outside one."""
    if not channel:
        return ""
    known = LABELS["channel"].get(channel)
    return known or (channel if not channel.isascii() else "外部推送渠道")


def audit_comment(row: dict[str, object]) -> str:
    """What an audit step says, in Chinese where the review service records a machine
    note (a time, an outlet with its level codes, a delivery error)."""
    decision, comment = str(row.get("decision", "")), str(row.get("comment") or "")
    if not comment:
        return ""
    if decision == "superseded":
        return "已报送新版本，本版审核随之结束"
    if decision == "scheduled":
        try:
            return f"定于 {local_time(comment)} 发布"
        except ValueError:
            return ""
    if decision == "adopted":
        outlet, _, codes = comment.rpartition(" (")
        level, _, placement = codes.rstrip(")").partition(", ")
        if outlet:
            return f"{outlet}（{label(level, 'outlet_level')}，{label(placement, 'placement')}）"
    if decision == "publication_failed":
        return "推送未成功，系统将自动重试"
    return comment


def alert_step(action: str) -> str:
    """An alert history entry in Chinese, including the service's own steps."""
    owner = LABELS["owner_level"]
    if action.startswith("escalated to "):
        return f"超时未签收，升级至{owner.get(action.removeprefix('escalated to '), '上级')}"
    if action.startswith("severity raised to "):
        return f"等级升至{label(action.removeprefix('severity raised to '), 'severity')}"
    return label(action, "alert_action")


def local_time(value: str | datetime | None) -> str:
    """A UTC time as the bureau reads it: Asia/Shanghai, to the minute."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class MenuItem:
    path: str
    title: str
    badge: str = ""  # the count (from /waiting.json) shown beside the title


def is_city_office(principal: Principal, org: OrgTree) -> bool:
    return principal.unit == org.city.code and principal.has(Role.REVIEWER_CITY, Role.ADMIN)


def menu_for(principal: Principal, org: OrgTree) -> list[MenuItem]:
    """The pages a person's roles open, in the order of the day's work."""
    items: list[MenuItem] = []
    if principal.has(Role.CORRESPONDENT):
        items += [
            MenuItem("/stories/new", "写稿报送"),
            MenuItem("/stories", "本单位稿件", badge="returned"),
        ]
    if principal.has(*REVIEW_ROLES):
        items.append(MenuItem("/review", "审核队列", badge="queue"))
        if not principal.has(Role.CORRESPONDENT):
            items.append(MenuItem("/stories", "辖区稿件"))
    if is_city_office(principal, org):
        items += [
            MenuItem("/office", "发布与采用", badge="to_publish"),
            MenuItem("/campaigns", "专项任务"),
        ]
    items.append(MenuItem("/rankings", "积分排行"))
    if principal.has(Role.OPINION_OFFICER):
        items.append(MenuItem("/opinion", "舆情预警", badge="alerts"))
        items.append(MenuItem("/opinion/items", "舆情信息"))
        items.append(MenuItem("/opinion/briefings", "舆情简报"))
    return items


def current_period(kind: str, today: date) -> str:
    """The label of the period of ``kind`` that holds ``today`` (e.g. ``quarter:2026-Q4``)."""
    if kind == "month":
        return f"month:{today:%Y-%m}"
    if kind == "quarter":
        return f"quarter:{today.year}-Q{(today.month - 1) // 3 + 1}"
    if kind == "half":
        return f"half:{today.year}-H{1 if today.month <= 6 else 2}"
    return f"year:{today.year}"


def today_in_shanghai() -> date:
    return local_now().date()


class AdoptionForm(BaseModel):
    """The city office's record of an outside outlet running a story."""

    outlet: str
    level: str
    placement: str
    date: str
    link: str
    leader_instruction: str | None = None  # a checkbox: sent only when ticked


class CampaignForm(BaseModel):
    """A campaign with its one task, as an administrator defines it."""

    code: str
    name: str
    period: str
    owner_type: str
    what: str
    count: int
    deadline: str


class RankingQuery(BaseModel):
    """Which ranking a page asks for: a period of a kind, of the schools (of one county
    when ``county`` is set) or of the counties."""

    kind: str = "month"
    period: str = ""
    scope: str = "schools"
    county: str = ""
    page: int = 1

    def understood(self, today: date) -> RankingQuery:
        """What is not known falls back to the schools, monthly; no period means the
        current one; a county narrows only a ranking of schools."""
        kind = self.kind if self.kind in LABELS["period_kind"] else "month"
        scope = self.scope if self.scope in ("schools", "counties") else "schools"
        period = self.period.strip() or current_period(kind, today)
        county = self.county if scope == "schools" else ""
        page = max(1, self.page)
        return RankingQuery(kind=kind, period=period, scope=scope, county=county, page=page)
