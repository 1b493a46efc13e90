"""Land downloaded Bulk Data files page by page: resources, deletions and server errors.

A file is read line by line (never whole), so memory holds at most one landing page per
resource type. Each line is parsed on its own and grouped by its own ``resourceType``: with
``organizeOutputBy=Patient`` one file holds every type of a set of patients, and ``output.type``
says only ``Patient``. Refused lines go to quarantine with the file's label (``output 3
(Observation)``) and line number; never the file's URL or name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from loaders.bulk.deleted import Deletion, land_tombstones, parse_deleted_line, tombstone
from loaders.bulk.download import DownloadedFile
from loaders.bulk.errors import ERROR_PAGES, BulkErrorRecord, error_records
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.resources import ParsedResource, Rejection, parse_resource_bytes
from loaders.warehouse.operational import RunRecord

Batch = tuple[str, pa.Table]


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for every non-blank line of an NDJSON file, streamed."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


class FileLander:
    """Lands the files of one export through one :class:`PageIngest` (one merge batch).

    Args:
        ingest: Lands pages, filters them and counts the run.
        page_size: Resources per landing page (per type).
    """

    def __init__(self, ingest: PageIngest, page_size: int) -> None:
        self.ingest = ingest
        self.page_size = page_size
        self.deletions = 0

    def output(self, file: DownloadedFile) -> Iterator[Batch]:
        """Land an ``output`` file; yield the rows that change the raw tables."""
        ingest = self.ingest
        run = ingest.run
        run.files_read += 1
        source = f"bulk {file.entry.label}"
        buffers: dict[str, list[ParsedResource]] = defaultdict(list)
        for number, raw in read_lines(file.path):
            run.resources_read += 1
            parsed = parse_resource_bytes(raw)
            if isinstance(parsed, Rejection):
                ingest.quarantine(parsed, source, number, raw, file.fetched_at)
                continue
            buffer = buffers[parsed.resource_type]
            buffer.append(parsed)
            if len(buffer) >= self.page_size:
                yield from self._land(parsed.resource_type, buffers.pop(parsed.resource_type), file)
        for resource_type in list(buffers):
            yield from self._land(resource_type, buffers.pop(resource_type), file)

    def _land(
        self, resource_type: str, resources: list[ParsedResource], file: DownloadedFile
    ) -> Iterator[Batch]:
        landed = self.ingest.land(
            resource_type, resources, [file.request_id] * len(resources), file.fetched_at
        )
        if landed is not None:
            yield landed

    def deleted(self, file: DownloadedFile, deleted_by: str) -> Iterator[Batch]:
        """Land a ``deleted`` file as tombstones stamped ``deleted_by`` (``transactionTime``)."""
        ingest = self.ingest
        ingest.run.files_read += 1
        source = f"bulk {file.entry.label}"
        buffers: dict[str, list[Deletion]] = defaultdict(list)
        for number, raw in read_lines(file.path):
            parsed = parse_deleted_line(raw)
            if isinstance(parsed, Rejection):
                ingest.quarantine(parsed, source, number, raw, file.fetched_at)
                continue
            for deletion in parsed:
                buffer = buffers[deletion.resource_type]
                buffer.append(deletion)
                if len(buffer) >= self.page_size:
                    yield from self._tombstones(
                        buffers.pop(deletion.resource_type), file, deleted_by
                    )
        for resource_type in list(buffers):
            yield from self._tombstones(buffers.pop(resource_type), file, deleted_by)

    def _tombstones(
        self, deletions: list[Deletion], file: DownloadedFile, deleted_by: str
    ) -> Iterator[Batch]:
        # One entry per key: a server may list a deletion twice; one tombstone is enough.
        unique = list(dict.fromkeys(deletions))
        self.deletions += len(unique)
        stubs = [tombstone(deletion, deleted_by) for deletion in unique]
        landed = land_tombstones(
            self.ingest,
            unique[0].resource_type,
            stubs,
            [file.request_id] * len(stubs),
            file.fetched_at,
        )
        if landed is not None:
            yield landed


def land_error_file(
    zone: LandingZone,
    run: RunRecord,
    file: DownloadedFile,
    page_size: int,
    *,
    export_key: str,
    job_id: str,
) -> list[BulkErrorRecord]:
    """Land an ``error`` file's lines in ``_bulk_errors`` pages; return its issue rows."""
    run.files_read += 1
    records: list[BulkErrorRecord] = []
    page: list[tuple[int, bytes]] = []

    def flush() -> None:
        if not page:
            return
        zone.write_page(ERROR_PAGES, [raw for _, raw in page], file.fetched_at)
        run.landing_pages += 1
        records.extend(
            error_records(
                page,
                run_id=run.run_id,
                source_system=zone.source_system,
                export_key=export_key,
                job_id=job_id,
                file_key=file.entry.key,
                file_label=file.entry.label,
                at=file.fetched_at,
            )
        )
        page.clear()

    for number, raw in read_lines(file.path):
        page.append((number, raw))
        if len(page) >= page_size:
            flush()
    flush()
    return records
