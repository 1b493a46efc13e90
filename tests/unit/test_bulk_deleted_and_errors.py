"""Deleted Bundles become tombstones that supersede older versions; error files keep codes only."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from loaders.bulk.deleted import Deletion, parse_deleted_line, tombstone
from loaders.bulk.errors import WITHHELD, error_records, parse_error_line, summarise_errors
from loaders.resources import ParsedResource, Rejection, RejectReason, parse_resource_bytes


def bundle(*urls: str, method: str = "DELETE") -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": method, "url": url}} for url in urls],
        }
    )


def test_deleted_bundles_list_type_and_id_in_any_url_form() -> None:
    parsed = parse_deleted_line(
        bundle(
            "Observation/o1",
            "Patient/p-2/_history/3",
            "https://ehr.example/fhir/Encounter/e.3",
            "Condition/c4?x=1",
        )
    )
    assert parsed == [
        Deletion("Observation", "o1"),
        Deletion("Patient", "p-2"),
        Deletion("Encounter", "e.3"),
        Deletion("Condition", "c4"),
    ]
    assert parse_deleted_line(bundle("Observation/o1", method="PUT")) == []


@pytest.mark.parametrize(
    ("line", "reason", "path"),
    [
        (b"{not json", RejectReason.INVALID_JSON, "$"),
        (b'{"resourceType": "Patient"}', RejectReason.INVALID_BUNDLE, "resourceType"),
        (bundle("Unicorn/u1"), RejectReason.UNKNOWN_RESOURCE_TYPE, "entry[0].request.url"),
        (bundle("Observation/bad id!"), RejectReason.INVALID_ID, "entry[0].request.url"),
        (bundle("o1"), RejectReason.INVALID_BUNDLE, "entry[0].request.url"),
    ],
)
def test_unreadable_deleted_lines_are_rejected_with_a_path(line, reason, path) -> None:
    rejected = parse_deleted_line(line)
    assert isinstance(rejected, Rejection)
    assert (rejected.reason, rejected.json_path) == (reason, path)


def test_a_tombstone_supersedes_older_versions_and_yields_to_a_re_creation() -> None:
    fetched = datetime(2026, 6, 2, tzinfo=UTC)
    stored = parse_resource_bytes(
        b'{"resourceType":"Observation","id":"o1","meta":{"versionId":"7",'
        b'"lastUpdated":"2026-05-31T23:59:59.999Z"}}'
    )
    recreated = parse_resource_bytes(
        b'{"resourceType":"Observation","id":"o1","meta":{"versionId":"1",'
        b'"lastUpdated":"2026-06-01T00:00:00.001Z"}}'
    )
    assert isinstance(stored, ParsedResource) and isinstance(recreated, ParsedResource)

    stub = tombstone(Deletion("Observation", "o1"), "2026-06-01T00:00:00.000Z")

    assert (stub.resource_type, stub.id) == ("Observation", "o1")
    assert stored.version_sort_key(fetched) < stub.version_sort_key(fetched)
    assert stub.version_sort_key(fetched) < recreated.version_sort_key(fetched)


def test_error_lines_keep_codes_and_plain_paths_only() -> None:
    line = orjson.dumps(
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "processing",
                    "diagnostics": "Patient Jane Doe (MRN 12345) could not be serialised",
                    "details": {"coding": [{"code": "MSG_X"}], "text": "Jane Doe"},
                    "expression": ["Patient.name[0].family", "Patient.name.where(family='Doe')"],
                },
                {"severity": "boom", "code": "<script>"},
            ],
        }
    )
    issues = parse_error_line(line)
    assert [(i.severity, i.code, i.details_codes, i.expression) for i in issues] == [
        ("error", "processing", "MSG_X", f"Patient.name[0].family, {WITHHELD}"),
        ("unknown", "unknown", None, None),
    ]
    assert "Doe" not in repr(issues) and "12345" not in repr(issues)
    assert parse_error_line(b"not json")[0].code == "invalid"
    assert parse_error_line(b'{"resourceType":"Patient"}')[0].details_codes == (
        "not-an-operation-outcome"
    )


def test_error_rows_are_keyed_by_line_and_issue_and_summarised() -> None:
    line = orjson.dumps(
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
    )
    records = list(
        error_records(
            [(1, line), (4, line)],
            run_id="r",
            source_system="s",
            export_key="system|*",
            job_id="j",
            file_key="k",
            file_label="error 0 (OperationOutcome)",
            at=datetime(2026, 6, 1, tzinfo=UTC),
        )
    )
    assert [(r.line_number, r.issue_index) for r in records] == [(1, 0), (4, 0)]
    [summary] = summarise_errors(records)
    assert summary.startswith("2 issue(s) in 1 error file(s) from the server: error not-found (2)")
