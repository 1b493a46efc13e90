"""Read every resource in one input file, whatever its layout, as accepted or rejected items.

NDJSON is read in large blocks and split into lines (much cheaper than a read per line), and
the file's bytes as stored can be fed to a digest on the way, so a file is read once whether or
not its fingerprint is wanted.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import IO, Any, Protocol

import orjson

from loaders.files.bundles import BundleEntry, iter_bundle
from loaders.files.discover import InputFile, InputKind
from loaders.resources import (
    ParsedResource,
    Rejection,
    RejectReason,
    decode_resource_bytes,
    parse_resource_bytes,
    parse_resource_object,
)


@dataclass(frozen=True, slots=True)
class FileItem:
    """One resource read from a file, accepted or rejected.

    Attributes:
        line_number: 1-based line of an NDJSON file (the line holding the Bundle, for a Bundle
            on a line); 1 for a JSON file. Bundle entries are told apart by ``json_path``.
        result: The parsed resource, or why it was refused (json_path relative to the file's
            document, e.g. ``Bundle.entry[3].resource.id``).
        raw: The bytes as read, kept so a refused resource can be quarantined unchanged.
        bundle_entry: The index of its Bundle entry (``Bundle.entry[i]``), else None.
    """

    line_number: int
    result: ParsedResource | Rejection
    raw: bytes
    bundle_entry: int | None = None


_BLOCK_BYTES = 4 * 1024 * 1024


class Digest(Protocol):
    """What :func:`iter_file_items` feeds the file's bytes to (a ``hashlib`` object)."""

    def update(self, data: Any, /) -> None: ...


class _DigestingReader(io.RawIOBase):
    """A binary file that feeds every byte read from it to a digest."""

    def __init__(self, raw: IO[bytes], digest: Digest) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open(source: InputFile, digest: Digest | None) -> IO[bytes]:
    raw: IO[bytes] = source.path.open("rb")
    if digest is not None:
        raw = _DigestingReader(raw, digest)
    return gzip.GzipFile(fileobj=raw, mode="rb") if source.gzip else raw


