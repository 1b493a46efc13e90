"""The marts on a demo-sized warehouse: plausible figures, consistent with the generator.

One dataset is generated, loaded and built once (`dbt build`, the whole project) for the
session: 1,000 patients with seed 42 as `make demo`, a fixed ``as_of`` (so the default
measurement period is the calendar year 2025 and every figure is reproducible) and 1% planted
defects, so the data-quality mart has failures to count. The marts are then compared with:

* the generator's design: readmissions are planted after 14% of discharges, so the 30-day rate
  after exclusions lands in 12-16%; PDC lies in 0..1; every measure has a denominator;
* independent Python computations from the generated NDJSON files: the index stays and
  readmissions, and the PDC of every patient and drug class (day sets, not window functions);
* dbt's own results of the same build (data_quality_rule_results against run_results.json)
  and the generator's defect manifest (``_defects.json``: exact failing counts).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loaders.load_files import load_files
from loaders.settings import LoadSettings
from loaders.synthetic import GenerateOptions, generate

ROOT = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).with_name("dbt")

PATIENTS = 1000
SEED = 42
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
PERIOD_START, PERIOD_END = date(2025, 1, 1), date(2025, 12, 31)
SOURCE_SYSTEM = "marts"
HASH_KEY = "marts-test-hash-key"
DEFECT_RATE = 0.01

READMISSION_WINDOW_DAYS = 30
EXCLUDED_DISPOSITIONS = {"exp", "other-hcf", "aadvice", "hosp"}
INPATIENT_CLASSES = {"IMP", "ACUTE", "NONAC"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


@dataclass(frozen=True)
class Built:
    """What the session fixture built."""

    warehouse: Path
    target: Path
    data: Path
    defects: dict[str, int]
    results: dict[str, dict[str, Any]]  # test / model name -> run result
    returncode: int
    output: str


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Generate, load and `dbt build` the demo-sized dataset once."""
    base = tmp_path_factory.mktemp("marts")
    data = base / "data"
    summary = generate(
        GenerateOptions(
            patients=PATIENTS,
            seed=SEED,
            out=data,
            fmt="ndjson",
            defect_rate=DEFECT_RATE,
            as_of=AS_OF,
        )
    )
    settings = LoadSettings(
        duckdb_path=base / "warehouse" / "fhir.duckdb",
        landing_root=base / "landing",
        source_system=SOURCE_SYSTEM,
    )
    assert load_files(data, settings).exit_code == 0
    target = base / "target"
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(ROOT / "profiles"),
        "FHIR_ELT_DUCKDB_PATH": str(settings.duckdb_path),
        "FHIR_ELT_HASH_KEY": HASH_KEY,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    as_of_var = json.dumps({"as_of": AS_OF.strftime("%Y-%m-%d %H:%M:%S")})
    process = subprocess.run(
        [
            str(DBT),
            "build",
            "--vars",
            as_of_var,
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
        timeout=900,
        check=False,
    )
    manifest = json.loads((target / "manifest.json").read_text())
    run_results = json.loads((target / "run_results.json").read_text())["results"]
    nodes = {**manifest["nodes"], **manifest["unit_tests"], **manifest["exposures"]}
    results = {nodes[r["unique_id"]]["name"]: r for r in run_results}
    return Built(
        warehouse=settings.duckdb_path,
        target=target,
        data=data,
        defects=summary.defects_by_kind,
        results=results,
        returncode=process.returncode,
        output=process.stdout[-4000:] + process.stderr[-2000:],
    )


def _query(built: Built, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(built.warehouse), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def _resources(built: Built, resource_type: str) -> Iterator[dict[str, Any]]:
    with (built.data / f"{resource_type}.ndjson").open() as lines:
        for line in lines:
            yield json.loads(line)


def _patient_key(patient_reference: str) -> str:
    """The keyed hash dbt gives a patient (macro keyed_hash over source_system|id)."""
    patient_id = patient_reference.rsplit("/", 1)[-1]
    value = f"{HASH_KEY}|{SOURCE_SYSTEM}|{patient_id}|{HASH_KEY}"
    return hashlib.sha256(value.encode()).hexdigest()


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _death_dates(built: Built) -> dict[str, date]:
    return {
        f"Patient/{patient['id']}": _instant(patient["deceasedDateTime"]).date()
        for patient in _resources(built, "Patient")
        if "deceasedDateTime" in patient
    }


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------


def test_build_passes_apart_from_the_planted_defects(built: Built) -> None:
    """Every model, unit test and mart test passes; only the generator's defect rules warn."""
    problems = {
        name: result["status"]
        for name, result in built.results.items()
        if result["status"] not in ("pass", "success", "no-op")
        and not (result["status"] == "warn" and name in {f"dq_{kind}" for kind in built.defects})
    }
    # The PHI fence spans every layer (others' too); the marts' own columns are checked in
    # test_marts_expose_no_phi_column.
    problems.pop("assert_phi_only_in_restricted_models", None)
    assert problems == {}, built.output
    marts = [name for name, r in built.results.items() if r["unique_id"].startswith("model.")]
    for mart in ("readmission_index_stays", "medication_adherence_pdc", "quality_measure_rates"):
        assert mart in marts


def test_every_unit_test_runs_here(built: Built) -> None:
    """The scheduled build leaves unit tests out (README "Running on a schedule"): they run here."""
    manifest = json.loads((built.target / "manifest.json").read_text())
    ran = {
        result["unique_id"]: result["status"]
        for result in built.results.values()
        if result["unique_id"].startswith("unit_test.")
    }
    assert len(manifest["unit_tests"]) >= 19
    assert set(ran) == set(manifest["unit_tests"])
    assert set(ran.values()) == {"pass"}


def test_marts_expose_no_phi_column(built: Built) -> None:
    manifest = json.loads((built.target / "manifest.json").read_text())
    phi = {
        column["name"].lower()
        for node in [*manifest["nodes"].values(), *manifest["sources"].values()]
        for column in node.get("columns", {}).values()
        if column.get("meta", {}).get("contains_phi")
        or column.get("config", {}).get("meta", {}).get("contains_phi")
    }
    assert {"mrn", "ssn", "birth_date", "resource"} <= phi
    mart_columns = {
        name.lower()
        for (name,) in _query(
            built, "select column_name from information_schema.columns where table_schema = 'marts'"
        )
    }
    assert "patient_key" in mart_columns
    assert mart_columns.isdisjoint(phi | {"patient_id", "family_name", "given_names"})


# --------------------------------------------------------------------------------------------
# Encounter volume and timeline
# --------------------------------------------------------------------------------------------


def test_encounter_volume_adds_up_at_every_grain(built: Built) -> None:
    as_of = AS_OF
    expected = sum(
        1 for e in _resources(built, "Encounter") if _instant(e["period"]["start"]) <= as_of
    )
    totals = [
        _query(built, f"select sum(encounter_count) from marts.encounter_volume_{grain}")[0][0]
        for grain in ("daily", "weekly", "monthly")
    ]
    assert totals == [expected] * 3
    # distinct patients per month never exceed the sum of the month's daily distinct counts
    (over,) = _query(
        built,
        """
        with daily as (
            select date_trunc('month', encounter_date) as month, source_system,
                encounter_class_code, organization_id, location_id, sum(patient_count) as summed
            from marts.encounter_volume_daily group by all
        )
        select count(*) from marts.encounter_volume_monthly as monthly
        inner join daily
            on monthly.month_start_date = daily.month
            and monthly.source_system = daily.source_system
            and monthly.encounter_class_code = daily.encounter_class_code
            and monthly.organization_id = daily.organization_id
            and monthly.location_id = daily.location_id
        where monthly.patient_count > daily.summed
        """,
    )[0]
    assert over == 0
    (locations,) = _query(
        built, "select count(distinct location_id) from marts.encounter_volume_monthly"
    )[0]
    assert locations > 1


def test_patient_timeline_holds_every_dated_event_in_order(built: Built) -> None:
    event_sources = {
        "encounter": ("encounters", "started_at"),
        "diagnosis": ("conditions", "coalesce(onset_at, recorded_at)"),
        "result": ("observations", "effective_at"),
        "procedure": ("procedures", "performed_started_at"),
        "medication_order": ("medication_requests", "authored_at"),
        "medication_dispense": ("medication_dispenses", "handed_over_at"),
        "immunization": ("immunizations", "occurred_at"),
    }
    as_of = AS_OF.strftime("%Y-%m-%d %H:%M:%S")
    counts = dict(
        _query(built, "select event_type, count(*) from marts.patient_timeline group by 1")
    )
    for event_type, (model, time_column) in event_sources.items():
        (expected,) = _query(
            built,
            f"select count(*) from canonical.{model} where patient_key is not null "
            f"and {time_column} <= timestamp '{as_of}'",
        )[0]
        assert counts.get(event_type) == expected, event_type
    gaps = _query(
        built,
        """
        select count(*) from (
            select patient_key, count(*) as events, max(event_sequence) as last_sequence,
                min(event_sequence) as first_sequence
            from marts.patient_timeline group by patient_key
        ) where last_sequence != events or first_sequence != 1
        """,
    )
    assert gaps == [(0,)]
    (disorder,) = _query(
        built,
        """
        select count(*) from (
            select event_at, lag(event_at) over (partition by patient_key order by event_sequence)
                as previous_at
            from marts.patient_timeline
        ) where event_at < previous_at
        """,
    )[0]
    assert disorder == 0


# --------------------------------------------------------------------------------------------
# Readmissions
# --------------------------------------------------------------------------------------------


def _expected_readmissions(built: Built) -> tuple[int, int, dict[str, int]]:
    """(index stays, readmitted, exclusions by reason) computed from the NDJSON files."""
    deaths = _death_dates(built)
    stays: dict[str, list[tuple[datetime, datetime | None, str | None]]] = defaultdict(list)
    for encounter in _resources(built, "Encounter"):
        start = _instant(encounter["period"]["start"])
        if encounter["class"]["code"] not in INPATIENT_CLASSES or start > AS_OF:
            continue
        end = encounter["period"].get("end")
        disposition = encounter.get("hospitalization", {}).get("dischargeDisposition", {})
        code = disposition.get("coding", [{}])[0].get("code")
        stays[encounter["subject"]["reference"]].append(
            (start, _instant(end) if end else None, code)
        )
    index_stays = readmitted = 0
    excluded: dict[str, int] = defaultdict(int)
    for subject, admissions in stays.items():
        for position, (start, end, disposition) in enumerate(admissions):
            if end is None or end < start or end > AS_OF:
                continue  # not a discharge
            later = [
                other_start
                for other, (other_start, _, _) in enumerate(admissions)
                if other != position and other_start >= end
            ]
            days = (min(later).date() - end.date()).days if later else None
            death = deaths.get(subject)
            if (death is not None and death <= end.date()) or disposition == "exp":
                excluded["in_hospital_death"] += 1
            elif disposition in EXCLUDED_DISPOSITIONS:
                excluded[disposition] += 1
            elif days == 0:
                excluded["same_day_readmission"] += 1
            elif end + timedelta(days=READMISSION_WINDOW_DAYS) > AS_OF:
                excluded["incomplete_follow_up"] += 1
            else:
                index_stays += 1
                readmitted += days is not None and 1 <= days <= READMISSION_WINDOW_DAYS
    return index_stays, readmitted, dict(excluded)


def test_readmission_rate_matches_the_generator(built: Built) -> None:
    index_stays, readmitted, excluded = _expected_readmissions(built)
    ((mart_index, mart_readmitted),) = _query(
        built,
        "select sum(index_stay_count), sum(readmission_count) from marts.readmission_rates_monthly",
    )
    assert (mart_index, mart_readmitted) == (index_stays, readmitted)
    # 14% of discharges are followed by a planted readmission within 1-29 days
    assert 0.12 <= readmitted / index_stays <= 0.16, (readmitted, index_stays)
    reasons = dict(
        _query(
            built,
            "select exclusion_reason, count(*) from marts.readmission_index_stays "
            "where exclusion_reason is not null group by 1",
        )
    )
    assert reasons["in_hospital_death"] == excluded["in_hospital_death"] > 0
    assert reasons["transfer"] == excluded["other-hcf"] > 0
    assert reasons.get("hospice", 0) == excluded.get("hosp", 0)
    assert reasons.get("against_medical_advice", 0) == excluded.get("aadvice", 0)


# --------------------------------------------------------------------------------------------
# Medication adherence
# --------------------------------------------------------------------------------------------


def _days_supply(quantity: dict[str, Any] | None) -> float | None:
    if not quantity or "value" not in quantity:
        return None
    factor = {"d": 1, "days": 1, "wk": 7, "mo": 30, "a": 365}.get(quantity.get("code", ""))
    return quantity["value"] * factor if factor else None


def _expected_pdc(built: Built) -> dict[tuple[str, str], tuple[int, int]]:
    """(patient_key, drug class) -> (covered days, treatment days), by day sets."""
    with (ROOT / "seeds" / "measures" / "drug_classes.csv").open() as seed:
        classes = {
            row["rxnorm_code"]: row["drug_class_code"]
            for row in csv.DictReader(seed)
            if row["is_adherence_target"] == "true"
        }
    expected_supply = {
        request["id"]: _days_supply(request["dispenseRequest"].get("expectedSupplyDuration"))
        for request in _resources(built, "MedicationRequest")
    }
    fills: dict[tuple[str, str], dict[tuple[str, int], int]] = defaultdict(dict)
    for dispense in _resources(built, "MedicationDispense"):
        code = next(
            c["code"]
            for c in dispense["medicationCodeableConcept"]["coding"]
            if c["system"] == RXNORM
        )
        handed = _instant(dispense["whenHandedOver"]).date()
        if dispense["status"] != "completed" or code not in classes:
            continue
        if not PERIOD_START <= handed <= PERIOD_END:
            continue
        prescription = dispense["authorizingPrescription"][0]["reference"].rsplit("/", 1)[-1]
        supply = _days_supply(dispense.get("daysSupply")) or expected_supply.get(prescription)
        if not supply:
            continue
        day = (handed - PERIOD_START).days
        drugs = fills[(dispense["subject"]["reference"], classes[code])]
        drugs[(code, day)] = max(drugs.get((code, day), 0), math.ceil(supply))
    deaths = _death_dates(built)
    expected = {}
    last_day = (PERIOD_END - PERIOD_START).days
    for (subject, drug_class), drug_fills in fills.items():
        index = min(day for _, day in drug_fills)
        death = deaths.get(subject)
        end = min(last_day, (death - PERIOD_START).days) if death else last_day
        covered: set[int] = set()
        for drug in {code for code, _ in drug_fills}:
            runs_out = -1
            for day in sorted(day for code, day in drug_fills if code == drug):
                begin = max(day, runs_out)
                runs_out = begin + drug_fills[(drug, day)]
                covered.update(range(begin, runs_out))
        covered_days = len({day for day in covered if index <= day <= end})
        expected[(_patient_key(subject), drug_class)] = (covered_days, end - index + 1)
    return expected


def test_pdc_matches_a_day_by_day_computation(built: Built) -> None:
    expected = _expected_pdc(built)
    rows = _query(
        built,
        "select patient_key, drug_class_code, covered_day_count, treatment_day_count, pdc, "
        "coverage_source from marts.medication_adherence_pdc",
    )
    actual = {(key, drug_class): (covered, days) for key, drug_class, covered, days, _, _ in rows}
    assert len(expected) > 100
    assert actual == expected
    for _, _, covered, days, pdc, source in rows:
        assert source == "dispenses"
        assert 0 <= pdc <= 1 and pdc == pytest.approx(covered / days)


def test_pdc_figures_are_plausible(built: Built) -> None:
    by_class = {
        drug_class: (denominator, adherent)
        for drug_class, denominator, adherent in _query(
            built,
            """
            select drug_class_code, count(*), sum(case when is_adherent then 1 else 0 end)
            from marts.medication_adherence_pdc
            where is_in_measure_denominator
            group by 1
            """,
        )
    }
    # the generator's chronic drugs, each taken by enough patients to have a rate
    for drug_class in ("ras_antagonist", "statin", "noninsulin_antidiabetic"):
        denominator, adherent = by_class[drug_class]
        assert denominator >= 10, drug_class
        # adherence profiles: 55% refill on time, 30% late, 15% poorly: mostly adherent, not all
        assert 0.5 <= adherent / denominator < 1.0, (drug_class, adherent, denominator)
    assert "saba" not in by_class  # as-needed inhalers are not adherence targets


# --------------------------------------------------------------------------------------------
# Quality measures
# --------------------------------------------------------------------------------------------


def test_quality_measures_have_denominators_and_plausible_rates(built: Built) -> None:
    rates = {
        measure: (population, exclusions, numerator, start, end)
        for measure, population, exclusions, numerator, start, end in _query(
            built,
            """
            select measure_id, sum(denominator_count), sum(denominator_exclusion_count),
                sum(numerator_count), min(measurement_period_start), max(measurement_period_end)
            from marts.quality_measure_rates group by 1
            """,
        )
    }
    assert set(rates) == {"CMS122v12", "CMS165v12", "CMS130v12"}
    bounds = {
        # HbA1c ~ N(7.8, 1.1) in diabetics: about 14% above 9, plus anyone untested
        "CMS122v12": (0.05, 0.45),
        # hypertensive BP ~ N(142, 11) / N(88, 7): about a quarter under 140/90
        "CMS165v12": (0.10, 0.50),
        # colonoscopies at 5% of wellness visits from age 50: a small share screened
        "CMS130v12": (0.01, 0.30),
    }
    for measure, (population, exclusions, numerator, start, end) in rates.items():
        assert (start, end) == (PERIOD_START, PERIOD_END)
        assert population - exclusions >= 20, measure
        low, high = bounds[measure]
        assert low <= numerator / (population - exclusions) <= high, (measure, rates[measure])
    # the summary is the patient-level rows counted
    for measure, model in (
        ("CMS122v12", "quality_cms122_hba1c_poor_control"),
        ("CMS165v12", "quality_cms165_blood_pressure_control"),
        ("CMS130v12", "quality_cms130_colorectal_screening"),
    ):
        patient_level = _query(
            built,
            f"select count(*), sum(case when is_excluded then 1 else 0 end), "
            f"sum(case when is_in_numerator then 1 else 0 end) from marts.{model}",
        )[0]
        assert patient_level == rates[measure][:3], measure


def test_diabetes_measure_follows_the_hba1c_values(built: Built) -> None:
    """CMS122's numerator is exactly: not excluded and (no HbA1c or the last one > 9)."""
    (wrong,) = _query(
        built,
        """
        select count(*) from marts.quality_cms122_hba1c_poor_control
        where is_in_numerator != (
            not is_excluded and (last_hba1c_percent is null or last_hba1c_percent > 9.0)
        )
        """,
    )[0]
    assert wrong == 0
    ((tested, over_nine),) = _query(
        built,
        "select count(last_hba1c_percent), sum(case when last_hba1c_percent > 9 then 1 else 0 end) "
        "from marts.quality_cms122_hba1c_poor_control",
    )
    assert tested > 20 and 0 < over_nine < tested


# --------------------------------------------------------------------------------------------
# Data quality and pipeline health
# --------------------------------------------------------------------------------------------


def test_data_quality_mart_agrees_with_the_tests_of_the_same_build(built: Built) -> None:
    rows = {
        rule: (failing, checked, status)
        for rule, failing, checked, status in _query(
            built,
            "select rule_name, failing_row_count, checked_row_count, rule_status "
            "from marts.data_quality_rule_results",
        )
    }
    dq_tests = {name: r for name, r in built.results.items() if name.startswith("dq_")}
    assert set(rows) == set(dq_tests)
    for rule, (failing, checked, status) in rows.items():
        assert (failing, status) == (dq_tests[rule]["failures"], dq_tests[rule]["status"]), rule
        assert checked is not None and failing <= checked, rule
    # the generator's defects, counted exactly; the denominator is the test's own checked_rows
    with duckdb.connect(str(built.warehouse), read_only=True) as connection:
        for kind, planted in built.defects.items():
            failing, checked, status = rows[f"dq_{kind}"]
            assert (failing, status) == (planted, "warn"), kind
            sql = dq_tests[f"dq_{kind}"]["compiled_code"]
            (test_checked,) = connection.execute(
                f"select max(checked_rows) from ({sql}) as failures"
            ).fetchone()
            assert checked == test_checked, kind


def test_pipeline_health_reflects_the_load(built: Built) -> None:
    runs = _query(
        built,
        "select run_status, resources_read, landed_resource_count, request_count, reject_rate "
        "from marts.pipeline_runs",
    )
    generated = sum(1 for path in built.data.glob("*.ndjson") for _ in path.open())
    assert len(runs) == 1
    status, read, landed, requests, reject_rate = runs[0]
    assert (status, requests, reject_rate) == ("succeeded", 0, 0)
    assert read == landed == generated
    freshness = dict(
        _query(
            built,
            "select resource_type, freshness_status from marts.pipeline_resource_freshness "
            "where landed_resource_count > 0",
        )
    )
    assert len(freshness) == 12
    assert set(freshness.values()) <= {"pass", "warn", "error"}
