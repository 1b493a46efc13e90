"""Parse a block of NDJSON lines into arrow columns: the per-resource work of a file load.

For each line: decode it (orjson), accept or refuse it (:mod:`loaders.resources`: checks,
canonical JSON and its sha256), and look for schema drift while the resource is at hand,
instead of decoding the landed text again later: a resource that
:func:`loaders.drift.conformance.conforms` to its definition is done with, the others are
walked (:func:`loaders.drift.detector.resource_shapes`) for their findings. Accepted resources
become one arrow table (no Python object per resource survives the block); refused ones stay
:class:`~loaders.files.reader.FileItem` objects with their bytes, in their place among the
accepted ones.

:func:`parse_block` is a top-level function of plain data in and out, so it runs the same in a
worker process (:mod:`loaders.files.column_pages`) as in the loading process. A worker calls
:func:`parse_block_spans` instead: the texts stay in the loading process, which has the block's
bytes already, and the worker sends back where each text lies (:class:`TextSpans`) rather than
the texts, about the size of the input, through a pipe; :meth:`ParsedBlock.with_texts` puts
them back. From a file stored uncompressed a worker reads the block itself
(:func:`parse_file_slice`): only where it is crosses the pipe.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
from isal.isal_zlib import crc32

from loaders.drift.conformance import conforms
from loaders.drift.detector import Shape, resource_shapes
from loaders.exceptions import FhirEltError
from loaders.files.reader import FileItem, LineBlock, line_items
from loaders.resources import Rejection
from loaders.warehouse.raw_columns import PARSED_SCHEMA, parsed_columns
from loaders.warehouse.raw_tables import text_array

_RESOURCE = PARSED_SCHEMA.get_field_index("resource")


@dataclass(frozen=True, slots=True)
class Run:
    """Accepted rows ``[start, stop)`` of a block's table: one type, no refusal between them."""

    resource_type: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class BlockFailure:
    """An unexpected exception while parsing (a fhir-elt bug), named without its text.

    Attributes:
        error_type: The exception's type name.
        line: The line of the last item read before it (0: none yet in this block).
        bundle_entry: That item's Bundle entry, if it was one.
    """

    error_type: str
    line: int
    bundle_entry: int | None


@dataclass(frozen=True, slots=True)
class TextSpans:
    """Where the text of each accepted row of a block lies in the block's bytes.

    Attributes:
        starts: Per row, the offset of its text in the block (-1: the text is in ``others``).
        lengths: Per row, the length of its text in bytes.
        others: Texts that are not a line of the block (a Bundle entry, written again), by row.
    """

    starts: array[int]
    lengths: array[int]
    others: dict[int, bytes]

    def texts(self, data: bytes) -> list[bytes]:
        """The rows' texts, cut from ``data`` (the block's bytes)."""
        spans = zip(self.starts, self.lengths, strict=True)
        if not self.others:
            return [data[start : start + length] for start, length in spans]
        return [
            data[start : start + length] if start >= 0 else self.others[row]
            for row, (start, length) in enumerate(spans)
        ]


@dataclass(slots=True)
class ParsedBlock:
    """What :func:`parse_block` makes of a block.

    Attributes:
        rows: The accepted resources in file order (``PARSED_SCHEMA``; without its
            ``resource`` column while ``spans`` is set).
        events: In file order: a :class:`Run` of accepted rows, or a refused FileItem.
        drift: For each accepted row (by index) that drifts from its definition, its shapes.
        items: Resources read (accepted and refused).
        refused: How many of them were refused.
        last_item: ``(line, bundle_entry)`` of the last item read, None if there was none.
        failure: Set when parsing stopped on an unexpected exception; what came before it is
            in the other fields.
        spans: Set by :func:`parse_block_spans`: where the texts are in the block.
    """

    rows: pa.Table
    events: list[Run | FileItem] = field(default_factory=list)
    drift: dict[int, frozenset[Shape]] = field(default_factory=dict)
    items: int = 0
    refused: int = 0
    last_item: tuple[int, int | None] | None = None
    failure: BlockFailure | None = None
    spans: TextSpans | None = None

    def with_texts(self, data: bytes) -> ParsedBlock:
        """This block with its ``resource`` column, cut from ``data`` (the block's bytes)."""
        if self.spans is None:
            return self
        texts = text_array(self.spans.texts(data))
        rows = self.rows.add_column(_RESOURCE, PARSED_SCHEMA.field(_RESOURCE), texts)
        return replace(self, rows=rows, spans=None)


