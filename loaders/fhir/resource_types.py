"""The FHIR R4 resource types fhir-elt accepts, and the raw table each one lands in.

The list of valid types is read from ``fhir.resources.R4B`` (the R4 models; the package's
default models are R5), so a resource type that R4 does not define is rejected by name rather
than landing in a table nobody models.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

import fhir.resources.R4B as r4b_models
from fhir.resources.R4B.resource import Resource

# Tables that always exist after a load, even when empty, so dbt sources never point at nothing.
CORE_RESOURCE_TYPES: tuple[str, ...] = (
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationDispense",
    "Procedure",
    "Immunization",
    "AllergyIntolerance",
    "Organization",
    "Location",
    "Practitioner",
)

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


@cache
def _r4_module_names() -> frozenset[str]:
    """Lower-case module names of ``fhir.resources.R4B`` (one module per resource or datatype)."""
    return frozenset(module.name for module in pkgutil.iter_modules(r4b_models.__path__))


@cache
def is_known_resource_type(resource_type: str) -> bool:
    """Whether ``resource_type`` is a resource type FHIR R4 defines (case-sensitive).

    Args:
        resource_type: The value of a resource's ``resourceType`` element.

    Returns:
        True for names such as ``Patient`` or ``MedicationRequest``; False for unknown names,
        wrong casing (``patient``) and datatypes (``HumanName``).
    """
    if not resource_type.isalnum() or not resource_type[0].isupper():
        return False
    if resource_type.lower() not in _r4_module_names():
        return False
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    model = getattr(module, resource_type, None)
    return isinstance(model, type) and issubclass(model, Resource)


def table_name_for(resource_type: str) -> str:
    """The raw table name of a resource type: ``MedicationRequest`` -> ``medication_request``."""
    return _CAMEL_BOUNDARY.sub("_", resource_type).lower()
