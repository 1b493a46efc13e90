"""What the warehouse holds, as a reconciliation sees it: current, non-deleted rows.

Opened read-only for the counting and comparing phases and closed before any merge (DuckDB
lets one process write a file only when nothing else has it open). A window ``(start, end]``
selects rows by their ``last_updated`` exactly as :meth:`loaders.rest.windows.Window.contains`
does, so a stored row falls in the same window as the server's ``_lastUpdated=gt..&le..``
search would put it. Rows without ``last_updated`` are in no window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from loaders.exceptions import WarehouseError
from loaders.fhir import table_name_for
from loaders.rest.windows import Window
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.raw_tables import RAW_DATASET


@dataclass(frozen=True, slots=True)
class StoredRow:
    """The stored (current) row of one resource, as a deletion mark needs it."""

    id: str
    version_id: str | None
    last_updated: datetime | None
    resource: str
    content_hash: str
    version_sort_key: str


class WarehouseView:
    """Read-only counts, ids and rows of one source system's raw tables."""

    def __init__(self, database: Path, source_system: str, dataset: str = RAW_DATASET) -> None:
        self.source_system = source_system
        self.dataset = dataset
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._tables: set[str] = set()
        if not database.exists():
            return
        try:
            self._connection = connect_warehouse(database, read_only=True)
        except duckdb.Error as error:
            raise WarehouseError(
                f"cannot open the warehouse {database} to reconcile (is another process "
                f"writing to it?): {type(error).__name__}"
            ) from error
        rows = self._connection.execute(
            "select table_name from information_schema.tables where table_schema = ?", [dataset]
        ).fetchall()
        self._tables = {name for (name,) in rows}

    def _where(self, resource_type: str, window: Window) -> tuple[str, str, list[Any]] | None:
        table = table_name_for(resource_type)
        if self._connection is None or table not in self._tables:
            return None
        clauses = ["source_system = ?", "not coalesce(is_deleted, false)", "last_updated <= ?"]
        params: list[Any] = [self.source_system, window.end]
        if window.start is not None:
            clauses.append("last_updated > ?")
            params.append(window.start)
        return f'"{self.dataset}"."{table}"', " and ".join(clauses), params

    def _query(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        assert self._connection is not None
        try:
            return self._connection.execute(sql, params).fetchall()
        except duckdb.Error as error:
            raise WarehouseError(
                f"the warehouse refused a reconciliation query: {type(error).__name__}"
            ) from error

    def count(self, resource_type: str, window: Window) -> int:
        """Current, non-deleted rows of the type whose ``last_updated`` is in the window."""
        where = self._where(resource_type, window)
        if where is None:
            return 0
        table, clause, params = where
        ((count,),) = self._query(f"select count(*) from {table} where {clause}", params)
        return int(count)

    def median(self, resource_type: str, window: Window) -> datetime | None:
        """The median ``last_updated`` of those rows (None when there are none)."""
        where = self._where(resource_type, window)
        if where is None:
            return None
        table, clause, params = where
        ((median,),) = self._query(
            f"select quantile_disc(last_updated, 0.5) from {table} where {clause}", params
        )
        return None if median is None else median.astimezone(UTC)

    def ids(self, resource_type: str, window: Window) -> set[str]:
        """The ids of those rows."""
        where = self._where(resource_type, window)
        if where is None:
            return set()
        table, clause, params = where
        return {row[0] for row in self._query(f"select id from {table} where {clause}", params)}

    def stored_rows(self, resource_type: str, ids: set[str]) -> list[StoredRow]:
        """The stored, non-deleted rows of ``ids`` (the ones a deletion mark would replace)."""
        table = table_name_for(resource_type)
        if not ids or self._connection is None or table not in self._tables:
            return []
        rows = self._query(
            f"""
            select id, version_id, last_updated, cast(resource as varchar), content_hash,
                version_sort_key
            from "{self.dataset}"."{table}"
            where source_system = ? and not coalesce(is_deleted, false) and list_contains(?, id)
            order by id
            """,
            [self.source_system, sorted(ids)],
        )
        return [StoredRow(*row) for row in rows]

    def close(self) -> None:
        """Release the file so a merge can write it."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> WarehouseView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
