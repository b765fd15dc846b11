"""Stored originals carry no location and no identity: most photos show pupils, who are
minors. JPEG, PNG and WebP files are rewritten container by container, keeping only the
parts needed to show the picture (an allow-list, so metadata of a kind nobody foresaw goes
too) and losslessly, the coded image untouched; a fresh EXIF block then holds only the
capture time and the orientation. Videos are re-muxed by ffmpeg without any metadata,
the streams copied as they are, and the result checked.

Pillow can re-save a photo without its EXIF, but only by encoding it again (a loss at every
upload), and the metadata libraries that edit in place are unmaintained (piexif) or bring
a GPL C++ library (exiv2); the container formats themselves are short and fixed, so the
rewriting is done here, over bytes."""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import ExifTags, Image

# ---- what a cleaned photo keeps ----------------------------------------------------


@dataclass(frozen=True)
class KeptMetadata:
    """The only metadata a stored photo keeps: when it was taken, and which way is up."""

    captured: str | None = None  # EXIF DateTimeOriginal, "YYYY:MM:DD HH:MM:SS"
    offset: str | None = None  # EXIF OffsetTimeOriginal, "+08:00"
    orientation: int = 1

    @classmethod
    def from_exif(cls, exif: Image.Exif) -> KeptMetadata:
        details = exif.get_ifd(ExifTags.IFD.Exif)
        captured = details.get(ExifTags.Base.DateTimeOriginal)
        offset = details.get(ExifTags.Base.OffsetTimeOriginal)
        orientation = exif.get(ExifTags.Base.Orientation, 1)
        return cls(
            captured=captured if isinstance(captured, str) else None,
            offset=offset if isinstance(offset, str) else None,
            orientation=orientation
            if isinstance(orientation, int) and 1 <= orientation <= 8
            else 1,
        )

    def upright(self) -> KeptMetadata:
        """The same, for pixels already turned the right way up."""
        return KeptMetadata(captured=self.captured, offset=self.offset)

    def exif(self) -> Image.Exif | None:
        """A new EXIF block with nothing else in it, or None when there is nothing to keep."""
        if self.captured is None and self.orientation == 1:
            return None
        exif = Image.Exif()
        if self.orientation != 1:
            exif[ExifTags.Base.Orientation] = self.orientation
        if self.captured is not None:
            details = exif.get_ifd(ExifTags.IFD.Exif)
            details[ExifTags.Base.DateTimeOriginal] = self.captured
            if self.offset is not None:
                details[ExifTags.Base.OffsetTimeOriginal] = self.offset
        return exif

    def exif_tiff(self) -> bytes | None:
        """The EXIF block as TIFF bytes (what PNG's eXIf and WebP's EXIF chunks hold)."""
        exif = self.exif()
        return None if exif is None else exif.tobytes().removeprefix(b"Exif\x00\x00")


@dataclass
class Findings:
    """What the upload carried that the stored file does not."""

    location: bool = False
    removed: set[str] = field(default_factory=set)  # kinds of metadata removed

    @property
    def metadata_removed(self) -> bool:
        return bool(self.removed)


class CleaningFailed(Exception):
    """The file's structure could not be followed, so it cannot be stored clean."""


# words that mark a location in XMP (exif:GPS*, Iptc4xmpCore:Location, photoshop:City …)
_XMP_LOCATION = re.compile(
    rb"GPS|Location|photoshop:City|photoshop:State|photoshop:Country|CountryCode"
)
# IPTC datasets of record 2 that name a place: 90 city, 92 sublocation, 95 province,
# 100 country code, 101 country
_IPTC_LOCATION = re.compile(rb"\x1c\x02[\x5a\x5c\x5f\x64\x65]")


