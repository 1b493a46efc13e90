"""Optional validation of every (or a sample of) resource against ``fhir.resources.R4B``.

``mode`` parses the setting; ``errors`` turns a pydantic error into a JSON path and a code
without values; ``check`` validates texts (in pool workers); ``pool`` runs pages on all cores.
:class:`loaders.ingest.PageIngest` quarantines what a :class:`Validator` finds invalid.
"""

from loaders.validation.errors import Finding, first_finding, json_path
from loaders.validation.mode import (
    FULL,
    OFF,
    ValidationKind,
    ValidationMode,
    parse_validation_mode,
)
from loaders.validation.pool import (
    Invalid,
    Validator,
    default_workers,
    shutdown_pools,
    validator_for,
)

__all__ = [
    "FULL",
    "OFF",
    "Finding",
    "Invalid",
    "ValidationKind",
    "ValidationMode",
    "Validator",
    "default_workers",
    "first_finding",
    "json_path",
    "parse_validation_mode",
    "shutdown_pools",
    "validator_for",
]
