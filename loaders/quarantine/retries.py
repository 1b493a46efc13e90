"""``raw_fhir.quarantine_retries``: one row per quarantined resource a retry read.

The ``quarantine`` rows are never changed or deleted; a retry's outcome is recorded here,
keyed by the retry run and the quarantine row's key (the quarantining run, source file, line
and JSON path, the columns it joins on). No payload and no identifier: outcomes, reasons, JSON
paths and landing file names only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import pyarrow as pa

from loaders.runs import PipelineOrFactory, new_load_id, resolve_pipeline
from loaders.settings import LoadSettings
from loaders.warehouse.operational_writer import OperationalRows, write_operational_rows

QUARANTINE_RETRIES = "quarantine_retries"
RETRY_KEY = ("retry_run_id", "quarantine_id")

RESOLVED = "resolved"
STILL_REFUSED = "still_refused"
BYTES_UNAVAILABLE = "bytes_unavailable"

_TIMESTAMP = pa.timestamp("us", tz="UTC")

QUARANTINE_RETRIES_SCHEMA = pa.schema(
    [
        pa.field("quarantine_id", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("source_system", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        pa.field("json_path", pa.string(), nullable=False),
        pa.field("retry_run_id", pa.string(), nullable=False),
        pa.field("retried_at", _TIMESTAMP, nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("retry_reason", pa.string()),
        pa.field("retry_json_path", pa.string()),
        pa.field("landing_file", pa.string()),
        pa.field("resources", pa.int64(), nullable=False),
    ]
)


@dataclass(slots=True)
class RetryRecord:
    """One retry of one quarantined resource; its fields are the table's columns, in order.

    Attributes:
        quarantine_id: The short id ``fhir-elt quarantine`` shows.
        run_id: The run that quarantined it (with the next three: the quarantine row's key).
        outcome: ``resolved`` (parsed now, landed and merged), ``still_refused`` or
            ``bytes_unavailable`` (no original bytes, or their page is missing or altered).
        retry_reason: Why it is still refused (or why its bytes are unavailable); None when
            resolved.
        retry_json_path: Where it is still refused.
        landing_file: The page a resolved resource landed in.
        resources: Resources it gave (a Bundle gives several).
    """

    quarantine_id: str
    run_id: str
    source_system: str
    source_file: str
    line_number: int
    json_path: str
    retry_run_id: str
    retried_at: datetime
    outcome: str
    retry_reason: str | None = None
    retry_json_path: str | None = None
    landing_file: str | None = None
    resources: int = 0


def retries_table(records: Sequence[RetryRecord]) -> pa.Table:
    """The rows for ``quarantine_retries`` as an arrow table."""
    return pa.Table.from_pylist([asdict(record) for record in records], QUARANTINE_RETRIES_SCHEMA)


def write_retries(
    pipeline: PipelineOrFactory, settings: LoadSettings, records: Sequence[RetryRecord]
) -> None:
    """Merge the records into ``quarantine_retries`` (straight into DuckDB; dlt on Snowflake).

    Raises:
        duckdb.Error, PipelineStepFailed: The warehouse could not be written.
    """
    rows = retries_table(records)
    if write_operational_rows(
        settings, new_load_id(), [OperationalRows(QUARANTINE_RETRIES, rows, RETRY_KEY)]
    ):
        return
    import dlt

    resolve_pipeline(pipeline).run(
        dlt.resource(
            [rows], name=QUARANTINE_RETRIES, write_disposition="merge", primary_key=RETRY_KEY
        )
    )
