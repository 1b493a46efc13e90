"""Bulk Data export jobs of the test server: state, readiness, files and manifests.

A job freezes its selection at kick-off (store entries are immutable, so holding them is a
snapshot); its NDJSON files are built once, on the first request that needs them, and the
selection is then dropped so only the file bytes stay in memory.
"""

from __future__ import annotations

import math
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

from tests.fhir_server.bulk_files import DELETED, ERROR, OUTPUT, ExportFile, build_files
from tests.fhir_server.bulk_params import ExportParams
from tests.fhir_server.bulk_select import Selection, patient_of
from tests.fhir_server.bulk_urls import file_path, manifest_path
from tests.fhir_server.fhirtime import format_instant

IN_PROGRESS, COMPLETE, FAILED, DELETED_JOB = "in-progress", "complete", "failed", "deleted"


@dataclass(frozen=True, slots=True)
class BulkJobInfo:
    """What a test can see of one export job (``server.bulk_jobs()``).

    Attributes:
        state: ``in-progress``, ``complete``, ``failed`` or ``deleted``.
        kicked_off_at: Server-clock time of the kick-off.
        transaction_time: The manifest's ``transactionTime``.
        polls: Status polls answered for this job (202, 200 or 500; not the 429s).
        downloads: File requests answered 200 (truncated and short ones included).
        deleted: Deleted-resource entries the export reports.
        job_id: The job id (also the dict key).
        level: ``system``, ``patient`` or ``group``.
        resources: Lines in the job's output files.
    """

    state: str
    kicked_off_at: datetime
    transaction_time: datetime
    polls: int
    downloads: int
    deleted: int
    job_id: str
    level: str
    resources: int


@dataclass(frozen=True, slots=True)
class JobSettings:
    """Scenario values a job reads once, at kick-off.

    Attributes:
        polls_before_ready: Polls answered 202 first.
        ready_at: Server-clock time before which the job is in progress.
        fail: The job ends failed.
        error_outcomes: Lines of the error file.
        manifest_page_size: Outputs per manifest page (``None``: one page).
        requires_access_token: The manifest's ``requiresAccessToken``.
    """

    polls_before_ready: int
    ready_at: datetime
    fail: bool
    error_outcomes: int
    manifest_page_size: int | None
    requires_access_token: bool


class BulkJob:
    """One ``$export`` job; thread-safe."""

    def __init__(
        self,
        params: ExportParams,
        selection: Selection,
        settings: JobSettings,
        *,
        request_url: str,
        kicked_off_at: datetime,
        transaction_time: datetime,
    ) -> None:
        self.job_id = secrets.token_hex(16)
        self.params = params
        self.settings = settings
        self.request_url = request_url
        self.kicked_off_at = kicked_off_at
        self.transaction_time = transaction_time
        self.resource_count = len(selection.entries)
        if params.organize_by_patient:
            listed = {e.key[1] for e in selection.entries if e.key[0] == "Patient"}
            self.resource_count += sum(1 for pid in _block_patients(selection) if pid not in listed)
        self.deleted_count = len(selection.tombstones)
        self._selection: Selection | None = selection
        self._files: dict[str, ExportFile] | None = None
        self._lock = threading.Lock()
        self.state = IN_PROGRESS
        self.polls = 0
        self.downloads = 0

    def _ready(self, now: datetime) -> bool:
        return self.polls >= self.settings.polls_before_ready and now >= self.settings.ready_at

    def _advance(self, now: datetime) -> None:
        if self.state == IN_PROGRESS and self._ready(now):
            self.state = FAILED if self.settings.fail else COMPLETE

    def poll(self, now: datetime) -> str:
        """Count one status poll and return the state it is answered with."""
        with self._lock:
            self._advance(now)
            if self.state != DELETED_JOB:
                self.polls += 1
            return self.state

    def progress(self, now: datetime) -> int:
        """Percent done, for ``X-Progress`` (never 100 while in progress)."""
        settings = self.settings
        fractions = [1.0]
        if settings.polls_before_ready > 0:
            fractions.append(self.polls / (settings.polls_before_ready + 1))
        total = (settings.ready_at - self.kicked_off_at).total_seconds()
        if total > 0:
            fractions.append((now - self.kicked_off_at).total_seconds() / total)
        return max(0, min(99, int(100 * min(fractions))))

    def info(self, now: datetime) -> BulkJobInfo:
        """A :class:`BulkJobInfo` (time-based completion is applied first)."""
        with self._lock:
            self._advance(now)
            return BulkJobInfo(
                self.state,
                self.kicked_off_at,
                self.transaction_time,
                self.polls,
                self.downloads,
                self.deleted_count,
                self.job_id,
                self.params.level,
                self.resource_count,
            )

    def files(self, per_file: int) -> list[ExportFile]:
        """The job's files (built on first use); empty unless the job is complete."""
        with self._lock:
            if self.state != COMPLETE:
                return []
            if self._files is None:
                assert self._selection is not None
                built = build_files(
                    self._selection,
                    self.params,
                    per_file=per_file,
                    error_outcomes=self.settings.error_outcomes,
                )
                self._files = {f.name: f for f in built}
                self._selection = None
            return list(self._files.values())

    def file(self, name: str, per_file: int) -> ExportFile | None:
        """The named file of a complete job, counting the download; ``None`` if unknown."""
        found = next((f for f in self.files(per_file) if f.name == name), None)
        if found is not None:
            with self._lock:
                self.downloads += 1
        return found

    def delete(self) -> bool:
        """Cancel or delete the job and drop its data; ``False`` if already deleted."""
        with self._lock:
            if self.state == DELETED_JOB:
                return False
            self.state = DELETED_JOB
            self._selection = None
            self._files = None
            return True


