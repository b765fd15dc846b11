"""The bulletin as a printable HTML page (``@page`` A4 landscape), the same document as
the workbook."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from services.scoring.bulletins.document import (
    INCIDENT_COLUMNS,
    LOCAL_TIME,
    PERCENT,
    RANKING_COLUMNS,
    SHORTFALL_COLUMNS,
    ZERO_COLUMNS,
    Bulletin,
    Column,
)


def _html_value(value: Any, number_format: str | None) -> str:
    if value is None or value == "":
        return ""
    if number_format == PERCENT:
        return f"{value:.1%}"
    if number_format == LOCAL_TIME and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:g}"
    return html.escape(str(value))


def _html_table(caption: str, columns: tuple[Column, ...], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c.title)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{_html_value(c.value(row), c.number_format)}</td>" for c in columns)
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(columns)}">无</td></tr>'
    return (
        f"<h2>{html.escape(caption)}</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


STYLE = """
@page { size: A4 landscape; margin: 18mm 12mm; }
body { font-family: "FangSong", "STFangsong", "SimSun", serif; font-size: 12pt; margin: 0 auto;
       max-width: 297mm; }
h1 { font-family: "SimHei", "Heiti SC", sans-serif; text-align: center; font-size: 20pt; }
.issuer { text-align: right; }
p { text-indent: 2em; line-height: 1.8; }
h2 { font-size: 14pt; margin-top: 1.5em; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; page-break-inside: auto; }
thead { display: table-header-group; }
tr { page-break-inside: avoid; }
th, td { border: 1px solid #444; padding: 2px 4px; }
td { text-align: center; white-space: nowrap; }
td:last-child { white-space: normal; }
.rule { font-size: 10pt; text-indent: 0; }
"""


def bulletin_html(bulletin: Bulletin) -> str:
    """The bulletin as a page that prints as the official document."""
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in bulletin.paragraphs)
    tables = "".join(
        (
            _html_table("排行榜", RANKING_COLUMNS, bulletin.ranking),
            _html_table("零报送单位", ZERO_COLUMNS, bulletin.zero),
            _html_table("任务缺口", SHORTFALL_COLUMNS, bulletin.shortfalls),
            _html_table("舆情事件", INCIDENT_COLUMNS, bulletin.incidents),
        )
    )
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(bulletin.title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(bulletin.title)}</h1>"
        f'<p class="issuer">{html.escape(bulletin.issuer)}<br>{html.escape(bulletin.issued_on)}</p>'
        f"{paragraphs}{tables}"
        f'<p class="rule">排名规则：{html.escape(bulletin.tie_rule)}</p></body></html>'
    )
