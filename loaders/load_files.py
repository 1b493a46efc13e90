"""``fhir-elt load files``: read FHIR files, land them, merge them into the raw tables.

The order is the product's promise: a page is on disk in the landing zone before its rows are
offered to the merge, and a run is recorded (``load_runs``) whether it succeeds or fails.
Refused resources are landed in quarantine pages, listed in the ``quarantine`` table with file,
line, reason and JSON path, and never stop the rest of the input from loading.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from loaders.files import InputFile, discover_input_files, iter_file_items
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.landing.zone import validate_source_system
from loaders.resources import ParsedResource, Rejection
from loaders.runs import (
    ReasonSummary,
    merge,
    new_run_id,
    record_run,
    safe_error,
    summarise_rejects,
    write_manifest,
)
from loaders.settings import LoadSettings
from loaders.warehouse.operational import RunRecord
from loaders.warehouse.pipeline import make_pipeline
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)


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


class _FileExtraction:
    """The extract half of a file load: files -> landing pages -> filtered arrow batches."""

    def __init__(
        self, files: list[InputFile], zone: LandingZone, run: RunRecord, settings: LoadSettings
    ) -> None:
        self.files = files
        self.zone = zone
        self.run = run
        self.settings = settings
        self.ingest: PageIngest | None = None
        self._buffers: dict[str, list[ParsedResource]] = defaultdict(list)
        self._request_ids: dict[str, list[str]] = defaultdict(list)

    def batches(self, version_filter: DuckDBVersionFilter) -> Iterator[tuple[str, pa.Table]]:
        """Yield ``(raw table, batch)`` pairs; each batch's page is landed before it is yielded."""
        ingest = self.ingest = PageIngest(
            self.zone, version_filter, self.run, self.settings.page_size
        )
        page_size = self.settings.page_size
        read_at = self.run.started_at
        for file_index, source in enumerate(self.files):
            self.run.files_read += 1
            request_id = f"{self.run.run_id}/file-{file_index:05d}"
            source_file = str(source.path)
            for item in iter_file_items(source):
                self.run.resources_read += 1
                result = item.result
                if isinstance(result, Rejection):
                    ingest.quarantine(result, source_file, item.line_number, item.raw, read_at)
                    continue
                buffer = self._buffers[result.resource_type]
                buffer.append(result)
                self._request_ids[result.resource_type].append(request_id)
                if len(buffer) >= page_size:
                    yield from self._flush(result.resource_type)
        for resource_type in list(self._buffers):
            yield from self._flush(resource_type)
        ingest.flush_quarantine(read_at)
        yield from ingest.empty_core_tables()

    def _flush(self, resource_type: str) -> Iterator[tuple[str, pa.Table]]:
        assert self.ingest is not None
        landed = self.ingest.land(
            resource_type,
            self._buffers.pop(resource_type, []),
            self._request_ids.pop(resource_type, []),
            self.run.started_at,
        )
        if landed is not None:
            yield landed


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
    extraction = _FileExtraction(files, zone, run, settings)
    logger.info("run %s: loading %d file(s) from %s", run.run_id, len(files), path)
    try:
        merge(pipeline, settings, extraction.batches)
        run.status = "succeeded_with_rejects" if run.resources_quarantined else "succeeded"
    except BaseException as error:
        run.status = "failed"
        run.error = safe_error(error)
        raise
    finally:
        run.finished_at = datetime.now(UTC)
        manifest_path, manifest_error = write_manifest(zone, run)
        quarantined = extraction.ingest.quarantined if extraction.ingest else []
        record_run(pipeline, zone, quarantined, run)
    if manifest_error is not None:
        # Raised only here, once nothing else is propagating: an earlier error takes precedence.
        raise manifest_error
    logger.info(
        "run %s: %d read, %d landed, %d merged, %d unchanged, %d quarantined",
        run.run_id,
        run.resources_read,
        run.resources_landed,
        run.resources_merged,
        run.resources_unchanged,
        run.resources_quarantined,
    )
    return LoadReport(run=run, manifest_path=manifest_path, rejects=summarise_rejects(quarantined))
