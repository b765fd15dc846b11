"""Object storage through the ``minio`` client: factory and bucket bootstrap."""

from __future__ import annotations

import asyncio

import urllib3
from minio import Minio

from shared.settings import Settings


def make_minio(settings: Settings) -> Minio:
    # The client's defaults wait five minutes to connect and retry for seconds: an S3
    # outage must answer 503 quickly instead of holding the request.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3.0, read=120.0),
        retries=urllib3.Retry(total=2, backoff_factor=0.1, status_forcelist=(500, 502, 503, 504)),
        maxsize=16,
    )
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=settings.s3_secure,
        region=settings.s3_region,
        http_client=http,
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
