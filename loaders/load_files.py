"""``fhir-elt load files``: read FHIR files, land them, merge them into the raw tables.

The order is the product's promise: a page is on disk in the landing zone before its rows are
offered to the merge, and a run is recorded (``load_runs``) whether it succeeds or fails.
Refused resources are landed in quarantine pages, listed in the ``quarantine`` table with file,
line, reason and JSON path, and never stop the rest of the input from loading.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dlt
import pyarrow as pa
from dlt.pipeline.exceptions import PipelineStepFailed

from loaders.exceptions import FhirEltError, LandingError, WarehouseError
from loaders.fhir import CORE_RESOURCE_TYPES, table_name_for
from loaders.files import InputFile, discover_input_files, iter_file_items
from loaders.landing import LandingPage, LandingZone
from loaders.landing.zone import QUARANTINE as QUARANTINE_PAGES
from loaders.landing.zone import validate_source_system
from loaders.resources import ParsedResource, Rejection, RejectReason
from loaders.settings import LoadSettings
from loaders.warehouse.operational import (
    QuarantineRecord,
    RunRecord,
    manifest_table,
    quarantine_table,
)
from loaders.warehouse.pipeline import make_pipeline, operational_resources, raw_resources
from loaders.warehouse.raw_tables import build_raw_batch, empty_raw_batch
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)


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


@dataclass(slots=True)
class LoadReport:
    """What a load did."""

    run: RunRecord
    manifest_path: Path | None
    rejects: list[ReasonSummary] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when everything loaded, 3 when some resources went to quarantine."""
        return 3 if self.run.resources_quarantined else 0


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id such as ``20261122T042500Z-3fa2c1``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _safe_error(error: BaseException) -> str:
    """An error description fit for a table or a log: ours verbatim, others by type only.

    Messages of fhir-elt's own exceptions are written never to hold PHI. Messages from the
    warehouse or dlt can quote row values, so only their type is kept.
    """
    if isinstance(error, FhirEltError):
        return str(error)
    return f"{type(error).__name__} (details withheld: they may quote row values)"


def _own_cause(error: BaseException) -> FhirEltError | None:
    """The fhir-elt exception that dlt wrapped (it wraps what a resource raises), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, FhirEltError):
            return current
        seen.add(id(current))
        current = getattr(current, "exception", None) or current.__cause__ or current.__context__
    return None


class _Extraction:
    """The extract half of a load: files -> landing pages -> filtered arrow batches."""

    def __init__(
        self,
        files: list[InputFile],
        zone: LandingZone,
        version_filter: DuckDBVersionFilter,
        run: RunRecord,
        settings: LoadSettings,
        fetched_at: datetime,
    ) -> None:
        self.files = files
        self.zone = zone
        self.version_filter = version_filter
        self.run = run
        self.settings = settings
        self.fetched_at = fetched_at
        self.quarantined: list[QuarantineRecord] = []
        self._buffers: dict[str, list[ParsedResource]] = defaultdict(list)
        self._request_ids: dict[str, list[str]] = defaultdict(list)
        self._quarantine_lines: list[bytes] = []
        self._quarantine_pending: list[QuarantineRecord] = []

    def batches(self) -> Iterator[tuple[str, pa.Table]]:
        """Yield ``(raw table, batch)`` pairs; each batch's page is landed before it is yielded."""
        page_size = self.settings.page_size
        for file_index, source in enumerate(self.files):
            self.run.files_read += 1
            request_id = f"{self.run.run_id}/file-{file_index:05d}"
            source_file = str(source.path)
            for item in iter_file_items(source):
                self.run.resources_read += 1
                result = item.result
                if isinstance(result, Rejection):
                    self._quarantine(result, source_file, item.line_number, item.raw)
                    continue
                buffer = self._buffers[result.resource_type]
                buffer.append(result)
                self._request_ids[result.resource_type].append(request_id)
                if len(buffer) >= page_size:
                    yield from self._flush(result.resource_type)
        for resource_type in list(self._buffers):
            yield from self._flush(resource_type)
        self._flush_quarantine()
        for resource_type in CORE_RESOURCE_TYPES:
            table = table_name_for(resource_type)
            if resource_type not in self.run.counts_by_type and not self.version_filter.has_table(
                table
            ):
                yield table, empty_raw_batch()

    def _flush(self, resource_type: str) -> Iterator[tuple[str, pa.Table]]:
        resources = self._buffers.pop(resource_type, [])
        request_ids = self._request_ids.pop(resource_type, [])
        if not resources:
            return
        page = self.zone.write_page(
            resource_type, [resource.text for resource in resources], self.fetched_at
        )
        table = table_name_for(resource_type)
        batch = build_raw_batch(
            resources,
            source_system=self.zone.source_system,
            fetched_at=self.fetched_at,
            request_ids=request_ids,
            landing_file=page.landing_file,
        )
        changed = self.version_filter.keep_newer(table, batch)
        run = self.run
        run.landing_pages += 1
        run.resources_landed += len(resources)
        run.resources_merged += changed.num_rows
        run.resources_unchanged += len(resources) - changed.num_rows
        run.counts_by_type[resource_type] = run.counts_by_type.get(resource_type, 0) + len(
            resources
        )
        run.merged_by_type[resource_type] = (
            run.merged_by_type.get(resource_type, 0) + changed.num_rows
        )
        if changed.num_rows:
            yield table, changed

    def _quarantine(self, rejection: Rejection, source_file: str, line: int, raw: bytes) -> None:
        record = QuarantineRecord(
            run_id=self.run.run_id,
            source_system=self.zone.source_system,
            source_file=source_file,
            line_number=line,
            resource_type=rejection.resource_type,
            resource_id=rejection.resource_id,
            reason=rejection.reason,
            json_path=rejection.json_path,
            landing_file=None,
            quarantined_at=self.fetched_at,
        )
        self.run.resources_quarantined += 1
        if raw:
            self._quarantine_lines.append(raw.replace(b"\n", b" "))
            self._quarantine_pending.append(record)
        else:
            self.quarantined.append(record)
        if len(self._quarantine_lines) >= self.settings.page_size:
            self._flush_quarantine()

    def _flush_quarantine(self) -> None:
        if not self._quarantine_lines:
            return
        page = self.zone.write_page(QUARANTINE_PAGES, self._quarantine_lines, self.fetched_at)
        for record in self._quarantine_pending:
            record.landing_file = page.landing_file
        self.quarantined.extend(self._quarantine_pending)
        self._quarantine_lines = []
        self._quarantine_pending = []


