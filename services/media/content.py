"""What an uploaded file really is and what it holds: the type from its first bytes, a
safe decode of images (pixel floods refused), the stored original cleaned of location and
identity (``clean``), thumbnail renditions, and for videos a poster frame taken with the
ffmpeg that ships in the ``imageio-ffmpeg`` wheel."""

from __future__ import annotations

import asyncio
import io
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import imageio_ffmpeg
import pillow_heif
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from services.media import clean
from shared.events import MediaKind

BUREAU_ZONE = ZoneInfo("Asia/Shanghai")
SNIFF_BYTES = 256
PosterState = Literal["stored", "unavailable", "failed"]


@dataclass(frozen=True)
class MediaType:
    content_type: str
    kind: MediaKind
    extensions: tuple[str, ...]
    pillow_format: str | None = None
    # types one file may be labelled with interchangeably share a family
    same_as: str | None = None

    @property
    def family(self) -> str:
        """MP4 and QuickTime are one container (ISO base media), and HEIC a kind of HEIF:
        cameras and browsers label them interchangeably, so a claim of either matches
        both."""
        return self.same_as or self.content_type


JPEG = MediaType("image/jpeg", MediaKind.PHOTO, (".jpg", ".jpeg", ".jpe"), "JPEG")
PNG = MediaType("image/png", MediaKind.PHOTO, (".png",), "PNG")
WEBP = MediaType("image/webp", MediaKind.PHOTO, (".webp",), "WEBP")
# iPhones shoot HEIC by default; some Android phones AVIF. Decoded by pillow-heif and
# Pillow, stored as shot (cleaned), with a JPEG rendition for channels that cannot show them
HEIC = MediaType("image/heic", MediaKind.PHOTO, (".heic",), "HEIF", same_as="heif")
HEIF = MediaType("image/heif", MediaKind.PHOTO, (".heif", ".hif"), "HEIF", same_as="heif")
AVIF = MediaType("image/avif", MediaKind.PHOTO, (".avif",), "AVIF")
MP4 = MediaType("video/mp4", MediaKind.VIDEO, (".mp4", ".m4v"), same_as="isobmff")
MOV = MediaType("video/quicktime", MediaKind.VIDEO, (".mov", ".qt"), same_as="isobmff")
ACCEPTED: tuple[MediaType, ...] = (JPEG, PNG, WEBP, HEIC, HEIF, AVIF, MP4, MOV)
# formats that most channels (and older browsers) cannot show: they get a JPEG rendition
NEEDS_JPEG = (HEIC, HEIF, AVIF)
_BY_CONTENT_TYPE = {t.content_type: t for t in ACCEPTED} | {
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "image/heic-sequence": HEIC,
    "image/heif-sequence": HEIF,
    "video/x-m4v": MP4,
}
_BY_EXTENSION = {ext: t for t in ACCEPTED for ext in t.extensions}
_GENERIC_CONTENT_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"mp71",
    b"avc1", b"M4V ", b"M4VH", b"M4VP", b"dash", b"mmp4", b"f4v ", b"3gp4", b"3gp5",
    b"3gp6", b"3g2a", b"MSNV", b"XAVC",
}  # fmt: skip
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"}
_AVIF_BRANDS = {b"avif", b"avis"}
# QuickTime files from before the ftyp box start with one of these atoms
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}


class WrongType(Exception):
    """The file is not an accepted type, or not the type it claims to be."""


def accepted_list() -> str:
    return ", ".join(f"{t.content_type} ({'/'.join(t.extensions)})" for t in ACCEPTED)


def claimed_type(content_type: str | None, filename: str | None) -> MediaType:
    """The type the client says the file has, from its content type and file name."""
    declared = (content_type or "").split(";")[0].strip().lower()
    by_header: MediaType | None = None
    if declared not in _GENERIC_CONTENT_TYPES:
        by_header = _BY_CONTENT_TYPE.get(declared)
        if by_header is None:
            raise WrongType(
                f"content type {declared!r} is not accepted; accepted: {accepted_list()}"
            )
    suffix = Path(filename or "").suffix.lower()
    by_name: MediaType | None = None
    if suffix:
        by_name = _BY_EXTENSION.get(suffix)
        if by_name is None:
            raise WrongType(
                f"file extension {suffix!r} is not accepted; accepted: {accepted_list()}"
            )
    if by_header and by_name and by_header.family != by_name.family:
        raise WrongType(
            f"the file name says {by_name.content_type} but the content type says "
            f"{by_header.content_type}"
        )
    claimed = by_header or by_name
    if claimed is None:
        raise WrongType("say what the file is: a content type or a file name extension")
    return claimed


