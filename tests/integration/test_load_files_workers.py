"""`load files` with parsing in worker processes: the same warehouse, landing zone and refusals.

The same input is loaded twice into fresh warehouses, once parsed in this process
(``FHIR_ELT_PARSE_WORKERS=0``) and once in two forked workers; rows, landing pages (their
decompressed bytes and line counts), quarantine rows and drift findings must be equal.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from loaders.drift.policy import POLICY_ENV_VAR
from loaders.files.column_pages import WORKERS_ENV
from loaders.landing import read_manifest
from loaders.load_files import load_files
from loaders.settings import LoadSettings
from tests.fhir_samples import patient, write_ndjson


def _inputs(root: Path) -> Path:
    rows: list[object] = []
    for i in range(500):
        rows.append(patient(f"p{i}", version=str(1 + i % 3), gender="female"))
        rows.append({"resourceType": "Encounter", "id": f"e{i}", "status": "finished"})
        if i % 50 == 0:
            rows.append(b'{"resourceType": "Patient", "id": "bad id"}')
        if i % 70 == 0:
            rows.append(patient(f"d{i}", birthplace="x"))  # drift: unknown element
    write_ndjson(root / "a.ndjson", rows)
    write_ndjson(root / "b.ndjson", [patient("p1", version="9", gender="male")])
    return root


def _state(settings: LoadSettings) -> dict[str, object]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:

        def rows(sql: str) -> list[tuple[object, ...]]:
            return connection.execute(sql).fetchall()

        state: dict[str, object] = {
            table: rows(
                f"select id, version_id, last_updated, resource::varchar, content_hash, "
                f"split_part(request_id, '/', -1) from raw_fhir.{table} order by id"
            )
            for table in ("patient", "encounter")
        }
        state["quarantine"] = rows(
            "select source_file, line_number, reason, json_path, landing_line "
            "from raw_fhir.quarantine order by line_number"
        )
        state["drift"] = rows(
            "select resource_type, json_path, observed_kind, expected_kind, count, policy "
            "from raw_fhir.schema_drift order by json_path"
        )
    (manifest,) = (settings.landing_root / settings.source_system / "_manifests").iterdir()
    state["pages"] = [
        (
            page.resource_type,
            page.resource_count,
            gzip.decompress((settings.landing_root / page.landing_file).read_bytes()),
            [count for _, count in page.request_ids or ()],
        )
        for page in read_manifest(manifest)
    ]
    return state


def test_workers_load_what_one_process_loads(
    tmp_path: Path,
    settings: LoadSettings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="loaders.files.column_pages")
    source = _inputs(tmp_path / "in")
    monkeypatch.setenv(POLICY_ENV_VAR, "Patient.birthplace=warn")
    states = []
    for workers in ("0", "2"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        run_settings = replace(
            settings,
            page_size=128,
            duckdb_path=tmp_path / workers / "fhir.duckdb",
            landing_root=tmp_path / workers / "landing",
        )
        caplog.clear()
        report = load_files(source, run_settings)
        started = "parsing in 2 worker process(es)" in caplog.messages
        assert started is (workers == "2")
        assert report.exit_code == 3  # the ids with a space are quarantined
        assert report.run.resources_quarantined == 10
        assert report.run.resources_read == 1000 + 10 + 8 + 1
        states.append(_state(run_settings))
    inline, workers = states
    assert inline["patient"] and len(inline["pages"]) > 8  # type: ignore[arg-type]
    assert inline["drift"] and inline["quarantine"]
    assert workers == inline
