"""A bulletin (通报) as the bureau issues it: the title naming the issuer, the period and
the subject, the issuing office and date, a covering text written from the figures, and
the tables' columns with unit names, Chinese labels, numbers as numbers and local times."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from services.scoring.models import Quota
from services.scoring.periods import Period, parse_period
from shared.clock import BUREAU_ZONE
from shared.orgtree import OrgTree

CN_NUMBERS = "一二三四"
SEVERITY_NAMES = {"blue": "蓝色（一般）", "yellow": "黄色（较大）", "orange": "橙色（重大）",
                  "red": "红色（特别重大）"}  # fmt: skip
TOPIC_NAMES = {
    "safety": "校园安全", "fees": "教育收费", "food": "食品安全", "teacher_conduct": "师德师风",
    "bullying": "校园欺凌", "admissions": "招生入学", "facilities": "校舍设施", "other": "其他",
}  # fmt: skip
TYPE_NAMES = {"school": "学校", "direct": "直属单位", "county": "县区教育局", "city": "市教育局"}
PERCENT = "0.0%"
POINTS = "0.0#"
LOCAL_TIME = "yyyy-mm-dd hh:mm"


@dataclass(frozen=True)
class Column:
    title: str
    value: Callable[[dict[str, Any]], Any]
    number_format: str | None = None


@dataclass
class Bulletin:
    title: str
    issuer: str
    issued_on: str
    paragraphs: list[str]
    tie_rule: str
    file_stem: str
    ranking: list[dict[str, Any]]
    zero: list[dict[str, Any]]
    shortfalls: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    scope: str


def period_words(period: Period) -> str:
    """``2026年第四季度``, ``2026年11月``, ``2026年上半年``, ``2026年度``."""
    if period.kind == "month":
        return f"{period.year}年{period.index}月"
    if period.kind == "quarter":
        return f"{period.year}年第{CN_NUMBERS[period.index - 1]}季度"
    if period.kind == "half":
        return f"{period.year}年{'上' if period.index == 1 else '下'}半年"
    return f"{period.year}年度"


def date_words(moment: datetime) -> str:
    local = moment.astimezone(BUREAU_ZONE)
    return f"{local.year}年{local.month}月{local.day}日"


def _local(moment: datetime | str | None) -> datetime | None:
    """A local (Shanghai) wall-clock time for a spreadsheet cell, which has no time zone."""
    if moment is None:
        return None
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.astimezone(BUREAU_ZONE).replace(tzinfo=None)


def _name(org: OrgTree, code: str | None) -> str:
    unit = org.get(code) if code else None
    return unit.name if unit else (code or "")


def _county_name(org: OrgTree, code: str | None) -> str:
    """A county as a column names it: 临江市, not 临江市教育局."""
    return _name(org, code).removesuffix("教育局")


def _names(rows: list[dict[str, Any]], limit: int = 10) -> str:
    names = [row["name"] for row in rows[:limit]]
    text = "、".join(names)
    return text + (f"等{len(rows)}个单位" if len(rows) > limit else "")


def _veto_words(veto: dict[str, Any] | None) -> str:
    if veto is None:
        return ""
    if veto.get("hidden"):
        return "一票否决"
    return (
        f"一票否决：{TOPIC_NAMES.get(veto['topic'], veto['topic'])}，"
        f"{veto['decided_by_name']}于{veto['decided_at'][:10]}认定，理由：{veto['reason']}"
    )


def covering_text(
    *,
    ranking: dict[str, Any],
    org: OrgTree,
    period: Period,
    county_name: str | None,
    quotas: list[Quota],
) -> list[str]:
    """The covering paragraphs, written from the ranking's figures."""
    rows = ranking["rows"]
    where = county_name or "全市"
    total = {key: sum(row[key] for row in rows) for key in (
        "submitted", "approved", "published", "adopted", "adopted_national",
        "adopted_provincial", "adopted_city", "adopted_county",
    )}  # fmt: skip
    rate = total["adopted"] / total["submitted"] if total["submitted"] else 0.0
    reporting = sum(1 for row in rows if row["submitted"])
    subject = "县区" if ranking["scope"] == "counties" else "学校（单位）"
    figures = (
        f"{period_words(period)}，{where}纳入考核的{len(rows)}个{subject}中有{reporting}个报送稿件，"
        f"共报送{total['submitted']}篇，终审通过{total['approved']}篇，在局平台发布"
        f"{total['published']}篇，被外部媒体采用{total['adopted']}篇（其中国家级"
        f"{total['adopted_national']}篇、省级{total['adopted_provincial']}篇、市级"
        f"{total['adopted_city']}篇、县级{total['adopted_county']}篇），采用率{rate:.1%}。"
    )
    paragraphs = [figures]
    if not ranking["ranked"]:
        paragraphs.append(ranking["note"] or "本期各单位得分相同，不排名次。")
    else:
        top = [row for row in rows if row["award_rank"] is not None and row["award_rank"] <= 3]
        if top:
            named = "、".join(f"{row['name']}（{row['points']:g}分）" for row in top)
            paragraphs.append(f"综合得分位居前列的单位是：{named}，予以通报表扬。")
    zero = [row for row in rows if row["zero_submissions"]]
    paragraphs.append(
        f"本期报送信息为零的单位有{len(zero)}个：{_names(zero)}，取消本期评奖资格。"
        if zero
        else "本期没有报送信息为零的单位。"
    )
    vetoed = [row for row in rows if row["veto"] is not None]
    paragraphs.append(
        f"经认定发生严重负面舆情、实行一票否决的单位有{len(vetoed)}个：{_names(vetoed)}，"
        "取消本年度评奖资格。"
        if vetoed
        else "本期没有经认定实行一票否决的单位。"
    )
    types = {"county"} if ranking["scope"] == "counties" else {"school", "direct"}
    wanted = [quota.name for quota in quotas if types.intersection(quota.unit_types)]
    if wanted:
        paragraphs.append(
            "请各单位对照考核细则，查漏补缺，做好下一阶段教育宣传工作：" + "；".join(wanted) + "。"
        )
    return paragraphs


