"""The media service's pure logic, with no server: what a file claims and what its bytes
are, the container cleaning of each photo format (location and identity removed, the coded
image untouched, a clean file cleaned again unchanged), and reading ffmpeg's report of a
video's metadata."""

from __future__ import annotations

import inspect
import io
import re
import struct

import pytest
from PIL import ExifTags, Image

from services.media import cleaning, filetypes, refusals
from services.media.refusals import UploadRefusal
from services.media.video import parse_dump
from shared.refusals import Refusal
from tests.media.phone_files import (
    assert_nothing_identifying,
    phone_jpeg,
    phone_png,
    pixels,
    segment,
)

F = filetypes


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        ("image/jpeg", "class.jpg", F.JPEG),
        (None, "IMG_0042.HEIC", F.HEIC),
        ("application/octet-stream", "chart.png", F.PNG),
        ("image/heif", "IMG_0042.heic", F.HEIF),  # one family: the header's name wins
        ("video/quicktime", "clip.mp4", F.MOV),
        ("image/jpg; charset=binary", None, F.JPEG),
        ("video/x-m4v", "clip.m4v", F.MP4),
    ],
)
def test_the_claimed_type_comes_from_the_content_type_and_the_file_name(
    content_type: str | None, filename: str | None, expected: filetypes.MediaType
) -> None:
    assert filetypes.claimed_type(content_type, filename) is expected


@pytest.mark.parametrize(
    ("content_type", "filename", "code"),
    [
        ("image/gif", "anim.gif", "media_type_not_accepted"),
        ("image/jpeg", "setup.exe", "media_type_not_accepted"),
        ("image/jpeg", "chart.png", "media_type_mismatch"),
        ("video/mp4", "class.jpg", "media_type_mismatch"),
        (None, "no-extension", "media_type_unstated"),
        ("application/octet-stream", None, "media_type_unstated"),
    ],
)
def test_a_claim_that_is_not_accepted_or_contradicts_itself_is_refused_with_415(
    content_type: str | None, filename: str | None, code: str
) -> None:
    with pytest.raises(UploadRefusal) as refused:
        filetypes.claimed_type(content_type, filename)
    assert (refused.value.status, refused.value.code) == (415, code)
    assert refused.value.outcome == "wrong_type"
    assert "照片" in refused.value.message or "文件" in refused.value.message


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", len(body) + 4) + body + b"\x00" * 64


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", F.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", F.PNG),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", F.WEBP),
        (ftyp(b"heic", b"mif1", b"heic"), F.HEIC),
        (ftyp(b"mif1", b"mif1", b"heic"), F.HEIC),
        (ftyp(b"mif1", b"mif1", b"avif"), F.AVIF),
        (ftyp(b"avif", b"mif1"), F.AVIF),
        (ftyp(b"mif1", b"mif1"), F.HEIF),
        (ftyp(b"qt  ", b"qt  "), F.MOV),
        (ftyp(b"isom", b"isom", b"avc1"), F.MP4),
        (ftyp(b"XYZ1", b"mp42"), F.MP4),
        (ftyp(b"M4A ", b"M4A "), None),  # audio
        (b"\x00\x00\x00\x08wide\x00\x00", F.MOV),  # QuickTime from before ftyp
        (b"\x7fELF\x02\x01\x01\x00", None),
        (b"GIF89a", None),
    ],
)
def test_the_real_type_comes_from_the_first_bytes(
    head: bytes, expected: filetypes.MediaType | None
) -> None:
    assert filetypes.sniff_type(head) is expected


def test_bytes_of_another_family_than_claimed_are_refused_and_counted_for_the_claim() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
    assert filetypes.confirm_type(ftyp(b"qt  "), F.MP4) is F.MOV  # one family
    with pytest.raises(UploadRefusal) as refused:
        filetypes.confirm_type(png, F.JPEG)
    assert refused.value.code == "media_type_mismatch" and refused.value.kind == "photo"
    assert "image/png, not image/jpeg" in refused.value.detail


# ---- photo cleaning ------------------------------------------------------------------
def test_a_jpeg_keeps_only_its_image_the_capture_time_and_the_orientation() -> None:
    data, original = phone_jpeg((64, 48))
    kept = cleaning.KeptMetadata.from_exif(original.getexif())
    assert kept == cleaning.KeptMetadata("2026:03:01 09:30:00", "+08:00", 6)

    cleaned, findings = cleaning.clean_jpeg(data, kept)
    assert findings.location is True
    assert findings.removed == {"exif", "xmp", "iptc", "comment", "trailing data"}
    assert_nothing_identifying(cleaned)
    assert b"SEFH" not in cleaned and b"30,35" not in cleaned
    stored = Image.open(io.BytesIO(cleaned))
    assert stored.getexif()[ExifTags.Base.Orientation] == 6
    assert stored.tobytes() == original.tobytes()  # the coded image untouched

    again, second = cleaning.clean_jpeg(cleaned, kept)
    assert again == cleaned  # a clean file is already what cleaning makes
    assert second.location is False and second.removed == {"exif"}


