"""Incremental staging builds what a full rebuild builds, through updates, late data and deletes.

On DuckDB, with the loader (``load files``) and dbt in child processes:

1. batch 1 (synthetic, ``PATIENTS``) is loaded and built (``dbt build``, data tests aside);
2. batch 2 is loaded: new versions (encounter status, patient gender, an observation's value, a
   blood-pressure panel with one component fewer, a resolved condition), a *late-arriving older
   version* of an encounter (the loader's version filter must refuse it), a *late-arriving
   resource*: an encounter never seen before whose lastUpdated is two years old (a filter on
   lastUpdated would miss it), and new patients. Then a panel observation and a condition are
   deleted (``is_deleted``) by a later load. The loader has no delete path yet, so that load is
   written the way the raw contract describes it: the raw row replaced by a tombstone with a
   newer ``_dlt_load_id`` and ``version_sort_key``;
3. ``dbt build`` again: the incremental staging models read only those loads, and the
   incremental canonical models (the clinical event models) only the staging rows they changed;
   ``row_lineage`` the raw rows of those loads; ``patient_timeline`` renumbers only the patients
   whose events changed. Step 1 was built with ``as_of`` a year earlier, so events that were
   "future" then are placed now (the timeline must notice "now" moving, not only new loads),
   and one landing page's lineage rows were marked as built while its run was still
   ``running`` (they must be read again);
4. the warehouse is copied and rebuilt with ``--full-refresh``; every staging, canonical,
   restricted, mart and operations model must hold exactly the same rows in both;
5. on another copy, every incremental model is built again with ``incremental_lookback_hours``
   reaching back over both batches (everything read again): still identical, so reading rows
   again never duplicates them;
6. on two more copies, a load that only deletes one immunization, built incrementally and from
   scratch: identical (the timeline's pre-hook alone must renumber that patient).

A mart column with an enforced ``not_null`` constraint has no ``not_null`` data test: a null
there must fail the build, on the incremental path too (last test).

Before step 3, one resource's raw row, and one unchanged encounter's staging row, are changed
in place *without* a new load id: the incremental build must not see them (it reads only newer
loads), which shows both layers really are incremental; the rows are restored before the full
rebuild.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loaders.load_files import load_files
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.integration.dbt_support import (
    AS_OF,
    BUILD_METADATA_COLUMNS,
    INCREMENTAL_CANONICAL_MODELS,
    OK_STATUSES,
    finish_dbt_subprocess,
    models_in,
    new_version,
    read_manifest,
    read_ndjson,
    start_dbt_subprocess,
    table_differences,
    write_ndjson,
)

PATIENTS = 12
SEED = 31
NEW_PATIENTS_SEED = 32
DBT_VARS = {"as_of": AS_OF}
# the first build's "now": a year earlier, so the second build places events dated in between
FIRST_AS_OF = (datetime.fromisoformat(AS_OF) - timedelta(days=365)).isoformat(sep=" ")
MODELS = ["--exclude-resource-type", "test", "unit_test"]
# incremental outside staging and canonical (dbt_project/README.md)
OTHER_INCREMENTAL = {"row_lineage", "patient_timeline"}


def _start_build(
    warehouse: Path, target: Path, *extra: str, lookback: float = 0, as_of: str = AS_OF
) -> Any:
    variables = json.dumps({**DBT_VARS, "as_of": as_of, "incremental_lookback_hours": lookback})
    return start_dbt_subprocess(
        ["build", *MODELS, "--vars", variables, *extra],
        target,
        {"FHIR_ELT_DUCKDB_PATH": str(warehouse)},
    )


def _finish_build(process: Any, target: Path) -> None:
    returncode, output, results = finish_dbt_subprocess(process, target)
    assert returncode == 0, output[-4000:]
    assert {r["status"] for r in results} <= OK_STATUSES


def _build(warehouse: Path, target: Path, *extra: str, as_of: str = AS_OF) -> None:
    _finish_build(_start_build(warehouse, target, *extra, as_of=as_of), target)


def _query(warehouse: Path, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql, parameters or []).fetchall()


def _execute(warehouse: Path, sql: str, parameters: list[Any] | None = None) -> None:
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute(sql, parameters or [])


def _second_batch(first: Path, out: Path) -> dict[str, Any]:
    """Write batch 2 under ``out``; returns what each change is expected to do."""
    now = datetime.now(UTC)
    encounters = read_ndjson(first / "Encounter.ndjson")
    finished = [e for e in encounters if e["status"] == "finished"]
    cancelled, late_older, template = finished[0], finished[1], finished[2]
    late_resource = {
        **template,
        "id": "late-arriving-encounter",
        "meta": {"versionId": "1", "lastUpdated": (now - timedelta(days=730)).isoformat()},
    }
    write_ndjson(
        out,
        "Encounter",
        [
            new_version(cancelled, status="cancelled"),
            # older than what is stored: must never replace it
            new_version(
                late_older, last_updated=datetime(2001, 1, 1, tzinfo=UTC), status="planned"
            ),
            late_resource,
        ],
    )
    patient = read_ndjson(first / "Patient.ndjson")[0]
    new_gender = "female" if patient.get("gender") == "male" else "male"
    write_ndjson(out, "Patient", [new_version(patient, gender=new_gender)])

    observations = read_ndjson(first / "Observation.ndjson")
    panels = [o for o in observations if len(o.get("component", [])) > 1]
    shortened, deleted_panel = panels[0], panels[1]
    valued = next(
        o
        for o in observations
        if "valueQuantity" in o and o["id"] not in (shortened["id"], deleted_panel["id"])
    )
    value = {**valued["valueQuantity"], "value": 12345.5}
    write_ndjson(
        out,
        "Observation",
        [
            new_version(shortened, component=shortened["component"][:1]),
            new_version(valued, valueQuantity=value),
        ],
    )
    conditions = read_ndjson(first / "Condition.ndjson")
    resolved, deleted_condition = conditions[0], conditions[1]
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    write_ndjson(
        out,
        "Condition",
        [
            new_version(
                resolved, clinicalStatus={"coding": [{"system": clinical, "code": "resolved"}]}
            )
        ],
    )
    generate(GenerateOptions(patients=2, seed=NEW_PATIENTS_SEED, out=out / "new_patients"))
    return {
        "cancelled": cancelled["id"],
        "late_older": (late_older["id"], late_older["status"]),
        "late_resource": late_resource["id"],
        "patient": (patient["id"], new_gender),
        "shortened": shortened["id"],
        "valued": valued["id"],
        "resolved": resolved["id"],
        "deleted_panel": deleted_panel["id"],
        "deleted_condition": deleted_condition["id"],
    }


def _delete_in_a_later_load(warehouse: Path, table: str, resource_id: str) -> None:
    """What a loader's delete does to the raw table: a tombstone from a newer load."""
    load_id = f"{time.time():.6f}"
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _execute(
        warehouse,
        f"update raw_fhir.{table} set is_deleted = true, _dlt_load_id = ?, "
        "last_updated = now(), version_sort_key = ? || '|999999999999|deleted' where id = ?",
        [load_id, stamp, resource_id],
    )


