"""A mart row traced back to its landing file, load, request and run (``operations.row_lineage``).

Generated files are loaded (source ``test``) and a REST sync with client-credentials auth pulls
Patient and Encounter from the local test server (source ``ehr``) into one warehouse; dbt builds
``+row_lineage +patient_timeline +pipeline_runs``. The README's "Tracing a mart row back" query
then answers for one timeline row of each source: the landing page (whose sha256 matches the
file on disk), the raw row's dlt load id, the request and the run with its credential and code
version; ``pipeline_runs`` carries each run's client id, types and code version.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from loaders.code_version import package_version
from loaders.load_files import load_files
from loaders.rest.config import AuthConfig, AuthKind
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.fhir_server import RegisteredClient, ServerAuth
from tests.integration.dbt_support import AS_OF, run_dbt_subprocess
from tests.integration.rest_support import SOURCE, rest_config, run

CLIENT = "lineage-client"
SECRET = "lineage-secret-never-stored"

# The query of README.md, "Tracing a mart row back", for one encounter of the timeline.
TRACE = """
    select
        lineage.source_system,
        lineage.landing_file,
        lineage.landing_file_sha256,
        lineage.load_id,
        lineage.request_id,
        lineage.request_path_template,
        lineage.request_http_status,
        lineage.requested_at,
        lineage.run_id,
        lineage.run_command,
        lineage.run_credential_client_id,
        lineage.run_code_version,
        lineage.run_code_commit
    from marts.patient_timeline as timeline
    inner join operations.row_lineage as lineage
        on timeline.source_system = lineage.source_system
        and timeline.event_key = lineage.resource_key
        and lineage.resource_type = 'Encounter'
    where timeline.event_type = 'encounter' and timeline.source_system = ?
    order by timeline.event_key
    limit 1
"""


def _trace(database: Path, source_system: str) -> dict[str, Any]:
    with duckdb.connect(str(database), read_only=True) as connection:
        cursor = connection.execute(TRACE, [source_system])
        names = [column[0] for column in cursor.description]
        row = cursor.fetchone()
    assert row is not None, f"no timeline encounter of {source_system} traced"
    return dict(zip(names, row, strict=True))


def _raw_load_ids(database: Path, source_system: str, landing_file: str) -> set[str]:
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.execute(
            "select distinct _dlt_load_id from raw_fhir.encounter "
            "where source_system = ? and landing_file = ?",
            [source_system, landing_file],
        ).fetchall()
    return {load_id for (load_id,) in rows}


def test_a_mart_row_traces_to_its_file_load_request_and_run(
    tmp_path: Path, settings: LoadSettings, fhir_server_factory
) -> None:
    generate(
        GenerateOptions(
            patients=3, seed=5, out=tmp_path / "in", as_of=datetime(2026, 6, 1, tzinfo=UTC)
        )
    )
    files_run = load_files(tmp_path / "in", settings).run
    server = fhir_server_factory(
        auth=ServerAuth(required=True, clients={CLIENT: RegisteredClient(secret=SECRET)})
    )
    config = rest_config(
        server.base_url,
        auth=AuthConfig(
            kind=AuthKind.CLIENT_CREDENTIALS,
            token_url=server.token_url,
            client_id=CLIENT,
            client_secret=SECRET,
        ),
    )
    rest_report = run(settings, config, types="Patient,Encounter")
    assert rest_report.exit_code == 0

    code, output, results = run_dbt_subprocess(
        [
            "build",
            "--select",
            "+row_lineage",
            "+patient_timeline",
            "+pipeline_runs",
            "--exclude-resource-type",
            "unit_test",
            "--indirect-selection",
            "cautious",  # no test that reads a model outside the selection
            "--vars",
            f"{{as_of: '{AS_OF}'}}",
        ],
        tmp_path / "target",
        {"FHIR_ELT_DUCKDB_PATH": str(settings.duckdb_path)},
    )
    assert code == 0, output[-3000:]
    built = {result["unique_id"]: result["status"] for result in results}
    assert built["model.fhir_elt.row_lineage"] == "success"
    assert built["model.fhir_elt.patient_timeline"] == "success"

    from_file = _trace(settings.duckdb_path, settings.source_system)
    page = settings.landing_root / from_file["landing_file"]
    assert hashlib.sha256(page.read_bytes()).hexdigest() == from_file["landing_file_sha256"]
    assert _raw_load_ids(
        settings.duckdb_path, settings.source_system, from_file["landing_file"]
    ) == {from_file["load_id"]}
    assert from_file["request_id"].startswith(f"{files_run.run_id}/file-")
    assert from_file["request_path_template"] is None  # a file has no HTTP request
    assert from_file["run_id"] == files_run.run_id
    assert from_file["run_command"] == "load files"
    assert from_file["run_credential_client_id"] is None
    assert from_file["run_code_version"] == package_version()

    from_rest = _trace(settings.duckdb_path, SOURCE)
    page = settings.landing_root / from_rest["landing_file"]
    assert hashlib.sha256(page.read_bytes()).hexdigest() == from_rest["landing_file_sha256"]
    assert _raw_load_ids(settings.duckdb_path, SOURCE, from_rest["landing_file"]) == {
        from_rest["load_id"]
    }
    assert from_rest["run_id"] == rest_report.run.run_id
    assert from_rest["run_command"] == "load rest"
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        logged = connection.execute(
            "select path_template, status, started_at, run_id from raw_fhir.request_log "
            "where request_id = ? order by attempt desc limit 1",
            [from_rest["request_id"]],
        ).fetchone()
    assert logged is not None and logged[3] == rest_report.run.run_id
    assert from_rest["request_path_template"] == logged[0]
    assert from_rest["request_http_status"] == logged[1] == 200
    assert from_rest["requested_at"] == logged[2].astimezone(UTC).replace(tzinfo=None)
    assert from_rest["run_credential_client_id"] == CLIENT
    assert SECRET not in repr(from_rest)

    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        runs = {
            row[0]: row[1:]
            for row in connection.execute(
                "select run_id, credential_client_id, resource_types, code_version "
                "from marts.pipeline_runs"
            ).fetchall()
        }
    assert runs[rest_report.run.run_id] == (CLIENT, "Encounter,Patient", package_version())
    assert runs[files_run.run_id][0] is None
