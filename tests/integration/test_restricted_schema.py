"""The restricted (PHI) schema on Snowflake: grants as dbt would apply them, without an account.

Nothing here connects to Snowflake (``snowflake.connector.connect`` is patched to fail), and
fakesnow cannot help: it rejects every GRANT, REVOKE and ``show grants`` (measured with fakesnow
0.12.1), which is why the project grants nothing on the ``fakesnow`` target. Instead:

* ``dbt parse --target snowflake`` gives every node's resolved config (schema, tags, meta,
  grants, copy_grants) with the roles taken from the environment (``FHIR_ELT_PHI_ROLE``,
  ``FHIR_ELT_ANALYST_ROLE``), and the checks below run over that manifest like a linter;
* ``dbt run-operation phi_schema_grants --args '{dry_run: true}' --target snowflake`` logs the
  schema-level statements the on-run-end hook runs (the same macro, minus the check of which
  schemas exist); the test captures them from dbt's event stream and checks who gets what.

What this proves: restricted models grant select to the PHI role alone and are rebuilt without
copying grants; restricted, staging, test-failure and raw schemas are granted to the PHI role
and every privilege of the analyst role on them (current and future objects) is revoked; only
other schemas are granted to the analyst role; every restricted / contains_phi model lives in
schema ``restricted`` and no other model outside the PHI-internal staging layer declares a PHI
column; the statements parse as Snowflake SQL (sqlfluff). What it cannot prove: that a real
account accepts them with dbt's role (managed access, ownership, MANAGE GRANTS: README "PHI
and the restricted schema"), nor that no third role holds grants made by hand.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from tests.integration.dbt_support import REPO, failures, invoke_dbt, read_manifest
from tests.integration.snowflake_sql_check import sqlfluff_problems

PHI_ROLE = "HOSPITAL_PHI_READER"
ANALYST_ROLE = "HOSPITAL_ANALYST"
DATABASE = "EHR_DB"
RESTRICTED = "restricted"
# Schemas that hold PHI: the restricted models, staging (parsed resources), stored data-test
# failures and the loaders' raw schema (whole resources).
PHI_SCHEMAS = {"restricted", "staging", "dq_failures", "raw_fhir"}

ENV = {
    "SNOWFLAKE_ACCOUNT": "dummy_account",
    "SNOWFLAKE_USER": "dummy_user",
    "SNOWFLAKE_PASSWORD": "dummy_password",
    "SNOWFLAKE_PRIVATE_KEY_PATH": "",
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "",
    "SNOWFLAKE_ROLE": "dummy_transformer",
    "SNOWFLAKE_WAREHOUSE": "dummy_warehouse",
    "SNOWFLAKE_DATABASE": DATABASE,
    "SNOWFLAKE_SCHEMA": "analytics",
    "FHIR_ELT_HASH_KEY": "dummy-hash-key",
    "FHIR_ELT_PHI_ROLE": PHI_ROLE,
    "FHIR_ELT_ANALYST_ROLE": ANALYST_ROLE,
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}


def _refuse_to_connect(*args: object, **kwargs: object) -> None:
    raise RuntimeError("this test must not open a Snowflake connection")


def _dbt(args: list[str], target_path: Path, *, emulated: bool = False) -> tuple[Any, list[str]]:
    """One dbt command on the snowflake target; (result, Jinja log and error lines).

    Connecting fails the test, unless ``emulated``: a run-operation whose macro raises opens a
    connection to roll back, and a refused connection would mask the macro's error, so that
    case runs inside fakesnow (which receives no statement from the macro).
    """
    pytest.importorskip("dbt.adapters.snowflake", reason="dbt-snowflake is not installed")
    logged: list[str] = []

    def collect(event: Any) -> None:
        if event.info.name in ("JinjaLogInfo", "RunningOperationCaughtError"):
            logged.append(event.info.msg)

    command = [*args, "--target", "snowflake"]
    if emulated:
        fakesnow = pytest.importorskip("fakesnow")
        with fakesnow.patch():
            return invoke_dbt(command, target_path, ENV, [collect]), logged
    with mock.patch("snowflake.connector.connect", side_effect=_refuse_to_connect) as connect:
        result = invoke_dbt(command, target_path, ENV, [collect])
    assert connect.call_count == 0, "dbt opened a Snowflake connection"
    return result, logged


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The snowflake target's manifest and the statements of the on-run-end grants hook."""
    target_path = tmp_path_factory.mktemp("restricted_schema")
    parsed, _ = _dbt(["parse", "--no-partial-parse"], target_path)
    assert parsed.success, failures(parsed)
    operation, logged = _dbt(
        ["run-operation", "phi_schema_grants", "--args", "{dry_run: true}"], target_path
    )
    assert operation.success, failures(operation)
    prefix = "phi_schema_grants: "
    statements = [line[len(prefix) :].rstrip(";") for line in logged if line.startswith(prefix)]
    return {"manifest": read_manifest(target_path), "statements": statements, "path": target_path}