def _block_patients(selection: Selection) -> set[str]:
    """Patients whose ``organizeOutputBy`` block has a Patient header line."""
    return {
        pid
        for e in selection.entries
        if (pid := patient_of(e)) is not None and pid in selection.patients
    }


class BulkJobs:
    """Every job of a server, by id; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, BulkJob] = {}

    def add(self, job: BulkJob) -> None:
        """Register a new job."""
        with self._lock:
            self._jobs[job.job_id] = job

    def get(self, job_id: str) -> BulkJob | None:
        """The job, deleted ones included; ``None`` if unknown."""
        with self._lock:
            return self._jobs.get(job_id)

    def info(self, now: datetime) -> dict[str, BulkJobInfo]:
        """``{job_id: BulkJobInfo}`` in kick-off order."""
        with self._lock:
            jobs = list(self._jobs.values())
        return {job.job_id: job.info(now) for job in jobs}


def manifest_pages(job: BulkJob, files: list[ExportFile], base_url: str) -> list[dict[str, Any]]:
    """The job's manifest, split into pages when the client allowed partial manifests.

    Outputs are spread ``manifest_page_size`` per page; deleted and error files go on the last
    page; every page but the last has ``link[next]`` to
    ``{base_url}/_bulk/manifest/{job}/{n}``.
    """

    def item(f: ExportFile) -> dict[str, Any]:
        url = base_url + file_path(job.job_id, f.name)
        return {"type": f.type, "url": url, "count": f.count}

    outputs = [item(f) for f in files if f.kind == OUTPUT]
    deleted = [item(f) for f in files if f.kind == DELETED]
    errors = [item(f) for f in files if f.kind == ERROR]
    size = job.settings.manifest_page_size
    if not job.params.allow_partial_manifests or not size or size <= 0:
        chunks = [outputs]
    else:
        chunks = [outputs[i : i + size] for i in range(0, len(outputs), size)] or [[]]
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        last = number == len(chunks)
        page: dict[str, Any] = {
            "transactionTime": format_instant(job.transaction_time),
            "request": job.request_url,
            "requiresAccessToken": job.settings.requires_access_token,
            "output": chunk,
            "deleted": deleted if last else [],
            "error": errors if last else [],
        }
        if not last:
            next_url = base_url + manifest_path(job.job_id, number + 1)
            page["link"] = [{"relation": "next", "url": next_url}]
        pages.append(page)
    return pages


def retry_after(seconds: float, http_date: bool, now: datetime) -> str:
    """A ``Retry-After`` value: whole seconds (rounded up) or an HTTP-date that far ahead."""
    whole = max(0, math.ceil(seconds))
    if not http_date:
        return str(whole)
    at = now.replace(microsecond=0) + timedelta(seconds=whole + 1)
    return format_datetime(at, usegmt=True)