def _model_rows(warehouse: Path, model: dict[str, Any]) -> list[tuple]:
    columns = [
        name
        for (name,) in _query(
            warehouse,
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [model["schema"], model["alias"]],
        )
        if name not in BUILD_METADATA_COLUMNS
    ]
    listed = ", ".join(f'"{column}"' for column in columns)
    return _query(warehouse, f'select {listed} from "{model["schema"]}"."{model["alias"]}"')


def _differences(left: Path, right: Path, models: list[dict[str, Any]]) -> dict[str, list[str]]:
    found = {}
    for model in models:
        problems = table_differences(_model_rows(left, model), _model_rows(right, model))
        if problems:
            found[model["name"]] = problems
    return found


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("dbt_incremental")
    generate(GenerateOptions(patients=PATIENTS, seed=SEED, out=base / "batch1"))
    settings = LoadSettings(
        duckdb_path=base / "incremental" / "fhir.duckdb",
        landing_root=base / "landing",
        source_system="incremental",
    )
    warehouse, target = settings.duckdb_path, base / "target"
    load_files(base / "batch1", settings)
    _build(warehouse, target, as_of=FIRST_AS_OF)
    placed_late = "select count(*) from marts.patient_timeline where event_at > ?"
    placed_before_now_moved = _query(warehouse, placed_late, [FIRST_AS_OF])[0][0]
    # lineage built while its run was still running: read again by the next build
    running_page = _query(warehouse, "select min(landing_file) from operations.row_lineage")[0][0]
    _execute(
        warehouse,
        "update operations.row_lineage set run_status = 'running' where landing_file = ?",
        [running_page],
    )
    running_rows = _query(
        warehouse,
        "select count(*) from operations.row_lineage where run_status = 'running'",
    )[0][0]

    # changed in place, no new load: an incremental build must not read it
    untouched = _query(warehouse, "select id from raw_fhir.practitioner order by id limit 1")[0][0]
    original = _query(
        warehouse,
        "select cast(resource as varchar) from raw_fhir.practitioner where id = ?",
        [untouched],
    )[0][0]
    _execute(
        warehouse,
        "update raw_fhir.practitioner set resource = json_merge_patch(resource, ?) where id = ?",
        ['{"gender": "unknown-in-place"}', untouched],
    )

    expected = _second_batch(base / "batch1", base / "batch2")
    # an encounter batch 2 does not touch, changed in staging without a new load id: the
    # incremental canonical model must not read it again
    changed_ids = {expected["cancelled"], expected["late_older"][0], expected["late_resource"]}
    untouched_encounter, untouched_status = next(
        (encounter_id, status)
        for encounter_id, status in _query(
            warehouse,
            "select encounter_id, encounter_status from staging.stg_fhir__encounters "
            "order by encounter_id",
        )
        if encounter_id not in changed_ids
    )
    _execute(
        warehouse,
        "update staging.stg_fhir__encounters set encounter_status = 'in-place' "
        "where encounter_id = ?",
        [untouched_encounter],
    )
    report = load_files(base / "batch2", settings)
    _delete_in_a_later_load(warehouse, "observation", expected["deleted_panel"])
    _delete_in_a_later_load(warehouse, "condition", expected["deleted_condition"])
    _build(warehouse, target)
    placed_after_now_moved = _query(warehouse, placed_late, [FIRST_AS_OF])[0][0]

    in_place_seen = _query(
        warehouse,
        "select gender_code from staging.stg_fhir__practitioners where practitioner_id = ?",
        [untouched],
    )
    in_place_canonical = _query(
        warehouse, "select count(*) from canonical.encounters where encounter_status = 'in-place'"
    )[0][0]
    _execute(
        warehouse,
        "update staging.stg_fhir__encounters set encounter_status = ? where encounter_id = ?",
        [untouched_status, untouched_encounter],
    )
    _execute(
        warehouse,
        "update raw_fhir.practitioner set resource = cast(? as json) where id = ?",
        [original, untouched],
    )

    # on copies at once: a full rebuild, and the incremental models reading both batches
    # again (a lookback over them); the incremental warehouse itself is kept as built. Then
    # a load that only deletes one immunization, built incrementally and from scratch: the
    # patient's timeline loses that event and is renumbered with no other change (batch 2
    # also changes or places events of most patients, which renumbers them anyway)
    full, again = base / "full" / "fhir.duckdb", base / "again" / "fhir.duckdb"
    gone, gone_full = base / "gone" / "fhir.duckdb", base / "gone_full" / "fhir.duckdb"
    for copy in (full, again, gone):
        copy.parent.mkdir()
        shutil.copy(warehouse, copy)
    # the earliest immunization: its patient has later events, which move up one place
    immunization_id = _query(
        gone,
        "select immunization_id from staging.stg_fhir__immunizations "
        "where occurred_at is not null order by occurred_at, immunization_id limit 1",
    )[0][0]
    timeline_rows = "select count(*) from marts.patient_timeline"
    events_before_delete = _query(gone, timeline_rows)[0][0]
    _delete_in_a_later_load(gone, "immunization", immunization_id)
    gone_full.parent.mkdir()
    shutil.copy(gone, gone_full)
    again_target = base / "target_again"
    rebuild = _start_build(full, target, "--full-refresh")
    reread = _start_build(
        again,
        again_target,
        "--select",
        "config.materialized:incremental",
        lookback=48,
    )
    _finish_build(rebuild, target)
    _finish_build(reread, again_target)
    gone_target, gone_full_target = base / "target_gone", base / "target_gone_full"
    delete_only = _start_build(gone, gone_target)
    delete_only_full = _start_build(gone_full, gone_full_target, "--full-refresh")
    _finish_build(delete_only, gone_target)
    _finish_build(delete_only_full, gone_full_target)
    events_after_delete = _query(gone, timeline_rows)[0][0]
    manifest = read_manifest(target)
    yield {
        "incremental": warehouse,
        "full": full,
        "again": again,
        "manifest": manifest,
        "expected": expected,
        "report": report,
        "in_place_seen": in_place_seen,
        "in_place_canonical": in_place_canonical,
        "placed": (placed_before_now_moved, placed_after_now_moved),
        "running_rows": running_rows,
        "gone": gone,
        "gone_full": gone_full,
        "patient_events": (events_before_delete, events_after_delete),
    }


