"""The quarantine as an operator sees it: rows of ``quarantine`` with an id and a status.

A quarantined resource is identified by the key of its ``quarantine`` row (run, source file,
line, JSON path); its short id is the first 12 hex digits of that key's sha256, stable across
calls and free of any identifier. Its status comes from ``quarantine_retries``: ``resolved``
once a retry merged it (the row itself is never deleted), else ``open``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from loaders.exceptions import ConfigError, WarehouseError
from loaders.quarantine.retries import QUARANTINE_RETRIES
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.operational import QUARANTINE
from loaders.warehouse.raw_tables import RAW_DATASET

ID_LENGTH = 12
MIN_ID_PREFIX = 6
OPEN = "open"
RESOLVED = "resolved"

# What each reason means, for ``quarantine show``; a sentence, never a value.
EXPLANATIONS = {
    "unreadable_file": "the file could not be read to its end (corrupt gzip or I/O error); "
    "no bytes were kept, fix or re-export the file and load it again",
    "invalid_utf8": "the bytes are not valid UTF-8",
    "invalid_json": "the line is not valid JSON (truncated, or several documents on one line)",
    "not_an_object": "the JSON is not an object (an array, string or number)",
    "missing_resource_type": "the object has no resourceType",
    "unknown_resource_type": "resourceType is not a type FHIR R4 defines",
    "missing_id": "the resource has no id",
    "invalid_id": "the id breaks the FHIR id rules (1-64 of A-Z a-z 0-9 - .)",
    "invalid_last_updated": "meta.lastUpdated is not a FHIR instant with a time zone",
    "invalid_bundle": "the Bundle's structure is malformed at the JSON path",
    "unsupported_bundle_type": "the Bundle's type is not one fhir-elt loads",
    "bundle_entry_without_resource": "a Bundle entry has no resource",
    "invalid_fhir_resource": "the resource is not valid against its fhir.resources.R4B model "
    "(validation sample or full) at the JSON path: a wrong JSON type, a malformed date or "
    "code, an unknown or missing element",
    "too_deeply_nested": "the resource nests objects and arrays deeper than fhir-elt can "
    "write JSON (254 levels); no FHIR resource needs that",
}


def quarantine_id(run_id: str, source_file: str, line_number: int, json_path: str) -> str:
    """The short id of a quarantine row, from its key."""
    key = "\x1f".join((run_id, source_file, str(line_number), json_path))
    return hashlib.sha256(key.encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One ``quarantine`` row, its id, where its bytes are, and its retry status.

    Attributes:
        landing_line: The line of ``landing_file`` holding its bytes; for rows recorded before
            ``landing_line`` existed, its position among the page's rows ordered by source file
            and line (exact for file loads).
        retries: How many retries have read it.
        resolved_by: The retry run that merged it, or None while open.
    """

    id: str
    run_id: str
    source_system: str
    source_file: str
    line_number: int
    resource_type: str | None
    reason: str
    json_path: str
    landing_file: str | None
    landing_line: int | None
    quarantined_at: datetime
    retries: int
    resolved_by: str | None

    @property
    def status(self) -> str:
        """``resolved`` or ``open``."""
        return RESOLVED if self.resolved_by else OPEN


def _columns(connection: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = connection.execute(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ?",
        [RAW_DATASET, table],
    ).fetchall()
    return {name for (name,) in rows}


def _query(connection: duckdb.DuckDBPyConnection) -> str:
    has_line = "landing_line" in _columns(connection, QUARANTINE)
    position = (
        "row_number() over (partition by q.landing_file order by q.source_file, q.line_number)"
    )
    line = f"coalesce(q.landing_line, {position})" if has_line else position
    retried = bool(_columns(connection, QUARANTINE_RETRIES))
    retries = (
        f"""
        left join (
            select run_id, source_file, line_number, json_path, count(*) as retries,
                min(case when outcome = 'resolved' then retry_run_id end) as resolved_by
            from "{RAW_DATASET}"."{QUARANTINE_RETRIES}"
            group by run_id, source_file, line_number, json_path
        ) as r
            on r.run_id = q.run_id and r.source_file = q.source_file
            and r.line_number = q.line_number and r.json_path = q.json_path
        """
        if retried
        else ""
    )
    counts = "coalesce(r.retries, 0), r.resolved_by" if retried else "0, null"
    return f"""
        select q.run_id, q.source_system, q.source_file, q.line_number, q.resource_type,
            q.reason, q.json_path, q.landing_file,
            case when q.landing_file is null then null else {line} end,
            q.quarantined_at, {counts}
        from "{RAW_DATASET}"."{QUARANTINE}" as q {retries}
        order by q.quarantined_at, q.source_file, q.line_number
    """


def read_entries(database: Path) -> list[QuarantineEntry]:
    """Every quarantine row with its id and status, oldest first.

    Raises:
        WarehouseError: The warehouse or its quarantine table cannot be read.
    """
    if not database.exists():
        raise WarehouseError(f"no warehouse at {database}")
    try:
        with connect_warehouse(database, read_only=True) as connection:
            if not _columns(connection, QUARANTINE):
                return []
            rows = connection.execute(_query(connection)).fetchall()
    except duckdb.Error as error:
        raise WarehouseError(
            f"cannot read raw_fhir.quarantine from {database}: {type(error).__name__}"
        ) from error
    return [_entry(row) for row in rows]


def _entry(row: Sequence[Any]) -> QuarantineEntry:
    run_id, source_system, source_file, line_number = row[0], row[1], row[2], row[3]
    return QuarantineEntry(
        id=quarantine_id(run_id, source_file, line_number, row[6]),
        run_id=run_id,
        source_system=source_system,
        source_file=source_file,
        line_number=line_number,
        resource_type=row[4],
        reason=row[5],
        json_path=row[6],
        landing_file=row[7],
        landing_line=row[8],
        quarantined_at=row[9].astimezone(UTC),
        retries=row[10],
        resolved_by=row[11],
    )


def select_entries(
    entries: Sequence[QuarantineEntry],
    *,
    source_system: str | None = None,
    reason: str | None = None,
    open_only: bool = False,
) -> list[QuarantineEntry]:
    """The entries matching every filter given."""
    return [
        entry
        for entry in entries
        if (source_system is None or entry.source_system == source_system)
        and (reason is None or entry.reason == reason)
        and (not open_only or entry.status == OPEN)
    ]


def find_entry(entries: Sequence[QuarantineEntry], wanted: str) -> QuarantineEntry:
    """The entry whose id is ``wanted`` or starts with it (at least 6 characters).

    Raises:
        ConfigError: No entry, or several, match.
    """
    wanted = wanted.strip().lower()
    if len(wanted) < MIN_ID_PREFIX:
        raise ConfigError(f"a quarantine id needs at least {MIN_ID_PREFIX} characters")
    matches = [entry for entry in entries if entry.id.startswith(wanted)]
    if not matches:
        raise ConfigError(f"no quarantined resource has the id {wanted}")
    if len(matches) > 1:
        raise ConfigError(f"the id {wanted} matches {len(matches)} entries; give more of it")
    return matches[0]
