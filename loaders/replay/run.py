"""``fhir-elt replay``: rebuild the raw tables from the landing zone alone, without the source.

For each source system, the selected pages (see :mod:`loaders.replay.selection`) are checked
against their manifests first: a missing or altered page stops the replay before anything is
merged, naming the file. Then, in landing order, each page's lines are parsed again and merged
through the path every loader uses (:func:`loaders.runs.merge`: version filter, raw writer),
with the columns the live run gave them: ``fetched_at`` is the page's ``created_at``,
``request_id`` comes from the manifest, ``landing_file`` is the page itself, so
``content_hash`` and ``version_sort_key`` come out the same. Deletions in ``_deleted`` pages
are merged as the live run merged them (:mod:`loaders.replay.deletions`). Nothing is landed
again. Replaying into a warehouse that already holds the rows changes no row (the version
filter drops every unchanged one), so a replay can be repeated or resumed after a failure.

Each source system's replay is recorded as a run (``load_runs.command = 'replay'``) and the
replayed pages' manifest rows are restored in ``landing_manifest``. Not restored: the
``quarantine`` rows (their file, line and reason are not in the landing zone; the original bytes
are), request logs, and dlt state (REST cursors, Bulk checkpoints): a rebuilt warehouse's next
``load rest`` starts from the beginning and merges nothing it already holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path

import pyarrow as pa

from loaders.exceptions import LandingIntegrityError
from loaders.fhir import CORE_RESOURCE_TYPES, table_name_for
from loaders.landing import LandingPage, LandingZone, read_page
from loaders.landing.zone import expand_run_lengths
from loaders.replay.deletions import replay_deletions
from loaders.replay.selection import (
    DELETED_PAGES,
    ReplayOptions,
    select_pages,
    source_systems,
    verify_pages,
)
from loaders.resources import ParsedResource, parse_resource_bytes
from loaders.runs import merge, new_run_id, record_run, safe_error
from loaders.settings import LoadSettings
from loaders.warehouse.operational import RunRecord
from loaders.warehouse.pipeline import make_pipeline
from loaders.warehouse.raw_tables import build_raw_batch, empty_raw_batch
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)

COMMAND = "replay"


@dataclass(slots=True)
class SourceReplay:
    """One source system's replay.

    Attributes:
        run: Its run record (``resources_quarantined`` counts landed lines that no longer
            parse: they are skipped, and stay in their page).
        unlisted: Pages on disk that no manifest lists (not replayed).
        refused_pages: The pages holding lines that no longer parse.
    """

    run: RunRecord
    unlisted: list[str] = field(default_factory=list)
    refused_pages: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ReplayReport:
    """What a replay did, per source system."""

    sources: list[SourceReplay] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every landed line merged (or was unchanged), 3 when some no longer parse."""
        return 3 if any(source.run.resources_quarantined for source in self.sources) else 0


def replay(settings: LoadSettings, options: ReplayOptions) -> ReplayReport:
    """Rebuild the raw tables of ``settings.duckdb_path`` from ``settings.landing_root``.

    Raises:
        LandingError: No landing zone or manifests to replay.
        LandingIntegrityError: A selected page is missing or does not match its manifest
            (nothing of that source system is merged; earlier source systems stay merged).
        WarehouseError: The warehouse could not be written (the run is recorded as failed).
    """
    report = ReplayReport()
    for source_system in source_systems(settings.landing_root, options.source_system):
        report.sources.append(
            _replay_source(replace(settings, source_system=source_system), options)
        )
    return report