def _lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of ``handle`` (split on ``\\n`` only, like iterating a binary file).

    ``read1`` where there is one: a gzip stream then yields what it decoded before a
    corrupt or truncated part, instead of losing the whole block to the error.
    """
    read = getattr(handle, "read1", handle.read)
    pending = b""
    while block := read(_BLOCK_BYTES):
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        yield from lines
    if pending:
        yield pending


@dataclass(frozen=True, slots=True)
class LineBlock:
    """Consecutive whole lines of an NDJSON file, as read (split them with ``split(b"\\n")``).

    Attributes:
        first_line: The 1-based line number of the first line.
        data: The lines, each ending with ``\\n`` (the file's last line may lack it).
        offset: Where ``data`` starts in the file, for a file stored uncompressed (a worker
            may read it there itself); None for a gzip file's decoded bytes.
    """

    first_line: int
    data: bytes
    offset: int | None = None


def iter_line_blocks(
    source: InputFile, digest: Digest | None = None
) -> Iterator[LineBlock | FileItem]:
    """An NDJSON file as blocks of about 4 MB of whole lines, for parsing elsewhere.

    Lines are numbered as :func:`iter_file_items` numbers them. Reading stops at a truncated
    or corrupt gzip stream: what was decoded before it is yielded, then one FileItem refusing
    the rest (``unreadable_file`` at the line where reading stopped), as
    :func:`iter_file_items` does.

    Args:
        source: An NDJSON file.
        digest: If given, fed the file's bytes as stored.
    """
    lines_read = 0
    # bytes of an uncompressed file before the next block; None for gzip (no file offsets)
    position: int | None = None if source.gzip else 0
    try:
        with _open(source, digest) as handle:
            read = getattr(handle, "read1", handle.read)
            pending = b""
            while block := read(_BLOCK_BYTES):
                data = pending + block if pending else block
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    pending = data
                    continue
                whole, pending = (data, b"") if cut == len(data) else (data[:cut], data[cut:])
                yield LineBlock(lines_read + 1, whole, position)
                lines_read += whole.count(b"\n")
                if position is not None:
                    position += len(whole)
            if pending:
                yield LineBlock(lines_read + 1, pending, position)
    except (OSError, EOFError, zlib.error):
        yield FileItem(
            line_number=lines_read + 1,
            result=Rejection(RejectReason.UNREADABLE_FILE, "$"),
            raw=b"",
        )


def _iter_ndjson(source: InputFile, digest: Digest | None) -> Iterator[FileItem]:
    line_number = 0
    try:
        with _open(source, digest) as handle:
            for line_number, line in enumerate(_lines(handle), start=1):
                stripped = line.strip()
                if stripped:
                    for item, _document in line_items(stripped, line_number):
                        yield item
    except (OSError, EOFError, zlib.error):
        # A truncated or corrupt gzip stream: everything before this point was read; record
        # where reading stopped so the rest of the file is visibly missing, not silently.
        yield FileItem(
            line_number=line_number + 1,
            result=Rejection(RejectReason.UNREADABLE_FILE, "$"),
            raw=b"",
        )


def line_items(line: bytes, line_number: int) -> Iterator[tuple[FileItem, Any]]:
    """The item(s) of one stripped, non-empty NDJSON line, each with its decoded resource.

    The decoded resource (the document the schema drift walk reads) is None for a refused
    line and for a Bundle's entries (their text is re-serialised; decode it if needed).
    """
    result, document = decode_resource_bytes(line)
    if result.resource_type == "Bundle":
        # A Bundle on an NDJSON line is split like a Bundle file (Bundles often have no id
        # of their own, so a Rejection for a missing id is no obstacle).
        for item in _iter_bundle_document(document, line_number, line):
            yield item, None
        return
    accepted = isinstance(result, ParsedResource)
    yield FileItem(line_number=line_number, result=result, raw=line), document if accepted else None


def _dumps_or_nothing(value: Any) -> bytes:
    """``value`` as JSON for a quarantine page, or no bytes if orjson cannot write it (too deep)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return b""


def _iter_bundle_document(
    document: dict, line_number: int, raw_document: bytes | None = None
) -> Iterator[FileItem]:
    """The items of a decoded Bundle; ``raw_document`` is kept if the Bundle is refused whole."""
    for item in iter_bundle(document):
        if isinstance(item, BundleEntry):
            result = parse_resource_object(item.resource)
            if isinstance(result, Rejection):
                result = replace(
                    result, json_path=f"Bundle.entry[{item.index}].resource.{result.json_path}"
                )
            raw = (
                result.text
                if isinstance(result, ParsedResource)
                else _dumps_or_nothing(item.resource)
            )
            yield FileItem(line_number=line_number, result=result, raw=raw, bundle_entry=item.index)
        else:
            index, rejection = item
            if index >= 0:
                raw = _dumps_or_nothing(document["entry"][index])
            else:
                raw = raw_document if raw_document is not None else _dumps_or_nothing(document)
            yield FileItem(line_number=line_number, result=rejection, raw=raw)


def _iter_json(source: InputFile, digest: Digest | None) -> Iterator[FileItem]:
    try:
        with _open(source, digest) as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error):
        yield FileItem(line_number=1, result=Rejection(RejectReason.UNREADABLE_FILE, "$"), raw=b"")
        return
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        yield FileItem(line_number=1, result=parse_resource_bytes(raw), raw=raw)
        return
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        yield from _iter_bundle_document(document, 1, raw)
        return
    if isinstance(document, list):
        yield FileItem(line_number=1, result=Rejection(RejectReason.NOT_AN_OBJECT, "$"), raw=raw)
        return
    yield FileItem(line_number=1, result=parse_resource_object(document), raw=raw)


def iter_file_items(source: InputFile, digest: Digest | None = None) -> Iterator[FileItem]:
    """Every resource in ``source``, in file order, accepted or rejected.

    Args:
        source: A file found by :func:`loaders.files.discover_input_files`.
        digest: If given, fed the file's bytes as stored (compressed, for a gzip file); once
            the items are exhausted it has seen the whole file, unless reading it failed.

    Yields:
        One FileItem per NDJSON line or Bundle entry (and one for a file that cannot be read
        as JSON at all).
    """
    if source.kind is InputKind.NDJSON:
        yield from _iter_ndjson(source, digest)
    else:
        yield from _iter_json(source, digest)
