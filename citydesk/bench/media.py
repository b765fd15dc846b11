"""Upload throughput of the media service beside raw ``put_object`` on the same S3 server.

The service runs as its own process (``citydesk serve media``) and receives real HTTP
uploads one after another: 12-megapixel JPEGs of about 5 MB without metadata (cleaned,
decoded for thumbnails), the same with a phone's metadata (GPS in a second EXIF segment,
owner and serial tags, XMP), 12-megapixel HEIC photos (cleaned in place, decoded for
thumbnails and a full JPEG rendition), and 5 MB H.264 MP4 files with location and device
tags (re-muxed without them, a poster frame taken). Each rate is reported as a ratio to
the raw rate measured in the same run.

    python -m citydesk.bench.media     # starts a local stack on free ports, prints JSON
"""

from __future__ import annotations

import asyncio
import io
import os
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import numpy as np
import pillow_heif
from PIL import ExifTags, Image

from citydesk.bench.raw import s3_rate
from citydesk.bench.suite import one_service, run_alone, settings_from
from shared.auth import mint_token

FILES = 4
VIDEO_BYTES = 5 * 1024 * 1024


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="30,35.0N"/></rdf:RDF>'
    b"</x:xmpmeta>"
)


def phone_pixels(seed: int) -> Image.Image:
    """4000x3000 pixels: smooth gradients under sensor-like noise."""
    rng = np.random.default_rng(seed)
    height, width = 3000, 4000
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width * 200, y / height * 180, (x + y) / (width + height) * 220], axis=-1)
    pixels = np.clip(base + rng.normal(0, 14, (height, width, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def phone_exif(*, identifying: bool) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:05:04 10:00:00"
    if identifying:
        exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Apple", "iPhone 15"
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.BodySerialNumber] = "SN-0042"
    return exif


def phone_photo(seed: int, *, with_gps: bool) -> bytes:
    """A 4000x3000 JPEG of about 5 MB; with GPS, the GPS sits in a second EXIF segment
    behind the camera's (owner and serial tags) and an XMP packet."""
    buffer = io.BytesIO()
    phone_pixels(seed).save(buffer, "JPEG", quality=92, exif=phone_exif(identifying=with_gps))
    data = buffer.getvalue()
    if not with_gps:
        return data
    gps_exif = Image.Exif()
    gps = gps_exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (30.0, 35.0, 1.0)
    segments = b""
    for payload in (gps_exif.tobytes(), b"http://ns.adobe.com/xap/1.0/\x00" + XMP):
        segments += b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    first = data.index(b"\xff\xe1")
    (length,) = struct.unpack_from(">H", data, first + 2)
    return data[: first + 2 + length] + segments + data[first + 2 + length :]


def heic_photo(seed: int) -> bytes:
    """A 4000x3000 HEIC as an iPhone writes it: EXIF with GPS and XMP."""
    exif = phone_exif(identifying=True)
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    buffer = io.BytesIO()
    phone_pixels(seed).save(
        buffer, "HEIF", quality=80, exif=exif.tobytes(), xmp=XMP,
        enc_params={"preset": "ultrafast"},
    )  # fmt: skip
    return buffer.getvalue()


def video_files(count: int) -> list[bytes]:
    """``count`` 5 MB H.264 MP4 files, 720p with sound, tagged with a location and a
    device as phones tag them (each with its own title, so none dedupes)."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as root:
        clip = Path(root) / "clip.mp4"
        subprocess.run(
            [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440", "-t", "10", "-shortest",
             "-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
             "-b:v", str(VIDEO_BYTES * 8 // 10 - 160_000), "-c:a", "aac", "-b:a", "128k",
             "-metadata", "location=+30.5833+114.2667/", "-metadata", "make=Apple",
             "-metadata", "model=iPhone 15", str(clip)],
            check=True, timeout=300,
        )  # fmt: skip
        files = []
        for index in range(count):
            copy = Path(root) / f"copy{index}.mp4"
            subprocess.run(
                [ffmpeg, "-v", "error", "-y", "-i", str(clip), "-c", "copy",
                 "-metadata", f"title=clip {index}", str(copy)],
                check=True, timeout=60,
            )  # fmt: skip
            files.append(copy.read_bytes())
        return files


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
    pillow_heif.register_heif_opener()
    photos = [phone_photo(i, with_gps=False) for i in range(FILES)]
    gps_photos = [phone_photo(100 + i, with_gps=True) for i in range(FILES)]
    heic_photos = [heic_photo(200 + i) for i in range(FILES)]
    videos = await asyncio.to_thread(video_files, FILES)
    token = mint_token(settings, sub="bench", unit="dh-syxx", roles=["correspondent"])
    database = f"bench_media_{os.getpid()}_{int(time.time())}"
    async with (
        one_service(env, "media", database) as url,
        httpx.AsyncClient(base_url=url, timeout=120) as client,
    ):
        photo = await upload_rate(client, token, photos, "photo.jpg", "image/jpeg")
        gps = await upload_rate(client, token, gps_photos, "gps.jpg", "image/jpeg")
        heic = await upload_rate(client, token, heic_photos, "IMG.HEIC", "image/heic")
        video = await upload_rate(client, token, videos, "clip.mp4", "video/mp4")
    raw_mb = raw["put_object_mb_per_s"]
    return {
        "raw_put_object_mb_per_s": raw_mb,
        "photo": photo | {"ratio_to_raw": round(photo["mb_per_s"] / raw_mb, 2)},
        "photo_with_gps": gps | {"ratio_to_raw": round(gps["mb_per_s"] / raw_mb, 2)},
        "heic_photo": heic | {"ratio_to_raw": round(heic["mb_per_s"] / raw_mb, 2)},
        "video": video | {"ratio_to_raw": round(video["mb_per_s"] / raw_mb, 2)},
        "files_per_kind": FILES,
    }


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
