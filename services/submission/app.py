"""The submission service: correspondents' drafts and submissions, county intake, and the
quality flags (late, possible copy) that travel with every submitted version."""

from __future__ import annotations

from fastapi import FastAPI

from services.submission import api, copies
from services.submission.handlers import register_handlers
from services.submission.service import ensure_indexes, intake, rules, submitting
from shared import topics as tp
from shared.contracts import IntakeRules
from shared.observability import precreate
from shared.orgtree import OrgTree
from shared.rejections import rejections_router
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings


async def _prepare_database(runtime: ServiceRuntime) -> None:
    await ensure_indexes(runtime)
    await rules.seed_config(runtime.db)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the submission service (its consumers only when ``run_consumers``)."""
    app, runtime = build_service(
        "submission",
        title="CityDesk submission",
        description="Correspondents write, revise and submit stories; county systems send "
        "theirs through `intake.stories`. Every submitted version is announced on "
        "`story.submitted` with its quality flags: late (报送滞后) and possible copy (直接转发).",
        publishes=(tp.STORY_SUBMITTED,),
        settings=settings,
    )
    app.include_router(api.router)
    app.include_router(rejections_router(tp.INTAKE_STORIES))
    if runtime.settings.run_consumers:
        register_handlers(runtime)
    runtime.on_startup.append(_prepare_database)
    runtime.background.append(copies.follow_changes)  # other replicas' stories, as they come

    async def contract_rules() -> IntakeRules:
        return rules.intake_rules(*await rules.get_config(db=runtime.db))

    runtime.contract_rules = contract_rules
    _prime_metrics(runtime.org)
    return app


def _prime_metrics(org: OrgTree) -> None:
    """Every known label value at zero, so the first event of each is an increase."""
    counties = [unit.code for unit in org.counties()]
    precreate(submitting.STORIES_SUBMITTED, county=[*counties, "city"], source=["api", "intake"])
    precreate(submitting.FLAGS, flag=["late", "possible_copy"])
    precreate(intake.INTAKE, county=counties, outcome=["created", "new_version", "duplicate"])
