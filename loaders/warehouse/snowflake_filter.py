"""The version filter for Snowflake: stored versions read from Snowflake, decided locally.

On DuckDB the filter joins each batch with the raw table itself. On Snowflake that join would
be a round trip per page and a temporary table per batch; instead, for each batch the filter
reads the stored ``(source_system, id, content_hash, version_sort_key)`` of the batch's keys
from Snowflake (one ``id in (...)`` query per :data:`KEYS_PER_QUERY` keys) into a local,
in-memory DuckDB mirror, and applies DuckDB's very decision
(:meth:`~loaders.warehouse.version_filter.DuckDBVersionFilter._keep_newer_than`) to it.

The rows of one run are loaded by dlt after the run (one load), so Snowflake does not see a
run's own rows while it runs. The mirror does: the rows that pass are written into it (the
greatest ``version_sort_key`` per key), so a later page of the same run compares with them,
and several versions of one resource in one run leave the newest, whatever their order, as
on DuckDB. The mirror holds four short strings per key seen in the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import dlt
import duckdb
import pyarrow as pa
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.common.destination.exceptions import DestinationException

from loaders.exceptions import ConfigError, WarehouseError
from loaders.warehouse.raw_tables import RAW_DATASET
from loaders.warehouse.version_filter import DuckDBVersionFilter, _mark

logger = logging.getLogger(__name__)

KEYS_PER_QUERY = 1_000
KEY_COLUMNS = ("source_system", "id", "content_hash", "version_sort_key")

# Runs one parameterised query on Snowflake and returns its rows.
Query = Callable[[str, Sequence[object]], Sequence[Sequence[object]]]
# Qualifies (quotes and case-folds) a raw table name the way dlt created it.
Qualify = Callable[[str], str]

_KEY_SCHEMA = pa.schema([(name, pa.string()) for name in KEY_COLUMNS])


class SnowflakeVersionFilter(DuckDBVersionFilter):
    """Filters batches against the raw tables on Snowflake (see the module docstring).

    Args:
        query: Runs a query on Snowflake (``%s`` placeholders) and returns its rows.
        qualify: The qualified Snowflake name of a raw table.
        tables: The raw tables that exist on Snowflake (lower-case names).
        memory_limit: The local mirror's DuckDB memory cap.
        dataset: The raw schema.
    """

    def __init__(
        self,
        query: Query,
        qualify: Qualify,
        tables: set[str],
        *,
        memory_limit: str,
        dataset: str = RAW_DATASET,
    ) -> None:
        self.dataset = dataset
        self._owns_connection = True
        self._connection = duckdb.connect(config={"memory_limit": memory_limit})
        self._connection.execute(f'create schema "{dataset}"')
        self._query = query
        self._qualify = qualify
        self._remote_tables = set(tables)
        # Raw tables mirrored locally; every table offered gets one, stored on Snowflake or not.
        self._tables = set()

    @property
    def connection(self) -> duckdb.DuckDBPyConnection | None:
        """None: the filter's DuckDB connection holds key mirrors, not the raw tables."""
        return None

    def has_table(self, table: str) -> bool:
        """Whether the raw table exists on Snowflake (or received rows in this run)."""
        return table in self._remote_tables or table in self._tables

    def keep_newer(self, table: str, batch: pa.Table) -> pa.Table:
        """The rows of ``batch`` that would change ``table`` (stored or merged in this run)."""
        if batch.num_rows == 0:
            return _mark(batch, 0)
        mirror = f'"{self.dataset}"."{table}"'
        if table not in self._tables:
            columns = ", ".join(f'"{name}" varchar' for name in KEY_COLUMNS)
            self._connection.execute(f"create table {mirror} ({columns})")
            self._tables.add(table)
        if table in self._remote_tables:
            self._mirror_stored(table, mirror, batch)
        passing = self._keep_newer_than(mirror, batch)
        self._remember(mirror, passing)
        return passing

    def _mirror_stored(self, table: str, mirror: str, batch: pa.Table) -> None:
        """Copy into the mirror the stored keys of ``batch`` that it does not hold yet."""
        self._connection.register("incoming_keys", batch.select(["source_system", "id"]))
        try:
            unseen = self._connection.sql(
                f"""
                select distinct incoming.source_system, incoming.id
                from incoming_keys as incoming
                anti join {mirror} as mirrored
                    on mirrored.source_system = incoming.source_system
                    and mirrored.id = incoming.id
                order by 1, 2
                """
            ).fetchall()
        finally:
            self._connection.unregister("incoming_keys")
        rows: list[Sequence[object]] = []
        by_source: dict[str, list[str]] = {}
        for source_system, resource_id in unseen:
            by_source.setdefault(source_system, []).append(resource_id)
        selected = ", ".join(KEY_COLUMNS)
        for source_system, ids in by_source.items():
            for start in range(0, len(ids), KEYS_PER_QUERY):
                chunk = ids[start : start + KEYS_PER_QUERY]
                placeholders = ", ".join(["%s"] * len(chunk))
                rows.extend(
                    self._query(
                        f"select {selected} from {self._qualify(table)} "
                        f"where source_system = %s and id in ({placeholders})",
                        [source_system, *chunk],
                    )
                )
        logger.debug(
            "%s: %d stored version(s) read from Snowflake for %d key(s)",
            table,
            len(rows),
            len(unseen),
        )
        if not rows:
            return
        stored = pa.Table.from_pylist(
            [dict(zip(KEY_COLUMNS, row, strict=True)) for row in rows], schema=_KEY_SCHEMA
        )
        self._connection.register("stored_keys", stored)
        try:
            self._connection.execute(f"insert into {mirror} select * from stored_keys")
        finally:
            self._connection.unregister("stored_keys")

    def _remember(self, mirror: str, passing: pa.Table) -> None:
        """Record the rows that passed as the keys' current versions (newest per key)."""
        if passing.num_rows == 0:
            return
        keys = passing.select(list(KEY_COLUMNS))
        self._connection.register("passing_keys", keys)
        try:
            self._connection.execute(
                f"""
                delete from {mirror} as mirrored
                using passing_keys as incoming
                where mirrored.source_system = incoming.source_system
                    and mirrored.id = incoming.id
                """
            )
            self._connection.execute(
                f"""
                insert into {mirror}
                select {", ".join(KEY_COLUMNS)} from passing_keys
                qualify row_number() over (
                    partition by source_system, id order by version_sort_key desc
                ) = 1
                """
            )
        finally:
            self._connection.unregister("passing_keys")


