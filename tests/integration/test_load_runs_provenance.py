"""``load_runs`` provenance in the warehouse: written by a file load; added to an old table."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from loaders import code_version
from loaders import runs as runs_module
from loaders.landing import LandingZone
from loaders.load_files import load_files
from loaders.runs import record_run
from loaders.settings import LoadSettings
from loaders.warehouse.operational import RunRecord
from loaders.warehouse.operational_writer import write_operational_rows
from loaders.warehouse.pipeline import make_pipeline
from tests.fhir_samples import patient, write_ndjson

PROVENANCE = ("credential_client_id", "resource_types", "code_version", "code_commit")


def _runs(settings: LoadSettings) -> dict[str, dict[str, object]]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        cursor = connection.execute(
            f"select run_id, {', '.join(PROVENANCE)} from raw_fhir.load_runs"
        )
        names = [column[0] for column in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def test_file_load_records_types_and_code(tmp_path: Path, settings: LoadSettings) -> None:
    source = write_ndjson(tmp_path / "in" / "Patient.ndjson", [patient("p1"), patient("p2")])
    report = load_files(source.parent, settings)
    row = _runs(settings)[report.run.run_id]
    assert row["credential_client_id"] is None
    assert row["resource_types"] == "Patient"
    assert row["code_version"] == code_version.package_version()
    assert row["code_commit"] == code_version.git_commit()


def test_an_existing_load_runs_table_gains_the_columns(
    settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse whose load_runs predates the provenance columns: dlt adds them once, then
    the direct writer (which needs every column) takes over again."""
    written: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> bool:
        written.append(write_operational_rows(*args, **kwargs))
        return written[-1]

    monkeypatch.setattr(runs_module, "write_operational_rows", spy)
    pipeline = make_pipeline(settings)
    started_at = datetime.now(UTC)
    old = {
        name: value
        for name, value in asdict(RunRecord("old", "test", "load files", started_at)).items()
        if name not in PROVENANCE
    }
    pipeline.run(
        dlt.resource(
            [old],
            name="load_runs",
            write_disposition="merge",
            primary_key=("run_id",),
            columns={
                "finished_at": {"data_type": "timestamp", "nullable": True},
                "error": {"data_type": "text", "nullable": True},
                "counts_by_type": {"data_type": "json"},
                "merged_by_type": {"data_type": "json"},
            },
        )
    )
    for run_id in ("new-1", "new-2"):
        run = RunRecord(
            run_id, "test", "load rest", started_at, credential_client_id="app-1", code_commit=None
        )
        run.add_resource_types(["Observation"])
        record_run(
            pipeline, LandingZone(settings.landing_root, "test", run_id), [], run, settings=settings
        )
    assert written == [False, True]
    runs = _runs(settings)
    assert runs["old"]["credential_client_id"] is None
    for run_id in ("new-1", "new-2"):
        assert runs[run_id]["credential_client_id"] == "app-1"
        assert runs[run_id]["resource_types"] == "Observation"
        assert runs[run_id]["code_version"] == code_version.package_version()
        assert runs[run_id]["code_commit"] is None
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        load_ids = dict(
            connection.execute("select run_id, _dlt_load_id from raw_fhir.load_runs").fetchall()
        )
    assert load_ids["new-1"] != load_ids["new-2"]
