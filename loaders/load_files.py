"""``fhir-elt load files``: read FHIR files, land them, merge them into the raw tables.

The order is the product's promise: a page is on disk in the landing zone before its rows are
offered to the merge, and a run is recorded (``load_runs``) whether it succeeds or fails.
Refused resources are landed in quarantine pages, listed in the ``quarantine`` table with file,
line, reason and JSON path, and never stop the rest of the input from loading.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path

import pyarrow as pa

from loaders.exceptions import SchemaDriftError
from loaders.files import InputFile, discover_input_files
from loaders.files.column_pages import BlockParser, ColumnPage, read_column_pages, workers_for
from loaders.files.fingerprints import (
    AlreadyLoaded,
    LoadedFile,
    find_already_loaded,
    loaded_files_table,
)
from loaders.files.prefetch import FileRead, Prefetch, Refused
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.landing.zone import validate_source_system
from loaders.resources import RejectReason
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
from loaders.validation import Validator, validator_for
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
    validator: Validator | None = None

    @property
    def exit_code(self) -> int:
        """0 when everything loaded, 3 when some resources went to quarantine."""
        return 3 if self.run.resources_quarantined else 0


class _FileExtraction:
    """The extract half of a file load: files -> landing pages -> filtered arrow batches.

    Files already loaded with the same content are skipped (see
    :mod:`loaders.files.fingerprints`); the others are read on a background thread
    (:class:`loaders.files.prefetch.Prefetch`) and parsed in worker processes
    (:mod:`loaders.files.column_pages`) while this thread lands, filters and merges.
    """

    def __init__(
        self,
        files: list[InputFile],
        zone: LandingZone,
        run: RunRecord,
        settings: LoadSettings,
        already_loaded: dict[Path, AlreadyLoaded],
    ) -> None:
        self.files = files
        self.zone = zone
        self.run = run
        self.settings = settings
        self.already_loaded = already_loaded
        self.ingest: PageIngest | None = None
        self.loaded_files: list[LoadedFile] = []
        self.validator = validator_for(settings.validation)
        self.parser = BlockParser(0)  # load_files starts the worker processes, if any

    def batches(self, version_filter: DuckDBVersionFilter) -> Iterator[tuple[str, pa.Table]]:
        """Yield ``(raw table, batch)`` pairs; each batch's page is landed before it is yielded."""
        ingest = self.ingest = PageIngest(
            self.zone, version_filter, self.run, self.settings.page_size, validator=self.validator
        )
        read_at = self.run.started_at
        to_read = []
        for index, source in enumerate(self.files):
            skipped = self.already_loaded.get(source.path)
            if skipped is None:
                to_read.append((index, source))
            else:
                self._skip(skipped)
        pages = read_column_pages(
            to_read,
            self.settings.page_size,
            self.run.run_id,
            self.parser,
            self.zone.compresslevel,
        )
        with Prefetch(pages) as messages:
            for message in messages:
                if isinstance(message, ColumnPage):
                    self.run.resources_read += message.rows.num_rows
                    landed = _land(ingest, message, read_at)
                    if landed is not None:
                        yield landed
                elif isinstance(message, Refused):
                    self.run.resources_read += 1
                    item = message.item
                    ingest.quarantine(
                        message.rejection, message.source_file, item.line_number, item.raw, read_at
                    )
                else:
                    self._read(message)
        ingest.flush_quarantine(read_at)
        self._count_invalid(ingest)
        yield from ingest.empty_core_tables()

    def _count_invalid(self, ingest: PageIngest) -> None:
        """Add resources validation refused to their files' rows, so those files are read again."""
        invalid: dict[str, int] = {}
        for record in ingest.quarantined:
            if record.reason is RejectReason.INVALID_FHIR_RESOURCE:
                invalid[record.source_file] = invalid.get(record.source_file, 0) + 1
        for loaded in self.loaded_files:
            loaded.resources_quarantined += invalid.get(loaded.source_file, 0)

    def _read(self, done: FileRead) -> None:
        self.run.files_read += 1
        self.loaded_files.append(
            LoadedFile(
                run_id=self.run.run_id,
                source_system=self.zone.source_system,
                source_file=str(done.source.path),
                size_bytes=done.source.path.stat().st_size,
                sha256=done.sha256,
                resources_read=done.items,
                resources_quarantined=done.refused,
                skipped=False,
                read_at=self.run.started_at,
            )
        )

    def _skip(self, skipped: AlreadyLoaded) -> None:
        self.run.files_read += 1
        self.run.resources_read += skipped.resources
        self.run.resources_unchanged += skipped.resources
        self.loaded_files.append(
            LoadedFile(
                run_id=self.run.run_id,
                source_system=self.zone.source_system,
                source_file=str(skipped.source.path),
                size_bytes=skipped.size_bytes,
                sha256=skipped.sha256,
                resources_read=skipped.resources,
                resources_quarantined=0,
                skipped=True,
                read_at=self.run.started_at,
            )
        )


