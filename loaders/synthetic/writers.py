"""Output writers: NDJSON per resource type (Bulk Data style) or one Bundle per patient.

Both stream: a patient's resources are written as soon as the record is built. Serialisation
is compact ``orjson``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

#: Every resourceType the generator writes, in file order.
RESOURCE_TYPES: tuple[str, ...] = (
    "Organization",
    "Location",
    "Practitioner",
    "Patient",
    "Encounter",
    "Condition",
    "Observation",
    "Procedure",
    "Immunization",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationDispense",
)
ORGANIZATIONS_FILE = "organizations.json"
PRACTITIONERS_FILE = "practitioners.json"
_BUFFER = 1 << 20
_NEWLINE = orjson.OPT_APPEND_NEWLINE


class Writer(Protocol):
    """What the generator needs from an output format."""

    def write_shared(
        self, organizations: list[JSON], locations: list[JSON], practitioners: list[JSON]
    ) -> None:
        """Write the shared provider resources."""

    def write_patient(self, resources: list[JSON]) -> None:
        """Write one patient's record (Patient first)."""

    def close(self) -> list[Path]:
        """Flush, close, and return the data files written."""


class NdjsonWriter:
    """``<out>/<ResourceType>.ndjson``, one resource per line (every type's file is created)."""

    def __init__(self, out: Path) -> None:
        """Create (truncate) one file per resource type in ``out``."""
        self._paths = [out / f"{rtype}.ndjson" for rtype in RESOURCE_TYPES]
        self._files: dict[str, IO[bytes]] = {}
        try:
            for rtype, path in zip(RESOURCE_TYPES, self._paths, strict=True):
                self._files[rtype] = path.open("wb", buffering=_BUFFER)
        except BaseException:
            self.close()
            raise

    def _write(self, resources: Iterable[JSON]) -> None:
        files = self._files
        dumps = orjson.dumps
        for r in resources:
            files[r["resourceType"]].write(dumps(r, option=_NEWLINE))

    def write_shared(
        self, organizations: list[JSON], locations: list[JSON], practitioners: list[JSON]
    ) -> None:
        """Write organizations, locations and practitioners to their type files."""
        for group in (organizations, locations, practitioners):
            self._write(group)

    def write_patient(self, resources: list[JSON]) -> None:
        """Append a patient's resources to their type files."""
        self._write(resources)

    def close(self) -> list[Path]:
        """Close every file; return their paths in type order."""
        for fh in self._files.values():
            fh.close()
        return [
            p for p, rtype in zip(self._paths, RESOURCE_TYPES, strict=True) if rtype in self._files
        ]


def _bundle(entries: Sequence[JSON]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


class BundleWriter:
    """``<out>/<patient-id>.json``: one FHIR transaction Bundle per patient.

    Entries carry ``fullUrl: urn:uuid:<id>`` and ``request: POST <type>``; references inside a
    patient bundle use those ``urn:uuid:`` URLs. Shared resources go to ``organizations.json``
    (organizations and their locations) and ``practitioners.json``, as transaction bundles
    whose entries are ``PUT <type>/<id>`` so the ``<type>/<id>`` references in patient bundles
    resolve on a FHIR server too.
    """

    def __init__(self, out: Path) -> None:
        """Write bundles into ``out``."""
        self._out = out
        self._files: list[Path] = []
        self._post = {rtype: {"method": "POST", "url": rtype} for rtype in RESOURCE_TYPES}

    def _write_file(self, name: str, data: bytes) -> None:
        path = self._out / name
        with path.open("wb") as fh:
            fh.write(data)
        self._files.append(path)

    def write_shared(
        self, organizations: list[JSON], locations: list[JSON], practitioners: list[JSON]
    ) -> None:
        """Write ``organizations.json`` and ``practitioners.json``."""

        def put(resources: Iterable[JSON]) -> list[JSON]:
            return [
                {
                    "fullUrl": f"urn:uuid:{r['id']}",
                    "resource": r,
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in resources
            ]

        self._write_file(ORGANIZATIONS_FILE, _bundle(put(organizations) + put(locations)))
        self._write_file(PRACTITIONERS_FILE, _bundle(put(practitioners)))

    def write_patient(self, resources: list[JSON]) -> None:
        """Write one patient's transaction bundle."""
        post = self._post
        entries = [
            {"fullUrl": f"urn:uuid:{r['id']}", "resource": r, "request": post[r["resourceType"]]}
            for r in resources
        ]
        self._write_file(f"{resources[0]['id']}.json", _bundle(entries))

    def close(self) -> list[Path]:
        """Return the files written (shared bundles first, then patients in order)."""
        return list(self._files)
