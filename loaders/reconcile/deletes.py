"""Deletion marks: how a resource gone from the source is recorded in the raw tables.

Many FHIR servers never report deletions, so the reconciliation proves one instead: the
resource is stored as current, the source's ``_lastUpdated`` window no longer lists it, and a
search by ``_id`` no longer returns it. It is then marked deleted by merging a new version of
its row through the normal path (landing page, version filter, ``runs.merge``), never by
updating the warehouse in place:

- ``is_deleted`` true; ``resource``, ``version_id`` and ``last_updated`` kept from the stored
  version (the last state the source showed; history keeps it, staging drops the row);
- ``fetched_at`` is when the deletion was noticed (the raw contract's "deleted noticed at");
  ``request_id`` is the reconciliation run's id; ``landing_file`` the ``_deleted`` page that
  records it;
- ``content_hash`` is ``sha256("deleted:" + the stored hash)``, so the version filter sees a
  change;
- ``version_sort_key`` is the stored key plus ``|deleted``. The filter keeps an incoming row
  only when its key is greater than the stored one, and keys compare as strings
  (``lastUpdated|versionId|hash``). A key extended by a suffix sorts right after the key
  itself and before every key that is greater, so the mark beats the version it replaces (and
  any replay of that version or older ones from the landing zone) and loses to every later
  real version: a re-creation or an update on the source has a later ``lastUpdated`` (or a
  higher ``versionId``) and takes the row back, not deleted.

The landing page (pseudo-type ``_deleted``, beside ``_quarantine``) holds one line per
deletion in the form FHIR Bulk Data uses for deleted resources: a ``transaction`` Bundle with
one ``DELETE`` entry whose ``request.url`` is ``Type/id``, stamped with when it was noticed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import orjson
import pyarrow as pa

from loaders.reconcile.warehouse import StoredRow
from loaders.rest.windows import fhir_instant
from loaders.warehouse.raw_tables import RAW_SCHEMA

DELETED_PAGES = "_deleted"
DELETION_SUFFIX = "|deleted"


def deletion_sort_key(stored_key: str) -> str:
    """The version sort key of a deletion mark: just above ``stored_key``, below any later."""
    return stored_key + DELETION_SUFFIX


def deletion_hash(stored_hash: str) -> str:
    """The content hash of a deletion mark (differs from every real version's)."""
    return hashlib.sha256(f"deleted:{stored_hash}".encode()).hexdigest()


def deletion_bundle(resource_type: str, resource_id: str, noticed_at: datetime) -> bytes:
    """The landing line recording one deletion (a Bulk Data style DELETE transaction)."""
    return orjson.dumps(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "timestamp": fhir_instant(noticed_at),
            "entry": [{"request": {"method": "DELETE", "url": f"{resource_type}/{resource_id}"}}],
        }
    )


def deletion_rows(
    resource_type: str,
    stored: Sequence[StoredRow],
    *,
    source_system: str,
    noticed_at: datetime,
    run_id: str,
    landing_file: str,
) -> pa.Table:
    """Raw rows marking ``stored`` deleted (see the module docstring for each column)."""
    count = len(stored)
    return pa.Table.from_pydict(
        {
            "source_system": [source_system] * count,
            "resource_type": [resource_type] * count,
            "id": [row.id for row in stored],
            "version_id": [row.version_id for row in stored],
            "last_updated": [row.last_updated for row in stored],
            "resource": [row.resource for row in stored],
            "content_hash": [deletion_hash(row.content_hash) for row in stored],
            "version_sort_key": [deletion_sort_key(row.version_sort_key) for row in stored],
            "fetched_at": [noticed_at] * count,
            "request_id": [run_id] * count,
            "landing_file": [landing_file] * count,
            "is_deleted": [True] * count,
        },
        schema=RAW_SCHEMA,
    )