def test_the_incremental_build_reads_only_newer_loads(warehouses: dict[str, Any]) -> None:
    # the raw row changed without a new load id was not read again
    assert warehouses["in_place_seen"] and warehouses["in_place_seen"][0][0] != "unknown-in-place"
    # nor the staging row changed without a new load id (canonical reads changed staging rows)
    assert warehouses["in_place_canonical"] == 0


def test_incremental_build_equals_a_full_rebuild(warehouses: dict[str, Any]) -> None:
    models = models_in(
        warehouses["manifest"], "staging", "canonical", "restricted", "marts", "operations"
    )
    incremental = {m["name"] for m in models if m["config"]["materialized"] == "incremental"}
    assert len(incremental) >= 24
    assert incremental >= INCREMENTAL_CANONICAL_MODELS | OTHER_INCREMENTAL
    differences = _differences(warehouses["incremental"], warehouses["full"], models)
    assert not differences, json.dumps(differences, indent=1, default=str)


def test_updates_late_data_and_deletes_are_applied(warehouses: dict[str, Any]) -> None:
    warehouse, expected = warehouses["incremental"], warehouses["expected"]

    def one(sql: str, *parameters: Any) -> list[tuple]:
        return _query(warehouse, sql, list(parameters))

    assert one(
        "select encounter_status from staging.stg_fhir__encounters where encounter_id = ?",
        expected["cancelled"],
    ) == [("cancelled",)]
    late_id, late_status = expected["late_older"]
    assert one(
        "select encounter_status from staging.stg_fhir__encounters where encounter_id = ?", late_id
    ) == [(late_status,)], "a late-arriving older version replaced the current one"
    assert warehouses["report"].run.resources_unchanged >= 1  # the loader refused it
    assert one(
        "select count(*) from staging.stg_fhir__encounters where encounter_id = ?",
        expected["late_resource"],
    ) == [(1,)], "a late-arriving resource (old lastUpdated) was missed"
    patient_id, gender = expected["patient"]
    assert one(
        "select gender_code from staging.stg_fhir__patients where patient_id = ?", patient_id
    ) == [(gender,)]
    assert one(
        "select value_quantity from staging.stg_fhir__observations where observation_id = ?",
        expected["valued"],
    ) == [(12345.5,)]
    assert one(
        "select count(*) from staging.stg_fhir__observation_components where observation_id = ?",
        expected["shortened"],
    ) == [(1,)], "the component removed by the new version is still there"
    assert one(
        "select clinical_status_code from staging.stg_fhir__conditions where condition_id = ?",
        expected["resolved"],
    ) == [("resolved",)]
    for table, column, deleted in (
        ("stg_fhir__observations", "observation_id", expected["deleted_panel"]),
        ("stg_fhir__observation_components", "observation_id", expected["deleted_panel"]),
        ("stg_fhir__conditions", "condition_id", expected["deleted_condition"]),
    ):
        assert one(f"select count(*) from staging.{table} where {column} = ?", deleted) == [(0,)], (
            f"deleted resource still in {table}"
        )


