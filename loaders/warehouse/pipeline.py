"""The dlt pipeline that merges landing pages into the raw tables and records each run.

dlt is imported where it is used, not with this module: importing dlt takes about 0.35 s, and a
file load into DuckDB never needs it (see ``loaders/runs.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from loaders.files.fingerprints import LOADED_FILES
from loaders.settings import LoadSettings
from loaders.warehouse.operational import LANDING_MANIFEST, LOAD_RUNS, QUARANTINE, REQUEST_LOG
from loaders.warehouse.raw_tables import PRIMARY_KEY, RAW_COLUMN_HINTS, RAW_DATASET, RAW_SCHEMA

if TYPE_CHECKING:
    import dlt
    from dlt.extract.resource import DltResource

logger = logging.getLogger(__name__)

# Arrow batches carry no _dlt_load_id unless asked; the raw contract wants it on every row.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
# No telemetry from a pipeline that handles clinical data (and no internet to send it to).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def make_pipeline(settings: LoadSettings) -> dlt.Pipeline:
    """The dlt pipeline of one source system, writing to the DuckDB warehouse file.

    DuckDB's buffer pool defaults to 80% of RAM and the merge would use it; capping it (and not
    preserving insertion order, which raw tables do not need) keeps the load's memory flat as
    input grows: DuckDB spills to a temporary directory beside the warehouse instead.

    With ``settings.destination == "snowflake"`` the pipeline writes to dlt's snowflake
    destination instead; dlt resolves its credentials from ``destination.snowflake.credentials``
    (``.dlt/secrets.toml`` or ``DESTINATION__SNOWFLAKE__CREDENTIALS__*``) and never logs them.
    """
    import dlt
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    if settings.on_snowflake:
        return dlt.pipeline(
            pipeline_name=pipeline_name(settings),
            destination=dlt.destinations.snowflake(),
            dataset_name=RAW_DATASET,
            pipelines_dir=str(settings.dlt_pipelines_dir),
        )
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    credentials = DuckDbCredentials(
        str(settings.duckdb_path),
        global_config={
            "memory_limit": settings.duckdb_memory_limit,
            "preserve_insertion_order": False,
        },
    )
    return dlt.pipeline(
        pipeline_name=pipeline_name(settings),
        destination=dlt.destinations.duckdb(credentials),
        dataset_name=RAW_DATASET,
        pipelines_dir=str(settings.dlt_pipelines_dir),
    )


def discard_interrupted_loads(pipeline: dlt.Pipeline) -> bool:
    """Abort the load packages a killed run left behind; dlt's local state rewinds to before them.

    Raw rows are committed before the dlt load that carries their cursor or checkpoint (see
    ``loaders/runs.py``), so such a package holds only state and operational rows that the
    next run derives again (re-reading is a no-op for the version filter). Finishing it
    instead can fail: dlt's normalize cannot resume a package killed between moving it to
    ``normalized/`` and deleting its extracted copy. Only writing commands call this, before
    their dlt loads; read-only ones (status, dry run) never do, so they cannot disturb a load
    in progress.

    Returns:
        Whether anything was discarded.
    """
    if not pipeline.has_pending_data:
        return False
    logger.warning(
        "dlt pipeline %s: discarding load packages left by an interrupted run (its work is redone)",
        pipeline.pipeline_name,
    )
    pipeline.abort_packages()
    return True


def pipeline_name(settings: LoadSettings) -> str:
    """The dlt pipeline name of a source system (its state and working folder)."""
    return f"fhir_elt_{settings.source_system.replace('-', '_')}"


# Name of the dlt resource that merges raw rows; its resource state holds cursors/checkpoints.
RAW_RESOURCE_NAME = "fhir_resources"


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """A value to store in the raw resource's dlt state, committed with the rows before it.

    dlt commits resource state together with the load package, so a cursor or checkpoint
    yielded after a window's batches is saved exactly when those batches are merged, never
    earlier.

    Attributes:
        path: Keys from the resource state's root, e.g. ``("rest", "cursors", "Patient")``.
        value: The JSON-serialisable value to store there.
    """

    path: tuple[str, ...]
    value: Any


def apply_state_update(state: dict[str, Any], update: StateUpdate) -> None:
    """Set ``update.value`` at ``update.path`` in ``state``, creating dicts on the way."""
    node = state
    for key in update.path[:-1]:
        node = node.setdefault(key, {})
    node[update.path[-1]] = update.value


def read_raw_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The raw resource's state as last committed (restored from the warehouse if needed).

    The pipeline's working folder may be gone (an ephemeral runner): dlt then restores its
    state from the ``_dlt_pipeline_state`` table of the warehouse.
    """
    try:
        pipeline.sync_destination()
    except Exception as error:  # no warehouse yet, or it is busy: the local state stands
        logger.debug("state not restored from the warehouse: %s", type(error).__name__)
    sources = pipeline.state.get("sources", {})
    source_state = sources.get(pipeline.pipeline_name, {})
    resource_state = source_state.get("resources", {}).get(RAW_RESOURCE_NAME, {})
    return dict(resource_state)


