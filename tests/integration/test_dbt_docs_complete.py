"""Documentation completeness of the dbt project, read from the manifest of ``dbt parse``.

No warehouse: ``dbt parse`` writes target/manifest.json (to a temporary target path), and the
checks read it. Every project model, seed, snapshot, source table, exposure and macro (generic
tests included: dbt lists them as macros ``test_<name>``) has a description; every column
declared in YAML has one; every model declares its columns; every macro argument documented
in YAML matches the macro's Jinja signature (names, order) and has a type and a description.
A property in YAML naming no macro fails the parse. Each failure lists all offenders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).with_name("dbt")
PROJECT = "fhir_elt"

DESCRIBED_NODE_TYPES = ("model", "seed", "snapshot")
# `{% macro name(` / `{% test name(` at the start of a macro's SQL
SIGNATURE_START = re.compile(r"\{%-?\s*(?:macro|test|materialization)\s+(\w+)\s*\(")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    target_path = tmp_path_factory.mktemp("dbt_docs")
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(REPO / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(target_path / "unused.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    result = subprocess.run(
        [
            str(DBT),
            "parse",
            "--target-path",
            str(target_path),
            "--log-path",
            str(target_path / "logs"),
            "--no-partial-parse",
            # a macro property naming no macro (a typo, a renamed macro) fails the parse
            "--warn-error-options",
            '{"error": ["MacroNotFoundForPatch"]}',
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


def _project(resources: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [node for node in resources.values() if node["package_name"] == PROJECT]


def _project_macros(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    # a materialization in the project would be its own macro kind: none are documented here
    return [
        macro
        for macro in _project(manifest["macros"])
        if not macro["name"].startswith("materialization_")
    ]


def _described_resources(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [
        node
        for node in _project(manifest["nodes"])
        if node["resource_type"] in DESCRIBED_NODE_TYPES
    ]
    return nodes + _project(manifest["sources"]) + _project(manifest["exposures"])


def _blank(text: str | None) -> bool:
    return not (text or "").strip()


def macro_parameters(macro_sql: str) -> list[str]:
    """The parameter names of a macro's Jinja signature, in order (defaults dropped)."""
    match = SIGNATURE_START.search(macro_sql)
    if match is None:
        raise ValueError("no macro signature found")
    depth, quote, current, parts = 1, "", "", []
    for char in macro_sql[match.end() :]:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif char == "," and depth == 1:
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    return [part.split("=", 1)[0].strip() for part in parts if part.strip()]


def test_macro_parameters_reads_defaults_and_nesting() -> None:
    sql = "{% test t(model, column_name, cols=['a', 'b'], where='x, y', n=f(1, 2)) %}"
    assert macro_parameters(sql) == ["model", "column_name", "cols", "where", "n"]
    assert macro_parameters("\n{%- macro pattern() -%}\n(a)(b)\n{%- endmacro -%}") == []


def test_every_resource_and_macro_is_described(manifest: dict[str, Any]) -> None:
    resources = _described_resources(manifest)
    macros = _project_macros(manifest)
    assert len(macros) > 40, "expected the project's macros and generic tests in the manifest"
    assert {node["resource_type"] for node in resources} >= {"model", "seed", "source"}
    offenders = sorted(
        node["unique_id"] for node in [*resources, *macros] if _blank(node["description"])
    )
    offenders += sorted(
        f"{node['unique_id']} (the source itself)"
        for node in _project(manifest["sources"])
        if _blank(node["source_description"])
    )
    assert not offenders, f"{len(offenders)} without a description:\n" + "\n".join(offenders)


def test_every_declared_column_is_described(manifest: dict[str, Any]) -> None:
    offenders = sorted(
        f"{node['unique_id']}.{column['name']}"
        for node in _described_resources(manifest)
        for column in (node.get("columns") or {}).values()
        if _blank(column["description"])
    )
    assert not offenders, f"{len(offenders)} columns without a description:\n" + "\n".join(
        offenders
    )


def test_every_model_declares_its_columns(manifest: dict[str, Any]) -> None:
    models = [node for node in _project(manifest["nodes"]) if node["resource_type"] == "model"]
    assert models
    offenders = sorted(node["unique_id"] for node in models if not node["columns"])
    assert not offenders, f"{len(offenders)} models declare no columns in YAML:\n" + "\n".join(
        offenders
    )


def test_macro_arguments_match_signatures(manifest: dict[str, Any]) -> None:
    from dbt.parser.schemas import is_valid_type

    offenders: list[str] = []
    for macro in sorted(_project_macros(manifest), key=lambda node: node["unique_id"]):
        parameters = macro_parameters(macro["macro_sql"])
        documented = [argument["name"] for argument in macro["arguments"]]
        if documented != parameters:
            offenders.append(f"{macro['unique_id']}: YAML {documented}, signature {parameters}")
        for argument in macro["arguments"]:
            where = f"{macro['unique_id']}({argument['name']})"
            if _blank(argument.get("description")):
                offenders.append(f"{where}: no description")
            if _blank(argument.get("type")) or not is_valid_type(argument["type"]):
                offenders.append(f"{where}: missing or invalid type {argument.get('type')!r}")
    assert not offenders, f"{len(offenders)} macro argument problems:\n" + "\n".join(offenders)
