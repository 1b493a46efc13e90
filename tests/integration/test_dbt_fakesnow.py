"""The whole dbt project on Snowflake SQL without an account: fakesnow in-process, against DuckDB.

fakesnow (a Snowflake emulator on DuckDB) runs the dbt-snowflake adapter in this process
(``fakesnow.patch()``), on the ``fakesnow`` target of profiles.yml. One small synthetic dataset
(``PATIENTS``) is loaded by the loader into a DuckDB warehouse and its raw tables are copied into
the emulator; then, on both warehouses:

1. on fakesnow, ``dbt build``: seeds, every model, snapshots, the unit tests of staging and
   canonical models (the ones over the ``snowflake__`` JSON macros);
2. a second batch, loaded with ``load files``: new versions of encounters (status), conditions
   (resolved), a patient (address) and a blood-pressure panel (one component removed), plus new
   patients; the raw tables are copied again;
3. on fakesnow, ``dbt build`` again: the incremental staging models' second run (pre-hook
   delete + delete+insert), the snapshots' second run (merge), every test; then
   ``dbt source freshness``;
4. on DuckDB, one ``dbt build`` of both batches (models, seeds, snapshots), in a child process;
   then the models are compared.

What this proves
    * The project's Snowflake SQL (the ``snowflake__`` macros: VARIANT paths, ``lateral
      flatten``, ``qualify``, keyed hashes, incremental filters and pre-hooks, snapshots, data
      rules, staging and canonical unit tests, freshness) runs end to end on an emulator of
      Snowflake, first and second runs, with every test passing.
    * Every canonical and mart model (whatever models/marts holds, read from the manifest)
      holds the same rows on fakesnow as on DuckDB for the same input (floats within 1e-6).
    * The incremental pre-hooks' SQL as sent on the second batch passes the static checks of
      ``snowflake_sql_check.py`` (sqlglot with no unknown function, sqlfluff's snowflake
      dialect): fakesnow also runs DuckDB-only SQL, so running is not enough. (The models'
      compiled SQL, incremental branch included, is checked in ``test_dbt_snowflake_sql.py``.)

What it cannot prove
    * That Snowflake itself behaves the same: fakesnow translates Snowflake SQL to DuckDB, so
      anything it emulates differently (type coercions, timestamp and time zone rules, VARIANT
      comparisons, error cases, MERGE and transaction semantics) is unproven, and the
      fakesnow-only compatibility macros (macros/fakesnow_compat.sql) replace the temporary
      relations and transaction wrapper dbt-snowflake really uses.
    * How dlt's snowflake destination writes the raw tables. dlt cannot load into fakesnow
      in-process (measured with dlt 1.31 / fakesnow 0.12: dlt reads ``cursor.description``
      after DDL, which fakesnow answers with a failing DESCRIBE; its ``PUT`` of a quoted table
      stage and its ``COPY INTO ... FILE_FORMAT`` options are not understood). So the raw
      tables are created here with the raw contract's columns in Snowflake types as dlt's
      snowflake destination maps them (json -> VARIANT, timestamp -> TIMESTAMP_TZ, bigint ->
      NUMBER(19,0)...) and filled with the rows the loader wrote to DuckDB, load ids included.
    * Performance, concurrency, grants, or anything needing a real account.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template
from typing import Any

import duckdb
import pytest

from loaders.load_files import load_files
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate
from tests.integration.dbt_support import (
    AS_OF,
    BUILD_METADATA_COLUMNS,
    OK_STATUSES,
    failures,
    finish_dbt_subprocess,
    invoke_dbt,
    models_in,
    new_version,
    read_manifest,
    read_ndjson,
    start_dbt_subprocess,
    statuses,
    table_differences,
    write_ndjson,
)
from tests.integration.snowflake_sql_check import snowflake_sql_problems, sqlfluff_problems

fakesnow = pytest.importorskip("fakesnow", reason="fakesnow (dev extra) is not installed")

PATIENTS = 30
SEED = 23
NEW_PATIENTS_SEED = 24
DATABASE = "fhir_elt"
RAW_SCHEMA = "raw_fhir"
TARGET_SCHEMA = "analytics"  # profiles.yml, target fakesnow
HASH_KEY = "fakesnow-test-key"
DBT_VARS = json.dumps({"as_of": AS_OF})

# DuckDB column types of the raw tables -> the Snowflake types dlt's snowflake destination uses.
SNOWFLAKE_TYPES = {
    "VARCHAR": "varchar",
    "JSON": "variant",
    "BOOLEAN": "boolean",
    "BIGINT": "number(19,0)",
    "INTEGER": "number(10,0)",
    "DOUBLE": "float",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamp_tz",
    "TIMESTAMP": "timestamp_ntz",
}


def _snowflake_type(duckdb_type: str) -> str:
    decimal = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", duckdb_type)
    if decimal:
        return f"number({decimal[1]},{decimal[2]})"
    return SNOWFLAKE_TYPES[duckdb_type]


# fakesnow 0.12's FLATTEN numbers array elements with row_number() over () (no order), so under
# DuckDB's parallel execution `index` can be another element's position (measured: the
# components of blood-pressure panels swapped). The emulator's table macro is replaced, for these
# tests only, by one that takes the position from the element itself (list_transform's index).
_ORDERED_FLATTEN = Template(
    """