def _summarise_rejects(records: list[QuarantineRecord]) -> list[ReasonSummary]:
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


def load_files(path: Path, settings: LoadSettings, *, command: str = "load files") -> LoadReport:
    """Load every FHIR resource under ``path`` into the raw tables of the warehouse.

    Args:
        path: A file or a directory of ``.ndjson``, ``.ndjson.gz``, ``.jsonl`` or ``.json``
            (Bundle or single resource) files; names starting with ``_`` or ``.`` are skipped.
        settings: Warehouse, landing zone and source system.
        command: How the run is described in ``load_runs``.

    Returns:
        The run's record and a summary per quarantine reason.

    Raises:
        InputError: ``path`` holds nothing to load (nothing is recorded then).
        LandingError: A landing page could not be written (the run is recorded as failed).
        WarehouseError: The warehouse could not be read or merged into (recorded as failed).
    """
    validate_source_system(settings.source_system)
    files = discover_input_files(path)
    started_at = datetime.now(UTC)
    run = RunRecord(
        run_id=new_run_id(started_at),
        source_system=settings.source_system,
        command=command,
        started_at=started_at,
    )
    zone = LandingZone(settings.landing_root, settings.source_system, run.run_id)
    pipeline = make_pipeline(settings)
    extraction: _Extraction | None = None
    logger.info("run %s: loading %d file(s) from %s", run.run_id, len(files), path)
    try:
        with DuckDBVersionFilter(settings.duckdb_path) as version_filter:
            extraction = _Extraction(files, zone, version_filter, run, settings, started_at)
            pipeline.extract(raw_resources(extraction.batches()))
        pipeline.normalize()
        pipeline.load()
        run.status = "succeeded_with_rejects" if run.resources_quarantined else "succeeded"
    except PipelineStepFailed as failure:
        run.status = "failed"
        cause = _own_cause(failure)
        run.error = _safe_error(cause or failure.exception)
        if cause is not None:
            raise cause from failure
        raise WarehouseError(
            f"the {failure.step} step of run {run.run_id} failed: {run.error}"
        ) from failure
    except BaseException as error:
        run.status = "failed"
        run.error = _safe_error(error)
        raise
    finally:
        run.finished_at = datetime.now(UTC)
        manifest_path, manifest_error = _write_manifest(zone, run)
        quarantined = extraction.quarantined if extraction else []
        _record_run(pipeline, zone.pages, quarantined, run)
    if manifest_error is not None:
        # Raised only here, once nothing else is propagating: an earlier error takes precedence.
        raise manifest_error
    report = LoadReport(
        run=run, manifest_path=manifest_path, rejects=_summarise_rejects(quarantined)
    )
    logger.info(
        "run %s: %d read, %d landed, %d merged, %d unchanged, %d quarantined",
        run.run_id,
        run.resources_read,
        run.resources_landed,
        run.resources_merged,
        run.resources_unchanged,
        run.resources_quarantined,
    )
    return report


def _write_manifest(zone: LandingZone, run: RunRecord) -> tuple[Path | None, LandingError | None]:
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


def _record_run(
    pipeline: dlt.Pipeline,
    pages: list[LandingPage],
    quarantined: list[QuarantineRecord],
    run: RunRecord,
) -> None:
    """Write the run's operational rows; a failure here is logged, never masks the load's."""
    try:
        pipeline.run(
            operational_resources(
                manifest_table(pages),
                quarantine_table(quarantined),
                asdict(run),
            )
        )
    except Exception as error:
        logger.error("run %s: could not record the run: %s", run.run_id, _safe_error(error))
