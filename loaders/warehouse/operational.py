"""Operational tables: what each run did, which landing pages it wrote, what it refused.

They live in the raw dataset beside the resource tables and hold no PHI: paths, counts,
reasons and JSON paths. A quarantined resource's id is stored (the warehouse already holds
it); its payload stays in the landing zone's quarantine pages.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from loaders.code_version import git_commit, package_version
from loaders.landing import LandingPage
from loaders.resources import RejectReason

LOAD_RUNS = "load_runs"
LANDING_MANIFEST = "landing_manifest"
QUARANTINE = "quarantine"
REQUEST_LOG = "request_log"
RUN_METRICS = "run_metrics"
RECONCILIATION_CHECKS = "reconciliation_checks"


_TIMESTAMP = pa.timestamp("us", tz="UTC")

# One row per run: the fields of RunRecord. Only the key is required, as in the table dlt creates
# from the run's dict (the fallback when the table must evolve); the per-type counts are JSON.
LOAD_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string()),
        pa.field("command", pa.string()),
        pa.field("started_at", _TIMESTAMP),
        pa.field("finished_at", _TIMESTAMP),
        pa.field("status", pa.string()),
        pa.field("files_read", pa.int64()),
        pa.field("resources_read", pa.int64()),
        pa.field("resources_landed", pa.int64()),
        pa.field("resources_merged", pa.int64()),
        pa.field("resources_unchanged", pa.int64()),
        pa.field("resources_quarantined", pa.int64()),
        pa.field("landing_pages", pa.int64()),
        pa.field("error", pa.string()),
        pa.field("counts_by_type", pa.string()),
        pa.field("merged_by_type", pa.string()),
        pa.field("credential_client_id", pa.string()),
        pa.field("resource_types", pa.string()),
        pa.field("code_version", pa.string()),
        pa.field("code_commit", pa.string()),
    ]
)
LOAD_RUNS_JSON_COLUMNS = ("counts_by_type", "merged_by_type")

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
        # The line of landing_file holding the original bytes (1-based; null: none kept).
        pa.field("landing_line", pa.int64()),
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


# One row per run and resource type (plus a ``(untyped)`` row for requests and token refreshes
# that belong to no type), written by loaders/ops/metrics.py after a REST run. Counts, bytes,
# latencies and costs only: no path, parameter or identifier.
RUN_METRICS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("command", pa.string(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("run_status", pa.string(), nullable=False),
        pa.field("started_at", _TIMESTAMP, nullable=False),
        pa.field("finished_at", _TIMESTAMP),
        pa.field("duration_seconds", pa.float64(), nullable=False),
        pa.field("requests", pa.int64(), nullable=False),
        pa.field("retries", pa.int64(), nullable=False),
        pa.field("http_429", pa.int64(), nullable=False),
        pa.field("http_5xx", pa.int64(), nullable=False),
        pa.field("failed_requests", pa.int64(), nullable=False),
        pa.field("token_refreshes", pa.int64(), nullable=False),
        pa.field("pages", pa.int64(), nullable=False),
        pa.field("response_bytes", pa.int64(), nullable=False),
        pa.field("latency_p50_ms", pa.float64()),
        pa.field("latency_p95_ms", pa.float64()),
        pa.field("latency_p99_ms", pa.float64()),
        pa.field("latency_max_ms", pa.float64()),
        pa.field("resources_received", pa.int64(), nullable=False),
        pa.field("resources_landed", pa.int64(), nullable=False),
        pa.field("resources_merged", pa.int64(), nullable=False),
        pa.field("resources_unchanged", pa.int64(), nullable=False),
        pa.field("resources_quarantined", pa.int64(), nullable=False),
        pa.field("drift_findings", pa.int64(), nullable=False),
        pa.field("warehouse_seconds", pa.float64(), nullable=False),
        pa.field("requests_per_1k_resources", pa.float64()),
        pa.field("warehouse_seconds_per_1k_resources", pa.float64()),
        pa.field("estimated_cost_per_1k_resources", pa.float64()),
        pa.field("stopped_by_budget", pa.bool_(), nullable=False),
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
    landing_line: int | None = None


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
    # Provenance: which credential (the OAuth client id, never a secret; None for files and
    # static tokens), which resource types (sorted, comma-separated) and which code.
    credential_client_id: str | None = None
    resource_types: str | None = None
    code_version: str | None = field(default_factory=package_version)
    code_commit: str | None = field(default_factory=git_commit)

    def add_resource_types(self, types: Iterable[str]) -> None:
        """Add ``types`` to ``resource_types`` (sorted, unique; ``_deleted`` etc. skipped)."""
        known = set(self.resource_types.split(",")) if self.resource_types else set()
        known.update(name for name in types if name and not name.startswith("_"))
        self.resource_types = ",".join(sorted(known)) or None


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


# One row per reconciliation check: a resource type and a ``_lastUpdated`` window ``(start,
# end]`` (start null: from the beginning), the source's count against the warehouse's count of
# current, non-deleted rows in it, before and after repair (loaders/reconcile/). Counts only.
RECONCILIATION_CHECKS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("window_start", _TIMESTAMP),
        pa.field("window_end", _TIMESTAMP, nullable=False),
        pa.field("source_count", pa.int64()),
        pa.field("warehouse_count", pa.int64(), nullable=False),
        pa.field("delta", pa.int64()),
        pa.field("initial_delta", pa.int64()),
        pa.field("ids_compared", pa.bool_(), nullable=False),
        pa.field("repaired", pa.bool_(), nullable=False),
        pa.field("resources_fetched", pa.int64(), nullable=False),
        pa.field("marked_deleted", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("checked_at", _TIMESTAMP, nullable=False),
    ]
)


def reconciliation_checks_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The rows for ``reconciliation_checks`` (possibly none) as an arrow table."""
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in RECONCILIATION_CHECKS_SCHEMA.names} for row in rows],
        RECONCILIATION_CHECKS_SCHEMA,
    )


BULK_ERRORS = "bulk_errors"

# One row per issue of an OperationOutcome listed in a Bulk Data export's error files
# (loaders/bulk/errors.py). Issue codes and FHIRPath expressions only: the diagnostics and
# details text can quote patient data and are never stored. Keyed by job, file, line and issue,
# so a file read again after a crash adds no row.
BULK_ERRORS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("export_key", pa.string(), nullable=False),
        pa.field("job_id", pa.string(), nullable=False),
        pa.field("file_key", pa.string(), nullable=False),
        pa.field("file_label", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        pa.field("issue_index", pa.int64(), nullable=False),
        pa.field("severity", pa.string(), nullable=False),
        pa.field("code", pa.string(), nullable=False),
        pa.field("details_codes", pa.string()),
        pa.field("expression", pa.string()),
        pa.field("recorded_at", _TIMESTAMP, nullable=False),
    ]
)