def _exif_has_location(tiff_or_app1: bytes) -> bool:
    """An EXIF block with a GPS directory. One that cannot be read is counted as having
    one: it is removed either way, and the report errs towards saying so."""
    try:
        exif = Image.Exif()
        exif.load(tiff_or_app1)
        return ExifTags.IFD.GPSInfo in exif or bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
    except Exception:  # malformed EXIF raises almost anything from Pillow's parser
        return True


def _note_xmp(packet: bytes, findings: Findings) -> None:
    findings.removed.add("xmp")
    if _XMP_LOCATION.search(packet):
        findings.location = True


# ---- JPEG --------------------------------------------------------------------------
_SOI, _EOI, _SOS, _APP0, _APP1, _APP2, _APP13, _APP14, _COM = (
    0xD8, 0xD9, 0xDA, 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xFE,
)  # fmt: skip
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RSTn carry no length


def clean_jpeg(data: bytes, kept: KeptMetadata) -> tuple[bytes, Findings]:
    """The JPEG with every APP segment and comment removed except JFIF, the ICC profile and
    Adobe's colour transform, anything after the end of the image (phones append depth
    maps, gain maps and trailers with their own EXIF there) dropped, and a fresh EXIF
    segment holding ``kept``. The coded image is copied byte for byte."""
    if not data.startswith(b"\xff\xd8"):
        raise CleaningFailed("not a JPEG stream")
    findings = Findings()
    head: list[bytes] = [b"\xff\xd8"]  # SOI and the APP segments kept before the rest
    body: list[bytes] = []
    position, size = 2, len(data)
    while True:
        if position >= size or data[position] != 0xFF:
            raise CleaningFailed("the JPEG stream is truncated or damaged")
        while position < size and data[position] == 0xFF:  # fill bytes before a marker
            position += 1
        if position >= size:
            raise CleaningFailed("the JPEG stream is truncated")
        marker = data[position]
        position += 1
        if marker == _EOI:
            body.append(b"\xff\xd9")
            if position < size:
                findings.removed.add("trailing data")
            break
        if marker in _STANDALONE:
            body.append(bytes((0xFF, marker)))
            continue
        if position + 2 > size:
            raise CleaningFailed("the JPEG stream is truncated")
        (length,) = struct.unpack_from(">H", data, position)
        end = position + length
        if length < 2 or end > size:
            raise CleaningFailed("a JPEG segment runs past the end of the file")
        segment = data[position - 2 : end]
        payload = data[position + 2 : end]
        position = end
        if 0xE0 <= marker <= 0xEF or marker == _COM:
            if _keep_jpeg_app(marker, payload):
                (head if not body else body).append(segment)
            else:
                _note_jpeg_app(marker, payload, findings)
            continue
        body.append(segment)
        if marker == _SOS:
            # entropy-coded data runs to the next marker that is not a stuffed 0xFF00
            # or a restart marker
            scan_end = _scan_end(data, position)
            body.append(data[position:scan_end])
            position = scan_end
    exif = kept.exif()
    if exif is not None:
        app1 = exif.tobytes()
        head.append(b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1)
    return b"".join(head + body), findings


def _scan_end(data: bytes, position: int) -> int:
    size = len(data)
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= size:
            raise CleaningFailed("the JPEG stream is truncated")
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            position += 1 if following == 0xFF else 2
            continue
        return position


def _keep_jpeg_app(marker: int, payload: bytes) -> bool:
    return (
        (marker == _APP0 and payload.startswith(b"JFIF\x00"))
        or (marker == _APP2 and payload.startswith(b"ICC_PROFILE\x00"))
        or (marker == _APP14 and payload.startswith(b"Adobe"))
    )


def _note_jpeg_app(marker: int, payload: bytes, findings: Findings) -> None:
    if marker == _APP1 and payload.startswith(b"Exif\x00"):
        findings.removed.add("exif")
        findings.location |= _exif_has_location(payload)
    elif marker == _APP1 and (b"adobe:ns:meta" in payload[:128] or b"ns.adobe.com" in payload[:64]):
        _note_xmp(payload, findings)
    elif marker == _APP13:
        findings.removed.add("iptc")
        findings.location |= bool(_IPTC_LOCATION.search(payload))
    elif marker == _COM:
        findings.removed.add("comment")
    else:
        findings.removed.add("maker data")  # MPF, maker notes, FlashPix, Ducky, …


