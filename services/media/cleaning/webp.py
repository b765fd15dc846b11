"""WebP: only the image, animation, alpha and colour-profile chunks are kept."""

from __future__ import annotations

import struct

from services.media.cleaning.kept import (
    CleaningFailed,
    Findings,
    KeptMetadata,
    exif_has_location,
    note_xmp,
)

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
            findings.location |= exif_has_location(body)
        elif kind == b"XMP ":
            note_xmp(body, findings)
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
