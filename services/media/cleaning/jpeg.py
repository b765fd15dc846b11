"""JPEG: every APP segment but JFIF, ICC and Adobe's colour transform goes; the coded image
is copied byte for byte."""

from __future__ import annotations

import struct

from services.media.cleaning.kept import (
    IPTC_LOCATION,
    CleaningFailed,
    Findings,
    KeptMetadata,
    exif_has_location,
    note_xmp,
)

# markers of the segments the cleaner tells apart
_EOI, _SOS, _COM = 0xD9, 0xDA, 0xFE
_APP0, _APP1, _APP2, _APP13, _APP14 = 0xE0, 0xE1, 0xE2, 0xED, 0xEE
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
        findings.location |= exif_has_location(payload)
    elif marker == _APP1 and (b"adobe:ns:meta" in payload[:128] or b"ns.adobe.com" in payload[:64]):
        note_xmp(payload, findings)
    elif marker == _APP13:
        findings.removed.add("iptc")
        findings.location |= bool(IPTC_LOCATION.search(payload))
    elif marker == _COM:
        findings.removed.add("comment")
    else:
        findings.removed.add("maker data")  # MPF, maker notes, FlashPix, Ducky, …