# ---- PNG ---------------------------------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# what draws the picture (and APNG frames); text, eXIf, tIME and private chunks go
_PNG_KEPT = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT",
    b"sRGB", b"cICP", b"mDCV", b"cLLI", b"bKGD", b"pHYs", b"acTL", b"fcTL", b"fdAT",
}  # fmt: skip


def clean_png(data: bytes, kept: KeptMetadata) -> tuple[bytes, Findings]:
    """The PNG with only the chunks that draw the picture, and an eXIf chunk with ``kept``
    (before the image data, where readers look for it)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise CleaningFailed("not a PNG stream")
    findings = Findings()
    out = [_PNG_SIGNATURE]
    exif = kept.exif_tiff()
    position = len(_PNG_SIGNATURE)
    while True:
        if position + 8 > len(data):
            raise CleaningFailed("the PNG stream is truncated")
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if end > len(data):
            raise CleaningFailed("a PNG chunk runs past the end of the file")
        chunk = data[position:end]
        body = data[position + 8 : position + 8 + length]
        position = end
        if kind == b"IDAT" and exif is not None:
            out.append(_png_chunk(b"eXIf", exif))
            exif = None
        if kind in _PNG_KEPT:
            out.append(chunk)
        elif kind == b"eXIf":
            findings.removed.add("exif")
            findings.location |= _exif_has_location(body)
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            if body.startswith(b"XML:com.adobe.xmp\x00"):
                _note_xmp(body, findings)
            elif body.startswith(b"Raw profile type exif\x00"):
                findings.removed.add("exif")
                findings.location = True  # hex-coded EXIF: counted as having GPS
            else:
                findings.removed.add("text")
        else:
            findings.removed.add("private chunks")
        if kind == b"IEND":
            if position < len(data):
                findings.removed.add("trailing data")
            return b"".join(out), findings


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


# ---- WebP --------------------------------------------------------------------------
_WEBP_KEPT = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"}
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def clean_webp(data: bytes, kept: KeptMetadata) -> tuple[bytes, Findings]:
    """The WebP with only its image, animation, alpha and colour-profile chunks; an
    extended file gets an EXIF chunk with ``kept`` (a simple one cannot carry any)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise CleaningFailed("not a WebP stream")
    findings = Findings()
    chunks: list[bytearray] = []
    extended: bytearray | None = None
    (riff_size,) = struct.unpack_from("<I", data, 4)
    limit = min(len(data), 8 + riff_size)
    if limit < len(data):
        findings.removed.add("trailing data")
    position = 12
    while position + 8 <= limit:
        kind, length = struct.unpack_from("<4sI", data, position)
        end = position + 8 + length + (length & 1)
        if position + 8 + length > limit:
            raise CleaningFailed("a WebP chunk runs past the end of the file")
        body = data[position + 8 : position + 8 + length]
        if kind in _WEBP_KEPT:
            chunk = bytearray(data[position : min(end, limit)])
            if len(chunk) < end - position:
                chunk += b"\x00"
            chunks.append(chunk)
            if kind == b"VP8X":
                extended = chunk
        elif kind == b"EXIF":
            findings.removed.add("exif")
            findings.location |= _exif_has_location(body)
        elif kind == b"XMP ":
            _note_xmp(body, findings)
        else:
            findings.removed.add("private chunks")
        position = end
    exif = kept.exif_tiff()
    if extended is not None:
        extended[8] &= ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
        if exif is not None:
            extended[8] |= _VP8X_EXIF
            padding = b"\x00" if len(exif) & 1 else b""
            chunks.append(bytearray(b"EXIF" + struct.pack("<I", len(exif)) + exif + padding))
    payload = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload, findings


