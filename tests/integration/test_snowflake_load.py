"""Loads with destination snowflake, on fakesnow (in-process), against the DuckDB path.

Two batches go to both warehouses through `load files` (the second through the CLI with
``--destination snowflake``): a small synthetic dataset, then new versions of patients (two
versions of one patient, newest first), an OLDER version of an encounter arriving late, exact
duplicates and one line without an id. Small pages, so a run's versions of one resource meet in
different batches. The Snowflake raw tables must hold exactly the rows the DuckDB raw tables
hold (source_system, id, version_id, content_hash, is_deleted), with ``resource`` a VARIANT
object that ``resource:resourceType::string`` reads, and the operational tables their rows.
A second test shows the state (cursors, checkpoints) reaches Snowflake only after the rows.
dlt's snowflake destination runs unchanged; fakesnow's gaps are patched by
``tests/integration/fakesnow_dlt.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import fakesnow
import pyarrow as pa
import pytest
import snowflake.connector

from loaders.cli import main
from loaders.exceptions import ExtractError
from loaders.fhir import table_name_for
from loaders.load_files import load_files
from loaders.resources import ParsedResource, parse_resource_bytes
from loaders.runs import merge
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from loaders.warehouse.pipeline import StateUpdate, make_pipeline, read_raw_state
from loaders.warehouse.raw_tables import RAW_DATASET, build_raw_batch
from loaders.warehouse.version_filter import DuckDBVersionFilter
from tests.fhir_server import FhirTestServer
from tests.integration.dbt_support import new_version, read_ndjson, write_ndjson
from tests.integration.fakesnow_dlt import dlt_on_fakesnow
from tests.integration.rest_support import SOURCE, rest_config, run

AS_OF = datetime.fromisoformat("2026-11-20T12:00:00+00:00")
CREDENTIALS = "snowflake://fake:fake@fakesnow/fhir_elt?warehouse=fake&role=fake"
KEY_COLUMNS = "source_system, id, version_id, content_hash, is_deleted"
PAGE_SIZE = 2


@pytest.fixture
def fake_snowflake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """fakesnow in-process, with dlt's snowflake credentials pointing at it."""
    monkeypatch.setenv("DESTINATION__SNOWFLAKE__CREDENTIALS", CREDENTIALS)
    fake_dir = tmp_path / "fakesnow"
    fake_dir.mkdir()
    with fakesnow.patch(db_path=fake_dir, create_schema_on_connect=False), dlt_on_fakesnow():
        yield


def _query(sql: str) -> list[tuple[object, ...]]:
    with snowflake.connector.connect(
        account="fakesnow", user="fake", password="fake", database="fhir_elt"
    ) as connection:
        return list(connection.cursor().execute(sql).fetchall())


def _batches(base: Path) -> tuple[Path, Path, dict[str, str | None]]:
    """Batch 1 (synthetic) and batch 2 (updates, a late older version, duplicates, a bad line)."""
    first = base / "batch1"
    generate(GenerateOptions(patients=3, seed=11, out=first, as_of=AS_OF))
    patients = read_ndjson(first / "Patient.ndjson")
    encounters = read_ndjson(first / "Encounter.ndjson")
    later = AS_OF + timedelta(days=1)
    late = encounters[0]
    stored_at = datetime.fromisoformat(late["meta"]["lastUpdated"])
    second = base / "batch2"
    newest = new_version(patients[2], later + timedelta(hours=1), gender="unknown")
    write_ndjson(
        second,
        "Patient",
        [  # pages of two: the newest version of patient 2 in the first page, an older
            newest,  # (yet newer than stored) one in the second
            new_version(patients[0], later, gender="unknown"),
            patients[1],  # an exact duplicate
            new_version(patients[2], later, gender="other"),
        ],
    )
    write_ndjson(
        second,
        "Encounter",
        [
            new_version(late, stored_at - timedelta(days=30), status="cancelled"),
            *encounters[1:3],  # exact duplicates of stored rows
            {"resourceType": "Encounter", "status": "finished"},  # no id: quarantined
        ],
    )
    expected = {
        patients[2]["id"]: newest["meta"]["versionId"],
        late["id"]: late["meta"].get("versionId"),
    }
    return first, second, expected


