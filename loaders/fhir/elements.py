"""Which top-level elements FHIR R4 defines for a resource type, read from ``fhir.resources.R4B``.

An element a page carries that the definition does not know (``birth_date`` where R4 says
``birthDate``) is the signature of a renamed field: left alone, the staging model reading
``birthDate`` would quietly turn null. The check is a set difference on each resource's keys,
cheap enough for every resource of every page. The REST search uses it to stop a type before
its page is landed (:mod:`loaders.rest.tasks`, following the source's drift policy); nested
paths and datatype changes are checked for every loader by :mod:`loaders.drift`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from functools import cache

# Keys a resource may carry that are not model fields.
_ALWAYS_ALLOWED = frozenset({"resourceType"})
# A model field that fhir.resources adds for its own round-tripping; not an R4 element.
_NOT_ELEMENTS = frozenset({"fhir_comments"})


@cache
def top_level_elements(resource_type: str) -> frozenset[str]:
    """JSON names of the elements R4 defines at the top of ``resource_type``.

    Includes choice-type variants (``deceasedBoolean``, ``deceasedDateTime``) and primitive
    extension companions (``_birthDate``).

    Args:
        resource_type: A type for which ``loaders.fhir.is_known_resource_type`` is true.
    """
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    model = getattr(module, resource_type)
    names = {field.alias or name for name, field in model.model_fields.items()}
    return frozenset(names - _NOT_ELEMENTS) | _ALWAYS_ALLOWED


def unknown_elements(resource_type: str, keys: Iterable[str]) -> list[str]:
    """The keys of a resource that its R4 definition does not have, sorted."""
    known = top_level_elements(resource_type)
    return sorted(key for key in keys if key not in known)