CREATE OR REPLACE MACRO ${catalog}._fs_flatten(input) AS TABLE
    SELECT
        hash(TO_JSON(input))::UBIGINT AS SEQ,
        e.k AS KEY,
        COALESCE(e.k, '[' || e.i || ']') AS PATH,
        CASE WHEN e.k IS NOT NULL THEN NULL ELSE e.i END AS INDEX,
        e.v AS VALUE,
        TO_JSON(input) AS THIS
    FROM (
        SELECT UNNEST(
            CASE WHEN json_type(TO_JSON(input)) = 'OBJECT'
                 THEN list_transform(
                    json_keys(TO_JSON(input)),
                    lambda x: struct_pack(
                        k := x, v := CAST(TO_JSON(input) -> x AS JSON), i := NULL::BIGINT
                    )
                 )
                 ELSE list_transform(
                    CAST(TO_JSON(input) AS JSON[]),
                    lambda x, i: struct_pack(k := NULL::VARCHAR, v := x, i := (i - 1)::BIGINT)
                 )
            END, recursive := true
        )
    ) AS e(k, v, i)
"""
)


@contextmanager
def emulator(db_path: Path) -> Iterator[None]:
    """fakesnow in this process (its databases are files under ``db_path``), FLATTEN fixed."""
    import fakesnow.macros

    original = fakesnow.macros.FS_FLATTEN
    assert "row_number() OVER ()" in original.template, "fakesnow's FLATTEN changed: re-check"
    fakesnow.macros.FS_FLATTEN = _ORDERED_FLATTEN
    try:
        with fakesnow.patch(db_path=db_path):
            yield
    finally:
        fakesnow.macros.FS_FLATTEN = original


def _connect() -> Any:
    import snowflake.connector

    return snowflake.connector.connect(
        account="fakesnow", user="fake", password="fake", database=DATABASE, paramstyle="qmark"
    )


def copy_raw_tables(warehouse: Path) -> int:
    """Replace the emulator's raw schema with the DuckDB warehouse's; returns the rows copied.

    Runs inside :func:`emulator`. The tables are created in Snowflake SQL with the Snowflake
    types dlt's snowflake destination gives the raw contract (SNOWFLAKE_TYPES); the rows, load
    ids included, are copied inside the emulator's own DuckDB (fakesnow stores VARIANT as DuckDB
    JSON), which reads the loader's file directly: parsing them as SQL literals would cost
    seconds per batch.
    """
    connection = _connect()
    cursor = connection.cursor()
    cursor.execute(f"create schema if not exists {DATABASE}.{RAW_SCHEMA}")
    # the target's schema, before dbt's threads connect at once (fakesnow creates a missing
    # schema on connect, and two connections racing to create it fail)
    cursor.execute(f"create schema if not exists {DATABASE}.{TARGET_SCHEMA}")
    duck = connection._duck_conn  # fakesnow's DuckDB connection
    duck.execute(f"attach '{warehouse}' as loader_warehouse (read_only)")
    try:
        columns = duck.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_catalog = 'loader_warehouse' and table_schema = ? "
            "order by table_name, ordinal_position",
            [RAW_SCHEMA],
        ).fetchall()
        tables: dict[str, list[tuple[str, str]]] = {}
        for table, column, data_type in columns:
            tables.setdefault(table, []).append((column, _snowflake_type(data_type)))
        copied = 0
        for table, table_columns in tables.items():
            name = f"{DATABASE}.{RAW_SCHEMA}.{table}"
            definition = ", ".join(f"{column} {kind}" for column, kind in table_columns)
            cursor.execute(f"create or replace table {name} ({definition})")
            listed = ", ".join(f'"{column}"' for column, _ in table_columns)
            copied += duck.execute(
                f'insert into {name} select {listed} from loader_warehouse."{RAW_SCHEMA}"."{table}"'
            ).fetchone()[0]
    finally:
        duck.execute("detach loader_warehouse")
        connection.close()
    return copied


def _second_batch(first: Path, out: Path) -> dict[str, list[str]]:
    """New versions of some first-batch resources, plus new patients; returns the changed ids."""
    encounters = [e for e in read_ndjson(first / "Encounter.ndjson") if e["status"] == "finished"]
    changed_encounters = [new_version(e, status="entered-in-error") for e in encounters[:3]]
    write_ndjson(out, "Encounter", changed_encounters)

    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    active = [
        c
        for c in read_ndjson(first / "Condition.ndjson")
        if c.get("clinicalStatus", {}).get("coding", [{}])[0].get("code") == "active"
    ]
    resolved = [
        new_version(
            c,
            clinicalStatus={"coding": [{"system": clinical, "code": "resolved"}]},
            abatementDateTime=AS_OF.replace(" ", "T") + "+00:00",
        )
        for c in active[:2]
    ]
    write_ndjson(out, "Condition", resolved)

    patient = read_ndjson(first / "Patient.ndjson")[0]
    address = [{**patient["address"][0], "city": "Springfield", "postalCode": "97403"}]
    write_ndjson(out, "Patient", [new_version(patient, address=address)])

    panels = [
        o for o in read_ndjson(first / "Observation.ndjson") if len(o.get("component", [])) > 1
    ]
    write_ndjson(
        out, "Observation", [new_version(panels[0], component=panels[0]["component"][:-1])]
    )

    generate(GenerateOptions(patients=3, seed=NEW_PATIENTS_SEED, out=out / "new_patients"))
    return {
        "encounters": [e["id"] for e in changed_encounters],
        "conditions": [c["id"] for c in resolved],
        "panel": [panels[0]["id"]],
        "panel_components": [str(len(panels[0]["component"]) - 1)],
    }


class SqlCollector:
    """dbt callback keeping the SQL of every statement dbt sends (event SQLQuery)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, event: Any) -> None:
        if event.info.name == "SQLQuery":
            self.statements.append(event.data.sql)


