"""A briefing as a printable PDF (reportlab, A4): the title, the period in words, the
scope and the issuing line; a covering paragraph; the trend chart (the same PNG as the
page and the workbook); the figures, topics, incidents with their handling and the top
items beside the period before; 「第 N 页，共 M 页」 on every page and, for a period not yet
over, that it is not over on every page too.

Chinese is drawn with the system's CJK TrueType font, embedded as a subset with its
ToUnicode map (so the text can be searched and copied); where none is installed, with
the CID font every PDF reader carries (STSong-Light), so a PDF is always made."""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.fonts import addMapping
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    HRFlowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from services.sentiment.briefing_files import change_text, cjk_font_files, trend_png
from services.sentiment.briefings import Briefing, IncidentLine
from services.sentiment.periods import local_text

log = logging.getLogger(__name__)

FALLBACK_FONT = "STSong-Light"  # Adobe's Simplified Chinese CID font: every reader has it
MARGIN = 18 * mm
WIDTH = A4[0] - 2 * MARGIN  # the text column
RED = colors.HexColor("#c0392b")
GREY = colors.HexColor("#666666")
HEAD = colors.HexColor("#eef2f6")


def register_cjk_font(files: Iterable[str]) -> str:
    """The name of a registered font that draws Chinese: the first of ``files`` reportlab
    can embed (TrueType outlines: WenQuanYi, Droid; the CFF-outlined Noto and Source Han
    CJK are refused and skipped), else the CID font readers carry."""
    font: TTFont | UnicodeCIDFont | None = None
    for path in files:
        name = "CJK-" + path.rsplit("/", 1)[-1].split(".")[0]
        try:
            # a .ttc holds several faces: the first is the proportional one
            font = TTFont(name, path, subfontIndex=0)
            break
        except Exception as exc:  # any unreadable font file: try the next, never fail the PDF
            log.info("font %s not usable for the PDF: %s", path, exc)
    font = font or UnicodeCIDFont(FALLBACK_FONT)
    pdfmetrics.registerFont(font)
    # one face only: bold and italic mark-up fall back to it instead of failing
    for bold in (0, 1):
        for italic in (0, 1):
            addMapping(font.fontName, bold, italic, font.fontName)
    return str(font.fontName)


@functools.cache
def pdf_font() -> str:
    """The font of every PDF, registered once per process (loading the TTC takes ~0.2 s)."""
    return register_cjk_font(cjk_font_files())


def _styles(font: str) -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=17, wordWrap="CJK")
    cell = ParagraphStyle("cell", parent=body, fontSize=8.5, leading=12)
    return {
        "title": ParagraphStyle(
            "title", parent=body, fontSize=22, leading=30, alignment=TA_CENTER, textColor=RED
        ),
        "period": ParagraphStyle("period", parent=body, fontSize=12, alignment=TA_CENTER),
        "issuer": ParagraphStyle("issuer", parent=body),
        "date": ParagraphStyle("date", parent=body, alignment=TA_RIGHT),
        "note": ParagraphStyle("note", parent=body, textColor=RED, alignment=TA_CENTER),
        "body": ParagraphStyle("text", parent=body, firstLineIndent=21),
        # a heading never ends a page alone
        "h2": ParagraphStyle(
            "h2", parent=body, fontSize=13, leading=20, spaceBefore=10, keepWithNext=1
        ),
        "h3": ParagraphStyle("h3", parent=body, fontSize=11, spaceBefore=4, keepWithNext=1),
        "small": ParagraphStyle("small", parent=body, fontSize=9, leading=13, textColor=GREY),
        "cell": cell,
        "number": ParagraphStyle("number", parent=cell, alignment=TA_RIGHT),
    }


def _text(text: Any) -> str:
    """Paragraph mark-up for plain text: an item may carry < or & of its own."""
    return escape(str(text))


def _versus(now: int, before: int) -> str:
    if now == before:
        return "持平"
    word, share = ("增加", "增幅") if now > before else ("减少", "降幅")
    text = f"{word}{abs(now - before)}条"
    return f"{text}（{share}{abs(now - before) / before:.0%}）" if before else text


