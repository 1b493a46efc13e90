"""Turn a Bulk Data ``deleted`` file into rows that mark resources deleted in the raw tables.

Each line of a ``deleted`` file is a transaction Bundle whose entries carry
``request: {"method": "DELETE", "url": "Type/id"}`` (IG STU2, "deleted" array). For each entry
fhir-elt merges a *tombstone* row into the type's raw table: ``is_deleted = true``, a stub
resource ``{"resourceType", "id", "meta": {"lastUpdated": <transactionTime>}}`` and so a
``version_sort_key`` at the export's ``transactionTime``. The deletion happened after the
export's ``_since`` and at or before its ``transactionTime``, so the tombstone is newer than
any version stored before, and a later re-creation (stamped after ``transactionTime``) wins over
it in turn. dbt's ``fhir_current_versions`` drops deleted rows from staging.

Deletions land in ``_deleted`` landing pages, one ``DELETE`` Bundle per resource stamped with
the ``transactionTime`` (the form reconciliation's deletion marks use too), never under the
type's own folder, where a replay would read them as live resources. Unlike a reconciliation
mark, which keeps the last stored JSON, a tombstone's ``resource`` is the stub: the export
says only which resource is gone and by when.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from loaders.fhir import is_known_resource_type, table_name_for
from loaders.ingest import PageIngest
from loaders.resources import ParsedResource, Rejection, RejectReason, parse_resource_bytes
from loaders.warehouse.raw_tables import build_raw_batch

DELETED_PAGES = "_deleted"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


@dataclass(frozen=True, slots=True)
class Deletion:
    """One resource the server reports deleted."""

    resource_type: str
    id: str


def _reference(url: Any) -> tuple[str, str] | None:
    """``(type, id)`` of ``Type/id``, ``Type/id/_history/v`` or an absolute URL ending so."""
    if not isinstance(url, str):
        return None
    segments = [part for part in url.split("?", 1)[0].split("/") if part]
    if len(segments) >= 4 and segments[-2] == "_history":
        segments = segments[:-2]
    if len(segments) < 2:
        return None
    return segments[-2], segments[-1]


def parse_deleted_line(raw: bytes) -> list[Deletion] | Rejection:
    """The deletions one line (a Bundle) lists, or why the line cannot be read.

    Entries whose method is not DELETE are ignored (the IG allows none, but they delete
    nothing). A rejection names the JSON path, never a value.
    """
    try:
        bundle = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejection(RejectReason.INVALID_JSON, "$")
    if not isinstance(bundle, dict):
        return Rejection(RejectReason.NOT_AN_OBJECT, "$")
    if bundle.get("resourceType") != "Bundle":
        return Rejection(RejectReason.INVALID_BUNDLE, "resourceType")
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return Rejection(RejectReason.INVALID_BUNDLE, "entry", "Bundle")
    deletions = []
    for number, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            return Rejection(RejectReason.INVALID_BUNDLE, f"entry[{number}].request", "Bundle")
        if str(request.get("method", "")).upper() != "DELETE":
            continue
        reference = _reference(request.get("url"))
        where = f"entry[{number}].request.url"
        if reference is None:
            return Rejection(RejectReason.INVALID_BUNDLE, where, "Bundle")
        resource_type, resource_id = reference
        if not is_known_resource_type(resource_type):
            return Rejection(RejectReason.UNKNOWN_RESOURCE_TYPE, where, "Bundle")
        if not _FHIR_ID.fullmatch(resource_id):
            return Rejection(RejectReason.INVALID_ID, where, resource_type)
        deletions.append(Deletion(resource_type, resource_id))
    return deletions


def deletion_bundle(
    resource_type: str, resource_id: str, deleted_by: datetime | str | None
) -> bytes:
    """The landing line of one deletion: a transaction Bundle with one ``DELETE`` entry.

    The form the Bulk Data IG uses for deleted resources, and the one reconciliation's
    deletion marks land in, so every ``_deleted`` page reads the same way. A ``deleted_by``
    given as text (the export's ``transactionTime``) is kept verbatim, so a replay rebuilds the
    very tombstone (loaders/replay/deletions.py).
    """
    document: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction"}
    if isinstance(deleted_by, str):
        document["timestamp"] = deleted_by
    elif deleted_by is not None:
        document["timestamp"] = deleted_by.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    document["entry"] = [{"request": {"method": "DELETE", "url": f"{resource_type}/{resource_id}"}}]
    return orjson.dumps(document)


def tombstone(deletion: Deletion, deleted_by: str) -> ParsedResource:
    """The stub resource standing for a deleted one, stamped ``deleted_by`` (an instant)."""
    stub = orjson.dumps(
        {
            "resourceType": deletion.resource_type,
            "id": deletion.id,
            "meta": {"lastUpdated": deleted_by},
        }
    )
    parsed = parse_resource_bytes(stub)
    assert isinstance(parsed, ParsedResource), "a stub built from checked parts parses"
    return parsed


def land_tombstones(
    ingest: PageIngest,
    resource_type: str,
    tombstones: list[ParsedResource],
    request_ids: list[str | None],
    fetched_at: datetime,
) -> tuple[str, pa.Table] | None:
    """Land one page of tombstones of one type; return ``(raw table, rows that change it)``.

    Counted in the run like other rows (landed, merged or unchanged); a tombstone already
    stored (the same export read twice) is dropped by the version filter.
    """
    if not tombstones:
        return None
    lines = [
        deletion_bundle(stub.resource_type, stub.id, orjson.loads(stub.text)["meta"]["lastUpdated"])
        for stub in tombstones
    ]
    page = ingest.zone.write_page(
        DELETED_PAGES, lines, fetched_at, request_ids=request_ids, deletes="tombstone"
    )
    batch = build_raw_batch(
        tombstones,
        source_system=ingest.zone.source_system,
        fetched_at=fetched_at,
        request_ids=request_ids,
        landing_file=page.landing_file,
    )
    index = batch.schema.get_field_index("is_deleted")
    deleted = pa.array([True] * batch.num_rows, pa.bool_())
    batch = batch.set_column(index, batch.schema.field(index), deleted)
    table = table_name_for(resource_type)
    changed = ingest.version_filter.keep_newer(table, batch)
    run = ingest.run
    run.landing_pages += 1
    run.resources_landed += len(tombstones)
    run.resources_merged += changed.num_rows
    run.resources_unchanged += len(tombstones) - changed.num_rows
    return (table, changed) if changed.num_rows else None
