"""Static checks of the SQL the dbt project generates for Snowflake, without a Snowflake account.

What this proves
    * The whole project compiles for ``--target snowflake``: every model, the snapshot and every
      data test renders with the ``snowflake__`` versions of the cross-database macros.
    * Every compiled statement parses as Snowflake SQL, with two parsers: sqlglot
      (``read="snowflake"``) and sqlfluff's Snowflake dialect (``tests/integration/
      snowflake_sql_check.py``).
    * No unknown function remains (sqlglot ``exp.Anonymous``), except the explicit allowlist of
      real Snowflake functions sqlglot does not model (``ALLOWED_UNKNOWN_FUNCTIONS``).
    * No DuckDB-only construct leaks into Snowflake SQL: ``json_extract_string``, ``json_each``,
      ``json_extract``, ``->>``, the ``json`` type... sqlglot (and fakesnow) accept several of
      these, so they are looked for explicitly, outside string literals and comments.
    * Every ``snowflake__`` macro of the project is reached by at least one compiled node, so none
      escapes these checks unnoticed (exceptions listed in ``SNOWFLAKE_MACROS_NOT_COMPILED``).
    * The checker itself flags known-bad SQL (``test_checker_*``), so a green run means something.

What it cannot prove
    * That Snowflake accepts or correctly runs the SQL: nothing executes, sqlglot's parser is more
      lenient than Snowflake's, and it resolves no table, column, type or function signature.
    * Unit tests are not compiled (``dbt compile`` skips them: their SQL needs column types from
      the warehouse), nor the DDL/DML wrapping of materializations (create table as, merge):
      only the select bodies are checked.
    * Only the branches taken with the default vars and the ``snowflake`` target name are
      rendered (e.g. ``as_of`` unset; the ``fakesnow`` target branches are not real Snowflake SQL).

How dbt compiles without a connection
    ``dbt compile`` normally opens a connection for introspective queries and for the relation
    cache. ``--no-introspect --no-populate-cache`` removes both (measured with dbt-core 1.11 and
    dbt-snowflake 1.12). ``is_incremental()`` (the incremental staging models) still asks whether
    the model's table exists: ``get_relation`` is patched to answer "it does", so those models
    compile their incremental branch, which is the first build's SQL plus the filter on newer
    loads (``fhir_loaded_since_last_build``). Their pre-hooks are rendered only when dbt runs
    them: ``test_dbt_fakesnow.py`` checks the ones it ran. ``snowflake.connector.connect`` is
    patched to raise, so if a future dbt version connects anyway the test fails at once instead
    of waiting on the network. The credentials are dummies; the target path and log path are
    temporary directories.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from unittest import mock

import pytest

from tests.integration.snowflake_sql_check import snowflake_sql_problems, sqlfluff_problems

REPO = Path(__file__).resolve().parents[2]

# snowflake__ macros that no compiled model, snapshot or data test calls, with the reason.
SNOWFLAKE_MACROS_NOT_COMPILED = {
    # Called by unit-test fixtures (dbt_project/tests/fixtures), which dbt compile skips, and by
    # fhir_optional_source() only when a raw table is missing, which compiling without
    # introspection never checks (it reads the source as is).
    "snowflake__json_literal",
    # macros/fakesnow_compat.sql: overrides of dbt-snowflake's materialization macros (DDL and
    # DML around the select bodies), active on the fakesnow target only; on the snowflake target
    # they return dbt-snowflake's own SQL. Exercised by test_dbt_fakesnow.py.
    "snowflake__create_table_temporary_sql",
    "snowflake__create_view_as_with_temp_flag",
    "snowflake__get_merge_sql",
    "snowflake__post_snapshot",
    "snowflake__snapshot_merge_sql",
}

DUMMY_ENV = {
    "SNOWFLAKE_ACCOUNT": "dummy_account",
    "SNOWFLAKE_USER": "dummy_user",
    "SNOWFLAKE_PASSWORD": "dummy_password",
    "SNOWFLAKE_PRIVATE_KEY_PATH": "",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "",
    "SNOWFLAKE_ROLE": "dummy_role",
    "SNOWFLAKE_WAREHOUSE": "dummy_warehouse",
    "SNOWFLAKE_DATABASE": "dummy_database",
    "SNOWFLAKE_SCHEMA": "analytics",
    "SNOWFLAKE_THREADS": "4",
    # The snowflake target refuses to compile without the keyed-hash secret (macros/keyed_hash).
    "FHIR_ELT_HASH_KEY": "dummy-hash-key",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}

# --------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------

GOOD_SNOWFLAKE_SQL = """
select
    t.resource:name[0].family::string as family_name,  -- json_extract_string( in a comment
    'json_each(x) ->> in a string' as text_literal,
    convert_timezone('UTC', try_to_timestamp_tz(t.resource:period.start::string))::timestamp_ntz,
    get(filter(t.resource:identifier, item -> item:system::string = 'urn:mrn'), 0) as mrn,
    regexp_substr(t.ref, '([A-Za-z]+)/(.+)$', 1, 1, 'e', 2) as ref_id,
    components.index, components.value
from raw t
, lateral flatten(input => t.resource:component, outer => true) as components
qualify row_number() over (partition by t.id order by t.last_updated desc) = 1
"""


def test_checker_accepts_snowflake_sql() -> None:
    assert snowflake_sql_problems(GOOD_SNOWFLAKE_SQL) == []


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select json_extract_string(x, '$.a') from t", "json_extract_string"),
        ("select json_extract(x, '$.a') from t", "json_extract"),
        ("select j.value from t, json_each(t.x, '$.a') as j", "json_each"),
        ("select x ->> '$.a' from t", "->>"),
        ("select x -> '$.a' from t", "->"),
        ("select list_filter(l, x -> x > 1) from t", "list_filter"),
        ("select cast('{}' as json)", "type json"),
        ("select not_a_snowflake_function(x) from t", "not_a_snowflake_function"),
        ("select (x from t", "does not parse"),
    ],
)
def test_checker_rejects_non_snowflake_sql(sql: str, expected: str) -> None:
    problems = snowflake_sql_problems(sql)
    assert any(expected in problem for problem in problems), problems


def test_sqlfluff_check_accepts_snowflake_sql() -> None:
    assert sqlfluff_problems(GOOD_SNOWFLAKE_SQL) == []


@pytest.mark.parametrize(
    "sql",
    [
        "select x ->> '$.a' from t",  # DuckDB JSON operator
        "select (x from t",
        "select a from t where",
    ],
)
def test_sqlfluff_check_rejects_non_snowflake_sql(sql: str) -> None:
    assert sqlfluff_problems(sql), sql


# --------------------------------------------------------------------------------------------
# The compiled project
# --------------------------------------------------------------------------------------------


def _refuse_to_connect(*args: object, **kwargs: object) -> None:
    raise RuntimeError(
        "dbt compile tried to open a Snowflake connection although it ran with "
        "--no-introspect --no-populate-cache; this test must not need one"
    )


def _failure_report(result: object) -> str:
    """The invocation's exception, else the message of each node that did not compile."""
    if getattr(result, "exception", None) is not None:
        return str(result.exception)
    run = getattr(result, "result", None)
    failed = [r for r in getattr(run, "results", []) if str(r.status) != "success"]
    return "\n".join(f"{r.node.unique_id}: {r.message}" for r in failed) or "(no details)"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The manifest of ``dbt compile --target snowflake``, compiled without any connection."""
    pytest.importorskip("dbt.adapters.snowflake", reason="dbt-snowflake is not installed")
    from dbt.adapters.snowflake import SnowflakeAdapter, SnowflakeRelation
    from dbt.cli.main import dbtRunner

    def _existing_table(
        adapter: object, database: str, schema: str, identifier: str
    ) -> SnowflakeRelation:
        return SnowflakeRelation.create(
            database=database, schema=schema, identifier=identifier, type="table"
        )

    target_path = tmp_path_factory.mktemp("dbt_snowflake_compile")
    args = [
        "compile",
        "--target",
        "snowflake",
        "--project-dir",
        str(REPO),
        "--profiles-dir",
        str(REPO / "profiles"),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path / "logs"),
        "--no-partial-parse",
        "--no-introspect",
        "--no-populate-cache",
        "--quiet",
    ]
    with (
        mock.patch.dict(os.environ, DUMMY_ENV),
        mock.patch("snowflake.connector.connect", side_effect=_refuse_to_connect) as connect,
        # is_incremental() asks whether the model's table exists: "every table exists", so
        # incremental models compile their incremental branch (a superset of the first build's)
        mock.patch.object(SnowflakeAdapter, "get_relation", new=_existing_table),
    ):
        result = dbtRunner().invoke(args)
    assert connect.call_count == 0, "dbt compile opened a Snowflake connection"
    assert result.success, f"dbt compile --target snowflake failed: {_failure_report(result)}"
    return json.loads((target_path / "manifest.json").read_text())


COMPILED_RESOURCE_TYPES = ("model", "snapshot", "test")


def _compiled_nodes(manifest: dict) -> dict[str, str]:
    """Compiled SQL of models, snapshots and data tests, by project file and node id.

    The manifest is read rather than the compiled/ directory because dbt writes no file there for
    a snapshot defined in YAML; for every other node the SQL is the same.
    """
    return {
        f"{node['original_file_path']} [{node['unique_id']}]": node.get("compiled_code") or ""
        for node in manifest["nodes"].values()
        if node["resource_type"] in COMPILED_RESOURCE_TYPES
    }


def test_project_compiles_for_snowflake(manifest: dict) -> None:
    assert manifest["metadata"]["adapter_type"] == "snowflake"
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in COMPILED_RESOURCE_TYPES]
    not_compiled = [n["unique_id"] for n in nodes if not n.get("compiled_code")]
    assert not not_compiled, f"not compiled: {not_compiled}"
    assert {n["resource_type"] for n in nodes} == set(COMPILED_RESOURCE_TYPES)


def test_incremental_models_compile_their_incremental_branch(manifest: dict) -> None:
    incremental = {
        node["name"]: node["compiled_code"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental"
    }
    assert len(incremental) >= 14, sorted(incremental)
    # row_lineage keeps the load id as load_id; patient_timeline has no watermark: it numbers
    # the patients its pre-hook removed (macros/patient_timeline_events.sql)
    markers = {
        "row_lineage": "cast(load_id as double) >",
        "patient_timeline": "not in (select stored.patient_key",
    }
    unfiltered = [
        name
        for name, sql in incremental.items()
        if markers.get(name, "cast(_dlt_load_id as double) >") not in sql
    ]
    assert not unfiltered, f"compiled without the incremental filter: {unfiltered}"


def test_compiled_sql_is_snowflake_sql(manifest: dict) -> None:
    failures = {
        name: problems
        for name, sql in _compiled_nodes(manifest).items()
        if (problems := snowflake_sql_problems(sql))
    }
    report = "\n".join(
        f"{name}:\n    " + "\n    ".join(problems) for name, problems in sorted(failures.items())
    )
    assert not failures, f"{len(failures)} compiled Snowflake node(s) with problems:\n{report}"


# sqlfluff takes about a second per 5 KB of SQL, so it parses each model, snapshot and singular
# test, but one instance of each generic test (the others differ only in table and column
# names), and skips nodes above the size the project's own lint skips (.sqlfluff
# large_file_skip_byte_limit); sqlglot above still checks every node.
SQLFLUFF_MAX_BYTES = 40_000


def _sqlfluff_sample(manifest: dict) -> dict[str, str]:
    sample: dict[str, str] = {}
    seen_generic: set[tuple[str, str]] = set()
    for name, sql in sorted(_compiled_nodes(manifest).items()):
        node = manifest["nodes"][name.rsplit("[", 1)[1].rstrip("]")]
        generic = node.get("test_metadata")
        if generic:
            kind = (generic.get("namespace") or "", generic["name"])
            if kind in seen_generic:
                continue
            seen_generic.add(kind)
        if len(sql.encode()) <= SQLFLUFF_MAX_BYTES:
            sample[name] = sql
    return sample


def test_compiled_sql_parses_with_sqlfluff_snowflake_dialect(manifest: dict) -> None:
    sample = _sqlfluff_sample(manifest)
    models = [name for name in sample if "[model." in name]
    assert len(models) >= len(_compiled_nodes(manifest)) // 20, "too few models sampled"
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = dict(zip(sample, pool.map(sqlfluff_problems, sample.values()), strict=True))
    failures = {name: problems for name, problems in results.items() if problems}
    report = "\n".join(
        f"{name}:\n    " + "\n    ".join(problems) for name, problems in sorted(failures.items())
    )
    assert not failures, f"{len(failures)} compiled node(s) sqlfluff cannot parse:\n{report}"


def test_every_snowflake_macro_is_compiled(manifest: dict) -> None:
    """Each snowflake__ macro of the project is reached from a compiled node (so it is checked)."""
    macros = manifest["macros"]
    reached: set[str] = set()
    pending = [
        macro
        for node in manifest["nodes"].values()
        for macro in node.get("depends_on", {}).get("macros", [])
    ]
    while pending:
        macro = pending.pop()
        if macro not in reached:
            reached.add(macro)
            pending.extend(macros.get(macro, {}).get("depends_on", {}).get("macros", []))

    ours = {
        macro["name"]
        for macro in macros.values()
        if macro["package_name"] == "fhir_elt" and macro["name"].startswith("snowflake__")
    }
    unreached = {
        name for name in ours if f"macro.fhir_elt.{name}" not in reached
    } - SNOWFLAKE_MACROS_NOT_COMPILED
    assert ours, "no snowflake__ macros found in the project"
    assert not unreached, (
        f"snowflake__ macros no compiled model/snapshot/test uses, so this test never checks "
        f"them: {sorted(unreached)}. Use them, or list them in SNOWFLAKE_MACROS_NOT_COMPILED "
        "with the reason."
    )
