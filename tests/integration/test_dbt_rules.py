"""Each dbt data rule fires on planted defects, with the exact count, and stays quiet on clean data.

Two small synthetic datasets are generated, loaded and built once for the whole module, the two
`dbt build` runs side by side:

* clean: ``defect_rate=0``. Every data test must pass (no warning).
* defective: ``defect_rate=0.05`` (the generator's six defect kinds, listed in
  ``_defects.json``), plus one or a few defects per other rule written straight into the raw
  tables here (``PLANTED``), because the generator only plants those six kinds. Each rule must
  warn with exactly the number of offending rows planted for it. The error thresholds are rates
  of the rows a rule checked; one defect among 40 patients' procedures already exceeds the
  strict defaults (1% for some families), so this build raises every family's rate to 50%.

A third, quick `dbt test` run on the defective warehouse with every error rate set to 0 shows the
thresholds are live: the same rules then fail. History and freshness reuse the two warehouses:
an encounter and a condition changed and loaded again give their snapshots a second version
(clean), and `dbt source freshness` reads the per-table thresholds of var `raw_freshness_hours`
(defective, with two directory tables made stale). The defective warehouse also gets a raw Coverage
table (the loader creates it only when a feed sends Coverage), which staging must then read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loaders.load_files import load_files
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate

ROOT = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).with_name("dbt")
PATIENTS = 40
SEED = 11

# The generator's defect kinds and the test that must count each exactly.
GENERATOR_DEFECT_TESTS = {
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

# Rules the generator never trips, and how many offending rows this module plants for each.
PLANTED = {
    "dq_observations_invalid_status": 2,  # value_in_seed (observation-status)
    "dq_encounters_invalid_status": 1,  # value_in_seed (encounter-status)
    "dq_conditions_invalid_clinical_status": 1,  # value_in_seed (condition-clinical)
    "dq_conditions_invalid_verification_status": 1,  # value_in_seed (condition-ver-status)
    "dq_medication_requests_invalid_intent": 1,  # value_in_seed (medicationrequest-intent)
    "dq_immunizations_invalid_status": 1,  # value_in_seed (immunization-status)
    "dq_future_dated_observation": 2,  # not_in_future
    "dq_future_dated_immunization": 1,  # not_in_future
    "dq_conditions_abated_before_onset": 2,  # not_before
    "dq_procedures_end_before_start": 1,  # not_before
    "dq_medication_requests_validity_ends_before_start": 1,  # not_before
    "dq_conditions_unresolved_encounter": 2,  # reference_resolves
    "dq_medication_dispenses_unresolved_prescription": 1,  # reference_resolves
    "dq_encounters_unresolved_location": 1,  # reference_resolves
    "dq_duplicate_ssn": 1,  # identifier_unique_across_patients (one shared value)
    "dq_observations_mixed_units_per_loinc": 1,  # one_unit_per_code (one code, two units)
    "dq_implausible_vital_sign": 2,  # plausible_value_for_code
    "dq_observations_loinc_code_null_rate": 3,  # null_rate_below
}

# Every rule family's error-rate var (defaults in dbt_project.yml).
RATE_VARS = (
    "dq_code_set_error_rate",
    "dq_future_event_error_rate",
    "dq_period_error_rate",
    "dq_reference_error_rate",
    "dq_duplicate_identifier_error_rate",
    "dq_mixed_units_error_rate",
    "dq_implausible_value_error_rate",
    "dq_code_null_error_rate",
    "dq_key_null_error_rate",
)
# The defective build: a few planted rows are a large share of a tiny dataset, so only warn.
LENIENT_RATES = dict.fromkeys(RATE_VARS, 0.5)
# At 0, every planted rule must fail instead of warn.
ZERO_RATES = dict.fromkeys(RATE_VARS, 0)

UNKNOWN_ENCOUNTER = "Encounter/00000000-0000-4000-8000-000000000001"
FAR_FUTURE = "2099-01-01T00:00:00+00:00"


def _dbt_command(args: list[str], warehouse: Path, target: Path) -> tuple[list[str], dict]:
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(ROOT / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [
        str(DBT),
        *args,
        "--project-dir",
        str(ROOT),
        "--target-path",
        str(target),
        "--log-path",
        str(target / "logs"),
    ]
    return command, env


def _start_dbt(args: list[str], warehouse: Path, target: Path) -> subprocess.Popen[str]:
    command, env = _dbt_command(args, warehouse, target)
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _finish(process: subprocess.Popen[str], target: Path) -> dict[str, Any]:
    output, _ = process.communicate(timeout=900)
    manifest = json.loads((target / "manifest.json").read_text())
    results = json.loads((target / "run_results.json").read_text())["results"]
    tests = {
        manifest["nodes"][r["unique_id"]]["name"]: r
        for r in results
        if r["unique_id"].startswith("test.")
    }
    return {"returncode": process.returncode, "output": output, "results": results, "tests": tests}


def _load(base: Path, defect_rate: float) -> tuple[LoadSettings, dict[str, Any] | None]:
    data = base / "data"
    generate(
        GenerateOptions(
            patients=PATIENTS, seed=SEED, out=data, fmt="ndjson", defect_rate=defect_rate
        )
    )
    settings = LoadSettings(
        duckdb_path=base / "warehouse" / "fhir.duckdb",
        landing_root=base / "landing",
        source_system="rules",
    )
    report = load_files(data, settings)
    assert report.exit_code == 0
    manifest = data / "_defects.json"
    return settings, json.loads(manifest.read_text()) if manifest.exists() else None


# --------------------------------------------------------------------------------------------
# Planting defects in the raw tables
# --------------------------------------------------------------------------------------------


class RawResources:
    """Reads and rewrites resources of the raw tables (the JSON column) of one warehouse."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, damaged: set[str]) -> None:
        self.connection = connection
        self.damaged = set(damaged)  # ids already carrying a defect: never reused

    def pick(self, table: str, count: int, where: str = "true") -> list[tuple[str, dict]]:
        """``count`` undamaged resources of ``table`` matching ``where``, in id order."""
        rows = self.connection.execute(
            f"select id, cast(resource as varchar) from raw_fhir.{table} where {where} order by id"
        ).fetchall()
        picked = [(rid, json.loads(text)) for rid, text in rows if rid not in self.damaged]
        assert len(picked) >= count, f"not enough {table} rows where {where}"
        self.damaged.update(rid for rid, _ in picked[:count])
        return picked[:count]

    def save(self, table: str, rid: str, resource: dict) -> None:
        self.connection.execute(
            f"update raw_fhir.{table} set resource = cast(? as json) where id = ?",
            [json.dumps(resource), rid],
        )

    def plant(self, table: str, count: int, change: Any, where: str = "true") -> None:
        for rid, resource in self.pick(table, count, where):
            change(resource)
            self.save(table, rid, resource)


