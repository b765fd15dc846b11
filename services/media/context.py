"""The media service's runtime: the shared one (MongoDB, the org tree, the outbox) with
what only media needs, passed to every service function as ``runtime=``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from services.media.models import MEDIA
from services.media.settings import MediaSettings
from services.media.storage import ObjectStore
from shared.orgtree import OrgTree
from shared.runtime import ServiceRuntime


@dataclass
class MediaRuntime:
    shared: ServiceRuntime
    settings: MediaSettings
    store: ObjectStore
    # images decoded at once in this process (bounds memory)
    decoding: asyncio.Semaphore
    # the ffmpeg that cleans videos and takes their poster frames
    ffmpeg: str

    @property
    def media(self) -> AsyncCollection[dict[str, Any]]:
        return self.shared.db[MEDIA]

    @property
    def org(self) -> OrgTree:
        return self.shared.org

    @property
    def rendition_sizes(self) -> dict[str, int]:
        return {
            "small": self.settings.media_thumbnail_small_px,
            "medium": self.settings.media_thumbnail_medium_px,
        }
