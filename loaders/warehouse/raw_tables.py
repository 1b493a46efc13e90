"""The raw table contract (DESIGN.md) as an arrow schema and dlt column hints.

One table per resource type in the raw dataset; primary key ``(source_system, id)``; one row
per key holding the latest version. ``resource`` stays JSON text until the warehouse, where it
becomes a JSON (DuckDB) or VARIANT (Snowflake) column.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa

from loaders.resources import ParsedResource

RAW_DATASET = "raw_fhir"
PRIMARY_KEY = ("source_system", "id")

_TIMESTAMP = pa.timestamp("us", tz="UTC")

RAW_SCHEMA = pa.schema(
    [
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("version_id", pa.string()),
        pa.field("last_updated", _TIMESTAMP),
        pa.field("resource", pa.string(), nullable=False),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("version_sort_key", pa.string(), nullable=False),
        pa.field("fetched_at", _TIMESTAMP, nullable=False),
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

    Args:
        resources: The page's resources, all of one resource type.
        source_system: The source they came from.
        fetched_at: When they were read from the source (UTC).
        request_ids: The request (or input file) each resource came from, aligned with
            ``resources``.
        landing_file: The landing page holding them.
    """
    count = len(resources)
    return pa.Table.from_arrays(
        [
            pa.array([source_system] * count, pa.string()),
            pa.array([resource.resource_type for resource in resources], pa.string()),
            pa.array([resource.id for resource in resources], pa.string()),
            pa.array([resource.version_id for resource in resources], pa.string()),
            pa.array([resource.last_updated for resource in resources], _TIMESTAMP),
            pa.array([resource.text.decode("utf-8") for resource in resources], pa.string()),
            pa.array([resource.content_hash for resource in resources], pa.string()),
            pa.array(
                [resource.version_sort_key(fetched_at) for resource in resources], pa.string()
            ),
            pa.array([fetched_at] * count, _TIMESTAMP),
            pa.array(list(request_ids), pa.string()),
            pa.array([landing_file] * count, pa.string()),
            pa.array([False] * count, pa.bool_()),
        ],
        schema=RAW_SCHEMA,
    )


def empty_raw_batch() -> pa.Table:
    """A batch with no rows, used to create a raw table that has no data yet."""
    return RAW_SCHEMA.empty_table()