def _coding(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def _plant_rule_defects(warehouse: Path, generator_manifest: dict[str, Any]) -> None:
    with duckdb.connect(str(warehouse)) as connection:
        raw = RawResources(connection, {d["id"] for d in generator_manifest["defects"]})
        heart_rates = (
            "json_extract_string(resource, '$.code.coding[0].code') = '8867-4' "
            "and json_extract_string(resource, '$.valueQuantity.code') = '/min'"
        )

        def set_keys(**values: Any):
            return lambda resource: resource.update(values)

        # observations
        raw.plant("observation", 2, set_keys(status="done"), heart_rates)
        raw.plant("observation", 2, set_keys(effectiveDateTime=FAR_FUTURE), heart_rates)
        raw.plant(
            "observation",
            2,
            lambda r: r["valueQuantity"].update(value=900),
            heart_rates,
        )
        for unit, (rid, resource) in zip(
            ("mg/dL", "mmol/L"), raw.pick("observation", 2, heart_rates), strict=True
        ):
            resource["code"] = _coding("http://loinc.org", "2093-3")  # cholesterol, no unit rule
            resource["valueQuantity"].update(unit=unit, code=unit)
            raw.save("observation", rid, resource)
        raw.plant(
            "observation",
            3,
            set_keys(code=_coding("http://acme.example.org/local-codes", "HR")),
            heart_rates,
        )

        # encounters
        raw.plant("encounter", 1, set_keys(status="done"))
        raw.plant(
            "encounter",
            1,
            set_keys(location=[{"location": {"reference": "Location/no-such-location"}}]),
        )

        # conditions
        clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
        verification = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
        raw.plant("condition", 1, set_keys(clinicalStatus=_coding(clinical, "bogus")))
        raw.plant("condition", 1, set_keys(verificationStatus=_coding(verification, "maybe")))
        raw.plant(
            "condition",
            2,
            set_keys(abatementDateTime="1900-01-01T00:00:00+00:00"),
            "json_extract_string(resource, '$.abatementDateTime') is not null",
        )
        raw.plant("condition", 2, set_keys(encounter={"reference": UNKNOWN_ENCOUNTER}))

        # medication requests, dispenses, procedures, immunizations
        raw.plant("medication_request", 1, set_keys(intent="wish"))
        raw.plant(
            "medication_request",
            1,
            lambda r: r["dispenseRequest"]["validityPeriod"].update(
                end="2000-01-01T00:00:00+00:00"
            ),
            "json_extract_string(resource, '$.dispenseRequest.validityPeriod.start') > '2001'",
        )
        raw.plant(
            "medication_dispense",
            1,
            set_keys(authorizingPrescription=[{"reference": "MedicationRequest/no-such-order"}]),
        )
        raw.plant(
            "procedure",
            1,
            lambda r: r["performedPeriod"].update(end="2000-01-01T00:00:00+00:00"),
            "json_extract_string(resource, '$.performedPeriod.start') > '2001'",
        )
        raw.plant("immunization", 1, set_keys(status="given"))
        raw.plant("immunization", 1, set_keys(occurrenceDateTime=FAR_FUTURE))

        # patients: a second patient with the first one's SSN
        (_, donor), (rid, receiver) = raw.pick("patient", 2)
        ssn_system = "http://hl7.org/fhir/sid/us-ssn"
        donor_ssn = next(i["value"] for i in donor["identifier"] if i["system"] == ssn_system)
        for identifier in receiver["identifier"]:
            if identifier["system"] == ssn_system:
                identifier["value"] = donor_ssn
        raw.save("patient", rid, receiver)

        # an optional raw table (not created by the loader) appears with one Coverage
        connection.execute(
            "create table raw_fhir.coverage as select * from raw_fhir.patient limit 1"
        )
        connection.execute(
            "update raw_fhir.coverage set id = 'cov-1', resource_type = 'Coverage', "
            "resource = cast(? as json)",
            [
                json.dumps(
                    {
                        "resourceType": "Coverage",
                        "id": "cov-1",
                        "status": "active",
                        "beneficiary": {"reference": f"Patient/{rid}"},
                        "payor": [{"reference": "Organization/payer-1"}],
                    }
                )
            ],
        )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build a clean and a defective warehouse (once per module; the two builds in parallel)."""
    clean_base = tmp_path_factory.mktemp("rules_clean")
    defective_base = tmp_path_factory.mktemp("rules_defective")
    clean_settings, _ = _load(clean_base, 0.0)
    defective_settings, generator_manifest = _load(defective_base, 0.05)
    assert generator_manifest is not None
    _plant_rule_defects(defective_settings.duckdb_path, generator_manifest)

    clean_target, defective_target = clean_base / "target", defective_base / "target"
    clean = _start_dbt(["build"], clean_settings.duckdb_path, clean_target)
    defective = _start_dbt(
        ["build", "--vars", json.dumps(LENIENT_RATES)],
        defective_settings.duckdb_path,
        defective_target,
    )
    built = {
        "clean": _finish(clean, clean_target),
        "defective": _finish(defective, defective_target),
        "generator_manifest": generator_manifest,
        "defective_warehouse": defective_settings.duckdb_path,
        "clean_warehouse": clean_settings.duckdb_path,
        "clean_settings": clean_settings,
    }

    zero_target = defective_base / "target_zero_rates"
    zero = _start_dbt(
        [
            "test",
            "--select",
            " ".join(PLANTED),
            "--vars",
            json.dumps(ZERO_RATES),
        ],
        defective_settings.duckdb_path,
        zero_target,
    )
    built["zero_rates"] = _finish(zero, zero_target)
    return built


def _query(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def test_clean_data_trips_no_rule(builds: dict[str, Any]) -> None:
    clean = builds["clean"]
    assert clean["returncode"] == 0, clean["output"][-4000:]
    statuses = Counter(r["status"] for r in clean["results"])
    assert set(statuses) <= {"success", "pass", "no-op"}, statuses
    rules = [name for name in clean["tests"] if name.startswith("dq_")]
    assert set(PLANTED) | set(GENERATOR_DEFECT_TESTS.values()) <= set(rules)
    assert len(rules) >= 80, len(rules)


def test_generator_defects_are_counted_exactly(builds: dict[str, Any]) -> None:
    defective = builds["defective"]
    planted = builds["generator_manifest"]["counts"]
    for kind, name in GENERATOR_DEFECT_TESTS.items():
        result = defective["tests"][name]
        assert (result["status"], result["failures"]) == ("warn", planted[kind]), kind


@pytest.mark.parametrize(("rule", "expected"), sorted(PLANTED.items()))
def test_rule_fires_on_its_planted_defects(
    builds: dict[str, Any], rule: str, expected: int
) -> None:
    result = builds["defective"]["tests"][rule]
    assert (result["status"], result["failures"]) == ("warn", expected), result["message"]


def test_defective_build_warns_but_builds_everything(builds: dict[str, Any]) -> None:
    defective = builds["defective"]
    assert defective["returncode"] == 0, defective["output"][-4000:]
    statuses = Counter(r["status"] for r in defective["results"])
    assert statuses["error"] == 0 and statuses["fail"] == 0 and statuses["skipped"] == 0
    expected = set(PLANTED) | set(GENERATOR_DEFECT_TESTS.values())
    warned = {name for name, r in defective["tests"].items() if r["status"] == "warn"}
    assert warned == expected


def test_error_thresholds_are_rates_that_can_fail_the_build(builds: dict[str, Any]) -> None:
    zero = builds["zero_rates"]
    assert zero["returncode"] != 0
    assert {name: r["status"] for name, r in zero["tests"].items()} == dict.fromkeys(
        PLANTED, "fail"
    )


def test_optional_raw_tables_are_read_once_they_exist(builds: dict[str, Any]) -> None:
    # clean warehouse: the loader never created raw_fhir.coverage, staging reads no rows
    coverages = "select count(*) from staging.stg_fhir__coverages"
    assert _query(builds["clean_warehouse"], coverages) == [(0,)]
    (row,) = _query(
        builds["defective_warehouse"],
        "select coverage_id, coverage_status, payor_id from staging.stg_fhir__coverages",
    )
    assert row == ("cov-1", "active", "payer-1")


def test_observation_values_are_normalised_to_one_unit(builds: dict[str, Any]) -> None:
    rows = _query(
        builds["clean_warehouse"],
        "select observation_code, unit_status, count(distinct value_unit_code), "
        "min(value_as_number), max(value_as_number) from canonical.observations "
        "where observation_code in ('29463-7', '2339-0') group by all order by all",
    )
    by_status = {(code, status): rest for code, status, *rest in rows}
    # weight sent in [lb_av] and glucose in mmol/L are converted; kg and mg/dL kept
    assert set(by_status) == {
        ("2339-0", "canonical"),
        ("2339-0", "converted"),
        ("29463-7", "canonical"),
        ("29463-7", "converted"),
    }
    assert all(units == 1 for units, _, _ in by_status.values())
    low, high = by_status[("2339-0", "converted")][1:]
    assert low >= 60 and high <= 450  # mg/dL, not mmol/L


# --------------------------------------------------------------------------------------------
# History (snapshots) and source freshness
# --------------------------------------------------------------------------------------------


def _resource(warehouse: Path, table: str, where: str) -> dict:
    (text,) = _query(
        warehouse,
        f"select cast(resource as varchar) from raw_fhir.{table} where {where} order by id limit 1",
    )[0]
    return json.loads(text)


def _new_version(resource: dict, **changes: Any) -> dict:
    """The next version of ``resource``: ``changes`` applied, meta.lastUpdated set to now."""
    meta = resource.setdefault("meta", {})
    meta["versionId"] = str(int(meta.get("versionId", "1")) + 1)
    meta["lastUpdated"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    resource.update(changes)
    return resource


def _versions(warehouse: Path, snapshot: str, key: str, status: str) -> list[tuple[Any, ...]]:
    """(status, is_current) of every version of the records that have more than one."""
    return _query(
        warehouse,
        f"select {status}, dbt_valid_to is null from snapshots.{snapshot} "
        f"where {key} in (select {key} from snapshots.{snapshot} group by 1 having count(*) > 1) "
        "order by dbt_valid_from",
    )


def test_snapshots_record_status_changes(builds: dict[str, Any], tmp_path: Path) -> None:
    warehouse = builds["clean_warehouse"]
    clean = builds["clean"]
    assert {
        r["unique_id"].split(".")[-1]: r["status"]
        for r in clean["results"]
        if r["unique_id"].startswith("snapshot.")
    } == {
        "patients_snapshot": "success",
        "encounters_snapshot": "success",
        "conditions_snapshot": "success",
    }
    # first build: one version per record
    for snapshot, model in (
        ("encounters_snapshot", "encounters"),
        ("conditions_snapshot", "conditions"),
    ):
        assert _query(warehouse, f"select count(*) from snapshots.{snapshot}") == _query(
            warehouse, f"select count(*) from canonical.{model}"
        )

    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    encounter = _resource(warehouse, "encounter", "resource->>'status' = 'finished'")
    condition = _resource(
        warehouse, "condition", "resource->>'$.clinicalStatus.coding[0].code' = 'active'"
    )
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "Encounter.ndjson").write_text(
        json.dumps(_new_version(encounter, status="entered-in-error")) + "\n"
    )
    (changed / "Condition.ndjson").write_text(
        json.dumps(
            _new_version(
                condition,
                clinicalStatus={"coding": [{"system": clinical, "code": "resolved"}]},
                abatementDateTime=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )
        + "\n"
    )
    report = load_files(changed, builds["clean_settings"])
    assert report.exit_code == 0
    assert report.run.resources_merged == 2

    # second build of the two models and their snapshots
    target = tmp_path / "target"
    second = _finish(
        _start_dbt(
            [
                "build",
                "--select",
                "stg_fhir__encounters stg_fhir__conditions encounters conditions "
                "encounters_snapshot conditions_snapshot",
                "--exclude-resource-type",
                "test",
                "unit_test",
            ],
            warehouse,
            target,
        ),
        target,
    )
    assert second["returncode"] == 0, second["output"][-4000:]

    # exactly the changed record has a second version; the first one is closed
    assert _versions(warehouse, "encounters_snapshot", "encounter_key", "encounter_status") == [
        ("finished", False),
        ("entered-in-error", True),
    ]
    assert _versions(warehouse, "conditions_snapshot", "condition_key", "clinical_status_code") == [
        ("active", False),
        ("resolved", True),
    ]


def _freshness(warehouse: Path, target: Path, thresholds: dict | None = None) -> dict[str, Any]:
    args = ["source", "freshness"]
    if thresholds is not None:
        args += ["--vars", json.dumps({"raw_freshness_hours": thresholds})]
    command, env = _dbt_command(args, warehouse, target)
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    sources = json.loads((target / "sources.json").read_text())["results"]
    return {
        "returncode": result.returncode,
        "output": result.stdout + result.stderr,
        "status": {r["unique_id"].split(".")[-1]: r["status"] for r in sources},
        "criteria": {
            r["unique_id"].split(".")[-1]: (
                r["criteria"]["warn_after"]["count"],
                r["criteria"]["error_after"]["count"],
            )
            for r in sources
        },
    }


def test_source_freshness_uses_thresholds_per_resource_type(
    builds: dict[str, Any], tmp_path: Path
) -> None:
    warehouse = builds["defective_warehouse"]
    # the directory tables were last touched 200 hours ago: stale for a clinical feed, not for
    # a directory (dbt_project.yml gives them 720 / 2160 hours)
    with duckdb.connect(str(warehouse)) as connection:
        for table in ("practitioner", "location"):
            connection.execute(
                f"update raw_fhir.{table} set last_updated = current_timestamp - interval 200 hours"
            )

    defaults = _freshness(warehouse, tmp_path / "defaults")
    assert defaults["returncode"] == 0, defaults["output"][-4000:]
    expected_tables = {
        "patient",
        "encounter",
        "condition",
        "observation",
        "medication_request",
        "medication_dispense",
        "procedure",
        "immunization",
        "allergy_intolerance",
        "organization",
        "location",
        "practitioner",
        "load_runs",
        "landing_manifest",
    }
    # every core resource table and run table is checked; optional ones and quarantine are not
    assert set(defaults["status"]) == expected_tables
    assert set(defaults["status"].values()) == {"pass"}
    assert defaults["criteria"]["practitioner"] == (720, 2160)
    assert defaults["criteria"]["patient"] == (48, 168)
    assert defaults["criteria"]["encounter"] == (24, 72)

    # one override: practitioner errors, location warns, tables not listed use its default
    override = _freshness(
        warehouse,
        tmp_path / "override",
        {
            "default": {"warn": 24, "error": 72},
            "practitioner": {"warn": 100, "error": 150},
            "location": {"error": 1000},  # warn taken from default
        },
    )
    assert override["returncode"] != 0
    assert override["criteria"]["practitioner"] == (100, 150)
    assert override["criteria"]["location"] == (24, 1000)
    assert override["criteria"]["patient"] == (24, 72)
    assert override["status"]["practitioner"] == "error"
    assert override["status"]["location"] == "warn"
    assert {
        table: status
        for table, status in override["status"].items()
        if table not in ("practitioner", "location")
    } == dict.fromkeys(expected_tables - {"practitioner", "location"}, "pass")
