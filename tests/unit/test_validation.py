"""Validation against fhir.resources.R4B: paths and reasons without values, sampling, the pool.

A value planted in an invalid element must never reach the JSON path or the reason; the
sample is a function of the content hash only, so a rerun validates the same resources; the
process pool finds exactly what in-process validation finds.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from loaders.exceptions import ConfigError
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.resources import ParsedResource, RejectReason, parse_resource_bytes
from loaders.settings import LoadSettings
from loaders.validation import (
    FULL,
    OFF,
    Finding,
    ValidationKind,
    ValidationMode,
    Validator,
    first_finding,
    json_path,
    parse_validation_mode,
)
from loaders.validation.check import finding_for, invalid_in
from loaders.validation.refusals import Origin, invalid_resource
from loaders.warehouse.operational import RunRecord
from loaders.warehouse.version_filter import DuckDBVersionFilter

PLANTED = "Plantedvalue7781"
PLANTED_NUMBER = 987654321


def _parsed(document: dict) -> ParsedResource:
    parsed = parse_resource_bytes(orjson.dumps(document))
    assert isinstance(parsed, ParsedResource)
    return parsed


def _patient(**elements: object) -> dict:
    return {"resourceType": "Patient", "id": "p1", **elements}


@pytest.mark.parametrize(
    ("elements", "path", "code"),
    [
        ({"gender": 123}, "Patient.gender", "string_type"),
        ({"birthDate": f"{PLANTED}-not-a-date"}, "Patient.birthDate", "value_error"),
        ({"name": [{"family": "x"}, {"given": ["a", 5]}]}, "Patient.name[1].given[1]", None),
        ({"contained": [{"resourceType": "Patient", "id": "c", "gender": 5}]}, None, None),
        ({"telecom": [{"system": "phone", "value": 42}]}, "Patient.telecom[0].value", None),
    ],
)
def test_first_error_becomes_a_path_and_a_code_never_the_value(
    elements: dict, path: str | None, code: str | None
) -> None:
    finding = finding_for(_patient(**elements))
    assert finding is not None
    if path is not None:
        assert finding.json_path == path
    if code is not None:
        assert finding.code == code
    assert finding.reason == f"fhir_validation:{finding.code}"
    for text in (finding.json_path, finding.reason):
        assert PLANTED not in text
        for value in ("123", "not-a-date", "42"):
            assert value not in text


def test_planted_values_in_every_kind_of_error_stay_out() -> None:
    documents = [
        _patient(birthDate=PLANTED),
        _patient(gender={"text": PLANTED}),
        _patient(name=[{"family": [PLANTED]}]),
        _patient(active=PLANTED),
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"text": "x"},
            "valueQuantity": {"value": 1},
            "valueString": PLANTED,  # two values of one choice: an error on the whole resource
        },
        {"resourceType": "Observation", "id": "o2", "code": {"text": PLANTED}},  # no status
    ]
    for document in documents:
        finding = finding_for(document)
        assert finding is not None, document
        assert PLANTED not in finding.json_path
        assert PLANTED not in finding.reason
        assert finding.json_path.startswith(document["resourceType"])


def test_valid_resources_have_no_finding() -> None:
    assert finding_for(_patient(gender="female", birthDate="1970-01-01")) is None


def test_json_path_keeps_element_names_and_indices_and_drops_anything_else() -> None:
    location = ("name", 1, "function-after[validate(), str]", "given", 0, "root", "a b", True)
    assert json_path("Patient", location) == "Patient.name[1].given[0]"
    assert json_path("Patient", ("_birthDate", "extension", 0)) == (
        "Patient._birthDate.extension[0]"
    )
    assert json_path("Patient", ()) == "Patient"


def test_error_code_must_look_like_a_code() -> None:
    odd = first_finding("Patient", [{"type": f"{PLANTED} is bad!", "loc": ("gender",)}])
    assert odd == Finding("Patient.gender", "unknown")
    assert first_finding("Patient", []) == Finding("Patient", "unknown")


def test_invalid_json_and_types_without_a_model_are_findings_too() -> None:
    texts = [
        orjson.dumps(_patient()),
        b'{"resourceType": "Pat',
        orjson.dumps({"resourceType": "NotAType", "id": "x"}),
        orjson.dumps(_patient(gender=1)),
    ]
    assert invalid_in(texts) == [
        (1, "$", "invalid_json"),
        (2, "NotAType", "no_r4b_model"),
        (3, "Patient.gender", "string_type"),
    ]


def test_bundle_entries_get_paths_relative_to_the_bundle() -> None:
    resource = _parsed(_patient(gender=1))
    finding = Finding("Patient.gender", "string_type")
    in_bundle = invalid_resource(resource, finding, Origin("b.json", 1, bundle_entry=3))
    assert in_bundle.json_path == "Bundle.entry[3].resource.gender"
    plain = invalid_resource(resource, finding, Origin("p.ndjson", 9))
    assert (plain.reason, plain.json_path) == (RejectReason.INVALID_FHIR_RESOURCE, "Patient.gender")
    assert (plain.resource_type, plain.resource_id) == ("Patient", "p1")


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("off", OFF),
        ("FULL", FULL),
        ("sample:10", ValidationMode(ValidationKind.SAMPLE, 10.0)),
        ("sample:2.5%", ValidationMode(ValidationKind.SAMPLE, 2.5)),
    ],
)
def test_modes_parse(text: str, mode: ValidationMode) -> None:
    assert parse_validation_mode(text) == mode


@pytest.mark.parametrize("text", ["", "on", "sample", "sample:0", "sample:101", "sample:x"])
def test_malformed_modes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="validation must be"):
        parse_validation_mode(text)


def test_the_sample_is_the_same_every_time_and_about_the_share_asked() -> None:
    hashes = [hashlib.sha256(str(number).encode()).hexdigest() for number in range(20_000)]
    ten = parse_validation_mode("sample:10")
    first = [digest for digest in hashes if ten.selects(digest)]
    again = [digest for digest in hashes if parse_validation_mode("sample:10").selects(digest)]
    assert first == again
    assert 0.09 < len(first) / len(hashes) < 0.11
    # A larger sample contains the smaller one: raising N only adds resources.
    twenty = parse_validation_mode("sample:20")
    assert set(first) < {digest for digest in hashes if twenty.selects(digest)}
    assert all(parse_validation_mode("sample:100").selects(digest) for digest in hashes)
    assert not any(OFF.selects(digest) for digest in hashes)


def test_a_validator_samples_by_content_so_reruns_find_the_same_resources() -> None:
    page = [_parsed(_patient(id=f"p{number}", gender=number)) for number in range(300)]
    sample = Validator(parse_validation_mode("sample:30"), workers=1)
    first = [item.position for item in sample.invalid(page)]
    second = [item.position for item in Validator(sample.mode, workers=1).invalid(page)]
    assert first == second
    assert 40 < len(first) < 140
    assert sample.validated == len(first) == sample.invalid_count
    assert Validator(OFF, workers=1).invalid(page) == []


def test_the_pool_finds_what_validation_in_process_finds() -> None:
    page = [
        _parsed(_patient(id=f"p{number}", gender=number if number % 7 == 0 else "female"))
        for number in range(400)
    ]
    in_process = Validator(FULL, workers=1).invalid(page)
    pooled = Validator(FULL, workers=2)
    assert pooled.invalid(page) == in_process
    assert [item.position for item in in_process] == list(range(0, 400, 7))
    assert pooled.validated == 400
    assert pooled.throughput > 0
    assert "400 validated, 58 invalid" in pooled.describe()


def test_the_setting_comes_from_flag_then_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FHIR_ELT_VALIDATION", raising=False)
    monkeypatch.chdir(tmp_path)  # no .dlt/config.toml here
    assert LoadSettings.resolve().validation == OFF
    monkeypatch.setenv("FHIR_ELT_VALIDATION", "sample:5")
    assert str(LoadSettings.resolve().validation) == "sample:5"
    assert LoadSettings.resolve(validation="full").validation == FULL
    monkeypatch.setenv("FHIR_ELT_VALIDATION", "sometimes")
    with pytest.raises(ConfigError):
        LoadSettings.resolve()


def test_page_ingest_lands_the_valid_and_quarantines_the_invalid_by_request_and_position(
    tmp_path: Path,
) -> None:
    run = RunRecord("run-1", "test", "load rest", datetime.now(UTC))
    zone = LandingZone(tmp_path / "landing", "test", run.run_id)
    ingest = PageIngest(
        zone,
        DuckDBVersionFilter(tmp_path / "absent.duckdb"),
        run,
        100,
        validator=Validator(FULL, workers=1),
    )
    page = [
        _parsed(_patient(id="a", gender="female")),
        _parsed(_patient(id="b", gender=PLANTED_NUMBER)),
        _parsed(_patient(id="c")),
    ]
    run.resources_read += len(page)
    landed = ingest.land("Patient", page, ["req-1"] * 3, datetime.now(UTC))
    ingest.flush_quarantine(datetime.now(UTC))

    assert landed is not None and landed[1].num_rows == 2
    assert (run.resources_landed, run.resources_quarantined) == (2, 1)
    data_page, quarantine_page = zone.pages
    assert data_page.resource_count == 2
    (record,) = ingest.quarantined
    assert (record.source_file, record.line_number) == ("req-1", 2)
    assert record.reason is RejectReason.INVALID_FHIR_RESOURCE
    assert record.json_path == "Patient.gender"
    assert record.landing_file == quarantine_page.landing_file and record.landing_line == 1
    assert str(PLANTED_NUMBER) not in record.json_path + record.reason
