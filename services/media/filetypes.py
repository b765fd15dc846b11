"""What an uploaded file really is: the type the client claims (content type, file name)
and the type its first bytes show, which must agree before the rest of it is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from services.media import refusals
from shared.events import MediaKind

SNIFF_BYTES = 256


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


def accepted_list() -> str:
    return ", ".join(f"{t.content_type} ({'/'.join(t.extensions)})" for t in ACCEPTED)


def claimed_type(content_type: str | None, filename: str | None) -> MediaType:
    """The type the client says the file has, from its content type and file name."""
    declared = (content_type or "").split(";")[0].strip().lower()
    by_header: MediaType | None = None
    if declared not in _GENERIC_CONTENT_TYPES:
        by_header = _BY_CONTENT_TYPE.get(declared)
        if by_header is None:
            raise refusals.type_not_accepted(
                f"content type {declared!r} is not accepted; accepted: {accepted_list()}"
            )
    suffix = Path(filename or "").suffix.lower()
    by_name: MediaType | None = None
    if suffix:
        by_name = _BY_EXTENSION.get(suffix)
        if by_name is None:
            raise refusals.type_not_accepted(
                f"file extension {suffix!r} is not accepted; accepted: {accepted_list()}"
            )
    if by_header and by_name and by_header.family != by_name.family:
        raise refusals.type_mismatch(
            f"the file name says {by_name.content_type} but the content type says "
            f"{by_header.content_type}"
        )
    claimed = by_header or by_name
    if claimed is None:
        raise refusals.type_unstated()
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
    """The sniffed type when it matches the claim; a 415 refusal otherwise."""
    real = sniff_type(head)
    if real is None:
        raise refusals.type_mismatch(
            f"the file's bytes are not any accepted type (it claims {claimed.content_type}); "
            f"accepted: {accepted_list()}",
            kind=claimed.kind.value,
        )
    if real.family != claimed.family:
        raise refusals.type_mismatch(
            f"the file's bytes are {real.content_type}, not {claimed.content_type} as claimed",
            kind=claimed.kind.value,
        )
    return real
