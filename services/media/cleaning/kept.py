"""What a cleaned photo keeps (capture time and orientation), what the cleaning found, and
how location is recognised in EXIF, XMP and IPTC."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from PIL import ExifTags, Image


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
IPTC_LOCATION = re.compile(rb"\x1c\x02[\x5a\x5c\x5f\x64\x65]")


def exif_has_location(tiff_or_app1: bytes) -> bool:
    """An EXIF block with a GPS directory. One that cannot be read is counted as having
    one: it is removed either way, and the report errs towards saying so."""
    try:
        exif = Image.Exif()
        exif.load(tiff_or_app1)
        return ExifTags.IFD.GPSInfo in exif or bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
    except Exception:  # malformed EXIF raises almost anything from Pillow's parser
        return True


def note_xmp(packet: bytes, findings: Findings) -> None:
    findings.removed.add("xmp")
    if _XMP_LOCATION.search(packet):
        findings.location = True