def _dbt_env(warehouse: Path) -> dict[str, str]:
    return {"FHIR_ELT_DUCKDB_PATH": str(warehouse), "FHIR_ELT_HASH_KEY": HASH_KEY}


def _rows_by_model(models: list[dict[str, Any]], duck: Path) -> dict[str, tuple[list, list]]:
    """Each model's rows on DuckDB and on fakesnow (same columns, same order)."""
    rows: dict[str, tuple[list, list]] = {}
    with duckdb.connect(str(duck), read_only=True) as connection:
        for model in models:
            columns = [
                name
                for (name,) in connection.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [model["schema"], model["alias"]],
                ).fetchall()
                if name not in BUILD_METADATA_COLUMNS
            ]
            listed = ", ".join(f'"{column}"' for column in columns)
            duck_rows = connection.execute(
                f'select {listed} from "{model["schema"]}"."{model["alias"]}"'
            ).fetchall()
            rows[model["name"]] = (duck_rows, columns)
    snow = _connect()
    cursor = snow.cursor()
    result: dict[str, tuple[list, list]] = {}
    for model in models:
        duck_rows, columns = rows[model["name"]]
        listed = ", ".join(columns)
        cursor.execute(f"select {listed} from {DATABASE}.{model['schema']}.{model['alias']}")
        result[model["name"]] = (duck_rows, cursor.fetchall())
    snow.close()
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("dbt_fakesnow")
    generate(GenerateOptions(patients=PATIENTS, seed=SEED, out=base / "batch1"))
    settings = LoadSettings(
        duckdb_path=base / "duckdb" / "fhir.duckdb",
        landing_root=base / "landing",
        source_system="fakesnow",
    )
    duck_env = _dbt_env(settings.duckdb_path)
    fakesnow_dir, fake_target, duck_target = base / "fakesnow", base / "fs_target", base / "duck"
    # unit tests in the first build, data tests in the second: each runs once. The marts' unit
    # tests (engine-neutral SQL; they run on DuckDB in test_dbt_rules / e2e) are left out here:
    # on fakesnow each costs seconds of column-type introspection.
    first_build = [
        "build",
        "--target",
        "fakesnow",
        "--threads",
        "4",
        "--exclude-resource-type",
        "test",
        "--exclude",
        "resource_type:unit_test,path:dbt_project/models/marts",
    ]
    second_build = [
        "build",
        "--target",
        "fakesnow",
        "--threads",
        "4",
        "--exclude-resource-type",
        "unit_test",
    ]
    duck_build = ["build", "--exclude-resource-type", "test", "unit_test", "--vars", DBT_VARS]
    fakesnow_dir.mkdir()
    out: dict[str, Any] = {"base": base}

    load_files(base / "batch1", settings)
    with emulator(fakesnow_dir):
        out["copied_first"] = copy_raw_tables(settings.duckdb_path)
        out["first"] = invoke_dbt([*first_build, "--vars", DBT_VARS], fake_target, duck_env)

    out["changed"] = _second_batch(base / "batch1", base / "batch2")
    load_files(base / "batch2", settings)
    collector = SqlCollector()
    with emulator(fakesnow_dir):
        copy_raw_tables(settings.duckdb_path)
        # DuckDB, same input: one build of both batches in a child process (dbt-duckdb keeps the
        # file open), on the other core while fakesnow builds here
        duck = start_dbt_subprocess(duck_build, duck_target, duck_env)
        out["second"] = invoke_dbt(
            [*second_build, "--vars", DBT_VARS], fake_target, duck_env, callbacks=[collector]
        )
        out["freshness"] = invoke_dbt(
            ["source", "freshness", "--target", "fakesnow", "--vars", DBT_VARS],
            fake_target,
            duck_env,
        )
        out["manifest"] = read_manifest(fake_target)
        out["fakesnow_checks"] = _fakesnow_checks(out["changed"])

    out["duck"] = finish_dbt_subprocess(duck, duck_target)
    compared = models_in(out["manifest"], "canonical", "marts")
    out["compared"] = [model["name"] for model in compared]
    with emulator(fakesnow_dir):
        out["rows"] = _rows_by_model(compared, settings.duckdb_path)
    out["statements"] = collector.statements
    return out


