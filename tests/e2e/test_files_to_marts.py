"""End to end: generate data with planted defects, load it, `dbt build`, check what was caught.

One small dataset (Bundles, so reference rewriting is on the path) goes through the product the
way a user runs it: `fhir-elt load files`, then `dbt build` in a subprocess against a warehouse
in a temporary directory. The test then reads dbt's run_results.json and the warehouse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loaders.fhir import table_name_for
from loaders.load_files import load_files
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).with_name("dbt")

# Each defect kind the generator plants, and the dbt data test that must find exactly that many.
DEFECT_TESTS: dict[str, str] = {
    kind: f"dq_{kind}"
    for kind in (
        "future_dated_encounter",
        "invalid_gender_code",
        "duplicate_mrn",
        "wrong_unit_for_loinc",
        "missing_patient_reference",
        "end_before_start",
    )
}


def _dbt(args: list[str], warehouse: Path, target: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(ROOT / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    return subprocess.run(
        [
            str(DBT),
            *args,
            "--project-dir",
            str(ROOT),
            "--target-path",
            str(target),
            "--log-path",
            str(target / "logs"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Generate, load and build once for every test in this module."""
    base = tmp_path_factory.mktemp("e2e")
    summary = generate(
        GenerateOptions(
            patients=80,
            seed=20261122,
            out=base / "data",
            fmt="bundle",
            defect_rate=0.05,
        )
    )
    settings = LoadSettings(
        duckdb_path=base / "warehouse" / "fhir.duckdb",
        landing_root=base / "landing",
        source_system="e2e",
    )
    report = load_files(base / "data", settings)
    target = base / "target"
    build = _dbt(["build"], settings.duckdb_path, target)
    results = json.loads((target / "run_results.json").read_text())["results"]
    manifest = json.loads((target / "manifest.json").read_text())
    planted = json.loads((base / "data" / "_defects.json").read_text())
    return {
        "summary": summary,
        "report": report,
        "settings": settings,
        "build": build,
        "results": results,
        "manifest": manifest,
        "planted": planted,
    }


def _query(built: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(built["settings"].duckdb_path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _test_results_by_name(built: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nodes = built["manifest"]["nodes"]
    return {
        nodes[result["unique_id"]]["name"]: result
        for result in built["results"]
        if result["unique_id"].startswith("test.")
    }


def test_every_generated_resource_is_in_the_raw_tables(built: dict[str, Any]) -> None:
    report = built["report"]
    assert report.exit_code == 0, [reject.describe() for reject in report.rejects]
    for resource_type, expected in built["summary"].counts_by_type.items():
        table = table_name_for(resource_type)
        assert _query(built, f"select count(*) from raw_fhir.{table}") == [(expected,)], table


def test_dbt_build_finishes_with_warnings_only(built: dict[str, Any]) -> None:
    build = built["build"]
    statuses = Counter(result["status"] for result in built["results"])
    assert build.returncode == 0, build.stdout[-4000:]
    assert statuses["error"] == 0 and statuses["fail"] == 0 and statuses["skipped"] == 0, statuses


def test_each_planted_defect_is_caught_with_its_exact_count(built: dict[str, Any]) -> None:
    planted: dict[str, int] = built["planted"]["counts"]
    assert set(planted) == set(DEFECT_TESTS)
    by_name = _test_results_by_name(built)
    for kind, test_name in DEFECT_TESTS.items():
        assert planted[kind] > 0, kind
        result = by_name[test_name]
        assert result["status"] == "warn", (kind, result["status"])
        assert result["failures"] == planted[kind], (kind, result["failures"], planted[kind])


def test_all_other_tests_pass(built: dict[str, Any]) -> None:
    defect_tests = set(DEFECT_TESTS.values())
    failing = {
        name: (result["status"], result["failures"])
        for name, result in _test_results_by_name(built).items()
        if name not in defect_tests and result["status"] != "pass"
    }
    assert failing == {}


def test_clean_rows_arrive_in_canonical_models_and_the_mart(built: dict[str, Any]) -> None:
    counts = built["summary"].counts_by_type
    assert _query(built, "select count(*) from canonical.patients") == [(counts["Patient"],)]
    assert _query(built, "select count(*) from canonical.encounters") == [(counts["Encounter"],)]
    future = built["planted"]["counts"]["future_dated_encounter"]
    (mart_total,) = _query(built, "select sum(encounter_count) from marts.encounter_volume_daily")
    assert mart_total[0] == counts["Encounter"] - future


def test_analytic_models_expose_no_direct_identifiers(built: dict[str, Any]) -> None:
    columns = {
        row[0]
        for row in _query(
            built,
            "select column_name from information_schema.columns "
            "where table_schema in ('canonical', 'marts')",
        )
    }
    for forbidden in ("family_name", "given_name", "mrn", "ssn", "birth_date", "address_line"):
        assert forbidden not in columns
