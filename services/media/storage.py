"""The media bucket: objects written with their type and disposition, removed on a failed
upload, read through short-lived presigned links. Every failure to reach S3 is one
exception, :class:`StorageDown`, which the upload answers with 503 and Retry-After."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.error import MinioException

log = logging.getLogger(__name__)

# what minio, urllib3 and the socket layer raise when S3 cannot be reached or refuses
STORAGE_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


class StorageDown(Exception):
    """Object storage (or the metadata store) cannot take the upload right now."""


def original_disposition(doc: Mapping[str, Any]) -> str:
    """Downloaded, under the media id: the uploader's file name may name a pupil."""
    extension = Path(doc["object_key"]).suffix
    return f'attachment; filename="{doc["_id"]}{extension}"'


def rendition_disposition(doc: Mapping[str, Any], name: str) -> str:
    return f'inline; filename="{doc["_id"]}-{name}.jpg"'


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
            self.client.fput_object,
            self.bucket,
            key,
            str(path),
            content_type=content_type,
            metadata={"Content-Disposition": disposition},
        )

    async def put_bytes(self, key: str, data: bytes, content_type: str, disposition: str) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata={"Content-Disposition": disposition},
        )

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
            self.bucket,
            key,
            expires=expires,
            response_headers={
                "response-content-type": content_type,
                "response-content-disposition": disposition,
            },
        )