def _replay_source(settings: LoadSettings, options: ReplayOptions) -> SourceReplay:
    root = settings.landing_root
    selection = select_pages(root, settings.source_system, options)
    started_at = datetime.now(UTC)
    run = RunRecord(new_run_id(started_at), settings.source_system, COMMAND, started_at)
    result = SourceReplay(run, unlisted=selection.unlisted)
    # Writes nothing: its page list becomes the replayed pages' landing_manifest rows.
    zone = LandingZone(root, settings.source_system, run.run_id)
    pipeline = cache(partial(make_pipeline, settings))
    logger.info(
        "run %s: replaying %d page(s) of %s",
        run.run_id,
        len(selection.pages),
        settings.source_system,
    )
    try:
        verify_pages(root, selection.pages)
        merge(pipeline, settings, partial(_batches, root, selection.pages, options, zone, result))
        run.status = "succeeded_with_rejects" if run.resources_quarantined else "succeeded"
    except BaseException as error:
        run.status = "failed"
        run.error = safe_error(error)
        raise
    finally:
        run.finished_at = datetime.now(UTC)
        record_run(pipeline, zone, [], run, settings=settings)
    return result


def _request_ids(page: LandingPage, count: int) -> list[str | None]:
    if page.request_ids is not None:
        expanded = expand_run_lengths(page.request_ids)
        if len(expanded) == count:
            return expanded
        logger.warning("%s: request ids do not match its lines; left empty", page.landing_file)
    return [None] * count


def _lines(root: Path, page: LandingPage) -> list[bytes]:
    try:
        return list(read_page(root, page))
    except FileNotFoundError as error:
        raise LandingIntegrityError(
            f"landing page {page.landing_file} (run {page.run_id}) is missing"
        ) from error


def _batches(
    root: Path,
    pages: Sequence[LandingPage],
    options: ReplayOptions,
    zone: LandingZone,
    result: SourceReplay,
    version_filter: DuckDBVersionFilter,
) -> Iterator[tuple[str, pa.Table]]:
    run = result.run
    for page in pages:
        lines = _lines(root, page)
        request_ids = _request_ids(page, len(lines))
        run.landing_pages += 1
        zone.pages.append(page)
        if page.resource_type == DELETED_PAGES:
            deletions = replay_deletions(page, lines, request_ids, version_filter, options.types)
            refused = deletions.refused
            for table, changed, read in deletions.batches:
                _count(run, page.resource_type, read, changed.num_rows)
                if changed.num_rows:
                    yield table, changed
        else:
            resources, ids, refused = _parse(page, lines, request_ids)
            table = table_name_for(page.resource_type)
            batch = build_raw_batch(
                resources,
                source_system=page.source_system,
                fetched_at=page.created_at,
                request_ids=ids,
                landing_file=page.landing_file,
            )
            changed = version_filter.keep_newer(table, batch)
            _count(run, page.resource_type, len(resources), changed.num_rows)
            if changed.num_rows:
                yield table, changed
        if refused:
            run.resources_read += refused
            run.resources_quarantined += refused
            result.refused_pages.append(page.landing_file)
    if not options.types:  # every core table exists after a replay, as after a live run
        for resource_type in CORE_RESOURCE_TYPES:
            table = table_name_for(resource_type)
            if not version_filter.has_table(table):
                yield table, empty_raw_batch()


def _parse(
    page: LandingPage, lines: Sequence[bytes], request_ids: Sequence[str | None]
) -> tuple[list[ParsedResource], list[str | None], int]:
    """The page's resources (of the page's type) and their request ids; lines refused."""
    resources: list[ParsedResource] = []
    ids: list[str | None] = []
    for line, request_id in zip(lines, request_ids, strict=True):
        parsed = parse_resource_bytes(line)
        if isinstance(parsed, ParsedResource) and parsed.resource_type == page.resource_type:
            resources.append(parsed)
            ids.append(request_id)
    return resources, ids, len(lines) - len(resources)


def _count(run: RunRecord, resource_type: str, read: int, merged: int) -> None:
    run.resources_read += read
    run.resources_merged += merged
    run.resources_unchanged += read - merged
    run.counts_by_type[resource_type] = run.counts_by_type.get(resource_type, 0) + read
    run.merged_by_type[resource_type] = run.merged_by_type.get(resource_type, 0) + merged
