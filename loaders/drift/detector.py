"""Find the shapes a batch of resources carries that their FHIR R4 definition does not.

Two kinds of finding, each named by resource type, JSON path (FHIRPath without indices, e.g.
``Patient.name.family``) and the JSON kinds involved, never by a value:

- an **unknown element**: a key the element's definition lacks (``Patient.birth_date``);
  the expected kind is ``unknown``;
- a **kind mismatch**: a known element whose JSON kind is not the definition's (a number where
  ``Patient.gender`` is a string; one object where ``Patient.name`` is an array).

One cheap walk over each decoded resource, guided by the per-datatype tables of
:mod:`loaders.fhir.element_types`: primitives are compared by their exact Python type, objects
are entered with their datatype's table, and extensions, primitive companions (``_birthDate``)
and contained resources are skipped. ``null`` is accepted anywhere (primitive arrays carry nulls
beside their ``_`` companions; a value going null is the staging null-rate guards' business).
Nothing is allocated for a resource that matches its definition, so the common case costs a
dictionary lookup and a type check per element (see ``bench/drift_check.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel

from loaders.drift.conformance import conforms
from loaders.fhir.element_types import (
    KIND_OF_TYPE,
    JsonKind,
    element_table,
    model_for,
)

UNKNOWN = "unknown"
_ARRAY = JsonKind.ARRAY
_OBJECT = JsonKind.OBJECT
_NULL = JsonKind.NULL

# (json path, observed kind, expected kind or "unknown")
Shape = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class DriftObservation:
    """One shape a batch carries that the definition does not have, and how many resources.

    Attributes:
        resource_type: The resource type.
        json_path: Where, without indices (``Observation.component.valueQuantity.value``).
        observed_kind: The JSON kind seen (``string``, ``number``, ``boolean``, ``object``,
            ``array``).
        expected_kind: The definition's JSON kind, or ``unknown`` for an element it lacks.
        count: Resources of the batch carrying it.
    """

    resource_type: str
    json_path: str
    observed_kind: str
    expected_kind: str
    count: int

    @property
    def is_unknown_element(self) -> bool:
        """Whether the element is not in the definition (rather than of another kind)."""
        return self.expected_kind == UNKNOWN


def _kind(value: Any) -> str:
    return KIND_OF_TYPE.get(type(value), JsonKind.STRING).value


# Per element: (Python types needing no further look, kind of one value, repeated, the
# object's table or None, opaque). The first item is the fast path: most values are a
# primitive of the expected kind, or null, and are done with after one set lookup.
_Entry = tuple[frozenset[type], JsonKind, bool, "dict[str, _Entry] | None", bool]
_ALL_TYPES = frozenset(KIND_OF_TYPE)
_NONE_ONLY = frozenset({type(None)})


def _settled_types(
    kind: JsonKind, repeated: bool, has_table: bool, opaque: bool
) -> frozenset[type]:
    """The value types for which :func:`_check_object` finds nothing and enters nothing."""
    if opaque:
        return _ALL_TYPES
    if repeated or has_table:
        return _NONE_ONLY
    return frozenset(t for t, k in KIND_OF_TYPE.items() if k is kind or k is _NULL)


_compact: dict[int, dict[str, _Entry]] = {}


def _entries(model: type[BaseModel]) -> dict[str, _Entry]:
    """The model's element table as tuples (fast to unpack), memoised per datatype.

    The entry dict is registered before its children are filled in, so recursive datatypes
    (``Identifier.assigner`` -> ``Reference.identifier`` -> ``Identifier``) share one dict.
    """
    entries = _compact.get(id(model))
    if entries is not None:
        return entries
    entries = _compact[id(model)] = {}
    for name, spec in element_table(model).items():
        child = None if spec.model is None or spec.opaque else _entries(spec.model)
        settled = _settled_types(spec.kind, spec.repeated, child is not None, spec.opaque)
        entries[name] = (settled, spec.kind, spec.repeated, child, spec.opaque)
    return entries


def _check_object(
    obj: dict[str, Any], table: dict[str, _Entry], path: str, found: list[Shape]
) -> None:
    kind_of = _KIND_GET
    for key, value in obj.items():
        entry = table.get(key)
        if entry is None:
            found.append((f"{path}.{key}", _kind(value), UNKNOWN))
            continue
        if type(value) in entry[0]:
            continue
        _settled, kind, repeated, child, opaque = entry
        if opaque:
            continue
        observed = kind_of(type(value))
        if repeated:
            if observed is not _ARRAY:
                if observed is not _NULL:
                    found.append((f"{path}.{key}", _kind(value), _ARRAY.value))
                continue
            if child is None:
                for item in value:
                    item_kind = kind_of(type(item))
                    if item_kind is not kind and item_kind is not _NULL:
                        found.append((f"{path}.{key}", _kind(item), kind.value))
            else:
                inner = f"{path}.{key}"
                for item in value:
                    if type(item) is dict:
                        _check_object(item, child, inner, found)
                    elif item is not None:
                        found.append((inner, _kind(item), kind.value))
        elif observed is kind:
            if child is not None:
                _check_object(value, child, f"{path}.{key}", found)
        elif observed is not _NULL:
            found.append((f"{path}.{key}", _kind(value), kind.value))


_KIND_GET = KIND_OF_TYPE.get


def resource_shapes(resource_type: str, document: dict[str, Any]) -> list[Shape]:
    """The drifted shapes of one decoded resource (empty when it matches its definition)."""
    found: list[Shape] = []
    _check_object(document, _table(resource_type), resource_type, found)
    return found


_tables: dict[str, dict[str, _Entry]] = {}


def _table(resource_type: str) -> dict[str, _Entry]:
    table = _tables.get(resource_type)
    if table is None:
        table = _tables[resource_type] = _entries(model_for(resource_type))
    return table


def detect_documents(
    resource_type: str, documents: Iterable[dict[str, Any]]
) -> list[DriftObservation]:
    """Findings over decoded resources of one type; a resource counts once per shape.

    Args:
        resource_type: The type every document has.
        documents: Decoded resources.

    Returns:
        One observation per (path, observed kind, expected kind), sorted by path.
    """
    table = _table(resource_type)
    found_sets: list[frozenset[Shape]] = []
    for document in documents:
        found: list[Shape] = []
        _check_object(document, table, resource_type, found)
        if found:
            found_sets.append(frozenset(found))
    return observations_from_shapes(resource_type, found_sets)


def observations_from_shapes(
    resource_type: str, shape_sets: Iterable[frozenset[Shape]]
) -> list[DriftObservation]:
    """Findings from the drifted shapes of each resource (see :func:`resource_shapes`).

    For a walk done elsewhere (a parsing worker process walks each resource while it is
    decoded): one set per drifted resource; resources without drift need no entry.

    Returns:
        One observation per (path, observed kind, expected kind), sorted by path.
    """
    counts: Counter[Shape] = Counter()
    for shapes in shape_sets:
        counts.update(shapes)
    return [
        DriftObservation(resource_type, path, observed, expected, count)
        for (path, observed, expected), count in sorted(counts.items())
    ]


def detect_texts(resource_type: str, texts: Iterable[bytes]) -> list[DriftObservation]:
    """:func:`detect_documents` over resources given as JSON text (a landed page's lines).

    Texts that :func:`loaders.drift.conformance.conforms` says fit are not decoded or walked.
    """
    return detect_documents(
        resource_type,
        (orjson.loads(text) for text in texts if not conforms(resource_type, text)),
    )
