"""The bulletin as an XLSX workbook ready to print: 通报 (title, covering text, ranking),
零报送单位, 任务缺口 and 舆情事件, each with fitted columns, a print area, its header
row repeated, landscape A4 and the title as page header."""

from __future__ import annotations

import io
import unicodedata
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from services.scoring.bulletins.document import (
    INCIDENT_COLUMNS,
    RANKING_COLUMNS,
    SHORTFALL_COLUMNS,
    ZERO_COLUMNS,
    Bulletin,
    Column,
    cells,
)


def _width(value: Any) -> int:
    """Display width of a cell's text: a Chinese character takes two columns."""
    if isinstance(value, float):
        text = f"{value:.2f}"
    elif isinstance(value, datetime):
        text = "2026-01-01 00:00"
    else:
        text = str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(
    sheet: Worksheet,
    columns: tuple[Column, ...],
    rows: list[dict[str, Any]],
    *,
    top: int,
    title: str,
) -> int:
    """Write a header and rows from row ``top``; returns the last row written."""
    header_font = Font(bold=True)
    for index, column in enumerate(columns, start=1):
        cell = sheet.cell(row=top, column=index, value=column.title)
        cell.font = header_font
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    widths = [_width(column.title) for column in columns]
    for offset, values in enumerate(cells(columns, rows), start=1):
        for index, (column, value) in enumerate(zip(columns, values, strict=True), start=1):
            cell = sheet.cell(row=top + offset, column=index, value=value)
            if column.number_format:
                cell.number_format = column.number_format
            widths[index - 1] = max(widths[index - 1], _width(value))
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(max(width + 2, 6), 60)
    last = top + len(rows)
    end = get_column_letter(len(columns))
    sheet.print_area = f"A1:{end}{max(last, top)}"
    sheet.print_title_rows = f"{top}:{top}"
    sheet.freeze_panes = sheet.cell(row=top + 1, column=1)
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.oddHeader.center.text = title
    sheet.oddFooter.center.text = "第 &P 页，共 &N 页"
    return last


def bulletin_xlsx(bulletin: Bulletin) -> bytes:
    """The bulletin as a workbook: the 通报 sheet (title, issuer, date, covering text,
    ranking, ranking rule), then 零报送单位, 任务缺口 and 舆情事件."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "通报"
    span = len(RANKING_COLUMNS)
    end = get_column_letter(span)
    sheet["A1"] = bulletin.title
    sheet["A1"].font = Font(bold=True, size=16)
    sheet["A1"].alignment = Alignment(horizontal="center")
    sheet.merge_cells(f"A1:{end}1")
    sheet["A2"] = f"{bulletin.issuer}　　{bulletin.issued_on}"
    sheet["A2"].alignment = Alignment(horizontal="right")
    sheet.merge_cells(f"A2:{end}2")
    text = "\n".join("　　" + paragraph for paragraph in bulletin.paragraphs)
    sheet["A3"] = text
    sheet["A3"].alignment = Alignment(wrap_text=True, vertical="top")
    sheet.merge_cells(f"A3:{end}3")
    # a merged cell does not grow with its text: give the row the lines it needs
    sheet.row_dimensions[3].height = 16 * (sum(_width(p) // 150 + 1 for p in bulletin.paragraphs))
    last = _table(sheet, RANKING_COLUMNS, bulletin.ranking, top=5, title=bulletin.title)
    sheet.cell(row=last + 2, column=1, value=f"排名规则：{bulletin.tie_rule}")
    sheet.merge_cells(f"A{last + 2}:{end}{last + 2}")
    sheet.cell(row=last + 2, column=1).alignment = Alignment(wrap_text=True)
    sheet.row_dimensions[last + 2].height = 32
    sheet.print_area = f"A1:{end}{last + 2}"
    for name, columns, rows in (
        ("零报送单位", ZERO_COLUMNS, bulletin.zero),
        ("任务缺口", SHORTFALL_COLUMNS, bulletin.shortfalls),
        ("舆情事件", INCIDENT_COLUMNS, bulletin.incidents),
    ):
        extra = book.create_sheet(name)
        extra["A1"] = f"{bulletin.title}：{name}"
        extra["A1"].font = Font(bold=True, size=13)
        _table(extra, columns, rows, top=2, title=f"{bulletin.title}：{name}")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
