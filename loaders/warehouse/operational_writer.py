"""Write a run's operational rows straight into their tables, creating the tables if needed.

A run's record is a handful of rows, but a dlt load costs about half a second of fixed work
(configuration, a load package, a staging table per merge), and a first load paid it twice
(about 1.3 s of a 13.7 s 1,000,000-resource load, ``make bench`` step b). So the rows are merged
here in one DuckDB transaction instead: for each table, the rows with the same primary key are
deleted and the new ones inserted, as dlt's merge would. A missing table is created first with
the columns dlt would create from the same arrow rows (types and nullability from the arrow
schema, plus ``_dlt_load_id`` and, for tables dlt builds from dicts, ``_dlt_id``). If a table
exists but lacks a column the rows carry (the record gained a field), nothing is written and the
caller uses dlt, which evolves the table.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import orjson
import pyarrow as pa

from loaders.settings import LoadSettings
from loaders.warehouse.connect import connect_warehouse
from loaders.warehouse.operational import LOAD_RUNS_SCHEMA
from loaders.warehouse.raw_tables import RAW_DATASET

DLT_LOAD_ID = "_dlt_load_id"
DLT_ID = "_dlt_id"

# DuckDB column types of the arrow types operational rows use (as dlt's duckdb destination maps
# them); a table with another type is left to dlt to create.
_DUCKDB_TYPES: dict[pa.DataType, str] = {
    pa.string(): "varchar",
    pa.int64(): "bigint",
    pa.float64(): "double",
    pa.bool_(): "boolean",
    pa.timestamp("us", tz="UTC"): "timestamp with time zone",
}


@dataclass(frozen=True, slots=True)
class OperationalRows:
    """Rows for one operational table.

    Attributes:
        table: The table name, e.g. ``load_runs``.
        rows: The rows (column names as in the table).
        primary_key: The columns a row is replaced by.
        with_row_id: Whether the table has dlt's ``_dlt_id`` (tables dlt built from dicts).
        json_columns: Text columns holding JSON, created with DuckDB's JSON type.
    """

    table: str
    rows: pa.Table
    primary_key: tuple[str, ...]
    with_row_id: bool = False
    json_columns: tuple[str, ...] = ()


def run_row_table(run_row: dict[str, object]) -> pa.Table:
    """The ``load_runs`` row as arrow; dict and list values become JSON text, as dlt stores them."""
    row = {
        name: orjson.dumps(value).decode() if isinstance(value, dict | list) else value
        for name, value in run_row.items()
    }
    return pa.Table.from_pylist([row], LOAD_RUNS_SCHEMA)


def operational_table_ddl(dataset: str, entry: OperationalRows) -> str | None:
    """``create table`` for ``entry``'s table from its rows' schema; None if a type has no match.

    Columns as dlt creates them from the same arrow rows: a field's nullability decides
    ``not null``, then ``_dlt_load_id`` (and ``_dlt_id``) not null.
    """
    columns = []
    for column in entry.rows.schema:
        kind = "json" if column.name in entry.json_columns else _DUCKDB_TYPES.get(column.type)
        if kind is None:
            return None
        columns.append(f'"{column.name}" {kind}{"" if column.nullable else " not null"}')
    columns.append(f'"{DLT_LOAD_ID}" varchar not null')
    if entry.with_row_id:
        columns.append(f'"{DLT_ID}" varchar not null')
    return f'create table "{dataset}"."{entry.table}" ({", ".join(columns)})'


def write_operational_rows(
    settings: LoadSettings,
    load_id: str,
    tables: Sequence[OperationalRows],
    *,
    dataset: str = RAW_DATASET,
) -> bool:
    """Merge ``tables`` into their tables in the DuckDB warehouse of ``settings``, in one
    transaction, creating the missing ones.

    Returns:
        True if written; False (nothing written) if the destination is Snowflake (a DuckDB
        file left at the local path must not receive the run's record), the warehouse file is
        missing, an existing table lacks a column, or a missing table has a column type
        without a DuckDB match, so that dlt should write them instead.

    Raises:
        WarehouseLockedError: Another process holds the warehouse file open.
        duckdb.Error: The warehouse could not be written.
    """
    if settings.on_snowflake or not settings.duckdb_path.exists():
        return False
    with connect_warehouse(
        settings.duckdb_path,
        config={"memory_limit": settings.duckdb_memory_limit, "preserve_insertion_order": False},
    ) as connection:
        columns: dict[str, set[str]] = {}
        for table, column in connection.execute(
            "select table_name, column_name from information_schema.columns where table_schema = ?",
            [dataset],
        ).fetchall():
            columns.setdefault(table, set()).add(column)
        creates = []
        for entry in tables:
            if entry.table not in columns:
                ddl = operational_table_ddl(dataset, entry)
                if ddl is None:
                    return False
                creates.append(ddl)
                continue
            needed = set(entry.rows.column_names) | {DLT_LOAD_ID}
            if entry.with_row_id:
                needed.add(DLT_ID)
            if not needed <= columns[entry.table]:
                return False
        connection.execute("begin transaction")
        if creates:
            connection.execute(f'create schema if not exists "{dataset}"')
        for ddl in creates:
            connection.execute(ddl)
        for entry in tables:
            _merge_rows(connection, dataset, load_id, entry)
        connection.execute("commit")
    return True


def _merge_rows(
    connection: duckdb.DuckDBPyConnection, dataset: str, load_id: str, entry: OperationalRows
) -> None:
    rows = entry.rows
    if rows.num_rows == 0:
        return
    if entry.with_row_id:  # dlt's row ids: 14 random URL-safe characters
        ids = [secrets.token_urlsafe(10)[:14] for _ in range(rows.num_rows)]
        rows = rows.append_column(DLT_ID, pa.array(ids, pa.string()))
    target = f'"{dataset}"."{entry.table}"'
    names = ", ".join(f'"{name}"' for name in rows.column_names)
    matches = " and ".join(f'stored."{key}" = incoming."{key}"' for key in entry.primary_key)
    connection.register("operational_rows", rows)
    try:
        connection.execute(
            f"delete from {target} as stored using operational_rows as incoming where {matches}"
        )
        connection.execute(
            f"insert into {target} ({names}, {DLT_LOAD_ID}) "
            f"select {names}, ? from operational_rows",
            [load_id],
        )
    finally:
        connection.unregister("operational_rows")