def _land(ingest: PageIngest, page: ColumnPage, read_at: datetime) -> tuple[str, pa.Table] | None:
    """Land one page; a drift failure's message also names the input files the page came from.

    (The drift ledger names the landing page; a user of ``load files`` looks for the input file.)
    """
    try:
        return ingest.land_columns(
            page.resource_type,
            page.rows,
            page.request_ids,
            read_at,
            page.drift,
            page.origins,
            page.landing_bytes,
        )
    except SchemaDriftError as error:
        sources = page.source_files
        more = f" and {len(sources) - 3} more" if len(sources) > 3 else ""
        shown = ", ".join(sources[:3]) + more
        raise SchemaDriftError(f"{error} (input file(s): {shown})") from error


def load_files(
    path: Path,
    settings: LoadSettings,
    *,
    command: str = "load files",
    skip_loaded_files: bool = True,
) -> LoadReport:
    """Load every FHIR resource under ``path`` into the raw tables of the warehouse.

    Args:
        path: A file or a directory of ``.ndjson``, ``.ndjson.gz``, ``.jsonl`` or ``.json``
            (Bundle or single resource) files; names starting with ``_`` or ``.`` are skipped.
        settings: Warehouse, landing zone and source system.
        command: How the run is described in ``load_runs``.
        skip_loaded_files: Skip files whose exact content an earlier successful run of this
            source system loaded with nothing refused (counted as read and unchanged); False
            reads every file again. On Snowflake every file is read (the fingerprints live in
            the DuckDB file only).

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
    pipeline = cache(partial(make_pipeline, settings))  # built only if dlt is needed
    extraction = _FileExtraction(files, zone, run, settings, {})
    logger.info("run %s: loading %d file(s) from %s", run.run_id, len(files), path)
    try:
        # The fingerprints are read from the DuckDB file: on Snowflake every file is read again
        # (the version filter still makes unchanged resources a no-op).
        if skip_loaded_files and not settings.on_snowflake:
            extraction.already_loaded = find_already_loaded(
                settings.duckdb_path, settings.source_system, files
            )
            if extraction.already_loaded:
                logger.info(
                    "run %s: %d file(s) already loaded with the same content, skipped",
                    run.run_id,
                    len(extraction.already_loaded),
                )
        to_parse = [f for f in files if f.path not in extraction.already_loaded]
        # Worker processes are forked here, before the merge opens the warehouse.
        with BlockParser(workers_for(to_parse)) as extraction.parser:
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
        read = loaded_files_table(extraction.loaded_files)
        record_run(pipeline, zone, quarantined, run, loaded_files=read, settings=settings)
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
    if extraction.validator is not None:
        logger.info("run %s: %s", run.run_id, extraction.validator.describe())
    return LoadReport(
        run=run,
        manifest_path=manifest_path,
        rejects=summarise_rejects(quarantined),
        validator=extraction.validator,
    )
