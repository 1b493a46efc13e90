"""What every load run shares: its id, its merge into the raw tables, and its record.

A run lands pages, merges them (one or more dlt loads: a backfill commits once per round of
windows), and finally writes its operational rows: ``load_runs``, ``landing_manifest``,
``quarantine``, for HTTP sources ``request_log``, and ``schema_drift`` when drift was found.
A run is recorded whether it succeeds or fails, and the record never masks the run's own error.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import duckdb
import pyarrow as pa

from loaders.drift.ledger import SCHEMA_DRIFT, SCHEMA_DRIFT_KEY, take_run_findings
from loaders.exceptions import FhirEltError, LandingError, WarehouseError
from loaders.files.fingerprints import LOADED_FILES
from loaders.landing import LandingZone
from loaders.resources import RejectReason
from loaders.settings import LoadSettings
from loaders.warehouse.operational import (
    LANDING_MANIFEST,
    LOAD_RUNS,
    LOAD_RUNS_JSON_COLUMNS,
    QUARANTINE,
    REQUEST_LOG,
    QuarantineRecord,
    RunRecord,
    manifest_table,
    quarantine_table,
)
from loaders.warehouse.operational_writer import (
    OperationalRows,
    run_row_table,
    write_operational_rows,
)
from loaders.warehouse.pipeline import (
    OPERATIONAL_KEYS,
    StateUpdate,
    discard_interrupted_loads,
    operational_resources,
    raw_resources,
    snowflake_raw_resources,
)
from loaders.warehouse.raw_writer import RawTableWriter
from loaders.warehouse.version_filter import DuckDBVersionFilter

if TYPE_CHECKING:
    import dlt

logger = logging.getLogger(__name__)

Batches = Iterable[tuple[str, pa.Table] | StateUpdate]
# A dlt pipeline, or a function making it when first needed (a run that needs no dlt load
# then never builds one, nor imports dlt: about 0.35 s).
PipelineOrFactory: TypeAlias = "dlt.Pipeline | Callable[[], dlt.Pipeline]"


def resolve_pipeline(pipeline: PipelineOrFactory) -> dlt.Pipeline:
    """The pipeline itself, or the one its factory makes (imports dlt)."""
    import dlt

    return pipeline if isinstance(pipeline, dlt.Pipeline) else pipeline()


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id such as ``20261122T042500Z-3fa2c1``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def safe_error(error: BaseException) -> str:
    """An error description fit for a table or a log: ours verbatim, others by type only.

    Messages of fhir-elt's own exceptions are written never to hold PHI. Messages from the
    warehouse, dlt or httpx can quote row values or URLs, so only their type is kept.
    """
    if isinstance(error, FhirEltError):
        return str(error)
    return f"{type(error).__name__} (details withheld: they may quote row values)"


def own_cause(error: BaseException) -> FhirEltError | None:
    """The fhir-elt exception that dlt wrapped (it wraps what a resource raises), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, FhirEltError):
            return current
        seen.add(id(current))
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return None


_last_load_time = 0.0
_load_time_lock = threading.Lock()


def new_load_id() -> str:
    """A load id in dlt's format: unix time as text, strictly increasing within the process.

    As ``dlt.common.storages.load_package.create_load_id`` makes them (a clock that stepped
    back, or two ids in the same microsecond, take the next float up), without importing dlt.
    """
    global _last_load_time
    with _load_time_lock:
        now = time.time()
        _last_load_time = (
            now if now > _last_load_time else math.nextafter(_last_load_time, math.inf)
        )
        return str(_last_load_time)


def merge(
    pipeline: PipelineOrFactory,
    settings: LoadSettings,
    produce: Callable[[DuckDBVersionFilter], Batches],
) -> None:
    """Merge what ``produce`` yields (landing as it goes) into the raw tables, then its state.

    Rows go straight into the raw tables through a
    :class:`~loaders.warehouse.raw_writer.RawTableWriter`, filtered by a version filter that
    reads the writer's own connection (so it also sees rows merged earlier in the run). State
    updates yielded by ``produce`` are committed by dlt after every row is committed: a cursor
    or checkpoint never gets ahead of the rows it stands for (if the process dies in between,
    the next run reads those rows again and the version filter makes them a no-op). A run
    without state updates (a file load) needs no dlt load at all: the writer creates the raw
    tables it writes to, with the columns dlt would create.

    On Snowflake (``settings.destination``) see :func:`_merge_on_snowflake`.

    Raises:
        FhirEltError: What ``produce`` raised (rows of its uncommitted group are rolled back).
        WarehouseError: The warehouse could not be written, or dlt could not commit the state.
    """
    if settings.on_snowflake:
        _merge_on_snowflake(resolve_pipeline(pipeline), settings, produce)
        return
    updates: list[StateUpdate] = []
    try:
        with RawTableWriter(
            settings.duckdb_path, new_load_id(), memory_limit=settings.duckdb_memory_limit
        ) as writer:
            for item in produce(writer.version_filter):
                if isinstance(item, StateUpdate):
                    updates.append(item)
                else:
                    writer.write(*item)
    except duckdb.Error as error:
        raise WarehouseError(
            f"the merge into the raw tables failed: {safe_error(error)}"
        ) from error
    if updates:
        _load_with_dlt(resolve_pipeline(pipeline), raw_resources(updates))


