"""``fhir-elt reconcile`` against the local FHIR test server.

Each test syncs the synthetic data through the real REST loader, damages the warehouse or the
source on purpose, and checks what reconciliation finds, repairs and records: holes are
re-pulled within the budget, a resource deleted on the source is marked deleted (and nothing
else changes), a spent budget leaves recorded deltas and a non-zero exit, and the dbt test on
the latest checks fails while a delta above its threshold stands.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loaders.reconcile import ReconcileReport, report_lines, run_reconcile
from loaders.rest.config import RestSourceConfig
from loaders.settings import LoadSettings
from tests.fhir_server import FhirTestServer
from tests.integration.rest_support import SOURCE, compare, cursors, rest_config, run

TYPES = "Patient,Condition,Procedure,Encounter"
ROOT = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).with_name("dbt")


def _truth(server: FhirTestServer) -> dict[tuple[str, str], tuple[str, str]]:
    """The server's current versions of the reconciled types."""
    return {key: value for t in TYPES.split(",") for key, value in server.truth(t).items()}


def _reconcile(settings: LoadSettings, config: RestSourceConfig, **kwargs: Any) -> ReconcileReport:
    kwargs.setdefault("types", TYPES)
    return run_reconcile(config.name, settings, config=config, **kwargs)


def _rows(settings: LoadSettings, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return connection.execute(sql, params or []).fetchall()


def _checks(settings: LoadSettings, run_id: str) -> list[tuple]:
    return _rows(
        settings,
        "select resource_type, status, source_count, warehouse_count, delta, initial_delta, "
        "repaired, marked_deleted from raw_fhir.reconciliation_checks where run_id = ? "
        "order by resource_type, window_end",
        [run_id],
    )


def _drop_rows(settings: LoadSettings, table: str, ids: list[str]) -> None:
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.execute(
            f"delete from raw_fhir.{table} where source_system = ? and list_contains(?, id)",
            [SOURCE, ids],
        )


@pytest.fixture
def synced(fhir_server: FhirTestServer, settings: LoadSettings) -> RestSourceConfig:
    config = rest_config(fhir_server.base_url)
    assert run(settings, config, types=TYPES).exit_code == 0
    return config


def test_a_clean_sync_matches_and_a_hole_is_found_repaired_and_recorded(
    fhir_server: FhirTestServer, settings: LoadSettings, synced: RestSourceConfig
) -> None:
    clean = _reconcile(settings, synced)
    assert clean.exit_code == 0, report_lines(clean)
    assert clean.windows_repaired == 0
    rows = _checks(settings, clean.run.run_id)
    assert {row[0] for row in rows} == set(TYPES.split(","))
    assert {row[1] for row in rows} == {"ok"}
    for resource_type in TYPES.split(","):
        counted = sum(row[2] for row in rows if row[0] == resource_type)
        assert counted == len(fhir_server.truth(resource_type))
    committed = cursors(settings)
    lost = sorted(r["id"] for r in fhir_server.resources("Procedure"))[:3]
    _drop_rows(settings, "procedure", lost)
    assert compare(settings, _truth(fhir_server)).lost

    report = _reconcile(settings, synced)

    assert report.exit_code == 0, report_lines(report)
    assert compare(settings, _truth(fhir_server)).exact
    rows = _checks(settings, report.run.run_id)
    repaired = [row for row in rows if row[1] == "repaired"]
    assert [row[0] for row in repaired] == ["Procedure"] * len(repaired)
    assert sum(row[5] for row in repaired) == 3  # initial deltas: the three holes
    assert all(row[4] == 0 for row in rows)
    assert cursors(settings) == committed  # a repair never moves a sync cursor
    again = _reconcile(settings, synced)
    assert again.exit_code == 0
    assert {row[1] for row in _checks(settings, again.run.run_id)} == {"ok"}


def _snapshot(settings: LoadSettings) -> dict[tuple[str, str], tuple]:
    """Every stored row of the reconciled types, keyed by (table, id)."""
    snapshot = {}
    for table in ("patient", "condition", "procedure", "encounter"):
        rows = _rows(
            settings,
            f"select id, version_sort_key, content_hash, is_deleted, fetched_at, landing_file, "
            f"_dlt_load_id from raw_fhir.{table}",
        )
        snapshot.update({(table, row[0]): row for row in rows})
    return snapshot


def test_a_resource_deleted_on_the_source_is_marked_deleted_and_nothing_else_changes(
    fhir_server: FhirTestServer, settings: LoadSettings, synced: RestSourceConfig
) -> None:
    conditions = sorted(fhir_server.resources("Condition"), key=lambda r: r["id"])
    gone, hole = conditions[0], conditions[1]
    fhir_server.delete("Condition", gone["id"])
    _drop_rows(settings, "condition", [hole["id"]])
    before = _snapshot(settings)
    (stored_resource,) = _rows(
        settings, "select resource::varchar from raw_fhir.condition where id = ?", [gone["id"]]
    )[0]

    # Counts agree (one hole, one deletion): only the id sweep sees the difference.
    counted = _reconcile(settings, synced, types="Condition")
    assert counted.exit_code == 0 and counted.windows_repaired == 0
    assert {check.status for check in counted.checks} == {"ok"}

    report = _reconcile(settings, synced, types="Condition", sweep_deletes=True)

    assert report.exit_code == 0, report_lines(report)
    assert compare(settings, fhir_server.truth("Condition")).lost == set()
    ((is_deleted, resource, sort_key, request_id, landing_file, fetched_at),) = _rows(
        settings,
        "select is_deleted, resource::varchar, version_sort_key, request_id, landing_file, "
        "fetched_at from raw_fhir.condition where id = ?",
        [gone["id"]],
    )
    assert is_deleted is True
    assert resource == stored_resource  # the last known JSON is kept
    assert sort_key == before[("condition", gone["id"])][1] + "|deleted"
    assert request_id == report.run.run_id
    assert fetched_at > before[("condition", gone["id"])][4]  # when it was noticed
    assert landing_file.startswith(f"{SOURCE}/_deleted/")
    page = (settings.landing_root / landing_file).read_bytes()
    assert f'"url":"Condition/{gone["id"]}"'.encode() in gzip.decompress(page)
    manifest = _rows(
        settings,
        "select resource_type, resource_count from raw_fhir.landing_manifest "
        "where landing_file = ?",
        [landing_file],
    )
    assert manifest == [("_deleted", 1)]
    after = _snapshot(settings)
    changed = {key for key in after if after[key] != before.get(key)}
    assert changed == {("condition", gone["id"]), ("condition", hole["id"])}
    ((status, marked, ids_compared),) = _rows(
        settings,
        "select status, marked_deleted, ids_compared from raw_fhir.reconciliation_checks "
        "where run_id = ?",
        [report.run.run_id],
    )
    assert (status, marked, ids_compared) == ("repaired", 1, True)

    # A later real version on the source (re-created) outranks the deletion mark.
    fhir_server.add(gone)
    time.sleep(1.1)  # window ends come from the server's Date header (whole seconds)
    assert run(settings, synced, types="Condition").exit_code == 0
    ((is_deleted, version),) = _rows(
        settings,
        "select is_deleted, version_id from raw_fhir.condition where id = ?",
        [gone["id"]],
    )
    assert (is_deleted, version) == (
        False,
        fhir_server.truth("Condition")[("Condition", gone["id"])][0],
    )


def test_a_spent_repair_budget_exits_5_and_records_the_remaining_deltas(
    fhir_server: FhirTestServer,
    settings: LoadSettings,
    synced: RestSourceConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from loaders.cli import main

    _drop_rows(settings, "patient", [fhir_server.resources("Patient")[0]["id"]])
    _drop_rows(settings, "encounter", [fhir_server.resources("Encounter")[0]["id"]])
    monkeypatch.setenv(f"SOURCES__FHIR_REST__{SOURCE.upper()}__BASE_URL", fhir_server.base_url)
    args = [
        "reconcile",
        "--source",
        SOURCE,
        "--types",
        TYPES,
        "--warehouse",
        str(settings.duckdb_path),
        "--landing",
        str(settings.landing_root),
    ]

    code = main([*args, "--repair-budget", "1"])

    captured = capsys.readouterr()
    assert code == 5, captured.err
    assert "repair budget exhausted: 1 window(s)" in captured.err
    assert "not repaired (over budget)" in captured.err
    (run_id,) = _rows(settings, "select max(run_id) from raw_fhir.reconciliation_checks")[0]
    failing = [row for row in _checks(settings, run_id) if row[1] != "ok"]
    assert sorted((row[0], row[1], row[4]) for row in failing) == [
        ("Encounter", "repaired", 0),
        ("Patient", "over_budget", 1),
    ]
    ((status, error),) = _rows(
        settings, "select status, error from raw_fhir.load_runs where run_id = ?", [run_id]
    )
    assert (status, error) == ("succeeded", None)

    assert main([*args]) == 0  # the next run repairs the rest
    assert "repaired Patient" in capsys.readouterr().out


def _dbt(args: list[str], settings: LoadSettings) -> dict[str, dict[str, Any]]:
    """Run dbt on the test warehouse; the results by node name (status, failures)."""
    target = settings.duckdb_path.parent / "dbt_target"
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(ROOT / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(settings.duckdb_path),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    result = subprocess.run(
        [
            str(DBT),
            *args,
            "--project-dir",
            str(ROOT),
            "--target-path",
            str(target),
            "--log-path",
            str(target / "logs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    results_file = target / "run_results.json"
    assert results_file.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads(results_file.read_text())["results"]
    return {r["unique_id"].split(".")[2]: r for r in results}


def test_dbt_fails_while_a_delta_above_the_threshold_stands(
    fhir_server: FhirTestServer, settings: LoadSettings, synced: RestSourceConfig
) -> None:
    procedures = sorted(r["id"] for r in fhir_server.resources("Procedure"))
    for procedure_id in procedures[:2]:
        fhir_server.delete("Procedure", procedure_id)
    _drop_rows(settings, "condition", [fhir_server.resources("Condition")[0]["id"]])
    _drop_rows(settings, "patient", [fhir_server.resources("Patient")[0]["id"]])
    # An earlier run leaves all three windows over budget; the later one (budget 1) repairs
    # the Procedure window (delta -2, the largest) and supersedes the earlier run's checks.
    assert _reconcile(settings, synced, repair_budget=0).exit_code == 5
    assert _reconcile(settings, synced, repair_budget=1).exit_code == 5
    models = [
        "stg_fhir__reconciliation_checks",
        "reconciliation_status",
        "stg_fhir__encounters",
        "stg_fhir__conditions",
        "stg_fhir__observations",
        "stg_fhir__procedures",
        "stg_fhir__medication_requests",
        "encounter_completeness",
    ]

    # cautious: leave out tests that need unselected nodes (seeds, other staging models)
    results = _dbt(["build", "--select", *models, "--indirect-selection", "cautious"], settings)

    threshold = results["reconciliation_delta_within_threshold"]
    assert threshold["status"] == "fail"
    assert threshold["failures"] == 2  # the standing Condition and Patient holes, not 2 + 3
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        staged = {
            row[0]
            for row in connection.execute(
                "select procedure_id from staging.stg_fhir__procedures"
            ).fetchall()
        }
        incomplete = connection.execute(
            "select count(*), count(*) filter (where incomplete_linked_types = 'Condition') "
            "from operations.encounter_completeness where not is_complete"
        ).fetchone()
    assert staged == {r["id"] for r in fhir_server.resources("Procedure")}  # deletions excluded
    encounters = len(fhir_server.resources("Encounter"))
    # A Condition window from the beginning still differs: every encounter waits for it; the
    # repaired Procedure window and the types not fed (Observation...) hold nothing back.
    assert incomplete == (encounters, encounters)
