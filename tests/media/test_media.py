"""The media service over the real local stack: uploads of every accepted type, the
checks that refuse what is not what it claims, location and identity stripped from the
stored originals (read back from S3), dedupe, presigned links, unit scope, object storage
down, and ``media.stored`` on the bus. Videos are made and read with the ffmpeg of the
imageio-ffmpeg wheel, as the service uses it, so none of these tests is skipped."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageOps
from prometheus_client import REGISTRY

from shared.auth import Role
from tests.media.phone_files import (
    XMP_WITH_PLACE,
    assert_nothing_identifying,
    exif_blocks,
    heif_photo,
    huge_png,
    identifying_exif,
    iso_video,
    phone_jpeg,
    phone_png,
    photo,
    pixels,
)
from tests.support import RunningService, auth, eventually, header, read_topic, run_service

pytestmark = pytest.mark.usefixtures("stack_env")

SCHOOL = "dh-syxx"  # a school in 东湖区 (dh)
OTHER_COUNTY_SCHOOL = "xs-syxx"  # a school in 西山区 (xs)
CORRESPONDENT = auth(SCHOOL, Role.CORRESPONDENT, sub="corr-dh-syxx")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def fetch_with_headers(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), {k.lower(): v for k, v in response.headers.items()}


async def stored_object(media: RunningService, media_id: str) -> bytes:
    """The stored original, read from the bucket itself."""
    doc = await media.runtime.db.media.find_one({"_id": media_id})
    assert doc is not None
    assert media.runtime.minio is not None

    def read() -> bytes:
        response = media.runtime.minio.get_object("citydesk-media", doc["object_key"])
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    return await asyncio.to_thread(read)


FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_video(
    path: Path, *, size: str = "320x240", metadata: dict[str, str] | None = None,
    extra: list[str] | None = None,
) -> bytes:  # fmt: skip
    """A 2-second H.264 clip with a tone, tagged with ``metadata`` as a phone would."""
    tags = [
        arg for key, value in (metadata or {}).items() for arg in ("-metadata", f"{key}={value}")
    ]
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000", "-t", "2", "-shortest",
         "-pix_fmt", "yuv420p", "-c:v", "libx264", "-c:a", "aac", *tags, *(extra or []),
         str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path.read_bytes()


def ffmpeg_report(data: bytes, tmp_path: Path, suffix: str = ".mp4") -> str:
    """What ffmpeg reads from a file: its tags, streams and their per-stream hashes."""
    path = tmp_path / f"probe-{uuid.uuid4().hex[:6]}{suffix}"
    path.write_bytes(data)
    done = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v", "-map", "0:a", "-c", "copy",
         "-f", "streamhash", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.stderr + done.stdout


def stream_hashes(report: str) -> list[str]:
    return re.findall(r"^\d+,[va],SHA256=\w+$", report, re.MULTILINE)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """The refusal's body after checking its status, its stable code and that its message
    is Chinese (the English explanation is ``detail``)."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert re.search(r"[\u4e00-\u9fff]", body["message"]), body
    return body


def uploads_metric(kind: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "citydesk_media_uploads_total", {"kind": kind, "outcome": outcome}
        )
        or 0.0
    )


async def upload(
    media: RunningService,
    data: bytes,
    filename: str,
    content_type: str,
    *,
    unit: str = SCHOOL,
    headers: dict[str, str] | None = None,
    campaign: str | None = None,
) -> Any:
    fields = {"unit": unit} | ({"campaign": campaign} if campaign else {})
    return await media.client.post(
        "/media",
        data=fields,
        files={"file": (filename, data, content_type)},
        headers=headers or CORRESPONDENT,
    )


# ---- services ------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def media() -> AsyncIterator[RunningService]:
    async with run_service("media", mongo_database=f"media_{uuid.uuid4().hex[:8]}") as service:
        yield service


