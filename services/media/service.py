"""Storing media: the object first, then its metadata and the ``media.stored`` event in
one transaction, so that no metadata ever points at a missing object; dedupe by the
upload's sha256 per unit; reads through short-lived presigned links."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.error import MinioException
from prometheus_client import Counter, Histogram
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError, PyMongoError

from services.media import content
from services.media.content import JPEG_RENDITION
from services.media.models import (
    MEDIA,
    MediaPage,
    MediaRead,
    PupilsMark,
    ThumbnailSize,
    UploadResult,
)
from services.media.settings import MediaSettings
from services.media.upload import AdmitFile, FileAdmission, UploadForm, UploadProblem, read_upload
from shared import topics as tp
from shared.auth import Principal, Role, in_scope, require_role, require_scope
from shared.events import MediaKind, MediaStored, MediaStoredEvent
from shared.mongo import in_transaction
from shared.observability import correlation_id
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

UPLOADS = Counter(
    "citydesk_media_uploads_total",
    "Uploads answered, by kind and outcome "
    "(stored, duplicate, too_large, wrong_type, refused, storage_down).",
    ["kind", "outcome"],
)
UPLOAD_BYTES = Counter(
    "citydesk_media_upload_bytes_total",
    "Bytes of newly stored uploads (as uploaded), by kind.",
    ["kind"],
)
PROCESSING_SECONDS = Histogram(
    "citydesk_media_processing_seconds",
    "Time to receive, check and store one upload (its answer was stored or duplicate).",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPLOAD_ROLES = (
    Role.CORRESPONDENT, Role.REVIEWER_SCHOOL, Role.REVIEWER_COUNTY, Role.REVIEWER_CITY, Role.LEADER,
)  # fmt: skip
CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# what minio, urllib3 and the socket layer raise when S3 cannot be reached or refuses
STORAGE_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


class MediaProblem(Exception):
    """A request that cannot be served; ``status`` and ``detail`` go to the client."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


class StorageDown(Exception):
    """Object storage (or the metadata store) cannot take the upload right now."""


@dataclass
class ObjectStore:
    """The media bucket, created on first use, and presigned links for reading it."""

    client: Minio
    signer: Minio
    bucket: str
    _ready: bool = False
    _creating: asyncio.Task[None] | None = None

    async def ensure_bucket(self) -> None:
        """Create the bucket once; concurrent callers share one attempt."""
        if self._ready:
            return
        if self._creating is None or self._creating.done():
            self._creating = asyncio.create_task(self._create_bucket())
        try:
            await asyncio.shield(self._creating)
        except STORAGE_ERRORS as exc:
            raise StorageDown(f"object storage is unavailable: {exc}") from exc
        self._ready = True

    async def _create_bucket(self) -> None:
        if not await asyncio.to_thread(self.client.bucket_exists, self.bucket):
            with contextlib.suppress(MinioException):  # another replica made it meanwhile
                await asyncio.to_thread(self.client.make_bucket, self.bucket)

    async def put_file(self, key: str, path: Path, content_type: str, disposition: str) -> None:
        await asyncio.to_thread(
            self.client.fput_object, self.bucket, key, str(path), content_type=content_type,
            metadata={"Content-Disposition": disposition},
        )  # fmt: skip

    async def put_bytes(self, key: str, data: bytes, content_type: str, disposition: str) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
            metadata={"Content-Disposition": disposition},
        )  # fmt: skip

    async def remove(self, keys: list[str]) -> None:
        """Best effort: an orphaned object costs space, never correctness."""
        for key in keys:
            try:
                await asyncio.to_thread(self.client.remove_object, self.bucket, key)
            except STORAGE_ERRORS as exc:
                log.warning("could not remove orphaned object %s: %s", key, exc)

    def presigned(
        self, key: str, expires: timedelta, *, content_type: str, disposition: str
    ) -> str:
        """A link that answers with the sniffed type and a disposition whatever the object
        was stored with (browsers then neither guess a type nor run what they download)."""
        return self.signer.presigned_get_object(
            self.bucket, key, expires=expires,
            response_headers={
                "response-content-type": content_type,
                "response-content-disposition": disposition,
            },
        )  # fmt: skip


@dataclass
class MediaContext:
    """What the routes need besides the shared runtime."""

    runtime: ServiceRuntime
    settings: MediaSettings
    store: ObjectStore
    # images decoded at once in this process (bounds memory)
    decoding: asyncio.Semaphore
    # the ffmpeg that cleans videos and takes their poster frames
    ffmpeg: str

    @property
    def rendition_sizes(self) -> dict[str, int]:
        return {
            "small": self.settings.media_thumbnail_small_px,
            "medium": self.settings.media_thumbnail_medium_px,
        }


