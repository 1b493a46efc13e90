"""Helpers for tests that run the dbt project in-process: invoke, check results, compare tables.

dbt runs through ``dbtRunner`` in the test process (no interpreter start-up per command); the
environment it reads (``FHIR_ELT_DUCKDB_PATH``, ...) is patched only for the invocation. Every
call writes its artefacts and logs to the given target directory, never to the repository's
``target/`` or ``logs/``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
# The canonical clinical event models, incremental (dbt_project.yml, canonical).
INCREMENTAL_CANONICAL_MODELS = frozenset(
    {
        "encounters",
        "conditions",
        "observations",
        "procedures",
        "immunizations",
        "allergies",
        "medication_requests",
        "medication_dispenses",
    }
)

# Statuses of a node that ran fine; "warn" is a data rule reporting defects, "no-op" an exposure.
OK_STATUSES = {"success", "pass", "warn", "no-op"}

# Columns that record which dbt invocation built a row (e.g. marts.data_quality_rule_results):
# they differ between any two builds, so comparisons of two warehouses leave them out.
BUILD_METADATA_COLUMNS = frozenset({"invocation_id", "run_started_at"})

# A fixed "now" for data rules and marts, so builds a few seconds apart agree (var as_of).
AS_OF = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat(sep=" ")


def invoke_dbt(
    args: Sequence[str],
    target_path: Path,
    env: dict[str, str],
    callbacks: Sequence[Callable[[Any], None]] = (),
) -> Any:
    """Run one dbt command in-process from the repository root; returns the dbtRunnerResult."""
    from dbt.cli.main import dbtRunner

    command = [
        *args,
        "--project-dir",
        str(REPO),
        "--profiles-dir",
        str(REPO / "profiles"),
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path / "logs"),
        "--quiet",
    ]
    base = {
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(REPO / "profiles"),
    }
    with mock.patch.dict(os.environ, {**base, **env}):
        return dbtRunner(callbacks=list(callbacks)).invoke(command)


def failures(result: Any) -> list[str]:
    """What went wrong in a dbt invocation: its exception, or each node that did not run fine."""
    if getattr(result, "exception", None) is not None:
        return [f"dbt raised {type(result.exception).__name__}: {result.exception}"]
    run = getattr(result, "result", None)
    problems = [
        f"{node.node.unique_id}: {node.status} {(node.message or '')[:500]}"
        for node in getattr(run, "results", []) or []
        if str(node.status) not in OK_STATUSES
    ]
    if not problems and not result.success:
        problems.append("dbt reported failure without a failing node")
    return problems


def statuses(result: Any) -> dict[str, str]:
    """Status of each node a dbt invocation ran, by unique id."""
    return {node.node.unique_id: str(node.status) for node in result.result.results}


def read_manifest(target_path: Path) -> dict[str, Any]:
    return json.loads((target_path / "manifest.json").read_text())


def models_in(manifest: dict[str, Any], *folders: str) -> list[dict[str, Any]]:
    """The project's models under ``models/<folder>`` (any of ``folders``), by name."""
    nodes = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["package_name"] == "fhir_elt"
        and node["fqn"][1] in folders
        and node["config"]["materialized"] != "ephemeral"
    ]
    return sorted(nodes, key=lambda node: node["name"])


def normalise(value: Any) -> Any:
    """One comparable form for a value read from DuckDB or from the Snowflake connector."""
    if isinstance(value, decimal.Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, bool | int | float | str | dt.date | type(None)):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # None sorts first; floats rounded so tiny differences do not change the order
    return tuple(
        (value is not None, round(value, 6) if isinstance(value, float) else str(value))
        for value in row
    )


def table_differences(
    left: Iterable[Sequence[Any]],
    right: Iterable[Sequence[Any]],
    *,
    rel_tol: float = 1e-9,
    abs_tol: float = 1e-9,
    limit: int = 5,
) -> list[str]:
    """Rows that differ between two tables (same columns in the same order), at most ``limit``.

    Rows are compared as multisets: both sides are normalised and sorted, then compared pairwise;
    floats are equal within ``rel_tol`` / ``abs_tol``.
    """
    left_rows = sorted((tuple(map(normalise, row)) for row in left), key=_sort_key)
    right_rows = sorted((tuple(map(normalise, row)) for row in right), key=_sort_key)
    problems: list[str] = []
    if len(left_rows) != len(right_rows):
        problems.append(f"{len(left_rows)} rows against {len(right_rows)}")
        return problems
    for left_row, right_row in zip(left_rows, right_rows, strict=True):
        if len(left_row) != len(right_row) or not all(
            _same(a, b, rel_tol, abs_tol) for a, b in zip(left_row, right_row, strict=True)
        ):
            problems.append(f"{left_row} != {right_row}")
            if len(problems) >= limit:
                break
    return problems


def _same(left: Any, right: Any, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(left, float | int) and isinstance(right, float | int):
        if isinstance(left, bool) or isinstance(right, bool):
            return left == right
        return math.isclose(left, right, rel_tol=rel_tol, abs_tol=abs_tol)
    return left == right


# --------------------------------------------------------------------------------------------
# Second batches: new versions of resources, written as NDJSON for `load files`
# --------------------------------------------------------------------------------------------


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def new_version(
    resource: dict[str, Any], last_updated: dt.datetime | None = None, **changes: Any
) -> dict[str, Any]:
    """The next version of ``resource``: versionId + 1, lastUpdated (default now), ``changes``."""
    version = json.loads(json.dumps(resource))
    meta = version.setdefault("meta", {})
    meta["versionId"] = str(int(meta.get("versionId", "1")) + 1)
    when = last_updated or dt.datetime.now(dt.UTC)
    meta["lastUpdated"] = when.isoformat(timespec="seconds")
    version.update(changes)
    return version


def write_ndjson(directory: Path, name: str, resources: Iterable[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(resource) for resource in resources]
    (directory / f"{name}.ndjson").write_text("\n".join(lines) + "\n")


def start_dbt_subprocess(
    args: Sequence[str], target_path: Path, env: dict[str, str]
) -> subprocess.Popen[str]:
    """Start one dbt command in a child process (see :func:`finish_dbt_subprocess`).

    For DuckDB: dbt-duckdb keeps its connection to the warehouse file open in the process after
    an in-process invocation, which would stop the loader (and other readers) from opening it.
    """
    command = [
        str(Path(sys.executable).with_name("dbt")),
        *args,
        "--target-path",
        str(target_path),
        "--log-path",
        str(target_path / "logs"),
    ]
    full_env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(REPO / "profiles"),
        **env,
    }
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish_dbt_subprocess(
    process: subprocess.Popen[str], target_path: Path
) -> tuple[int, str, list[dict[str, Any]]]:
    """Wait for a dbt child process: its return code, output and run_results.json results."""
    output, _ = process.communicate(timeout=600)
    results_file = target_path / "run_results.json"
    results = json.loads(results_file.read_text())["results"] if results_file.exists() else []
    return process.returncode, output, results


def run_dbt_subprocess(
    args: Sequence[str], target_path: Path, env: dict[str, str]
) -> tuple[int, str, list[dict[str, Any]]]:
    """Run one dbt command in a child process and wait for it."""
    return finish_dbt_subprocess(start_dbt_subprocess(args, target_path, env), target_path)
