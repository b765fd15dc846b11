"""Object storage through the ``minio`` client: factory and bucket bootstrap."""

from __future__ import annotations

import asyncio

from minio import Minio

from shared.settings import Settings


def make_minio(settings: Settings) -> Minio:
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )


def ensure_buckets_sync(client: Minio, *buckets: str) -> None:
    for bucket in buckets:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)


async def ensure_buckets(client: Minio, *buckets: str) -> None:
    """Create missing buckets (the client is blocking: run it off the event loop)."""
    await asyncio.to_thread(ensure_buckets_sync, client, *buckets)


async def check_s3(client: Minio) -> None:
    """Readiness: the S3 endpoint answers an authenticated call."""
    await asyncio.to_thread(client.list_buckets)