def sniff_type(head: bytes) -> MediaType | None:
    """The real type from the file's first bytes (magic numbers), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    box = head[4:8]
    if box == b"ftyp":
        size = int.from_bytes(head[:4], "big")
        major = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        brands = {major} | compatible
        if major in _AVIF_BRANDS or (major in (b"mif1", b"msf1") and brands & _AVIF_BRANDS):
            return AVIF
        if major in _HEIC_BRANDS or (major in (b"mif1", b"msf1") and brands & _HEIC_BRANDS):
            return HEIC
        if major in (b"mif1", b"msf1"):
            return HEIF
        if major == b"qt  ":
            return MOV
        if major in _MP4_BRANDS or compatible & _MP4_BRANDS:
            return MP4
        if b"qt  " in compatible:
            return MOV
        return None  # other ISO files (audio, JPEG 2000, …) are not accepted
    if box in _QUICKTIME_ATOMS:
        return MOV
    return None


def confirm_type(head: bytes, claimed: MediaType) -> MediaType:
    """The sniffed type when it matches the claim; :class:`WrongType` otherwise."""
    real = sniff_type(head)
    if real is None:
        raise WrongType(
            f"the file's bytes are not any accepted type (it claims {claimed.content_type}); "
            f"accepted: {accepted_list()}"
        )
    if real.family != claimed.family:
        raise WrongType(
            f"the file's bytes are {real.content_type}, not {claimed.content_type} as claimed"
        )
    return real


# ---- images -------------------------------------------------------------------------
class ImageRefused(Exception):
    """The image is a pixel flood or cannot be decoded: refused, never half-processed."""


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


# how each format is cleaned (``clean``): its containers rewritten, the image untouched
_CLEANERS = {
    JPEG: clean.clean_jpeg,
    PNG: clean.clean_png,
    WEBP: clean.clean_webp,
    HEIC: clean.clean_heif,
    HEIF: clean.clean_heif,
    AVIF: clean.clean_heif,
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
        raise ImageRefused(f"image refused as a pixel flood: {exc}") from exc
    except clean.CleaningFailed as exc:
        raise ImageRefused(f"the image could not be decoded: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRefused(f"the image could not be decoded: {exc}") from exc


def _inspect_open_image(
    image: Image.Image, path: Path, media_type: MediaType, max_pixels: int, sizes: dict[str, int]
) -> InspectedImage:
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRefused(
            f"image refused as a pixel flood: {width}x{height} is more than {max_pixels:,} pixels"
        )
    exif = image.getexif()
    # pillow-heif has turned HEIC pixels upright already and says orientation 1; Pillow
    # reports AVIF's rotation as an EXIF orientation, like a JPEG's
    orientation = exif.get(ExifTags.Base.Orientation, 1)
    captured_at = _capture_time(exif)
    cleaned, findings = _CLEANERS[media_type](path.read_bytes(), clean.KeptMetadata.from_exif(exif))
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


# ---- videos -------------------------------------------------------------------------
class VideoRefused(Exception):
    """The video cannot be read, so it cannot be cleaned: refused, never stored as sent."""


@dataclass
class InspectedVideo:
    stored_path: Path
    captured_at: datetime | None
    gps_removed: bool
    metadata_removed: bool
    width: int | None = None
    height: int | None = None
    poster: PosterState = "failed"
    poster_frame: bytes | None = None


def ffmpeg_executable() -> str:
    """The ffmpeg inside the imageio-ffmpeg wheel (or the one ``IMAGEIO_FFMPEG_EXE``
    names), so a fresh machine can clean videos without a system package."""
    return imageio_ffmpeg.get_ffmpeg_exe()


async def inspect_video(
    path: Path, media_type: MediaType, *, ffmpeg: str, timeout: float
) -> InspectedVideo:
    """Re-mux the video without metadata beside the upload, then take a poster frame from
    the cleaned file; the dimensions are the frame's, upright as players show it."""
    container = "mov" if media_type is MOV else "mp4"
    try:
        cleaned = await clean.clean_video(
            path, path.with_name(path.name + ".clean"),
            container=container, ffmpeg=ffmpeg, timeout=timeout,
        )  # fmt: skip
    except clean.VideoUnreadable as exc:
        raise VideoRefused(
            f"the video could not be read, so its metadata cannot be removed: {exc}"
        ) from exc
    video = InspectedVideo(
        stored_path=cleaned.path,
        captured_at=cleaned.captured_at,
        gps_removed=cleaned.findings.location,
        metadata_removed=cleaned.findings.metadata_removed,
    )
    # a frame one second in avoids the black first frame; shorter clips use their middle
    offset = min(1.0, cleaned.duration / 2) if cleaned.duration else 0.0
    frame = await _run(
        [ffmpeg, "-v", "error", "-nostdin", "-ss", f"{offset:.3f}", "-i", str(cleaned.path),
         "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "pipe:1"],
        timeout=timeout,
    )  # fmt: skip
    if frame:
        video.poster, video.poster_frame = "stored", frame
    return video


async def _run(command: list[str], *, timeout: float) -> bytes | None:
    """A tool's standard output, or None when it fails or takes too long."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        return None
    return output if process.returncode == 0 else None


def poster_renditions(frame: bytes, *, sizes: dict[str, int]) -> tuple[list[Rendition], int, int]:
    """Thumbnail renditions of a video's poster frame, and the frame's size."""
    try:
        with Image.open(io.BytesIO(frame), formats=["JPEG"]) as image:
            image.load()
            return make_renditions(image, sizes=sizes), image.width, image.height
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageRefused(f"the poster frame could not be decoded: {exc}") from exc