async def ensure_indexes(runtime: ServiceRuntime) -> None:
    """Dedupe key and the listing orders."""
    media = runtime.db[MEDIA]
    await media.create_index([("unit", ASCENDING), ("sha256", ASCENDING)], unique=True)
    await media.create_index([("unit", ASCENDING), ("stored_at", DESCENDING)])
    await media.create_index([("campaign", ASCENDING), ("stored_at", DESCENDING)])


# ---- upload -------------------------------------------------------------------------
def admit_file(*, context: MediaContext, principal: Principal) -> AdmitFile:
    """The check run when the file part begins: its claimed type, its size limit, and the
    caller's scope when the unit field came first (so a refused upload is not read)."""

    def admit(
        filename: str | None, content_type: str | None, fields: dict[str, str]
    ) -> FileAdmission:
        if "unit" in fields:
            _check_unit(context=context, principal=principal, unit=fields["unit"])
        try:
            claimed = content.claimed_type(content_type, filename)
        except content.WrongType as exc:
            raise UploadProblem(415, str(exc)) from exc
        limit = (
            context.settings.media_photo_max_bytes
            if claimed.kind is MediaKind.PHOTO
            else context.settings.media_video_max_bytes
        )
        return FileAdmission(claimed=claimed, max_bytes=limit)

    return admit


def check_uploader(*, principal: Principal) -> None:
    """Correspondents, reviewers and leaders upload; admins too."""
    require_role(principal, *UPLOAD_ROLES)


def _check_unit(*, context: MediaContext, principal: Principal, unit: str) -> None:
    if not CODE.match(unit):
        raise UploadProblem(422, "unit must be a unit code such as 'dh-syxx'")
    org = context.runtime.org
    if org.get(unit) is None:
        raise UploadProblem(404, f"unknown unit {unit!r}")
    if not in_scope(principal, org, unit):
        raise UploadProblem(
            403, f"unit {unit!r} is outside your scope ({principal.unit!r} and the units below it)"
        )


async def receive_upload(
    *,
    context: MediaContext,
    principal: Principal,
    content_type: str | None,
    content_length: str | None,
    stream: AsyncIterator[bytes],
) -> UploadResult:
    """Read, check, store and record one upload, counting its outcome; the spooled file is
    removed whatever happens."""
    check_uploader(principal=principal)
    settings = context.settings
    largest = max(settings.media_photo_max_bytes, settings.media_video_max_bytes)
    if content_length and content_length.isdigit() and int(content_length) > largest + 64 * 1024:
        UPLOADS.labels("unknown", "too_large").inc()
        raise MediaProblem(413, f"the upload is larger than the largest limit ({largest} bytes)")
    started = time.perf_counter()
    try:
        form = await read_upload(
            content_type=content_type,
            stream=stream,
            admit=admit_file(context=context, principal=principal),
            spool_dir=settings.media_spool_dir,
        )
    except UploadProblem as exc:
        UPLOADS.labels(exc.kind, exc.outcome).inc()
        raise MediaProblem(exc.status, exc.detail) from exc
    kind = form.file.claimed.kind.value
    try:
        result = await store_upload(context=context, principal=principal, form=form)
    except UploadProblem as exc:
        UPLOADS.labels(exc.kind, exc.outcome).inc()
        raise MediaProblem(exc.status, exc.detail) from exc
    except StorageDown as exc:
        UPLOADS.labels(kind, "storage_down").inc()
        log.warning("upload refused for now: %s", exc)
        raise MediaProblem(
            503,
            f"{exc}; try again later",
            headers={"Retry-After": str(settings.media_retry_after_seconds)},
        ) from exc
    finally:
        form.discard()
    UPLOADS.labels(result.kind.value, "duplicate" if result.duplicate else "stored").inc()
    PROCESSING_SECONDS.labels(result.kind.value).observe(time.perf_counter() - started)
    return result