def compose(
    *,
    ranking: dict[str, Any],
    incidents: list[dict[str, Any]],
    org: OrgTree,
    period: Period,
    issuer: str | None,
    issued_at: datetime,
    quotas: list[Quota],
) -> Bulletin:
    """The bulletin of a ranking: title, issuer, date, covering text and tables."""
    county = org.get(ranking["county"]) if ranking.get("county") else None
    county_name = county.name.removesuffix("教育局") if county else None
    subject = (
        f"{county_name}学校"
        if county_name
        else ("各县区" if ranking["scope"] == "counties" else "")
    )
    title = f"{org.city.name}关于{period_words(period)}{subject}教育宣传工作情况的通报"
    rows = [{**row, "county_name": _county_name(org, row["county"])} for row in ranking["rows"]]
    zero = [row for row in rows if row["zero_submissions"]]
    shortfalls = [
        {
            **line,
            "county_name": _county_name(org, org.unit(line["unit"]).county),
            "period_words": period_words(parse_period(line["period"])),
        }
        for line in ranking["quota_shortfalls"]
    ]
    shown = [
        {
            **row,
            "unit_name": _name(org, row["unit"]),
            "county_name": _county_name(org, row["county"]),
        }
        for row in incidents
    ]
    stem = period.label.replace(":", "-") + (f"-{ranking['county']}" if county else "")
    return Bulletin(
        title=title,
        issuer=issuer or f"{org.city.name}办公室",
        issued_on=date_words(issued_at),
        paragraphs=covering_text(
            ranking=ranking, org=org, period=period, county_name=county_name, quotas=quotas
        ),
        tie_rule=ranking["tie_rule"],
        file_stem=f"{stem}-{ranking['scope']}",
        ranking=rows,
        zero=zero,
        shortfalls=shortfalls,
        incidents=shown,
        scope=ranking["scope"],
    )


def _flag(row: dict[str, Any]) -> str:
    notes = []
    if not row["active"]:
        notes.append("本期尚未使用平台")
    if row["zero_submissions"]:
        notes.append("报送信息为零，取消评奖资格")
    if row["veto"]:
        notes.append(_veto_words(row["veto"]))
    return "；".join(notes)


def _rank(value: int | None) -> int | str:
    return "" if value is None else value


def _field(title: str, key: str, number_format: str | None = None) -> Column:
    """A column that shows one field of the row as it is."""
    return Column(title, itemgetter(key), number_format)


RANKING_COLUMNS = (
    Column("名次", lambda r: _rank(r["rank"])),
    Column("评奖名次", lambda r: _rank(r["award_rank"])),
    _field("单位名称", "name"),
    Column("所属县区", lambda r: r["county_name"] if r["type"] != "county" else ""),
    _field("总得分", "points", POINTS),
    _field("计分", "ledger_points", POINTS),
    _field("任务扣分", "quota_deductions", POINTS),
    _field("报送数", "submitted"),
    _field("终审通过数", "approved"),
    _field("局平台发布数", "published"),
    _field("外部采用数", "adopted"),
    _field("国家级采用", "adopted_national"),
    _field("省级采用", "adopted_provincial"),
    _field("市级采用", "adopted_city"),
    _field("县级采用", "adopted_county"),
    _field("采用率", "adoption_rate", PERCENT),
    _field("任务缺口", "quota_short"),
    _field("舆情事件数", "incidents"),
    Column("评奖资格", lambda r: "有" if r["eligible"] else "无"),
    Column("说明", _flag),
)
ZERO_COLUMNS = (
    _field("单位名称", "name"),
    _field("所属县区", "county_name"),
    Column("单位类型", lambda r: TYPE_NAMES.get(r["type"], r["type"])),
    Column("处理", lambda r: "报送信息为零，取消评奖资格"),
)
SHORTFALL_COLUMNS = (
    _field("单位名称", "unit_name"),
    _field("所属县区", "county_name"),
    _field("任务", "name"),
    _field("任务期间", "period_words"),
    _field("目标数", "target"),
    _field("完成数", "actual"),
    _field("缺口", "shortfall"),
    _field("扣分", "deduction", POINTS),
)
INCIDENT_COLUMNS = (
    _field("单位名称", "unit_name"),
    _field("所属县区", "county_name"),
    Column("主题", lambda r: TOPIC_NAMES.get(r["topic"], r["topic"])),
    Column("预警级别", lambda r: SEVERITY_NAMES.get(r["severity"], r["severity"])),
    Column("首次发现时间", lambda r: _local(r["first_at"]), LOCAL_TIME),
    Column("一票否决候选", lambda r: "是" if r["candidate"] else "否"),
    Column("认定情况", lambda r: _veto_words(r["veto"]) if r["serious"] else "未认定"),
    _field("事件编号", "incident_id"),
)


def cells(columns: tuple[Column, ...], rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[column.value(row) for column in columns] for row in rows]


def ranking_csv(bulletin: Bulletin) -> bytes:
    """The ranking as UTF-8 CSV with a byte-order mark (spreadsheet programs need it)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([column.title for column in RANKING_COLUMNS])
    writer.writerows(cells(RANKING_COLUMNS, bulletin.ranking))
    return ("\ufeff" + out.getvalue()).encode("utf-8")