def _duckdb_rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _raw_rows(database: Path) -> dict[str, set[tuple[object, ...]]]:
    tables = _duckdb_rows(
        database,
        "select table_name from information_schema.columns "
        f"where table_schema = '{RAW_DATASET}' and column_name = 'content_hash'",
    )
    return {
        table: set(_duckdb_rows(database, f"select {KEY_COLUMNS} from {RAW_DATASET}.{table}"))
        for (table,) in tables
    }


def test_snowflake_raw_tables_equal_a_duckdb_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_snowflake: None
) -> None:
    first, second, expected_versions = _batches(tmp_path / "data")

    on_duckdb = LoadSettings(
        duckdb_path=tmp_path / "duck.duckdb", landing_root=tmp_path / "l1", page_size=PAGE_SIZE
    )
    duck_runs = [load_files(batch, on_duckdb).run for batch in (first, second)]
    expected = _raw_rows(on_duckdb.duckdb_path)

    warehouse = tmp_path / "unused" / "fhir.duckdb"
    on_snowflake = LoadSettings(
        duckdb_path=warehouse,
        landing_root=tmp_path / "l2",
        page_size=PAGE_SIZE,
        destination="snowflake",
    )
    first_run = load_files(first, on_snowflake).run
    monkeypatch.setenv("FHIR_ELT_PAGE_SIZE", str(PAGE_SIZE))
    landing = str(tmp_path / "l2")
    arguments = ["load", "files", str(second), "--destination", "snowflake"]
    exit_code = main([*arguments, "--warehouse", str(warehouse), "--landing", landing])

    assert exit_code == 3  # loaded, one line quarantined
    stored = {
        table: set(_query(f"select {KEY_COLUMNS} from raw_fhir.{table}")) for table in expected
    }
    assert stored == expected
    assert sum(len(rows) for rows in stored.values()) > 50
    versions = {row[1]: row[2] for table in ("patient", "encounter") for row in stored[table]}
    for resource_id, version in expected_versions.items():
        assert versions[resource_id] == version
    for table in expected:
        assert _query(
            f"select count(*) from raw_fhir.{table} "
            "where resource:resourceType::string is null or resource:id::string <> id"
        ) == [(0,)], table
    assert _query("select resource:name[0].family::string from raw_fhir.patient limit 1")[0][0]

    runs = _query(
        "select status, resources_merged, resources_unchanged, resources_quarantined "
        "from raw_fhir.load_runs order by started_at"
    )
    assert first_run.resources_merged == duck_runs[0].resources_merged
    assert runs[0][:2] == ("succeeded", first_run.resources_merged)
    duck_second = duck_runs[1]
    assert runs[1] == (
        "succeeded_with_rejects",
        duck_second.resources_merged,
        duck_second.resources_unchanged,
        1,
    )
    assert duck_second.resources_merged == 2  # the older version lost to the run's own newer one
    assert _query("select reason, json_path from raw_fhir.quarantine") == [("missing_id", "id")]
    assert _query("select count(*), count(distinct run_id) from raw_fhir.loaded_files") == [
        (
            len(list(first.glob("*.ndjson"))) + 2,
            2,
        )
    ]
    manifest = _query("select count(*) from raw_fhir.landing_manifest")[0][0]
    assert manifest == first_run.landing_pages + duck_second.landing_pages + 1  # + quarantine
    assert not warehouse.exists()


def _patient(resource_id: str, last_updated: str) -> ParsedResource:
    parsed = parse_resource_bytes(
        json.dumps(
            {"resourceType": "Patient", "id": resource_id, "meta": {"lastUpdated": last_updated}}
        ).encode()
    )
    assert isinstance(parsed, ParsedResource)
    return parsed


