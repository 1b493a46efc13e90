"""URL layout of the Bulk Data endpoints (paths below ``/fhir``) and their request kinds.

- kick-off: ``/$export``, ``/Patient/$export``, ``/Group/{id}/$export`` (GET or POST)
- status: ``/_bulk/status/{job}`` (GET polls, DELETE cancels or deletes the job)
- manifest pages after the first: ``/_bulk/manifest/{job}/{page}``
- files: ``/_bulk/files/{job}/{name}.ndjson``
"""

from __future__ import annotations

EXPORT = "$export"
BULK_PREFIX = "_bulk"
KICKOFF, STATUS, MANIFEST, FILE, DELETE = (
    "bulk_kickoff",
    "bulk_status",
    "bulk_manifest",
    "bulk_file",
    "bulk_delete",
)
BULK_KINDS: frozenset[str] = frozenset({KICKOFF, STATUS, MANIFEST, FILE, DELETE})


def split(path: str) -> tuple[str, ...]:
    """Non-empty segments of a path below ``/fhir``."""
    return tuple(p for p in path.split("/") if p)


def bulk_kind(method: str, path: str) -> str | None:
    """The Bulk Data request kind of ``method path`` (path below ``/fhir``), else ``None``."""
    parts = split(path)
    if parts and parts[-1] == EXPORT:
        if (
            len(parts) == 1
            or parts == ("Patient", EXPORT)
            or (len(parts) == 3 and parts[0] == "Group")
        ):
            return KICKOFF
        return None
    if len(parts) < 3 or parts[0] != BULK_PREFIX:
        return None
    section = parts[1]
    if section == "status" and len(parts) == 3:
        return DELETE if method == "DELETE" else STATUS
    if section == "manifest" and len(parts) == 4:
        return MANIFEST
    if section == "files" and len(parts) == 4:
        return FILE
    return None


def status_path(job_id: str) -> str:
    """Path of a job's status endpoint (below ``/fhir``)."""
    return f"/{BULK_PREFIX}/status/{job_id}"


def manifest_path(job_id: str, page: int) -> str:
    """Path of a manifest page after the first (below ``/fhir``)."""
    return f"/{BULK_PREFIX}/manifest/{job_id}/{page}"


def file_path(job_id: str, name: str) -> str:
    """Path of an export file (below ``/fhir``)."""
    return f"/{BULK_PREFIX}/files/{job_id}/{name}"
