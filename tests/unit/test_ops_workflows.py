"""The GitHub workflow files: valid against the workflow schema, and shaped as operations need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CHECK = Path(sys.executable).with_name("check-jsonschema")


def _check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def test_workflows_pass_the_schema_check_and_a_broken_one_fails(tmp_path: Path) -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "scheduled-load.yml"}
    result = _check(*files)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    step: []\n")
    assert _check(broken).returncode != 0


def test_ci_runs_tests_and_lint_with_pip_caching() -> None:
    ci = _load("ci.yml")
    assert {"pull_request", "push"} <= set(ci["on"])
    steps = ci["jobs"]["test-and-lint"]["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["cache"] == "pip"
    runs = [s.get("run", "") for s in steps]
    assert "make test" in runs and "make lint" in runs


def test_scheduled_load_shape() -> None:
    load = _load("scheduled-load.yml")
    crons = [entry["cron"] for entry in load["on"]["schedule"]]
    assert len(crons) == 2 and crons[0].split()[1] == "*"  # hourly and daily
    inputs = load["on"]["workflow_dispatch"]["inputs"]
    assert {"mode", "since", "until", "types", "replay_prefix"} <= set(inputs)
    assert set(inputs["mode"]["options"]) == {"incremental", "backfill", "replay"}
    assert "FHIR_ELT_SOURCE" in load["concurrency"]["group"]
    assert load["concurrency"]["cancel-in-progress"] is False
    job = load["jobs"]["load"]
    assert job["env"]["FHIR_ELT_DBT_TARGET"].endswith("'snowflake' }}")
    assert all(
        "secrets." in value for key, value in job["env"].items() if key.startswith("SNOWFLAKE_")
    )
    text = (WORKFLOWS / "scheduled-load.yml").read_text()
    for needed in (
        "fhir-elt load rest",
        "fhir-elt backfill",
        "dbt build --exclude-resource-type unit_test --target",
        "dbt source freshness --target",
        "fhir-elt alerts",
        "fhir-elt storage push",
        "actions/upload-artifact",
        "fhir-elt notify",
    ):
        assert needed in text, needed
    names = [step.get("name", "") for step in job["steps"]]
    assert names.index("Load") < names.index("dbt build") < names.index("Alerts")
    notify = next(s for s in job["steps"] if s.get("name", "").startswith("Notify"))
    assert notify["if"].startswith("failure()")
    # No secret is interpolated into a script: run steps read them from the environment.
    for step in job["steps"]:
        assert "secrets." not in step.get("run", "")