def test_a_damaged_jpeg_cannot_be_followed_and_is_not_stored() -> None:
    data, _ = phone_jpeg((64, 48))
    for broken in (data[:300], b"\xff\xd8\x00\x00", b"\xff\xd8" + segment(0xE1, b"x")[:3]):
        with pytest.raises(cleaning.CleaningFailed):
            cleaning.clean_jpeg(broken, cleaning.KeptMetadata())


def test_a_png_keeps_only_the_chunks_that_draw_it() -> None:
    data, image = phone_png((40, 30))
    cleaned, findings = cleaning.clean_png(data, cleaning.KeptMetadata("2026:03:01 09:30:00"))
    assert findings.location is True and findings.removed == {"exif", "xmp", "text"}
    assert_nothing_identifying(cleaned)
    stored = Image.open(io.BytesIO(cleaned))
    assert stored.tobytes() == image.tobytes()
    details = stored.getexif().get_ifd(ExifTags.IFD.Exif)
    assert details == {ExifTags.Base.DateTimeOriginal: "2026:03:01 09:30:00"}


def test_a_webp_without_metadata_stays_as_it_was() -> None:
    buffer = io.BytesIO()
    pixels((32, 32)).save(buffer, "WEBP", lossless=True)
    cleaned, findings = cleaning.clean_webp(buffer.getvalue(), cleaning.KeptMetadata())
    assert cleaned == buffer.getvalue() and not findings.metadata_removed


# ---- ffmpeg's report of a video ------------------------------------------------------
FFMPEG_REPORT = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'award.mp4':
  Metadata:
    major_brand     : isom
    minor_version   : 512
    compatible_brands: isomiso2avc1mp41
    location        : +30.5833+114.2667/
    com.apple.quicktime.model: iPhone 15
    creation_time   : 2026-03-01T01:30:00.000000Z
  Duration: 00:01:02.50, start: 0.000000, bitrate: 123 kb/s
  Stream #0:0[0x1](und): Video: h264 (avc1), yuv420p, 320x240, 10 fps
      Metadata:
        handler_name    : SchoolCam
        vendor_id       : [0][0][0][0]
        encoder         : Lavc libx264
  Stream #0:1[0x2](und): Audio: aac (mp4a), 8000 Hz, mono
      Metadata:
        handler_name    : SoundHandler
At least one output file must be specified
"""


def test_the_report_of_a_phone_video_names_what_cleaning_must_remove() -> None:
    dump = parse_dump(FFMPEG_REPORT)
    assert dump.metadata["location"] == "+30.5833+114.2667/"
    assert dump.duration == 62.5
    assert dump.stream_metadata[0]["handler_name"] == "SchoolCam"
    assert dump.leftovers() == ["location", "com.apple.quicktime.model", "stream 0: encoder"]


def test_a_clean_report_leaves_nothing() -> None:
    clean = "\n".join(
        line
        for line in FFMPEG_REPORT.splitlines()
        if not any(tag in line for tag in ("location", "model", "encoder"))
    )
    assert parse_dump(clean).leftovers() == []


# ---- the refusals ---------------------------------------------------------------------
def every_refusal() -> list[Refusal]:
    """Each refusal the media service can give, built with placeholder values."""
    made = []
    for name, factory in vars(refusals).items():
        if name.startswith("_") or not inspect.isfunction(factory):
            continue
        if inspect.signature(factory).return_annotation not in ("Refusal", "UploadRefusal"):
            continue
        values = {
            parameter.name: 20_000 if parameter.annotation == "int" else "photo"
            for parameter in inspect.signature(factory).parameters.values()
        }
        made.append(factory(**values))
    return made


def test_every_refusal_has_a_stable_code_a_4xx_or_503_and_a_chinese_message() -> None:
    made = every_refusal()
    assert len(made) >= 20
    for refusal in made:
        assert re.fullmatch(r"[a-z_]+", refusal.code), refusal.code
        assert refusal.status in (403, 404, 413, 415, 422, 503), refusal.code
        assert re.search(r"[\u4e00-\u9fff]", refusal.message), refusal.code
        assert not re.search(r"[\u4e00-\u9fff]", refusal.detail), refusal.code