class _Columns:
    """Collects a block's items into lists, one per column, and the runs between refusals."""

    def __init__(self, *, spans: bool = False) -> None:
        # spans: keep where each text is in the block, not the text (parse_block_spans)
        self.spans = spans
        self.text_starts = array("q")
        self.text_lengths = array("q")
        self.other_texts: dict[int, bytes] = {}
        self.ids: list[str] = []
        self.version_ids: list[str | None] = []
        self.last_updated: list[datetime | None] = []
        self.content_hashes: list[str] = []
        self.texts: list[bytes] = []
        self.line_numbers: list[int] = []
        self.bundle_entries: list[int | None] = []
        self.events: list[Run | FileItem] = []
        self.drift: dict[int, frozenset[Shape]] = {}
        self.items = 0
        self.refused = 0
        self.last_item: tuple[int, int | None] | None = None
        self._run_type: str | None = None
        self._run_start = 0

    def add(self, item: FileItem, document: Any, start: int = -1) -> None:
        """Add one item; ``document`` is its decoded resource, or None to decode its text.

        ``start``: where ``item.raw`` begins in the block, if it is a slice of the block
        (-1: it is not).
        """
        self.items += 1
        self.last_item = (item.line_number, item.bundle_entry)
        result = item.result
        if isinstance(result, Rejection):
            self.refused += 1
            self._close_run()
            self.events.append(item)
            return
        if result.resource_type != self._run_type:
            self._close_run()
            self._run_type = result.resource_type
        row = len(self.ids)
        self.ids.append(result.id)
        self.version_ids.append(result.version_id)
        self.last_updated.append(result.last_updated)
        self.content_hashes.append(result.content_hash)
        if not self.spans:
            self.texts.append(result.text)
        elif start >= 0 and result.text is item.raw:
            self.text_starts.append(start)
            self.text_lengths.append(len(result.text))
        else:
            self.text_starts.append(-1)
            self.text_lengths.append(0)
            self.other_texts[row] = result.text
        self.line_numbers.append(item.line_number)
        self.bundle_entries.append(item.bundle_entry)
        if conforms(result.resource_type, result.text):
            return  # no drift: the walk would find nothing
        if document is None:
            document = orjson.loads(result.text)
        shapes = resource_shapes(result.resource_type, document)
        if shapes:
            self.drift[row] = frozenset(shapes)

    def _close_run(self) -> None:
        stop = len(self.ids)
        if self._run_type is not None and stop > self._run_start:
            self.events.append(Run(self._run_type, self._run_start, stop))
        self._run_type = None
        self._run_start = stop

    def finish(self, failure: BlockFailure | None = None) -> ParsedBlock:
        self._close_run()
        rows = parsed_columns(
            self.ids,
            self.version_ids,
            self.last_updated,
            self.content_hashes,
            None if self.spans else self.texts,
            self.line_numbers,
            self.bundle_entries,
        )
        spans = None
        if self.spans:
            spans = TextSpans(self.text_starts, self.text_lengths, self.other_texts)
        return ParsedBlock(
            rows=rows,
            events=self.events,
            drift=self.drift,
            items=self.items,
            refused=self.refused,
            last_item=self.last_item,
            failure=failure,
            spans=spans,
        )


def _failure(columns: _Columns, error: Exception) -> BlockFailure:
    line, entry = columns.last_item or (0, None)
    return BlockFailure(type(error).__name__, line, entry)


def parse_block(block: LineBlock) -> ParsedBlock:
    """Parse the lines of one block (see :func:`loaders.files.reader.iter_line_blocks`).

    Lines are numbered from ``block.first_line``; blank lines are skipped, a Bundle on a line
    is split into its entries, as :func:`loaders.files.reader.iter_file_items` does.
    """
    return _parse_lines(block, _Columns())


def parse_block_spans(block: LineBlock) -> ParsedBlock:
    """:func:`parse_block` for a worker: texts as :class:`TextSpans` into ``block.data``.

    The loading process restores them with ``.with_texts(block.data)``.
    """
    return _parse_lines(block, _Columns(spans=True))


@dataclass(frozen=True, slots=True)
class FileSlice:
    """A block for a worker to read from its file (stored uncompressed), instead of its bytes.

    The loading process has read the same bytes (to cut the block at a line end and hash the
    file) and keeps them for the texts; the CRC-32 of those bytes tells the worker whether the
    file still holds them.

    Attributes:
        path: The file.
        offset: Where the block starts in it.
        length: The block's length in bytes.
        first_line: The 1-based number of the block's first line.
        crc: CRC-32 of the block's bytes as the loading process read them.
    """

    path: str
    offset: int
    length: int
    first_line: int
    crc: int

    @classmethod
    def of(cls, path: str, block: LineBlock) -> FileSlice:
        """Where ``block`` (read at ``block.offset`` of the uncompressed file ``path``) is."""
        if block.offset is None:
            raise ValueError("a block of a gzip file has no place in the file to read it from")
        return cls(path, block.offset, len(block.data), block.first_line, crc32(block.data))


def parse_file_slice(piece: FileSlice) -> ParsedBlock | None:
    """:func:`parse_block_spans` of the block ``piece`` names, read from its file.

    Returns:
        The parsed block; None when the file no longer holds the bytes the loading process
        read there (it changed or went away during the load).
    """
    try:
        data = _read_at(piece.path, piece.offset, piece.length)
    except OSError:
        return None
    if len(data) != piece.length or crc32(data) != piece.crc:
        return None
    return parse_block_spans(LineBlock(piece.first_line, data, piece.offset))


def _read_at(path: str, offset: int, length: int) -> bytes:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        parts: list[bytes] = []
        read = 0
        while read < length:
            part = os.pread(descriptor, length - read, offset + read)
            if not part:  # the file is shorter now
                break
            parts.append(part)
            read += len(part)
    finally:
        os.close(descriptor)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _parse_lines(block: LineBlock, columns: _Columns) -> ParsedBlock:
    try:
        lines = block.data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # after the last line's newline
        offset = 0
        for line_number, line in enumerate(lines, start=block.first_line):
            stripped = line.strip()
            if stripped:
                start = offset if stripped is line else offset + line.find(stripped)
                for item, document in line_items(stripped, line_number):
                    # a Bundle's entries are written again: not slices of the block
                    columns.add(item, document, start if item.raw is stripped else -1)
            offset += len(line) + 1
    except FhirEltError:
        raise
    except Exception as error:
        return columns.finish(_failure(columns, error))
    return columns.finish()


def parse_items(items: Iterable[FileItem]) -> ParsedBlock:
    """Collect items read some other way (a JSON or Bundle file) as a parsed block."""
    columns = _Columns()
    try:
        for item in items:
            columns.add(item, None)
    except FhirEltError:
        raise
    except Exception as error:
        return columns.finish(_failure(columns, error))
    return columns.finish()
