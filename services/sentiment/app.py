"""The sentiment service: public-opinion analysis, incidents and alerts, story screening,
briefings and push alerts."""

from __future__ import annotations

import asyncio

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
from shared.jobs import every
from shared.rejections import rejections_router
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    own = sentiment_settings(settings)
    app, runtime = build_service(
        "sentiment",
        title="CityDesk sentiment",
        description=(
            "Analyses public-opinion items from county feeds and submitted stories in Chinese "
            "(Simplified and Traditional), groups negative items into incidents, raises alerts "
            "with owners and deadlines, escalates them when nobody acts, pushes them to the "
            "officers' channels and writes daily, weekly and monthly briefings."
        ),
        publishes=(tp.OPINION_FLAGGED,),
        settings=own,
    )
    sentiment = Sentiment(
        base=runtime,
        settings=own,
        model=SentimentModel.load(use_embeddings=own.sentiment_use_embeddings),
        rules=rules.config_store(own),
        pushes=notifications.push_store(own),
    )
    app.state.sentiment = sentiment
    app.include_router(router)
    app.include_router(rejections_router(tp.INTAKE_OPINIONS))

    async def prepare(_: ServiceRuntime) -> None:
        await queries.ensure_indexes(runtime=sentiment)
        await notifications.prepare(runtime=sentiment)
        await rules.seed_config(runtime=sentiment)
        await asyncio.to_thread(sentiment.model.warm_up)

    runtime.on_startup.append(prepare)
    prime_metrics(runtime.org)
    prime_alert_gauges()
    _add_consumers_and_jobs(runtime, sentiment)
    return app


def _add_consumers_and_jobs(runtime: ServiceRuntime, sentiment: Sentiment) -> None:
    """The consumers and the background loops: rules refreshed in every process; intake,
    screening, escalation and pushes where the consumers run; the alert gauges everywhere."""
    own = sentiment.settings
    # every process, API pods included, classifies with the rules an admin stored last
    runtime.background.append(
        sentiment.rules.refresher(runtime.db, lambda: own.sentiment_config_refresh_seconds)
    )
    if own.run_consumers:
        register_handlers(sentiment)
        runtime.background.append(
            sentiment.pushes.refresher(runtime.db, lambda: own.sentiment_config_refresh_seconds)
        )
        runtime.background.append(
            every(
                own.sentiment_escalation_poll_seconds,
                lambda: alerts.escalate_overdue(runtime=sentiment),
                name="escalate overdue alerts",
            )
        )
        runtime.background.append(
            every(
                own.sentiment_webhook_poll_seconds,
                lambda: notifications.deliver_due(runtime=sentiment),
                name="deliver pushes",
            )
        )

    async def gauges() -> None:
        await alerts.refresh_gauges(runtime=sentiment)
        await refresh_alert_gauges(sentiment.db)

    runtime.background.append(
        every(own.sentiment_gauge_refresh_seconds, gauges, name="refresh alert gauges")
    )
