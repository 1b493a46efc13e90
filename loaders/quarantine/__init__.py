"""``fhir-elt quarantine``: list, show and retry quarantined resources (see retry.py)."""

from loaders.quarantine.records import QuarantineEntry, find_entry, read_entries, select_entries
from loaders.quarantine.retries import QUARANTINE_RETRIES, RetryRecord
from loaders.quarantine.retry import RetryReport, retry

__all__ = [
    "QUARANTINE_RETRIES",
    "QuarantineEntry",
    "RetryRecord",
    "RetryReport",
    "find_entry",
    "read_entries",
    "retry",
    "select_entries",
]