def covering_text(briefing: Briefing) -> str:
    """The paragraph that opens the briefing: the figures in words."""
    totals = briefing.totals
    system = briefing.scope_name.removesuffix("教育局") + "教育系统"
    running = "截至编制时" if not briefing.ended else ""
    first = f"{briefing.period_label}{running}，共监测到涉及{system}的网络信息{totals.total}条，"
    first += f"其中负面信息{totals.negative}条"
    if totals.total:
        first += f"，占{totals.negative / totals.total:.1%}"
    sentences = [
        first,
        f"与{briefing.previous_label}相比，信息总量{_versus(totals.total, totals.previous_total)}，"
        f"负面信息{_versus(totals.negative, totals.previous_negative)}",
    ]
    negative = sorted((t for t in briefing.topics if t.negative), key=lambda t: -t.negative)
    if negative:
        named = "、".join(f"“{t.label}”（{t.negative}条）" for t in negative[:3])
        sentences.append(f"负面信息主要涉及{named}")
    sentences.append(
        f"本期新增舆情事件{len(briefing.new_incidents)}起，"
        f"升级{len(briefing.escalated_incidents)}起，办结{len(briefing.closed_incidents)}起"
    )
    return "。".join(sentences) + "。"


def _span(briefing: Briefing) -> str:
    """统计时段：the first and last day of the period (to now for one not yet over)."""
    first = local_text(briefing.start, with_time=False)
    if not briefing.ended:
        return f"统计时段：{first}起，至{local_text(briefing.generated_at)}止"
    last = local_text(briefing.end - timedelta(seconds=1), with_time=False)
    return f"统计时段：{first}至{last}" if last != first else f"统计时段：{first}"