# ---- HEIF and AVIF ------------------------------------------------------------------
# Both keep EXIF and XMP as items beside the coded image, located by the ``iloc`` box.
# Their bytes are overwritten in place: the EXIF item with a fresh block of the same length
# holding only the capture time, the XMP packet with an empty one padded by white space
# (the padding XMP itself provides for editing in place). The file's boxes, offsets and
# coded image stay as they are, so nothing is encoded again.
_HEIF_TOP_KEPT = {b"ftyp", b"meta", b"mdat", b"free", b"skip", b"moov"}
_EMPTY_XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>'


@dataclass
class _Item:
    type: bytes = b""
    content_type: bytes = b""
    construction: int = 0
    extents: list[tuple[int, int]] = field(default_factory=list)  # (offset, length)


def clean_heif(data: bytes, kept: KeptMetadata) -> tuple[bytes, Findings]:
    """The HEIF or AVIF file with its EXIF and XMP items blanked and every top-level box
    other than the file type, metadata, media data and padding turned into padding. HEIF
    applies its own rotation (``irot``), so the EXIF orientation is not kept."""
    findings = Findings()
    out = bytearray(data)
    meta: tuple[int, int] | None = None
    for kind, start, body, end in _boxes(data, 0, len(data)):
        if kind == b"meta":
            meta = (body + 4, end)  # a full box: version and flags first
        elif kind not in _HEIF_TOP_KEPT:
            out[start + 4 : start + 8] = b"free"
            out[body:end] = bytes(end - body)
            findings.removed.add("private boxes")
    if meta is None:
        raise CleaningFailed("the HEIF file has no metadata box")
    items, idat = _heif_items(data, *meta)
    exif_tiff = KeptMetadata(captured=kept.captured, offset=kept.offset).exif_tiff()
    for item in items.values():
        is_xmp = item.type == b"mime" and b"xm" in item.content_type.lower()
        if item.type != b"Exif" and not is_xmp:
            continue
        spans = _item_spans(item, idat, len(data))
        original = b"".join(data[a:b] for a, b in spans)
        if item.type == b"Exif":
            findings.removed.add("exif")
            (tiff_offset,) = struct.unpack_from(">I", original.ljust(4, b"\x00"))
            findings.location |= _exif_has_location(original[4 + tiff_offset :])
            fresh = b"\x00\x00\x00\x00" + (exif_tiff or Image.Exif().tobytes()[6:])
            fill = b"\x00"
        else:
            _note_xmp(original, findings)
            fresh, fill = _EMPTY_XMP, b" "
        if len(fresh) > len(original):
            raise CleaningFailed("a HEIF metadata item is too small to be blanked in place")
        replacement = fresh + fill * (len(original) - len(fresh))
        for a, b in spans:
            out[a:b], replacement = replacement[: b - a], replacement[b - a :]
    return bytes(out), findings


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """The boxes between ``start`` and ``end``: (type, box start, body start, box end)."""
    found = []
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        body = position + 8
        if size == 1:
            if position + 16 > end:
                raise CleaningFailed("a box header is truncated")
            (size,) = struct.unpack_from(">Q", data, position + 8)
            body += 8
        elif size == 0:
            size = end - position
        if size < body - position or position + size > end:
            raise CleaningFailed(f"the {kind!r} box runs past its container")
        found.append((kind, position, body, position + size))
        position += size
    return found


