"""Schema drift: element kinds derived from the R4B models, the detector, policies, the ledger."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from loaders.drift import (
    DriftAction,
    DriftLedger,
    DriftObservation,
    DriftPolicy,
    DriftRule,
    detect_documents,
    load_drift_policy,
)
from loaders.drift.policy import default_action, parse_rules
from loaders.drift.staging_paths import STAGING_READ_PATHS, staging_read_paths
from loaders.exceptions import ConfigError, SchemaDriftError
from loaders.fhir.element_types import JsonKind, element_paths
from loaders.resources import ParsedResource, parse_resource_object

STAGING_SQL = Path(__file__).parents[2] / "dbt_project" / "models" / "staging" / "fhir"
AT = datetime(2026, 12, 1, tzinfo=UTC)


def _patient(**fields: object) -> dict[str, object]:
    return {"resourceType": "Patient", "id": "p1", **fields}


def _shapes(resource_type: str, *documents: dict[str, object]) -> set[tuple[str, str, str, int]]:
    return {
        (o.json_path, o.observed_kind, o.expected_kind, o.count)
        for o in detect_documents(resource_type, documents)
    }


# --- element kinds from the models ------------------------------------------------------------


def test_paths_carry_json_kinds_arrays_and_expanded_choice_types() -> None:
    patient = dict(element_paths("Patient"))
    assert patient["Patient.name"].repeated and patient["Patient.name"].expected == "array"
    assert patient["Patient.name.family"].expected == "string"
    assert patient["Patient.name.given"].expected == "array"
    assert patient["Patient.name.given"].kind is JsonKind.STRING
    assert patient["Patient.active"].expected == "boolean"
    assert patient["Patient.multipleBirthInteger"].expected == "number"
    assert patient["Patient.deceasedBoolean"].expected == "boolean"
    assert patient["Patient.deceasedDateTime"].expected == "string"
    assert "Patient.deceased" not in patient
    assert patient["Patient.extension"].opaque and patient["Patient._birthDate"].opaque
    assert patient["Patient.contained"].opaque
    observation = dict(element_paths("Observation"))
    assert observation["Observation.valueQuantity.value"].expected == "number"
    assert observation["Observation.valueQuantity.value"].datatype == "decimal"
    assert observation["Observation.component.valueQuantity.code"].expected == "string"


def test_recursive_datatypes_are_capped_by_depth() -> None:
    shallow = {path for path, _ in element_paths("Patient", max_depth=2)}
    deep = {path for path, _ in element_paths("Patient", max_depth=5)}
    assert "Patient.identifier.assigner" in shallow
    assert "Patient.identifier.assigner.identifier" not in shallow
    assert "Patient.identifier.assigner.identifier.assigner.identifier" in deep
    assert max(path.count(".") for path in deep) == 5


# --- the detector -----------------------------------------------------------------------------


def test_a_valid_resource_with_extensions_and_choice_types_has_no_findings() -> None:
    document = _patient(
        meta={"versionId": "1", "lastUpdated": "2026-11-20T10:00:00Z", "tag": [{"code": "x"}]},
        extension=[{"url": "http://x", "anything": {"goes": [1, True]}}],
        modifierExtension=[{"url": "http://y", "valueInteger": "not checked"}],
        contained=[{"resourceType": "Organization", "id": "o", "vendor_field": 1}],
        name=[{"family": "F", "given": ["A", None], "_given": [None, {"extension": []}]}],
        _birthDate={"extension": [{"url": "http://z", "valueString": "free"}]},
        birthDate="1970-01-01",
        deceasedBoolean=False,
        multipleBirthInteger=2,
        gender=None,
    )
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "valueQuantity": {"value": 72.5, "unit": "/min"},
        "component": [{"code": {"text": "x"}, "valueString": "ok"}],
    }
    assert _shapes("Patient", document) == set()
    assert _shapes("Observation", observation) == set()


def test_renamed_nested_field_and_number_for_string_are_found_once_per_resource() -> None:
    renamed = _patient(name=[{"famly": "F"}, {"famly": "G"}])
    numeric = _patient(gender=1, name=[{"family": "F"}])
    shapes = _shapes("Patient", renamed, numeric, renamed)
    assert shapes == {
        ("Patient.name.famly", "string", "unknown", 2),
        ("Patient.gender", "number", "string", 1),
    }


def test_array_and_object_mismatches_and_deep_paths() -> None:
    document = _patient(
        name={"family": "F"},
        maritalStatus=[{"text": "x"}],
        identifier=[{"assigner": {"identifier": {"value": 7}}}],
    )
    assert _shapes("Patient", document) == {
        ("Patient.name", "object", "array", 1),
        ("Patient.maritalStatus", "array", "object", 1),
        ("Patient.identifier.assigner.identifier.value", "number", "string", 1),
    }
    quantity = {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": "72"}}
    assert _shapes("Observation", quantity) == {
        ("Observation.valueQuantity.value", "string", "number", 1)
    }


# --- policy -----------------------------------------------------------------------------------


def _observation(path: str, expected: str = "unknown") -> DriftObservation:
    return DriftObservation(path.split(".")[0], path, "string", expected, 1)


def test_default_policy_fails_where_staging_reads_and_warns_elsewhere() -> None:
    policy = DriftPolicy("src")
    assert policy.action_for(_observation("Patient.birth_date")) is DriftAction.FAIL
    assert policy.action_for(_observation("Patient.name.famly")) is DriftAction.FAIL
    assert policy.action_for(_observation("Patient.gender", "string")) is DriftAction.FAIL
    assert policy.action_for(_observation("Patient.name", "array")) is DriftAction.FAIL
    assert policy.action_for(_observation("Patient.contact.vendor")) is DriftAction.WARN
    assert policy.action_for(_observation("Patient.photo.size", "number")) is DriftAction.WARN
    assert policy.action_for(_observation("CarePlan.vendor")) is DriftAction.WARN
    assert default_action("Patient", "Patient.communication.x", unknown_element=True) == "warn"


def test_rules_match_globs_first_and_come_from_env_and_dlt_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = DriftPolicy(
        "src",
        (
            DriftRule("Patient.birth_date", DriftAction.ACCEPT),
            DriftRule("Patient.*", DriftAction.WARN),
        ),
    )
    assert policy.action_for(_observation("Patient.birth_date")) is DriftAction.ACCEPT
    assert policy.action_for(_observation("Patient.name.famly")) == "warn"
    assert parse_rules("A.b=accept; C.*=FAIL") == (
        DriftRule("A.b", DriftAction.ACCEPT),
        DriftRule("C.*", DriftAction.FAIL),
    )
    monkeypatch.setenv("FHIR_ELT_DRIFT_POLICY", "Patient.x=accept")
    monkeypatch.setenv("FHIR_ELT__DRIFT__EPIC", '{"Observation.*": "warn"}')
    loaded = load_drift_policy("epic")
    assert loaded.rules == (
        DriftRule("Patient.x", DriftAction.ACCEPT),
        DriftRule("Observation.*", DriftAction.WARN),
    )
    with pytest.raises(ConfigError, match="fail, warn or accept"):
        parse_rules("Patient.x=ignore")
    with pytest.raises(ConfigError, match="glob=action"):
        parse_rules("Patient.x")


def test_staging_read_paths_cover_every_element_the_staging_sql_reads() -> None:
    """Each `(column, 'path'` a staging model reads is a listed path, or under or above one."""
    pattern = re.compile(r"\(\s*'resource',\s*'([A-Za-z][\w.\[\]]*)'")
    checked, missing = 0, set()
    for sql_file in sorted(STAGING_SQL.glob("stg_fhir__*.sql")):
        text = sql_file.read_text()
        table = re.search(r"source\('fhir', '(\w+)'\)", text)
        assert table is not None
        resource_type = "".join(part.title() for part in table.group(1).split("_"))
        reads = staging_read_paths(resource_type)
        for raw in pattern.findall(text):
            path = f"{resource_type}." + re.sub(r"\[\d+\]", "", raw)
            checked += 1
            if not any(
                read == path or read.startswith(path + ".") or path.startswith(read + ".")
                for read in reads
            ):
                missing.add(path)
    assert not missing, f"add to loaders/drift/staging_paths.py: {sorted(missing)}"
    assert checked > 100
    for resource_type, paths in STAGING_READ_PATHS.items():
        known = {path for path, _ in element_paths(resource_type, max_depth=3)}
        unknown = {p for p in paths if f"{resource_type}.{p}" not in known}
        assert not unknown, f"{resource_type}: {unknown} are not R4 elements"


# --- the ledger -------------------------------------------------------------------------------


def _parsed(document: dict[str, object]) -> ParsedResource:
    result = parse_resource_object(document)
    assert isinstance(result, ParsedResource)
    return result


def test_ledger_totals_warnings_over_pages_and_keeps_the_first_landing_file() -> None:
    ledger = DriftLedger("run-1", DriftPolicy("src"))
    odd = _parsed(_patient(contact=[{"vendor": "x"}]))
    plain = _parsed(_patient())
    ledger.check_page("Patient", [plain], "src/Patient/p-1.ndjson.gz", AT)
    ledger.check_page("Patient", [odd, odd, plain], "src/Patient/p-2.ndjson.gz", AT)
    ledger.check_page("Patient", [odd], "src/Patient/p-3.ndjson.gz", AT)
    rows = ledger.table().to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert (row["json_path"], row["observed_kind"], row["expected_kind"]) == (
        "Patient.contact.vendor",
        "string",
        "unknown",
    )
    assert (row["count"], row["policy"], row["run_id"]) == (3, "warn", "run-1")
    assert row["first_seen_landing_file"] == "src/Patient/p-2.ndjson.gz"
    assert ledger.resources_checked == 5


def test_ledger_fail_names_type_path_and_file_never_values() -> None:
    ledger = DriftLedger(
        "run-1", DriftPolicy("src", (DriftRule("*.accepted", DriftAction.ACCEPT),))
    )
    renamed = _parsed(_patient(id="canary-id-77", birth_date="1961-02-03", accepted=1))
    with pytest.raises(SchemaDriftError) as raised:
        ledger.check_page("Patient", [renamed], "src/Patient/p-1.ndjson.gz", AT)
    message = str(raised.value)
    assert "Patient.birth_date" in message and "src/Patient/p-1.ndjson.gz" in message
    assert "canary-id-77" not in message and "1961" not in message
    assert "accepted" not in message
    assert [row["policy"] for row in ledger.table().to_pylist()] == ["fail"]
    assert orjson.loads(renamed.text)["birth_date"] == "1961-02-03"
