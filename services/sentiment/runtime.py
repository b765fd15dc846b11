"""What every part of the sentiment service works with: the process's service runtime,
its settings, the model, the rules in force and the clock, passed by keyword as
``runtime=``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.sentiment.classifier import SentimentModel
from services.sentiment.models import PushConfig, SentimentConfig
from services.sentiment.settings import SentimentSettings
from shared import topics as tp
from shared.clock import Clock, utcnow
from shared.configstore import ConfigStore
from shared.events import Envelope
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime

SERVICE = "sentiment"


@dataclass
class Sentiment:
    """The model, the current rules and the service runtime, shared by handlers, routes
    and jobs."""

    base: ServiceRuntime
    settings: SentimentSettings
    model: SentimentModel
    rules: ConfigStore[SentimentConfig]
    # who receives push alerts (kept apart from the rules: it names people's channels)
    pushes: ConfigStore[PushConfig]
    # "now" for the pushes (quiet hours, when a delivery is due); tests move it to the
    # night and on to the morning. Alert deadlines keep real time.
    clock: Clock = field(default=utcnow)

    @property
    def config(self) -> SentimentConfig:
        """The rules in force in this process (refreshed by the store's job)."""
        return self.rules.current

    @property
    def org(self) -> OrgTree:
        return self.base.org

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self.base.db

    @property
    def mongo(self) -> AsyncMongoClient[dict[str, Any]]:
        return self.base.mongo

    async def emit(
        self, topic: tp.Topic, event: Envelope, session: AsyncClientSession | None = None
    ) -> None:
        await self.base.emit(topic, event, session=session)

    def outbox_written(self) -> None:
        self.base.outbox_written()

    def unit_name(self, code: str | None) -> str:
        """A unit's name for people (its code when the tree does not know it)."""
        unit = self.org.get(code) if code else None
        return unit.name if unit is not None else (code or "")