def _table(
    rows: Sequence[Sequence[str | Flowable]],
    widths: Sequence[float],
    styles: dict[str, ParagraphStyle],
    numeric: Iterable[int] = (),
) -> Table:
    """A table with a shaded header row repeated on each page; text wraps inside cells."""
    right = set(numeric)
    cells = [
        [
            value
            if isinstance(value, Flowable)
            else Paragraph(_text(value), styles["number" if i and c in right else "cell"])
            for c, value in enumerate(row)
        ]
        for i, row in enumerate(rows)
    ]
    table = Table(cells, colWidths=list(widths), repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
                ("BACKGROUND", (0, 0), (-1, 0), HEAD),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _masthead(briefing: Briefing, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    """The red-headed top of a 简报: title, period, issuer and date, a red rule."""
    issued = Table(
        [
            [
                Paragraph(_text(f"{briefing.scope_name}编制"), styles["issuer"]),
                Paragraph(_text(local_text(briefing.generated_at)), styles["date"]),
            ]
        ],
        colWidths=[WIDTH / 2, WIDTH / 2],
        style=[("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)],
    )
    parts: list[Flowable] = [
        Paragraph(_text(briefing.title), styles["title"]),
        Paragraph(_text(briefing.period_label), styles["period"]),
        Spacer(0, 4 * mm),
        issued,
        HRFlowable(width="100%", thickness=1.5, color=RED, spaceBefore=1, spaceAfter=4 * mm),
    ]
    if briefing.note:
        notice = f"{briefing.note}，数据统计至该时刻，并与{briefing.previous_label}比较。"
        parts.append(Paragraph(_text(notice), styles["note"]))
        parts.append(Spacer(0, 2 * mm))
    return parts


def _overview(briefing: Briefing, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    totals = briefing.totals
    figures = _table(
        [
            ["项目", "本期", briefing.previous_label, "变化"],
            ["信息总量", str(totals.total), str(totals.previous_total),
             change_text(totals.total, totals.previous_total)],
            ["负面信息", str(totals.negative), str(totals.previous_negative),
             change_text(totals.negative, totals.previous_negative)],
            ["新增舆情事件", f"{len(briefing.new_incidents)}起", "—", "—"],
            ["升级舆情事件", f"{len(briefing.escalated_incidents)}起", "—", "—"],
            ["办结舆情事件", f"{len(briefing.closed_incidents)}起", "—", "—"],
        ],
        [WIDTH * 0.25, WIDTH * 0.2, WIDTH * 0.35, WIDTH * 0.2],
        styles,
        numeric=(1, 2, 3),
    )  # fmt: skip
    step = "小时" if briefing.kind == "daily" else "日"
    chart = Image(io.BytesIO(trend_png(briefing)), width=WIDTH, height=WIDTH * 3.2 / 8)
    caption = f"图1　{briefing.period_label}信息量走势（全部信息与负面信息，按{step}统计）"
    return [
        Paragraph("一、总体情况", styles["h2"]),
        Paragraph(_text(_span(briefing)), styles["small"]),
        Paragraph(_text(covering_text(briefing)), styles["body"]),
        Spacer(0, 2 * mm),
        figures,
        Spacer(0, 3 * mm),
        KeepTogether([chart, Paragraph(_text(caption), styles["small"])]),
    ]


def _topics(briefing: Briefing, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    parts: list[Flowable] = [Paragraph("二、话题分布", styles["h2"])]
    if not briefing.topics:
        return [*parts, Paragraph("本期未监测到信息。", styles["body"])]
    rows: list[list[str | Flowable]] = [["话题", "全部信息", "负面信息", "上期全部", "上期负面"]]
    rows += [
        [t.label, str(t.total), str(t.negative), str(t.previous_total), str(t.previous_negative)]
        for t in briefing.topics
    ]
    table = _table(rows, [WIDTH * 0.32, *[WIDTH * 0.17] * 4], styles, numeric=(1, 2, 3, 4))
    note = f"注：上期指{briefing.previous_label}。"
    return [*parts, table, Paragraph(_text(note), styles["small"])]


def _incident_table(lines: list[IncidentLine], styles: dict[str, ParagraphStyle]) -> Table:
    rows: list[list[str | Flowable]] = [
        ["涉及单位", "话题", "等级", "条数", "首条时间", "状态", "处置经过"]
    ]
    for line in lines:
        handling = "<br/>".join(_text(step) for step in line.handling) or "—"
        state = f"{line.state}（{line.owner}）" if line.owner else line.state
        rows.append([line.unit, line.topic, line.severity, str(line.item_count),
                     local_text(line.first_item_at), state,
                     Paragraph(handling, styles["cell"])])  # fmt: skip
    widths = [0.15, 0.1, 0.1, 0.06, 0.12, 0.12, 0.35]
    return _table(rows, [WIDTH * w for w in widths], styles, numeric=(3,))


def _incidents(briefing: Briefing, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    parts: list[Flowable] = [Paragraph("三、舆情事件及处置", styles["h2"])]
    sections = (
        ("（一）新增事件", briefing.new_incidents),
        ("（二）升级事件", briefing.escalated_incidents),
        ("（三）办结事件", briefing.closed_incidents),
    )
    for title, lines in sections:
        parts.append(Paragraph(_text(f"{title}（{len(lines)}起）"), styles["h3"]))
        parts.append(
            _incident_table(lines, styles) if lines else Paragraph("本期无。", styles["body"])
        )
    return parts


def _top_items(briefing: Briefing, styles: dict[str, ParagraphStyle]) -> list[Flowable]:
    parts: list[Flowable] = [Paragraph("四、重点信息", styles["h2"])]
    if not briefing.top_items:
        return [*parts, Paragraph("本期未监测到负面信息。", styles["body"])]
    rows: list[list[str | Flowable]] = [["序号", "信息", "判断依据"]]
    for number, item in enumerate(briefing.top_items, start=1):
        about = " · ".join(
            (item.severity, item.unit, item.topic, item.source, local_text(item.published_at))
        )
        markup = f'<font color="#666666">{_text(about)}</font><br/>{_text(item.text)}'
        if item.link:
            markup += f'<br/><font color="#666666">原文：{_text(item.link)}</font>'
        rows.append([str(number), Paragraph(markup, styles["cell"]), "、".join(item.reasons)])
    return [*parts, _table(rows, [WIDTH * 0.07, WIDTH * 0.7, WIDTH * 0.23], styles)]


def _numbered_canvas(briefing: Briefing, font: str) -> type[Canvas]:
    """A canvas that holds its pages back until the end, so each can say 共 M 页, and
    draws the footer (and, for a period not yet over, the notice) on every page."""
    footer = f"{briefing.title} · {briefing.period_label}"

    class NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self.pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for number, state in enumerate(self.pages, start=1):
                self.__dict__.update(state)
                self.setFont(font, 8.5)
                self.setFillColor(GREY)
                self.drawString(MARGIN, 10 * mm, footer)
                self.drawRightString(
                    A4[0] - MARGIN, 10 * mm, f"第 {number} 页，共 {len(self.pages)} 页"
                )
                if briefing.note:
                    self.setFillColor(RED)
                    self.drawRightString(A4[0] - MARGIN, A4[1] - 10 * mm, briefing.note)
                super().showPage()
            super().save()

    return NumberedCanvas


def briefing_pdf(briefing: Briefing, *, font: str | None = None) -> bytes:
    """The PDF, drawn with ``font`` (a registered font's name), by default the system's."""
    font = font or pdf_font()
    styles = _styles(font)
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=16 * mm,
        bottomMargin=18 * mm,
        title=f"{briefing.title}（{briefing.period_label}）",
        author=briefing.scope_name,
        subject="舆情简报",
        lang="zh-CN",
    )
    story = [
        *_masthead(briefing, styles),
        *_overview(briefing, styles),
        *_topics(briefing, styles),
        *_incidents(briefing, styles),
        *_top_items(briefing, styles),
    ]
    document.build(story, canvasmaker=_numbered_canvas(briefing, font))
    return out.getvalue()