def _project_nodes(manifest: dict[str, Any], *types: str) -> list[dict[str, Any]]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["package_name"] == "fhir_elt" and node["resource_type"] in types
    ]


def _is_restricted(node: dict[str, Any]) -> bool:
    return (
        node["fqn"][1] == "restricted"
        or "restricted" in node["tags"]
        or bool(node["config"].get("meta", {}).get("contains_phi"))
    )


def _phi_columns(node: dict[str, Any]) -> list[str]:
    return [
        column["name"]
        for column in node["columns"].values()
        if column.get("meta", {}).get("contains_phi")
        or column.get("config", {}).get("meta", {}).get("contains_phi")
    ]


def _schema_of(statement: str) -> str:
    """The ``database.schema`` a grant statement names (lower case)."""
    match = re.search(r"\bschema (?:if not exists )?(\S+)", statement)
    assert match, statement
    return match.group(1).lower()


def _grants_by_schema(statements: list[str]) -> dict[str, list[str]]:
    """Statements by the schema they name (``database.schema``, lower case)."""
    by_schema: dict[str, list[str]] = {}
    for statement in statements:
        by_schema.setdefault(_schema_of(statement), []).append(statement)
    return by_schema


# --------------------------------------------------------------------------------------------
# Model-level grants and the PHI fence, read from the manifest
# --------------------------------------------------------------------------------------------


def test_restricted_models_grant_select_to_the_phi_role_only(project: dict[str, Any]) -> None:
    restricted = [n for n in _project_nodes(project["manifest"], "model") if _is_restricted(n)]
    assert {n["name"] for n in restricted} >= {"patient_identities"}
    for node in restricted:
        assert node["config"]["grants"] == {"select": [PHI_ROLE]}, node["name"]
        # a rebuild (create or replace) drops every earlier grant; dbt then grants the above
        assert node["config"]["copy_grants"] is False, node["name"]


def test_no_node_outside_restricted_has_its_own_grants(project: dict[str, Any]) -> None:
    manifest = project["manifest"]
    granted = {
        node["name"]: node["config"].get("grants")
        for node in _project_nodes(manifest, "model", "seed", "snapshot")
        if not _is_restricted(node) and node["config"].get("grants")
    }
    assert granted == {}, f"models outside restricted with their own grants: {granted}"


def test_restricted_models_live_in_the_restricted_schema(project: dict[str, Any]) -> None:
    nodes = _project_nodes(project["manifest"], "model", "seed", "snapshot")
    misplaced = {
        node["name"]: node["schema"]
        for node in nodes
        if _is_restricted(node) and node["schema"] != RESTRICTED
    }
    assert not misplaced, f"restricted / contains_phi nodes outside {RESTRICTED}: {misplaced}"
    in_schema = {n["name"] for n in nodes if n["schema"] == RESTRICTED}
    assert all(_is_restricted(n) for n in nodes if n["name"] in in_schema)
    for node in nodes:
        if node["schema"] == RESTRICTED:
            assert "restricted" in node["tags"], node["name"]
            assert node["config"]["meta"].get("contains_phi") is True, node["name"]


def test_no_phi_column_outside_restricted_and_staging(project: dict[str, Any]) -> None:
    nodes = _project_nodes(project["manifest"], "model", "seed", "snapshot")
    declared = {n["name"]: _phi_columns(n) for n in nodes if _phi_columns(n)}
    assert declared, "no column is marked contains_phi: the check below would prove nothing"
    outside = {
        node["name"]: _phi_columns(node)
        for node in nodes
        if _phi_columns(node) and node["schema"] not in (RESTRICTED, "staging")
    }
    assert not outside, f"PHI columns outside restricted/staging: {outside}"


# --------------------------------------------------------------------------------------------
# Schema-level grants: the on-run-end hook's statements
# --------------------------------------------------------------------------------------------


def test_hook_runs_the_grants_macro(project: dict[str, Any]) -> None:
    hooks = _project_nodes(project["manifest"], "operation")
    assert any("phi_schema_grants()" in hook["raw_code"] for hook in hooks), hooks
    assert any("on-run-end" in hook["unique_id"] for hook in hooks)


