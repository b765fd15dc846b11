"""What the media service counts: uploads by kind and outcome, bytes stored, the time an
upload takes."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.events import MediaKind
from shared.observability import precreate

UPLOADS = Counter(
    "citydesk_media_uploads_total",
    "Uploads answered, by kind and outcome "
    "(stored, duplicate, too_large, wrong_type, invalid, refused, storage_down).",
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
OUTCOMES = ["stored", "duplicate", "too_large", "wrong_type", "invalid", "refused", "storage_down"]


def prime() -> None:
    """Every known label value at zero, so the first refusal of each kind is an increase."""
    kinds = [kind.value for kind in MediaKind]
    precreate(UPLOADS, kind=[*kinds, "unknown"], outcome=OUTCOMES)
    precreate(UPLOAD_BYTES, kind=kinds)
    precreate(PROCESSING_SECONDS, kind=kinds)
