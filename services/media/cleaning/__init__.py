"""Stored originals carry no location and no identity: most photos show pupils, who are
minors. JPEG, PNG and WebP files are rewritten container by container, keeping only the
parts needed to show the picture (an allow-list, so metadata of a kind nobody foresaw goes
too) and losslessly, the coded image untouched; a fresh EXIF block then holds only the
capture time and the orientation (videos are cleaned by ffmpeg: ``services.media.video``).

Pillow can re-save a photo without its EXIF, but only by encoding it again (a loss at every
upload), and the metadata libraries that edit in place are unmaintained (piexif) or bring
a GPL C++ library (exiv2); the container formats themselves are short and fixed, so the
rewriting is done here, over bytes."""

from services.media.cleaning.heif import clean_heif
from services.media.cleaning.jpeg import clean_jpeg
from services.media.cleaning.kept import CleaningFailed, Findings, KeptMetadata
from services.media.cleaning.png import clean_png
from services.media.cleaning.webp import clean_webp

__all__ = [
    "CleaningFailed",
    "Findings",
    "KeptMetadata",
    "clean_heif",
    "clean_jpeg",
    "clean_png",
    "clean_webp",
]
