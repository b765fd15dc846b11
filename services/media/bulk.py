"""Records of files already cleaned and stored, in bulk: what a migration from an older
archive loads, and how the decade benchmark fills the media store. Each record is the
live one (:func:`services.media.intake.media_document`) for what ``media.stored``
announced of the file, with the time it was stored; no object is written and no event
announced again, and a file already recorded is left as it is."""

from __future__ import annotations

from collections.abc import Sequence

from services.media.context import MediaRuntime
from services.media.filetypes import ACCEPTED
from services.media.intake import StoredFile, media_document
from services.media.models import FileDetails, MediaDoc
from shared.events import MediaStored
from shared.mongo import insert_new

BATCH = 500  # documents per insert: the embedded store writes an insert in transactions


def _extension(content_type: str) -> str:
    return next(t.extensions[0] for t in ACCEPTED if t.content_type == content_type)


def _fit(width: int, height: int, longest: int) -> tuple[int, int]:
    """A rendition's size: no larger than ``longest`` on the long side, as made live."""
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def past_document(runtime: MediaRuntime, stored: MediaStored) -> MediaDoc:
    """The record of a file as the live upload made it, from its announcement."""
    width, height = stored.width or 1, stored.height or 1
    renditions = {name: _fit(width, height, px) for name, px in runtime.rendition_sizes.items()}
    return media_document(
        org=runtime.org,
        stored=StoredFile(
            media_id=stored.media_id, unit=stored.unit_path.unit, kind=stored.kind.value,
            content_type=stored.content_type, extension=_extension(stored.content_type),
            sha256=stored.sha256, original_size=stored.size, size=stored.size,
            campaign=stored.campaign, uploader=stored.uploader, stored_at=stored.stored_at,
        ),
        filename=None,
        uploader_name=None,
        renditions=renditions,
        details=FileDetails(
            width=stored.width, height=stored.height, captured_at=None, gps_removed=False,
            metadata_removed=True, poster=None,
        ),
    )  # fmt: skip


async def import_media(*, runtime: MediaRuntime, files: Sequence[MediaStored]) -> int:
    """Record ``files`` in batches; returns how many were new."""
    added = 0
    for start in range(0, len(files), BATCH):
        chunk = [past_document(runtime, f) for f in files[start : start + BATCH]]
        added += len(await insert_new(runtime.media, chunk))
    return added
