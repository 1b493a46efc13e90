"""Bulk Data Access (``$export``) endpoints of the test server: kick-off, status polling,
manifest pages, NDJSON files, job deletion, and Group reads.

Faults of the general scenario (rate limit, 429/5xx, resets, slow) are applied by the HTTP
layer before these run; the ``bulk_*`` scenario fields add the export-specific ones.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tests.fhir_server.auth import scopes_allow
from tests.fhir_server.bulk import (
    COMPLETE,
    DELETED_JOB,
    FAILED,
    IN_PROGRESS,
    BulkJob,
    BulkJobs,
    JobSettings,
    manifest_pages,
    retry_after,
)
from tests.fhir_server.bulk_params import (
    GROUP,
    PATIENT,
    SYSTEM,
    KickoffError,
    check_headers,
    parse_export,
    request_params,
)
from tests.fhir_server.bulk_select import select
from tests.fhir_server.bulk_urls import (
    DELETE,
    FILE,
    KICKOFF,
    MANIFEST,
    STATUS,
    split,
    status_path,
)
from tests.fhir_server.documents import operation_outcome
from tests.fhir_server.routes import (
    FHIR_PREFIX,
    JSON,
    Denied,
    Request,
    Response,
    json_response,
    outcome_response,
)

if TYPE_CHECKING:
    from tests.fhir_server.routes import Router
    from tests.fhir_server.server import FhirTestServer

NDJSON = "application/fhir+ndjson"
BULK_IG = "http://hl7.org/fhir/uv/bulkdata"


class BulkRoutes:
    """The ``$export`` endpoints and the jobs they created."""

    def __init__(self, server: FhirTestServer, router: Router) -> None:
        self.server = server
        self.router = router
        self.jobs = BulkJobs()

    def dispatch(self, request: Request, kind: str) -> Response:
        """Answer one Bulk Data request (``kind`` from :func:`bulk_urls.bulk_kind`).

        Raises:
            Denied: 401/403 from the token checks.
        """
        parts = split(request.path[len(FHIR_PREFIX) :])
        methods = {KICKOFF: ("GET", "POST"), DELETE: ("DELETE",)}.get(kind, ("GET",))
        if request.method not in methods:
            return outcome_response(405, "not-supported", f"{request.method} not supported here")
        if kind == KICKOFF:
            return self._kickoff(request, parts)
        if kind == STATUS:
            return self._status(request, parts[2])
        if kind == DELETE:
            return self._delete(request, parts[2])
        if kind == MANIFEST:
            return self._manifest_page(request, parts[2], parts[3])
        if kind == FILE:
            return self._file(request, parts[2], parts[3])
        return outcome_response(404, "not-found", f"no endpoint at {request.path}")

    # -- kick-off --------------------------------------------------------------------------

    def _kickoff(self, request: Request, parts: tuple[str, ...]) -> Response:
        server = self.server
        try:
            lenient = check_headers(request.headers)
        except KickoffError as exc:
            return outcome_response(exc.status, exc.code, exc.message)
        issued = self.router.authenticate(request)
        level, group_id = SYSTEM, None
        if parts[0] == "Patient":
            level = PATIENT
        elif parts[0] == "Group":
            level, group_id = GROUP, parts[1]
        members = None
        if group_id is not None:
            members = server.group_members(group_id)
            if members is None:
                return outcome_response(404, "not-found", f"Group/{group_id} not found")
        try:
            raw = request_params(request.method, request.query, request.body)
            params = parse_export(level, group_id, raw, server.scenario, lenient=lenient)
        except KickoffError as exc:
            return outcome_response(exc.status, exc.code, exc.message)

        def type_allowed(rtype: str) -> bool:
            return issued is None or scopes_allow(issued.scopes, rtype, "r")

        refused = sorted(t for t in params.types or () if not type_allowed(t))
        if refused:
            message = f"token scopes do not allow reading {', '.join(refused)}"
            raise Denied(outcome_response(403, "forbidden", message))
        kicked_off_at = server.now()
        snapshot = server.store.snapshot()
        selection = select(snapshot, params, members, type_allowed)
        scenario = server.scenario
        settings = JobSettings(
            polls_before_ready=max(0, scenario.bulk_polls_before_ready),
            ready_at=kicked_off_at + timedelta(seconds=max(0.0, scenario.bulk_job_seconds)),
            fail=scenario.bulk_fail_job,
            error_outcomes=max(0, scenario.bulk_error_outcomes),
            manifest_page_size=scenario.bulk_manifest_page_size,
            requires_access_token=scenario.bulk_requires_access_token,
        )
        url = server.origin + request.path + (f"?{request.query}" if request.query else "")
        job = BulkJob(
            params,
            selection,
            settings,
            request_url=url,
            kicked_off_at=kicked_off_at,
            transaction_time=snapshot.at,
        )
        self.jobs.add(job)
        server.stats.incr("bulk_kickoffs")
        location = server.base_url + status_path(job.job_id)
        return Response(202, b"", headers={"Content-Location": location})

    # -- status and manifest ---------------------------------------------------------------

    def _live_job(self, job_id: str) -> BulkJob | None:
        job = self.jobs.get(job_id)
        return None if job is None or job.state == DELETED_JOB else job

    def _throttled(self) -> Response | None:
        """429 when a ``bulk_429_polls`` unit is left."""
        scenario = self.server.scenario
        if not scenario.take("bulk_429_polls"):
            return None
        headers = {"Retry-After": self._retry_after()}
        document = operation_outcome("throttled", "simulated 429 while polling")
        response = json_response(429, document, headers=headers)
        response.fault = "bulk_429"
        return response

    def _retry_after(self) -> str:
        scenario = self.server.scenario
        return retry_after(
            scenario.bulk_retry_after_seconds,
            scenario.bulk_retry_after_http_date,
            self.server.now(),
        )

    def _status(self, request: Request, job_id: str) -> Response:
        server = self.server
        self.router.authenticate(request)
        job = self._live_job(job_id)
        if job is None:
            return _unknown_job()
        server.stats.incr("bulk_polls")
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        now = server.now()
        state = job.poll(now)
        if state == IN_PROGRESS:
            headers = {
                "X-Progress": f"{job.progress(now)}% complete",
                "Retry-After": self._retry_after(),
            }
            return Response(202, b"", headers=headers)
        if state == FAILED:
            document = operation_outcome("exception", "simulated export failure", "fatal")
            return json_response(500, document)
        if state != COMPLETE:
            return _unknown_job()
        return json_response(200, self._pages(job)[0], content_type=JSON)

    def _pages(self, job: BulkJob) -> list[dict[str, Any]]:
        files = job.files(self.server.scenario.bulk_resources_per_file)
        return manifest_pages(job, files, self.server.base_url)

    def _manifest_page(self, request: Request, job_id: str, page: str) -> Response:
        self.router.authenticate(request)
        job = self._live_job(job_id)
        if job is None:
            return _unknown_job()
        self.server.stats.incr("bulk_manifests")
        throttled = self._throttled()
        if throttled is not None:
            return throttled
        if job.info(self.server.now()).state != COMPLETE:
            return outcome_response(404, "not-found", "the job has no manifest")
        pages = self._pages(job)
        number = int(page) if page.isdigit() else 0
        if not 1 <= number <= len(pages):
            return outcome_response(404, "not-found", f"no manifest page {page}")
        return json_response(200, pages[number - 1], content_type=JSON)

    # -- files and deletion ----------------------------------------------------------------

    def _file(self, request: Request, job_id: str, name: str) -> Response:
        server = self.server
        job = self._live_job(job_id)
        if job is not None and job.settings.requires_access_token:
            self.router.authenticate(request)
        if job is None:
            return outcome_response(404, "not-found", "no such export file")
        export_file = job.file(name, server.scenario.bulk_resources_per_file)
        if export_file is None:
            return outcome_response(404, "not-found", "no such export file")
        server.stats.incr("bulk_files_served")
        scenario = server.scenario
        if scenario.take("bulk_truncate_downloads"):
            server.stats.incr("bulk_truncated_downloads")
            return Response(200, export_file.body, NDJSON, fault="bulk_truncate", reset=True)
        if scenario.take("bulk_short_downloads"):
            server.stats.incr("bulk_short_downloads")
            body = export_file.first_lines(export_file.count // 2)
            return Response(200, body, NDJSON, fault="bulk_short", chunked=True)
        server.stats.incr("bulk_resources_served", export_file.count)
        return Response(200, export_file.body, NDJSON)

    def _delete(self, request: Request, job_id: str) -> Response:
        self.router.authenticate(request)
        job = self.jobs.get(job_id)
        if job is None or not job.delete():
            return _unknown_job()
        self.server.stats.incr("bulk_deletes")
        return Response(202, b"")

    # -- capabilities and groups -----------------------------------------------------------

    def declare(self, statement: dict[str, Any]) -> None:
        """Add the Bulk Data operations (and the Group type) to a CapabilityStatement."""
        statement["instantiates"] = [f"{BULK_IG}/CapabilityStatement/bulk-data"]
        rest = statement["rest"][0]
        rest["operation"] = [
            {"name": "export", "definition": f"{BULK_IG}/OperationDefinition/export"}
        ]
        patient_export = {
            "name": "export",
            "definition": f"{BULK_IG}/OperationDefinition/patient-export",
        }
        for resource in rest["resource"]:
            if resource["type"] == "Patient":
                resource.setdefault("operation", []).append(patient_export)
        rest["resource"].append(
            {
                "type": "Group",
                "interaction": [{"code": "read"}],
                "searchParam": [],
                "operation": [
                    {"name": "export", "definition": f"{BULK_IG}/OperationDefinition/group-export"}
                ],
            }
        )

    def read_group(self, request: Request, group_id: str) -> Response:
        """``GET /fhir/Group/{id}``: the Group with its member Patients.

        Raises:
            Denied: 401/403 from the token checks.
        """
        issued = self.router.authenticate(request)
        if issued is not None and not scopes_allow(issued.scopes, "Group", "r"):
            raise Denied(outcome_response(403, "forbidden", "token scopes do not allow Group"))
        members = self.server.group_members(group_id)
        if members is None:
            return outcome_response(404, "not-found", f"Group/{group_id} not found")
        group = {
            "resourceType": "Group",
            "id": group_id,
            "type": "person",
            "actual": True,
            "quantity": len(members),
            "member": [{"entity": {"reference": f"Patient/{pid}"}} for pid in members],
        }
        return json_response(200, group)


def _unknown_job() -> Response:
    return outcome_response(404, "not-found", "no such export job (unknown or deleted)")
