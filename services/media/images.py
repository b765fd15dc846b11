"""Photos: a safe decode (pixel floods refused), the stored original cleaned of location
and identity (``cleaning``), the capture time read in its recorded offset, and JPEG
renditions turned upright (thumbnails, and a full-size JPEG of a HEIC or AVIF photo).
Poster frames of videos get their thumbnails here too."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pillow_heif
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from services.media import cleaning, refusals
from services.media.filetypes import AVIF, HEIC, HEIF, JPEG, NEEDS_JPEG, PNG, WEBP, MediaType
from shared.clock import BUREAU_ZONE


@dataclass(frozen=True)
class Rendition:
    name: str
    data: bytes
    width: int
    height: int


@dataclass
class InspectedImage:
    width: int
    height: int
    captured_at: datetime | None
    # location data was found (in any EXIF block, XMP or IPTC) and is not in the stored file
    gps_removed: bool
    # any metadata besides the capture time and orientation was found and removed
    metadata_removed: bool
    # the file to store: the upload rewritten without its metadata
    stored_path: Path
    renditions: list[Rendition] = field(default_factory=list)


# the upload's bytes and what to keep -> the cleaned bytes and what was found
Cleaner = Callable[[bytes, cleaning.KeptMetadata], tuple[bytes, cleaning.Findings]]
# how each format is cleaned: its containers rewritten, the image untouched
_CLEANERS: dict[MediaType, Cleaner] = {
    JPEG: cleaning.clean_jpeg,
    PNG: cleaning.clean_png,
    WEBP: cleaning.clean_webp,
    HEIC: cleaning.clean_heif,
    HEIF: cleaning.clean_heif,
    AVIF: cleaning.clean_heif,
}
JPEG_RENDITION = "jpeg"


def configure_pillow(max_pixels: int) -> None:
    """Pillow's pixel-flood guard is process-wide: set its limit and make its warning
    (between the limit and twice the limit) an error like the one above twice. HEIC/HEIF
    decoding comes from pillow-heif (Pillow reads AVIF itself)."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    pillow_heif.register_heif_opener(thumbnails=False)


def inspect_image(
    path: Path, media_type: MediaType, *, max_pixels: int, sizes: dict[str, int]
) -> InspectedImage:
    """Decode an image safely, write it without metadata beside the upload (keeping the
    capture time and orientation), and make renditions."""
    formats = [media_type.pillow_format] if media_type.pillow_format else None
    try:
        with Image.open(path, formats=formats) as image:
            return _inspect_open_image(image, path, media_type, max_pixels, sizes)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise refusals.pixel_flood(str(exc)) from exc
    except cleaning.CleaningFailed as exc:
        raise refusals.image_undecodable(str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise refusals.image_undecodable(str(exc)) from exc


def _inspect_open_image(
    image: Image.Image, path: Path, media_type: MediaType, max_pixels: int, sizes: dict[str, int]
) -> InspectedImage:
    width, height = image.size
    if width * height > max_pixels:
        raise refusals.pixel_flood(f"{width}x{height} is more than {max_pixels:,} pixels")
    exif = image.getexif()
    # pillow-heif has turned HEIC pixels upright already and says orientation 1; Pillow
    # reports AVIF's rotation as an EXIF orientation, like a JPEG's
    orientation = exif.get(ExifTags.Base.Orientation, 1)
    captured_at = _capture_time(exif)
    cleaned, findings = _CLEANERS[media_type](
        path.read_bytes(), cleaning.KeptMetadata.from_exif(exif)
    )
    stored_path = path.with_name(path.name + ".clean")
    stored_path.write_bytes(cleaned)
    if media_type is JPEG:
        # decode at a reduced scale: enough for the largest rendition, far cheaper
        largest = max(sizes.values())
        image.draft("RGB", (largest, largest))
    image.load()
    if media_type in NEEDS_JPEG:
        sizes = sizes | {JPEG_RENDITION: max(width, height)}
    renditions = make_renditions(image, orientation=orientation, sizes=sizes)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return InspectedImage(
        width=width,
        height=height,
        captured_at=captured_at,
        gps_removed=findings.location,
        metadata_removed=findings.metadata_removed,
        stored_path=stored_path,
        renditions=renditions,
    )


def make_renditions(
    image: Image.Image, *, orientation: int = 1, sizes: dict[str, int]
) -> list[Rendition]:
    """JPEG renditions no larger than each size on the long side, upright; the full-size
    JPEG of a HEIC or AVIF photo is kept at a higher quality than the thumbnails."""
    frame = image.copy()
    if orientation != 1:
        frame.getexif()[ExifTags.Base.Orientation] = orientation
        frame = ImageOps.exif_transpose(frame)
    frame = _as_rgb(frame)
    renditions = []
    for name, px in sorted(sizes.items(), key=lambda item: -item[1]):
        frame.thumbnail((px, px), Image.Resampling.LANCZOS, reducing_gap=2.0)
        buffer = io.BytesIO()
        if name == JPEG_RENDITION:  # full size: optimising its Huffman tables costs a pass
            frame.save(buffer, "JPEG", quality=90)
        else:
            frame.save(buffer, "JPEG", quality=82, optimize=True)
        renditions.append(Rendition(name, buffer.getvalue(), frame.width, frame.height))
    return renditions


def _as_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _capture_time(exif: Image.Exif) -> datetime | None:
    """DateTimeOriginal in UTC, read in its recorded offset or else the bureau's zone."""
    details = exif.get_ifd(ExifTags.IFD.Exif)
    raw = details.get(ExifTags.Base.DateTimeOriginal)
    if not isinstance(raw, str):
        return None
    try:
        local = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = _offset_zone(details.get(ExifTags.Base.OffsetTimeOriginal)) or BUREAU_ZONE
    return local.replace(tzinfo=zone).astimezone(UTC)


def _offset_zone(raw: object) -> timezone | None:
    if not isinstance(raw, str) or len(raw.strip("\x00 ")) != 6:
        return None
    text = raw.strip("\x00 ")
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def poster_renditions(frame: bytes, *, sizes: dict[str, int]) -> PosterRenditions | None:
    """Thumbnail renditions of a video's poster frame and the frame's size, or None when
    the frame cannot be decoded."""
    try:
        with Image.open(io.BytesIO(frame), formats=["JPEG"]) as image:
            image.load()
            renditions = make_renditions(image, sizes=sizes)
            return PosterRenditions(renditions, image.width, image.height)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class PosterRenditions:
    renditions: list[Rendition]
    width: int
    height: int
