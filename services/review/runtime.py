"""What every part of the review service works with, passed by keyword as ``runtime=``:
the process's service runtime, the review settings, the configuration in force and the
signal that wakes the publish workers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.review.models import ReviewConfig
from services.review.settings import ReviewSettings
from shared import topics as tp
from shared.configstore import ConfigStore
from shared.events import Envelope
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime


class PublishSignal:
    """Wakes the publish workers when something becomes due now (they poll otherwise)."""

    def __init__(self) -> None:
        self._due = asyncio.Event()

    def wake(self) -> None:
        self._due.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._due.wait(), timeout=timeout)
        self._due.clear()


@dataclass
class Review:
    """The review service as its handlers, routes and jobs see it."""

    base: ServiceRuntime
    settings: ReviewSettings
    store: ConfigStore[ReviewConfig]
    # the client webhooks are sent with (redirects are not followed)
    http: httpx.AsyncClient
    publish_due: PublishSignal = field(default_factory=PublishSignal)

    @property
    def config(self) -> ReviewConfig:
        """The configuration in force in this process (kept fresh by the store's job)."""
        return self.store.current

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
