"""The typed documents store what the untyped code stored: a Severity member is written
as its value, and an alert's history names its automatic steps as it always did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import bson

from services.sentiment.alerts import ACTIONS
from services.sentiment.documents import ESCALATED, SEVERITY_RAISED, PersonAction
from shared.events import Severity


def test_a_severity_member_is_stored_as_its_value() -> None:
    at = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    for severity in Severity:
        typed = {"_id": "a", "severity": severity, "updated_at": at}
        plain = {"_id": "a", "severity": severity.value, "updated_at": at}
        assert bson.encode(typed) == bson.encode(plain)
        assert type(bson.decode(bson.encode(typed))["severity"]) is str


def test_history_actions_are_the_words_stored_before() -> None:
    for severity in Severity:
        assert SEVERITY_RAISED[severity] == f"severity raised to {severity.value}"
    for level in ("county", "city"):
        assert ESCALATED[level] == f"escalated to {level}"
    assert set(get_args(PersonAction)) == set(ACTIONS)
