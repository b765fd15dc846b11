"""Taking in an upload: read and check the form as it arrives, clean the file and make its
renditions, write the objects first and then the metadata with the ``media.stored`` event
in one transaction (so no metadata ever points at a missing object). The same file from
the same unit again answers with the first record."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError, PyMongoError

from services.media import filetypes, images, refusals, video
from services.media.context import MediaRuntime
from services.media.metrics import PROCESSING_SECONDS, UPLOAD_BYTES, UPLOADS
from services.media.models import FileDetails, MediaDoc, MediaRead, StoredRendition, UploadResult
from services.media.refusals import UploadRefusal
from services.media.storage import (
    STORAGE_ERRORS,
    StorageDown,
    original_disposition,
    rendition_disposition,
)
from services.media.upload import AdmitFile, FileAdmission, SpooledFile, UploadForm, read_upload
from shared import topics as tp
from shared.auth import Principal, Role, in_scope, require_role
from shared.clock import utcnow
from shared.events import MediaKind, MediaStored, MediaStoredEvent, UnitPath
from shared.mongo import in_transaction
from shared.observability import correlation_id
from shared.orgtree import OrgTree

log = logging.getLogger(__name__)

UPLOAD_ROLES = (
    Role.CORRESPONDENT, Role.REVIEWER_SCHOOL, Role.REVIEWER_COUNTY, Role.REVIEWER_CITY, Role.LEADER,
)  # fmt: skip
CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# room for the form's fields and boundaries around the largest file
FORM_OVERHEAD_BYTES = 64 * 1024


def check_uploader(*, principal: Principal) -> None:
    """Correspondents, reviewers and leaders upload; admins too."""
    require_role(principal, *UPLOAD_ROLES)


async def receive_upload(
    *,
    runtime: MediaRuntime,
    principal: Principal,
    content_type: str | None,
    content_length: str | None,
    stream: AsyncIterator[bytes],
) -> UploadResult:
    """Read, check, store and record one upload, counting its outcome; the spooled file is
    removed whatever happens."""
    check_uploader(principal=principal)
    settings = runtime.settings
    largest = max(settings.media_photo_max_bytes, settings.media_video_max_bytes)
    started = time.perf_counter()
    try:
        if content_length and content_length.isdigit():
            if int(content_length) > largest + FORM_OVERHEAD_BYTES:
                raise refusals.upload_too_large(largest)
        form = await read_upload(
            content_type=content_type,
            stream=stream,
            admit=admit_file(runtime=runtime, principal=principal),
            spool_dir=settings.media_spool_dir,
        )
        try:
            result = await store_upload(runtime=runtime, principal=principal, form=form)
        finally:
            form.discard()
    except UploadRefusal as refusal:
        if refusal.outcome == "storage_down":
            log.warning("upload refused for now: %s", refusal.detail)
        UPLOADS.labels(refusal.kind, refusal.outcome).inc()
        raise
    kind = result.kind.value
    UPLOADS.labels(kind, "duplicate" if result.duplicate else "stored").inc()
    PROCESSING_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return result


def admit_file(*, runtime: MediaRuntime, principal: Principal) -> AdmitFile:
    """The check run when the file part begins: its claimed type, its size limit, and the
    caller's scope when the unit field came first (so a refused upload is not read)."""

    def admit(
        filename: str | None, content_type: str | None, fields: dict[str, str]
    ) -> FileAdmission:
        if "unit" in fields:
            check_unit(runtime=runtime, principal=principal, unit=fields["unit"])
        claimed = filetypes.claimed_type(content_type, filename)
        limit = (
            runtime.settings.media_photo_max_bytes
            if claimed.kind is MediaKind.PHOTO
            else runtime.settings.media_video_max_bytes
        )
        return FileAdmission(claimed=claimed, max_bytes=limit)

    return admit


def check_unit(*, runtime: MediaRuntime, principal: Principal, unit: str) -> None:
    if not CODE.match(unit):
        raise refusals.unit_invalid()
    if runtime.org.get(unit) is None:
        raise refusals.unknown_unit(unit)
    if not in_scope(principal, runtime.org, unit):
        raise refusals.unit_out_of_scope(unit, principal.unit)


@dataclass
class Processed:
    """The file to store (cleaned), its renditions and what was learnt from it."""

    source: SpooledFile
    stored_path: Path
    renditions: list[images.Rendition]
    details: FileDetails


