"""The scoring service: points ledger, quotas, rankings, bulletins and campaigns."""

from __future__ import annotations

from fastapi import FastAPI

from services.scoring.api import router
from services.scoring.handlers import register_handlers
from services.scoring.ledger import LEDGER_ENTRIES, POINTS_AWARDED
from services.scoring.service import ensure_indexes, seed_rules
from services.scoring.settings import scoring_settings
from shared.observability import precreate
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings

NAME = "scoring"
# the kinds of ledger entry services/scoring/ledger.py writes
LEDGER_KINDS = (
    "submitted", "approved", "returned", "rejected", "publication", "media_bonus",
    "adoption", "withdrawal", "leader_bonus", "campaign_completed", "incident",
    "serious_incident",
)  # fmt: skip


async def prepare_database(runtime: ServiceRuntime) -> None:
    """Indexes, and the shipped rule set as version 1 when none is stored."""
    await ensure_indexes(db=runtime.db)
    await seed_rules(db=runtime.db)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the scoring service (consumers only when ``run_consumers`` is set)."""
    app, runtime = build_service(
        NAME,
        title="CityDesk scoring",
        description="Points ledger from story, opinion and media events; quotas, rankings, "
        "bulletins (XLSX/CSV) and campaign progress.",
        settings=scoring_settings(settings),
    )
    app.include_router(router)
    runtime.on_startup.append(prepare_database)
    if runtime.settings.run_consumers:
        register_handlers(runtime)
    _prime_metrics(runtime.org)
    return app


def _prime_metrics(org: OrgTree) -> None:
    """Every known label value at zero, so the first entry of each kind is an increase."""
    precreate(LEDGER_ENTRIES, kind=LEDGER_KINDS)
    precreate(POINTS_AWARDED, county=[*(unit.code for unit in org.counties()), "city"])
