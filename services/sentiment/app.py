"""The sentiment service: public-opinion analysis, incidents and alerts, story screening."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI

from services.sentiment import alerts, notifications, queries, rules
from services.sentiment.api import router
from services.sentiment.classifier import SentimentModel
from services.sentiment.handlers import register_handlers
from services.sentiment.metrics import prime_metrics
from services.sentiment.runtime import Sentiment
from services.sentiment.settings import sentiment_settings
from services.sentiment.state_metrics import prime_alert_gauges, refresh_alert_gauges
from shared import topics as tp
from shared.rejections import rejections_router
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings

log = logging.getLogger(__name__)


def _every(
    seconds: Callable[[Sentiment], float],
    job: Callable[[Sentiment], Awaitable[object]],
    sentiment: Sentiment,
) -> Callable[[ServiceRuntime], Awaitable[None]]:
    """A background loop that survives a failing pass."""

    async def loop(runtime: ServiceRuntime) -> None:
        while True:
            try:
                await job(sentiment)
            except Exception:
                log.exception("%s failed; retrying", getattr(job, "__name__", "job"))
            await asyncio.sleep(seconds(sentiment))

    return loop


async def _escalation_pass(sentiment: Sentiment) -> None:
    await rules.reload_config(runtime=sentiment)
    await alerts.escalate_overdue(runtime=sentiment)


async def _gauge_pass(sentiment: Sentiment) -> None:
    await alerts.refresh_gauges(runtime=sentiment)
    await refresh_alert_gauges(sentiment.db)


def _webhook_job(sentiment: Sentiment) -> Callable[[ServiceRuntime], Awaitable[None]]:
    async def deliver(runtime: ServiceRuntime) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            while True:
                try:
                    await notifications.deliver_notifications(runtime=sentiment, client=client)
                except Exception:
                    log.exception("webhook delivery pass failed; retrying")
                await asyncio.sleep(sentiment.settings.sentiment_webhook_poll_seconds)

    return deliver


def create_app(settings: Settings | None = None) -> FastAPI:
    own = sentiment_settings(settings)
    app, runtime = build_service(
        "sentiment",
        title="CityDesk sentiment",
        description=(
            "Analyses public-opinion items from county feeds and submitted stories in Chinese "
            "(Simplified and Traditional), groups negative items into incidents, raises alerts "
            "with owners and deadlines, and escalates them when nobody acts."
        ),
        publishes=(tp.OPINION_FLAGGED,),
        settings=own,
    )
    sentiment = Sentiment(
        base=runtime,
        settings=own,
        model=SentimentModel.load(use_embeddings=own.sentiment_use_embeddings),
        config=rules.read_config_file(own.sentiment_config_file),
    )
    app.state.sentiment = sentiment
    app.include_router(router)
    app.include_router(rejections_router(tp.INTAKE_OPINIONS))

    async def prepare(_: ServiceRuntime) -> None:
        await queries.ensure_indexes(runtime=sentiment)
        await rules.seed_config(runtime=sentiment)
        await asyncio.to_thread(sentiment.model.warm_up)

    runtime.on_startup.append(prepare)
    prime_metrics(runtime.org)
    prime_alert_gauges()
    if own.run_consumers:
        register_handlers(sentiment)
        runtime.background.append(
            _every(
                lambda s: s.settings.sentiment_escalation_poll_seconds, _escalation_pass, sentiment
            )
        )
        runtime.background.append(_webhook_job(sentiment))
    runtime.background.append(
        _every(lambda s: s.settings.sentiment_gauge_refresh_seconds, _gauge_pass, sentiment)
    )
    return app
