"""The media service's own settings (``CITYDESK_MEDIA_*``): upload limits, image safety,
renditions and link lifetimes. They sit with the deployment because the ingress body
limit and the pod's memory must agree with them."""

from __future__ import annotations

from pydantic import Field

from shared.settings import Settings


class MediaSettings(Settings):
    service_name: str = "media"
    media_bucket: str = "citydesk-media"
    media_photo_max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    media_video_max_bytes: int = Field(default=500 * 1024 * 1024, gt=0)
    # a 50-megapixel phone photo passes; a pixel flood that would need gigabytes does not
    media_max_image_pixels: int = Field(default=60_000_000, gt=0)
    media_thumbnail_small_px: int = Field(default=160, gt=0)
    media_thumbnail_medium_px: int = Field(default=640, gt=0)
    media_url_expiry_seconds: int = Field(default=600, ge=1, le=7 * 24 * 3600)
    # images decoded at once per process: bounds the memory a burst of uploads can take
    media_decode_concurrency: int = Field(default=2, ge=1)
    media_retry_after_seconds: int = Field(default=30, ge=1)
    media_ffmpeg_timeout_seconds: float = Field(default=30.0, gt=0)
    media_spool_dir: str | None = None
    # the host in presigned links when clients reach S3 by another name than the service
    media_s3_public_endpoint: str | None = None
