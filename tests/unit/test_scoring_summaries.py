"""The packed period summaries without a server: the layout of a period's columns, a
unit's row from its months, the binary table's round trip, and the same bytes whatever
order the unit-months come in (live and rebuilt summaries must be equal)."""

from __future__ import annotations

import random

import pytest

from services.scoring.periods import parse_period
from services.scoring.summaries import (
    MONTHLY_MEASURES,
    Layout,
    build_summaries,
    layout_of,
    pack,
    rows_of,
    unpack,
)
from services.scoring.totals import FIGURES
from shared.orgtree import example_city

ORG = example_city()


def test_a_quarter_keeps_its_totals_and_every_quota_measure_month_by_month() -> None:
    layout = layout_of("quarter:2026-Q4")
    assert layout.columns[: len(FIGURES)] == FIGURES
    assert "submitted@11" in layout.columns and "adopted_city@12" in layout.columns
    assert layout.width == len(FIGURES) + 3 * len(MONTHLY_MEASURES)
    assert layout_of("month:2026-11").columns == FIGURES  # a month's totals are its month


def test_a_row_sums_the_months_and_keeps_each_month_of_a_measure() -> None:
    layout = layout_of("quarter:2026-Q4")
    row = layout.row(
        {
            "2026-10": {"points": 1.111, "submitted": 2},
            "2026-12": {"points": 2.222, "submitted": 1, "adopted": 1},
            "2026-09": {"points": 100.0, "submitted": 9},  # outside the quarter
        }
    )
    index = layout.index
    assert row[index["points"]] == 3.33  # rounded as a unit-month stores points
    assert row[index["submitted"]] == 3 and row[index["adopted"]] == 1
    assert [row[index[f"submitted@{m}"]] for m in ("10", "11", "12")] == [2, 0, 1]


def test_a_span_is_the_total_for_the_whole_period_and_monthly_columns_inside_it() -> None:
    layout = layout_of("year:2026")
    assert layout.span("submitted", layout.months) == [layout.index["submitted"]]
    november = layout.span("submitted", ("2026-11",))
    assert november == [layout.index["submitted@11"]]
    assert layout.span("points", ("2026-11",)) is None  # not kept month by month
    every = Layout(parse_period("year:2026"), FIGURES)  # a unit's own view keeps all
    assert every.span("points", ("2026-11", "2026-12")) == [
        every.index["points@11"],
        every.index["points@12"],
    ]


def test_the_binary_table_round_trips() -> None:
    rows = [[random.random() * 1000 for _ in range(7)] for _ in range(5)]
    assert [list(row) for row in unpack(pack(rows), 7)] == rows


def test_an_older_summary_is_recognised_and_a_missing_one_is_empty() -> None:
    older = {"period": "year:2026", "group": "qh", "units": {"qh-a": {"points": 1}}}
    assert rows_of(older) is None
    assert rows_of(None) == {}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_unit_months_in_any_order_give_the_same_summaries(seed: int) -> None:
    rng = random.Random(seed)
    schools = ORG.schools()[:12]
    months = []
    for school in schools:
        for month in rng.sample(range(1, 13), 5):
            figures = {"points": round(rng.random() * 20, 2), "entries": 3, "submitted": 2}
            months.append({"unit": school.code, "period": f"2026-{month:02d}", **figures})
    shuffled = list(months)
    rng.shuffle(shuffled)
    first, again = build_summaries(ORG, months), build_summaries(ORG, shuffled)
    assert first == again
    assert {s["period"] for s in first} >= {"year:2026", "half:2026-H1", "quarter:2026-Q3"}
    year = next(s for s in first if s["period"] == "year:2026")
    table = rows_of(dict(year))
    assert table is not None and sorted(table) == year["units"]