def test_the_timeline_follows_now_and_lineage_follows_running_runs(
    warehouses: dict[str, Any],
) -> None:
    before, after = warehouses["placed"]
    # none placed while they were "future"; the incremental build placed them (and equals a
    # full rebuild: test_incremental_build_equals_a_full_rebuild)
    assert before == 0
    assert after > 0
    assert warehouses["running_rows"] > 0
    assert _query(
        warehouses["incremental"],
        "select count(*) from operations.row_lineage where run_status = 'running'",
    ) == [(0,)]


def test_a_delete_alone_renumbers_the_patients_timeline(warehouses: dict[str, Any]) -> None:
    before, after = warehouses["patient_events"]
    assert after == before - 1
    models = models_in(
        warehouses["manifest"], "staging", "canonical", "restricted", "marts", "operations"
    )
    differences = _differences(warehouses["gone"], warehouses["gone_full"], models)
    assert not differences, json.dumps(differences, indent=1, default=str)


def test_reading_loads_again_never_duplicates_rows(warehouses: dict[str, Any]) -> None:
    models = models_in(warehouses["manifest"], "staging", "canonical", "marts", "operations")
    incremental = [m for m in models if m["config"]["materialized"] == "incremental"]
    assert {m["name"] for m in incremental} >= INCREMENTAL_CANONICAL_MODELS | OTHER_INCREMENTAL
    differences = _differences(warehouses["again"], warehouses["full"], incremental)
    assert not differences, json.dumps(differences, indent=1, default=str)


