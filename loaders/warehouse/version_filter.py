"""Keep only the incoming rows that are new or newer than what the warehouse holds.

dlt's merge replaces a key's row with the incoming one; on its own it would let an older
version overwrite a newer one, and rewrite rows that did not change. This filter runs before
dlt sees a batch: a row passes if its key is new, or if its content differs and its
``version_sort_key`` is greater than the stored one. Unchanged data therefore costs a join,
not a merge.

The filter reads either its own read-only connection, or (during a merge) the connection of
the :class:`~loaders.warehouse.raw_writer.RawTableWriter`, so it also sees the rows merged
earlier in the same run. A table that was empty when the merge began holds only this run's
rows: the filter remembers a hash of every id it let into such a table, and a batch none of
whose ids it has seen passes without the join (a first load of 1,000,000 resources otherwise
joins each page against all the rows before it). An id hash seen before, even by collision,
sends the batch through the join, so the answer never changes; every batch merged into the
raw tables must therefore have come through :meth:`DuckDBVersionFilter.keep_newer`.

Each batch it returns carries, in its schema metadata, how many of its rows replace a stored
row (:data:`REPLACES_METADATA`), so the writer can skip a delete that would find nothing.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa

from loaders.exceptions import WarehouseError
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.raw_tables import RAW_DATASET

# Schema metadata key on filtered batches: how many rows replace a stored row (ASCII digits).
REPLACES_METADATA = b"fhir_elt.replaces_stored"


def replaced_count(batch: pa.Table) -> int | None:
    """How many rows of a filtered batch replace a stored row; None if it was not filtered."""
    metadata = batch.schema.metadata or {}
    value = metadata.get(REPLACES_METADATA)
    return None if value is None else int(value)


def _mark(batch: pa.Table, replaces: int) -> pa.Table:
    metadata = dict(batch.schema.metadata or {})
    metadata[REPLACES_METADATA] = str(replaces).encode()
    return batch.replace_schema_metadata(metadata)


class DuckDBVersionFilter:
    """Reads stored versions from a DuckDB warehouse file (read-only) to filter batches."""

    def __init__(self, database: Path, dataset: str = RAW_DATASET) -> None:
        """Open ``database`` read-only if it exists; a missing file means nothing is stored."""
        self.dataset = dataset
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._owns_connection = True
        self._tables: set[str] = set()
        # Per raw table empty when the merge began (or missing): hashes of the ids let in.
        self._fresh: dict[str, set[int]] = {}
        if database.exists():
            try:
                self._connection = connect_warehouse(database, read_only=True)
            except duckdb.Error as error:
                raise WarehouseError(
                    f"cannot open the warehouse {database} to compare versions "
                    f"(is another process writing to it?): {type(error).__name__}"
                ) from error
            rows = self._connection.execute(
                "select table_name from information_schema.tables where table_schema = ?",
                [dataset],
            ).fetchall()
            self._tables = {name for (name,) in rows}

    @classmethod
    def over(
        cls, connection: duckdb.DuckDBPyConnection, tables: set[str], dataset: str = RAW_DATASET
    ) -> DuckDBVersionFilter:
        """A filter reading through ``connection`` (not closed by it).

        Args:
            connection: An open connection to the warehouse, e.g. the merge's own.
            tables: The raw tables that exist; the set is shared, not copied, so tables the
                caller creates later are seen.
            dataset: The raw schema.
        """
        version_filter = cls.__new__(cls)
        version_filter.dataset = dataset
        version_filter._connection = connection
        version_filter._owns_connection = False
        version_filter._tables = tables
        version_filter._fresh = {table: set() for table in _empty_tables(connection, dataset)}
        return version_filter

    @property
    def connection(self) -> duckdb.DuckDBPyConnection | None:
        """The connection the filter reads through (None when no warehouse exists yet)."""
        return self._connection

    def has_table(self, table: str) -> bool:
        """Whether the raw table exists in the warehouse."""
        return table in self._tables

    def keep_newer(self, table: str, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` that would change ``table``.

        Args:
            table: The raw table name, e.g. ``patient``.
            batch: Rows in the raw table schema.
        """
        if self._connection is None or batch.num_rows == 0:
            return _mark(batch, 0)
        if self._all_new_to_fresh_table(table, batch) or table not in self._tables:
            return _mark(batch, 0)
        return self._keep_newer_than(f'"{self.dataset}"."{table}"', batch)

    def _all_new_to_fresh_table(self, table: str, batch: pa.Table) -> bool:
        """Whether ``table`` was empty when the merge began and no id of ``batch`` went in
        since; the batch's ids are remembered either way (the caller merges what passes)."""
        seen = self._fresh.get(table)
        if seen is None:
            if table in self._tables:
                return False
            seen = self._fresh[table] = set()  # created during this merge
        ids = {hash(value) for value in batch.column("id").to_pylist()}
        new = seen.isdisjoint(ids)
        seen |= ids
        return new

    def _keep_newer_than(self, stored: str, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` that would change the rows of the relation ``stored``.

        The one decision every warehouse shares: a row passes if its key is not in ``stored``,
        or if its content differs and its ``version_sort_key`` is greater. ``stored`` is a
        relation of this filter's connection with ``source_system``, ``id``, ``content_hash``
        and ``version_sort_key`` (a raw table, or a local copy of a remote one's keys).
        """
        assert self._connection is not None
        keys = batch.select(["source_system", "id", "content_hash", "version_sort_key"])
        keys = keys.append_column("row_number", pa.array(range(batch.num_rows), pa.int64()))
        self._connection.register("incoming_keys", keys)
        try:
            passing = self._connection.sql(
                f"""
                select incoming.row_number, stored.id is not null as replaces
                from incoming_keys as incoming
                left join {stored} as stored
                    on stored.source_system = incoming.source_system
                    and stored.id = incoming.id
                where stored.id is null
                    or (
                        stored.content_hash <> incoming.content_hash
                        and incoming.version_sort_key > stored.version_sort_key
                    )
                order by incoming.row_number
                """
            ).to_arrow_table()
        finally:
            self._connection.unregister("incoming_keys")
        replaces = sum(passing.column("replaces").to_pylist())
        if passing.num_rows == batch.num_rows:
            return _mark(batch, replaces)
        return _mark(batch.take(passing.column("row_number")), replaces)

    def close(self) -> None:
        """Release the warehouse file so the merge can open it for writing."""
        if self._connection is not None and self._owns_connection:
            self._connection.close()
        self._connection = None

    def __enter__(self) -> DuckDBVersionFilter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _empty_tables(connection: duckdb.DuckDBPyConnection, dataset: str) -> list[str]:
    """The tables of ``dataset`` that hold no rows, deleted ones included."""
    rows = connection.execute(
        "select table_name from duckdb_tables() where schema_name = ? and estimated_size = 0",
        [dataset],
    ).fetchall()
    return [name for (name,) in rows]
