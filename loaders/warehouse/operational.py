"""Operational tables: what each run did, which landing pages it wrote, what it refused.

They live in the raw dataset beside the resource tables and hold no PHI: paths, counts,
reasons and JSON paths. A quarantined resource's id is stored (the warehouse already holds
it); its payload stays in the landing zone's quarantine pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from loaders.resources import RejectReason

LOAD_RUNS = "load_runs"
LANDING_MANIFEST = "landing_manifest"
QUARANTINE = "quarantine"


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


@dataclass(slots=True)
class QuarantineRecord:
    """One refused resource (a row of ``quarantine``)."""

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
    """One load run (a row of ``load_runs``)."""

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

    def as_row(self) -> dict[str, object]:
        """The row for ``load_runs`` (per-type counts as JSON)."""
        return {
            "run_id": self.run_id,
            "source_system": self.source_system,
            "command": self.command,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "files_read": self.files_read,
            "resources_read": self.resources_read,
            "resources_landed": self.resources_landed,
            "resources_merged": self.resources_merged,
            "resources_unchanged": self.resources_unchanged,
            "resources_quarantined": self.resources_quarantined,
            "landing_pages": self.landing_pages,
            "error": self.error,
            "counts_by_type": self.counts_by_type,
            "merged_by_type": self.merged_by_type,
        }


def quarantine_table(records: list[QuarantineRecord]) -> pa.Table:
    """The rows for ``quarantine`` (possibly none) as an arrow table."""
    return pa.Table.from_pylist([_quarantine_row(record) for record in records], QUARANTINE_SCHEMA)


def manifest_table(rows: list[dict[str, object]]) -> pa.Table:
    """The rows for ``landing_manifest`` (possibly none) as an arrow table."""
    return pa.Table.from_pylist(rows, LANDING_MANIFEST_SCHEMA)


def _quarantine_row(record: QuarantineRecord) -> dict[str, object]:
    return {
        "run_id": record.run_id,
        "source_system": record.source_system,
        "source_file": record.source_file,
        "line_number": record.line_number,
        "resource_type": record.resource_type,
        "resource_id": record.resource_id,
        "reason": str(record.reason),
        "json_path": record.json_path,
        "landing_file": record.landing_file,
        "quarantined_at": record.quarantined_at,
    }
