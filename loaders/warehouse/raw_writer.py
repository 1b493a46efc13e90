"""Merge filtered raw batches straight into the DuckDB raw tables, in bounded transactions.

dlt's merge stages every row in a staging table, then deletes and re-inserts from it: for a
large load the data is written to disk twice and compressed twice. The raw tables need less:
the :class:`~loaders.warehouse.version_filter.DuckDBVersionFilter` has already dropped every
row that is unchanged or older than what is stored, so each batch is merged with one delete of
the keys it replaces (skipped when it replaces none) and one insert. dlt keeps only the
pipeline state of REST and Bulk runs (see ``loaders/runs.py``); the writer creates the raw
tables it writes to, with the columns dlt would create.

The filter reads through the writer's connection, so a key seen earlier in the same run is
compared with the version merged then: several versions of one resource in one run leave the
newest, whatever their order. Within a batch, the greatest ``version_sort_key`` wins a key.

Batches are committed in groups of about ``commit_bytes``: DuckDB keeps an open transaction's
rows in memory, so one transaction per run would make memory grow with the input. Each group
is a valid merge on its own (a key's delete and insert commit together), so a crash leaves the
warehouse as if the run had been shorter; what was merged is landed, and running again merges
the rest.

A group also ends where a table it writes to fills a row group (:data:`ROW_GROUP_ROWS` rows
appended by this writer; a batch is split there). Groups cut at arbitrary row counts leave
partly filled row groups behind, and the first later run that deletes a few rows from them
(replacing 1% of the resources) makes DuckDB's checkpoint vacuum fold them together, rewriting
most of the table: 1.5 s of a 3.6 s 1%-changed load after a 1,000,000-resource first load
(``make bench``, step d). Aligned groups leave full row groups, which 1% of deletes cannot fold.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from loaders import fault_points
from loaders.exceptions import WarehouseError
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.raw_tables import RAW_DATASET, RAW_SCHEMA
from loaders.warehouse.version_filter import DuckDBVersionFilter, replaced_count

logger = logging.getLogger(__name__)

DEFAULT_COMMIT_BYTES = 64 * 1024 * 1024
# DuckDB's row group size (rows); a commit group aligned to it leaves full row groups.
ROW_GROUP_ROWS = 122_880

_COLUMN_TYPES = {
    "source_system": "varchar not null",
    "resource_type": "varchar not null",
    "id": "varchar not null",
    "version_id": "varchar",
    "last_updated": "timestamp with time zone",
    # zstd: about 6x smaller than DuckDB's default choice for JSON text, and cheaper to write.
    "resource": "json using compression zstd not null",
    "content_hash": "varchar not null",
    "version_sort_key": "varchar not null",
    "fetched_at": "timestamp with time zone not null",
    "request_id": "varchar",
    "landing_file": "varchar not null",
    "is_deleted": "boolean not null",
    "_dlt_load_id": "varchar not null",
}
_COLUMNS = ", ".join(f'"{name}"' for name in RAW_SCHEMA.names)


def raw_table_ddl(dataset: str, table: str, *, compression: bool = True) -> str:
    """``create table if not exists`` for one raw table, with the columns dlt would create."""
    columns = ", ".join(
        f'"{name}" {kind if compression else kind.replace(" using compression zstd", "")}'
        for name, kind in _COLUMN_TYPES.items()
    )
    return f'create table if not exists "{dataset}"."{table}" ({columns})'


class RawTableWriter:
    """One read-write connection to the warehouse that merges raw batches into it.

    Args:
        database: The DuckDB warehouse file (created if missing).
        load_id: Written to ``_dlt_load_id`` of every merged row.
        memory_limit: DuckDB's memory cap (past it, DuckDB spills to disk).
        dataset: The raw schema.
        commit_bytes: Commit after about this many bytes of arrow rows.

    Raises:
        WarehouseLockedError: Another process holds the warehouse file open.
        WarehouseError: The warehouse cannot be opened for writing.
    """

    def __init__(
        self,
        database: Path,
        load_id: str,
        *,
        memory_limit: str,
        dataset: str = RAW_DATASET,
        commit_bytes: int = DEFAULT_COMMIT_BYTES,
    ) -> None:
        database.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = connect_warehouse(
                database,
                config={
                    "memory_limit": memory_limit,
                    "preserve_insertion_order": False,
                    # The parse workers have the other cores; a second DuckDB thread only
                    # competes with them (1M bench load: -0.5 s user, -0.6 s wall).
                    "threads": 1,
                },
            )
        except duckdb.Error as error:
            raise WarehouseError(
                f"cannot open the warehouse {database} for writing "
                f"(is another process using it?): {type(error).__name__}"
            ) from error
        self.dataset = dataset
        self.load_id = load_id
        self.commit_bytes = commit_bytes
        self.rows_written = 0
        # Rows appended to each table by this writer, for aligning commits to row groups.
        self._appended: dict[str, int] = {}
        rows = self._connection.execute(
            "select table_name from information_schema.tables where table_schema = ?", [dataset]
        ).fetchall()
        self._tables: set[str] = {name for (name,) in rows}
        self._pending_bytes = 0
        self._connection.execute("begin transaction")
        self.version_filter = DuckDBVersionFilter.over(self._connection, self._tables, dataset)

    def write(self, table: str, batch: pa.Table) -> None:
        """Merge one batch of rows (raw table schema) that passed the version filter.

        An empty batch only makes sure the table exists.
        """
        self._ensure_table(table)
        if batch.num_rows == 0:
            return
        replaces = replaced_count(batch)
        batch = batch.select(RAW_SCHEMA.names)
        unique = _keys_are_unique(batch)
        split = self._rows_to_boundary(table) if unique else batch.num_rows
        if 0 < split < batch.num_rows:
            # Each part deletes the keys it replaces: a key's delete and insert commit together.
            self._merge(table, batch.slice(0, split), replaces, unique=True)
            self._commit_group()
            batch = batch.slice(split)
        self._merge(table, batch, replaces, unique=unique)
        if (
            self._pending_bytes >= self.commit_bytes
            or self._rows_to_boundary(table) == ROW_GROUP_ROWS
        ):
            self._commit_group()

    def _rows_to_boundary(self, table: str) -> int:
        """Rows ``table`` takes before its next row-group boundary."""
        return ROW_GROUP_ROWS - self._appended.get(table, 0) % ROW_GROUP_ROWS

    def _merge(self, table: str, batch: pa.Table, replaces: int | None, *, unique: bool) -> None:
        target = f'"{self.dataset}"."{table}"'
        self._connection.register("merge_rows", _json_payloads(batch))
        try:
            if replaces != 0:
                self._connection.execute(
                    f"""
                    delete from {target} as stored
                    using merge_rows as incoming
                    where stored.source_system = incoming.source_system
                        and stored.id = incoming.id
                    """
                )
            newest = (
                ""
                if unique
                else "qualify row_number() over "
                "(partition by source_system, id order by version_sort_key desc) = 1"
            )
            inserted = self._connection.execute(
                f"insert into {target} ({_COLUMNS}, _dlt_load_id) "
                f"select {_COLUMNS}, ? from merge_rows {newest}",
                [self.load_id],
            ).fetchone()
        finally:
            self._connection.unregister("merge_rows")
        fault_points.reached("merge")  # rows inserted, not committed
        self.rows_written += batch.num_rows
        self._appended[table] = self._appended.get(table, 0) + (inserted[0] if inserted else 0)
        self._pending_bytes += batch.nbytes

    def _commit_group(self) -> None:
        self.commit()
        self._connection.execute("begin transaction")

    def commit(self) -> None:
        """Commit the rows written since the last commit."""
        self._connection.execute("commit")
        self._pending_bytes = 0

    def close(self, *, commit: bool) -> None:
        """Commit (or roll back) what is pending and release the warehouse file."""
        try:
            if commit:
                self.commit()
                fault_points.reached("committed")  # rows committed, the run's state not yet
            else:
                self._connection.execute("rollback")
        finally:
            self._connection.close()

    def _ensure_table(self, table: str) -> None:
        if table in self._tables:
            return
        self._connection.execute(f'create schema if not exists "{self.dataset}"')
        self._connection.execute(
            raw_table_ddl(self.dataset, table, compression=_zstd_for_strings())
        )
        self._tables.add(table)

    def __enter__(self) -> RawTableWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(commit=exc_type is None)


@cache
def _zstd_for_strings() -> bool:
    """Whether this DuckDB can store a text column with zstd (1.2 and later)."""
    try:
        with duckdb.connect() as probe:
            probe.execute("create table probe (text varchar using compression zstd)")
    except duckdb.Error:
        return False
    return True


_JSON = pa.json_(pa.string())


def _json_payloads(batch: pa.Table) -> pa.Table:
    """``batch`` with its ``resource`` texts typed as arrow JSON (the same buffers).

    DuckDB takes an arrow JSON column into its JSON column as it is; from a string column it
    casts, parsing every payload again (~0.6 s of main-thread time per 1,000,000 resources).
    Every payload was parsed (or written) by orjson when it was accepted
    (:mod:`loaders.resources`), so that check would find nothing.
    """
    index = batch.schema.get_field_index("resource")
    texts = batch.column(index)
    payloads = pa.chunked_array(
        [pa.ExtensionArray.from_storage(_JSON, chunk) for chunk in texts.chunks], _JSON
    )
    return batch.set_column(index, pa.field("resource", _JSON, nullable=False), payloads)


def _keys_are_unique(batch: pa.Table) -> bool:
    """Whether no ``(source_system, id)`` occurs twice in ``batch``."""
    ids = batch.column("id")
    if pc.count_distinct(batch.column("source_system")).as_py() == 1:
        return pc.count_distinct(ids).as_py() == batch.num_rows
    keys = pc.binary_join_element_wise(batch.column("source_system"), ids, "\x1f")
    return pc.count_distinct(keys).as_py() == batch.num_rows
