"""Parse a block of NDJSON lines into arrow columns: the per-resource work of a file load.

For each line: decode it (orjson), accept or refuse it (:mod:`loaders.resources`: checks,
canonical JSON and its sha256), and walk the decoded resource for schema drift
(:func:`loaders.drift.detector.resource_shapes`) while it is at hand, instead of decoding the
landed text again later. Accepted resources become one arrow table (no Python object per
resource survives the block); refused ones stay :class:`~loaders.files.reader.FileItem` objects
with their bytes, in their place among the accepted ones.

:func:`parse_block` is a top-level function of plain data in and out, so it runs the same in a
worker process (:mod:`loaders.files.column_pages`) as in the loading process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from loaders.drift.detector import Shape, resource_shapes
from loaders.exceptions import FhirEltError
from loaders.files.reader import FileItem, LineBlock, line_items
from loaders.resources import Rejection
from loaders.warehouse.raw_columns import parsed_columns


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


@dataclass(slots=True)
class ParsedBlock:
    """What :func:`parse_block` makes of a block.

    Attributes:
        rows: The accepted resources in file order (``PARSED_SCHEMA``).
        events: In file order: a :class:`Run` of accepted rows, or a refused FileItem.
        drift: For each accepted row (by index) that drifts from its definition, its shapes.
        items: Resources read (accepted and refused).
        refused: How many of them were refused.
        last_item: ``(line, bundle_entry)`` of the last item read, None if there was none.
        failure: Set when parsing stopped on an unexpected exception; what came before it is
            in the other fields.
    """

    rows: pa.Table
    events: list[Run | FileItem] = field(default_factory=list)
    drift: dict[int, frozenset[Shape]] = field(default_factory=dict)
    items: int = 0
    refused: int = 0
    last_item: tuple[int, int | None] | None = None
    failure: BlockFailure | None = None


class _Columns:
    """Collects a block's items into lists, one per column, and the runs between refusals."""

    def __init__(self) -> None:
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

    def add(self, item: FileItem, document: Any) -> None:
        """Add one item; ``document`` is its decoded resource, or None to decode its text."""
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
        self.texts.append(result.text)
        self.line_numbers.append(item.line_number)
        self.bundle_entries.append(item.bundle_entry)
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
            self.texts,
            self.line_numbers,
            self.bundle_entries,
        )
        return ParsedBlock(
            rows=rows,
            events=self.events,
            drift=self.drift,
            items=self.items,
            refused=self.refused,
            last_item=self.last_item,
            failure=failure,
        )


def _failure(columns: _Columns, error: Exception) -> BlockFailure:
    line, entry = columns.last_item or (0, None)
    return BlockFailure(type(error).__name__, line, entry)


def parse_block(block: LineBlock) -> ParsedBlock:
    """Parse the lines of one block (see :func:`loaders.files.reader.iter_line_blocks`).

    Lines are numbered from ``block.first_line``; blank lines are skipped, a Bundle on a line
    is split into its entries, as :func:`loaders.files.reader.iter_file_items` does.
    """
    columns = _Columns()
    try:
        lines = block.data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # after the last line's newline
        for line_number, line in enumerate(lines, start=block.first_line):
            stripped = line.strip()
            if stripped:
                for item, document in line_items(stripped, line_number):
                    columns.add(item, document)
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