def test_a_null_in_a_not_null_mart_column_fails_the_build(
    warehouses: dict[str, Any], tmp_path: Path
) -> None:
    """The enforced constraint, not a data test, guards patient_timeline.source_system."""
    warehouse = tmp_path / "fhir.duckdb"
    shutil.copy(warehouses["incremental"], warehouse)
    timeline_rows = "select count(*) from marts.patient_timeline"
    rows_before = _query(warehouse, timeline_rows)[0][0]
    _execute(
        warehouse,
        "update canonical.encounters set source_system = null "
        "where encounter_key = (select min(event_key) from marts.patient_timeline "
        "where event_type = 'encounter')",
    )
    target = tmp_path / "target"
    returncode, output, results = finish_dbt_subprocess(
        _start_build(warehouse, target, "--select", "patient_timeline"), target
    )
    assert returncode != 0
    failed = [r for r in results if r["status"] == "error"]
    assert [r["unique_id"] for r in failed] == ["model.fhir_elt.patient_timeline"], output[-2000:]
    assert "NOT NULL constraint" in failed[0]["message"], failed[0]["message"]
    assert "source_system" in failed[0]["message"], failed[0]["message"]
    # the incremental build was rolled back whole
    assert _query(warehouse, timeline_rows)[0][0] == rows_before
