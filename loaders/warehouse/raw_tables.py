"""The raw table contract (DESIGN.md) as an arrow schema and dlt column hints.

One table per resource type in the raw dataset; primary key ``(source_system, id)``; one row
per key holding the latest version. ``resource`` stays JSON text until the warehouse, where it
becomes a JSON (DuckDB) or VARIANT (Snowflake) column.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import accumulate

import pyarrow as pa
import pyarrow.compute as pc

from loaders.resources import ParsedResource

RAW_DATASET = "raw_fhir"
PRIMARY_KEY = ("source_system", "id")

# Every raw timestamp: microseconds, UTC.
UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")

RAW_SCHEMA = pa.schema(
    [
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("version_id", pa.string()),
        pa.field("last_updated", UTC_TIMESTAMP),
        pa.field("resource", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("version_sort_key", pa.string(), nullable=False),
        pa.field("fetched_at", UTC_TIMESTAMP, nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("landing_file", pa.string(), nullable=False),
        pa.field("is_deleted", pa.bool_(), nullable=False),
    ]
)

# dlt hints: JSON stays text in arrow and becomes a JSON/VARIANT column in the warehouse;
# within one load, the row with the greatest version_sort_key wins a key (dedup_sort).
RAW_COLUMN_HINTS: dict[str, dict[str, object]] = {
    "source_system": {"data_type": "text", "nullable": False},
    "resource_type": {"data_type": "text", "nullable": False},
    "id": {"data_type": "text", "nullable": False},
    "version_id": {"data_type": "text", "nullable": True},
    "last_updated": {"data_type": "timestamp", "nullable": True},
    "resource": {"data_type": "json", "nullable": False},
    "content_hash": {"data_type": "text", "nullable": False},
    "version_sort_key": {"data_type": "text", "nullable": False, "dedup_sort": "desc"},
    "fetched_at": {"data_type": "timestamp", "nullable": False},
    "request_id": {"data_type": "text", "nullable": True},
    "landing_file": {"data_type": "text", "nullable": False},
    "is_deleted": {"data_type": "bool", "nullable": False},
}


def build_raw_batch(
    resources: Sequence[ParsedResource],
    *,
    source_system: str,
    fetched_at: datetime,
    request_ids: Sequence[str | None],
    landing_file: str,
) -> pa.Table:
    """Rows for the raw tables from parsed resources of one landing page.

    Built column by column: the ``resource`` column shares one buffer of the page's JSON texts,
    and ``version_sort_key`` is computed on whole columns (see :func:`version_sort_keys`).

    Args:
        resources: The page's resources, all of one resource type.
        source_system: The source they came from.
        fetched_at: When they were read from the source (UTC).
        request_ids: The request (or input file) each resource came from, aligned with
            ``resources``.
        landing_file: The landing page holding them.
    """
    last_updated = pa.array([resource.last_updated for resource in resources], UTC_TIMESTAMP)
    version_ids = pa.array([resource.version_id for resource in resources], pa.string())
    content_hashes = pa.array([resource.content_hash for resource in resources], pa.string())
    return assemble_raw_batch(
        {
            "resource_type": pa.array(
                [resource.resource_type for resource in resources], pa.string()
            ),
            "id": pa.array([resource.id for resource in resources], pa.string()),
            "version_id": version_ids,
            "last_updated": last_updated,
            "resource": text_array([resource.text for resource in resources]),
            "content_hash": content_hashes,
            "version_sort_key": version_sort_keys(
                resources, fetched_at, last_updated, version_ids, content_hashes
            ),
        },
        source_system=source_system,
        fetched_at=fetched_at,
        request_ids=request_ids,
        landing_file=landing_file,
    )


PerRowColumn = pa.Array | pa.ChunkedArray


def assemble_raw_batch(
    columns: dict[str, PerRowColumn],
    *,
    source_system: str,
    fetched_at: datetime,
    request_ids: Sequence[str | None],
    landing_file: str,
) -> pa.Table:
    """A :data:`RAW_SCHEMA` table from a page's per-row columns and what the page shares.

    Args:
        columns: ``resource_type``, ``id``, ``version_id``, ``last_updated``, ``resource``,
            ``content_hash`` and ``version_sort_key``, one value per row.
        source_system: The source the rows came from.
        fetched_at: When they were read from the source (UTC).
        request_ids: The request (or input file) of each row.
        landing_file: The landing page holding them.
    """
    count = len(request_ids)
    shared: dict[str, PerRowColumn] = {
        "source_system": pa.repeat(pa.scalar(source_system, pa.string()), count),
        "fetched_at": pa.repeat(pa.scalar(fetched_at, UTC_TIMESTAMP), count),
        "request_id": pa.array(request_ids, pa.string()),
        "landing_file": pa.repeat(pa.scalar(landing_file, pa.string()), count),
        "is_deleted": pa.repeat(pa.scalar(False, pa.bool_()), count),
    }
    every = {**shared, **columns}
    return pa.Table.from_arrays([every[name] for name in RAW_SCHEMA.names], schema=RAW_SCHEMA)


def text_array(texts: Sequence[bytes]) -> pa.Array:
    """A string array over one joined buffer of JSON texts (no per-value copy or decode).

    The texts are valid UTF-8: they were parsed (or produced) by orjson, which refuses
    anything else.
    """
    data = b"".join(texts)
    if len(data) >= 2**31:
        return pa.array([text.decode("utf-8") for text in texts], pa.string())
    offsets = array("i", [0])
    offsets.extend(accumulate(len(text) for text in texts))
    return pa.StringArray.from_buffers(len(texts), pa.py_buffer(offsets), pa.py_buffer(data))


def version_sort_keys(
    resources: Sequence[ParsedResource],
    fetched_at: datetime,
    last_updated: pa.Array,
    version_ids: pa.Array,
    content_hashes: pa.Array,
) -> pa.Array:
    """``ParsedResource.version_sort_key`` for a whole page, computed on arrow columns.

    Falls back to the per-resource method where the vectorised form could differ from it:
    years before 1000 (``strftime`` pads them differently), a fetch time not in UTC, and
    non-ASCII digits in a version.
    """
    when = pc.fill_null(last_updated, pa.scalar(fetched_at, UTC_TIMESTAMP))
    earliest = pc.min(when).as_py()
    versions = pc.fill_null(version_ids, "")
    if (
        len(resources) == 0
        or (earliest is not None and earliest.year < 1000)
        or fetched_at.utcoffset() != timedelta(0)
        or not pc.all(pc.string_is_ascii(versions)).as_py()
    ):
        return pa.array(
            [resource.version_sort_key(fetched_at) for resource in resources], pa.string()
        )
    numeric = pc.match_substring_regex(versions, r"^[0-9]{1,12}$")
    padded = pc.if_else(numeric, pc.utf8_lpad(versions, 12, "0"), versions)
    return pc.binary_join_element_wise(_instant_texts(when), padded, content_hashes, "|")


def _instant_texts(when: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` for UTC timestamps (years 1000 to 9999).

    What ``pc.strftime(when, "%Y-%m-%dT%H:%M:%SZ")`` writes, about 30 times faster: a cast to
    text writes ``YYYY-MM-DD HH:MM:SS.ffffff`` (the UTC wall time once the zone is dropped).
    """
    text = when.cast(pa.timestamp("us")).cast(pa.string())
    return pc.binary_join_element_wise(
        pc.binary_replace_slice(text, 10, 11, "T"), pa.scalar("Z", pa.string()), ""
    )


def empty_raw_batch() -> pa.Table:
    """A batch with no rows, used to create a raw table that has no data yet."""
    return RAW_SCHEMA.empty_table()
