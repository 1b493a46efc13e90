"""Operational tables: what each run did, which landing pages it wrote, what it refused.

They live in the raw dataset beside the resource tables and hold no PHI: paths, counts,
reasons and JSON paths. A quarantined resource's id is stored (the warehouse already holds
it); its payload stays in the landing zone's quarantine pages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from loaders.landing import LandingPage
from loaders.resources import RejectReason

LOAD_RUNS = "load_runs"
LANDING_MANIFEST = "landing_manifest"
QUARANTINE = "quarantine"
REQUEST_LOG = "request_log"


_TIMESTAMP = pa.timestamp("us", tz="UTC")

# Explicit schemas, so both tables exist (empty) from the first run on, whatever happened in it.
LANDING_MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("landing_file", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("resource_count", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("created_at", _TIMESTAMP, nullable=False),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        pa.field("resource_type", pa.string()),
        pa.field("resource_id", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("json_path", pa.string(), nullable=False),
        pa.field("landing_file", pa.string()),
        pa.field("quarantined_at", _TIMESTAMP, nullable=False),
    ]
)

# One row per HTTP attempt. Paths are templates (``Patient/{id}``) and only parameter names are
# kept, so the table holds no identifier even for per-patient requests.
REQUEST_LOG_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("resource_type", pa.string()),
        pa.field("method", pa.string(), nullable=False),
        pa.field("path_template", pa.string(), nullable=False),
        pa.field("query_keys", pa.string(), nullable=False),
        pa.field("status", pa.int64()),
        pa.field("latency_ms", pa.float64(), nullable=False),
        pa.field("attempt", pa.int64(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("error_class", pa.string()),
        pa.field("retry_after_seconds", pa.float64()),
        pa.field("response_bytes", pa.int64(), nullable=False),
        pa.field("started_at", _TIMESTAMP, nullable=False),
    ]
)


@dataclass(slots=True)
class QuarantineRecord:
    """One refused resource; its fields are the columns of ``quarantine``, in order."""

    run_id: str
    source_system: str
    source_file: str
    line_number: int
    resource_type: str | None
    resource_id: str | None
    reason: RejectReason
    json_path: str
    landing_file: str | None
    quarantined_at: datetime


@dataclass(slots=True)
class RunRecord:
    """One load run; its fields are the columns of ``load_runs`` (per-type counts as JSON)."""

    run_id: str
    source_system: str
    command: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    files_read: int = 0
    resources_read: int = 0
    resources_landed: int = 0
    resources_merged: int = 0
    resources_unchanged: int = 0
    resources_quarantined: int = 0
    landing_pages: int = 0
    error: str | None = None
    counts_by_type: dict[str, int] = field(default_factory=dict)
    merged_by_type: dict[str, int] = field(default_factory=dict)


def quarantine_table(records: list[QuarantineRecord]) -> pa.Table:
    """The rows for ``quarantine`` (possibly none) as an arrow table."""
    return pa.Table.from_pylist([asdict(record) for record in records], QUARANTINE_SCHEMA)


def manifest_table(pages: list[LandingPage]) -> pa.Table:
    """The rows for ``landing_manifest`` (possibly none) as an arrow table."""
    return pa.Table.from_pylist([asdict(page) for page in pages], LANDING_MANIFEST_SCHEMA)


def request_log_table(run_id: str, source_system: str, records: list[Any]) -> pa.Table:
    """The rows for ``request_log`` from the HTTP client's request records (dataclasses)."""
    rows = [
        {"run_id": run_id, "source_system": source_system, **asdict(record)} for record in records
    ]
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in REQUEST_LOG_SCHEMA.names} for row in rows],
        REQUEST_LOG_SCHEMA,
    )
