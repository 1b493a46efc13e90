"""Raw table rows from resources already parsed into arrow columns (no object per resource).

A file load parses its resources in worker processes (:mod:`loaders.files.block_parse`), which
hand back one arrow table per block in :data:`PARSED_SCHEMA`; the loading process turns a
page of those rows into a landing page (:func:`joined_lines`) and a raw table batch
(:func:`raw_batch_from_columns`) with whole-column operations. Both match, byte for byte and
value for value, what :meth:`loaders.landing.LandingZone.write_page` and
:func:`loaders.warehouse.raw_tables.build_raw_batch` make of the same resources as
:class:`~loaders.resources.ParsedResource` objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import overload

import pyarrow as pa
import pyarrow.compute as pc

from loaders.resources import ParsedResource
from loaders.warehouse.raw_tables import (
    UTC_TIMESTAMP,
    assemble_raw_batch,
    text_array,
    version_sort_keys,
)

# One row per accepted resource, in the order read; resource_type is per page, not per row.
PARSED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("version_id", pa.string()),
        pa.field("last_updated", UTC_TIMESTAMP),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("resource", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        pa.field("bundle_entry", pa.int64()),
    ]
)


def parsed_columns(
    ids: list[str],
    version_ids: list[str | None],
    last_updated: list[datetime | None],
    content_hashes: list[str],
    texts: list[bytes] | None,
    line_numbers: list[int],
    bundle_entries: list[int | None],
) -> pa.Table:
    """A :data:`PARSED_SCHEMA` table from per-resource lists (all of the same length).

    ``texts`` None: the table lacks the ``resource`` column (a worker's block, whose texts
    the loading process adds back: :meth:`loaders.files.block_parse.ParsedBlock.with_texts`).
    """
    columns = {
        "id": pa.array(ids, pa.string()),
        "version_id": pa.array(version_ids, pa.string()),
        "last_updated": pa.array(last_updated, UTC_TIMESTAMP),
        "content_hash": pa.array(content_hashes, pa.string()),
        "resource": None if texts is None else text_array(texts),
        "line_number": pa.array(line_numbers, pa.int64()),
        "bundle_entry": pa.array(bundle_entries, pa.int64()),
    }
    fields = [field for field in PARSED_SCHEMA if columns[field.name] is not None]
    return pa.Table.from_arrays([columns[field.name] for field in fields], schema=pa.schema(fields))


def joined_lines(texts: pa.Array | pa.ChunkedArray) -> memoryview:
    """The texts, each followed by ``\\n``, as one buffer: a landing page's uncompressed bytes."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    joined = pc.binary_join_element_wise(texts, pa.scalar("", pa.string()), "\n")
    if len(joined) == 0:
        return memoryview(b"")
    offsets = memoryview(joined.buffers()[1]).cast("i")
    start, stop = offsets[joined.offset], offsets[joined.offset + len(joined)]
    return memoryview(joined.buffers()[2])[start:stop]


class _Resources(Sequence[ParsedResource]):
    """The rows of a page as ParsedResource objects, made only when one is asked for."""

    def __init__(self, resource_type: str, rows: pa.Table) -> None:
        self._resource_type = resource_type
        self._rows = rows

    def __len__(self) -> int:
        return self._rows.num_rows

    @overload
    def __getitem__(self, index: int) -> ParsedResource: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ParsedResource]: ...

    def __getitem__(self, index: int | slice) -> ParsedResource | Sequence[ParsedResource]:
        if isinstance(index, slice):
            return list(self)[index]
        row = self._rows.slice(index, 1).to_pylist()[0]
        return _resource(self._resource_type, row)

    def __iter__(self) -> Iterator[ParsedResource]:
        for row in self._rows.to_pylist():
            yield _resource(self._resource_type, row)


def _resource(resource_type: str, row: dict[str, object]) -> ParsedResource:
    text = row["resource"]
    assert isinstance(text, str)
    return ParsedResource(
        resource_type=resource_type,
        id=str(row["id"]),
        version_id=row["version_id"],  # type: ignore[arg-type]
        last_updated=row["last_updated"],  # type: ignore[arg-type]
        content_hash=str(row["content_hash"]),
        text=text.encode("utf-8"),
    )


def parsed_resources(resource_type: str, rows: pa.Table) -> Sequence[ParsedResource]:
    """The rows of a :data:`PARSED_SCHEMA` table as ParsedResource objects (made on access)."""
    return _Resources(resource_type, rows)


def raw_batch_from_columns(
    resource_type: str,
    rows: pa.Table,
    *,
    source_system: str,
    fetched_at: datetime,
    request_ids: Sequence[str | None],
    landing_file: str,
) -> pa.Table:
    """:func:`~loaders.warehouse.raw_tables.build_raw_batch` for rows in :data:`PARSED_SCHEMA`.

    Args:
        resource_type: The type of every row.
        rows: The page's resources.
        source_system: The source they came from.
        fetched_at: When they were read (UTC).
        request_ids: The request (or input file) of each row.
        landing_file: The landing page holding them.
    """
    last_updated = rows.column("last_updated")
    version_ids = rows.column("version_id")
    content_hashes = rows.column("content_hash")
    sort_keys = version_sort_keys(
        parsed_resources(resource_type, rows),
        fetched_at,
        last_updated,
        version_ids,
        content_hashes,
    )
    return assemble_raw_batch(
        {
            "resource_type": pa.repeat(pa.scalar(resource_type, pa.string()), rows.num_rows),
            "id": rows.column("id"),
            "version_id": version_ids,
            "last_updated": last_updated,
            "resource": rows.column("resource"),
            "content_hash": content_hashes,
            "version_sort_key": sort_keys,
        },
        source_system=source_system,
        fetched_at=fetched_at,
        request_ids=request_ids,
        landing_file=landing_file,
    )
