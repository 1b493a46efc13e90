"""What every load run shares: its id, its merge into the raw tables, and its record.

A run lands pages, merges them (one or more dlt loads: a backfill commits once per round of
windows), and finally writes its operational rows: ``load_runs``, ``landing_manifest``,
``quarantine`` and, for HTTP sources, ``request_log``. A run is recorded whether it succeeds or
fails, and the record never masks the run's own error.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.pipeline.exceptions import PipelineStepFailed

from loaders.exceptions import FhirEltError, LandingError, WarehouseError
from loaders.landing import LandingZone
from loaders.resources import RejectReason
from loaders.settings import LoadSettings
from loaders.warehouse.operational import (
    QuarantineRecord,
    RunRecord,
    manifest_table,
    quarantine_table,
)
from loaders.warehouse.pipeline import StateUpdate, operational_resources, raw_resources
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)

Batches = Iterable[tuple[str, pa.Table] | StateUpdate]


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


def merge(
    pipeline: dlt.Pipeline,
    settings: LoadSettings,
    produce: Callable[[DuckDBVersionFilter], Batches],
) -> None:
    """Extract what ``produce`` yields (landing as it goes), then normalise and load it.

    The version filter is open (read-only) only while extracting, so the load can write.
    State updates yielded by ``produce`` are committed with the load, atomically: a cursor or
    checkpoint never gets ahead of the rows it stands for.

    Raises:
        FhirEltError: What ``produce`` raised (dlt wraps it; it is unwrapped here).
        WarehouseError: dlt could not normalise or load.
    """
    try:
        with DuckDBVersionFilter(settings.duckdb_path) as version_filter:
            pipeline.extract(raw_resources(produce(version_filter)))
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
    pipeline: dlt.Pipeline,
    zone: LandingZone,
    quarantined: Sequence[QuarantineRecord],
    run: RunRecord,
    requests: pa.Table | None = None,
) -> None:
    """Write the run's operational rows; a failure here is logged, never masks the load's."""
    try:
        resources: list[Any] = operational_resources(
            manifest_table(zone.pages), quarantine_table(list(quarantined)), asdict(run), requests
        )
        pipeline.run(resources)
    except Exception as error:
        logger.error("run %s: could not record the run: %s", run.run_id, safe_error(error))
