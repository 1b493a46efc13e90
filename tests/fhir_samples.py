"""Small FHIR inputs for tests: resources and NDJSON files written from them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson


def write_ndjson(path: Path, rows: Iterable[object | bytes]) -> Path:
    """Write rows (objects, or raw bytes for malformed lines) one per line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"".join((row if isinstance(row, bytes) else orjson.dumps(row)) + b"\n" for row in rows)
    )
    return path


def patient(
    resource_id: str, *, version: str = "1", updated: str = "2026-11-20T10:00:00Z", **fields: object
) -> dict[str, object]:
    """A minimal Patient with meta.versionId and meta.lastUpdated."""
    return {
        "resourceType": "Patient",
        "id": resource_id,
        "meta": {"versionId": version, "lastUpdated": updated},
        **fields,
    }
