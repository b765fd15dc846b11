"""What the media service stores and answers: one document per stored file, keyed by its
media id, unique per (unit, sha256 of the upload)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.media.content import PosterState
from shared.events import MediaKind

ThumbnailSize = Literal["small", "medium"]
MEDIA = "media"


class Thumbnail(BaseModel):
    width: int
    height: int


class MediaRead(BaseModel):
    """A stored photo or video as the caller sees it."""

    id: str
    unit: str
    county: str | None
    kind: MediaKind
    content_type: str
    size: int = Field(description="bytes of the stored object")
    sha256: str = Field(description="sha256 of the file as uploaded: the dedupe key")
    filename: str | None
    campaign: str | None
    width: int | None
    height: int | None
    captured_at: datetime | None = Field(description="EXIF DateTimeOriginal, in UTC")
    gps_removed: bool = Field(description="location data was found and removed")
    thumbnails: dict[str, Thumbnail]
    poster: PosterState | None = Field(
        description="videos: 'stored', 'unavailable' (no ffmpeg) or 'failed' (no frame)"
    )
    uploader: str
    stored_at: datetime
    url: str | None = Field(default=None, description="short-lived presigned download link")
    url_expires_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> MediaRead:
        return cls(
            id=doc["_id"],
            unit=doc["unit"],
            county=doc["unit_path"].get("county"),
            kind=doc["kind"],
            content_type=doc["content_type"],
            size=doc["size"],
            sha256=doc["sha256"],
            filename=doc.get("filename"),
            campaign=doc.get("campaign"),
            width=doc.get("width"),
            height=doc.get("height"),
            captured_at=doc.get("captured_at"),
            gps_removed=doc.get("gps_removed", False),
            thumbnails={
                name: Thumbnail(width=r["width"], height=r["height"])
                for name, r in doc.get("renditions", {}).items()
            },
            poster=doc.get("poster"),
            uploader=doc["uploader"],
            stored_at=doc["stored_at"],
        )


class UploadResult(MediaRead):
    duplicate: bool = Field(description="the unit had already uploaded this exact file")


class MediaPage(BaseModel):
    items: list[MediaRead]
    total: int
    limit: int
    offset: int
