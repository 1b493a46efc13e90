"""Schema drift in `load files`: `fail` stops before the merge, `warn` loads and is recorded;
what is let through and empties a key staging column fails the staging null guard in dbt."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import duckdb
import pytest

from loaders.cli import main
from loaders.load_files import load_files
from loaders.ops.status import collect_status, format_status
from loaders.settings import LoadSettings
from tests.fhir_samples import patient, write_ndjson
from tests.fhir_server import Scenario
from tests.integration.dbt_support import run_dbt_subprocess
from tests.integration.rest_support import compare, rest_config, run


def _query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_a_renamed_element_under_a_fail_path_exits_non_zero_and_merges_nothing_of_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "w" / "fhir.duckdb"
    args = ["--source-system", "emr", "--warehouse", str(warehouse)]
    args += ["--landing", str(tmp_path / "landing")]
    good = write_ndjson(tmp_path / "good" / "Patient.ndjson", [patient("p1", gender="male")])
    assert main(["load", "files", str(good), *args]) == 0
    drifted = write_ndjson(
        tmp_path / "drifted" / "Patient.ndjson",
        [
            patient("p2", gender="female", birthDate="1970-01-01"),
            patient("canary-p3", gender="female", birth_date="1961-02-03"),
            patient("p1", version="2", updated="2026-11-21T10:00:00Z", gender="other"),
        ],
    )
    capsys.readouterr()

    assert main(["load", "files", str(drifted), *args]) == 1

    error = capsys.readouterr().err
    assert "Patient" in error and "Patient.birth_date" in error
    assert "canary-p3" not in error and "1961" not in error
    # Nothing of the batch merged: p2 is absent and p1 keeps its first version.
    assert _query(warehouse, "select id, version_id from raw_fhir.patient") == [("p1", "1")]
    [(status, stored_error)] = _query(
        warehouse, "select status, error from raw_fhir.load_runs where status <> 'succeeded'"
    )
    assert status == "failed" and "Patient.birth_date" in str(stored_error)
    rows = _query(
        warehouse,
        "select resource_type, json_path, observed_kind, expected_kind, count, policy, "
        "first_seen_landing_file from raw_fhir.schema_drift",
    )
    assert len(rows) == 1
    assert rows[0][:6] == ("Patient", "Patient.birth_date", "string", "unknown", 1, "fail")
    assert (tmp_path / "landing" / str(rows[0][6])).is_file()  # landed, never merged
    shown = format_status(collect_status(warehouse))
    assert "schema drift found" in shown
    assert re.search(r"emr\s+Patient\s+Patient\.birth_date\s+string, not in R4\s+1\s+fail", shown)


def test_an_unknown_element_under_warn_loads_and_records_count_and_first_landing_file(
    tmp_path: Path, settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FHIR_ELT_DRIFT_POLICY", "Patient.vendorScore=accept")
    settings = dataclasses.replace(settings, page_size=2)
    vendor = {"contact": [{"vendorRank": 1}]}
    source = write_ndjson(
        tmp_path / "in" / "Patient.ndjson",
        [
            patient("p1"),
            patient("p2"),
            patient("p3", **vendor),
            patient("p4", **vendor, vendorScore=3),
            patient("p5", **vendor),
        ],
    )

    report = load_files(source.parent, settings)

    assert report.exit_code == 0 and report.run.resources_merged == 5
    pages = [
        row[0]
        for row in _query(
            settings.duckdb_path,
            "select landing_file from raw_fhir.landing_manifest where resource_type = 'Patient' "
            "order by landing_file",
        )
    ]
    assert len(pages) == 3
    rows = _query(
        settings.duckdb_path,
        "select source_system, resource_type, json_path, observed_kind, expected_kind, count, "
        "policy, first_seen_landing_file, run_id from raw_fhir.schema_drift",
    )
    assert rows == [
        (
            "test",
            "Patient",
            "Patient.contact.vendorRank",
            "number",
            "unknown",
            3,
            "warn",
            pages[1],
            report.run.run_id,
        )
    ]


def test_staging_null_guard_fails_the_build_naming_the_column_that_went_null(
    tmp_path: Path, settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renamed element let through (policy accept) turns a staging column null: dbt fails."""
    env = {"FHIR_ELT_DUCKDB_PATH": str(settings.duckdb_path)}
    select = ["build", "--select", "stg_fhir__patients", "--exclude", "test_type:unit"]
    first = [patient(f"p{n}", gender="female", birthDate="1970-01-01") for n in range(25)]
    load_files(write_ndjson(tmp_path / "one" / "Patient.ndjson", first), settings)
    code, output, _ = run_dbt_subprocess(select, tmp_path / "target", env)
    assert code == 0, output[-2000:]

    monkeypatch.setenv("FHIR_ELT_DRIFT_POLICY", "Patient.sex=accept")
    renamed = [patient(f"q{n}", sex="female", birthDate="1970-01-01") for n in range(25)]
    report = load_files(write_ndjson(tmp_path / "two" / "Patient.ndjson", renamed), settings)
    assert report.run.resources_merged == 25
    accepted_drift = (
        "select count(*) from information_schema.tables where table_name = 'schema_drift'"
    )
    assert _query(settings.duckdb_path, accepted_drift) == [(0,)]  # accepted: nothing recorded

    code, output, results = run_dbt_subprocess(select, tmp_path / "target", env)

    assert code == 1
    failed = {r["unique_id"].split(".")[2]: r for r in results if r["status"] == "fail"}
    assert set(failed) == {"staging_null_guard_patients_gender_code"}
    assert failed["staging_null_guard_patients_gender_code"]["failures"] == 25
    assert "staging_null_guard_patients_gender_code" in output


def test_rest_loads_a_renamed_top_level_field_under_warn_and_records_it(
    fhir_server_factory, settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The REST pre-check follows the policy: `warn` lands, merges and records the element."""
    monkeypatch.setenv("FHIR_ELT_DRIFT_POLICY", "Patient.sex=warn")
    server = fhir_server_factory(scenario=Scenario(rename_field=("Patient", "gender", "sex", 1)))

    report = run(settings, rest_config(server.base_url))

    assert report.exit_code == 0
    assert {o.status for o in report.outcomes.values()} == {"succeeded"}
    assert not compare(settings, server.truth("Patient")).lost
    [(path, kind, expected, count, policy, first_file)] = _query(
        settings.duckdb_path,
        "select json_path, observed_kind, expected_kind, count, policy, first_seen_landing_file "
        "from raw_fhir.schema_drift",
    )
    assert (path, kind, expected, policy) == ("Patient.sex", "string", "unknown", "warn")
    assert 0 < int(count) <= len(server.truth("Patient"))  # type: ignore[call-overload]
    assert "/Patient/" in str(first_file)
    assert (settings.landing_root / str(first_file)).is_file()
