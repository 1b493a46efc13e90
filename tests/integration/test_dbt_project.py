"""Fast checks of the dbt project that need no warehouse and no loader.

``dbt parse`` runs for the DuckDB and the Snowflake targets (the Snowflake one with dummy
credentials: parse never connects), then the manifest is checked for the contracts other
parts of fhir-elt rely on: the six defect-check test names, PHI fencing, documentation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.dbt_support import INCREMENTAL_CANONICAL_MODELS

REPO = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).with_name("dbt")

DEFECT_TESTS = {
    "future_dated_encounter": "dq_future_dated_encounter",
    "invalid_gender_code": "dq_invalid_gender_code",
    "duplicate_mrn": "dq_duplicate_mrn",
    "wrong_unit_for_loinc": "dq_wrong_unit_for_loinc",
    "missing_patient_reference": "dq_missing_patient_reference",
    "end_before_start": "dq_end_before_start",
}


def _parse(target: str, target_path: Path, extra_env: dict[str, str] | None = None) -> dict:
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(REPO / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(target_path / "unused.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(extra_env or {}),
    }
    result = subprocess.run(
        [
            str(DBT),
            "parse",
            "--target",
            target,
            "--target-path",
            str(target_path),
            "--log-path",
            str(target_path / "logs"),
            "--no-partial-parse",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return json.loads((target_path / "manifest.json").read_text())


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _parse("duckdb", tmp_path_factory.mktemp("dbt_duckdb"))


def test_parse_snowflake_target(tmp_path: Path) -> None:
    dummy = {
        "SNOWFLAKE_ACCOUNT": "dummy",
        "SNOWFLAKE_USER": "dummy",
        "SNOWFLAKE_PASSWORD": "dummy",
        "SNOWFLAKE_ROLE": "dummy",
        "SNOWFLAKE_WAREHOUSE": "dummy",
        "SNOWFLAKE_DATABASE": "dummy",
    }
    manifest = _parse("snowflake", tmp_path, dummy)
    assert any(n["name"] == "encounter_volume_daily" for n in manifest["nodes"].values())


def test_defect_tests_exist_once_and_warn(manifest: dict) -> None:
    tests = [n for n in manifest["nodes"].values() if n["resource_type"] == "test"]
    for kind, name in DEFECT_TESTS.items():
        matches = [t for t in tests if t["name"] == name]
        assert len(matches) == 1, f"{kind}: expected one test named {name}, got {len(matches)}"
        assert matches[0]["unique_id"].split(".")[2] == name


def test_data_rules_warn_on_any_and_error_above_a_rate(manifest: dict) -> None:
    """Every dq_ rule warns on any failure and errors above a rate of the rows it checked.

    dbt evaluates error_if only on severity-error tests (a severity-warn test never errors),
    so the rules keep severity error; the rate comes from the test's checked_rows column.
    """
    rules = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "test" and n["name"].startswith("dq_")
    ]
    assert len(rules) > len(DEFECT_TESTS)
    for rule in rules:
        config = rule["config"]
        assert config["severity"].lower() == "error", rule["name"]
        assert config["warn_if"].replace(" ", "") in ("!=0", ">0*coalesce(max(checked_rows),0)")
        assert config["error_if"].startswith(">"), rule["name"]
        assert "checked_rows" in config["error_if"], rule["name"]


def test_models_and_columns_are_documented(manifest: dict) -> None:
    models = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["package_name"] == "fhir_elt"
    ]
    assert models
    for model in models:
        assert model["description"].strip(), f"{model['name']} has no description"
        assert model["columns"], f"{model['name']} documents no columns"
        for column in model["columns"].values():
            assert column["description"].strip(), f"{model['name']}.{column['name']}"


def test_phi_only_in_restricted_or_staging(manifest: dict) -> None:
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "snapshot"):
            continue
        fenced = "restricted" in node["tags"] or node["fqn"][1] in ("staging", "restricted")
        phi = [c["name"] for c in node["columns"].values() if c.get("meta", {}).get("contains_phi")]
        if not fenced:
            assert not phi, f"{node['name']} exposes PHI columns {phi}"


def test_layers_use_their_schemas(manifest: dict) -> None:
    expected = {
        "staging": ("view", "staging"),
        # resource staging parses JSON: incremental tables (dbt_project.yml, staging/fhir)
        "staging/fhir": ("incremental", "staging"),
        "canonical": ("table", "canonical"),
        "restricted": ("table", "restricted"),
        "marts": ("table", "marts"),
        "alerts": ("view", "alerts"),
        "operations": ("table", "operations"),
    }
    # the clinical event models: incremental tables (dbt_project.yml, canonical; fqn[2] is
    # the model's name there)
    for name in INCREMENTAL_CANONICAL_MODELS:
        expected[f"canonical/{name}"] = ("incremental", "canonical")
    # incremental where a build after a small load paid for rebuilding them whole (fqn[2]: the
    # model's name in operations, its folder in marts)
    expected["operations/row_lineage"] = ("incremental", "operations")
    expected["marts/patients"] = ("incremental", "marts")
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        folder = node["fqn"][1]
        materialized, schema = expected.get(f"{folder}/{node['fqn'][2]}", expected[folder])
        assert node["config"]["materialized"] == materialized, node["name"]
        assert node["schema"] == schema, node["name"]


def test_mart_contracts_are_enforced(manifest: dict) -> None:
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["fqn"][1] == "marts":
            assert node["config"]["contract"]["enforced"], node["name"]
            assert all(c.get("data_type") for c in node["columns"].values()), node["name"]


def test_sources_are_read_only_in_staging(manifest: dict) -> None:
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["fqn"][1] != "staging":
            sources = [d for d in node["depends_on"]["nodes"] if d.startswith("source.")]
            assert not sources, f"{node['name']} reads sources {sources}"


def test_every_model_has_a_tested_primary_key(manifest: dict) -> None:
    """A column with both unique and not_null, or a unique_combination_of_columns test."""
    tests_by_model: dict[str, dict[str, set[str]]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("attached_node"):
            continue
        kind = node["test_metadata"]["name"] if node.get("test_metadata") else node["name"]
        columns = tests_by_model.setdefault(node["attached_node"], {})
        columns.setdefault(node.get("column_name") or "", set()).add(kind)
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["package_name"] != "fhir_elt":
            continue
        columns = tests_by_model.get(node["unique_id"], {})
        # an enforced contract's not_null constraint stands for the not_null test (the warehouse
        # refuses the null; test_dbt_marts proves a null fails the build)
        if node["config"].get("contract", {}).get("enforced"):
            for name, column in node["columns"].items():
                if any(c.get("type") == "not_null" for c in column.get("constraints", [])):
                    columns.setdefault(name, set()).add("not_null")
        has_key = any({"unique", "not_null"} <= kinds for kinds in columns.values()) or any(
            "unique_combination_of_columns" in kinds for kinds in columns.values()
        )
        assert has_key, f"{node['name']} has no tested primary key"
