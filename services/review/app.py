"""The review and publish service: three-level review (三审制), its audit trail, and
publication on the bureau's feed and webhook channels."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.review import api, decisions, delivery, office, overdue, service
from services.review.delivery import PublishQueue
from services.review.handlers import register_handlers
from services.review.models import FEED_CHANNEL
from services.review.settings import review_settings
from shared import events as ev
from shared import topics as tp
from shared.observability import precreate
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings

log = logging.getLogger(__name__)
PUBLICATION_OUTCOMES = ("success", "retrying", "failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the review service; consumers only when ``run_consumers`` is set."""
    config = review_settings(settings)
    app, runtime = build_service(
        service.SERVICE,
        title="CityDesk review and publish",
        description="Three-level review of submitted stories with an audit trail, the "
        "screening hold, and publication on the bureau's feed and signed webhooks.",
        publishes=(tp.STORY_REVIEWED, tp.STORY_PUBLISHED),
        settings=config,
    )
    app.include_router(api.router)
    queue = PublishQueue()
    app.state.publish_queue = queue
    if config.run_consumers:
        register_handlers(runtime)
    runtime.on_startup += [service.ensure_indexes, service.seed_config, _prime_metrics]

    async def watch_cases(runtime: ServiceRuntime) -> None:
        """Flag overdue cases and refresh the case gauges from the database."""
        while True:
            try:
                await overdue.watch_cases(runtime=runtime)
            except Exception:
                log.exception("overdue check failed; retrying")
            await asyncio.sleep(config.overdue_check_seconds)

    async def publish(runtime: ServiceRuntime) -> None:
        await delivery.run_publish_workers(runtime, queue)

    runtime.background += [watch_cases, publish]
    return app


async def _prime_metrics(runtime: ServiceRuntime) -> None:
    """Every known label value at zero (channels from the stored configuration), so the
    first failed delivery or decision of each kind is an increase."""
    config = await service.load_config(db=runtime.db)
    channels = [FEED_CHANNEL, *(hook.name for hook in config.publication.webhooks)]
    levels = [level.value for level in ev.ReviewLevel]
    precreate(decisions.DECISIONS, level=levels, decision=[d.value for d in ev.Decision])
    precreate(overdue.CASES_OPEN, level=levels)
    precreate(overdue.CASES_OVERDUE, level=levels)
    precreate(overdue.QUEUE_OLDEST, level=levels)
    precreate(delivery.PUBLICATIONS_TOTAL, channel=channels, outcome=PUBLICATION_OUTCOMES)
    precreate(delivery.WEBHOOK_FAILURES, channel=channels)
    outside = [level.value for level in ev.OutletLevel if level != ev.OutletLevel.BUREAU]
    precreate(office.ADOPTIONS_TOTAL, level=outside)