@contextmanager
def snowflake_version_filter(
    pipeline: dlt.Pipeline, *, memory_limit: str
) -> Iterator[SnowflakeVersionFilter]:
    """A filter reading the raw tables of ``pipeline``'s Snowflake dataset, open while in use.

    Raises:
        ConfigError: The Snowflake credentials are not configured.
        WarehouseError: Snowflake could not be reached or read (the message names only the
            error's type: a connector message may quote the account or a value).
    """
    try:
        with pipeline.sql_client() as client:
            dataset = client.capabilities.casefold_identifier(client.dataset_name)
            rows = client.execute_sql(
                "select table_name from information_schema.tables where table_schema = %s",
                dataset,
            )
            tables = {str(name).lower() for (name, *_rest) in rows or []}

            def query(sql: str, params: Sequence[object]) -> Sequence[Sequence[object]]:
                return client.execute_sql(sql, *params) or []

            with SnowflakeVersionFilter(
                query, client.make_qualified_table_name, tables, memory_limit=memory_limit
            ) as version_filter:
                yield version_filter
    except ConfigFieldMissingException as error:
        raise ConfigError(
            "Snowflake credentials are missing: set destination.snowflake.credentials in "
            ".dlt/secrets.toml or DESTINATION__SNOWFLAKE__CREDENTIALS__* variables"
        ) from error
    except DestinationException as error:
        raise WarehouseError(
            f"cannot read the raw tables on Snowflake to compare versions: {type(error).__name__}"
        ) from error
