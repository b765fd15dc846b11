"""Upload throughput of the media service beside raw ``put_object`` on the same S3 server.

The service runs as its own process (``citydesk serve media``) and receives real HTTP
uploads one after another: 12-megapixel JPEGs of about 5 MB (decoded for thumbnails),
the same with GPS data (decoded in full and re-saved without it), and 5 MB MP4 files.
Each rate is reported as a ratio to the raw rate measured in the same run.

    python -m citydesk.bench.media     # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import ExifTags, Image

from citydesk.bench.raw import s3_rate
from citydesk.bench.suite import run_alone
from citydesk.processes import ServiceProcesses
from citydesk.stack import free_port
from shared.auth import mint_token
from shared.settings import Settings

FILES = 4
VIDEO_BYTES = 5 * 1024 * 1024


def settings_from(env: dict[str, str]) -> Settings:
    values = {
        k.removeprefix("CITYDESK_").lower(): v for k, v in env.items() if k.startswith("CITYDESK_")
    }
    return Settings.model_validate({**values, "service_name": "bench"})


def phone_photo(seed: int, *, with_gps: bool) -> bytes:
    """A 4000x3000 JPEG of about 5 MB: smooth gradients under sensor-like noise."""
    rng = np.random.default_rng(seed)
    height, width = 3000, 4000
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 200, y / height * 180, (x + y) / (width + height) * 220], axis=-1)
    pixels = np.clip(base + rng.normal(0, 14, (height, width, 3)), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:05:04 10:00:00"
    if with_gps:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (30.0, 35.0, 1.0)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def video_file() -> bytes:
    """An ISO base media file of 5 MB (ftyp box, then media data)."""
    ftyp = b"ftypisom\x00\x00\x02\x00isomiso2mp41"
    body = os.urandom(VIDEO_BYTES - len(ftyp) - 12)
    return (
        struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", len(body) + 8) + b"mdat" + body
    )


async def upload_rate(
    client: httpx.AsyncClient, token: str, files: list[bytes], filename: str, content_type: str
) -> dict[str, Any]:
    """Sequential uploads through the API: MB/s of uploaded bytes and seconds per file."""
    started = time.perf_counter()
    for data in files:
        response = await client.post(
            "/media",
            data={"unit": "dh-syxx"},
            files={"file": (filename, data, content_type)},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code != 201:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    seconds = time.perf_counter() - started
    total = sum(len(data) for data in files)
    return {
        "mb_per_s": round(total / seconds / 1e6, 1),
        "seconds_per_file": round(seconds / len(files), 3),
        "mean_file_mb": round(total / len(files) / 1e6, 2),
    }


async def run(env: dict[str, str]) -> dict[str, Any]:
    """Raw put_object MB/s, then the API's MB/s for photos, GPS photos and videos."""
    settings = settings_from(env)
    raw = await asyncio.to_thread(s3_rate, settings, files=FILES * 2)
    photos = [phone_photo(i, with_gps=False) for i in range(FILES)]
    gps_photos = [phone_photo(100 + i, with_gps=True) for i in range(FILES)]
    videos = [video_file() for _ in range(FILES)]
    token = mint_token(settings, sub="bench", unit="dh-syxx", roles=["correspondent"])
    port = free_port()
    database = f"bench_media_{os.getpid()}_{int(time.time())}"
    with tempfile.TemporaryDirectory(prefix="bench-media-") as root:
        processes = ServiceProcesses(
            Path(root), {**env, "CITYDESK_MONGO_DATABASE": database}, ports={"media": port}
        )
        processes.start("media")
        try:
            await asyncio.to_thread(processes.wait_ready, ["media"], 60.0)
            async with httpx.AsyncClient(base_url=processes.url("media"), timeout=120) as client:
                photo = await upload_rate(client, token, photos, "photo.jpg", "image/jpeg")
                gps = await upload_rate(client, token, gps_photos, "gps.jpg", "image/jpeg")
                video = await upload_rate(client, token, videos, "clip.mp4", "video/mp4")
        finally:
            processes.stop("media")
    raw_mb = raw["put_object_mb_per_s"]
    return {
        "raw_put_object_mb_per_s": raw_mb,
        "photo": photo | {"ratio_to_raw": round(photo["mb_per_s"] / raw_mb, 2)},
        "photo_with_gps": gps | {"ratio_to_raw": round(gps["mb_per_s"] / raw_mb, 2)},
        "video": video | {"ratio_to_raw": round(video["mb_per_s"] / raw_mb, 2)},
        "files_per_kind": FILES,
        "ffmpeg_installed": shutil.which("ffmpeg") is not None,
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
