"""A fast first look for schema drift: does a resource's JSON text fit its FHIR R4 definition?

:func:`conforms` decodes the text with msgspec against typed structs generated from the same
element tables the drift walk uses (:mod:`loaders.fhir.element_types`), in compiled code and
without building a Python object per element the walk would visit. Almost every resource
conforms, and costs about a third of the walk (``bench/drift_check.py``); only a resource that
does not is walked (:func:`loaders.drift.detector.resource_shapes`) to name its findings.

The structs accept exactly what the walk accepts, so a resource conforms if and only if the
walk finds nothing (``tests/unit/test_drift_conformance.py`` checks both ways):

- an object's keys are the element's JSON names, no other (``forbid_unknown_fields``);
- ``null`` is accepted for every element and for every item of a repeated one;
- a primitive has the JSON kind FHIR gives it (a number is ``int | float``, never ``bool``);
- opaque elements (extensions, ``_birthDate`` companions, contained resources) accept
  anything, unread (:class:`msgspec.Raw`).

Whatever msgspec refuses for another reason (text it cannot read) only means the walk
decides: :func:`conforms` may say False where the walk finds nothing, never
True where it finds something.
"""

from __future__ import annotations

import itertools
import sys
import types
from typing import Any

import msgspec
from pydantic import BaseModel

from loaders.fhir.element_types import JsonKind, element_table, model_for

# Generated structs live in this module, so that their string annotations (recursive
# datatypes: Identifier.assigner -> Reference.identifier -> Identifier) resolve.
_MODULE = types.ModuleType(f"{__name__}._structs")
sys.modules[_MODULE.__name__] = _MODULE

_PRIMITIVE = {
    JsonKind.STRING: "str",
    JsonKind.NUMBER: "int | float",
    JsonKind.BOOLEAN: "bool",
    JsonKind.OBJECT: "dict",  # an object the tables give no model: any object, as the walk
}
_struct_names: dict[type[BaseModel], str] = {}
_serial = itertools.count()
_decoders: dict[str, msgspec.json.Decoder[Any]] = {}


def _struct_name(model: type[BaseModel]) -> str:
    """The name (in the generated module) of the struct for ``model``, generated if new."""
    name = _struct_names.get(model)
    if name is not None:
        return name
    name = _struct_names[model] = f"{model.__name__}_{next(_serial)}"
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for number, (json_name, spec) in enumerate(element_table(model).items()):
        field = f"f{number}"  # JSON names are not all identifiers (_birthDate, class)
        rename[field] = json_name
        if spec.opaque:
            fields.append((field, msgspec.Raw, msgspec.Raw(b"null")))
            continue
        kind = _struct_name(spec.model) if spec.model is not None else _PRIMITIVE[spec.kind]
        annotation = f"list[{kind} | None] | None" if spec.repeated else f"{kind} | None"
        fields.append((field, annotation, None))
    struct = msgspec.defstruct(
        name,
        fields,
        module=_MODULE.__name__,
        rename=rename,
        forbid_unknown_fields=True,
        gc=False,
    )
    setattr(_MODULE, name, struct)
    return name


def _decoder(resource_type: str) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(resource_type)
    if decoder is None:
        struct = getattr(_MODULE, _struct_name(model_for(resource_type)))
        decoder = _decoders[resource_type] = msgspec.json.Decoder(struct)
    return decoder


def conforms(resource_type: str, text: bytes) -> bool:
    """Whether the JSON ``text`` of a ``resource_type`` resource fits its definition.

    Args:
        resource_type: A resource type FHIR R4 defines (``Patient``).
        text: The resource as JSON.
    """
    try:
        _decoder(resource_type).decode(text)
    except msgspec.DecodeError:  # a ValidationError, or e.g. nested past msgspec's limit
        return False
    return True
