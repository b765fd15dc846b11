"""A briefing as files: the trend chart (PNG, matplotlib) and the workbook (XLSX,
openpyxl) with the chart on its first sheet and one sheet per section."""

from __future__ import annotations

import functools
import io
from datetime import datetime

from openpyxl import Workbook
from openpyxl.drawing.image import Image
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.worksheet import Worksheet

from services.sentiment.briefings import Briefing, IncidentLine
from services.sentiment.periods import local_text

# files of CJK fonts (Debian's fonts-wqy-zenhei in the image, Noto CJK, Source Han)
CJK_FILES = ("wqy", "notosanscjk", "sourcehansans", "droidsansfallback")


@functools.cache
def cjk_font_files() -> tuple[str, ...]:
    """The system's CJK font files (the chart and the PDF draw their Chinese with them)."""
    from matplotlib import font_manager

    return tuple(
        path
        for path in sorted(font_manager.findSystemFonts())
        if any(name in path.lower().replace("-", "") for name in CJK_FILES)
    )


@functools.cache
def _font_families() -> tuple[str, ...]:
    """The system's CJK fonts, added to matplotlib (its font cache may predate them, and
    then every Chinese label is a box), then its own font for digits."""
    from matplotlib import font_manager

    families: list[str] = []
    for path in cjk_font_files():
        font_manager.fontManager.addfont(path)
        families.append(font_manager.FontProperties(fname=path).get_name())
    return (*dict.fromkeys(families), "DejaVu Sans")


def trend_png(briefing: Briefing) -> bytes:
    """Items per day (per hour for a daily briefing), all and negative."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a Figure, not pyplot: no global state per thread
    from matplotlib.ticker import MaxNLocator

    labels = [step.label for step in briefing.trend]
    totals = [step.total for step in briefing.trend]
    negatives = [step.negative for step in briefing.trend]
    fonts = {"font.family": list(_font_families()), "axes.unicode_minus": False}
    with matplotlib.rc_context(fonts):
        figure = Figure(figsize=(8, 3.2), dpi=110)
        axes = figure.subplots()
        positions = list(range(len(labels)))
        axes.bar(positions, totals, color="#9bb7d4", label="全部信息")
        axes.bar(positions, negatives, color="#c0392b", label="负面信息")
        axes.set_xticks(positions, labels, rotation=45 if len(labels) > 10 else 0, fontsize=8)
        axes.set_ylabel("条数")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(f"{briefing.title} · {briefing.period_label} 信息量走势", fontsize=10)
        axes.legend(fontsize=8, loc="upper left")
        axes.spines[["top", "right"]].set_visible(False)
        figure.tight_layout()
        out = io.BytesIO()
        figure.savefig(out, format="png")
    return out.getvalue()


def change_text(now: int, before: int) -> str:
    if before == 0:
        return "—" if now == 0 else "新增"
    return f"{(now - before) / before:+.0%}"


def _time(at: datetime) -> str:
    return local_text(at)


def _header(sheet: Worksheet, *names: str) -> None:
    sheet.append(list(names))
    for cell in sheet[sheet.max_row]:
        cell.font = Font(bold=True)


def _incidents(sheet: Worksheet, title: str, lines: list[IncidentLine]) -> None:
    sheet.append([title])
    sheet[sheet.max_row][0].font = Font(bold=True, size=12)
    _header(
        sheet, "涉及单位", "话题", "等级", "信息条数", "首条时间", "状态", "责任单位", "处置经过"
    )
    for line in lines:
        sheet.append(
            [line.unit, line.topic, line.severity, line.item_count, _time(line.first_item_at),
             line.state, line.owner, "\n".join(line.handling) or "—"]
        )  # fmt: skip
        sheet[sheet.max_row][7].alignment = Alignment(wrap_text=True, vertical="top")
    if not lines:
        sheet.append(["本期无"])
    sheet.append([])


def _summary(summary: Worksheet, briefing: Briefing) -> None:
    summary.title = "概况"
    summary.append([briefing.title])
    summary["A1"].font = Font(bold=True, size=14)
    summary.append(["期别", briefing.period_label])
    summary.append(["范围", briefing.scope_name])
    summary.append(["编制时间", _time(briefing.generated_at)])
    if briefing.note:
        summary.append(["说明", briefing.note])
    summary.append([])
    _header(summary, "项目", "本期", briefing.previous_label, "变化")
    totals = briefing.totals
    summary.append(["信息总量", totals.total, totals.previous_total,
                    change_text(totals.total, totals.previous_total)])  # fmt: skip
    summary.append(["负面信息", totals.negative, totals.previous_negative,
                    change_text(totals.negative, totals.previous_negative)])  # fmt: skip
    summary.append(["新增舆情事件", len(briefing.new_incidents)])
    summary.append(["升级舆情事件", len(briefing.escalated_incidents)])
    summary.append(["办结舆情事件", len(briefing.closed_incidents)])
    summary.column_dimensions["A"].width = 16
    summary.column_dimensions["C"].width = 22
    chart = Image(io.BytesIO(trend_png(briefing)))
    summary.add_image(chart, f"A{summary.max_row + 2}")


def briefing_xlsx(briefing: Briefing) -> bytes:
    book = Workbook()
    first = book.active
    assert isinstance(first, Worksheet)  # a new workbook has its first sheet
    _summary(first, briefing)

    trend = book.create_sheet("走势")
    _header(trend, "时段", "全部信息", "负面信息")
    for step in briefing.trend:
        trend.append([step.label, step.total, step.negative])

    topics = book.create_sheet("话题分布")
    _header(topics, "话题", "全部信息", "负面信息", f"{briefing.previous_label}全部", "上期负面")
    for row in briefing.topics:
        topics.append(
            [row.label, row.total, row.negative, row.previous_total, row.previous_negative]
        )

    incidents = book.create_sheet("舆情事件")
    _incidents(incidents, "新增事件", briefing.new_incidents)
    _incidents(incidents, "升级事件", briefing.escalated_incidents)
    _incidents(incidents, "办结事件", briefing.closed_incidents)
    incidents.column_dimensions["A"].width = 20
    incidents.column_dimensions["H"].width = 60

    top = book.create_sheet("重点信息")
    _header(top, "等级", "涉及单位", "来源", "发布时间", "话题", "内容", "原文链接", "判断依据")
    for item in briefing.top_items:
        top.append([item.severity, item.unit, item.source, _time(item.published_at), item.topic,
                    item.text, item.link or "", "、".join(item.reasons)])  # fmt: skip
    top.column_dimensions["F"].width = 60
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