async def store_upload(
    *, runtime: MediaRuntime, principal: Principal, form: UploadForm
) -> UploadResult:
    """Check an uploaded file's form, clean it and make its renditions, store the objects,
    record and announce it; the same file from the same unit again returns the first
    record."""
    spooled = form.file
    kind = spooled.claimed.kind.value
    try:
        target = form_target(runtime=runtime, principal=principal, form=form)
        first = await runtime.media.find_one({"unit": target.unit, "sha256": spooled.sha256})
        if first is None:
            processed = await process(runtime=runtime, spooled=spooled)
            doc = new_document(
                runtime=runtime, principal=principal, target=target, processed=processed
            )
            written = await put_objects(runtime=runtime, doc=doc, processed=processed)
            first = await record(runtime=runtime, doc=doc, written=written)
    except StorageDown as exc:
        raise refusals.storage_down(
            str(exc), kind=kind, retry_after=runtime.settings.media_retry_after_seconds
        ) from exc
    except UploadRefusal as refusal:
        refusal.of_kind(kind)
        raise
    if first is not None:
        return UploadResult(**MediaRead.from_doc(first).model_dump(), duplicate=True)
    UPLOAD_BYTES.labels(kind).inc(spooled.size)
    return UploadResult(**MediaRead.from_doc(doc).model_dump(), duplicate=False)


@dataclass(frozen=True)
class Target:
    """Whose file it is: the unit, and the campaign it is tagged with."""

    unit: str
    campaign: str | None


def form_target(*, runtime: MediaRuntime, principal: Principal, form: UploadForm) -> Target:
    """The unit the file is for (in the caller's scope) and its campaign tag, if any."""
    unit = form.fields.get("unit", "").strip()
    if not unit:
        raise refusals.unit_missing(form.file.claimed.kind.value)
    check_unit(runtime=runtime, principal=principal, unit=unit)
    campaign = form.fields.get("campaign", "").strip() or None
    if campaign is not None and not CODE.match(campaign):
        raise refusals.campaign_invalid()
    return Target(unit, campaign)


async def process(*, runtime: MediaRuntime, spooled: SpooledFile) -> Processed:
    """The file cleaned of location and identity, with its thumbnails."""
    if spooled.real.kind is MediaKind.PHOTO:
        return await _process_photo(runtime=runtime, spooled=spooled)
    return await _process_video(runtime=runtime, spooled=spooled)


async def _process_photo(*, runtime: MediaRuntime, spooled: SpooledFile) -> Processed:
    """Decoded under the pixel limit, a few at a time (decoding takes the memory)."""
    async with runtime.decoding:
        image = await asyncio.to_thread(
            images.inspect_image,
            spooled.path,
            spooled.real,
            max_pixels=runtime.settings.media_max_image_pixels,
            sizes=runtime.rendition_sizes,
        )
    details = FileDetails(
        width=image.width,
        height=image.height,
        captured_at=image.captured_at,
        gps_removed=image.gps_removed,
        metadata_removed=image.metadata_removed,
        poster=None,
    )
    return Processed(spooled, image.stored_path, image.renditions, details)


async def _process_video(*, runtime: MediaRuntime, spooled: SpooledFile) -> Processed:
    """Re-muxed without metadata; its size is the poster frame's, upright as players
    show it (unknown when no frame could be read)."""
    clip = await video.inspect_video(
        spooled.path,
        spooled.real,
        executable=runtime.ffmpeg,
        timeout=runtime.settings.media_ffmpeg_timeout_seconds,
    )
    poster: images.PosterRenditions | None = None
    if clip.poster_frame is not None:
        async with runtime.decoding:
            poster = await asyncio.to_thread(
                images.poster_renditions, clip.poster_frame, sizes=runtime.rendition_sizes
            )
    details = FileDetails(
        width=poster.width if poster else None,
        height=poster.height if poster else None,
        captured_at=clip.captured_at,
        gps_removed=clip.gps_removed,
        metadata_removed=clip.metadata_removed,
        poster="stored" if poster else "failed",
    )
    return Processed(spooled, clip.stored_path, poster.renditions if poster else [], details)