async def store_upload(
    *, context: MediaContext, principal: Principal, form: UploadForm
) -> UploadResult:
    """Check an uploaded file, store it with its renditions, record it and announce it;
    the same file from the same unit again returns the first record."""
    spooled = form.file
    kind = spooled.claimed.kind
    unit = form.fields.get("unit", "").strip()
    if not unit:
        raise UploadProblem(422, "the form needs a 'unit' field", kind=kind.value)
    _check_unit(context=context, principal=principal, unit=unit)
    campaign = form.fields.get("campaign", "").strip() or None
    if campaign is not None and not CODE.match(campaign):
        raise UploadProblem(422, "campaign must be a code of letters, digits, '_', '.', '-'")
    real = spooled.real

    existing = await context.runtime.db[MEDIA].find_one({"unit": unit, "sha256": spooled.sha256})
    if existing is not None:
        return UploadResult(**MediaRead.from_doc(existing).model_dump(), duplicate=True)

    media_id = uuid.uuid4().hex
    prefix = f"{unit}/{media_id}"
    doc: dict[str, Any] = {
        "_id": media_id,
        "unit": unit,
        "unit_path": context.runtime.org.path(unit).model_dump(),
        "kind": real.kind.value,
        "content_type": real.content_type,
        "sha256": spooled.sha256,
        "original_size": spooled.size,
        "filename": spooled.filename,
        "campaign": campaign,
        "uploader": principal.sub,
        "uploader_name": principal.name,
        "poster": None,
    }
    renditions: list[content.Rendition]
    if real.kind is MediaKind.PHOTO:
        async with context.decoding:
            try:
                image = await asyncio.to_thread(
                    content.inspect_image,
                    spooled.path,
                    real,
                    max_pixels=context.settings.media_max_image_pixels,
                    sizes=context.rendition_sizes,
                )
            except content.ImageRefused as exc:
                raise UploadProblem(422, str(exc), kind=kind.value, outcome="refused") from exc
        stored_path = image.stored_path
        renditions = image.renditions
        doc.update(
            width=image.width, height=image.height, captured_at=image.captured_at,
            gps_removed=image.gps_removed, metadata_removed=image.metadata_removed,
        )  # fmt: skip
    else:
        try:
            video = await content.inspect_video(
                spooled.path, real, ffmpeg=context.ffmpeg,
                timeout=context.settings.media_ffmpeg_timeout_seconds,
            )  # fmt: skip
        except content.VideoRefused as exc:
            raise UploadProblem(422, str(exc), kind=kind.value, outcome="refused") from exc
        stored_path = video.stored_path
        renditions = []
        if video.poster_frame is not None:
            try:
                async with context.decoding:
                    renditions, video.width, video.height = await asyncio.to_thread(
                        content.poster_renditions, video.poster_frame, sizes=context.rendition_sizes
                    )
            except content.ImageRefused:
                video.poster = "failed"
        doc.update(
            width=video.width, height=video.height, captured_at=video.captured_at,
            gps_removed=video.gps_removed, metadata_removed=video.metadata_removed,
            poster=video.poster,
        )  # fmt: skip

    doc["object_key"] = f"{prefix}/original{real.extensions[0]}"
    doc["size"] = stored_path.stat().st_size
    doc["renditions"] = {
        r.name: {"key": f"{prefix}/{r.name}.jpg", "width": r.width, "height": r.height}
        for r in renditions
    }
    written: list[str] = []
    try:
        await context.store.ensure_bucket()
        await context.store.put_file(
            doc["object_key"], stored_path, real.content_type, original_disposition(doc)
        )
        written.append(doc["object_key"])
        for rendition in renditions:
            key = doc["renditions"][rendition.name]["key"]
            await context.store.put_bytes(
                key, rendition.data, "image/jpeg", rendition_disposition(doc, rendition.name)
            )
            written.append(key)
    except (StorageDown, *STORAGE_ERRORS) as exc:
        await context.store.remove(written)
        raise StorageDown(f"object storage is unavailable: {exc}") from exc

    try:
        await _record(context=context, doc=doc)
    except DuplicateKeyError:
        # the same file from the same unit, stored by a concurrent upload: keep theirs
        await context.store.remove(written)
        first = await context.runtime.db[MEDIA].find_one({"unit": unit, "sha256": spooled.sha256})
        if first is None:
            raise
        return UploadResult(**MediaRead.from_doc(first).model_dump(), duplicate=True)
    except PyMongoError as exc:
        await context.store.remove(written)
        raise StorageDown(f"the metadata store is unavailable: {exc}") from exc
    context.runtime.outbox_written()
    UPLOAD_BYTES.labels(real.kind.value).inc(spooled.size)
    return UploadResult(**MediaRead.from_doc(doc).model_dump(), duplicate=False)


async def _record(*, context: MediaContext, doc: dict[str, Any]) -> None:
    """Metadata and the ``media.stored`` event, in one transaction."""
    runtime = context.runtime
    doc["stored_at"] = datetime.now(UTC)
    path = doc["unit_path"]
    event = MediaStoredEvent.build(
        MediaStored(
            media_id=doc["_id"],
            unit_path=path,
            kind=doc["kind"],
            content_type=doc["content_type"],
            size=doc["size"],
            sha256=doc["sha256"],
            campaign=doc["campaign"],
            width=doc["width"],
            height=doc["height"],
            uploader=doc["uploader"],
            stored_at=doc["stored_at"],
        ),
        producer=runtime.name,
        county=path.get("county"),
        unit=doc["unit"],
        correlation_id=correlation_id.get(),
    )

    async def write(session: AsyncClientSession) -> None:
        await runtime.db[MEDIA].insert_one(doc, session=session)
        await runtime.emit(tp.MEDIA_STORED, event, session=session)

    await in_transaction(runtime.mongo, write)


