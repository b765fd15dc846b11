"""The period parser and the scoring calendar, without a server: any text is either a
period that round-trips or a refusal with a Chinese message, never another error."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scoring.periods import Calendar, Period, PeriodError, month_of, parse_period, year_of

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@given(st.text(max_size=24))
def test_any_text_is_a_period_or_a_chinese_refusal(text: str) -> None:
    try:
        period = parse_period(text, years=(2023, 2027))
    except PeriodError as exc:
        assert "期间" in str(exc)
        return
    assert 2023 <= period.year <= 2027
    assert parse_period(period.label) == period
    assert period.start() < period.end()


@given(
    st.sampled_from(["month", "quarter", "half", "year"]),
    st.integers(min_value=0, max_value=9999),
    st.integers(min_value=0, max_value=13),
    st.booleans(),
)
def test_well_formed_labels_parse_exactly_within_the_years_allowed(
    kind: str, year: int, index: int, prefixed: bool
) -> None:
    suffix = {"month": f"-{index:02d}", "quarter": f"-Q{index}", "half": f"-H{index}"}.get(kind, "")
    text = f"{kind + ':' if prefixed else ''}{year:04d}{suffix}"
    limit = {"month": 12, "quarter": 4, "half": 2, "year": 1}[kind]
    valid = 2023 <= year <= 2027 and (kind == "year" or 1 <= index <= limit)
    if not valid:
        with pytest.raises(PeriodError):
            parse_period(text, years=(2023, 2027))
        return
    period = parse_period(text, years=(2023, 2027))
    assert (period.kind, period.year) == (kind, year)
    assert len(period.months()) == {"month": 1, "quarter": 3, "half": 6, "year": 12}[kind]


@pytest.mark.parametrize("text", ["year:0000", "year:9999", "month:0000-01", "quarter:9999-Q4"])
def test_years_far_out_are_refused_even_without_a_range(text: str) -> None:
    calendar = Calendar(go_live=date(2026, 11, 1), now=NOW)
    with pytest.raises(PeriodError, match="期间"):
        parse_period(text, years=calendar.years)


def test_a_month_counts_from_the_first_whole_month_to_the_last_ended_one() -> None:
    this_month = Calendar(go_live=date(2026, 11, 1), now=NOW)
    assert this_month.counted(Period("year", 2026, 1).months()) == []
    assert this_month.years == (2026, 2027)
    spring = Calendar(go_live=date(2026, 4, 15), now=NOW)
    assert spring.counted(Period("year", 2026, 1).months()) == [
        "2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10",
    ]  # fmt: skip
    assert spring.counted(["2026-10", "2026-11"], joined=date(2026, 9, 1)) == ["2026-10"]
    assert spring.counted(["2026-09"], joined=date(2026, 9, 1)) == ["2026-09"]
    assert spring.active(["2026-04"]) and not spring.active(["2026-03"])
    assert not spring.active(["2026-12"])  # a month that has not begun


@pytest.mark.parametrize(
    ("moment", "month", "year"),
    [
        (datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC), "2026-10", 2026),  # 23:59:59 local
        (datetime(2026, 10, 31, 16, 0, tzinfo=UTC), "2026-11", 2026),  # midnight in Shanghai
        (datetime(2025, 12, 31, 16, 0, tzinfo=UTC), "2026-01", 2026),  # New Year's Eve in UTC
    ],
)
def test_an_instant_belongs_to_its_shanghai_month_and_year(
    moment: datetime, month: str, year: int
) -> None:
    assert (month_of(moment), year_of(moment)) == (month, year)


@pytest.mark.parametrize(
    ("label", "months", "start", "end"),
    [
        ("month:2026-11", ["2026-11"], datetime(2026, 10, 31, 16, tzinfo=UTC),
         datetime(2026, 11, 30, 16, tzinfo=UTC)),
        ("quarter:2026-Q4", ["2026-10", "2026-11", "2026-12"],
         datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC)),
        ("half:2026-H1", [f"2026-0{m}" for m in range(1, 7)],
         datetime(2025, 12, 31, 16, tzinfo=UTC), datetime(2026, 6, 30, 16, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_a_period_covers_its_months_from_shanghai_midnight_to_midnight(
    label: str, months: list[str], start: datetime, end: datetime
) -> None:
    period = parse_period(label)
    assert (period.months(), period.start(), period.end()) == (months, start, end)


def test_a_year_divides_into_halves_quarters_and_months_but_not_the_other_way() -> None:
    year = parse_period("year:2026")
    assert [p.label for p in year.sub_periods("half")] == ["half:2026-H1", "half:2026-H2"]
    assert len(year.sub_periods("quarter")) == 4 and len(year.sub_periods("month")) == 12
    assert [p.label for p in parse_period("half:2026-H2").sub_periods("quarter")] == [
        "quarter:2026-Q3", "quarter:2026-Q4",
    ]  # fmt: skip
    assert parse_period("month:2026-03").sub_periods("year") == []