def _heif_items(data: bytes, start: int, end: int) -> tuple[dict[int, _Item], int | None]:
    """Items by id with their types (``iinf``) and extents (``iloc``); the ``idat`` body."""
    items: dict[int, _Item] = {}
    idat: int | None = None
    children = _boxes(data, start, end)
    for kind, _, body, box_end in children:
        if kind == b"idat":
            idat = body
        elif kind == b"iinf":
            count_size = 2 if data[body] == 0 else 4
            for entry, _, entry_body, entry_end in _boxes(data, body + 4 + count_size, box_end):
                if entry == b"infe":
                    _read_infe(data, entry_body, entry_end, items)
    for kind, _, body, _ in children:
        if kind == b"iloc":
            _read_iloc(data, body, items)
    return items, idat


def _read_infe(data: bytes, body: int, end: int, items: dict[int, _Item]) -> None:
    version = data[body]
    if version < 2:
        return  # version 0 and 1 entries name no item type: not metadata items
    position = body + 4
    if version == 2:
        (item_id,) = struct.unpack_from(">H", data, position)
        position += 2
    else:
        (item_id,) = struct.unpack_from(">I", data, position)
        position += 4
    item_type = data[position + 2 : position + 6]
    item = items.setdefault(item_id, _Item())
    item.type = item_type
    if item_type == b"mime":
        name_end = data.find(b"\x00", position + 6, end)
        type_end = data.find(b"\x00", name_end + 1, end) if name_end >= 0 else -1
        if name_end >= 0:
            item.content_type = data[name_end + 1 : type_end if type_end >= 0 else end]


def _read_iloc(data: bytes, body: int, items: dict[int, _Item]) -> None:
    version = data[body]
    sizes = data[body + 4]
    offset_size, length_size = sizes >> 4, sizes & 0x0F
    sizes = data[body + 5]
    base_size, index_size = sizes >> 4, (sizes & 0x0F) if version in (1, 2) else 0
    position = body + 6

    def number(width: int) -> int:
        nonlocal position
        value = int.from_bytes(data[position : position + width], "big")
        position += width
        return value

    count = number(2 if version < 2 else 4)
    for _ in range(count):
        item = items.setdefault(number(2 if version < 2 else 4), _Item())
        if version in (1, 2):
            item.construction = number(2) & 0x0F
        number(2)  # data reference index: 0, this file
        base = number(base_size)
        for _ in range(number(2)):
            number(index_size)
            offset = number(offset_size)
            item.extents.append((base + offset, number(length_size)))


def _item_spans(item: _Item, idat: int | None, size: int) -> list[tuple[int, int]]:
    if item.construction == 1 and idat is not None:
        origin = idat
    elif item.construction == 0:
        origin = 0
    else:
        raise CleaningFailed("a HEIF metadata item is stored in a way not supported")
    spans = []
    for offset, length in item.extents:
        start = origin + offset
        if length == 0 or start + length > size:
            raise CleaningFailed("a HEIF metadata item runs past the end of the file")
        spans.append((start, start + length))
    return spans


