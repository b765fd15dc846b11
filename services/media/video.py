"""Videos: re-muxed by ffmpeg without any metadata, losslessly (the streams copied as
they are), the result read again and refused if anything is left; then a poster frame
taken from the cleaned file. A video ffmpeg cannot read is refused, never stored as sent."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from services.media import ffmpeg, refusals
from services.media.cleaning import Findings
from services.media.filetypes import MOV, MediaType

# all a cleaned file may still say about itself (ffmpeg writes the first three from the
# file type; handler names are reset to ffmpeg's own)
_VIDEO_KEPT_GLOBAL = {"major_brand", "minor_version", "compatible_brands", "creation_time"}
_VIDEO_KEPT_STREAM = {"creation_time", "handler_name", "vendor_id", "language"}
_VIDEO_LOCATION = re.compile(r"location|iso6709|gps", re.IGNORECASE)
_OTHER_STREAMS = re.compile(r"^\s+Stream #0:\d+\S*: (Data|Subtitle|Attachment):", re.MULTILINE)
_DURATION = re.compile(r"^\s+Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", re.MULTILINE)


class VideoUnreadable(Exception):
    """ffmpeg could not read the video, so its metadata cannot be removed."""


@dataclass
class VideoDump:
    """What ffmpeg says about its input (the first file it opened)."""

    metadata: dict[str, str] = field(default_factory=dict)
    stream_metadata: list[dict[str, str]] = field(default_factory=list)
    duration: float | None = None

    def leftovers(self) -> list[str]:
        """Metadata a cleaned file must not have."""
        left = [k for k in self.metadata if k not in _VIDEO_KEPT_GLOBAL]
        for index, values in enumerate(self.stream_metadata):
            left += [f"stream {index}: {k}" for k in values if k not in _VIDEO_KEPT_STREAM]
        return left


def parse_dump(log: str) -> VideoDump:
    """The metadata and duration of ``Input #0`` from ffmpeg's log (its stable layout:
    two spaces before ``Metadata:`` of the file, four before those of a stream)."""
    dump = VideoDump()
    target: dict[str, str] | None = None
    depth = 0
    inside = False
    for line in log.splitlines():
        if line.startswith("Input #0"):
            inside = True
            continue
        if not inside:
            continue
        if line.startswith(("Input #", "Output #", "Stream mapping")):
            break
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()
        if text == "Metadata:":
            if indent == 2:
                target = dump.metadata
            else:
                dump.stream_metadata.append({})
                target = dump.stream_metadata[-1]
            depth = indent + 2
            continue
        if target is not None and indent == depth and ":" in text:
            key, _, value = text.partition(":")
            key = key.strip()
            if key:
                target[key] = value.strip()
            continue
        if target is not None and indent > depth:
            continue  # a continuation line of a long value
        target = None
    if found := _DURATION.search(log):
        hours, minutes, seconds = found.groups()
        dump.duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return dump


@dataclass
class InspectedVideo:
    stored_path: Path
    captured_at: datetime | None
    gps_removed: bool
    metadata_removed: bool
    duration: float | None = None
    poster_frame: bytes | None = None


async def inspect_video(
    path: Path, media_type: MediaType, *, executable: str, timeout: float
) -> InspectedVideo:
    """Re-mux the video without metadata beside the upload, then take a poster frame from
    the cleaned file (None when none can be read). Refuses (422) a video that cannot be
    read and so cannot be cleaned."""
    target = path.with_name(path.name + ".clean")
    container = "mov" if media_type is MOV else "mp4"
    try:
        video = await clean_video(
            path, target, container=container, executable=executable, timeout=timeout
        )
    except (VideoUnreadable, ffmpeg.FfmpegTimeout) as exc:
        raise refusals.video_unreadable(str(exc)) from exc
    video.poster_frame = await poster_frame(
        target, duration=video.duration, executable=executable, timeout=timeout
    )
    return video


async def clean_video(
    source: Path, target: Path, *, container: str, executable: str, timeout: float
) -> InspectedVideo:
    """Re-mux the video into ``target`` without metadata: file and stream tags (location,
    make, model, owner, software), chapters, data and subtitle tracks (phones keep timed
    location there) and cover art go; video and audio streams are copied untouched, the
    display rotation with them. The capture time is written back. Then the result is
    read again, and a file with anything left is refused."""
    before = await _probe(source, executable=executable, timeout=timeout)
    if "Stream #0:" not in before:
        raise VideoUnreadable(ffmpeg.last_line(before))
    dump = parse_dump(before)
    findings = Findings()
    tags = list(dump.metadata) + [k for values in dump.stream_metadata for k in values]
    findings.location = any(_VIDEO_LOCATION.search(k) for k in tags)
    if dump.leftovers():
        findings.removed.add("tags")
    if _OTHER_STREAMS.search(before):
        findings.removed.add("data tracks")
    captured_at = _video_time(dump.metadata.get("creation_time"))
    command = [
        executable, "-hide_banner", "-nostdin", "-y", "-i", str(source),
        "-map", "0:V?", "-map", "0:a?", "-c", "copy",
        "-map_metadata", "-1", "-map_metadata:s", "-1", "-map_chapters", "-1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart",
    ]  # fmt: skip
    if captured_at is not None:
        command += ["-metadata", f"creation_time={captured_at:%Y-%m-%dT%H:%M:%S.%fZ}"]
    remux = await ffmpeg.run([*command, "-f", container, str(target)], timeout=timeout)
    if remux.status != 0:
        raise VideoUnreadable(ffmpeg.last_line(remux.log))
    after = await _probe(target, executable=executable, timeout=timeout)
    if left := parse_dump(after).leftovers():
        raise VideoUnreadable(f"metadata left after cleaning: {', '.join(left)}")
    return InspectedVideo(
        stored_path=target,
        captured_at=captured_at,
        gps_removed=findings.location,
        metadata_removed=findings.metadata_removed,
        duration=dump.duration,
    )


async def _probe(path: Path, *, executable: str, timeout: float) -> str:
    """What ffmpeg says about a file it is asked only to read."""
    run = await ffmpeg.run(
        [executable, "-hide_banner", "-nostdin", "-i", str(path)], timeout=timeout
    )
    return run.log


async def poster_frame(
    path: Path, *, duration: float | None, executable: str, timeout: float
) -> bytes | None:
    """One frame as a JPEG, or None when none can be read in time. A frame one second in
    avoids the black first frame; shorter clips give their middle."""
    offset = min(1.0, duration / 2) if duration else 0.0
    command = [
        executable, "-v", "error", "-nostdin", "-ss", f"{offset:.3f}", "-i", str(path),
        "-frames:v", "1", "-f", "image2", "-c:v", "mjpeg", "pipe:1",
    ]  # fmt: skip
    try:
        run = await ffmpeg.run(command, timeout=timeout)
    except ffmpeg.FfmpegTimeout:
        return None
    return run.output if run.status == 0 and run.output else None


def _video_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    text = raw.split(";")[0].strip().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.year < 1971:  # an unset QuickTime time reads as 1904 or 1970
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
