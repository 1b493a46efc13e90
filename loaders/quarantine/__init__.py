"""``fhir-elt quarantine``: list, show and retry quarantined resources (see retry.py).

Names are imported on first use (:mod:`loaders.lazy_names`). The retry function is
``loaders.quarantine.retry.retry`` (the package attribute ``retry`` is that module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loaders.lazy_names import lazy_names

if TYPE_CHECKING:
    from loaders.quarantine.records import (
        QuarantineEntry,
        find_entry,
        read_entries,
        select_entries,
    )
    from loaders.quarantine.retries import QUARANTINE_RETRIES, RetryRecord
    from loaders.quarantine.retry import RetryReport

__all__ = [
    "QUARANTINE_RETRIES",
    "QuarantineEntry",
    "RetryRecord",
    "RetryReport",
    "find_entry",
    "read_entries",
    "select_entries",
]

__getattr__ = lazy_names(
    __name__,
    {
        "QuarantineEntry": "loaders.quarantine.records",
        "find_entry": "loaders.quarantine.records",
        "read_entries": "loaders.quarantine.records",
        "select_entries": "loaders.quarantine.records",
        "QUARANTINE_RETRIES": "loaders.quarantine.retries",
        "RetryRecord": "loaders.quarantine.retries",
        "RetryReport": "loaders.quarantine.retry",
    },
)
