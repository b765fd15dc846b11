"""The console's ranking page over a city larger than a page: a hundred units at a time,
in the ranking's order, with links to the pages around it; the lists beside the table
(zero submissions, vetoes) still cover the whole ranking. The scoring service is an
in-memory answer here (the pages over the real stack are in tests/console)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.pages import _upstreams
from services.console.settings import ConsoleSettings
from services.console.upstreams import Upstreams
from shared.auth import Role, mint_token
from shared.settings import Settings

UNITS = 250


def _row(n: int) -> dict[str, Any]:
    """The ``n``-th school of the ranking; the last one filed nothing."""
    points, zero = float(UNITS - n), n == UNITS
    return {
        "unit": f"s{n:03d}", "name": f"第{n}小学", "type": "school", "county": "dh",
        "points": points, "ledger_points": points, "quota_deductions": 0.0,
        "submitted": 0 if zero else 3, "approved": 2, "published": 1, "adopted": 0,
        "adoption_rate": 0.0, "quota_short": 0, "active": True, "zero_submissions": zero,
        "veto": None, "eligible": True, "rank": n, "award_rank": n,
        **{f"adopted_{level}": 0 for level in ("national", "provincial", "city", "county")},
    }  # fmt: skip


def _ranking(period: str) -> dict[str, Any]:
    return {
        "period": period, "scope": "schools", "county": None, "go_live": "2026-01-01",
        "counted_months": [], "ranked": True, "note": None, "tie_rule": "",
        "rows": [_row(n) for n in range(1, UNITS + 1)],
    }  # fmt: skip


@pytest.fixture
def console() -> TestClient:
    settings = Settings(environment="test")
    app = create_app(settings)

    def scoring(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/rankings"
        return httpx.Response(200, json=_ranking(request.url.params["period"]))

    client = httpx.AsyncClient(transport=httpx.MockTransport(scoring))
    upstreams = Upstreams(client=client, settings=ConsoleSettings(environment="test"))
    app.dependency_overrides[_upstreams] = lambda: upstreams
    token = mint_token(settings, sub="office", unit="jc", roles=[Role.REVIEWER_CITY])
    test_client = TestClient(app)
    test_client.cookies.set("citydesk_token", token)
    return test_client


def _shown(html: str) -> list[str]:
    return re.findall(r'<tr data-unit="(s\d+)"', html)


def test_a_large_ranking_is_shown_a_hundred_units_a_page(console: TestClient) -> None:
    first = console.get("/rankings", params={"kind": "month", "period": "month:2026-11"})
    assert first.status_code == 200, first.text
    assert _shown(first.text) == [f"s{n:03d}" for n in range(1, 101)]
    assert "第 1–100 名，共 250 个单位" in first.text
    assert "page=2" in first.text and "page=0" not in first.text
    # the zero-submission list names the last unit although its page is not shown
    assert "第250小学" in first.text

    second = console.get("/rankings", params={"period": "month:2026-11", "page": 2})
    assert _shown(second.text) == [f"s{n:03d}" for n in range(101, 201)]
    assert "page=1" in second.text and "page=3" in second.text

    beyond = console.get("/rankings", params={"period": "month:2026-11", "page": 99})
    assert _shown(beyond.text) == [f"s{n:03d}" for n in range(201, 251)]
    assert "第 201–250 名，共 250 个单位" in beyond.text and "page=4" not in beyond.text
