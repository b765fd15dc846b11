"""Reading stored media inside the caller's scope (metadata, presigned links, thumbnails,
listings) and marking recognisable pupils with their guardians' consent. Uploads are taken
in by :mod:`services.media.intake`."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import OperationFailure

from services.media import refusals
from services.media.context import MediaRuntime
from services.media.images import JPEG_RENDITION
from services.media.intake import check_uploader
from services.media.models import MEDIA, MediaFilter, MediaRead, PupilsMark, ThumbnailSize
from services.media.storage import original_disposition, rendition_disposition
from shared.auth import Principal, in_scope, require_scope
from shared.clock import utcnow
from shared.orgtree import OrgTree
from shared.paging import Page, PageQuery
from shared.runtime import ServiceRuntime
from shared.windows import newest_first, windowed_page

# the listing order: newest stored first, the media id breaking ties so that no page
# repeats or skips an item (the order of ``shared.windows``)
LISTED_BY = "stored_at"
NEWEST_FIRST = newest_first(LISTED_BY)
# a listing's scope: the whole city (no field), a county's units, or one unit
SCOPE_FIELDS: tuple[tuple[str, ...], ...] = ((), ("unit_path.county",), ("unit",))
# the listing's filters an index holds: a campaign is a small share of a scope's media, so
# without its index a campaign's page would read back through the years. The kind (photo
# or video) is checked on each window's documents instead: most media are photos, and
# every index is one more entry for each upload and each file loaded in bulk to write
FILTER_FIELDS: tuple[tuple[str, ...], ...] = ((), ("campaign",))
# the orders before the lists were read in time windows (descending ids, unit lists by $in)
RETIRED_INDEXES = ("unit_1_stored_at_-1__id_-1", "campaign_1_stored_at_-1__id_-1")


async def ensure_indexes(runtime: ServiceRuntime) -> None:
    """Dedupe key and one index per listing shape: scope, filters, then the order."""
    media = runtime.db[MEDIA]
    await media.create_index([("unit", ASCENDING), ("sha256", ASCENDING)], unique=True)
    for scope in SCOPE_FIELDS:
        for filters in FILTER_FIELDS:
            keys = [(field, ASCENDING) for field in (*scope, *filters)]
            await media.create_index([*keys, (LISTED_BY, DESCENDING), ("_id", ASCENDING)])
    for name in RETIRED_INDEXES:
        with contextlib.suppress(OperationFailure):  # already gone
            await media.drop_index(name)


def scope_equality(org: OrgTree, unit: str) -> dict[str, Any]:
    """The media of ``unit`` and the units below it as one equality (none for the city):
    a ``$in`` of a city's thousands of unit codes costs more than the page it filters,
    and is no index prefix a time range can follow. A county's media carry its code in
    ``unit_path.county``; a school or directly run unit has none below it."""
    found = org.unit(unit)
    if found.type == "city":
        return {}
    if found.type == "county":
        return {"unit_path.county": found.code}
    return {"unit": found.code}


async def get_media(
    *, runtime: MediaRuntime, principal: Principal, media_id: str
) -> dict[str, Any]:
    """One media document inside the caller's scope (404 unknown, 403 outside)."""
    doc = await runtime.media.find_one({"_id": media_id})
    if doc is None:
        raise refusals.media_not_found(media_id)
    if not in_scope(principal, runtime.org, doc["unit"]):
        raise refusals.media_out_of_scope(media_id, doc["unit"], principal.unit)
    return doc


def read_with_link(*, runtime: MediaRuntime, doc: dict[str, Any]) -> MediaRead:
    """The metadata with presigned links (the original, and the JPEG rendition of a HEIC
    or AVIF photo) that expire soon."""
    expires = timedelta(seconds=runtime.settings.media_url_expiry_seconds)
    read = MediaRead.from_doc(doc)
    read.url = runtime.store.presigned(
        doc["object_key"],
        expires,
        content_type=doc["content_type"],
        disposition=original_disposition(doc),
    )
    if (jpeg := doc.get("renditions", {}).get(JPEG_RENDITION)) is not None:
        read.jpeg_url = runtime.store.presigned(
            jpeg["key"],
            expires,
            content_type="image/jpeg",
            disposition=rendition_disposition(doc, JPEG_RENDITION),
        )
    read.url_expires_at = utcnow() + expires
    return read


def thumbnail_link(*, runtime: MediaRuntime, doc: dict[str, Any], size: ThumbnailSize) -> str:
    """A presigned link to one rendition; 404 when the media has none (a video without
    a poster frame)."""
    rendition = doc.get("renditions", {}).get(size)
    if rendition is None:
        reason = {
            "unavailable": "no poster frame: ffmpeg was not installed when it was stored",
            "failed": "no poster frame: none could be read from the video",
        }.get(doc.get("poster") or "", "no thumbnail")
        raise refusals.no_thumbnail(doc["_id"], reason)
    return runtime.store.presigned(
        rendition["key"],
        timedelta(seconds=runtime.settings.media_url_expiry_seconds),
        content_type="image/jpeg",
        disposition=rendition_disposition(doc, size),
    )


async def list_media(
    *, runtime: MediaRuntime, principal: Principal, which: MediaFilter, page: PageQuery
) -> Page[MediaRead]:
    """Media of a unit and the units below it (default: the caller's), newest first, read
    in time windows so that a page costs about what it shows whatever the years hold."""
    org = runtime.org
    scope = which.unit or principal.unit
    require_scope(principal, org, scope)
    query = scope_equality(org, scope)
    if which.campaign:
        query["campaign"] = which.campaign
    kind = which.kind.value if which.kind else None
    docs, next_cursor = await windowed_page(
        runtime.media, query, field=LISTED_BY, query=page,
        keep=(lambda doc: doc["kind"] == kind) if kind else None,
    )  # fmt: skip
    return Page(items=[MediaRead.from_doc(d) for d in docs], next_cursor=next_cursor)


async def mark_pupils(
    *, runtime: MediaRuntime, principal: Principal, media_id: str, mark: PupilsMark
) -> dict[str, Any]:
    """Record whether pupils can be recognised in the file and the guardians' consent on
    file; every change is kept in the file's history."""
    check_uploader(principal=principal)
    await get_media(runtime=runtime, principal=principal, media_id=media_id)
    now = utcnow()
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
    updated = await runtime.media.find_one_and_update(
        {"_id": media_id},
        {"$set": {"pupils": pupils}, "$push": {"pupils_history": pupils}},
        return_document=ReturnDocument.AFTER,
    )
    if updated is None:
        raise refusals.media_not_found(media_id)
    return updated
