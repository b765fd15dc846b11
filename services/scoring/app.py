"""The scoring service: points ledger, quotas, rankings, bulletins and campaigns."""

from __future__ import annotations

from fastapi import FastAPI

from services.scoring.api import router
from services.scoring.handlers import register_handlers
from services.scoring.service import ensure_indexes, seed_rules
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings

NAME = "scoring"


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
        settings=settings,
    )
    app.include_router(router)
    runtime.on_startup.append(prepare_database)
    if runtime.settings.run_consumers:
        register_handlers(runtime)
    return app
