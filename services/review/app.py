"""The review and publish service: three-level review (三审制), its audit trail, and
publication on the bureau's feed and webhook channels."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from services.review import api, decisions, delivery, office, overdue, service
from services.review.handlers import register_handlers
from services.review.models import FEED_CHANNEL
from services.review.runtime import Review
from services.review.settings import review_settings
from shared import events as ev
from shared import topics as tp
from shared.jobs import every
from shared.observability import precreate
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings

PUBLICATION_OUTCOMES = ("success", "retrying", "failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the review service; consumers only when ``run_consumers`` is set."""
    config = review_settings(settings)
    app, base = build_service(
        service.SERVICE,
        title="CityDesk review and publish",
        description="Three-level review of submitted stories with an audit trail, the "
        "screening hold, and publication on the bureau's feed and signed webhooks.",
        publishes=(tp.STORY_REVIEWED, tp.STORY_PUBLISHED),
        settings=config,
    )
    review = Review(
        base=base,
        settings=config,
        store=service.config_store(config),
        http=httpx.AsyncClient(timeout=config.webhook_timeout_seconds, follow_redirects=False),
    )
    app.state.review = review
    app.include_router(api.router)
    if config.run_consumers:
        register_handlers(review)

    async def start(_: ServiceRuntime) -> None:
        await service.ensure_indexes(runtime=review)
        await service.seed_config(runtime=review)
        await delivery.ensure_queue(runtime=review)
        _prime_metrics(review)

    async def stop(_: ServiceRuntime) -> None:
        await review.http.aclose()

    async def watch_cases() -> None:
        await overdue.watch_cases(runtime=review)

    base.on_startup.append(start)
    base.on_shutdown.append(stop)
    base.background.append(review.store.refresher(base.db, config.review_config_refresh_seconds))
    base.background.append(every(config.overdue_check_seconds, watch_cases, name="overdue check"))
    for number in range(config.publish_workers):
        worker = f"{uuid.uuid4().hex[:8]}-{number}"

        async def deliver(worker: str = worker) -> None:
            await delivery.deliver_due(runtime=review, worker=worker)

        # the pass itself waits for work (woken at once, or after the poll interval)
        base.background.append(every(0, deliver, name=f"publish worker {number}"))
    return app


def _prime_metrics(review: Review) -> None:
    """Every known label value at zero (channels from the stored configuration), so the
    first failed delivery or decision of each kind is an increase."""
    channels = [FEED_CHANNEL, *(hook.name for hook in review.config.publication.webhooks)]
    levels = [level.value for level in ev.ReviewLevel]
    precreate(decisions.DECISIONS, level=levels, decision=[d.value for d in ev.Decision])
    precreate(overdue.CASES_OPEN, level=levels)
    precreate(overdue.CASES_OVERDUE, level=levels)
    precreate(overdue.QUEUE_OLDEST, level=levels)
    precreate(delivery.PUBLICATIONS_TOTAL, channel=channels, outcome=PUBLICATION_OUTCOMES)
    precreate(delivery.WEBHOOK_FAILURES, channel=channels)
    outside = [level.value for level in ev.OutletLevel if level != ev.OutletLevel.BUREAU]
    precreate(office.ADOPTIONS_TOTAL, level=outside)
