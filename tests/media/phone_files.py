"""Files as phones and cameras make them, for the media tests: unique pixels (so no two
uploads dedupe), photos of every accepted type carrying location and identity (EXIF with
owner and serials, GPS in a second EXIF segment, XMP with a place and an author, IPTC with
a city and a byline), and files that are not what they claim."""

from __future__ import annotations

import io
import os
import struct
import uuid
import zlib
from typing import Any

from PIL import ExifTags, Image, PngImagePlugin


def pixels(size: tuple[int, int]) -> Image.Image:
    """A real image with unique pixels, so no two uploads dedupe."""
    seed = uuid.uuid4().bytes
    return Image.frombytes("RGB", (16, 16), (seed * 48)[: 16 * 16 * 3]).resize(size)


def photo(
    fmt: str = "JPEG", *, size: tuple[int, int] = (800, 600), exif: Image.Exif | None = None
) -> bytes:
    """A photo file of unique pixels."""
    image = pixels(size)
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


def identifying_exif() -> tuple[Image.Exif, bytes]:
    """A camera's EXIF with owner, serials and capture time, and a second EXIF segment
    holding only GPS (readers that stop at the first segment never see it)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SchoolCam"
    exif[ExifTags.Base.Model] = "SC-100"
    exif[ExifTags.Base.Artist] = "王老师"
    exif[ExifTags.Base.Copyright] = "东湖实验小学 王老师"
    exif[ExifTags.Base.ImageDescription] = "三年级二班 李小明"
    exif[ExifTags.Base.Orientation] = 6
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.DateTimeOriginal] = "2026:03:01 09:30:00"
    details[ExifTags.Base.OffsetTimeOriginal] = "+08:00"
    details[ExifTags.Base.BodySerialNumber] = "BODY-SN-4711"
    details[ExifTags.Base.LensSerialNumber] = "LENS-SN-0815"
    details[ExifTags.Base.CameraOwnerName] = "Wang Fang"
    details[ExifTags.Base.UserComment] = b"ASCII\x00\x00\x00pupil Li Xiaoming"
    details[ExifTags.Base.MakerNote] = b"Nikon\x00SERIAL-MAKER-99"
    second = Image.Exif()
    gps = second.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (30.0, 35.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef], gps[ExifTags.GPS.GPSLongitude] = "E", (114.0, 17.0, 5.0)
    app1 = second.tobytes()
    return exif, b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1


XMP_WITH_PLACE = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" exif:GPSLatitude="30,35.2N" '
    'exif:GPSLongitude="114,17.08E" photoshop:City="江城市" dc:creator="王老师"/>'
    "</rdf:RDF></x:xmpmeta>"
)
IDENTIFYING = [
    b"SchoolCam", b"SC-100", b"BODY-SN", b"LENS-SN", b"Wang Fang", b"Li Xiaoming",
    b"SERIAL-MAKER", "王老师".encode(), "李小明".encode(), "江城市".encode(),
    b"photoshop", b"Photoshop 3.0", b"8BIM",
]  # fmt: skip


def assert_nothing_identifying(data: bytes) -> None:
    leaked = [marker for marker in IDENTIFYING if marker in data]
    assert leaked == [], f"stored file still holds {leaked}"


def segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment."""
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def phone_jpeg(size: tuple[int, int]) -> tuple[bytes, Image.Image]:
    """A JPEG with owner and serial tags and orientation 6; after its EXIF segment a second
    one with only GPS, XMP with a place, IPTC with a city and a byline, a comment; and a
    phone's trailer after the end of the image. Also the image as first saved."""
    exif, gps_segment = identifying_exif()
    image = pixels(size)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    data = buffer.getvalue()
    datasets = (
        b"\x1c\x02\x5a\x00\x09" + "江城市".encode() + b"\x1c\x02\x50\x00\x09" + "王老师".encode()
    )
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", len(datasets)) + datasets
    xmp = b"http://ns.adobe.com/xap/1.0/\x00" + XMP_WITH_PLACE.encode()
    extra = gps_segment + segment(0xE1, xmp) + segment(0xED, iptc) + segment(0xFE, b"Li Xiaoming")
    first = data.index(b"\xff\xe1")
    first_end = first + 2 + struct.unpack_from(">H", data, first + 2)[0]
    phone = data[:first_end] + extra + data[first_end:] + b"SEFHGPS+30.58"
    return phone, Image.open(io.BytesIO(data))


def exif_blocks(image: Image.Image) -> list[Image.Exif]:
    """Every EXIF segment of a JPEG, not only the first that Pillow reads."""
    blocks = []
    for marker, payload in getattr(image, "applist", []):
        if marker == "APP1" and payload.startswith(b"Exif\x00"):
            block = Image.Exif()
            block.load(payload)
            blocks.append(block)
    return blocks


def phone_png(size: tuple[int, int]) -> tuple[bytes, Image.Image]:
    """A PNG with EXIF (owner, serials, capture time), XMP with a place and an author."""
    exif, _ = identifying_exif()
    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", XMP_WITH_PLACE)
    text.add_text("Author", "王老师")
    image = pixels(size)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=text, exif=exif)
    return buffer.getvalue(), image


def heif_photo(fmt: str, *, size: tuple[int, int] = (640, 480), turned: bool = False) -> bytes:
    """A phone's HEIC or AVIF with EXIF (GPS, owner) and XMP with a place; ``turned``: held
    upright, as a phone says with the container's rotation (``irot``)."""
    exif, _ = identifying_exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    if not turned:
        del exif[ExifTags.Base.Orientation]
    image = pixels(size)
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif.tobytes(), xmp=XMP_WITH_PLACE.encode(), quality=80)
    return buffer.getvalue()
