"""Briefing periods without a server: codes, Chinese names, bounds in Shanghai time, the
period before, the trend's steps, and refusals of what is not a period."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.sentiment.periods import Period
from shared.clock import BUREAU_ZONE
from shared.refusals import Refusal


@pytest.mark.parametrize(
    ("kind", "code", "label", "first", "previous", "steps"),
    [
        ("daily", "2026-11-29", "2026年11月29日", date(2026, 11, 29), "2026-11-28", 24),
        ("weekly", "2026-W48", "2026年第48周（11月23日至11月29日）", date(2026, 11, 23),
         "2026-W47", 7),
        ("weekly", "2026-W01", "2026年第1周（12月29日至1月4日）", date(2025, 12, 29),
         "2025-W52", 7),
        ("monthly", "2026-03", "2026年3月", date(2026, 3, 1), "2026-02", 31),
        ("monthly", "2026-01", "2026年1月", date(2026, 1, 1), "2025-12", 31),
        ("monthly", "2028-02", "2028年2月", date(2028, 2, 1), "2028-01", 29),
    ],
)  # fmt: skip
def test_periods_are_named_and_bounded_in_shanghai_time(
    kind: str, code: str, label: str, first: date, previous: str, steps: int
) -> None:
    period = Period.parse(kind, code)
    assert period.code == code and period.label == label and period.first_day == first
    assert period.start == datetime(first.year, first.month, first.day, tzinfo=BUREAU_ZONE)
    assert period.start.astimezone(UTC).hour == 16  # midnight in Shanghai, 16:00 UTC before
    assert period.previous().code == previous
    assert period.previous().end == period.start
    buckets = period.buckets()
    assert len(buckets) == steps
    assert buckets[0][1] == period.start and buckets[-1][2] == period.end


def test_the_period_holding_an_instant_is_read_in_shanghai() -> None:
    # 17:00 UTC on Sunday 29 November is 01:00 on Monday 30 November in Shanghai
    late = datetime(2026, 11, 29, 17, 0, tzinfo=UTC)
    assert Period.holding("daily", late).code == "2026-11-30"
    assert Period.holding("weekly", late).code == "2026-W49"
    assert Period.holding("monthly", late).code == "2026-11"
    assert Period.holding("monthly", datetime(2026, 11, 30, 16, 0, tzinfo=UTC)).code == "2026-12"


@pytest.mark.parametrize(
    ("kind", "code", "status", "reason"),
    [
        ("weekly", "2026-W54", 422, "invalid_period"),
        ("weekly", "2026-48", 422, "invalid_period"),
        ("daily", "2026-02-29", 422, "invalid_period"),
        ("monthly", "2026-00", 422, "invalid_period"),
        ("monthly", "0001-01", 422, "invalid_period"),
        ("monthly", "2026-1", 422, "invalid_period"),
        ("quarterly", "2026-Q1", 404, "unknown_briefing_kind"),
    ],
)
def test_what_is_not_a_period_is_refused_in_chinese(
    kind: str, code: str, status: int, reason: str
) -> None:
    with pytest.raises(Refusal) as refused:
        Period.parse(kind, code)
    assert refused.value.status == status and refused.value.code == reason
    assert "简报" in refused.value.message or "期别" in refused.value.message
