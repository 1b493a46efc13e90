"""A pydantic validation error turned into a JSON path and a reason code, without values.

pydantic's errors carry the offending ``input`` (and messages and context that may quote it).
Only two things are read here: the error's ``loc`` (field names and array indices) and its
``type`` (a fixed code such as ``string_type``). Both are filtered to the characters a FHIR
element name or a code can hold, so nothing from the resource can reach a path or a reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A FHIR element name (``birthDate``), or a primitive's extension sibling (``_birthDate``).
_ELEMENT = re.compile(r"_?[A-Za-z][A-Za-z0-9]{0,63}")
# pydantic's own location steps (root models, tagged unions), not element names.
_PYDANTIC_STEPS = frozenset({"root", "__root__"})
_CODE = re.compile(r"[a-z0-9_.]{1,64}")
_UNKNOWN_CODE = "unknown"

REASON_PREFIX = "fhir_validation:"


@dataclass(frozen=True, slots=True)
class Finding:
    """Why one resource is not valid FHIR R4B.

    Attributes:
        json_path: Where, from the resource type: ``Patient.name[1].given[0]``.
        code: pydantic's error type, e.g. ``string_type``, ``value_error``, ``missing``.
    """

    json_path: str
    code: str

    @property
    def reason(self) -> str:
        """The short reason code: ``fhir_validation:<code>``."""
        return f"{REASON_PREFIX}{self.code}"


def json_path(resource_type: str, location: Sequence[Any]) -> str:
    """``Type.element[index].element`` from a pydantic ``loc``; unknown steps are left out."""
    path = resource_type if _ELEMENT.fullmatch(resource_type) else "$"
    for step in location:
        if isinstance(step, bool):
            continue
        if isinstance(step, int):
            path += f"[{step}]"
        elif isinstance(step, str) and step not in _PYDANTIC_STEPS and _ELEMENT.fullmatch(step):
            path += f".{step}"
    return path


def error_code(error_type: Any) -> str:
    """pydantic's error type when it is a plain code; ``unknown`` otherwise."""
    if isinstance(error_type, str) and _CODE.fullmatch(error_type):
        return error_type
    return _UNKNOWN_CODE


def first_finding(resource_type: str, errors: Sequence[Mapping[str, Any]]) -> Finding:
    """The finding for the first of a ValidationError's ``errors()`` (the order pydantic gives).

    Args:
        resource_type: The resource's type, the path's first step.
        errors: ``ValidationError.errors()``; only ``loc`` and ``type`` are read.
    """
    if not errors:
        return Finding(json_path(resource_type, ()), _UNKNOWN_CODE)
    first = errors[0]
    return Finding(json_path(resource_type, first.get("loc", ())), error_code(first.get("type")))
