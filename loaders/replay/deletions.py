"""Replay a ``_deleted`` landing page: the same deletion rows the live run merged.

A ``_deleted`` page holds one ``DELETE`` transaction Bundle per line, written by one of two
producers, and its manifest row says which (``deletes``):

- ``mark`` (reconciliation, loaders/reconcile/deletes.py): the resource's stored row, as it
  stands in the warehouse when the page is reached, is marked deleted (hash and sort key
  derived from the stored ones). Replayed in landing order, the stored row is the one the
  live run saw. A resource not stored, or already deleted, is left as it is (the live run
  marked only current rows).
- ``tombstone`` (Bulk Data, loaders/bulk/deleted.py): a stub resource stamped with the Bundle's
  ``timestamp`` (the export's ``transactionTime``).

Manifests written before ``deletes`` was recorded are read by the Bundle's stamp: a
reconciliation stamps the moment it noticed the deletion, which is also the page's
``created_at``; a Bulk tombstone carries the export's ``transactionTime`` instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from loaders.bulk.deleted import Deletion, parse_deleted_line, tombstone
from loaders.fhir import table_name_for
from loaders.landing import LandingPage
from loaders.reconcile.deletes import deletion_rows
from loaders.reconcile.warehouse import StoredRow
from loaders.rest.windows import fhir_instant
from loaders.warehouse.raw_tables import RAW_DATASET, build_raw_batch
from loaders.warehouse.version_filter import DuckDBVersionFilter

MARK = "mark"
TOMBSTONE = "tombstone"


def _stamp(line: bytes) -> str | None:
    document = orjson.loads(line)
    stamp = document.get("timestamp") if isinstance(document, dict) else None
    return stamp if isinstance(stamp, str) else None


def _mode(page: LandingPage, first_line: bytes) -> str:
    if page.deletes in (MARK, TOMBSTONE):
        return page.deletes
    return MARK if _stamp(first_line) == fhir_instant(page.created_at) else TOMBSTONE


def _stored(
    version_filter: DuckDBVersionFilter, source_system: str, resource_type: str, ids: list[str]
) -> list[StoredRow]:
    """The current, non-deleted rows of ``ids`` in the warehouse being rebuilt."""
    table = table_name_for(resource_type)
    connection = version_filter.connection
    if connection is None or not version_filter.has_table(table):
        return []
    rows = connection.execute(
        f"""
        select id, version_id, last_updated, cast(resource as varchar), content_hash,
            version_sort_key
        from "{RAW_DATASET}"."{table}"
        where source_system = ? and not coalesce(is_deleted, false) and list_contains(?, id)
        """,
        [source_system, ids],
    ).fetchall()
    by_id = {row[0]: StoredRow(*row) for row in rows}
    return [by_id[resource_id] for resource_id in ids if resource_id in by_id]


@dataclass(slots=True)
class DeletionReplay:
    """What one ``_deleted`` page gives a replay.

    Attributes:
        batches: ``(raw table, rows that passed the version filter, deletions read)`` per type.
        refused: Lines (or entries without a stamp) that cannot be read as deletions.
    """

    batches: list[tuple[str, pa.Table, int]] = field(default_factory=list)
    refused: int = 0


def replay_deletions(
    page: LandingPage,
    lines: Sequence[bytes],
    request_ids: Sequence[str | None],
    version_filter: DuckDBVersionFilter,
    types: tuple[str, ...] = (),
) -> DeletionReplay:
    """The deletion rows of one ``_deleted`` page, filtered against the warehouse."""
    result = DeletionReplay()
    if not lines:
        return result
    mode = _mode(page, lines[0])
    by_type: dict[str, list[tuple[Deletion, str | None, str | None]]] = defaultdict(list)
    for line, request_id in zip(lines, request_ids, strict=True):
        parsed = parse_deleted_line(line)
        if not isinstance(parsed, list):
            result.refused += 1
            continue
        stamp = _stamp(line)
        for deletion in parsed:
            if not types or deletion.resource_type in types:
                by_type[deletion.resource_type].append((deletion, request_id, stamp))
    for resource_type, entries in by_type.items():
        table = table_name_for(resource_type)
        if mode == MARK:
            ids = list(dict.fromkeys(deletion.id for deletion, _, _ in entries))
            batch = deletion_rows(
                resource_type,
                _stored(version_filter, page.source_system, resource_type, ids),
                source_system=page.source_system,
                noticed_at=page.created_at,
                run_id=entries[0][1] or page.run_id,
                landing_file=page.landing_file,
            )
        else:
            stamped = [(deletion, rid, stamp) for deletion, rid, stamp in entries if stamp]
            result.refused += len(entries) - len(stamped)
            batch = _tombstones(page, stamped)
        result.batches.append((table, version_filter.keep_newer(table, batch), len(entries)))
    return result


def _tombstones(
    page: LandingPage, stamped: list[tuple[Deletion, str | None, str | None]]
) -> pa.Table:
    batch = build_raw_batch(
        [tombstone(deletion, stamp) for deletion, _, stamp in stamped if stamp],
        source_system=page.source_system,
        fetched_at=page.created_at,
        request_ids=[request_id for _, request_id, _ in stamped],
        landing_file=page.landing_file,
    )
    index = batch.schema.get_field_index("is_deleted")
    deleted = pa.array([True] * batch.num_rows, pa.bool_())
    return batch.set_column(index, batch.schema.field(index), deleted)
