"""Schemathesis against every running service's OpenAPI document: whatever a client
sends, the answer is never a server error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from citydesk.processes import SERVICES, ServiceProcesses
from shared.auth import Role
from tests.support import token_for

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize("service", SERVICES)
def test_no_request_makes_a_service_answer_5xx(city: ServiceProcesses, service: str) -> None:
    st = Path(sys.executable).parent / "st"
    token = token_for("jc", Role.ADMIN, Role.REVIEWER_CITY, Role.OPINION_OFFICER)
    result = subprocess.run(
        [
            str(st), "run", f"{city.url(service)}/openapi.json",
            "--checks", "not_a_server_error",
            "--max-examples", "12",
            "--phases", "examples,fuzzing",
            "--generation-deterministic",
            "--header", f"Authorization: Bearer {token}",
            "--request-timeout", "20",
        ],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