# ---- read ---------------------------------------------------------------------------
async def get_media(
    *, context: MediaContext, principal: Principal, media_id: str
) -> dict[str, Any]:
    """One media document inside the caller's scope (404 unknown, 403 outside)."""
    doc = await context.runtime.db[MEDIA].find_one({"_id": media_id})
    if doc is None:
        raise MediaProblem(404, f"no media {media_id!r}")
    if not in_scope(principal, context.runtime.org, doc["unit"]):
        raise MediaProblem(
            403,
            f"media {media_id!r} belongs to unit {doc['unit']!r}, outside your scope "
            f"({principal.unit!r} and the units below it)",
        )
    return doc


def original_disposition(doc: dict[str, Any]) -> str:
    """Downloaded, under the media id: the uploader's file name may name a pupil."""
    extension = Path(doc["object_key"]).suffix
    return f'attachment; filename="{doc["_id"]}{extension}"'


def rendition_disposition(doc: dict[str, Any], name: str) -> str:
    return f'inline; filename="{doc["_id"]}-{name}.jpg"'


async def mark_pupils(
    *, context: MediaContext, principal: Principal, media_id: str, mark: PupilsMark
) -> dict[str, Any]:
    """Record whether pupils can be recognised in the file and the guardians' consent on
    file; every change is kept in the file's history."""
    check_uploader(principal=principal)
    await get_media(context=context, principal=principal, media_id=media_id)
    now = datetime.now(UTC)
    pupils: dict[str, Any] = {
        "identifiable": mark.identifiable,
        "consent": None,
        "marked_by": principal.sub,
        "marked_at": now,
    }
    if mark.consent is not None:
        consent = mark.consent.model_dump()
        # a date, as BSON stores it
        consent["obtained_on"] = datetime.combine(mark.consent.obtained_on, datetime.min.time())
        pupils["consent"] = consent | {"recorded_by": principal.sub, "recorded_at": now}
    updated = await context.runtime.db[MEDIA].find_one_and_update(
        {"_id": media_id},
        {"$set": {"pupils": pupils}, "$push": {"pupils_history": pupils}},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise MediaProblem(404, f"no media {media_id!r}")
    return updated


def read_with_link(*, context: MediaContext, doc: dict[str, Any]) -> MediaRead:
    """The metadata with presigned links (the original, and the JPEG rendition of a HEIC
    or AVIF photo) that expire soon."""
    expires = timedelta(seconds=context.settings.media_url_expiry_seconds)
    read = MediaRead.from_doc(doc)
    read.url = context.store.presigned(
        doc["object_key"], expires,
        content_type=doc["content_type"], disposition=original_disposition(doc),
    )  # fmt: skip
    if (jpeg := doc.get("renditions", {}).get(JPEG_RENDITION)) is not None:
        read.jpeg_url = context.store.presigned(
            jpeg["key"], expires,
            content_type="image/jpeg", disposition=rendition_disposition(doc, JPEG_RENDITION),
        )  # fmt: skip
    read.url_expires_at = datetime.now(UTC) + expires
    return read


def thumbnail_link(*, context: MediaContext, doc: dict[str, Any], size: ThumbnailSize) -> str:
    """A presigned link to one rendition; 404 when the media has none (a video without
    a poster frame)."""
    rendition = doc.get("renditions", {}).get(size)
    if rendition is None:
        reason = {
            "unavailable": "no poster frame: ffmpeg was not installed when it was stored",
            "failed": "no poster frame: none could be read from the video",
        }.get(doc.get("poster") or "", "no thumbnail")
        raise MediaProblem(404, f"media {doc['_id']!r} has {reason}")
    expires = timedelta(seconds=context.settings.media_url_expiry_seconds)
    return context.store.presigned(
        rendition["key"], expires,
        content_type="image/jpeg", disposition=rendition_disposition(doc, size),
    )  # fmt: skip


async def list_media(
    *,
    context: MediaContext,
    principal: Principal,
    unit: str | None,
    campaign: str | None,
    kind: MediaKind | None,
    limit: int,
    offset: int,
) -> MediaPage:
    """Media of a unit and the units below it (default: the caller's), newest first."""
    org = context.runtime.org
    scope = unit or principal.unit
    require_scope(principal, org, scope)
    query: dict[str, Any] = {"unit": {"$in": [u.code for u in org.below(scope)]}}
    if campaign:
        query["campaign"] = campaign
    if kind:
        query["kind"] = kind.value
    media = context.runtime.db[MEDIA]
    total = await media.count_documents(query)
    docs = await media.find(query).sort("stored_at", DESCENDING).skip(offset).limit(limit).to_list()
    return MediaPage(
        items=[MediaRead.from_doc(d) for d in docs], total=total, limit=limit, offset=offset
    )