def _fakesnow_checks(changed: dict[str, list[str]]) -> dict[str, Any]:
    """Facts read back from the emulator after the second build."""
    connection = _connect()
    cursor = connection.cursor()
    ids = ", ".join(f"'{value}'" for value in changed["encounters"])
    cursor.execute(
        f"select count(*) from {DATABASE}.staging.stg_fhir__encounters "
        f"where encounter_id in ({ids}) and encounter_status = 'entered-in-error'"
    )
    (encounters_changed,) = cursor.fetchone()
    cursor.execute(
        "select encounter_status, dbt_valid_to is null "
        f"from {DATABASE}.snapshots.encounters_snapshot "
        f"where encounter_key in (select encounter_key from {DATABASE}.canonical.encounters "
        "where encounter_status = 'entered-in-error') order by 2, 1"
    )
    encounter_versions = cursor.fetchall()
    cursor.execute(
        f"select count(*) from {DATABASE}.staging.stg_fhir__observation_components "
        f"where observation_id = '{changed['panel'][0]}'"
    )
    (components,) = cursor.fetchone()
    connection.close()
    return {
        "encounters_changed": encounters_changed,
        "encounter_versions": encounter_versions,
        "panel_components": components,
    }


def test_raw_tables_are_copied(run: dict[str, Any]) -> None:
    assert run["copied_first"] > PATIENTS * 10


