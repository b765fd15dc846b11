"""Review's rules without a server: where a story waits after each decision, the
office's words for the queue's stored states, old audit steps, and the per-key steps a
later page is read in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.review.decisions import next_level_after
from services.review.models import AuditAction, AuditEntry, PublicationState
from services.review.publications import shown_state
from shared import events as ev
from shared.paging import resume_steps

R = ev.ReviewLevel
D = ev.Decision


def case(route: list[R], step: int) -> dict[str, Any]:
    return {"route": [level.value for level in route], "step": step, "level": route[step].value}


@pytest.mark.parametrize(
    ("route", "step", "decision", "final", "expected"),
    [
        ([R.SCHOOL, R.COUNTY, R.CITY], 0, D.APPROVED, False, R.COUNTY),
        ([R.SCHOOL, R.COUNTY, R.CITY], 1, D.APPROVED, False, R.CITY),
        ([R.SCHOOL, R.CITY], 0, D.APPROVED, False, R.CITY),  # a directly run unit
        ([R.SCHOOL, R.CITY, R.LEADER], 1, D.APPROVED, False, R.LEADER),
        ([R.COUNTY, R.CITY], 1, D.APPROVED, True, None),
        ([R.SCHOOL, R.COUNTY, R.CITY], 2, D.OVERRIDDEN, False, R.CITY),
        ([R.SCHOOL, R.COUNTY, R.CITY], 0, D.RETURNED, False, None),
        ([R.SCHOOL, R.COUNTY, R.CITY], 1, D.REJECTED, False, None),
    ],
)
def test_the_next_level_is_the_next_step_of_the_cases_own_route(
    route: list[R], step: int, decision: D, final: bool, expected: R | None
) -> None:
    assert next_level_after(case(route, step), decision, final) == expected


NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ({"state": "pending", "attempts": 0, "lease_until": None}, PublicationState.PENDING),
        ({"state": "pending", "attempts": 1, "lease_until": NOW + timedelta(seconds=30)},
         PublicationState.IN_PROGRESS),
        ({"state": "pending", "attempts": 2, "lease_until": None}, PublicationState.RETRYING),
        ({"state": "pending", "attempts": 1, "lease_until": NOW - timedelta(seconds=1)},
         PublicationState.RETRYING),  # a worker died: its lease ran out
        ({"state": "delivered", "attempts": 1}, PublicationState.SUCCESS),
        ({"state": "failed", "attempts": 6}, PublicationState.FAILED),
        ({"state": "cancelled", "attempts": 0}, PublicationState.CANCELLED),
    ],
)  # fmt: skip
def test_the_office_reads_the_queues_states_in_its_own_words(
    stored: dict[str, Any], shown: PublicationState
) -> None:
    assert shown_state(stored, NOW) == shown


def test_an_audit_step_stored_before_actions_keeps_its_action() -> None:
    old = {
        "story_id": "s", "case_id": "c", "version": 1, "at": NOW, "who": "system",
        "name": "CityDesk", "role": "system", "unit": "jc", "level": None,
        "decision": "publication_failed", "comment": "HTTP 503", "channel": "wechat",
    }  # fmt: skip
    entry = AuditEntry.model_validate(old)
    assert entry.action == AuditAction.PUBLICATION_FAILED and entry.decision == "publication_failed"
    assert AuditAction.PUBLICATION_FAILED.decision is None
    assert AuditAction.RETURNED.decision == D.RETURNED


def test_a_later_page_is_read_tied_keys_first_each_step_a_plain_filter() -> None:
    sort = [("waiting_since", 1), ("_id", 1)]
    steps = resume_steps({"state": "open", "level": "school"}, sort, [NOW, "c-9"])
    assert steps == [
        {"state": "open", "level": "school", "waiting_since": NOW, "_id": {"$gt": "c-9"}},
        {"state": "open", "level": "school", "waiting_since": {"$gt": NOW}},
    ]
    newest = resume_steps({"state": "published"}, [("published_at", -1), ("_id", -1)], [NOW, 7])
    assert newest[1] == {"state": "published", "published_at": {"$lt": NOW}}
    # a filter on a sort key already: the step joins it rather than overwrite it
    bounded = resume_steps({"waiting_since": {"$lt": NOW}}, sort, [NOW, "c-1"])
    assert bounded[1] == {
        "$and": [{"waiting_since": {"$lt": NOW}}, {"waiting_since": {"$gt": NOW}}]
    }
