"""PNG: only the chunks that draw the picture are kept."""

from __future__ import annotations

import struct
import zlib

from services.media.cleaning.kept import (
    CleaningFailed,
    Findings,
    KeptMetadata,
    exif_has_location,
    note_xmp,
)

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
            findings.location |= exif_has_location(body)
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            if body.startswith(b"XML:com.adobe.xmp\x00"):
                note_xmp(body, findings)
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
