"""Every element FHIR R4 defines, with the JSON kind of its value, read from ``fhir.resources.R4B``.

The schema-drift check (:mod:`loaders.drift`) compares what a page carries with these tables.
They are derived from the R4B pydantic models, never written by hand:

- one :class:`ElementSpec` per JSON name a model accepts: choice types come expanded
  (``valueQuantity``, ``valueString``...), repeated elements are marked, and the JSON kind of
  one value is ``string``, ``number``, ``boolean`` or ``object``;
- extensions (``extension``, ``modifierExtension``, the ``_birthDate`` companions of
  primitives), ``contained`` resources and elements typed as a whole resource
  (``Bundle.entry.resource``) are *opaque*: they are legitimate and not looked into;
- a table is built per datatype and memoised (:func:`element_table`), so recursive datatypes
  (``Identifier.assigner`` is a ``Reference``, whose ``identifier`` is an ``Identifier``) cost
  one table each; :func:`element_paths` lists a type's JSON paths down to a depth cap.
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

import fhir.resources.R4B as r4b_models
from fhir.resources.R4B.resource import Resource
from fhir_core.types import FhirBase
from pydantic import BaseModel


class JsonKind(StrEnum):
    """The JSON kind of a value, as the drift check names it."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"
    NULL = "null"


# JSON kind of a decoded value, by its exact Python type (orjson / json decode to these).
KIND_OF_TYPE: dict[type, JsonKind] = {
    str: JsonKind.STRING,
    int: JsonKind.NUMBER,
    float: JsonKind.NUMBER,
    bool: JsonKind.BOOLEAN,
    dict: JsonKind.OBJECT,
    list: JsonKind.ARRAY,
    type(None): JsonKind.NULL,
}

# Python types the models give primitives, and the JSON kind FHIR's JSON format uses for them.
_PRIMITIVE_KINDS: dict[type, JsonKind] = {
    bool: JsonKind.BOOLEAN,
    int: JsonKind.NUMBER,
    float: JsonKind.NUMBER,
    decimal.Decimal: JsonKind.NUMBER,
    str: JsonKind.STRING,
    bytes: JsonKind.STRING,
    datetime.date: JsonKind.STRING,
    datetime.datetime: JsonKind.STRING,
    datetime.time: JsonKind.STRING,
}
# Elements whose content is legitimately free: extensions and contained resources.
_OPAQUE_NAMES = frozenset({"extension", "modifierExtension", "contained"})
# A field fhir.resources adds for its own round-tripping: accepted, not looked into.
_COMMENTS = "fhir_comments"
_PRIMITIVE_EXTENSION = "FHIRPrimitiveExtensionType"
_RESOURCE_TYPE = "ResourceType"


@dataclass(frozen=True, slots=True)
class ElementSpec:
    """One element of a model, as it appears in JSON.

    Attributes:
        name: The JSON name (``birthDate``, ``valueQuantity``, ``_birthDate``).
        kind: The JSON kind of one value (of each item when ``repeated``).
        repeated: Whether the JSON value is an array.
        datatype: The FHIR datatype or model name (``date``, ``HumanName``, ``Extension``).
        model: The model of an object value, looked into by the drift check; None for
            primitives and opaque elements.
        opaque: Extensions, primitive extension companions, contained or embedded resources:
            legitimate content the check does not look into.
    """

    name: str
    kind: JsonKind
    repeated: bool
    datatype: str
    model: type[BaseModel] | None = None
    opaque: bool = False

    @property
    def expected(self) -> str:
        """The JSON kind of the whole value: ``array`` for repeated elements."""
        return JsonKind.ARRAY.value if self.repeated else self.kind.value


def model_for(resource_type: str) -> type[BaseModel]:
    """The R4B model class of a resource type (``Patient``) or datatype (``HumanName``)."""
    return typing.cast(type[BaseModel], r4b_models.get_fhir_model_class(resource_type))


def _strip_optional(annotation: Any) -> Any:
    """``X | None`` and ``Optional[X]`` -> ``X``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    return annotation


def _spec(name: str, annotation: Any) -> ElementSpec:
    annotation = _strip_optional(annotation)
    repeated = typing.get_origin(annotation) in (list, typing.List)  # noqa: UP006
    if repeated:
        annotation = _strip_optional(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        datatype = type(metadata[0]).__name__.lower() if metadata else base.__name__
        kind = _PRIMITIVE_KINDS.get(base, JsonKind.STRING)
        return ElementSpec(name, kind, repeated, datatype)
    if isinstance(annotation, type) and annotation in _PRIMITIVE_KINDS:
        datatype = "boolean" if annotation is bool else annotation.__name__
        return ElementSpec(name, _PRIMITIVE_KINDS[annotation], repeated, datatype)
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        type_name = annotation.__name__.removesuffix("Type")
        if annotation.__name__ == _PRIMITIVE_EXTENSION:
            return ElementSpec(name, JsonKind.OBJECT, repeated, "Element", opaque=True)
        if annotation.__name__ == _RESOURCE_TYPE or name in _OPAQUE_NAMES:
            return ElementSpec(name, JsonKind.OBJECT, repeated, type_name, opaque=True)
        model = getattr(annotation, "_model_klass", None)
        if isinstance(model, str):
            module_name, _, class_name = model.rpartition(".")
            model = getattr(importlib.import_module(module_name), class_name)
        if model is None:
            model = model_for(type_name)
        return ElementSpec(name, JsonKind.OBJECT, repeated, type_name, model)
    # Anything else (a union the models do not use today): accept any object, look no deeper.
    return ElementSpec(name, JsonKind.OBJECT, repeated, "unknown", opaque=True)


@cache
def element_table(model: type[BaseModel]) -> dict[str, ElementSpec]:
    """The elements of one model (resource, datatype or backbone element) by JSON name.

    ``resourceType`` is added for resources; ``fhir_comments`` is accepted as opaque.
    """
    table: dict[str, ElementSpec] = {}
    for field_name, field in model.model_fields.items():
        name = field.alias or field_name
        if name == _COMMENTS:
            table[name] = ElementSpec(name, JsonKind.STRING, False, "comments", opaque=True)
            continue
        table[name] = _spec(name, field.annotation)
    if issubclass(model, Resource):
        table["resourceType"] = ElementSpec("resourceType", JsonKind.STRING, False, "code")
    return table


@cache
def resource_element_table(resource_type: str) -> dict[str, ElementSpec]:
    """:func:`element_table` of a resource type's model."""
    return element_table(model_for(resource_type))


def element_paths(resource_type: str, max_depth: int = 4) -> Iterator[tuple[str, ElementSpec]]:
    """Every JSON path of a resource type down to ``max_depth`` elements below the root.

    Paths read like FHIRPath without indices (``Patient.name.family``); opaque elements are
    listed but not entered. The cap keeps recursive datatypes finite.
    """

    def walk(model: type[BaseModel], path: str, depth: int) -> Iterator[tuple[str, ElementSpec]]:
        for name, spec in element_table(model).items():
            child = f"{path}.{name}"
            yield child, spec
            if spec.model is not None and not spec.opaque and depth < max_depth:
                yield from walk(spec.model, child, depth + 1)

    yield from walk(model_for(resource_type), resource_type, 1)