@pytest.fixture
async def strict_media(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningService]:
    """Tiny limits and one-second links (Pillow's pixel limit is restored afterwards)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    async with run_service(
        "media",
        mongo_database=f"media_strict_{uuid.uuid4().hex[:8]}",
        media_photo_max_bytes=20_000,
        media_max_image_pixels=1_000_000,
        media_url_expiry_seconds=1,
    ) as service:
        yield service


# ---- tests ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "filename", "content_type"),
    [("JPEG", "class.jpg", "image/jpeg"), ("PNG", "chart.png", "image/png"),
     ("WEBP", "sports.webp", "image/webp")],
)  # fmt: skip
async def test_each_accepted_photo_type_is_stored_with_small_and_medium_thumbnails(
    media: RunningService, fmt: str, filename: str, content_type: str
) -> None:
    data = photo(fmt, size=(1200, 900))
    response = await upload(media, data, filename, content_type)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "photo" and body["content_type"] == content_type
    assert (body["width"], body["height"]) == (1200, 900)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["duplicate"] is False and body["gps_removed"] is False
    assert body["thumbnails"] == {
        "medium": {"width": 640, "height": 480},
        "small": {"width": 160, "height": 120},
    }
    # without location data the stored object is the upload itself
    read = (await media.client.get(f"/media/{body['id']}", headers=CORRESPONDENT)).json()
    assert await asyncio.to_thread(fetch, read["url"]) == data
    for size, width in (("small", 160), ("medium", 640)):
        redirect = await media.client.get(
            f"/media/{body['id']}/thumbnail", params={"size": size}, headers=CORRESPONDENT
        )
        assert redirect.status_code == 307
        thumbnail = Image.open(
            io.BytesIO(await asyncio.to_thread(fetch, redirect.headers["location"]))
        )
        assert thumbnail.format == "JPEG" and thumbnail.width == width


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("assembly.mp4", "video/mp4"), ("assembly.mov", "video/quicktime")],
)
async def test_each_accepted_video_type_is_stored_with_a_poster_frame(
    media: RunningService, tmp_path: Path, filename: str, content_type: str
) -> None:
    clip = await asyncio.to_thread(make_video, tmp_path / filename)
    response = await upload(media, clip, filename, content_type)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "video" and body["content_type"] == content_type
    assert body["poster"] == "stored" and (body["width"], body["height"]) == (320, 240)
    assert body["thumbnails"]["small"] == {"width": 160, "height": 120}
    redirect = await media.client.get(f"/media/{body['id']}/thumbnail", headers=CORRESPONDENT)
    thumbnail = await asyncio.to_thread(fetch, redirect.headers["location"])
    assert Image.open(io.BytesIO(thumbnail)).width == 160
    # the stored file plays: ffmpeg reads the same video and audio from it
    stored = await stored_object(media, body["id"])
    assert len(stream_hashes(ffmpeg_report(stored, tmp_path, Path(filename).suffix))) == 2


async def test_a_video_that_cannot_be_read_is_refused_since_it_cannot_be_cleaned(
    media: RunningService,
) -> None:
    before = uploads_metric("video", "refused")
    response = await upload(media, iso_video(b"isom"), "broken.mp4", "video/mp4")
    body = refused(response, 422, "media_video_unreadable")
    assert "could not be read, so its metadata cannot be removed" in body["detail"]
    assert uploads_metric("video", "refused") == before + 1
    sha = hashlib.sha256(iso_video(b"isom")).hexdigest()
    assert await media.runtime.db.media.count_documents({"sha256": sha}) == 0


async def test_a_rotated_phone_video_keeps_its_rotation_and_gets_an_upright_poster(
    media: RunningService, tmp_path: Path
) -> None:
    plain = await asyncio.to_thread(make_video, tmp_path / "plain.mp4")
    rotated = tmp_path / "portrait.mov"
    await asyncio.to_thread(
        subprocess.run,
        [FFMPEG, "-v", "error", "-y", "-display_rotation", "90", "-i", str(tmp_path / "plain.mp4"),
         "-c", "copy", str(rotated)],
        check=True, timeout=60,
    )  # fmt: skip
    assert plain
    response = await upload(media, rotated.read_bytes(), "portrait.mov", "video/quicktime")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (240, 320)
    stored = await stored_object(media, body["id"])
    assert "rotation of" in ffmpeg_report(stored, tmp_path, ".mov")


async def test_a_renamed_executable_is_refused_as_the_wrong_type(media: RunningService) -> None:
    before = uploads_metric("photo", "wrong_type")
    elf = b"\x7fELF\x02\x01\x01\x00" + os.urandom(2048)
    response = await upload(media, elf, "photo.jpg", "image/jpeg")
    assert "not any accepted type" in refused(response, 415, "media_type_mismatch")["detail"]
    assert uploads_metric("photo", "wrong_type") == before + 1
    # a real PNG sent as a JPEG is refused too
    mislabelled = await upload(media, photo("PNG"), "photo.jpg", "image/jpeg")
    body = refused(mislabelled, 415, "media_type_mismatch")
    assert "image/png, not image/jpeg" in body["detail"]
    unaccepted = await upload(media, b"GIF89a" + os.urandom(64), "anim.gif", "image/gif")
    refused(unaccepted, 415, "media_type_not_accepted")
    sha = hashlib.sha256(elf).hexdigest()
    assert await media.runtime.db.media.count_documents({"sha256": sha}) == 0


async def test_a_malformed_upload_is_answered_with_a_clear_422(media: RunningService) -> None:
    no_unit = await media.client.post(
        "/media", files={"file": ("a.jpg", photo(), "image/jpeg")}, headers=CORRESPONDENT
    )
    assert "'unit' field" in refused(no_unit, 422, "media_unit_missing")["detail"]
    empty = await upload(media, b"", "a.jpg", "image/jpeg")
    assert "empty" in refused(empty, 422, "media_file_empty")["detail"]
    unknown_unit = await upload(media, photo(), "a.jpg", "image/jpeg", unit="nowhere")
    refused(unknown_unit, 404, "unknown_unit")
    bad_campaign = await upload(media, photo(), "a.jpg", "image/jpeg", campaign="春季 专题")
    refused(bad_campaign, 422, "media_campaign_invalid")
    not_a_form = await media.client.post(
        "/media", content=b"{}", headers=CORRESPONDENT | {"content-type": "application/json"}
    )
    assert "multipart" in refused(not_a_form, 422, "media_form_invalid")["detail"]
    two_files = await media.client.post(
        "/media",
        data={"unit": SCHOOL},
        files=[
            ("file", ("a.jpg", photo(), "image/jpeg")),
            ("file", ("b.jpg", photo(), "image/jpeg")),
        ],
        headers=CORRESPONDENT,
    )
    assert "one file" in refused(two_files, 422, "media_form_invalid")["detail"]
    no_file = await media.client.post(
        "/media", data={"unit": SCHOOL}, files={"other": ("x", b"x")}, headers=CORRESPONDENT
    )
    refused(no_file, 422, "media_form_invalid")
    opinion_officer = auth(SCHOOL, Role.OPINION_OFFICER)
    not_uploader = await upload(media, photo(), "a.jpg", "image/jpeg", headers=opinion_officer)
    assert not_uploader.status_code == 403


async def test_a_file_over_the_limit_is_refused_with_413(strict_media: RunningService) -> None:
    before = uploads_metric("photo", "too_large")
    response = await upload(strict_media, photo(size=(1000, 800)), "big.jpg", "image/jpeg")
    body = refused(response, 413, "media_too_large")
    assert "larger than the 20000 bytes limit for a photo" in body["detail"]
    assert body["message"].startswith("照片超过 20000 bytes")
    assert uploads_metric("photo", "too_large") == before + 1
    assert await strict_media.runtime.db.media.count_documents({}) == 0


async def test_a_pixel_flood_is_refused_and_the_service_keeps_working(
    media: RunningService, strict_media: RunningService
) -> None:
    flood = await upload(media, huge_png(100_000, 100_000), "flood.png", "image/png")
    assert "pixel flood" in refused(flood, 422, "media_pixel_flood")["detail"]
    # just over the configured limit (Pillow only warns below twice the limit)
    over = photo("PNG", size=(1100, 1000))
    over_limit = await upload(strict_media, over, "over.png", "image/png")
    assert "pixel flood" in refused(over_limit, 422, "media_pixel_flood")["detail"]
    truncated = photo(size=(400, 300))[:2000]
    broken = await upload(media, truncated, "cut.jpg", "image/jpeg")
    assert "could not be decoded" in refused(broken, 422, "media_image_undecodable")["detail"]
    after = await upload(media, photo(), "fine.jpg", "image/jpeg")
    assert after.status_code == 201


async def stored_clean(
    media: RunningService, data: bytes, filename: str, content_type: str
) -> bytes:
    """Upload a file carrying location and identity; the answer says both were removed and
    the stored object, read back from the bucket, holds neither."""
    response = await upload(media, data, filename, content_type)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["gps_removed"] is True and body["metadata_removed"] is True
    stored_bytes = await stored_object(media, body["id"])
    assert_nothing_identifying(stored_bytes)
    return stored_bytes


async def test_a_jpeg_with_gps_in_two_segments_and_owner_tags_is_stored_clean(
    media: RunningService,
) -> None:
    data, _ = phone_jpeg((640, 480))
    assert len(exif_blocks(Image.open(io.BytesIO(data)))) == 2

    response = await upload(media, data, "pupils.jpg", "image/jpeg")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["gps_removed"] is True and body["metadata_removed"] is True
    assert body["captured_at"] == "2026-03-01T01:30:00Z"  # 09:30 at +08:00
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["width"], body["height"]) == (480, 640)  # upright: orientation 6
    # the orientation is applied to the thumbnails, which carry no EXIF to say it
    redirect = await media.client.get(
        f"/media/{body['id']}/thumbnail", params={"size": "medium"}, headers=CORRESPONDENT
    )
    upright = Image.open(io.BytesIO(await asyncio.to_thread(fetch, redirect.headers["location"])))
    assert upright.size == (480, 640) and not upright.getexif()

    stored_bytes = await stored_object(media, body["id"])
    assert_nothing_identifying(stored_bytes)
    assert b"SEFH" not in stored_bytes
    stored = Image.open(io.BytesIO(stored_bytes))
    [block] = exif_blocks(stored)
    assert dict(block) == {ExifTags.Base.Orientation: 6, ExifTags.Base.ExifOffset: block[34665]}
    assert block.get_ifd(ExifTags.IFD.Exif) == {
        ExifTags.Base.DateTimeOriginal: "2026:03:01 09:30:00",
        ExifTags.Base.OffsetTimeOriginal: "+08:00",
    }
    assert block.get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert [marker for marker, _ in stored.applist] == ["APP0", "APP1"]
    # losslessly: the same pixels as the upload
    assert stored.tobytes() == Image.open(io.BytesIO(data)).tobytes()
    assert stored.size == (640, 480)


async def test_a_png_with_xmp_location_is_stored_clean(media: RunningService) -> None:
    data, image = phone_png((300, 200))
    assert "江城市" in Image.open(io.BytesIO(data)).info["XML:com.adobe.xmp"]

    stored_bytes = await stored_clean(media, data, "chart.png", "image/png")
    stored = Image.open(io.BytesIO(stored_bytes))
    assert set(stored.info) <= {"exif", "dpi"}
    assert stored.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == (
        "2026:03:01 09:30:00"
    )
    assert stored.tobytes() == image.tobytes()


async def test_a_webp_with_exif_and_xmp_is_stored_clean(media: RunningService) -> None:
    exif, _ = identifying_exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    image = pixels((320, 240))
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", exif=exif, xmp=XMP_WITH_PLACE.encode(), lossless=True)
    data = buffer.getvalue()

    stored_bytes = await stored_clean(media, data, "sports.webp", "image/webp")
    stored = Image.open(io.BytesIO(stored_bytes))
    assert "xmp" not in stored.info
    stored_exif = stored.getexif()
    assert stored_exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert stored_exif[ExifTags.Base.Orientation] == 6
    assert stored.tobytes() == image.tobytes()


async def test_an_mp4_with_a_location_tag_is_stored_clean_and_losslessly(
    media: RunningService, tmp_path: Path
) -> None:
    tags = {
        "location": "+30.5833+114.2667/", "location-eng": "+30.5833+114.2667/",
        "com.apple.quicktime.location.ISO6709": "+30.5833+114.2667+020.000/",
        "make": "Apple", "model": "iPhone 15", "artist": "王老师", "title": "李小明 领奖",
        "comment": "BODY-SN-4711", "creation_time": "2026-03-01T01:30:00Z",
    }  # fmt: skip
    extra = ["-movflags", "use_metadata_tags", "-metadata:s:v:0", "handler_name=SchoolCam"]
    clip = await asyncio.to_thread(make_video, tmp_path / "award.mp4", metadata=tags, extra=extra)
    uploaded = await asyncio.to_thread(ffmpeg_report, clip, tmp_path)
    assert "+30.5833+114.2667" in uploaded and "iPhone 15" in uploaded

    response = await upload(media, clip, "award.mp4", "video/mp4")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["gps_removed"] is True and body["metadata_removed"] is True
    assert body["captured_at"] == "2026-03-01T01:30:00Z"
    assert body["poster"] == "stored"

    stored_bytes = await stored_object(media, body["id"])
    assert_nothing_identifying(stored_bytes)
    assert b"+30.58" not in stored_bytes and b"Apple" not in stored_bytes
    stored = await asyncio.to_thread(ffmpeg_report, stored_bytes, tmp_path)
    header = stored.split("Stream mapping")[0]
    tags_left = set(re.findall(r"^\s{4,6}(\w[\w.-]*)\s*:", header, re.M)) - {"Metadata"}
    assert tags_left <= {"major_brand", "minor_version", "compatible_brands",
                              "creation_time", "handler_name", "vendor_id"}  # fmt: skip
    # the same video and audio packets, byte for byte
    assert stream_hashes(stored) == stream_hashes(uploaded) and len(stream_hashes(stored)) == 2


@pytest.mark.parametrize(
    ("fmt", "filename", "content_type"),
    [("HEIF", "IMG_0042.HEIC", "image/heic"), ("AVIF", "sports.avif", "image/avif")],
)
async def test_a_heic_or_avif_photo_is_accepted_cleaned_and_given_jpeg_renditions(
    media: RunningService, fmt: str, filename: str, content_type: str
) -> None:
    pillow_heif.register_heif_opener()
    data = heif_photo(fmt)
    response = await upload(media, data, filename, content_type)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["content_type"] == content_type and body["kind"] == "photo"
    assert (body["width"], body["height"]) == (640, 480)
    assert body["gps_removed"] is True and body["metadata_removed"] is True
    assert body["captured_at"] == "2026-03-01T01:30:00Z"
    assert body["thumbnails"]["small"] == {"width": 160, "height": 120}
    assert body["jpeg"] == {"width": 640, "height": 480}

    stored_bytes = await stored_object(media, body["id"])
    assert_nothing_identifying(stored_bytes)
    stored = Image.open(io.BytesIO(stored_bytes))
    assert stored.format == fmt and stored.size == (640, 480)
    assert stored.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert ExifTags.Base.Make not in stored.getexif()

    read = (await media.client.get(f"/media/{body['id']}", headers=CORRESPONDENT)).json()
    jpeg, headers = await asyncio.to_thread(fetch_with_headers, read["jpeg_url"])
    assert headers["content-type"] == "image/jpeg"
    rendition = Image.open(io.BytesIO(jpeg))
    assert rendition.format == "JPEG" and rendition.size == (640, 480)
    redirect = await media.client.get(f"/media/{body['id']}/thumbnail", headers=CORRESPONDENT)
    small = await asyncio.to_thread(fetch, redirect.headers["location"])
    assert Image.open(io.BytesIO(small)).format == "JPEG"


@pytest.mark.parametrize(("fmt", "content_type"), [("HEIF", "image/heic"), ("AVIF", "image/avif")])
async def test_a_heic_or_avif_held_upright_gets_upright_renditions_and_keeps_its_rotation(
    media: RunningService, fmt: str, content_type: str
) -> None:
    pillow_heif.register_heif_opener()
    data = heif_photo(fmt, turned=True)
    assert b"irot" in data
    response = await upload(media, data, "upright." + fmt.lower(), content_type)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (480, 640)
    assert body["jpeg"] == {"width": 480, "height": 640}
    assert body["thumbnails"]["small"] == {"width": 120, "height": 160}
    read = (await media.client.get(f"/media/{body['id']}", headers=CORRESPONDENT)).json()
    rendition = Image.open(io.BytesIO(await asyncio.to_thread(fetch, read["jpeg_url"])))
    assert rendition.size == (480, 640) and not rendition.getexif()
    # the stored file keeps the container's rotation, and a reader shows it upright
    stored_bytes = await stored_object(media, body["id"])
    assert b"irot" in stored_bytes
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(stored_bytes)))
    assert shown.size == (480, 640)


async def test_downloads_carry_the_sniffed_type_and_a_disposition_without_the_file_name(
    media: RunningService,
) -> None:
    # a PNG whose name and header say nothing about it: the type comes from its bytes
    response = await upload(media, photo("PNG"), "李小明.bin.png", "application/octet-stream")
    assert response.status_code == 201, response.text
    media_id = response.json()["id"]
    read = (await media.client.get(f"/media/{media_id}", headers=CORRESPONDENT)).json()
    _, headers = await asyncio.to_thread(fetch_with_headers, read["url"])
    assert headers["content-type"] == "image/png"
    assert headers["content-disposition"] == f'attachment; filename="{media_id}.png"'
    redirect = await media.client.get(f"/media/{media_id}/thumbnail", headers=CORRESPONDENT)
    _, headers = await asyncio.to_thread(fetch_with_headers, redirect.headers["location"])
    assert headers["content-type"] == "image/jpeg"
    assert headers["content-disposition"].startswith("inline;")


async def test_the_same_file_uploaded_twice_by_a_unit_returns_the_same_media(
    media: RunningService,
) -> None:
    data = photo()
    before = uploads_metric("photo", "duplicate")
    first = await upload(media, data, "a.jpg", "image/jpeg")
    second = await upload(media, data, "a-copy.jpg", "image/jpeg")
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["id"] == first.json()["id"] and second.json()["duplicate"] is True
    assert uploads_metric("photo", "duplicate") == before + 1
    assert await media.runtime.db.media.count_documents({"sha256": first.json()["sha256"]}) == 1
    # another unit's copy is its own media
    other = auth("dh-dyxx", Role.CORRESPONDENT)
    theirs = await upload(media, data, "a.jpg", "image/jpeg", unit="dh-dyxx", headers=other)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


async def test_a_presigned_link_works_and_then_expires(strict_media: RunningService) -> None:
    data = photo(size=(48, 32))
    response = await upload(strict_media, data, "small.jpg", "image/jpeg")
    assert response.status_code == 201, response.text
    read = await strict_media.client.get(f"/media/{response.json()['id']}", headers=CORRESPONDENT)
    body = read.json()
    assert await asyncio.to_thread(fetch, body["url"]) == data
    assert datetime.fromisoformat(body["url_expires_at"]) > datetime.now(UTC)

    def refused_status() -> int | None:
        try:
            fetch(body["url"])
        except urllib.error.HTTPError as error:
            return error.code
        return None

    # the link lives one second; S3 then answers 403 (checked until it does, at most 10 s)
    status = await eventually(
        lambda: asyncio.to_thread(refused_status), timeout=10, interval=0.25, what="expiry"
    )
    assert status == 403


async def test_only_users_in_scope_see_a_units_media(media: RunningService) -> None:
    campaign = f"spring-{uuid.uuid4().hex[:6]}"
    response = await upload(media, photo(), "c.jpg", "image/jpeg", campaign=campaign)
    media_id = response.json()["id"]
    other_county = auth(OTHER_COUNTY_SCHOOL, Role.REVIEWER_COUNTY)
    for path in (f"/media/{media_id}", f"/media/{media_id}/thumbnail"):
        outside = await media.client.get(path, headers=other_county)
        assert "outside your scope" in refused(outside, 403, "media_out_of_scope")["detail"]
    listing = await media.client.get("/media", params={"unit": "dh"}, headers=other_county)
    assert listing.status_code == 403
    upload_elsewhere = await upload(media, photo(), "x.jpg", "image/jpeg", headers=other_county)
    refused(upload_elsewhere, 403, "unit_out_of_scope")
    assert (await media.client.get(f"/media/{media_id}")).status_code == 401

    county_reviewer = auth("dh", Role.REVIEWER_COUNTY)
    assert (
        await media.client.get(f"/media/{media_id}", headers=county_reviewer)
    ).status_code == 200
    page = await media.client.get(
        "/media", params={"unit": "dh", "campaign": campaign}, headers=county_reviewer
    )
    assert page.status_code == 200
    assert [item["id"] for item in page.json()["items"]] == [media_id]
    assert page.json()["items"][0]["campaign"] == campaign


async def test_a_listing_pages_newest_first_by_cursor(media: RunningService) -> None:
    campaign = f"pages-{uuid.uuid4().hex[:6]}"
    uploaded = []
    for _ in range(5):
        response = await upload(
            media, photo(size=(64, 48)), "p.jpg", "image/jpeg", campaign=campaign
        )
        uploaded.append(response.json()["id"])
    seen: list[str] = []
    params: dict[str, Any] = {"campaign": campaign, "limit": 2, "kind": "photo"}
    for expected_size in (2, 2, 1):
        page = (await media.client.get("/media", params=params, headers=CORRESPONDENT)).json()
        assert len(page["items"]) == expected_size
        seen += [item["id"] for item in page["items"]]
        params["cursor"] = page["next_cursor"]
    assert params["cursor"] is None
    assert seen == uploaded[::-1]
    stale = await media.client.get(
        "/media", params={"cursor": "not-a-cursor"}, headers=CORRESPONDENT
    )
    refused(stale, 422, "bad_cursor")


async def test_storage_down_answers_503_with_retry_after_and_records_nothing() -> None:
    database = f"media_down_{uuid.uuid4().hex[:8]}"
    async with run_service(
        "media", mongo_database=database, s3_endpoint=f"127.0.0.1:{closed_port()}"
    ) as media:
        before = uploads_metric("photo", "storage_down")
        response = await upload(media, photo(), "down.jpg", "image/jpeg")
        body = refused(response, 503, "media_storage_unavailable")
        assert response.headers["retry-after"] == "30"
        assert "object storage is unavailable" in body["detail"]
        assert await media.runtime.db.media.count_documents({}) == 0
        assert await media.runtime.db.outbox.count_documents({}) == 0
        assert uploads_metric("photo", "storage_down") == before + 1
        await media.runtime.mongo.drop_database(database)


async def test_a_stored_photo_is_announced_as_media_stored(media: RunningService) -> None:
    campaign = f"theme-{uuid.uuid4().hex[:6]}"
    data = photo(size=(1024, 768))
    response = await upload(media, data, "announce.jpg", "image/jpeg", campaign=campaign)
    body = response.json()

    def ours(records: list[Any]) -> list[Any]:
        found = []
        for record in records:
            try:
                event = json.loads(record.value)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("payload", {}).get("media_id") == body["id"]:
                found.append(record)
        return found

    records = await read_topic("media.stored", until=lambda rs: bool(ours(rs)))
    [record] = ours(records)
    assert record.key == body["id"].encode()
    assert header(record, "event-type") == "media.stored"
    event = json.loads(record.value)
    assert (event["producer"], event["county"], event["unit"]) == ("media", "dh", SCHOOL)
    payload = event["payload"]
    assert payload["unit_path"] == {"city": "jc", "county": "dh", "unit": SCHOOL}
    assert payload["kind"] == "photo" and payload["content_type"] == "image/jpeg"
    assert payload["sha256"] == hashlib.sha256(data).hexdigest()
    assert payload["size"] == body["size"] and payload["campaign"] == campaign
    assert (payload["width"], payload["height"]) == (1024, 768)
    assert payload["uploader"] == "corr-dh-syxx"


async def test_a_photo_marked_with_recognisable_pupils_is_cleared_only_with_consent(
    media: RunningService,
) -> None:
    response = await upload(media, photo(), "class.jpg", "image/jpeg")
    media_id = response.json()["id"]
    assert response.json()["cleared_for_outside_media"] is True

    marked = await media.client.put(
        f"/media/{media_id}/pupils", json={"identifiable": True}, headers=CORRESPONDENT
    )
    assert marked.status_code == 200, marked.text
    assert marked.json()["pupils_identifiable"] is True
    assert marked.json()["cleared_for_outside_media"] is False

    school_only = {"reference": "2026春-三(2)班-07", "obtained_on": "2026-02-20",
                   "outside_media": False}  # fmt: skip
    limited = await media.client.put(
        f"/media/{media_id}/pupils",
        json={"identifiable": True, "consent": school_only},
        headers=CORRESPONDENT,
    )
    assert limited.json()["cleared_for_outside_media"] is False
    consent = school_only | {"outside_media": True}
    cleared = await media.client.put(
        f"/media/{media_id}/pupils",
        json={"identifiable": True, "consent": consent},
        headers=CORRESPONDENT,
    )
    body = cleared.json()
    assert body["cleared_for_outside_media"] is True
    assert body["guardian_consent"]["reference"] == "2026春-三(2)班-07"
    assert body["guardian_consent"]["obtained_on"] == "2026-02-20"
    assert body["guardian_consent"]["recorded_by"] == "corr-dh-syxx"
    read = await media.client.get(f"/media/{media_id}", headers=CORRESPONDENT)
    assert read.json()["cleared_for_outside_media"] is True
    doc = await media.runtime.db.media.find_one({"_id": media_id})
    assert [entry["identifiable"] for entry in doc["pupils_history"]] == [True, True, True]

    bad = await media.client.put(
        f"/media/{media_id}/pupils",
        json={"identifiable": True, "consent": {"reference": "", "obtained_on": "2026-02-20"}},
        headers=CORRESPONDENT,
    )
    assert bad.status_code == 422
    other_county = auth(OTHER_COUNTY_SCHOOL, Role.REVIEWER_COUNTY)
    outside = await media.client.put(
        f"/media/{media_id}/pupils", json={"identifiable": False}, headers=other_county
    )
    refused(outside, 403, "media_out_of_scope")
    missing = await media.client.put(
        "/media/nothing-here/pupils", json={"identifiable": False}, headers=CORRESPONDENT
    )
    refused(missing, 404, "media_not_found")