def _merge_on_snowflake(
    pipeline: dlt.Pipeline,
    settings: LoadSettings,
    produce: Callable[[DuckDBVersionFilter], Batches],
) -> None:
    """The merge on Snowflake: one dlt load of the run's rows, then one of its state.

    Batches are filtered by a :class:`~loaders.warehouse.snowflake_filter.SnowflakeVersionFilter`
    (stored versions read from Snowflake, DuckDB's decision) and merged by dlt's snowflake
    destination (merge on ``(source_system, id)``, the greatest ``version_sort_key`` winning a
    key within the load). State updates are loaded by a second dlt load, only once the rows'
    load has completed: a cursor never gets ahead of the rows it stands for. If ``produce``
    fails, nothing of the run is loaded (dlt's extract stops, no package is loaded).
    """
    from loaders.warehouse.snowflake_filter import snowflake_version_filter  # imports dlt

    updates: list[StateUpdate] = []
    with snowflake_version_filter(
        pipeline, memory_limit=settings.duckdb_memory_limit
    ) as version_filter:

        def rows() -> Iterator[tuple[str, pa.Table]]:
            for item in produce(version_filter):
                if isinstance(item, StateUpdate):
                    updates.append(item)
                else:
                    yield item

        _load_with_dlt(pipeline, snowflake_raw_resources(rows()))
    if updates:
        _load_with_dlt(pipeline, raw_resources(updates))


def _load_with_dlt(pipeline: dlt.Pipeline, data: Any) -> None:
    """Extract, normalise and load ``data`` with dlt; its failures become WarehouseError."""
    from dlt.pipeline.exceptions import PipelineStepFailed

    try:
        discard_interrupted_loads(pipeline)
        pipeline.extract(data)
        pipeline.normalize()
        pipeline.load()
    except PipelineStepFailed as failure:
        cause = own_cause(failure)
        if cause is not None:
            raise cause from failure
        raise WarehouseError(
            f"the {failure.step} step failed: {safe_error(failure.exception)}"
        ) from failure


@dataclass(frozen=True, slots=True)
class ReasonSummary:
    """How many resources were refused for one reason, and where the first one was."""

    reason: str
    count: int
    first_file: str
    first_line: int
    first_path: str

    def describe(self) -> str:
        """One line for an operator; no payload, no identifier."""
        return (
            f"{self.count} quarantined: {self.reason} (first at {self.first_file} line "
            f"{self.first_line}, path {self.first_path})"
        )


def summarise_rejects(records: Sequence[QuarantineRecord]) -> list[ReasonSummary]:
    """One summary per reason, the most frequent first."""
    by_reason: dict[RejectReason, list[QuarantineRecord]] = defaultdict(list)
    for record in records:
        by_reason[record.reason].append(record)
    return [
        ReasonSummary(
            reason=str(reason),
            count=len(group),
            first_file=group[0].source_file,
            first_line=group[0].line_number,
            first_path=group[0].json_path,
        )
        for reason, group in sorted(by_reason.items(), key=lambda pair: (-len(pair[1]), pair[0]))
    ]


def write_manifest(zone: LandingZone, run: RunRecord) -> tuple[Path | None, LandingError | None]:
    """Write the run's manifest; a failure marks the run failed instead of masking its outcome.

    Without its manifest a run's pages cannot be replayed by manifest, so a run whose manifest
    could not be written is recorded as failed even if its rows merged.
    """
    if not zone.pages:
        return None, None
    try:
        return zone.write_manifest(), None
    except LandingError as error:
        run.status = "failed"
        run.error = run.error or str(error)
        return None, error


def record_run(
    pipeline: PipelineOrFactory,
    zone: LandingZone,
    quarantined: Sequence[QuarantineRecord],
    run: RunRecord,
    requests: pa.Table | None = None,
    loaded_files: pa.Table | None = None,
    settings: LoadSettings | None = None,
) -> None:
    """Write the run's operational rows; a failure here is logged, never masks the load's.

    With DuckDB ``settings``, the rows are written straight into the warehouse, creating the
    tables a first run needs (see :mod:`loaders.warehouse.operational_writer`); dlt writes them
    on Snowflake, without ``settings``, and when a table must gain a column.
    """
    try:
        manifest = manifest_table(zone.pages)
        refused = quarantine_table(list(quarantined))
        run.add_resource_types([*run.counts_by_type, *run.merged_by_type])
        run_row = asdict(run)
        drift = take_run_findings(run.run_id)  # schema_drift rows, when the run found any
        if settings is not None:
            tables = [
                OperationalRows(
                    LOAD_RUNS,
                    run_row_table(run_row),
                    OPERATIONAL_KEYS[LOAD_RUNS],
                    with_row_id=True,
                    json_columns=LOAD_RUNS_JSON_COLUMNS,
                ),
                OperationalRows(LANDING_MANIFEST, manifest, OPERATIONAL_KEYS[LANDING_MANIFEST]),
                OperationalRows(QUARANTINE, refused, OPERATIONAL_KEYS[QUARANTINE]),
            ]
            if requests is not None:
                tables.append(OperationalRows(REQUEST_LOG, requests, OPERATIONAL_KEYS[REQUEST_LOG]))
            if loaded_files is not None:
                tables.append(
                    OperationalRows(LOADED_FILES, loaded_files, OPERATIONAL_KEYS[LOADED_FILES])
                )
            if drift is not None:
                tables.append(OperationalRows(SCHEMA_DRIFT, drift, SCHEMA_DRIFT_KEY))
            if write_operational_rows(settings, new_load_id(), tables):
                return
        resources: list[Any] = operational_resources(
            manifest, refused, run_row, requests, loaded_files
        )
        if drift is not None:
            import dlt

            resources.append(
                dlt.resource(
                    [drift],
                    name=SCHEMA_DRIFT,
                    write_disposition="merge",
                    primary_key=SCHEMA_DRIFT_KEY,
                )
            )
        dlt_pipeline = resolve_pipeline(pipeline)
        discard_interrupted_loads(dlt_pipeline)
        dlt_pipeline.run(resources)
    except Exception as error:
        logger.error("run %s: could not record the run: %s", run.run_id, safe_error(error))