def _batch(*resources: ParsedResource) -> pa.Table:
    return build_raw_batch(
        resources,
        source_system="state_test",
        fetched_at=AS_OF,
        request_ids=[None] * len(resources),
        landing_file="state_test/Patient/page-1.ndjson.gz",
    )


def test_state_reaches_snowflake_only_after_the_rows(tmp_path: Path, fake_snowflake: None) -> None:
    settings = LoadSettings(
        duckdb_path=tmp_path / "unused" / "fhir.duckdb",
        landing_root=tmp_path / "landing",
        source_system="state_test",
        destination="snowflake",
    )
    cursor = StateUpdate(("rest", "cursors", "Patient"), "2026-11-20T00:00:00Z")

    def failing(version_filter: DuckDBVersionFilter) -> Iterator[tuple[str, pa.Table] | object]:
        yield (
            "patient",
            version_filter.keep_newer("patient", _batch(_patient("a", "2026-11-01T00:00:00Z"))),
        )
        yield cursor
        raise ExtractError("the server went away")

    def succeeding(version_filter: DuckDBVersionFilter) -> Iterator[tuple[str, pa.Table] | object]:
        older, newer = _patient("a", "2026-11-01T00:00:00Z"), _patient("a", "2026-11-02T00:00:00Z")
        yield "patient", version_filter.keep_newer("patient", _batch(newer))
        # The older version, in a later batch of the same run, is filtered out by the run's
        # own earlier row (not yet on Snowflake).
        assert version_filter.keep_newer("patient", _batch(older)).num_rows == 0
        yield cursor

    def state_on_snowflake() -> dict[str, object]:
        fresh = replace(settings, pipelines_dir=tmp_path / f"fresh-{len(list(tmp_path.iterdir()))}")
        return read_raw_state(make_pipeline(fresh))

    with pytest.raises(ExtractError):
        merge(make_pipeline(settings), settings, failing)  # type: ignore[arg-type]
    tables = _query(
        "select count(*) from information_schema.tables "
        "where table_schema = 'RAW_FHIR' and table_name = 'PATIENT'"
    )
    assert tables == [(0,)]
    assert state_on_snowflake() == {}

    merge(make_pipeline(settings), settings, succeeding)  # type: ignore[arg-type]
    assert _query("select id, last_updated::date::string from raw_fhir.patient") == [
        ("a", "2026-11-02")
    ]
    assert state_on_snowflake() == {"rest": {"cursors": {"Patient": "2026-11-20T00:00:00Z"}}}


def test_load_rest_on_snowflake_merges_edits_and_commits_cursors(
    tmp_path: Path, fake_snowflake: None, fhir_server: FhirTestServer, settings: LoadSettings
) -> None:
    on_snowflake = replace(settings, destination="snowflake")
    config = rest_config(fhir_server.base_url)
    first = run(on_snowflake, config)
    patient_id = next(iter(fhir_server.resources("Patient")))["id"]
    fhir_server.update("Patient", patient_id, lambda r: r.update(gender="other"))
    time.sleep(1.1)  # edits within the second a run starts in go to the next run (see REST tests)
    second = run(on_snowflake, config)

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert second.run.resources_merged == 1  # the overlap re-reads rows; only the edit merges
    truth = fhir_server.truth()
    stored: dict[tuple[str, str], object] = {}
    for resource_type in {resource_type for resource_type, _ in truth}:
        rows = _query(f"select id, version_id from raw_fhir.{table_name_for(resource_type)}")
        stored.update({(resource_type, rid): version for rid, version in rows})
    assert stored == {key: version for key, (version, _) in truth.items()}
    fresh = replace(on_snowflake, source_system=SOURCE, pipelines_dir=tmp_path / "fresh")
    committed = read_raw_state(make_pipeline(fresh))["rest"]["cursors"]
    assert set(committed) == {outcome.resource_type for outcome in first.outcomes.values()}
    assert _query("select count(*) from raw_fhir.request_log")[0][0] > 0
