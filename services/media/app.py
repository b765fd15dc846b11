"""The media service: photos and videos checked, cleaned of location and identity, stored
in S3 with thumbnails, and announced as ``media.stored``. It consumes no topics, so it has
no ``handlers.py``."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.media import api, ffmpeg, metrics
from services.media.context import MediaRuntime
from services.media.images import configure_pillow
from services.media.service import ensure_indexes
from services.media.settings import MediaSettings
from services.media.storage import ObjectStore, StorageDown
from shared import topics as tp
from shared.http import allow_body
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings, specialise
from shared.storage import make_minio

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    media = specialise(settings, MediaSettings)
    app, runtime = build_service(
        "media",
        title="CityDesk media",
        description="Photos and videos for stories: checked, stripped of location and "
        "identity, stored with thumbnails, served by short-lived links.",
        publishes=(tp.MEDIA_STORED,),
        uses_s3=True,
        settings=media,
    )
    # an upload is bounded by the media service's own limit for its kind, as it streams
    allow_body(app, "POST", "/media", None)
    if runtime.minio is None:  # build_service makes the client when uses_s3 is set
        raise RuntimeError("the media service needs object storage")
    configure_pillow(media.media_max_image_pixels)
    signer = runtime.minio
    if media.media_s3_public_endpoint:
        signer = make_minio(
            media.model_copy(update={"s3_endpoint": media.media_s3_public_endpoint})
        )
    store = ObjectStore(client=runtime.minio, signer=signer, bucket=media.media_bucket)
    app.state.media = MediaRuntime(
        shared=runtime,
        settings=media,
        store=store,
        decoding=asyncio.Semaphore(media.media_decode_concurrency),
        # found at start: without it videos could not be cleaned, so the service does not
        # start (the wheel ships it; IMAGEIO_FFMPEG_EXE may name another)
        ffmpeg=ffmpeg.executable(),
    )
    app.include_router(api.router)
    runtime.on_startup.append(ensure_indexes)

    async def prepare_bucket(_: ServiceRuntime) -> None:
        """In the background: a start while S3 is down still serves metadata, and uploads
        answer 503 (and retry the bucket) until it is back."""
        try:
            await store.ensure_bucket()
        except StorageDown as exc:
            log.warning("media bucket not ready yet: %s", exc)

    runtime.background.append(prepare_bucket)
    metrics.prime()
    return app