def test_phi_schemas_are_for_the_phi_role_only(project: dict[str, Any]) -> None:
    by_schema = _grants_by_schema(project["statements"])
    phi = {schema for schema in by_schema if schema.split(".")[1] in PHI_SCHEMAS}
    assert {schema.split(".")[1] for schema in phi} == PHI_SCHEMAS, sorted(by_schema)
    for schema in phi:
        statements = set(by_schema[schema])
        expected = {
            f"create schema if not exists {schema} with managed access",
            f"alter schema {schema} enable managed access",
            f"revoke all privileges on schema {schema} from role {ANALYST_ROLE}",
            f"grant usage on schema {schema} to role {PHI_ROLE}",
        }
        for objects in ("tables", "views"):
            for scope in ("all", "future"):
                expected.add(
                    f"revoke all privileges on {scope} {objects} in schema {schema} "
                    f"from role {ANALYST_ROLE}"
                )
                expected.add(
                    f"grant select on {scope} {objects} in schema {schema} to role {PHI_ROLE}"
                )
        assert {s.lower() for s in statements} == {s.lower() for s in expected}, schema
        granted_to_analyst = [
            s for s in statements if s.startswith("grant") and s.endswith(f"role {ANALYST_ROLE}")
        ]
        assert not granted_to_analyst, granted_to_analyst


def test_analytic_schemas_are_for_the_analyst_role(project: dict[str, Any]) -> None:
    manifest = project["manifest"]
    by_schema = _grants_by_schema(project["statements"])
    analytic_nodes = [
        node
        for node in _project_nodes(manifest, "model", "seed", "snapshot")
        if not _is_restricted(node) and node["fqn"][1] != "staging"
    ]
    expected_schemas = {f"{DATABASE}.{node['schema']}".lower() for node in analytic_nodes}
    assert {"marts", "canonical"} <= {schema.split(".")[1] for schema in expected_schemas}
    analytic = {s for s in by_schema if s.split(".")[1] not in PHI_SCHEMAS}
    assert analytic == expected_schemas
    assert not {schema.split(".")[1] for schema in analytic} & PHI_SCHEMAS
    for schema in analytic:
        statements = by_schema[schema]
        assert all(
            s.startswith(("create schema", "alter schema")) or s.endswith(f"to role {ANALYST_ROLE}")
            for s in statements
        ), statements
        lowered = {s.lower() for s in statements}
        assert f"grant usage on schema {schema} to role {ANALYST_ROLE}".lower() in lowered
        for objects in ("tables", "views"):
            for scope in ("all", "future"):
                assert (
                    f"grant select on {scope} {objects} in schema {schema} "
                    f"to role {ANALYST_ROLE}".lower()
                    in lowered
                ), (schema, scope, objects)
    # every grant on a PHI schema, anywhere in the script, goes to the PHI role
    for statement in project["statements"]:
        if statement.startswith("grant") and _schema_of(statement).split(".")[1] in PHI_SCHEMAS:
            assert statement.endswith(f"to role {PHI_ROLE}"), statement


def test_grant_statements_parse_as_snowflake_sql(project: dict[str, Any]) -> None:
    statements = project["statements"]
    assert len(statements) >= 40, statements
    script = ";\n".join(statements) + ";\n"
    assert sqlfluff_problems(script) == []
    # and the checker is not blind to a broken grant
    assert sqlfluff_problems("grant select on future tables in schema to role x;\n")


def test_macro_refuses_a_role_name_that_is_not_plain(project: dict[str, Any]) -> None:
    result, logged = _dbt(
        [
            "run-operation",
            "phi_schema_grants",
            "--args",
            "{dry_run: true}",
            "--vars",
            '{analyst_role: "ANALYST; drop schema restricted"}',
        ],
        project["path"],
        emulated=True,
    )
    assert not result.success
    assert any("var analyst_role is not a plain Snowflake role name" in line for line in logged)
    assert not any(line.startswith("phi_schema_grants: ") for line in logged)


def test_the_phi_role_default_is_the_same_in_vars_and_in_grants() -> None:
    """dbt_project.yml repeats the PHI role's default (vars are not in scope in model configs)."""
    project = yaml.safe_load((REPO / "dbt_project.yml").read_text())
    in_vars = project["vars"]["phi_reader_role"]
    in_grants = project["models"]["fhir_elt"]["restricted"]["+grants"]
    default = re.compile(r"env_var\('FHIR_ELT_PHI_ROLE', '([A-Za-z0-9_$]+)'\)")
    assert default.findall(in_vars) == ["FHIR_ELT_PHI_READER"]
    assert default.findall(in_grants) == ["FHIR_ELT_PHI_READER"]
    assert "var('phi_reader_role'" in in_grants


def test_raw_schema_grants_can_be_left_to_the_loaders_role(project: dict[str, Any]) -> None:
    result, logged = _dbt(
        [
            "run-operation",
            "phi_schema_grants",
            "--args",
            "{dry_run: true}",
            "--vars",
            "{phi_grants_on_raw_schema: false}",
        ],
        project["path"],
    )
    assert result.success, failures(result)
    prefix = "phi_schema_grants: "
    statements = [line[len(prefix) :].rstrip(";") for line in logged if line.startswith(prefix)]
    schemas = {_schema_of(statement).split(".")[1] for statement in statements}
    assert "raw_fhir" in {_schema_of(s).split(".")[1] for s in project["statements"]}
    assert schemas == {_schema_of(s).split(".")[1] for s in project["statements"]} - {"raw_fhir"}
