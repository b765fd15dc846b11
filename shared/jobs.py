"""Background jobs: a pass repeated every few seconds for the life of the process, which
survives a failing pass (logged with its traceback) and stops when the service stops."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

Seconds = float | Callable[[], float]
Job = Callable[["ServiceRuntime"], Coroutine[Any, Any, None]]


def every(seconds: Seconds, job: Callable[[], Awaitable[object]], *, name: str) -> Job:
    """A loop for ``runtime.background``: ``await job()``, then wait ``seconds`` (a number,
    or a callable read before each wait, for intervals that live in reloadable config)."""

    async def loop(runtime: ServiceRuntime) -> None:
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: %s failed; trying again", runtime.name, name)
            await asyncio.sleep(seconds() if callable(seconds) else seconds)

    loop.__name__ = name
    return loop
