"""Bulletins (通报) as spreadsheets: the ranking, zero-submission units, quota shortfalls
and opinion incidents of a period, with Chinese headers; the ranking also as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

SCOPE_NAMES = {"schools": "学校", "counties": "县区"}

RANKING_COLUMNS = (
    ("rank", "名次"),
    ("award_rank", "评奖名次"),
    ("unit", "单位代码"),
    ("name", "单位名称"),
    ("county", "所属县区"),
    ("points", "总得分"),
    ("ledger_points", "计分"),
    ("quota_deductions", "任务扣分"),
    ("submitted", "报送数"),
    ("approved", "终审通过数"),
    ("returned", "退回数"),
    ("rejected", "不予采用数"),
    ("published", "局平台发布数"),
    ("adopted", "外部采用数"),
    ("adopted_national", "国家级采用"),
    ("adopted_provincial", "省级采用"),
    ("adopted_city", "市级采用"),
    ("adopted_county", "县级采用"),
    ("adoption_rate", "采用率"),
    ("quota_short", "任务缺口"),
    ("incidents", "舆情事件数"),
    ("eligible", "评奖资格"),
    ("flag", "说明"),
)
ZERO_COLUMNS = (
    ("unit", "单位代码"),
    ("name", "单位名称"),
    ("county", "所属县区"),
    ("reason", "原因"),
)
SHORTFALL_COLUMNS = (
    ("unit", "单位代码"),
    ("unit_name", "单位名称"),
    ("name", "任务"),
    ("period", "任务期间"),
    ("target", "目标数"),
    ("actual", "完成数"),
    ("shortfall", "缺口"),
    ("deduction", "扣分"),
)
INCIDENT_COLUMNS = (
    ("incident_id", "事件编号"),
    ("unit", "单位代码"),
    ("county", "所属县区"),
    ("topic", "主题"),
    ("severity", "级别"),
    ("serious", "严重负面（一票否决）"),
    ("first_at", "首次发现时间"),
)


def _flag(row: dict[str, Any]) -> str:
    notes = []
    if row["zero_submissions"]:
        notes.append("报送信息为零，取消评奖资格")
    if row["veto"]:
        veto = row["veto"]
        notes.append(f"一票否决：舆情事件 {veto['incident_id']}（{veto['topic']}）")
    return "；".join(notes)


def _cell(row: dict[str, Any], key: str) -> Any:
    if key == "flag":
        return _flag(row)
    value = row.get(key)
    if key == "eligible":
        return "有" if value else "无"
    if key == "serious":
        return "是" if value else "否"
    if key == "adoption_rate":
        return f"{value:.1%}"
    return "" if value is None else value


def ranking_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The ranking as a header row and one row per unit."""
    return [[title for _, title in RANKING_COLUMNS]] + [
        [_cell(row, key) for key, _ in RANKING_COLUMNS] for row in rows
    ]


def ranking_csv(rows: list[dict[str, Any]]) -> bytes:
    """The ranking as UTF-8 CSV with a byte-order mark (spreadsheet programs need it)."""
    out = io.StringIO()
    csv.writer(out).writerows(ranking_table(rows))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def bulletin_xlsx(ranking: dict[str, Any], incidents: list[dict[str, Any]]) -> bytes:
    """The whole bulletin as an XLSX workbook with four sheets."""
    book = Workbook()
    sheet = book.active
    sheet.title = "排行榜"
    title = f"{ranking['period']} {SCOPE_NAMES[ranking['scope']]}排行榜"
    if ranking.get("county"):
        title += f"（{ranking['county']}）"
    _fill(sheet, ranking_table(ranking["rows"]))
    sheet.append([])
    sheet.append([title, f"并列规则：{ranking['tie_rule']}"])
    zero = [
        {**row, "reason": "报送信息为零，取消评奖资格"}
        for row in ranking["rows"]
        if row["zero_submissions"]
    ]
    _fill(book.create_sheet("零报送单位"), _table(ZERO_COLUMNS, zero))
    _fill(book.create_sheet("任务缺口"), _table(SHORTFALL_COLUMNS, ranking["quota_shortfalls"]))
    _fill(book.create_sheet("舆情事件"), _table(INCIDENT_COLUMNS, incidents))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _table(columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[title for _, title in columns]] + [
        [_cell(row, key) for key, _ in columns] for row in rows
    ]


def _fill(sheet: Any, table: list[list[Any]]) -> None:
    for row in table:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
