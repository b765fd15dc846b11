"""What the media service stores and answers: one document per stored file, keyed by its
media id, unique per (unit, sha256 of the upload)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Literal, NotRequired, TypedDict

from pydantic import BaseModel, Field

from services.media.images import JPEG_RENDITION
from shared.events import MediaKind

ThumbnailSize = Literal["small", "medium"]
# videos: a poster frame was stored, none could be read, or the file predates ffmpeg
PosterState = Literal["stored", "unavailable", "failed"]
MEDIA = "media"


class StoredRendition(TypedDict):
    key: str
    width: int
    height: int


class FileDetails(TypedDict):
    """What reading and cleaning the file found."""

    width: int | None
    height: int | None
    captured_at: datetime | None
    gps_removed: bool
    metadata_removed: bool
    poster: PosterState | None  # videos only


class MediaDoc(FileDetails):
    """One stored photo or video in the ``media`` collection, keyed by its media id."""

    _id: str
    unit: str
    unit_path: dict[str, str | None]
    kind: str
    content_type: str  # the sniffed type
    sha256: str  # of the upload as received: the dedupe key with the unit
    original_size: int
    filename: str | None  # never used to name an object: it may name a pupil
    campaign: str | None
    uploader: str
    uploader_name: str | None
    object_key: str
    size: int  # of the stored, cleaned original
    renditions: dict[str, StoredRendition]
    stored_at: datetime
    # set by PUT /media/{id}/pupils
    pupils: NotRequired[dict[str, Any]]
    pupils_history: NotRequired[list[dict[str, Any]]]


class Thumbnail(BaseModel):
    width: int
    height: int


class GuardianConsent(BaseModel):
    """The guardians' consent (监护人同意) on file for the pupils a photo shows."""

    model_config = {"extra": "forbid"}

    reference: str = Field(
        min_length=1, max_length=200, description="the signed form's number or where it is filed"
    )
    obtained_on: date
    outside_media: bool = Field(
        default=True, description="the consent covers publication in outside media"
    )


class PupilsMark(BaseModel):
    """Whether pupils can be recognised in the photo or video (可辨认学生), and the consent
    on file for them."""

    model_config = {"extra": "forbid"}

    identifiable: bool
    consent: GuardianConsent | None = None


class RecordedConsent(GuardianConsent):
    recorded_by: str
    recorded_at: datetime


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
    captured_at: datetime | None = Field(
        description="photos: EXIF DateTimeOriginal; videos: the file's creation time; in UTC"
    )
    gps_removed: bool = Field(description="location data was found and removed")
    metadata_removed: bool = Field(
        default=False,
        description="metadata besides capture time and orientation (device, serials, owner, "
        "XMP, IPTC, comments, tags) was found and removed",
    )
    thumbnails: dict[str, Thumbnail]
    jpeg: Thumbnail | None = Field(
        default=None,
        description="HEIC/HEIF/AVIF photos: the size of their full JPEG rendition",
    )
    poster: PosterState | None = Field(
        description="videos: 'stored', 'failed' (no frame could be read) or 'unavailable' "
        "(stored before videos were cleaned, without ffmpeg)"
    )
    uploader: str
    stored_at: datetime
    pupils_identifiable: bool = Field(
        default=False, description="marked as showing pupils who can be recognised"
    )
    guardian_consent: RecordedConsent | None = None
    cleared_for_outside_media: bool = Field(
        default=True,
        description="no recognisable pupils, or their guardians' consent covers outside media",
    )
    url: str | None = Field(default=None, description="short-lived presigned download link")
    jpeg_url: str | None = Field(
        default=None, description="HEIC/HEIF/AVIF photos: a short-lived link to the JPEG"
    )
    url_expires_at: datetime | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> MediaRead:
        renditions = doc.get("renditions", {})
        jpeg = renditions.get(JPEG_RENDITION)
        pupils = doc.get("pupils") or {}
        consent = pupils.get("consent")
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
            metadata_removed=doc.get("metadata_removed", False),
            thumbnails={
                name: Thumbnail(width=r["width"], height=r["height"])
                for name, r in renditions.items()
                if name != JPEG_RENDITION
            },
            jpeg=Thumbnail(width=jpeg["width"], height=jpeg["height"]) if jpeg else None,
            poster=doc.get("poster"),
            uploader=doc["uploader"],
            stored_at=doc["stored_at"],
            pupils_identifiable=pupils.get("identifiable", False),
            guardian_consent=RecordedConsent(**consent) if consent else None,
            cleared_for_outside_media=cleared_for_outside_media(doc),
        )


def cleared_for_outside_media(doc: Mapping[str, Any]) -> bool:
    """Outside media may show the file: nobody marked recognisable pupils in it, or their
    guardians' consent on file covers outside media."""
    pupils = doc.get("pupils") or {}
    if not pupils.get("identifiable"):
        return True
    consent = pupils.get("consent")
    return bool(consent and consent.get("outside_media"))


class UploadResult(MediaRead):
    duplicate: bool = Field(description="the unit had already uploaded this exact file")


class MediaFilter(BaseModel):
    """Which media a listing shows (the caller's unit and those below it by default)."""

    unit: str | None = Field(default=None, description="this unit and those below it")
    campaign: str | None = None
    kind: MediaKind | None = None
