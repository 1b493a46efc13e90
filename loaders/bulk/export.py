"""``fhir-elt load bulk``: kick off (or resume) an export, poll it, download, land and merge.

One run:

1. reads the ``bulk`` state (see :mod:`loaders.bulk.checkpoint`); a job in flight for this
   export is resumed, otherwise one is kicked off with ``_since`` = the last export's
   ``transactionTime`` and committed to state at once (a load with no rows);
2. polls the status URL (:mod:`loaders.bulk.status`) within ``max_poll_wait_seconds``; if the
   job is still running then, the run ends ``pending`` (exit 4) and the next scheduled run
   resumes the same job;
3. reads the manifest, following ``link[next]`` pages;
4. lands the ``error`` files in ``raw_fhir.bulk_errors`` (reported, exit 3);
5. downloads ``output`` and ``deleted`` files in parallel, verifies each by line count, lands
   it page by page and merges in batches of about ``merge_batch_resources`` resources, each
   batch's files marked finished in the same dlt load as their rows;
6. with the last batch, moves ``since`` to ``transactionTime`` and drops the job; then
   ``DELETE``\\ s the job on the server and removes the downloads.

A crash or ``kill -9`` anywhere resumes at the same job and the first unfinished file. A job
the server reports failed is dropped (the next run starts a new export from the same
``_since``) and the run fails with the server's issue codes; a job the server no longer knows
(expired) is kicked off again once, from the same ``_since``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from loaders.bulk.checkpoint import (
    BulkState,
    JobCheckpoint,
    export_key,
    export_merged,
    file_finished,
    job_dropped,
    job_started,
)
from loaders.bulk.config import BulkSourceConfig
from loaders.bulk.download import DownloadedFile, download_file
from loaders.bulk.errors import (
    BulkErrorRecord,
    bulk_errors_resource,
    bulk_errors_table,
)
from loaders.bulk.files import FileLander, land_error_file
from loaders.bulk.kickoff import build_kickoff, kick_off
from loaders.bulk.manifest import Manifest, ManifestFile, collect_manifest
from loaders.bulk.prefetch import Prefetcher
from loaders.bulk.reconcile import export_checks
from loaders.bulk.status import (
    Complete,
    ExportJobFailed,
    ExportJobGone,
    Pending,
    PollPolicy,
    wait_for_complete,
)
from loaders.exceptions import ExtractError
from loaders.http import FhirHttpClient
from loaders.ingest import PageIngest
from loaders.landing import LandingZone
from loaders.ops.metrics import run_metrics_rows, write_run_metrics
from loaders.reconcile.compare import FAILING, WindowCheck, checks_resource
from loaders.rest.progress import Progress
from loaders.rest.windows import fhir_instant
from loaders.runs import merge, new_run_id, record_run, safe_error, write_manifest
from loaders.settings import LoadSettings
from loaders.validation import validator_for
from loaders.warehouse.operational import RunRecord, request_log_table
from loaders.warehouse.pipeline import (
    StateUpdate,
    discard_interrupted_loads,
    make_pipeline,
    read_raw_state,
)
from loaders.warehouse.version_filter import DuckDBVersionFilter

logger = logging.getLogger(__name__)

DOWNLOADS = "_bulk"
_ERROR_ROWS_PER_LOAD = 50_000


@dataclass(slots=True)
class BulkReport:
    """What a Bulk Data run did.

    ``status``: ``complete`` (merged in full), ``pending`` (the server is still working: run
    again later), ``paused`` (a stop signal) or ``failed``.
    """

    run: RunRecord
    export_key: str
    status: str = "running"
    kicked_off: bool = False
    since: str | None = None
    progress: str | None = None
    polls: int = 0
    next_poll_seconds: float | None = None
    transaction_time: str | None = None
    manifest_pages: int = 0
    files_total: int = 0
    files_done_before: int = 0
    files_done: int = 0
    downloads: int = 0
    deletions: int = 0
    declared_resources: int | None = None
    job_deleted: bool = False
    errors: list[BulkErrorRecord] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """1 failed; 4 pending or paused (run again to resume); 3 quarantine or server errors."""
        if self.status == "failed":
            return 1
        if self.status in ("pending", "paused"):
            return 4
        return 3 if self.run.resources_quarantined or self.errors else 0


@dataclass(slots=True)
class BulkContext:
    """What one run shares."""

    config: BulkSourceConfig
    settings: LoadSettings
    client: FhirHttpClient
    types: tuple[str, ...]
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress | None = None


class _StillPending(Exception):
    """A manifest page is not ready yet (the server answered 202 past this run's patience)."""

    def __init__(self, pending: Pending) -> None:
        super().__init__("manifest page pending")
        self.pending = pending


def poll_policy(config: BulkSourceConfig) -> PollPolicy:
    """The polling limits of a source."""
    return PollPolicy(
        min_interval=config.min_poll_interval_seconds,
        default_interval=config.default_poll_interval_seconds,
        max_interval=config.max_poll_interval_seconds,
        max_wait=config.max_poll_wait_seconds,
        max_errors=config.max_poll_errors,
    )


def downloads_folder(settings: LoadSettings, source_system: str, job: JobCheckpoint) -> Path:
    """Where a job's files are downloaded: ``<landing>/<source>/_bulk/<job hash>/``."""
    return settings.landing_root / source_system / DOWNLOADS / job.folder


class BulkExport:
    """One run of one export (see the module docstring)."""

    def __init__(self, ctx: BulkContext, requests: list[Any] | None = None) -> None:
        self.ctx = ctx
        started_at = datetime.now(UTC)
        self.run = RunRecord(
            run_id=new_run_id(started_at),
            source_system=ctx.config.name,
            command="load bulk",
            started_at=started_at,
            credential_client_id=ctx.config.auth.credential_client_id,
        )
        self.run.add_resource_types(ctx.types)
        self.zone = LandingZone(ctx.settings.landing_root, ctx.config.name, self.run.run_id)
        self.pipeline = make_pipeline(ctx.settings)
        discard_interrupted_loads(self.pipeline)  # error files are stored before any merge
        self.key = export_key(ctx.config, ctx.types)
        self.report = BulkReport(self.run, self.key)
        if requests is not None:
            self.report.requests = requests
        self.quarantined: list[Any] = []
        self._policy = poll_policy(ctx.config)
        # Resources read per merged file (this run and earlier runs of the job), and the
        # reconciliation checks of a merged export.
        self._lines_by_file: dict[str, int] = {}
        self.checks: list[WindowCheck] = []

    # -- the run ---------------------------------------------------------------------------

    def execute(self) -> BulkReport:
        """Run the export; the run is recorded whatever happens."""
        error: BaseException | None = None
        try:
            self._execute()
        except BaseException as caught:
            error = caught
            raise
        finally:
            self._finish(error)
        return self.report

    def _execute(self) -> None:
        state = BulkState.from_state(read_raw_state(self.pipeline))
        job = state.jobs.get(self.key)
        if job is None:
            job = self._kick_off(state.since.get(self.key) or self.ctx.config.since)
        else:
            logger.info(
                "Bulk Data %s: resuming the job kicked off at %s", self.key, job.kicked_off_at
            )
        self.report.since = job.since
        try:
            outcome = self._poll(job)
        except ExportJobGone:
            self._commit([job_dropped(self.key)])
            self._remove_downloads(job)
            if self.report.kicked_off:
                raise
            logger.warning(
                "Bulk Data %s: the server no longer knows the job; starting it again", self.key
            )
            job = self._kick_off(job.since)
            outcome = self._poll(job)
        if isinstance(outcome, Pending):
            self._pending(outcome)
            return
        try:
            manifest = collect_manifest(outcome.body, self._fetch_manifest_page)
        except _StillPending as still:
            self._pending(still.pending)
            return
        except ExportJobGone:
            # A manifest page expired: the next run starts the export again.
            self._commit([job_dropped(self.key)])
            self._remove_downloads(job)
            raise
        self._merge(job, manifest)

    def _kick_off(self, since: str | None) -> JobCheckpoint:
        request = build_kickoff(self.ctx.config, since, self.ctx.types)
        started = kick_off(self.ctx.client, request)
        job = JobCheckpoint(started.status_url, fhir_instant(started.kicked_off_at), since)
        self._commit([job_started(self.key, job)])
        self.report.kicked_off = True
        logger.info(
            "Bulk Data %s: export kicked off (%s, _since %s)",
            self.key,
            request.path,
            since or "none",
        )
        return job

    def _poll(self, job: JobCheckpoint) -> Complete | Pending:
        try:
            outcome = wait_for_complete(
                self.ctx.client, job.status_url, self._policy, stop=self.ctx.stop
            )
        except ExportJobFailed:
            # The next run starts a new export from the same _since.
            self._commit([job_dropped(self.key)])
            self._remove_downloads(job)
            self._delete_on_server(job)
            raise
        self.report.polls += outcome.polls
        return outcome

    def _fetch_manifest_page(self, url: str) -> dict[str, Any]:
        outcome = wait_for_complete(
            self.ctx.client, url, self._policy, stop=self.ctx.stop, what="manifest page"
        )
        self.report.polls += outcome.polls
        if isinstance(outcome, Pending):
            raise _StillPending(outcome)
        return outcome.body

    def _pending(self, pending: Pending) -> None:
        self.report.status = "paused" if pending.paused else "pending"
        self.report.progress = pending.progress
        self.report.next_poll_seconds = pending.next_poll_seconds

    # -- files -----------------------------------------------------------------------------

    def _merge(self, job: JobCheckpoint, manifest: Manifest) -> None:
        report = self.report
        report.transaction_time = manifest.transaction_time_text
        report.manifest_pages = manifest.pages
        report.files_total = len(manifest.files)
        report.declared_resources = manifest.declared_resources
        report.files_done_before = sum(1 for f in manifest.files if f.key in job.finished)
        folder = downloads_folder(self.ctx.settings, self.ctx.config.name, job)
        self._lines_by_file = dict(job.finished)
        todo = [entry for entry in manifest.files if entry.key not in job.finished]
        if self.ctx.progress is not None:
            self.ctx.progress.plan(len(todo))
        finished: list[StateUpdate] = self._land_errors(
            job, manifest, [e for e in todo if e.kind == "error"], folder
        )
        data = [entry for entry in todo if entry.kind != "error"]

        def fetch(entry: ManifestFile) -> DownloadedFile:
            return self._download(entry, manifest, folder)

        # One ingest for the whole run: its version filter is swapped in per load, so a file
        # may straddle two loads (a batch never grows with file size).
        page_size = self.ctx.settings.page_size
        ingest = PageIngest(
            self.zone,
            None,  # type: ignore[arg-type]
            self.run,
            page_size,
            validator=validator_for(self.ctx.settings.validation),
        )
        lander = FileLander(ingest, page_size)
        concurrency = self.ctx.config.download_concurrency
        try:
            with Prefetcher(data, fetch, concurrency, self.ctx.stop) as files:
                stream = self._stream(files, lander, manifest.transaction_time_text)
                while True:
                    consumed: list[DownloadedFile] = []
                    done = self._merge_batch(job, manifest, stream, ingest, consumed, finished)
                    finished = []
                    for file in consumed:
                        self._lines_by_file[file.entry.key] = file.lines
                        file.path.unlink(missing_ok=True)
                    if done:
                        break
                    if self.ctx.stop.is_set():
                        report.status = "paused"
                        return
        finally:
            report.deletions += lander.deletions
            self.quarantined.extend(ingest.quarantined)
        report.status = "complete"
        self.checks = export_checks(manifest, self._lines_by_file, job.since, datetime.now(UTC))
        if self.ctx.config.delete_job_when_done:
            self._delete_on_server(job)
        self._remove_downloads(job)

    def _download(self, entry: ManifestFile, manifest: Manifest, folder: Path) -> DownloadedFile:
        config = self.ctx.config
        same_host = _origin(entry.url) == _origin(self.ctx.client.base_url)
        send_token = manifest.requires_access_token and (
            same_host or config.send_token_to_other_hosts
        )
        return download_file(
            self.ctx.client,
            entry,
            folder,
            send_token=send_token,
            allow_other_hosts=config.allow_other_output_hosts,
            attempts=config.download_attempts,
        )

    def _stream(
        self,
        files: Prefetcher[ManifestFile, DownloadedFile],
        lander: FileLander,
        deleted_by: str,
    ) -> Iterator[tuple[str, Any] | DownloadedFile]:
        """Landed batches of every file in order, each file followed by itself once done.

        Stops taking new files on a stop signal (files in flight stay on disk for resume).
        """
        while not self.ctx.stop.is_set():
            file = files.next()
            if file is None:
                return
            if file.entry.kind == "deleted":
                yield from lander.deleted(file, deleted_by)
            else:
                yield from lander.output(file)
            self._file_done(file)
            yield file

    def _merge_batch(
        self,
        job: JobCheckpoint,
        manifest: Manifest,
        stream: Iterator[tuple[str, Any] | DownloadedFile],
        ingest: PageIngest,
        consumed: list[DownloadedFile],
        carried: list[StateUpdate],
    ) -> bool:
        """One dlt load of about ``merge_batch_resources`` resources; True once all is merged.

        Files whose last rows are in this load are marked finished in it; a file cut by the
        batch limit is marked in a later load (read again in full after a crash; the version
        filter makes the part already merged a no-op).
        """
        limit = self.ctx.config.merge_batch_resources
        outcome = {"done": False}

        def produce(version_filter: DuckDBVersionFilter) -> Iterator[Any]:
            ingest.version_filter = version_filter
            landed_before = self.run.resources_landed
            for item in stream:
                if isinstance(item, DownloadedFile):
                    consumed.append(item)
                else:
                    yield item
                if self.run.resources_landed - landed_before >= limit:
                    break
            else:
                outcome["done"] = not self.ctx.stop.is_set()
            ingest.flush_quarantine(datetime.now(UTC))
            yield from carried
            for file in consumed:
                yield file_finished(self.key, file.entry.key, file.lines)
            if outcome["done"]:
                yield from ingest.empty_core_tables()
                summary = self._summary(job, manifest)
                yield from export_merged(self.key, manifest.transaction_time_text, summary)

        merge(self.pipeline, self.ctx.settings, produce)
        self.report.files_done += len(consumed)
        return outcome["done"]

    def _file_done(self, file: DownloadedFile) -> None:
        self.report.downloads += file.attempts
        if self.ctx.progress is not None:
            self.ctx.progress("page", file.lines)
            self.ctx.progress("task", 1)

    def _summary(self, job: JobCheckpoint, manifest: Manifest) -> dict[str, Any]:
        return {
            "transaction_time": manifest.transaction_time_text,
            "since": job.since,
            "kicked_off_at": job.kicked_off_at,
            "merged_at": fhir_instant(datetime.now(UTC)),
            "files": len(manifest.files),
            "declared_resources": manifest.declared_resources,
            "run_id": self.run.run_id,
        }

    def _land_errors(
        self, job: JobCheckpoint, manifest: Manifest, entries: list[ManifestFile], folder: Path
    ) -> list[StateUpdate]:
        """Store the error files' issues now; their finished marks go with the next load.

        ``bulk_errors`` rows are keyed by job, file, line and issue, so if the run dies before
        those marks commit, reading the files again adds no row.
        """
        if not entries:
            return []
        updates = []
        records: list[BulkErrorRecord] = []
        for entry in entries:
            file = self._download(entry, manifest, folder)
            records.extend(
                land_error_file(
                    self.zone,
                    self.run,
                    file,
                    self.ctx.settings.page_size,
                    export_key=self.key,
                    job_id=job.folder,
                )
            )
            updates.append(file_finished(self.key, entry.key, file.lines))
            self._file_done(file)
            self.report.files_done += 1
        for start in range(0, len(records), _ERROR_ROWS_PER_LOAD):
            chunk = records[start : start + _ERROR_ROWS_PER_LOAD]
            self.pipeline.run(bulk_errors_resource(bulk_errors_table(chunk)))
        self.report.errors.extend(records)
        logger.warning(
            "Bulk Data %s: the server listed %d issue(s) in %d error file(s)",
            self.key,
            len(records),
            len(entries),
        )
        return updates

    # -- bookkeeping -----------------------------------------------------------------------

    def _commit(self, updates: list[StateUpdate]) -> None:
        """Commit state with no rows (a kick-off, a dropped job)."""

        def produce(version_filter: DuckDBVersionFilter) -> Iterator[Any]:
            yield from updates

        merge(self.pipeline, self.ctx.settings, produce)

    def _delete_on_server(self, job: JobCheckpoint) -> None:
        """``DELETE`` the job on the server; a failure is logged (servers expire jobs)."""
        try:
            answer = self.ctx.client.send(
                "DELETE", job.status_url, answer_statuses=frozenset({404, 410})
            )
        except ExtractError as error:
            logger.warning(
                "Bulk Data %s: could not delete the job on the server: %s", self.key, error
            )
            return
        self.report.job_deleted = answer.status < 300
        logger.info("Bulk Data %s: job deleted on the server (%d)", self.key, answer.status)

    def _remove_downloads(self, job: JobCheckpoint) -> None:
        shutil.rmtree(
            downloads_folder(self.ctx.settings, self.ctx.config.name, job), ignore_errors=True
        )

    def _finish(self, error: BaseException | None) -> None:
        run = self.run
        report = self.report
        if error is not None:
            report.status = "failed"
            run.status, run.error = "failed", safe_error(error)
        elif report.status in ("pending", "paused"):
            run.status = report.status
        elif run.resources_quarantined or report.errors:
            run.status = "succeeded_with_rejects"
        else:
            run.status = "succeeded"
        run.finished_at = datetime.now(UTC)
        write_manifest(self.zone, run)
        self._record_checks()
        requests = request_log_table(run.run_id, run.source_system, report.requests)
        record_run(self.pipeline, self.zone, self.quarantined, run, requests)
        if report.status == "complete":
            self._record_metrics()

    def _record_metrics(self) -> None:
        """``run_metrics`` of a merged export: per type what landed and merged, the run's
        requests (downloads, polls) in the untyped row; a failure is logged."""
        rows = run_metrics_rows(
            self.run,
            {},
            self.report.requests,
            self.quarantined,
            token_refreshes=self.ctx.client.counters.token_refreshes,
        )
        write_run_metrics(self.ctx.settings, rows)

    def _record_checks(self) -> None:
        """Write the merged export's checks; a failure is logged (the export is merged)."""
        if not self.checks:
            return
        failing = [check.resource_type for check in self.checks if check.status in FAILING]
        if failing:
            logger.warning(
                "Bulk Data %s: resources read differ from the manifest's counts for %s",
                self.key,
                ", ".join(failing),
            )
        try:
            self.pipeline.run(checks_resource(self.checks, self.run.run_id, self.run.source_system))
        except Exception as error:
            logger.error(
                "run %s: could not record its reconciliation checks: %s",
                self.run.run_id,
                safe_error(error),
            )


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host, parsed.port or default


def run_export(ctx: BulkContext, requests: list[Any] | None = None) -> BulkReport:
    """Run one Bulk Data export (see the module docstring); the run is always recorded."""
    settings = replace(ctx.settings, source_system=ctx.config.name)
    return BulkExport(replace(ctx, settings=settings), requests).execute()
