"""What an uploaded file really is and what it holds: the type from its first bytes, a
safe decode of images (pixel floods refused, GPS removed, capture time kept), thumbnail
renditions, and a poster frame for videos when ffmpeg is installed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

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

    @property
    def family(self) -> str:
        """MP4 and QuickTime are one container (ISO base media): cameras and browsers
        label them interchangeably, so a claim of either matches both."""
        return "isobmff" if self.kind is MediaKind.VIDEO else self.content_type


JPEG = MediaType("image/jpeg", MediaKind.PHOTO, (".jpg", ".jpeg", ".jpe"), "JPEG")
PNG = MediaType("image/png", MediaKind.PHOTO, (".png",), "PNG")
WEBP = MediaType("image/webp", MediaKind.PHOTO, (".webp",), "WEBP")
MP4 = MediaType("video/mp4", MediaKind.VIDEO, (".mp4", ".m4v"))
MOV = MediaType("video/quicktime", MediaKind.VIDEO, (".mov", ".qt"))
ACCEPTED: tuple[MediaType, ...] = (JPEG, PNG, WEBP, MP4, MOV)
_BY_CONTENT_TYPE = {t.content_type: t for t in ACCEPTED} | {
    "image/jpg": JPEG,
    "image/pjpeg": JPEG,
    "video/x-m4v": MP4,
}
_BY_EXTENSION = {ext: t for t in ACCEPTED for ext in t.extensions}
_GENERIC_CONTENT_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"mp71",
    b"avc1", b"M4V ", b"M4VH", b"M4VP", b"dash", b"mmp4", b"f4v ", b"3gp4", b"3gp5",
    b"3gp6", b"3g2a", b"MSNV", b"XAVC",
}  # fmt: skip
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
        if major == b"qt  ":
            return MOV
        if major in _MP4_BRANDS or compatible & _MP4_BRANDS:
            return MP4
        if b"qt  " in compatible:
            return MOV
        return None  # HEIF/AVIF stills and other ISO files are not accepted
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
    gps_removed: bool
    # the file to store: the upload itself, or its re-saved copy without location data
    stored_path: Path
    renditions: list[Rendition] = field(default_factory=list)


def configure_pillow(max_pixels: int) -> None:
    """Pillow's pixel-flood guard is process-wide: set its limit and make its warning
    (between the limit and twice the limit) an error like the one above twice."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def inspect_image(
    path: Path, media_type: MediaType, *, max_pixels: int, sizes: dict[str, int]
) -> InspectedImage:
    """Decode an image safely, strip location data, keep capture time, make renditions."""
    formats = [media_type.pillow_format] if media_type.pillow_format else None
    try:
        with Image.open(path, formats=formats) as image:
            return _inspect_open_image(image, path, media_type, max_pixels, sizes)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"image refused as a pixel flood: {exc}") from exc
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
    orientation = exif.get(ExifTags.Base.Orientation, 1)
    captured_at = _capture_time(exif)
    has_gps = ExifTags.IFD.GPSInfo in exif
    # XMP can carry the same coordinates, so it goes with them
    has_xmp = "xmp" in image.info or "XML:com.adobe.xmp" in image.info
    stored_path = path
    if has_gps or has_xmp:
        image.load()
        stored_path = path.with_name(path.name + ".clean")
        _save_without_location(image, exif, media_type, stored_path)
    elif media_type is JPEG:
        # decode at a reduced scale: enough for the largest rendition, far cheaper
        largest = max(sizes.values())
        image.draft("RGB", (largest, largest))
    image.load()
    renditions = make_renditions(image, orientation=orientation, sizes=sizes)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return InspectedImage(
        width=width,
        height=height,
        captured_at=captured_at,
        gps_removed=has_gps or has_xmp,
        stored_path=stored_path,
        renditions=renditions,
    )


def _save_without_location(
    image: Image.Image, exif: Image.Exif, media_type: MediaType, target: Path
) -> None:
    if ExifTags.IFD.GPSInfo in exif:
        del exif[ExifTags.IFD.GPSInfo]
    exif.get_ifd(ExifTags.IFD.Exif)  # loaded sub-IFDs are written back: capture time stays
    options: dict[str, object] = {"exif": exif}
    if icc := image.info.get("icc_profile"):
        options["icc_profile"] = icc
    if getattr(image, "is_animated", False):
        options["save_all"] = True
    if media_type is JPEG:
        options.update(quality="keep", subsampling="keep")
    elif media_type is WEBP:
        options.update(quality=90, method=4)
    image.save(target, format=media_type.pillow_format, **options)


def make_renditions(
    image: Image.Image, *, orientation: int = 1, sizes: dict[str, int]
) -> list[Rendition]:
    """JPEG renditions no larger than each size on the long side, upright."""
    frame = image.copy()
    if orientation != 1:
        frame.getexif()[ExifTags.Base.Orientation] = orientation
        frame = ImageOps.exif_transpose(frame)
    frame = _as_rgb(frame)
    renditions = []
    for name, px in sorted(sizes.items(), key=lambda item: -item[1]):
        frame.thumbnail((px, px), Image.Resampling.LANCZOS, reducing_gap=2.0)
        buffer = io.BytesIO()
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
@dataclass
class InspectedVideo:
    width: int | None = None
    height: int | None = None
    poster: PosterState = "unavailable"
    poster_frame: bytes | None = None


async def inspect_video(path: Path, *, timeout: float) -> InspectedVideo:
    """Dimensions and a poster frame via ffprobe/ffmpeg when installed; without them the
    video is stored all the same, marked as having no poster."""
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None:
        return InspectedVideo()
    video = InspectedVideo(poster="failed")
    # a frame one second in avoids the black first frame; shorter clips use their middle
    offset = 0.0
    if ffprobe is not None:
        probe = await _run(
            [ffprobe, "-v", "error", "-select_streams", "v:0",
             "-show_entries", "stream=width,height:format=duration", "-of", "json", str(path)],
            timeout=timeout,
        )  # fmt: skip
        try:
            found = json.loads(probe or b"{}")
            stream = found["streams"][0]
            video.width, video.height = int(stream["width"]), int(stream["height"])
        except (ValueError, KeyError, IndexError, TypeError):
            return video  # no readable video stream: no frame to take either
        with contextlib.suppress(ValueError, KeyError, TypeError):
            offset = min(1.0, float(found["format"]["duration"]) / 2)
    frame = await _run(
        [ffmpeg, "-v", "error", "-nostdin", "-ss", f"{offset:.3f}", "-i", str(path),
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


def poster_renditions(frame: bytes, *, sizes: dict[str, int]) -> list[Rendition]:
    """Thumbnail renditions of a video's poster frame."""
    try:
        with Image.open(io.BytesIO(frame), formats=["JPEG"]) as image:
            image.load()
            return make_renditions(image, sizes=sizes)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageRefused(f"the poster frame could not be decoded: {exc}") from exc
