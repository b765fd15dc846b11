"""What every part of the review service works with, passed by keyword as ``runtime=``:
the process's service runtime, the review settings, the configuration in force and the
signal that wakes the publish workers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httpx

from services.review.models import ReviewConfig
from services.review.settings import ReviewSettings
from shared.configstore import ConfigStore
from shared.runtime import OnRuntime, ServiceRuntime


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
class Review(OnRuntime):
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
