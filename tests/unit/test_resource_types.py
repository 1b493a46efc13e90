"""Which resource types R4 defines, and the raw table each lands in."""

from __future__ import annotations

import pytest

from loaders.fhir import CORE_RESOURCE_TYPES, is_known_resource_type, table_name_for


@pytest.mark.parametrize(
    ("resource_type", "table"),
    [
        ("Patient", "patient"),
        ("MedicationRequest", "medication_request"),
        ("AllergyIntolerance", "allergy_intolerance"),
        ("OperationOutcome", "operation_outcome"),
    ],
)
def test_table_name_for(resource_type: str, table: str) -> None:
    assert table_name_for(resource_type) == table


def test_every_core_type_is_an_r4_resource() -> None:
    assert all(is_known_resource_type(name) for name in CORE_RESOURCE_TYPES)


@pytest.mark.parametrize("name", ["patient", "HumanName", "Meta", "Extension", "Foo", "Bad-x", ""])
def test_datatypes_wrong_case_and_unknown_names_are_not_resources(name: str) -> None:
    assert not is_known_resource_type(name)