def test_first_build_on_fakesnow_passes_every_node(run: dict[str, Any]) -> None:
    assert not failures(run["first"]), "\n".join(failures(run["first"]))
    kinds = {unique_id.split(".")[0] for unique_id in statuses(run["first"])}
    assert {"seed", "model", "snapshot", "unit_test"} <= kinds


def test_second_build_runs_incremental_models_and_snapshots_on_fakesnow(
    run: dict[str, Any],
) -> None:
    assert not failures(run["second"]), "\n".join(failures(run["second"]))
    staging = [m["name"] for m in models_in(run["manifest"], "staging")]
    incremental = [
        m["name"]
        for m in models_in(run["manifest"], "staging")
        if m["config"]["materialized"] == "incremental"
    ]
    assert len(incremental) >= 14, staging
    sql = "\n".join(run["statements"]).lower()
    for name in incremental:
        # the incremental path: pre-hook delete, temporary relation, delete+insert
        assert f"delete from {DATABASE}.staging.{name}\n" in sql or (
            f"delete from {DATABASE}.staging.{name} " in sql
        ), name
        assert f"{name}__dbt_tmp" in sql, name
    checks = run["fakesnow_checks"]
    assert checks["encounters_changed"] == len(run["changed"]["encounters"])
    # snapshot second run: each changed encounter has its closed first version and a current one
    assert checks["encounter_versions"].count(("entered-in-error", True)) == len(
        run["changed"]["encounters"]
    )
    assert len(checks["encounter_versions"]) == 2 * len(run["changed"]["encounters"])
    # a new version with one component fewer replaced the panel's component rows
    assert str(checks["panel_components"]) == run["changed"]["panel_components"][0]


def test_source_freshness_runs_on_fakesnow(run: dict[str, Any]) -> None:
    result = run["freshness"]
    assert result.exception is None, result.exception
    # results also hold the on-run-end hook (macros/phi_schema_grants.sql, a no-op here)
    sources = {
        r.node.name: str(r.status)
        for r in result.result.results
        if str(r.node.resource_type) == "source"
    }
    assert {"patient", "encounter", "observation", "load_runs"} <= set(sources)
    assert set(sources.values()) == {"pass"}, sources


def test_duckdb_build_passes(run: dict[str, Any]) -> None:
    returncode, output, results = run["duck"]
    assert returncode == 0, output[-4000:]
    assert {r["status"] for r in results} <= OK_STATUSES


def test_every_mart_and_canonical_model_holds_the_same_rows_on_duckdb_and_fakesnow(
    run: dict[str, Any],
) -> None:
    marts = models_in(run["manifest"], "marts")
    assert marts, "no mart models in the manifest"
    assert {m["name"] for m in marts} <= set(run["compared"])
    differences = {}
    for name, (duck_rows, snow_rows) in run["rows"].items():
        problems = table_differences(duck_rows, snow_rows, rel_tol=1e-6, abs_tol=1e-6)
        if problems:
            differences[name] = problems
    assert not differences, json.dumps(differences, indent=1, default=str)
    # an empty model compares equal trivially: most of them must hold rows
    empty = sorted(name for name, (duck_rows, _) in run["rows"].items() if not duck_rows)
    assert len(empty) <= len(run["rows"]) // 4, f"too many empty models to compare: {empty}"


def test_incremental_pre_hooks_sent_to_the_emulator_pass_static_checks(run: dict[str, Any]) -> None:
    """The pre-hooks' SQL exists only at run time (dbt compile does not render hooks).

    Their macros have no target-specific branch, so what ran on fakesnow is what Snowflake
    would get. The models' compiled incremental SQL is checked in test_dbt_snowflake_sql.py.
    """
    hooks = [s for s in run["statements"] if "raw_rows" in s and "delete from" in s.lower()]
    assert len(hooks) >= 14, "the incremental pre-hooks were not run"
    problems = {
        f"hook {number}": found
        for number, hook in enumerate(hooks)
        if (found := snowflake_sql_problems(hook) + sqlfluff_problems(hook))
    }
    assert not problems, json.dumps(problems, indent=1)
