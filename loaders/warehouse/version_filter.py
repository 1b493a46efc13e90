"""Keep only the incoming rows that are new or newer than what the warehouse holds.

dlt's merge replaces a key's row with the incoming one; on its own it would let an older
version overwrite a newer one, and rewrite rows that did not change. This filter runs before
dlt sees a batch: a row passes if its key is new, or if its content differs and its
``version_sort_key`` is greater than the stored one. Unchanged data therefore costs a join,
not a merge.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa

from loaders.exceptions import WarehouseError
from loaders.warehouse.raw_tables import RAW_DATASET


class DuckDBVersionFilter:
    """Reads stored versions from a DuckDB warehouse file (read-only) to filter batches."""

    def __init__(self, database: Path, dataset: str = RAW_DATASET) -> None:
        """Open ``database`` read-only if it exists; a missing file means nothing is stored."""
        self.dataset = dataset
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._tables: set[str] = set()
        if database.exists():
            try:
                self._connection = duckdb.connect(str(database), read_only=True)
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

    def has_table(self, table: str) -> bool:
        """Whether the raw table exists in the warehouse."""
        return table in self._tables

    def keep_newer(self, table: str, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` that would change ``table``.

        Args:
            table: The raw table name, e.g. ``patient``.
            batch: Rows in the raw table schema.
        """
        if self._connection is None or table not in self._tables or batch.num_rows == 0:
            return batch
        keys = batch.select(["source_system", "id", "content_hash", "version_sort_key"])
        keys = keys.append_column("row_number", pa.array(range(batch.num_rows), pa.int64()))
        self._connection.register("incoming_keys", keys)
        try:
            passing = self._connection.sql(
                f"""
                select incoming.row_number
                from incoming_keys as incoming
                left join "{self.dataset}"."{table}" as stored
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
        if passing.num_rows == batch.num_rows:
            return batch
        return batch.take(passing.column("row_number"))

    def close(self) -> None:
        """Release the warehouse file so the merge can open it for writing."""
        if self._connection is not None:
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
