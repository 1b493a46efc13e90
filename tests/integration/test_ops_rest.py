"""Operations around a REST run against the local server: metrics, budgets, dry runs, status."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

from loaders.cli import main
from loaders.ops.budgets import RunBudget
from loaders.ops.metrics import UNTYPED
from loaders.ops.status import collect_status, format_status
from loaders.settings import LoadSettings
from tests.fhir_server import FhirTestServer, Scenario
from tests.integration.rest_support import compare, rest_config, run

TYPES = "Patient,Encounter,Observation"


def _metrics(settings: LoadSettings) -> list[dict]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        cursor = connection.execute("select * from raw_fhir.run_metrics order by started_at")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_a_run_records_metrics_per_type(fhir_server_factory, settings: LoadSettings) -> None:
    server = fhir_server_factory(scenario=Scenario(seed=3))
    server.scenario.burst_429(2)
    config = rest_config(server.base_url, page_size=40)

    report = run(settings, config, types=TYPES)

    assert report.exit_code == 0
    rows = {row["resource_type"]: row for row in _metrics(settings)}
    assert set(rows) == {"Patient", "Encounter", "Observation", UNTYPED}
    truth = {rtype: len(server.truth(rtype)) for rtype in TYPES.split(",")}
    for rtype, count in truth.items():
        row = rows[rtype]
        assert row["run_id"] == report.run.run_id and row["status"] == "succeeded"
        assert row["resources_landed"] == row["resources_merged"] == count
        assert row["pages"] >= -(-count // 40)
        assert row["latency_p50_ms"] <= row["latency_p95_ms"] <= row["latency_max_ms"]
        assert row["requests_per_1k_resources"] == pytest.approx(row["requests"] * 1000 / count)
    assert sum(row["http_429"] for row in rows.values()) == 2
    assert sum(row["retries"] for row in rows.values()) == 2
    assert sum(row["requests"] for row in rows.values()) == len(report.requests)
    assert sum(row["response_bytes"] for row in rows.values()) == sum(
        record.response_bytes for record in report.requests
    )
    assert rows[UNTYPED]["requests"] == 1  # the CapabilityStatement
    assert report.warehouse_seconds > 0
    assert sum(row["warehouse_seconds"] for row in rows.values()) == pytest.approx(
        report.warehouse_seconds, rel=1e-3
    )


def test_a_budget_stops_cleanly_and_the_next_run_completes(
    fhir_server_factory, settings: LoadSettings
) -> None:
    server = fhir_server_factory()
    config = rest_config(server.base_url, page_size=20, concurrency=1)

    stopped = run(settings, config, types=TYPES, budget=RunBudget(max_pages=4))

    assert stopped.exit_code == 4
    assert stopped.run.status == "paused"
    assert any("budget reached: 4 pages of max_pages_per_run 4" in n for n in stopped.notices)
    assert server.stats.pages_served <= 4 + 1  # the page in flight when the budget hit
    assert all(row["stopped_by_budget"] for row in _metrics(settings))

    finished = run(settings, config, types=TYPES)

    assert finished.exit_code == 0
    truth = {**server.truth("Patient"), **server.truth("Encounter"), **server.truth("Observation")}
    assert compare(settings, truth).exact


def test_dry_run_requests_no_data_and_writes_nothing(
    fhir_server: FhirTestServer, settings: LoadSettings, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("SOURCES__FHIR_REST__DRY__BASE_URL", fhir_server.base_url)
    args = [
        "--source",
        "dry",
        "--warehouse",
        str(settings.duckdb_path),
        "--landing",
        str(settings.landing_root),
        "--types",
        "Patient,Observation",
        "--dry-run",
    ]

    assert main(["load", "rest", *args]) == 0
    assert main(["backfill", *args, "--since", "2020-01-01"]) == 0

    out = capsys.readouterr().out
    assert fhir_server.stats.data_requests == 0
    assert not settings.duckdb_path.exists() and not settings.landing_root.exists()
    assert "GET Observation?_count=100&_lastUpdated=le" in out
    assert "&_sort=_lastUpdated" in out
    assert "range 2020-01-01T00:00:00.000Z.." in out


def test_status_and_run_report(
    fhir_server: FhirTestServer, settings: LoadSettings, monkeypatch, capsys, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOURCES__FHIR_REST__STAT__BASE_URL", fhir_server.base_url)
    report_file = tmp_path / "reports" / "run.json"
    code = main(
        [
            "load",
            "rest",
            "--source",
            "stat",
            "--types",
            "Patient,Encounter",
            "--warehouse",
            str(settings.duckdb_path),
            "--landing",
            str(settings.landing_root),
            "--report",
            str(report_file),
        ]
    )
    assert code == 0
    document = json.loads(report_file.read_text())
    assert document["exit_code"] == 0 and document["run"]["status"] == "succeeded"
    assert {row["resource_type"] for row in document["metrics"]} == {
        "Patient",
        "Encounter",
        UNTYPED,
    }
    capsys.readouterr()

    assert main(["status", "--warehouse", str(settings.duckdb_path)]) == 0
    out = capsys.readouterr().out
    status = collect_status(settings.duckdb_path)
    assert [(row[0], row[1], row[2]) for row in status.freshness] == [
        ("stat", "Encounter", len(fhir_server.truth("Encounter"))),
        ("stat", "Patient", len(fhir_server.truth("Patient"))),
    ]
    assert status.runs[0][0] == document["run"]["run_id"] and status.runs[0][3] == "succeeded"
    encounters = len(fhir_server.truth("Encounter"))
    assert re.search(rf"\n  stat +Encounter +{encounters} +\d+d \d+h +\d+s +succeeded", out)
    assert f"{document['run']['run_id']}  stat    load rest  succeeded" in out
    assert "open quarantine (not loaded since)\n  none" in out
    assert "schema drift (latest sync stopped)\n  none" in out


def test_status_lists_quarantine_not_loaded_since(
    fhir_server: FhirTestServer, settings: LoadSettings
) -> None:
    config = rest_config(fhir_server.base_url)
    run(settings, config, types="Patient")
    loaded = sorted(fhir_server.truth("Patient"))[0][1]
    before = "2000-01-01 00:00:00+00"
    rows = [
        # refused once, loaded since: resolved
        (loaded, "Patient", "invalid_last_updated", before),
        # refused, never loaded: open
        ("never-loaded-id", "Patient", "invalid_last_updated", before),
        ("never-loaded-id-2", "Patient", "invalid_last_updated", before),
        # an unparseable line has no id: open
        (None, None, "invalid_json", before),
    ]
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        for number, (rid, rtype, reason, at) in enumerate(rows):
            connection.execute(
                "insert into raw_fhir.quarantine (run_id, source_system, source_file, "
                "line_number, resource_type, resource_id, reason, json_path, quarantined_at, "
                "_dlt_load_id) "
                "values ('r', ?, 'page', ?, ?, ?, ?, '$', cast(? as timestamptz), 'l')",
                [config.name, number, rtype, rid, reason, at],
            )

    status = collect_status(settings.duckdb_path)

    assert [(row[1], row[2], row[3]) for row in status.quarantine] == [
        ("(unparsed)", "invalid_json", 1),
        ("Patient", "invalid_last_updated", 2),
    ]
    text = format_status(status)
    assert loaded not in text and "never-loaded-id" not in text
