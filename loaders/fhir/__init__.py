"""FHIR R4 knowledge the loaders need: resource types, table names, ids, instants."""

from loaders.fhir.resource_types import (
    CORE_RESOURCE_TYPES,
    is_known_resource_type,
    table_name_for,
)

__all__ = ["CORE_RESOURCE_TYPES", "is_known_resource_type", "table_name_for"]
