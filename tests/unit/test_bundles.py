"""Splitting Bundles into resources and resolving urn:uuid references."""

from __future__ import annotations

from typing import Any

from loaders.files.bundles import BundleEntry, iter_bundle
from loaders.files.references import rewrite_references
from loaders.resources import Rejection, RejectReason


def _bundle(bundle_type: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": list(entries)}


def _entries(bundle: dict[str, Any]) -> list[BundleEntry | tuple[int, Rejection]]:
    return list(iter_bundle(bundle))


PATIENT_URN = "urn:uuid:0b7c3e1a-8f7e-4a52-9a55-3d1f7b2c9e10"


def test_transaction_references_are_rewritten_to_type_and_id() -> None:
    bundle = _bundle(
        "transaction",
        {"fullUrl": PATIENT_URN, "resource": {"resourceType": "Patient", "id": "p1"}},
        {
            "fullUrl": "urn:uuid:e1",
            "resource": {
                "resourceType": "Encounter",
                "id": "e1",
                "subject": {"reference": PATIENT_URN},
                "serviceProvider": {"reference": "Organization/o1"},
                "participant": [{"individual": {"reference": "urn:uuid:not-in-this-bundle"}}],
            },
        },
    )
    items = _entries(bundle)
    encounter = items[1]
    assert isinstance(encounter, BundleEntry)
    assert encounter.resource["subject"]["reference"] == "Patient/p1"
    assert encounter.resource["serviceProvider"]["reference"] == "Organization/o1"
    # A URN whose target is absent stays as it is, for the relationship tests to report.
    assert (
        encounter.resource["participant"][0]["individual"]["reference"]
        == "urn:uuid:not-in-this-bundle"
    )


def test_entry_without_id_takes_the_uuid_of_its_full_url() -> None:
    bundle = _bundle(
        "transaction",
        {"fullUrl": PATIENT_URN, "resource": {"resourceType": "Patient"}},
        {
            "fullUrl": "urn:uuid:x",
            "resource": {
                "resourceType": "Observation",
                "id": "o1",
                "subject": {"reference": PATIENT_URN},
            },
        },
    )
    first, second = _entries(bundle)
    assert isinstance(first, BundleEntry) and isinstance(second, BundleEntry)
    assert first.resource["id"] == PATIENT_URN.removeprefix("urn:uuid:")
    assert second.resource["subject"]["reference"] == f"Patient/{first.resource['id']}"


def test_searchset_keeps_only_match_entries() -> None:
    bundle = _bundle(
        "searchset",
        {"resource": {"resourceType": "Patient", "id": "p1"}, "search": {"mode": "match"}},
        {"resource": {"resourceType": "Organization", "id": "o1"}, "search": {"mode": "include"}},
        {
            "resource": {"resourceType": "OperationOutcome", "id": "oo"},
            "search": {"mode": "outcome"},
        },
        {"resource": {"resourceType": "Patient", "id": "p2"}},
    )
    ids = [item.resource["id"] for item in _entries(bundle) if isinstance(item, BundleEntry)]
    assert ids == ["p1", "p2"]


def test_unsupported_bundle_type_is_refused_whole() -> None:
    items = _entries(_bundle("document", {"resource": {"resourceType": "Composition", "id": "c"}}))
    assert len(items) == 1
    index, rejection = items[0]  # type: ignore[misc]
    assert index == -1
    assert rejection.reason is RejectReason.UNSUPPORTED_BUNDLE_TYPE
    assert rejection.json_path == "Bundle.type"


def test_entries_without_resources_are_refused_with_their_index() -> None:
    items = _entries(
        _bundle(
            "history",
            {"resource": {"resourceType": "Patient", "id": "p1"}},
            {"request": {"method": "DELETE", "url": "Patient/p2"}},
            "not an object",  # type: ignore[arg-type]
        )
    )
    assert isinstance(items[0], BundleEntry)
    assert items[1][1].reason is RejectReason.BUNDLE_ENTRY_WITHOUT_RESOURCE  # type: ignore[index]
    assert items[1][1].json_path == "Bundle.entry[1].resource"  # type: ignore[index]
    assert items[2][1].reason is RejectReason.INVALID_BUNDLE  # type: ignore[index]


def test_rewrite_references_walks_nested_lists_and_counts() -> None:
    resource = {
        "a": [{"reference": "urn:uuid:1"}, {"b": {"reference": "urn:uuid:2"}}],
        "reference": "urn:uuid:3",
        "c": {"reference": 5},
    }
    count = rewrite_references(resource, {"urn:uuid:1": "Patient/1", "urn:uuid:2": "Encounter/2"})
    assert count == 2
    assert resource["a"][0]["reference"] == "Patient/1"
    assert resource["a"][1]["b"]["reference"] == "Encounter/2"
    assert resource["reference"] == "urn:uuid:3"
