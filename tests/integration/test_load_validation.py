"""``load files`` with validation off, ``sample:100`` and ``full`` (a pool of 2 workers).

Synthetic patients plus three resources that parse but are not valid FHIR R4B (a number as
``Patient.gender``, a malformed ``birthDate`` on an NDJSON line and in a Bundle entry). With
``full`` they are quarantined with reason, file, line and JSON path, their original bytes in a
quarantine page, the rest merges, and the command exits 3; a retry under ``full`` keeps them
quarantined. With ``off`` they merge (the number in ``gender`` only once schema drift accepts
it). ``sample:100`` quarantines exactly what ``full`` does.
"""

from __future__ import annotations

import gzip
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from loaders.cli import main
from loaders.load_files import load_files
from loaders.quarantine.records import read_entries
from loaders.quarantine.retries import STILL_REFUSED
from loaders.quarantine.retry import retry
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from loaders.validation import FULL, parse_validation_mode
from tests.fhir_server.fixtures import ServerFactory
from tests.fhir_server.store import Resource

PATIENTS = 4
PLANTED = "Plantedfamily5512"  # in an invalid resource: must never be printed
BAD_GENDER = orjson.dumps(
    {"resourceType": "Patient", "id": "bad-gender", "gender": 123, "name": [{"family": PLANTED}]}
)
BAD_DATE = orjson.dumps({"resourceType": "Patient", "id": "bad-date", "birthDate": "not-a-date"})
BUNDLE = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "b-ok", "birthDate": "1980-02-03"}},
        {"resource": {"resourceType": "Patient", "id": "b-bad", "birthDate": "1980-13-45"}},
    ],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The input directory and the line of the first planted NDJSON line."""
    out = tmp_path_factory.mktemp("validation") / "data"
    generate(
        GenerateOptions(patients=PATIENTS, seed=11, out=out, as_of=datetime(2026, 6, 1, tzinfo=UTC))
    )
    patients = out / "Patient.ndjson"
    lines = patients.read_bytes().splitlines()
    assert len(lines) == PATIENTS
    patients.write_bytes(b"\n".join([*lines, BAD_GENDER, BAD_DATE]) + b"\n")
    (out / "bundle.json").write_bytes(orjson.dumps(BUNDLE))
    return out, PATIENTS + 1


def _rows(settings: LoadSettings, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _quarantine(settings: LoadSettings) -> set[tuple[str, int, str, str]]:
    rows = _rows(
        settings, "select source_file, line_number, reason, json_path from raw_fhir.quarantine"
    )
    return {(Path(file).name, line, reason, path) for file, line, reason, path in rows}


def _patient_ids(settings: LoadSettings) -> set[str]:
    return {row[0] for row in _rows(settings, "select id from raw_fhir.patient")}


def _expected(first_line: int) -> set[tuple[str, int, str, str]]:
    reason = "invalid_fhir_resource"
    return {
        ("Patient.ndjson", first_line, reason, "Patient.gender"),
        ("Patient.ndjson", first_line + 1, reason, "Patient.birthDate"),
        ("bundle.json", 1, reason, "Bundle.entry[1].resource.birthDate"),
    }


def test_full_quarantines_invalid_resources_and_merges_the_rest(
    data: tuple[Path, int], settings: LoadSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    path, first_line = data
    landing = settings.landing_root
    code = main(
        [
            "load",
            "files",
            str(path),
            "--warehouse",
            str(settings.duckdb_path),
            "--landing",
            str(landing),
            "--source-system",
            "test",
            "--validation",
            "full",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 3
    assert "3 quarantined: invalid_fhir_resource" in err and "path Patient.gender" in err
    assert "validation full (2 workers):" in out and "3 invalid" in out
    assert PLANTED not in out + err

    assert _quarantine(settings) == _expected(first_line)
    ids = _patient_ids(settings)
    assert len(ids) == PATIENTS + 1 and "b-ok" in ids
    assert not ids & {"bad-gender", "bad-date", "b-bad"}
    # Every other type merged in full.
    assert _rows(settings, "select count(*) from raw_fhir.encounter")[0][0] > 0

    # The original bytes are in the quarantine page; no data page holds an invalid resource.
    quarantined = b"".join(
        gzip.decompress(page.read_bytes())
        for page in (landing / "test" / "_quarantine").rglob("*.gz")
    )
    assert BAD_GENDER in quarantined and BAD_DATE in quarantined
    landed = b"".join(
        gzip.decompress(page.read_bytes()) for page in (landing / "test" / "Patient").rglob("*.gz")
    )
    assert b"bad-gender" not in landed and b"b-bad" not in landed and b"b-ok" in landed
    # The file with invalid lines counts them, so the next run reads it again.
    ((refused,),) = _rows(
        settings,
        "select resources_quarantined from raw_fhir.loaded_files "
        "where source_file like '%Patient.ndjson'",
    )
    assert refused == 2

    # A retry under the same setting validates again: nothing is resolved.
    report = retry(replace(settings, validation=FULL), read_entries(settings.duckdb_path))
    assert {record.outcome for record in report.records} == {STILL_REFUSED}
    assert {record.retry_json_path for record in report.records} == {
        "Patient.gender",
        "Patient.birthDate",
    }
    assert {record.retry_reason for record in report.records} == {
        "fhir_validation:string_type",
        "fhir_validation:value_error",
    }
    assert len(_patient_ids(settings)) == PATIENTS + 1


def test_off_merges_invalid_resources(
    data: tuple[Path, int], settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without validation a number in Patient.gender is schema drift, which fails the run where
    # staging reads it (with validation it is quarantined before the drift check): accept it.
    monkeypatch.setenv("FHIR_ELT_DRIFT_POLICY", "Patient.gender=accept")
    report = load_files(data[0], settings)
    assert report.exit_code == 0 and report.validator is None
    assert {"bad-gender", "bad-date", "b-bad", "b-ok"} <= _patient_ids(settings)
    assert _quarantine(settings) == set()


def test_a_sample_of_100_percent_quarantines_what_full_does(
    data: tuple[Path, int], settings: LoadSettings
) -> None:
    path, first_line = data
    report = load_files(path, replace(settings, validation=parse_validation_mode("sample:100")))
    assert report.exit_code == 3
    assert report.validator is not None and report.validator.invalid_count == 3
    assert _quarantine(settings) == _expected(first_line)
    assert len(_patient_ids(settings)) == PATIENTS + 1


def test_load_rest_with_full_quarantines_by_request_and_position(
    fhir_server_factory: ServerFactory,
    synthetic_resources: list[Resource],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    patient = next(r for r in synthetic_resources if r["resourceType"] == "Patient")
    bad = {**patient, "id": "rest-bad", "birthDate": "not-a-date", "name": [{"family": PLANTED}]}
    fhir_server = fhir_server_factory(resources=[*synthetic_resources, bad])
    prefix = "SOURCES__FHIR_REST__VALIDATED_EHR__"
    monkeypatch.setenv(prefix + "BASE_URL", fhir_server.base_url)
    monkeypatch.setenv(prefix + "GROUPS", '{"people": {"types": ["Patient"], "every_minutes": 60}}')
    monkeypatch.setenv("FHIR_ELT_VALIDATION", "full")
    settings = LoadSettings(duckdb_path=tmp_path / "w.duckdb", landing_root=tmp_path / "landing")
    code = main(
        [
            "load",
            "rest",
            "--source",
            "validated_ehr",
            "--warehouse",
            str(settings.duckdb_path),
            "--landing",
            str(settings.landing_root),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 3, out + err
    assert PLANTED not in out + err
    ((request, position, reason, path),) = _rows(
        settings, "select source_file, line_number, reason, json_path from raw_fhir.quarantine"
    )
    assert (reason, path) == ("invalid_fhir_resource", "Patient.birthDate")
    assert request and position >= 1
    ids = _patient_ids(settings)
    assert len(ids) == 20 and "rest-bad" not in ids
