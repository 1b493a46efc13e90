"""Download one Bulk Data file straight to disk, count its lines, and prove it complete.

The body is streamed in chunks to ``<key>.ndjson.part`` in the job's download folder under the
landing root (never held in memory), counting lines as it goes. A file is accepted when its
count of non-blank lines equals the manifest's ``count`` (when the server gives one) and it
does not end inside a JSON line; it is then renamed to ``<key>.ndjson``. Otherwise it is
downloaded again, up to ``attempts`` times:

- a transfer cut short before ``Content-Length`` is a transport error, retried by the client;
- a chunked transfer that ends cleanly but early is caught only by the line count;
- a file that ends inside a line is caught by reading its last line back.

A renamed file found on resume (the process died before its rows were committed) is counted
again and reused instead of downloaded again.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import orjson

from loaders.bulk.manifest import ManifestFile
from loaders.exceptions import ExtractError
from loaders.http import FhirHttpClient
from loaders.http.client import utc_now

logger = logging.getLogger(__name__)

_BLANK_AFTER_NEWLINE = re.compile(rb"\n(?=\n)")
_TAIL_STEP = 64 * 1024
_COUNT_CHUNK = 1024 * 1024


class IncompleteDownloadError(ExtractError):
    """A file kept arriving short of the manifest's line count (or cut inside a line)."""


class LineCountingSink:
    """A binary file wrapper that counts non-blank lines of what is written through it.

    ``seek(0)`` and ``truncate()`` (what the client does before each attempt) reset the count.
    Without a handle it only counts.
    """

    def __init__(self, handle: BinaryIO | None = None) -> None:
        self._handle = handle
        self._reset()

    def _reset(self) -> None:
        self.size = 0
        self._newlines = 0
        self._blank = 0
        self.last_byte = b""

    @property
    def lines(self) -> int:
        """Non-blank lines so far (a last line without a newline counts)."""
        partial = 1 if self.size and self.last_byte != b"\n" else 0
        return self._newlines + partial - self._blank

    def write(self, chunk: bytes) -> int:
        """Write ``chunk`` and count its lines."""
        if not chunk:
            return 0
        written = self._handle.write(chunk) if self._handle is not None else len(chunk)
        self._newlines += chunk.count(b"\n")
        self._blank += len(_BLANK_AFTER_NEWLINE.findall(chunk))
        if chunk[:1] == b"\n" and (self.size == 0 or self.last_byte == b"\n"):
            self._blank += 1
        self.size += len(chunk)
        self.last_byte = chunk[-1:]
        return written if written is not None else len(chunk)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the underlying file; back to the start resets the count."""
        position = self._handle.seek(offset, whence) if self._handle is not None else 0
        if position == 0:
            self._reset()
        return position

    def truncate(self, size: int | None = None) -> int:
        """Truncate the underlying file (the client truncates at 0 before each attempt)."""
        result = self._handle.truncate(size) if self._handle is not None else 0
        if not result:
            self._reset()
        return result

    def seekable(self) -> bool:
        """Always True."""
        return True

    def writable(self) -> bool:
        """Always True."""
        return True


def count_lines(path: Path) -> tuple[int, bytes]:
    """Non-blank lines of a file, and its last byte, read in 1 MB chunks."""
    counter = LineCountingSink()
    with path.open("rb") as handle:
        while chunk := handle.read(_COUNT_CHUNK):
            counter.write(chunk)
    return counter.lines, counter.last_byte


def last_line_is_json(path: Path) -> bool:
    """Whether the file's last line (one without a final newline) is a whole JSON value."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        start = size
        tail = b""
        while start > 0 and b"\n" not in tail:
            start = max(0, start - _TAIL_STEP)
            handle.seek(start)
            tail = handle.read(size - start)
    line = tail.rsplit(b"\n", 1)[-1]
    if not line.strip():
        return True
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class DownloadedFile:
    """A complete file on disk.

    Attributes:
        entry: The manifest entry it is.
        path: Where it is.
        lines: Its non-blank lines.
        size: Its bytes.
        request_id: The request that fetched it (None when reused from an earlier run).
        fetched_at: When it was fetched (or found).
        attempts: Downloads it took (0 when reused).
    """

    entry: ManifestFile
    path: Path
    lines: int
    size: int
    request_id: str | None
    fetched_at: datetime
    attempts: int


def _problem(entry: ManifestFile, lines: int, last_byte: bytes, path: Path) -> str | None:
    if entry.count is not None and lines != entry.count:
        return f"{lines:,} lines arrived, the manifest says {entry.count:,}"
    if last_byte not in (b"", b"\n") and not last_line_is_json(path):
        return "the file ends inside a line"
    return None


def download_file(
    client: FhirHttpClient,
    entry: ManifestFile,
    folder: Path,
    *,
    send_token: bool,
    allow_other_hosts: bool,
    attempts: int = 3,
) -> DownloadedFile:
    """Download ``entry`` into ``folder`` and prove it complete (see the module docstring).

    Args:
        client: The source's client.
        entry: The manifest entry.
        folder: The job's download folder (created if missing).
        send_token: Whether the access token goes with the request.
        allow_other_hosts: Whether the URL may be on another host than the FHIR server.
        attempts: Downloads of a file that arrives short before giving up.

    Raises:
        IncompleteDownloadError: Every attempt arrived short.
        ExtractError: What the client raises (auth, retries exhausted, refused host).
    """
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{entry.key}.ndjson"
    if final.exists():
        lines, last_byte = count_lines(final)
        if _problem(entry, lines, last_byte, final) is None:
            logger.info("%s: reusing the file downloaded by an earlier run", entry.label)
            return DownloadedFile(entry, final, lines, final.stat().st_size, None, utc_now(), 0)
        final.unlink()
    partial = folder / f"{entry.key}.ndjson.part"
    problem = ""
    for attempt in range(1, attempts + 1):
        with partial.open("wb") as handle:
            sink = LineCountingSink(handle)
            result = client.download(
                entry.url,
                None,
                sink,  # type: ignore[arg-type]
                resource_type=entry.resource_type,
                allow_other_hosts=allow_other_hosts,
                send_token=send_token,
            )
        found = _problem(entry, sink.lines, sink.last_byte, partial)
        if found is None:
            os.replace(partial, final)
            return DownloadedFile(
                entry, final, sink.lines, result.size, result.request_id, utc_now(), attempt
            )
        problem = found
        logger.warning(
            "%s: download %d of %d incomplete (%s); downloading it again",
            entry.label,
            attempt,
            attempts,
            problem,
        )
    partial.unlink(missing_ok=True)
    raise IncompleteDownloadError(
        f"Bulk Data {entry.label}: incomplete after {attempts} downloads ({problem}); the job "
        "stays checkpointed, run again to retry"
    )
