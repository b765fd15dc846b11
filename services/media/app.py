"""The media service: photos and videos checked, cleaned of location and identity, stored
in S3 with thumbnails, and announced as ``media.stored``. It consumes no topics."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.media import api, listing
from services.media.content import configure_pillow, ffmpeg_executable
from services.media.service import (
    PROCESSING_SECONDS,
    UPLOAD_BYTES,
    UPLOADS,
    MediaContext,
    MediaProblem,
    ObjectStore,
    StorageDown,
    ensure_indexes,
)
from services.media.settings import media_settings
from shared import topics as tp
from shared.events import MediaKind
from shared.observability import precreate
from shared.runtime import ServiceRuntime, build_service
from shared.settings import Settings
from shared.storage import make_minio

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    media = media_settings(settings)
    app, runtime = build_service(
        "media",
        title="CityDesk media",
        description="Photos and videos for stories: checked, stripped of location and "
        "identity, stored with thumbnails, served by short-lived links.",
        publishes=(tp.MEDIA_STORED,),
        uses_s3=True,
        settings=media,
    )
    assert runtime.minio is not None
    configure_pillow(media.media_max_image_pixels)
    signer = runtime.minio
    if media.media_s3_public_endpoint:
        signer = make_minio(
            media.model_copy(update={"s3_endpoint": media.media_s3_public_endpoint})
        )
    context = MediaContext(
        runtime=runtime,
        settings=media,
        store=ObjectStore(client=runtime.minio, signer=signer, bucket=media.media_bucket),
        decoding=asyncio.Semaphore(media.media_decode_concurrency),
        # found at start: without it videos could not be cleaned, so the service does not
        # start (the wheel ships it; IMAGEIO_FFMPEG_EXE may name another)
        ffmpeg=ffmpeg_executable(),
    )
    app.state.media = context
    app.include_router(api.router)

    @app.exception_handler(MediaProblem)
    async def _problem(request: Request, exc: MediaProblem) -> JSONResponse:
        return api.problem_response(exc)

    runtime.on_startup.append(ensure_indexes)
    runtime.on_startup.append(listing.ensure_list_indexes)

    async def prepare_bucket(_: ServiceRuntime) -> None:
        """In the background: a start while S3 is down still serves metadata, and uploads
        answer 503 (and retry the bucket) until it is back."""
        try:
            await context.store.ensure_bucket()
        except StorageDown as exc:
            log.warning("media bucket not ready yet: %s", exc)

    runtime.background.append(prepare_bucket)
    _prime_metrics()
    return app


def _prime_metrics() -> None:
    """Every known label value at zero, so the first refusal of each kind is an increase."""
    kinds = [kind.value for kind in MediaKind]
    outcomes = ["stored", "duplicate", "too_large", "wrong_type", "refused", "storage_down"]
    precreate(UPLOADS, kind=[*kinds, "unknown"], outcome=outcomes)
    precreate(UPLOAD_BYTES, kind=kinds)
    precreate(PROCESSING_SECONDS, kind=kinds)
