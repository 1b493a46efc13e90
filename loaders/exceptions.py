"""Exceptions raised by fhir-elt.

The tree, so callers can catch at the depth they need::

    FhirEltError                    anything fhir-elt raises on purpose
    ├── ConfigError                 a setting is missing or malformed
    ├── InputError                  an input path cannot be read as FHIR files at all
    ├── LandingError                the landing zone cannot be written or read
    │   └── LandingIntegrityError   a landing file no longer matches its manifest row
    └── WarehouseError              the warehouse refused a merge or a query

Messages name what was wrong and where (file, line, resource type, JSON path). They never
carry a resource payload or an identifier: a resource that cannot be loaded is quarantined
with its id in the warehouse, and the message points there.
"""

from __future__ import annotations


class FhirEltError(Exception):
    """Base class of every error fhir-elt raises on purpose."""


class ConfigError(FhirEltError):
    """A setting is missing or malformed."""


class InputError(FhirEltError):
    """An input path does not exist or holds nothing fhir-elt can read."""


class LandingError(FhirEltError):
    """The landing zone cannot be written or read."""


class LandingIntegrityError(LandingError):
    """A landing file's bytes no longer match the sha256 recorded in its manifest row."""


class WarehouseError(FhirEltError):
    """The warehouse refused a merge or a query."""
