"""Operational retention: ``request_log`` rows older than the retention period.

``request_log`` holds one row per HTTP attempt and is by far the largest operational table. A
row is deleted when its attempt started more than ``days`` days before ``now``, unless a current
raw row still names its request (``request_id``): those stay, so every current raw row keeps
its request's path template, status and time. Everything else is kept forever: ``load_runs``
(one row per run), ``landing_manifest`` (one per page, with its sha256), ``quarantine`` and the
other check tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from loaders.exceptions import WarehouseError
from loaders.retention.landing import raw_tables_with
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.operational import REQUEST_LOG
from loaders.warehouse.raw_tables import RAW_DATASET


@dataclass(frozen=True, slots=True)
class OperationalPlan:
    """What an operational retention pass deletes.

    Attributes:
        cutoff: Rows that started before this may go.
        request_log_rows: ``request_log`` rows to delete (or deleted, once applied).
        kept_for_lineage: Older rows kept because a current raw row names their request.
    """

    cutoff: datetime
    request_log_rows: int
    kept_for_lineage: int


def operational_retention(
    database: Path, days: int, now: datetime, *, apply: bool = False
) -> OperationalPlan:
    """Count (and with ``apply``, delete in one transaction) the expired ``request_log`` rows.

    Raises:
        WarehouseError: The warehouse cannot be read or written.
    """
    cutoff = now - timedelta(days=days)
    if not database.exists():
        raise WarehouseError(f"no warehouse at {database}")
    try:
        with connect_warehouse(database, read_only=not apply) as connection:
            if not raw_table_exists(connection, REQUEST_LOG):
                return OperationalPlan(cutoff, 0, 0)
            referenced = (
                " union ".join(
                    f'select distinct request_id from "{RAW_DATASET}"."{table}" '
                    "where request_id is not null"
                    for table in raw_tables_with(connection, "request_id")
                )
                or "select cast(null as varchar) as request_id where false"
            )
            old = f'from "{RAW_DATASET}"."{REQUEST_LOG}" where started_at < ?'
            lineage = f"request_id in ({referenced})"
            (expired,) = connection.execute(
                f"select count(*) {old} and not {lineage}", [cutoff]
            ).fetchone() or (0,)
            (kept,) = connection.execute(
                f"select count(*) {old} and {lineage}", [cutoff]
            ).fetchone() or (0,)
            if apply and expired:
                connection.execute("begin transaction")
                connection.execute(f"delete {old} and not {lineage}", [cutoff])
                connection.execute("commit")
    except duckdb.Error as error:
        raise WarehouseError(
            f"cannot apply retention to {RAW_DATASET}.{REQUEST_LOG} in {database}: "
            f"{type(error).__name__}"
        ) from error
    return OperationalPlan(cutoff, int(expired), int(kept))


def raw_table_exists(connection: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``raw_fhir.<table>`` exists."""
    row = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [RAW_DATASET, table],
    ).fetchone()
    return bool(row and row[0])
