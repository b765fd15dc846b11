"""The submission service: correspondents' drafts and submissions, county intake, and the
quality flags (late, possible copy) that travel with every submitted version."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from services.submission import api, config, copies, service
from services.submission.handlers import register_handlers
from shared import topics as tp
from shared.contracts import IntakeRules
from shared.observability import precreate
from shared.orgtree import OrgTree
from shared.refusals import refusal_for_status
from shared.rejections import rejections_router
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings

ERROR_STATUS: dict[type[Exception], int] = {
    service.InvalidStory: status.HTTP_422_UNPROCESSABLE_CONTENT,
    service.StoryNotFound: status.HTTP_404_NOT_FOUND,
    service.StoryConflict: status.HTTP_409_CONFLICT,
}


async def _prepare_database(runtime: ServiceRuntime) -> None:
    await service.ensure_indexes(runtime)
    await config.seed_config(runtime.db)


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
    for error, code in ERROR_STATUS.items():

        async def answer(request: Request, exc: Exception, code: int = code) -> JSONResponse:
            return JSONResponse(refusal_for_status(code, str(exc)).body(), status_code=code)

        app.add_exception_handler(error, answer)
    if runtime.settings.run_consumers:
        register_handlers(runtime)
    runtime.on_startup.append(_prepare_database)
    runtime.background.append(copies.follow_changes)  # other replicas' stories, as they come

    async def contract_rules() -> IntakeRules:
        return config.intake_rules(*await config.get_config(db=runtime.db))

    runtime.contract_rules = contract_rules
    _prime_metrics(runtime.org)
    return app


def _prime_metrics(org: OrgTree) -> None:
    """Every known label value at zero, so the first event of each is an increase."""
    counties = [unit.code for unit in org.counties()]
    precreate(service.STORIES_SUBMITTED, county=[*counties, "city"], source=["api", "intake"])
    precreate(service.FLAGS, flag=["late", "possible_copy"])
    precreate(service.INTAKE, county=counties, outcome=["created", "new_version", "duplicate"])
