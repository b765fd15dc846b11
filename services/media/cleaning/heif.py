"""HEIF (HEIC) and AVIF: the EXIF and XMP items are blanked in place."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from PIL import Image

from services.media.cleaning.kept import (
    CleaningFailed,
    Findings,
    KeptMetadata,
    exif_has_location,
    note_xmp,
)

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
            findings.location |= exif_has_location(original[4 + tiff_offset :])
            fresh = b"\x00\x00\x00\x00" + (exif_tiff or Image.Exif().tobytes()[6:])
            fill = b"\x00"
        else:
            note_xmp(original, findings)
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