# ---- videos ------------------------------------------------------------------------
# all a cleaned file may still say about itself (ffmpeg writes the first three from the
# file type; handler names are reset to ffmpeg's own)
_VIDEO_KEPT_GLOBAL = {"major_brand", "minor_version", "compatible_brands", "creation_time"}
_VIDEO_KEPT_STREAM = {"creation_time", "handler_name", "vendor_id", "language"}
_VIDEO_LOCATION = re.compile(r"location|iso6709|gps", re.IGNORECASE)
_OTHER_STREAMS = re.compile(r"^\s+Stream #0:\d+\S*: (Data|Subtitle|Attachment):", re.MULTILINE)
_DURATION = re.compile(r"^\s+Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)


class VideoUnreadable(Exception):
    """ffmpeg could not read the video, so its metadata cannot be removed."""


@dataclass
class VideoDump:
    """What ffmpeg says about its input (the first file it opened)."""

    metadata: dict[str, str] = field(default_factory=dict)
    stream_metadata: list[dict[str, str]] = field(default_factory=list)
    duration: float | None = None

    def leftovers(self) -> list[str]:
        """Metadata a cleaned file must not have."""
        left = [k for k in self.metadata if k not in _VIDEO_KEPT_GLOBAL]
        for index, values in enumerate(self.stream_metadata):
            left += [f"stream {index}: {k}" for k in values if k not in _VIDEO_KEPT_STREAM]
        return left


def parse_dump(log: str) -> VideoDump:
    """The metadata and duration of ``Input #0`` from ffmpeg's log (its stable layout:
    two spaces before ``Metadata:`` of the file, four before those of a stream)."""
    dump = VideoDump()
    target: dict[str, str] | None = None
    depth = 0
    inside = False
    for line in log.splitlines():
        if line.startswith("Input #0"):
            inside = True
            continue
        if not inside:
            continue
        if line.startswith(("Input #", "Output #", "Stream mapping")):
            break
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()
        if text == "Metadata:":
            if indent == 2:
                target = dump.metadata
            else:
                dump.stream_metadata.append({})
                target = dump.stream_metadata[-1]
            depth = indent + 2
            continue
        if target is not None and indent == depth and ":" in text:
            key, _, value = text.partition(":")
            key = key.strip()
            if key:
                target[key] = value.strip()
            continue
        if target is not None and indent > depth:
            continue  # a continuation line of a long value
        target = None
    if found := _DURATION.search(log):
        hours, minutes, seconds = found.groups()
        dump.duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return dump


@dataclass
class CleanedVideo:
    path: Path
    findings: Findings
    captured_at: datetime | None
    duration: float | None


async def clean_video(
    source: Path, target: Path, *, container: str, ffmpeg: str, timeout: float
) -> CleanedVideo:
    """Re-mux the video into ``target`` without metadata: file and stream tags (location,
    make, model, owner, software), chapters, data and subtitle tracks (phones keep timed
    location there) and cover art go; video and audio streams are copied untouched, the
    display rotation with them. The capture time is written back. Then the result is
    read again, and a file with anything left is refused."""
    _, before = await _ffmpeg_log(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(source)], timeout=timeout
    )
    if "Stream #0:" not in before:
        raise VideoUnreadable(_last_line(before))
    dump = parse_dump(before)
    findings = Findings()
    tags = list(dump.metadata) + [k for values in dump.stream_metadata for k in values]
    findings.location = any(_VIDEO_LOCATION.search(k) for k in tags)
    if dump.leftovers():
        findings.removed.add("tags")
    if _OTHER_STREAMS.search(before):
        findings.removed.add("data tracks")
    captured_at = _video_time(dump.metadata.get("creation_time"))
    command = [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-i", str(source),
        "-map", "0:V?", "-map", "0:a?", "-c", "copy",
        "-map_metadata", "-1", "-map_metadata:s", "-1", "-map_chapters", "-1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart",
    ]  # fmt: skip
    if captured_at is not None:
        command += ["-metadata", f"creation_time={captured_at:%Y-%m-%dT%H:%M:%S.%fZ}"]
    status, log = await _ffmpeg_log([*command, "-f", container, str(target)], timeout=timeout)
    if status != 0:
        raise VideoUnreadable(_last_line(log))
    _, after = await _ffmpeg_log(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(target)], timeout=timeout
    )
    if left := parse_dump(after).leftovers():
        raise VideoUnreadable(f"metadata left after cleaning: {', '.join(left)}")
    return CleanedVideo(target, findings, captured_at, dump.duration)


def _video_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    text = raw.split(";")[0].strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.year < 1971:  # an unset QuickTime time reads as 1904 or 1970
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _last_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg gave no reason"


async def _ffmpeg_log(command: list[str], *, timeout: float) -> tuple[int, str]:
    """ffmpeg's exit status and log (standard error). Reading a file without writing one
    exits with 1 after printing what the file holds, which is all a probe needs."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, log = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise VideoUnreadable(f"ffmpeg took longer than {timeout:g} s") from None
    return process.returncode or 0, log.decode("utf-8", "replace")