def raw_resources(batches: Iterable[tuple[str, pa.Table] | StateUpdate]) -> DltResource:
    """A dlt resource merging ``(table_name, arrow batch)`` pairs into the raw tables.

    Primary key ``(source_system, id)``, delete-insert merge, and within one load the row with
    the greatest ``version_sort_key`` wins a key. Batches are expected to be pre-filtered by
    :class:`loaders.warehouse.version_filter.DuckDBVersionFilter`, so that an older version in
    the input never replaces a newer one already stored. :class:`StateUpdate` items among the
    batches are written to the resource's state (committed with the load).
    """
    import dlt

    @dlt.resource(
        name=RAW_RESOURCE_NAME,
        write_disposition="merge",
        primary_key=PRIMARY_KEY,
        columns=RAW_COLUMN_HINTS,
    )
    def fhir_resources() -> Iterator[object]:
        for item in batches:
            if isinstance(item, StateUpdate):
                apply_state_update(dlt.current.resource_state(), item)
                continue
            table_name, batch = item
            yield dlt.mark.with_table_name(batch, table_name)

    return fhir_resources()


def snowflake_raw_resources(batches: Iterable[tuple[str, pa.Table]]) -> DltResource:
    """The raw merge for dlt's snowflake destination: same resource, rows as dicts.

    dlt loads Snowflake with ``COPY INTO`` from staged files, and a JSON text in a parquet or
    JSONL file lands in a VARIANT column as a VARIANT *string* (``resource:id`` is then NULL).
    So ``resource`` is handed to dlt as a parsed object: dlt writes it as a JSON object in its
    JSONL file and Snowflake stores it as a VARIANT object. An empty batch stays arrow, so its
    table is created with the raw table's columns. Merge rules as :func:`raw_resources`; the
    batches are pre-filtered by :class:`loaders.warehouse.snowflake_filter.SnowflakeVersionFilter`.
    """
    import dlt

    @dlt.resource(
        name=RAW_RESOURCE_NAME,
        write_disposition="merge",
        primary_key=PRIMARY_KEY,
        columns=RAW_COLUMN_HINTS,
    )
    def fhir_resources() -> Iterator[object]:
        for table_name, batch in batches:
            if batch.num_rows == 0:
                yield dlt.mark.with_table_name(batch.select(RAW_SCHEMA.names), table_name)
                continue
            yield dlt.mark.with_table_name(variant_rows(batch), table_name)

    return fhir_resources()


def variant_rows(batch: pa.Table) -> list[dict[str, object]]:
    """The rows of a raw batch as dicts, ``resource`` parsed from JSON text into an object."""
    rows = batch.select(RAW_SCHEMA.names).to_pylist()
    for row in rows:
        row["resource"] = orjson.loads(row["resource"])
    return rows


# Primary keys of the operational tables: a row with the same key replaces the stored one.
OPERATIONAL_KEYS: dict[str, tuple[str, ...]] = {
    LOAD_RUNS: ("run_id",),
    LANDING_MANIFEST: ("landing_file",),
    QUARANTINE: ("run_id", "source_file", "line_number", "json_path"),
    REQUEST_LOG: ("run_id", "request_id", "attempt"),
    LOADED_FILES: ("run_id", "source_file"),
}


def operational_resources(
    manifest: pa.Table,
    quarantine: pa.Table,
    run_row: dict[str, object],
    requests: pa.Table | None = None,
    loaded_files: pa.Table | None = None,
) -> list[DltResource]:
    """dlt resources for the run's rows in ``load_runs``, ``landing_manifest``, ``quarantine``,
    (HTTP sources) ``request_log`` and (file loads) ``loaded_files``.

    The manifest and quarantine tables are sent even when empty, so they exist from the first
    run on and dbt sources over them never point at nothing.
    """
    import dlt

    resources = [
        dlt.resource(
            [run_row],
            name=LOAD_RUNS,
            write_disposition="merge",
            primary_key=OPERATIONAL_KEYS[LOAD_RUNS],
            columns={
                "finished_at": {"data_type": "timestamp", "nullable": True},
                "error": {"data_type": "text", "nullable": True},
                "counts_by_type": {"data_type": "json"},
                "merged_by_type": {"data_type": "json"},
                # provenance columns, created even while their values are null
                "credential_client_id": {"data_type": "text", "nullable": True},
                "resource_types": {"data_type": "text", "nullable": True},
                "code_version": {"data_type": "text", "nullable": True},
                "code_commit": {"data_type": "text", "nullable": True},
            },
        ),
        dlt.resource(
            [manifest],
            name=LANDING_MANIFEST,
            write_disposition="merge",
            primary_key=OPERATIONAL_KEYS[LANDING_MANIFEST],
        ),
        dlt.resource(
            [quarantine],
            name=QUARANTINE,
            write_disposition="merge",
            primary_key=OPERATIONAL_KEYS[QUARANTINE],
        ),
    ]
    if requests is not None:
        resources.append(
            dlt.resource(
                [requests],
                name=REQUEST_LOG,
                write_disposition="merge",
                primary_key=OPERATIONAL_KEYS[REQUEST_LOG],
            )
        )
    if loaded_files is not None:
        resources.append(
            dlt.resource(
                [loaded_files],
                name=LOADED_FILES,
                write_disposition="merge",
                primary_key=OPERATIONAL_KEYS[LOADED_FILES],
            )
        )
    return resources
