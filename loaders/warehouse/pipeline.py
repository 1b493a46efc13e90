"""The dlt pipeline that merges landing pages into the raw tables and records each run."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import dlt
import pyarrow as pa
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract.resource import DltResource

from loaders.settings import LoadSettings
from loaders.warehouse.operational import LANDING_MANIFEST, LOAD_RUNS, QUARANTINE
from loaders.warehouse.raw_tables import PRIMARY_KEY, RAW_COLUMN_HINTS, RAW_DATASET

# Arrow batches carry no _dlt_load_id unless asked; the raw contract wants it on every row.
os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
# No telemetry from a pipeline that handles clinical data (and no internet to send it to).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def make_pipeline(settings: LoadSettings) -> dlt.Pipeline:
    """The dlt pipeline of one source system, writing to the DuckDB warehouse file.

    DuckDB's buffer pool defaults to 80% of RAM and the merge would use it; capping it (and not
    preserving insertion order, which raw tables do not need) keeps the load's memory flat as
    input grows: DuckDB spills to a temporary directory beside the warehouse instead.
    """
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    credentials = DuckDbCredentials(
        str(settings.duckdb_path),
        global_config={
            "memory_limit": settings.duckdb_memory_limit,
            "preserve_insertion_order": False,
        },
    )
    return dlt.pipeline(
        pipeline_name=f"fhir_elt_{settings.source_system.replace('-', '_')}",
        destination=dlt.destinations.duckdb(credentials),
        dataset_name=RAW_DATASET,
        pipelines_dir=str(settings.dlt_pipelines_dir),
    )


def raw_resources(batches: Iterable[tuple[str, pa.Table]]) -> DltResource:
    """A dlt resource merging ``(table_name, arrow batch)`` pairs into the raw tables.

    Primary key ``(source_system, id)``, delete-insert merge, and within one load the row with
    the greatest ``version_sort_key`` wins a key. Batches are expected to be pre-filtered by
    :class:`loaders.warehouse.version_filter.DuckDBVersionFilter`, so that an older version in
    the input never replaces a newer one already stored.
    """

    @dlt.resource(
        name="fhir_resources",
        write_disposition="merge",
        primary_key=PRIMARY_KEY,
        columns=RAW_COLUMN_HINTS,
    )
    def fhir_resources() -> Iterator[object]:
        for table_name, batch in batches:
            yield dlt.mark.with_table_name(batch, table_name)

    return fhir_resources()


def operational_resources(
    manifest: pa.Table, quarantine: pa.Table, run_row: dict[str, object]
) -> list[DltResource]:
    """dlt resources for the run's rows in ``load_runs``, ``landing_manifest``, ``quarantine``.

    The manifest and quarantine tables are sent even when empty, so they exist from the first
    run on and dbt sources over them never point at nothing.
    """
    return [
        dlt.resource(
            [run_row],
            name=LOAD_RUNS,
            write_disposition="merge",
            primary_key="run_id",
            columns={
                "finished_at": {"data_type": "timestamp", "nullable": True},
                "error": {"data_type": "text", "nullable": True},
                "counts_by_type": {"data_type": "json"},
                "merged_by_type": {"data_type": "json"},
            },
        ),
        dlt.resource(
            [manifest], name=LANDING_MANIFEST, write_disposition="merge", primary_key="landing_file"
        ),
        dlt.resource(
            [quarantine],
            name=QUARANTINE,
            write_disposition="merge",
            primary_key=("run_id", "source_file", "line_number", "json_path"),
        ),
    ]
