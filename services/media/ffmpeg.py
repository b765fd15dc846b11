"""The one way media runs ffmpeg: the binary from the ``imageio-ffmpeg`` wheel (so a fresh
machine cleans videos and takes poster frames without a system package), each run bounded
by a timeout and killed when it overruns."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import imageio_ffmpeg


class FfmpegTimeout(Exception):
    """ffmpeg ran longer than it was given; the process has been killed."""


@dataclass(frozen=True)
class FfmpegRun:
    status: int
    output: bytes  # standard output: what a ``pipe:1`` target wrote
    log: str  # standard error: what ffmpeg says about its inputs and outputs


def executable() -> str:
    """The ffmpeg inside the imageio-ffmpeg wheel, or the one ``IMAGEIO_FFMPEG_EXE``
    names."""
    return imageio_ffmpeg.get_ffmpeg_exe()


async def run(command: list[str], *, timeout: float) -> FfmpegRun:
    """Run ffmpeg (``command[0]``) to the end. Reading a file without writing one exits
    with 1 after printing what the file holds, which is all a probe needs, so the status
    is returned rather than raised."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        output, log = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise FfmpegTimeout(f"ffmpeg took longer than {timeout:g} s") from None
    return FfmpegRun(process.returncode or 0, output, log.decode("utf-8", "replace"))


def last_line(log: str) -> str:
    """ffmpeg's reason for failing: the last line it printed."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg gave no reason"
