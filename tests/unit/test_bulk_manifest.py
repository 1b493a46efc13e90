"""Bulk Data manifests: parsing, partial manifests linked by link[next], stable file keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from loaders.bulk.manifest import collect_manifest, parse_manifest_page
from loaders.exceptions import MalformedResponseError

FILES = "https://ehr.example/fhir/_bulk/files/job1"


def page(outputs: list[tuple[str, int | None]], *, next_url: str | None = None, **extra: Any):
    body: dict[str, Any] = {
        "transactionTime": "2026-06-01T10:00:00.123Z",
        "request": "https://ehr.example/fhir/$export",
        "requiresAccessToken": True,
        "output": [
            {
                "type": rtype,
                "url": f"{FILES}/{rtype}-{n}.ndjson",
                **({"count": c} if c is not None else {}),
            }
            for n, (rtype, c) in enumerate(outputs)
        ],
        **extra,
    }
    if next_url:
        body["link"] = [{"relation": "next", "url": next_url}]
    return body


def test_a_complete_manifest_is_read_with_its_three_lists() -> None:
    body = page(
        [("Patient", 2), ("Observation", 5)],
        deleted=[{"type": "Bundle", "url": f"{FILES}/deleted-1.ndjson", "count": 1}],
        error=[{"type": "OperationOutcome", "url": f"{FILES}/error-1.ndjson"}],
    )

    manifest = collect_manifest(body, lambda url: pytest.fail("no next page"))

    assert manifest.transaction_time == datetime(2026, 6, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert manifest.transaction_time_text == "2026-06-01T10:00:00.123Z"
    assert manifest.requires_access_token is True
    assert [(f.kind, f.resource_type, f.count) for f in manifest.files] == [
        ("error", "OperationOutcome", None),
        ("output", "Patient", 2),
        ("output", "Observation", 5),
        ("deleted", "Bundle", 1),
    ]
    assert manifest.declared_resources == 7
    assert manifest.pages == 1


def test_partial_manifest_pages_are_followed_and_united() -> None:
    pages = {
        "https://ehr.example/m/2": page([("Encounter", 3)], next_url="https://ehr.example/m/3"),
        "https://ehr.example/m/3": page(
            [("Condition", None)],
            error=[{"type": "OperationOutcome", "url": f"{FILES}/e.ndjson", "count": 1}],
        ),
    }
    fetched: list[str] = []

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return pages[url]

    manifest = collect_manifest(page([("Patient", 2)], next_url="https://ehr.example/m/2"), fetch)

    assert fetched == ["https://ehr.example/m/2", "https://ehr.example/m/3"]
    assert manifest.pages == 3
    assert [f.resource_type for f in manifest.output] == ["Patient", "Encounter", "Condition"]
    assert [f.index for f in manifest.output] == [0, 1, 2]
    assert len(manifest.error) == 1
    assert manifest.declared_resources is None, "one file has no count"


def test_pages_that_loop_or_disagree_are_refused() -> None:
    loop = page([("Patient", 1)], next_url="https://ehr.example/m/2")
    looping = {
        "https://ehr.example/m/2": page([("Encounter", 1)], next_url="https://ehr.example/m/2")
    }
    with pytest.raises(MalformedResponseError, match="loops back"):
        collect_manifest(loop, looping.__getitem__)

    other_time = page([("Encounter", 1)])
    other_time["transactionTime"] = "2026-06-02T00:00:00Z"
    with pytest.raises(MalformedResponseError, match="transactionTime differs"):
        collect_manifest(loop, lambda url: other_time)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda b: b.pop("transactionTime"), "transactionTime"),
        (lambda b: b.update(requiresAccessToken="yes"), "requiresAccessToken"),
        (lambda b: b.pop("output"), "output"),
        (lambda b: b["output"][1].update(type="Unicorn"), r"output\[1\].type"),
        (
            lambda b: b["output"][0].update(url="/relative/secret-patient-123.ndjson"),
            r"output\[0\].url",
        ),
        (lambda b: b["output"][0].update(count=-1), r"output\[0\].count"),
        (lambda b: b.update(deleted={"type": "Bundle"}), "deleted is not a list"),
    ],
)
def test_malformed_manifests_name_the_path_never_the_value(mutate, path: str) -> None:
    body = page([("Patient", 1), ("Observation", 1)])
    mutate(body)
    with pytest.raises(MalformedResponseError, match=path) as caught:
        parse_manifest_page(body)
    assert "secret-patient" not in str(caught.value)


def test_a_file_key_ignores_the_signature_of_a_presigned_url() -> None:
    first = collect_manifest(
        page([("Patient", 1)])
        | {
            "output": [
                {"type": "Patient", "url": "https://s3.example/b/f1.ndjson?X-Amz-Signature=aaa"}
            ]
        },
        lambda url: {},
    )
    again = collect_manifest(
        page([("Patient", 1)])
        | {
            "output": [
                {"type": "Patient", "url": "https://s3.example/b/f1.ndjson?X-Amz-Signature=bbb"}
            ]
        },
        lambda url: {},
    )
    assert first.output[0].key == again.output[0].key
    assert "f1" not in first.output[0].label and "s3" not in repr(first.output[0])
