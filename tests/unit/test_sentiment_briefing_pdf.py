"""The briefing's PDF without a server: a briefing as the service counts it, drawn with
the system's CJK font and with the fallback CID font; the text a reader (and pypdf)
takes out of it is the title, the period, the scope, the topics and incidents by name,
the covering paragraph, the not-ended notice, and 「第 N 页，共 M 页」 on every page."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from pypdf import PdfReader

from services.sentiment import briefing_pdf
from services.sentiment.briefing_files import cjk_font_files
from services.sentiment.briefings import Briefing, Count, IncidentLine, TopicCount, TopItem
from services.sentiment.periods import Period
from shared.clock import BUREAU_ZONE

WEEK = Period.parse("weekly", "2026-W48")
SCHOOL = "北川县第一小学"


def briefing(*, ended: bool, top_items: int = 3) -> Briefing:
    generated = (WEEK.end if ended else WEEK.start + timedelta(days=3, hours=9)).astimezone(
        BUREAU_ZONE
    )
    line = IncidentLine(
        incident_id="inc-1",
        unit=SCHOOL,
        topic="食品安全",
        severity="黄色（III级）",
        item_count=3,
        first_item_at=WEEK.start + timedelta(hours=9),
        state="已办结",
        owner=SCHOOL,
        handling=[
            "2026年11月24日 10:00 签收（王老师）",
            "2026年11月24日 16:00 办结（王老师）：已约谈",
        ],
    )
    item = TopItem(
        id="i1",
        unit=SCHOOL,
        source="家长论坛",
        published_at=WEEK.start + timedelta(hours=9),
        severity="黄色（III级）",
        topic="食品安全",
        score=0.97,
        text="北川县第一小学食堂饭菜发霉，孩子吃完肚子疼，学校管不管？<a>&",
        link="https://bbs.example.cn/t/1?a=1&b=2",
        reasons=["发霉", "肚子疼"],
    )
    return Briefing(
        title="北川县教育舆情周报",
        kind="weekly",
        period=WEEK.code,
        period_label=WEEK.label,
        previous_period=WEEK.previous().code,
        previous_label=WEEK.previous().label + ("" if ended else "同期"),
        scope="bc",
        scope_name="北川县教育局",
        start=WEEK.start,
        end=WEEK.end,
        generated_at=generated,
        ended=ended,
        note=None if ended else "截至2026年11月26日 09:00，本期尚未结束",
        totals=TopicCount(topic="all", label="全部", total=5, negative=3, previous_total=1,
                          previous_negative=1),
        trend=[Count(label=label, total=1, negative=1) for label, _, _ in WEEK.buckets()],
        topics=[TopicCount(topic="food_safety", label="食品安全", total=3, negative=3,
                           previous_total=1, previous_negative=1),
                TopicCount(topic="enrolment", label="招生入学", total=2, negative=0)],
        new_incidents=[line],
        escalated_incidents=[],
        closed_incidents=[line],
        top_items=[item] * top_items,
    )  # fmt: skip


def text_of(content: bytes) -> tuple[list[str], PdfReader]:
    reader = PdfReader(io.BytesIO(content))
    return [page.extract_text() for page in reader.pages], reader


def test_a_briefing_pdf_reads_in_chinese_with_its_pages_numbered() -> None:
    content = briefing_pdf.briefing_pdf(briefing(ended=False, top_items=10))
    assert content.startswith(b"%PDF-")
    pages, reader = text_of(content)
    whole = "".join("".join(pages).split())  # lines wrap anywhere in Chinese
    for expected in ("北川县教育舆情周报", WEEK.label, "北川县教育局编制", "食品安全",
                     "第48周（11月23日至11月29日）截至编制时", "招生入学", SCHOOL, "已约谈",
                     "本期尚未结束", "（一）新增事件（1起）", "（二）升级事件（0起）", "本期无。",
                     "<a>&", "发霉、肚子疼"):  # fmt: skip
        assert expected in whole, expected
    assert "共监测到涉及北川县教育系统的网络信息5条，其中负面信息3条，占60.0%" in whole
    assert "信息总量增加4条（增幅400%）" in whole
    assert len(pages) >= 2  # ten items overflow the first page
    for number, page in enumerate(pages, start=1):
        assert f"第 {number} 页，共 {len(pages)} 页" in page, number
        assert "本期尚未结束" in page  # a page printed alone still says so
    assert reader.metadata is not None and reader.metadata.title.startswith("北川县教育舆情周报")


def test_an_ended_period_says_nothing_of_being_unfinished() -> None:
    pages, _ = text_of(briefing_pdf.briefing_pdf(briefing(ended=True)))
    whole = "".join("".join(pages).split())
    assert "尚未结束" not in whole and "统计时段：2026年11月23日至2026年11月29日" in whole


@pytest.mark.skipif(not cjk_font_files(), reason="no CJK font installed on this machine")
def test_the_system_font_is_embedded() -> None:
    assert briefing_pdf.pdf_font() != briefing_pdf.FALLBACK_FONT  # wqy-zenhei is TrueType
    content = briefing_pdf.briefing_pdf(briefing(ended=True))
    assert b"/FontFile2" in content and b"/ToUnicode" in content  # a subset, mapped back


def test_with_no_usable_font_the_fallback_still_draws_chinese() -> None:
    fallback = briefing_pdf.register_cjk_font(["/nonexistent/font.ttc"])
    assert fallback == "STSong-Light"
    content = briefing_pdf.briefing_pdf(briefing(ended=False), font=fallback)
    assert b"/FontFile2" not in content  # nothing embedded: the reader's own font
    whole = "".join("".join(text_of(content)[0]).split())
    assert "北川县教育舆情周报" in whole and "本期尚未结束" in whole and "食品安全" in whole
