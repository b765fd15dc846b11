"""The media service over the real local stack: uploads of every accepted type, the
checks that refuse what is not what it claims, location stripped, dedupe, presigned links,
unit scope, object storage down, and ``media.stored`` on the bus."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import ExifTags, Image
from prometheus_client import REGISTRY

from shared.auth import Role
from tests.support import RunningService, auth, header, read_topic, run_service

pytestmark = pytest.mark.usefixtures("stack_env")

SCHOOL = "dh-syxx"  # a school in 东湖区 (dh)
OTHER_COUNTY_SCHOOL = "xs-syxx"  # a school in 西山区 (xs)
CORRESPONDENT = auth(SCHOOL, Role.CORRESPONDENT, sub="corr-dh-syxx")


# ---- files ---------------------------------------------------------------------------
def photo(
    fmt: str = "JPEG", *, size: tuple[int, int] = (800, 600), exif: Image.Exif | None = None
) -> bytes:
    """A real image with unique pixels, so no two calls dedupe."""
    seed = uuid.uuid4().bytes
    image = Image.frombytes("RGB", (16, 16), (seed * 48)[: 16 * 16 * 3]).resize(size)
    buffer = io.BytesIO()
    options: dict[str, Any] = {"exif": exif} if exif is not None else {}
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def iso_video(brand: bytes) -> bytes:
    """A minimal ISO base media file: an ftyp box, then an mdat box of bytes."""
    ftyp = b"ftyp" + brand + b"\x00\x00\x02\x00" + brand + b"isom"
    body = os.urandom(4096)
    return (
        struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", len(body) + 8) + b"mdat" + body
    )


def huge_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height``: a pixel flood if decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header_data = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header_data)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
        + chunk(b"IEND", b"")
    )


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    ("brand", "filename", "content_type"),
    [(b"isom", "assembly.mp4", "video/mp4"), (b"qt  ", "assembly.mov", "video/quicktime")],
)
async def test_each_accepted_video_type_is_stored_and_says_when_it_has_no_poster(
    media: RunningService, monkeypatch: pytest.MonkeyPatch, brand: bytes, filename: str,
    content_type: str,
) -> None:  # fmt: skip
    monkeypatch.setattr("services.media.content.shutil.which", lambda name: None)
    data = iso_video(brand)
    response = await upload(media, data, filename, content_type)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "video" and body["content_type"] == content_type
    assert body["poster"] == "unavailable" and body["thumbnails"] == {}
    missing = await media.client.get(f"/media/{body['id']}/thumbnail", headers=CORRESPONDENT)
    assert missing.status_code == 404 and "ffmpeg" in missing.json()["detail"]


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
async def test_a_video_gets_a_poster_frame_when_ffmpeg_is_installed_and_one_can_be_read(
    media: RunningService, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
         "-t", "2", "-pix_fmt", "yuv420p", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    response = await upload(media, clip.read_bytes(), "clip.mp4", "video/mp4")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["poster"] == "stored" and (body["width"], body["height"]) == (320, 240)
    assert body["thumbnails"]["small"] == {"width": 160, "height": 120}
    redirect = await media.client.get(f"/media/{body['id']}/thumbnail", headers=CORRESPONDENT)
    thumbnail = await asyncio.to_thread(fetch, redirect.headers["location"])
    assert Image.open(io.BytesIO(thumbnail)).width == 160
    # a video ffmpeg cannot read is stored all the same, without a poster
    unreadable = await upload(media, iso_video(b"isom"), "broken.mp4", "video/mp4")
    assert unreadable.status_code == 201 and unreadable.json()["poster"] == "failed"


async def test_a_renamed_executable_is_refused_as_the_wrong_type(media: RunningService) -> None:
    before = uploads_metric("photo", "wrong_type")
    elf = b"\x7fELF\x02\x01\x01\x00" + os.urandom(2048)
    response = await upload(media, elf, "photo.jpg", "image/jpeg")
    assert response.status_code == 415
    assert "not any accepted type" in response.json()["detail"]
    assert uploads_metric("photo", "wrong_type") == before + 1
    # a real PNG sent as a JPEG is refused too
    mislabelled = await upload(media, photo("PNG"), "photo.jpg", "image/jpeg")
    assert mislabelled.status_code == 415
    assert "image/png, not image/jpeg" in mislabelled.json()["detail"]
    unaccepted = await upload(media, b"GIF89a" + os.urandom(64), "anim.gif", "image/gif")
    assert unaccepted.status_code == 415
    sha = hashlib.sha256(elf).hexdigest()
    assert await media.runtime.db.media.count_documents({"sha256": sha}) == 0


async def test_a_malformed_upload_is_answered_with_a_clear_422(media: RunningService) -> None:
    no_unit = await media.client.post(
        "/media", files={"file": ("a.jpg", photo(), "image/jpeg")}, headers=CORRESPONDENT
    )
    assert no_unit.status_code == 422 and "'unit' field" in no_unit.json()["detail"]
    empty = await upload(media, b"", "a.jpg", "image/jpeg")
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    unknown_unit = await upload(media, photo(), "a.jpg", "image/jpeg", unit="nowhere")
    assert unknown_unit.status_code == 404
    not_a_form = await media.client.post(
        "/media", content=b"{}", headers=CORRESPONDENT | {"content-type": "application/json"}
    )
    assert not_a_form.status_code == 422 and "multipart" in not_a_form.json()["detail"]
    opinion_officer = auth(SCHOOL, Role.OPINION_OFFICER)
    refused = await upload(media, photo(), "a.jpg", "image/jpeg", headers=opinion_officer)
    assert refused.status_code == 403


async def test_a_file_over_the_limit_is_refused_with_413(strict_media: RunningService) -> None:
    response = await upload(strict_media, photo(size=(1000, 800)), "big.jpg", "image/jpeg")
    assert response.status_code == 413
    assert "larger than the 20000 bytes limit for a photo" in response.json()["detail"]
    assert await strict_media.runtime.db.media.count_documents({}) == 0


async def test_a_pixel_flood_is_refused_and_the_service_keeps_working(
    media: RunningService, strict_media: RunningService
) -> None:
    flood = await upload(media, huge_png(100_000, 100_000), "flood.png", "image/png")
    assert flood.status_code == 422
    assert "pixel flood" in flood.json()["detail"]
    # just over the configured limit (Pillow only warns below twice the limit)
    over = photo("PNG", size=(1100, 1000))
    refused = await upload(strict_media, over, "over.png", "image/png")
    assert refused.status_code == 422 and "pixel flood" in refused.json()["detail"]
    truncated = photo(size=(400, 300))[:2000]
    broken = await upload(media, truncated, "cut.jpg", "image/jpeg")
    assert broken.status_code == 422 and "could not be decoded" in broken.json()["detail"]
    after = await upload(media, photo(), "fine.jpg", "image/jpeg")
    assert after.status_code == 201


async def test_location_is_removed_from_photos_and_the_capture_time_kept(
    media: RunningService,
) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SchoolCam"
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2026:03:01 09:30:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (30.0, 35.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", (114.0, 17.0, 5.0)
    data = photo(size=(640, 480), exif=exif)
    assert ExifTags.IFD.GPSInfo in Image.open(io.BytesIO(data)).getexif()

    response = await upload(media, data, "pupils.jpg", "image/jpeg")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["gps_removed"] is True
    assert body["captured_at"] == "2026-03-01T01:30:00Z"  # 09:30 in Asia/Shanghai
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    read = (await media.client.get(f"/media/{body['id']}", headers=CORRESPONDENT)).json()
    stored = Image.open(io.BytesIO(await asyncio.to_thread(fetch, read["url"])))
    stored_exif = stored.getexif()
    assert ExifTags.IFD.GPSInfo not in stored_exif
    assert stored_exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
    details = stored_exif.get_ifd(ExifTags.IFD.Exif)
    assert details[ExifTags.Base.DateTimeOriginal] == "2026:03:01 09:30:00"
    assert stored_exif[ExifTags.Base.Make] == "SchoolCam"
    assert stored.size == (640, 480)


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
    await asyncio.sleep(3)
    with pytest.raises(urllib.error.HTTPError) as expired:
        await asyncio.to_thread(fetch, body["url"])
    assert expired.value.code == 403


async def test_only_users_in_scope_see_a_units_media(media: RunningService) -> None:
    campaign = f"spring-{uuid.uuid4().hex[:6]}"
    response = await upload(media, photo(), "c.jpg", "image/jpeg", campaign=campaign)
    media_id = response.json()["id"]
    other_county = auth(OTHER_COUNTY_SCHOOL, Role.REVIEWER_COUNTY)
    for path in (f"/media/{media_id}", f"/media/{media_id}/thumbnail"):
        refused = await media.client.get(path, headers=other_county)
        assert refused.status_code == 403, path
        assert "outside your scope" in refused.json()["detail"]
    listing = await media.client.get("/media", params={"unit": "dh"}, headers=other_county)
    assert listing.status_code == 403
    upload_elsewhere = await upload(media, photo(), "x.jpg", "image/jpeg", headers=other_county)
    assert upload_elsewhere.status_code == 403
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


async def test_storage_down_answers_503_with_retry_after_and_records_nothing() -> None:
    database = f"media_down_{uuid.uuid4().hex[:8]}"
    async with run_service(
        "media", mongo_database=database, s3_endpoint=f"127.0.0.1:{closed_port()}"
    ) as media:
        before = uploads_metric("photo", "storage_down")
        response = await upload(media, photo(), "down.jpg", "image/jpeg")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert "object storage is unavailable" in response.json()["detail"]
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
