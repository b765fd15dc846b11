"""Reading a multipart upload as it arrives: form fields kept in memory (they are small),
the file spooled to a temporary file with a running sha256, and the size limit checked on
every chunk so that an oversized upload is refused the moment it passes the limit.

At most one buffer (about 1 MiB) of the file is held in memory; writing and hashing it run
in a worker thread, off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.media import refusals
from services.media.filetypes import SNIFF_BYTES, MediaType, confirm_type

FLUSH_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 4096
MAX_HEADER_BYTES = 4096


@dataclass(frozen=True)
class FileAdmission:
    """What the caller decided when the file part began: its claimed type and limit."""

    claimed: MediaType
    max_bytes: int


# called with the file part's name, its content type and the fields read so far
AdmitFile = Callable[[str | None, str | None, dict[str, str]], FileAdmission]


@dataclass
class SpooledFile:
    path: Path
    filename: str | None
    content_type: str | None
    claimed: MediaType
    real: MediaType
    size: int
    sha256: str


@dataclass
class UploadForm:
    fields: dict[str, str]
    file: SpooledFile

    def discard(self) -> None:
        """Remove the spooled file (and anything written beside it)."""
        for path in self.file.path.parent.glob(self.file.path.name + "*"):
            with contextlib.suppress(OSError):
                path.unlink()


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    data: bytearray = field(default_factory=bytearray)
    is_file: bool = False


class _Spooler:
    def __init__(self, *, file_field: str, admit: AdmitFile, spool_dir: str | None) -> None:
        self.file_field = file_field
        self.admit = admit
        self.spool_dir = spool_dir
        self.fields: dict[str, str] = {}
        self.part = _Part()
        self.header_name = b""
        self.header_value = b""
        self.sink: BinaryIO | None = None
        self.path: Path | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.admission: FileAdmission | None = None
        self.real: MediaType | None = None
        self.hasher = hashlib.sha256()
        self.size = 0
        self.head = b""
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.file_done = False

    # ---- parser callbacks (synchronous: they only count, check and buffer) ----------
    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]
        if len(self.header_value) > MAX_HEADER_BYTES:
            raise refusals.bad_form("a multipart header is too long")

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.lower()] = self.header_value
        self.header_name, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise refusals.bad_form("every form part needs a name in its Content-Disposition")
        self.part.name = name.decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if self.part.name != self.file_field:
            raise refusals.bad_form(f"unexpected file field {self.part.name!r}; send it as 'file'")
        if self.admission is not None:
            raise refusals.bad_form("send one file per upload")
        self.part.is_file = True
        self.filename = options[b"filename"].decode("utf-8", "replace") or None
        raw_type = self.part.headers.get(b"content-type")
        self.content_type = raw_type.decode("latin-1") if raw_type else None
        self.admission = self.admit(self.filename, self.content_type, dict(self.fields))
        handle, name_on_disk = tempfile.mkstemp(prefix="upload-", dir=self.spool_dir)
        self.path = Path(name_on_disk)
        self.sink = os.fdopen(handle, "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if not self.part.is_file:
            if len(self.part.data) + len(chunk) > MAX_FIELD_BYTES:
                raise refusals.bad_form(f"form field {self.part.name!r} is too long")
            self.part.data.extend(chunk)
            return
        assert self.admission is not None
        self.size += len(chunk)
        if self.size > self.admission.max_bytes:
            kind = self.admission.claimed.kind.value
            raise refusals.too_large(self.admission.max_bytes, kind)
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
            if len(self.head) == SNIFF_BYTES:
                self._confirm_type()
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)

    def on_part_end(self) -> None:
        if self.part.is_file:
            if self.size == 0:
                assert self.admission is not None  # set when the file part began
                raise refusals.empty_file(self.admission.claimed.kind.value)
            if self.real is None:
                self._confirm_type()
            self.file_done = True
        else:
            self.fields[self.part.name] = self.part.data.decode("utf-8", "replace")

    def _confirm_type(self) -> None:
        """The real type is known from the first bytes: a file that is not what it claims
        is refused before the rest of it is read."""
        assert self.admission is not None
        self.real = confirm_type(self.head, self.admission.claimed)

    # ---- file writes, in a worker thread ---------------------------------------------
    def _write_pending(self, chunks: list[bytes]) -> None:
        assert self.sink is not None
        for chunk in chunks:
            self.hasher.update(chunk)
            self.sink.write(chunk)

    async def flush(self, *, force: bool = False) -> None:
        if not self.pending or (self.pending_bytes < FLUSH_BYTES and not force):
            return
        chunks, self.pending, self.pending_bytes = self.pending, [], 0
        await asyncio.to_thread(self._write_pending, chunks)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    def discard(self) -> None:
        self.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()


async def read_upload(
    *,
    content_type: str | None,
    stream: AsyncIterator[bytes],
    admit: AdmitFile,
    file_field: str = "file",
    spool_dir: str | None = None,
) -> UploadForm:
    """Parse a ``multipart/form-data`` body with one file part into its fields and a
    spooled file. Raises an upload refusal (the spooled file is then removed)."""
    media_type, params = parse_options_header(content_type or "")
    if media_type != b"multipart/form-data" or b"boundary" not in params:
        raise refusals.bad_form("send the upload as multipart/form-data with a boundary")
    spooler = _Spooler(file_field=file_field, admit=admit, spool_dir=spool_dir)
    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": spooler.on_part_begin,
            "on_part_data": spooler.on_part_data,
            "on_part_end": spooler.on_part_end,
            "on_header_field": spooler.on_header_field,
            "on_header_value": spooler.on_header_value,
            "on_header_end": spooler.on_header_end,
            "on_headers_finished": spooler.on_headers_finished,
        },
    )
    try:
        async for chunk in stream:
            parser.write(chunk)
            await spooler.flush()
        parser.finalize()
        await spooler.flush(force=True)
    except MultipartParseError as exc:
        spooler.discard()
        raise refusals.bad_form(f"malformed multipart body: {exc}") from exc
    except BaseException:
        spooler.discard()
        raise
    spooler.close()
    if spooler.admission is None or spooler.path is None:
        raise refusals.no_file()
    if not spooler.file_done or spooler.real is None:
        spooler.discard()
        raise refusals.incomplete()
    return UploadForm(
        fields=spooler.fields,
        file=SpooledFile(
            path=spooler.path,
            filename=spooler.filename,
            content_type=spooler.content_type,
            claimed=spooler.admission.claimed,
            real=spooler.real,
            size=spooler.size,
            sha256=spooler.hasher.hexdigest(),
        ),
    )
