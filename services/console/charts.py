"""Bar charts drawn on the server as SVG, so a page needs no chart library."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

BAR_HEIGHT = 22
GAP = 6
LABEL_WIDTH = 190
BAR_WIDTH = 460
VALUE_WIDTH = 70


def bar_chart(rows: list[tuple[str, float]], *, title: str) -> Markup:
    """A horizontal bar chart of ``(name, value)`` rows in the given order."""
    height = max(1, len(rows)) * (BAR_HEIGHT + GAP) + GAP
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    top = max((value for _, value in rows), default=0.0)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    if not rows:
        parts.append(f'<text x="8" y="{BAR_HEIGHT}" class="chart-empty">暂无数据</text>')
    for index, (name, value) in enumerate(rows):
        y = GAP + index * (BAR_HEIGHT + GAP)
        length = 0.0 if top <= 0 else max(0.0, value) / top * BAR_WIDTH
        text_y = y + BAR_HEIGHT * 0.72
        parts.append(
            f'<g class="bar" data-unit="{escape(name)}" data-value="{value:g}">'
            f'<text x="{LABEL_WIDTH - 8}" y="{text_y:.1f}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{BAR_HEIGHT}" rx="3"/>'
            f'<text x="{LABEL_WIDTH + length + 6:.1f}" y="{text_y:.1f}" class="value">'
            f"{value:g}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
