"""The Chinese names of codes that more than one service shows people: opinion severities
(the four levels of Chinese emergency practice) and opinion topics. One list, so a
briefing, a bulletin and a console page name a thing the same way."""

from __future__ import annotations

SEVERITY_NAMES: dict[str, str] = {
    "blue": "蓝色（IV级）",
    "yellow": "黄色（III级）",
    "orange": "橙色（II级）",
    "red": "红色（I级）",
}
TOPIC_NAMES: dict[str, str] = {
    "safety": "校园安全",
    "fees": "教育收费",
    "food": "食品安全",
    "teacher_conduct": "师德师风",
    "bullying": "校园欺凌",
    "admissions": "招生入学",
    "facilities": "校舍设施",
    "other": "其他",
}
