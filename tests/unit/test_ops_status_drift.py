"""``fhir-elt status`` shows each source's latest drift run, by time, not by run id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from loaders.drift.ledger import SCHEMA_DRIFT_SCHEMA
from loaders.ops.status import collect_status

SECOND = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def _finding(source: str, run_id: str, path: str, seen: datetime) -> dict[str, object]:
    return {
        "source_system": source, "resource_type": "Patient", "json_path": path,
        "observed_kind": "string", "expected_kind": "absent",
        "first_seen_landing_file": "p.ndjson.gz", "first_seen_at": seen, "run_id": run_id,
        "count": 1, "policy": "warn",
    }  # fmt: skip


def test_two_runs_of_one_second_show_the_later_one(tmp_path: Path) -> None:
    # Same second, so the run ids differ only by their random suffix: the later run sorts first.
    earlier, later = "20261207T030000Z-ffffff", "20261207T030000Z-000000"
    rows = [
        _finding("ehr", earlier, "Patient.old", SECOND + timedelta(milliseconds=100)),
        _finding("ehr", later, "Patient.new", SECOND + timedelta(milliseconds=600)),
        _finding("other", "20261206T010000Z-aaaaaa", "Patient.x", SECOND - timedelta(days=1)),
    ]
    warehouse = tmp_path / "fhir.duckdb"
    with duckdb.connect(str(warehouse)) as connection:
        connection.register("rows", pa.Table.from_pylist(rows, SCHEMA_DRIFT_SCHEMA))
        connection.execute("create schema raw_fhir")
        connection.execute("create table raw_fhir.schema_drift as select * from rows")
    shown = [(row[0], row[2]) for row in collect_status(warehouse).drift_paths]
    assert shown == [("ehr", "Patient.new"), ("other", "Patient.x")]