def new_document(
    *, runtime: MediaRuntime, principal: Principal, target: Target, processed: Processed
) -> MediaDoc:
    """The record of a new file."""
    spooled = processed.source
    real = spooled.real
    return media_document(
        org=runtime.org,
        stored=StoredFile(
            media_id=uuid.uuid4().hex, unit=target.unit, kind=real.kind.value,
            content_type=real.content_type, extension=real.extensions[0],
            sha256=spooled.sha256, original_size=spooled.size,
            size=processed.stored_path.stat().st_size, campaign=target.campaign,
            uploader=principal.sub, stored_at=utcnow(),
        ),
        filename=spooled.filename,
        uploader_name=principal.name,
        renditions={r.name: (r.width, r.height) for r in processed.renditions},
        details=processed.details,
    )  # fmt: skip


@dataclass(frozen=True)
class StoredFile:
    """What names and sizes a stored file (what ``media.stored`` announces of it)."""

    media_id: str
    unit: str
    kind: str
    content_type: str
    extension: str
    sha256: str
    original_size: int
    size: int
    campaign: str | None
    uploader: str
    stored_at: datetime


def media_document(
    *,
    org: OrgTree,
    stored: StoredFile,
    filename: str | None,
    uploader_name: str | None,
    renditions: dict[str, tuple[int, int]],
    details: FileDetails,
) -> MediaDoc:
    """A file's record. Its objects are named by unit and media id, never by the
    uploader's file name."""
    prefix = f"{stored.unit}/{stored.media_id}"
    return MediaDoc(
        _id=stored.media_id,
        unit=stored.unit,
        unit_path=org.path(stored.unit).model_dump(),
        kind=stored.kind,
        content_type=stored.content_type,
        sha256=stored.sha256,
        original_size=stored.original_size,
        filename=filename,
        campaign=stored.campaign,
        uploader=stored.uploader,
        uploader_name=uploader_name,
        object_key=f"{prefix}/original{stored.extension}",
        size=stored.size,
        renditions={
            name: StoredRendition(key=f"{prefix}/{name}.jpg", width=width, height=height)
            for name, (width, height) in renditions.items()
        },
        stored_at=stored.stored_at,
        **details,
    )


async def put_objects(*, runtime: MediaRuntime, doc: MediaDoc, processed: Processed) -> list[str]:
    """Write the original and its renditions; on a failure remove what was written and
    raise :class:`StorageDown`."""
    store = runtime.store
    written: list[str] = []
    try:
        await store.ensure_bucket()
        await store.put_file(
            doc["object_key"], processed.stored_path, doc["content_type"], original_disposition(doc)
        )
        written.append(doc["object_key"])
        for rendition in processed.renditions:
            key = doc["renditions"][rendition.name]["key"]
            disposition = rendition_disposition(doc, rendition.name)
            await store.put_bytes(key, rendition.data, "image/jpeg", disposition)
            written.append(key)
    except (StorageDown, *STORAGE_ERRORS) as exc:
        await store.remove(written)
        raise StorageDown(f"object storage is unavailable: {exc}") from exc
    return written


async def record(
    *, runtime: MediaRuntime, doc: MediaDoc, written: list[str]
) -> dict[str, Any] | None:
    """Metadata and the ``media.stored`` event, in one transaction. When a concurrent
    upload of the same file by the same unit got there first, its record is returned and
    ours removed."""
    try:
        await _record(runtime=runtime, doc=doc)
    except DuplicateKeyError:
        await runtime.store.remove(written)
        first = await runtime.media.find_one({"unit": doc["unit"], "sha256": doc["sha256"]})
        if first is None:
            raise
        return first
    except PyMongoError as exc:
        await runtime.store.remove(written)
        raise StorageDown(f"the metadata store is unavailable: {exc}") from exc
    runtime.shared.outbox_written()
    return None


async def _record(*, runtime: MediaRuntime, doc: MediaDoc) -> None:
    shared = runtime.shared
    doc["stored_at"] = utcnow()
    path = doc["unit_path"]
    event = MediaStoredEvent.build(
        MediaStored(
            media_id=doc["_id"],
            unit_path=UnitPath.model_validate(path),
            kind=MediaKind(doc["kind"]),
            content_type=doc["content_type"],
            size=doc["size"],
            sha256=doc["sha256"],
            campaign=doc["campaign"],
            width=doc["width"],
            height=doc["height"],
            uploader=doc["uploader"],
            stored_at=doc["stored_at"],
        ),
        producer=shared.name,
        county=path.get("county"),
        unit=doc["unit"],
        correlation_id=correlation_id.get(),
    )

    async def write(session: AsyncClientSession) -> None:
        await runtime.media.insert_one(dict(doc), session=session)
        await shared.emit(tp.MEDIA_STORED, event, session=session)

    await in_transaction(shared.mongo, write)
