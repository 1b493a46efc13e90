"""The drift check's fast path: a resource conforms exactly when the walk finds nothing in it.

:func:`loaders.drift.conformance.conforms` lets a file load skip the walk for resources that
fit their definition; if it ever said "fits" where the walk finds drift, drift would go
unreported. Hand-picked cases and random mutations of valid resources hold it to the walk.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaders.drift.conformance import conforms
from loaders.drift.detector import detect_texts, resource_shapes

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "p1",
    "meta": {"versionId": "1", "lastUpdated": "2026-11-20T10:00:00Z", "tag": [{"code": "x"}]},
    "extension": [{"url": "http://x", "anything": {"goes": [1, True]}}],
    "modifierExtension": [{"url": "http://y", "valueInteger": "not checked"}],
    "contained": [{"resourceType": "Organization", "id": "o", "vendor_field": 1}],
    "identifier": [{"system": "urn:x", "value": "1", "assigner": {"reference": "Organization/o"}}],
    "name": [{"family": "F", "given": ["A", None], "_given": [None, {"extension": []}]}],
    "_birthDate": {"extension": [{"url": "http://z", "valueString": "free"}]},
    "birthDate": "1970-01-01",
    "deceasedBoolean": False,
    "multipleBirthInteger": 2,
    "gender": None,
    "address": [{"line": ["1 Main St"], "period": {"start": "2020-01-01"}}],
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "category": [{"coding": [{"system": "http://x", "code": "vital-signs"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "HR"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-11-20T10:00:00Z",
    "valueQuantity": {"value": 72.5, "unit": "/min"},
    "component": [
        {"code": {"text": "x"}, "valueString": "ok"},
        {"code": {"text": "y"}, "valueQuantity": {"value": 3, "comparator": "<"}},
    ],
    "referenceRange": [{"low": {"value": 60}, "high": {"value": 100}}],
}


def _agree(resource_type: str, document: dict[str, Any]) -> bool:
    fits = conforms(resource_type, orjson.dumps(document))
    assert fits == (not resource_shapes(resource_type, document)), document
    return fits


def test_valid_resources_with_extensions_nulls_and_choice_types_conform() -> None:
    assert _agree("Patient", PATIENT)
    assert _agree("Observation", OBSERVATION)


@pytest.mark.parametrize(
    ("resource_type", "document"),
    [
        ("Patient", {**PATIENT, "birth_date": "1970-01-01"}),  # an unknown element
        ("Patient", {**PATIENT, "name": [{"famly": "F"}]}),  # unknown inside an array item
        ("Patient", {**PATIENT, "gender": 1}),  # a number where a string goes
        ("Patient", {**PATIENT, "multipleBirthInteger": True}),  # a boolean is not a number
        ("Patient", {**PATIENT, "deceasedBoolean": "false"}),  # a string is not a boolean
        ("Patient", {**PATIENT, "name": {"family": "F"}}),  # an object where an array goes
        ("Patient", {**PATIENT, "maritalStatus": [{"text": "x"}]}),  # array for an object
        ("Patient", {**PATIENT, "name": [{"given": "A"}]}),  # a string for an array of them
        ("Patient", {**PATIENT, "name": ["F"]}),  # a string item where objects go
        ("Patient", {**PATIENT, "identifier": [{"assigner": {"identifier": {"value": 7}}}]}),
        ("Observation", {**OBSERVATION, "valueQuantity": {"value": "72"}}),
        ("Observation", {**OBSERVATION, "component": [{"code": {"text": 1}}]}),
    ],
)
def test_drifted_resources_do_not_conform(resource_type: str, document: dict[str, Any]) -> None:
    assert not _agree(resource_type, document)


def test_detect_texts_reports_only_what_the_walk_finds() -> None:
    texts = [orjson.dumps(PATIENT), orjson.dumps({**PATIENT, "gender": 1})]

    found = detect_texts("Patient", texts)

    assert [(o.json_path, o.observed_kind, o.expected_kind, o.count) for o in found] == [
        ("Patient.gender", "number", "string", 1)
    ]


# --- random mutations of valid resources --------------------------------------------------

_REPLACEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-1.5, 1.5, allow_nan=False),
    st.text(max_size=3),
    st.just([]),
    st.just({}),
    st.just(["x"]),
    st.just([{"text": "x"}]),
    st.just({"text": "x"}),
    st.just({"unknownThing": 1}),
)


def _containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every dict and list inside ``value`` (the root included)."""
    if not isinstance(value, dict | list):
        return []
    found = [path]
    for key, child in value.items() if isinstance(value, dict) else enumerate(value):
        found.extend(_containers(child, (*path, key)))
    return found


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        document = document[key]
    return document


def _fresh(draw: st.DrawFn) -> Any:
    """A replacement value, copied: ``st.just`` hands out one object, and mutations edit it."""
    return copy.deepcopy(draw(_REPLACEMENTS))


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    resource_type, original = draw(
        st.sampled_from([("Patient", PATIENT), ("Observation", OBSERVATION)])
    )
    document = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        target = _at(document, draw(st.sampled_from(_containers(document))))
        if isinstance(target, dict):
            keys = sorted(target)
            action = draw(st.sampled_from(["replace", "rename", "wrap", "add"]))
            if action == "add" or not keys:
                key = draw(st.sampled_from(["note", "text", "value", "x_y", "status"]))
                target[key] = _fresh(draw)
                continue
            key = draw(st.sampled_from(keys))
            if action == "replace":
                target[key] = _fresh(draw)
            elif action == "rename":
                target[key + draw(st.sampled_from(["_", "X", "s"]))] = target.pop(key)
            else:
                target[key] = [target[key]]
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = _fresh(draw)
        else:
            target.append(_fresh(draw))
    return resource_type, document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_a_mutated_resource_conforms_exactly_when_the_walk_finds_nothing(
    case: tuple[str, dict[str, Any]],
) -> None:
    resource_type, document = case
    _agree(resource_type, document)
