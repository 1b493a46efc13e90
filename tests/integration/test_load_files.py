"""`load files` against a real DuckDB warehouse: merge rules, replays, quarantine, run records."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import orjson
import pytest

from loaders.exceptions import InputError, LandingError
from loaders.fhir import CORE_RESOURCE_TYPES, table_name_for
from loaders.landing import read_manifest, read_page
from loaders.load_files import load_files
from loaders.settings import LoadSettings
from tests.fhir_samples import patient, write_ndjson


def _query(settings: LoadSettings, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _patients(settings: LoadSettings) -> dict[str, tuple[str, str]]:
    rows = _query(
        settings,
        "select id, version_id, resource->>'gender' from raw_fhir.patient order by id",
    )
    return {row[0]: (row[1], row[2]) for row in rows}  # type: ignore[misc]


def test_first_load_lands_then_merges_with_the_raw_contract(
    tmp_path: Path, settings: LoadSettings
) -> None:
    source = write_ndjson(
        tmp_path / "in" / "Patient.ndjson", [patient("p1", gender="male"), patient("p2")]
    )
    report = load_files(source.parent, settings)
    assert report.exit_code == 0
    assert (report.run.resources_read, report.run.resources_merged) == (2, 2)

    columns = {row[0]: row[1] for row in _query(settings, "describe raw_fhir.patient")}
    for name in (
        "source_system",
        "resource_type",
        "id",
        "version_id",
        "last_updated",
        "resource",
        "content_hash",
        "fetched_at",
        "request_id",
        "landing_file",
        "is_deleted",
        "_dlt_load_id",
    ):
        assert name in columns, name
    assert columns["resource"] == "JSON"
    assert columns["last_updated"] == "TIMESTAMP WITH TIME ZONE"

    (row,) = _query(
        settings,
        "select source_system, landing_file, is_deleted, "
        "resource->>'gender' from raw_fhir.patient where id = 'p1'",
    )
    assert row[0] == "test" and row[2] is False and row[3] == "male"
    # The row points at a landing page that holds the resource byte for byte.
    (page,) = [p for p in read_manifest(report.manifest_path) if p.landing_file == row[1]]
    assert orjson.dumps(patient("p1", gender="male")) in list(
        read_page(settings.landing_root, page)
    )


def test_every_core_table_exists_even_when_empty(tmp_path: Path, settings: LoadSettings) -> None:
    load_files(write_ndjson(tmp_path / "p.ndjson", [patient("p1")]), settings)
    tables = {
        row[0]
        for row in _query(
            settings,
            "select table_name from information_schema.tables where table_schema='raw_fhir'",
        )
    }
    assert {table_name_for(name) for name in CORE_RESOURCE_TYPES} <= tables
    assert {"load_runs", "landing_manifest"} <= tables


def test_replaying_the_same_input_changes_nothing(tmp_path: Path, settings: LoadSettings) -> None:
    source = write_ndjson(tmp_path / "p.ndjson", [patient(f"p{i}") for i in range(50)])
    load_files(source, settings)
    before = _query(
        settings, "select id, _dlt_load_id, content_hash from raw_fhir.patient order by id"
    )
    replay = load_files(source, settings)
    assert (replay.run.resources_merged, replay.run.resources_unchanged) == (0, 50)
    after = _query(
        settings, "select id, _dlt_load_id, content_hash from raw_fhir.patient order by id"
    )
    assert after == before


def test_an_older_version_never_overwrites_a_newer_one(
    tmp_path: Path, settings: LoadSettings
) -> None:
    load_files(
        write_ndjson(
            tmp_path / "v2.ndjson",
            [
                patient("p1", version="2", updated="2026-11-20T10:00:00Z", gender="female"),
            ],
        ),
        settings,
    )
    stale = load_files(
        write_ndjson(
            tmp_path / "v1.ndjson",
            [
                patient("p1", version="1", updated="2026-11-19T10:00:00Z", gender="male"),
            ],
        ),
        settings,
    )
    assert stale.run.resources_merged == 0
    assert _patients(settings) == {"p1": ("2", "female")}

    newer = load_files(
        write_ndjson(
            tmp_path / "v3.ndjson",
            [
                patient("p1", version="3", updated="2026-11-21T10:00:00Z", gender="other"),
            ],
        ),
        settings,
    )
    assert newer.run.resources_merged == 1
    assert _patients(settings) == {"p1": ("3", "other")}
    assert _query(settings, "select count(*) from raw_fhir.patient") == [(1,)]


def test_several_versions_in_one_run_keep_the_newest_whatever_the_order(
    tmp_path: Path, settings: LoadSettings
) -> None:
    small_pages = LoadSettings(
        duckdb_path=settings.duckdb_path,
        landing_root=settings.landing_root,
        source_system="test",
        page_size=1,
    )
    versions = [
        patient("p1", version="2", updated="2026-11-20T10:00:00Z", gender="female"),
        patient("p1", version="3", updated="2026-11-21T10:00:00Z", gender="other"),
        patient("p1", version="1", updated="2026-11-19T10:00:00Z", gender="male"),
    ]
    load_files(write_ndjson(tmp_path / "mixed.ndjson", versions), small_pages)
    assert _patients(settings) == {"p1": ("3", "other")}


def test_source_systems_load_side_by_side(tmp_path: Path, settings: LoadSettings) -> None:
    source = write_ndjson(tmp_path / "p.ndjson", [patient("p1")])
    load_files(source, settings)
    other = LoadSettings(
        duckdb_path=settings.duckdb_path,
        landing_root=settings.landing_root,
        source_system="other-ehr",
    )
    load_files(source, other)
    assert _query(settings, "select source_system, id from raw_fhir.patient order by 1") == [
        ("other-ehr", "p1"),
        ("test", "p1"),
    ]


def test_bad_lines_are_quarantined_and_the_rest_loads(
    tmp_path: Path, settings: LoadSettings
) -> None:
    source = write_ndjson(
        tmp_path / "mixed.ndjson",
        [
            patient("good1"),
            b'{"resourceType":"Patient","name":[{"family":"Leaky"}]}',
            b"{not json",
            {"resourceType": "Spaceship", "id": "s1"},
            patient("good2"),
        ],
    )
    report = load_files(source, settings)
    assert report.exit_code == 3
    assert report.run.resources_merged == 2
    assert {(r.reason, r.count, r.first_line) for r in report.rejects} == {
        ("missing_id", 1, 2),
        ("invalid_json", 1, 3),
        ("unknown_resource_type", 1, 4),
    }
    for summary in report.rejects:
        assert "Leaky" not in summary.describe()
    rows = _query(
        settings,
        "select source_file, line_number, reason, json_path, landing_file "
        "from raw_fhir.quarantine order by line_number",
    )
    assert [(row[1], row[2], row[3]) for row in rows] == [
        (2, "missing_id", "id"),
        (3, "invalid_json", "$"),
        (4, "unknown_resource_type", "resourceType"),
    ]
    assert all(row[0] == str(source) for row in rows)
    # The refused lines are kept unchanged in a quarantine landing page.
    landed = gzip.decompress((settings.landing_root / rows[0][4]).read_bytes()).splitlines()
    assert landed == [
        b'{"resourceType":"Patient","name":[{"family":"Leaky"}]}',
        b"{not json",
        b'{"resourceType":"Spaceship","id":"s1"}',
    ]
    assert _query(settings, "select status, resources_quarantined from raw_fhir.load_runs") == [
        ("succeeded_with_rejects", 3),
    ]


def test_transaction_bundles_load_with_resolved_references(
    tmp_path: Path, settings: LoadSettings
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p-1",
                "resource": patient("p-1"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:e-1",
                "resource": {
                    "resourceType": "Encounter",
                    "id": "e-1",
                    "subject": {"reference": "urn:uuid:p-1"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_bytes(orjson.dumps(bundle))
    load_files(tmp_path / "b", settings)
    assert _query(settings, "select resource->'subject'->>'reference' from raw_fhir.encounter") == [
        ("Patient/p-1",),
    ]


def test_nothing_to_load_is_an_input_error_and_records_nothing(
    tmp_path: Path, settings: LoadSettings
) -> None:
    with pytest.raises(InputError):
        load_files(tmp_path / "missing", settings)
    assert not settings.duckdb_path.exists()


def test_a_landing_failure_stops_the_merge_and_is_recorded(
    tmp_path: Path, settings: LoadSettings
) -> None:
    source = write_ndjson(tmp_path / "p.ndjson", [patient("p1")])
    load_files(source, settings)
    blocked = LoadSettings(
        duckdb_path=settings.duckdb_path, landing_root=tmp_path / "blocked", source_system="test"
    )
    (tmp_path / "blocked").write_text("a file where the landing directory should be")
    with pytest.raises(LandingError, match="cannot write landing page"):
        load_files(write_ndjson(tmp_path / "p2.ndjson", [patient("p2")]), blocked)
    assert sorted(_patients(settings)) == ["p1"]
    statuses = _query(settings, "select status, error from raw_fhir.load_runs order by started_at")
    assert statuses[0] == ("succeeded", None)
    assert statuses[1][0] == "failed" and "cannot write landing page" in statuses[1][1]


def test_operational_tables_exist_after_a_clean_first_run(
    tmp_path: Path, settings: LoadSettings
) -> None:
    load_files(write_ndjson(tmp_path / "p.ndjson", [patient("p1")]), settings)
    assert _query(settings, "select count(*) from raw_fhir.quarantine") == [(0,)]
    assert _query(
        settings, "select resource_type, resource_count from raw_fhir.landing_manifest"
    ) == [
        ("Patient", 1),
    ]


def test_a_manifest_that_cannot_be_written_fails_the_run_visibly(
    tmp_path: Path, settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: object) -> Path:
        raise LandingError("cannot write landing manifest (simulated)")

    monkeypatch.setattr("loaders.landing.zone.LandingZone.write_manifest", refuse)
    with pytest.raises(LandingError, match="simulated"):
        load_files(write_ndjson(tmp_path / "p.ndjson", [patient("p1")]), settings)
    (row,) = _query(settings, "select status, error from raw_fhir.load_runs")
    assert row == ("failed", "cannot write landing manifest (simulated)")
